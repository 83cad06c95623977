"""Indexes for parameter filters on datasets walked in investigation order, Cairn's own.

A portal's parameter filter ("investigations with a dataset whose temperature is between 15
and 22 K", bench/authz_search.py's inv-param) is planned by PostgreSQL as a walk through the
datasets in investigation order, probing each one's parameters, until a page of matches is
found: it cannot know from the parameter type's *name* how few rows of that type match, so it
expects to stop early (1,271-1,485 matches expected, 431 found: 26,000-36,000 datasets probed at ten
million datafiles). Both steps of that walk read table rows only to look at two columns:

* ``IDX_CAIRN_DATASET_INVESTIGATION`` on DATASET (INVESTIGATION_ID, ID): the datasets of an
  investigation in order, with their ids, from the index alone (icat.server's unique key
  INVESTIGATION_ID, NAME holds no ID);
* ``IDX_CAIRN_DATASETPARAMETER_NUMERIC`` on DATASETPARAMETER (DATASET_ID, NUMERIC_VALUE),
  on PostgreSQL INCLUDE (PARAMETER_TYPE_ID, ID): a dataset's parameters in a numeric range,
  without reading the (mostly non-matching) parameter rows.

Measured on that query at ten million datafiles (docs/performance.md, "Facility scale"): the
statement's execution went from 176-417 ms to 87-166 ms; the indexes take 6.2 and 36 MB. An
index on (PARAMETER_TYPE_ID, NUMERIC_VALUE) would serve the plan PostgreSQL should choose but
does not (the same estimate), so it is not made. Made on every backend, as
:mod:`cairn.db.tables` declares them (the schema a migration leaves is the declared one);
measured on PostgreSQL only.

icat.server sharing the database sees nothing but two more indexes to maintain on insert.
Each is built with a lock that holds writes to its table (about a second each on PostgreSQL
for ten million datafiles: 200,000 datasets, 770,000 dataset parameters). The downgrade leaves
them: they change no answer.

Revision ID: cairn_0010
Revises: cairn_0009
"""

from alembic import op

revision = "cairn_0010"
down_revision = "cairn_0009"
branch_labels = None
depends_on = None

DATASET_INDEX = ("CREATE INDEX IF NOT EXISTS IDX_CAIRN_DATASET_INVESTIGATION ON DATASET "
                 "(INVESTIGATION_ID, ID)")
PARAMETER_INDEX = ("CREATE INDEX IF NOT EXISTS IDX_CAIRN_DATASETPARAMETER_NUMERIC ON "
                   "DATASETPARAMETER (DATASET_ID, NUMERIC_VALUE)")


def upgrade() -> None:
    op.execute(DATASET_INDEX)
    # PostgreSQL: the parameter's type and id in the index too, so a probe reads no row
    # (InnoDB's secondary indexes carry the primary key by themselves)
    postgres = op.get_bind().dialect.name == "postgresql"
    op.execute(PARAMETER_INDEX + (" INCLUDE (PARAMETER_TYPE_ID, ID)" if postgres else ""))


def downgrade() -> None:
    pass
