"""Publishing: CAIRN_DOI, the DOIs Cairn mints and where each stands at DataCite.

Revision ID: cairn_0005
Revises: cairn_0004
"""

from alembic import op
from sqlalchemy import inspect

from cairn.db.tables import TABLES

revision = "cairn_0005"
down_revision = "cairn_0004"
branch_labels = None
depends_on = None

DOI = TABLES.doi


def upgrade() -> None:
    bind = op.get_bind()
    # Absent-only, as cairn_0002: a database made by create_all() already has it.
    if DOI.name.upper() not in {n.upper() for n in inspect(bind).get_table_names()}:
        DOI.create(bind)


def downgrade() -> None:
    DOI.drop(op.get_bind())
