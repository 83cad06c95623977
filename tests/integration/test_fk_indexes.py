"""Indexes on foreign-key columns for a database icat.server created (cairn.db.fkindexes,
migration cairn_0008), on every backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import inspect

from cairn.db import fkindexes, migrate
from cairn.db.engine import Database

#: Foreign-key indexes icat.server's layout does not have (it declares none), of tables the
#: portal's authorization joins through.
DROPPED = {"INVESTIGATIONUSER": "IDX_INVESTIGATIONUSER_INVESTIGATION_ID",
           "DATASET": "IDX_DATASET_TYPE_ID"}


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate.upgrade(database)
    try:
        yield database
    finally:
        database.dispose()


def _index_names(db: Database, table: str) -> set[str]:
    with db.connect() as conn:
        live = {n.upper(): n for n in inspect(conn).get_table_names()}
        return {str(i["name"]).upper() for i in inspect(conn).get_indexes(live[table])}


def test_a_database_cairn_made_lacks_none(db: Database) -> None:
    with db.connect() as conn:
        assert fkindexes.missing(conn) == []
    for table, index in DROPPED.items():
        assert index in _index_names(db, table)


def test_missing_indexes_are_added_under_cairns_names(db: Database) -> None:
    if db.dialect == "mysql":
        pytest.skip("InnoDB keeps an index on every foreign key: there is none to miss")
    with db.begin() as conn:
        for index in DROPPED.values():
            conn.exec_driver_sql(f"DROP INDEX {index}")
        # The same column leading an index of another name: nothing more to add there.
        conn.exec_driver_sql("CREATE INDEX SITE_DATASET_TYPE ON DATASET (TYPE_ID, NAME)")
    with db.connect() as conn:
        assert [str(i.name) for i in fkindexes.missing(conn)] == [
            "IDX_INVESTIGATIONUSER_INVESTIGATION_ID"]
    with db.begin() as conn:
        assert fkindexes.add_missing(conn) == ["IDX_INVESTIGATIONUSER_INVESTIGATION_ID"]
    with db.connect() as conn:
        assert fkindexes.missing(conn) == []
    assert "IDX_INVESTIGATIONUSER_INVESTIGATION_ID" in _index_names(db, "INVESTIGATIONUSER")
    assert "IDX_DATASET_TYPE_ID" not in _index_names(db, "DATASET")
