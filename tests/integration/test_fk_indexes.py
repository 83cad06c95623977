"""Indexes a database icat.server created lacks (cairn.db.fkindexes, migrations cairn_0008 and
cairn_0009): on foreign-key columns, and Cairn's own on DATAFILE(NAME, ID), on every backend."""

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
def db(migrated_url: str) -> Iterator[Database]:
    database = Database(migrated_url)
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


def test_the_datafile_name_index_is_added_where_none_leads_with_name(db: Database) -> None:
    # icat.server's DATAFILE leads no index with NAME (its unique key is DATASET_ID, NAME):
    # InnoDB included, so MariaDB gets it too
    with db.begin() as conn:
        conn.exec_driver_sql("DROP INDEX IDX_CAIRN_DATAFILE_NAME" + (
            " ON DATAFILE" if db.dialect == "mysql" else ""))
    with db.connect() as conn:
        assert [str(i.name) for i in fkindexes.missing(conn)] == ["IDX_CAIRN_DATAFILE_NAME"]
    with db.begin() as conn:
        assert fkindexes.add_missing(conn) == ["IDX_CAIRN_DATAFILE_NAME"]
    with db.connect() as conn:
        live = {n.upper(): n for n in inspect(conn).get_table_names()}
        found = {str(i["name"]).upper(): [str(c).upper() for c in i["column_names"]]
                 for i in inspect(conn).get_indexes(live["DATAFILE"])}
    assert found["IDX_CAIRN_DATAFILE_NAME"] == ["NAME", "ID"]

