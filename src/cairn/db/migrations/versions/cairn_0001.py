"""Cairn's own tables: PASSWD, the user table of the db authenticator (authn.db's layout).

Revision ID: cairn_0001
Revises: icat_6_2
"""

from alembic import op
from sqlalchemy import inspect

from cairn.db.tables import TABLES

revision = "cairn_0001"
down_revision = "icat_6_2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    # A site whose authn.db already keeps its users in the ICAT database has PASSWD: keep it.
    if "PASSWD" not in {name.upper() for name in inspect(bind).get_table_names()}:
        TABLES.passwd.create(bind)


def downgrade() -> None:
    # PASSWD may predate Cairn (authn.db) and holds passwords: leave it in place.
    pass
