"""Migration cairn_0010: DATASET (INVESTIGATION_ID, ID) and DATASETPARAMETER (DATASET_ID,
NUMERIC_VALUE), on PostgreSQL INCLUDE (PARAMETER_TYPE_ID, ID), for parameter filters walked
in investigation order, on every backend."""

from __future__ import annotations

from sqlalchemy import inspect, text

from cairn.db import migrate
from cairn.db.engine import Database

NAMES = {"idx_cairn_dataset_investigation", "idx_cairn_datasetparameter_numeric"}


def _indexes(db: Database) -> dict[str, list[str | None]]:
    found: dict[str, list[str | None]] = {}
    for table in ("DATASET", "DATASETPARAMETER"):
        for ix in inspect(db.engine).get_indexes(table.lower() if db.dialect ==
                                                   "postgresql" else table):
            found[str(ix["name"]).lower()] = list(ix["column_names"])
    return found


def test_the_indexes_and_a_probe_reading_no_row(migrated_url: str) -> None:
    db = Database(migrated_url)
    try:
        migrate.upgrade(db)
        found = {k: [str(c).lower() for c in v] for k, v in _indexes(db).items()}
        assert found["idx_cairn_dataset_investigation"] == ["investigation_id", "id"]
        assert found["idx_cairn_datasetparameter_numeric"][:2] == ["dataset_id",
                                                                   "numeric_value"]
        if db.dialect != "postgresql":
            return
        with db.connect() as conn:
            conn.exec_driver_sql("SET enable_seqscan = off")
            plan = "\n".join(r[0] for r in conn.execute(text(
                "EXPLAIN SELECT id, parameter_type_id FROM datasetparameter "
                "WHERE dataset_id = 1 AND numeric_value BETWEEN 15 AND 22")))
            assert "Index Only Scan using idx_cairn_datasetparameter_numeric" in plan
        migrate.upgrade(db)  # again: nothing to do, nothing fails
        assert set(_indexes(db)) >= NAMES
    finally:
        db.dispose()
