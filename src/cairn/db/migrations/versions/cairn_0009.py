"""An index on DATAFILE(NAME, ID), Cairn's own (declared in cairn.db.tables).

A search page of files sorted by name (the portal's "Name, A to Z") then reads a page of the
index and stops, instead of sorting every matching file: a million of them cost 150-450 ms
a page. icat.server's layout leads no index with NAME (its unique key is DATASET_ID, NAME).
Like cairn_0008 (cairn.db.fkindexes) it is created only where no index starts with the
column already, so icat.server sharing the database sees nothing but one more index to
maintain on insert. PostgreSQL builds it with a lock that holds writes to DATAFILE (about
10 s for ten million files). The downgrade leaves it: it changes no answer.

Revision ID: cairn_0009
Revises: cairn_0008
"""

from alembic import op

from cairn.db import fkindexes

revision = "cairn_0009"
down_revision = "cairn_0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    fkindexes.add_missing(op.get_bind())


def downgrade() -> None:
    pass
