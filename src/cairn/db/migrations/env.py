"""Alembic environment: runs on the connection that :mod:`cairn.db.migrate` hands over.

That connection is already inside the migration transaction (and lock), so Alembic's own
``begin_transaction`` joins it instead of opening another.
"""

from alembic import context

from cairn.db.tables import TABLES


def run_migrations() -> None:
    if context.is_offline_mode():
        # Revisions inspect the live database to apply only what is missing.
        raise RuntimeError("Cairn's migrations can't run in offline (--sql) mode")
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through cairn.db.migrate.upgrade(), not the CLI")
    context.configure(connection=connection, target_metadata=TABLES.metadata)
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
