"""Migration cairn_0012 gives a catalogue that predates it DATAFILE (DATASET_ID, ID), the index
:mod:`cairn.db.tables` declares (fresh catalogues get it from the declaration)."""

from __future__ import annotations

from sqlalchemy import inspect, text

from cairn.db import migrate
from cairn.db.engine import Database
from cairn.db.tables import DATAFILE_DATASET_INDEX


def _datafile_indexes(db: Database) -> dict[str, list[str]]:
    found = inspect(db.engine)
    table = next(t for t in found.get_table_names() if t.upper() == "DATAFILE")
    return {str(ix["name"]).upper(): [str(c).upper() for c in ix["column_names"]]
            for ix in found.get_indexes(table)}


def test_cairn_0012_adds_the_datafile_dataset_index(migrated_url: str) -> None:
    db = Database(migrated_url)
    try:
        declared = {str(ix.name).upper(): [c.name.upper() for c in ix.columns]
                    for ix in db.tables["Datafile"].indexes}
        assert declared[DATAFILE_DATASET_INDEX] == ["DATASET_ID", "ID"]
        assert _datafile_indexes(db)[DATAFILE_DATASET_INDEX] == ["DATASET_ID", "ID"]
        # a catalogue as cairn_0011 left it
        drop = (f"DROP INDEX {DATAFILE_DATASET_INDEX} ON DATAFILE" if db.dialect == "mysql"
                else f"DROP INDEX {DATAFILE_DATASET_INDEX}")
        with db.begin() as conn:
            conn.execute(text(drop))
            conn.execute(text("UPDATE alembic_version SET version_num = 'cairn_0011'"))
        db.dispose()  # no pooled connection holding prepared statements on the old table
        assert DATAFILE_DATASET_INDEX not in _datafile_indexes(db)
        assert migrate.upgrade(db) == migrate.head()
        assert _datafile_indexes(db)[DATAFILE_DATASET_INDEX] == ["DATASET_ID", "ID"]
    finally:
        db.dispose()
