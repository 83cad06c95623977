"""The data service's persistent state: prepared downloads, the job queue, failure flags.

Revision ID: cairn_0002
Revises: cairn_0001
"""

from alembic import op
from sqlalchemy import inspect

from cairn.db.legacy import IDS_JOB
from cairn.db.tables import TABLES

revision = "cairn_0002"
down_revision = "cairn_0001"
branch_labels = None
depends_on = None

NEW = (TABLES.ids_prepared, IDS_JOB, TABLES.ids_failure)


def upgrade() -> None:
    bind = op.get_bind()
    # Absent-only, like PASSWD: tools that create_all() the whole metadata already made them.
    existing = {name.upper() for name in inspect(bind).get_table_names()}
    for table in NEW:
        if table.name.upper() not in existing:
            table.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(NEW):
        table.drop(bind)
