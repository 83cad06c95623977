"""Indexes on foreign-key columns a database created by icat.server lacks (cairn.db.fkindexes).

Only adds indexes, under Cairn's names, where no index starts with the column already: a
database Cairn created (or MariaDB, whose InnoDB indexes foreign keys itself) gets nothing.
PostgreSQL builds each one with a lock that holds writes to its table (seconds for ten
million datafiles). The downgrade leaves them: they change nothing but speed, and a database
Cairn created had them before this revision.

Revision ID: cairn_0008
Revises: cairn_0007
"""

from alembic import op

from cairn.db import fkindexes

revision = "cairn_0008"
down_revision = "cairn_0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    fkindexes.add_missing(op.get_bind())


def downgrade() -> None:
    pass
