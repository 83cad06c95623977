"""Indexes for pages of files sorted by name or by date, Cairn's own.

A search page of files sorted by name ("Name, A to Z") or by date ("Newest first") reads a
page of an index and stops, instead of sorting every matching file: a million of them cost
150-1,200 ms a page.

* ``IDX_CAIRN_DATAFILE_NAME`` on (NAME, ID), declared in :mod:`cairn.db.tables`: like
  cairn_0008 (:mod:`cairn.db.fkindexes`) it is created only where no index starts with NAME
  already (icat.server's unique key is DATASET_ID, NAME).
* ``IDX_CAIRN_DATAFILE_DATE`` on a datafile's search date (its own modification time, else
  its creation time, else the row's: ``Search.date_expr``) and ID, on PostgreSQL and SQLite;
  MariaDB indexes no expression. Written out here, not derived, so this revision stays what
  it was when the search's expression changes.

icat.server sharing the database sees nothing but two more indexes to maintain on insert.
PostgreSQL builds each with a lock that holds writes to DATAFILE (about 10 s for ten million
files). The downgrade leaves them: they change no answer.

Revision ID: cairn_0009
Revises: cairn_0008
"""

from alembic import op

from cairn.db import fkindexes

revision = "cairn_0009"
down_revision = "cairn_0008"
branch_labels = None
depends_on = None

DATE_INDEX = ("CREATE INDEX IF NOT EXISTS IDX_CAIRN_DATAFILE_DATE ON DATAFILE "
              "((COALESCE(DATAFILEMODTIME, DATAFILECREATETIME, MOD_TIME)), ID)")


def upgrade() -> None:
    bind = op.get_bind()
    fkindexes.add_missing(bind)
    if bind.dialect.name in ("postgresql", "sqlite"):
        op.execute(DATE_INDEX)


def downgrade() -> None:
    pass
