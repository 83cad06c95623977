"""Two-level storage across processes: dataset locks, and what a job runs and where.

Revision ID: cairn_0003
Revises: cairn_0002
"""

from alembic import op
from sqlalchemy import Column, inspect

from cairn.db.legacy import IDS_JOB
from cairn.db.tables import TABLES

revision = "cairn_0003"
down_revision = "cairn_0002"
branch_labels = None
depends_on = None

JOB = IDS_JOB
NEW_COLUMNS = ("running", "location")


def upgrade() -> None:
    bind = op.get_bind()
    insp = inspect(bind)
    # Absent-only, as cairn_0002: a database made by create_all() (or by cairn_0002 from
    # today's table declarations) already has them.
    tables = {n.upper(): n for n in insp.get_table_names()}
    if TABLES.ids_lock.name.upper() not in tables:
        TABLES.ids_lock.create(bind)
    # Reflect by the name as stored (PostgreSQL folds unquoted names to lower case).
    have = {c["name"].upper() for c in insp.get_columns(tables[JOB.name.upper()])}
    for key in NEW_COLUMNS:
        column = JOB.c[key]
        if column.name.upper() not in have:
            op.add_column(JOB.name, Column(column.name, column.type, nullable=True))


def downgrade() -> None:
    bind = op.get_bind()
    TABLES.ids_lock.drop(bind)
    for key in NEW_COLUMNS:
        op.drop_column(JOB.name, JOB.c[key].name)
