"""PostgreSQL bulk loads build the plain indexes of the tables they fill once, at the end
(cairn.demo.pgload.suspend_indexes): afterwards, and after a failed load, every index and
unique constraint is as it was; unique constraints are never dropped."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, func, insert, select, text

from cairn.db import migrate
from cairn.db.engine import Database
from cairn.demo import load_demo
from cairn.demo.bulk import BulkWriter
from cairn.startup import catalogue_of


@pytest.fixture
def db(migrated_url: str) -> Iterator[Database]:
    database = Database(migrated_url)
    if database.dialect != "postgresql":
        database.dispose()
        pytest.skip("COPY and indexes built after the load are PostgreSQL's")
    migrate.upgrade(database)
    database.detect_ids()
    try:
        yield database
    finally:
        database.dispose()


def _indexes(conn: Connection) -> set[tuple[str, str, str]]:
    """Every index with its definition, and the constraint it backs (if any)."""
    return {(str(n), str(d), str(c)) for n, d, c in conn.execute(text(
        "SELECT i.indexname, i.indexdef, coalesce(pg_get_constraintdef(c.oid), '') "
        "FROM pg_indexes i LEFT JOIN pg_constraint c ON c.conname = i.indexname "
        "WHERE i.schemaname = current_schema()"))}


def _datafile_indexes(conn: Connection) -> set[str]:
    return {n for n, _, _ in _indexes(conn) if n.startswith(("unq_datafile", "index_datafile",
                                                                "idx_datafile_"))}


def test_indexes_as_they_were_after_a_load(db: Database) -> None:
    with db.connect() as conn:
        before = _indexes(conn)
    # the tables the demo fills have secondary indexes and unique constraints to rebuild
    assert {"unq_datafile_0", "index_datafile_location"} <= {n for n, _, _ in before}
    load_demo(catalogue_of(db), scale=0.05, password=None)
    with db.connect() as conn:
        assert _indexes(conn) == before
        t = db.tables["Datafile"]
        assert conn.execute(select(func.count()).select_from(t)).scalar_one() > 100
        # the rebuilt index serves queries (it holds the loaded rows)
        location = conn.execute(select(t.c.location).limit(1)).scalar_one()
        conn.exec_driver_sql("SET enable_seqscan = off")
        query = "SELECT count(*) FROM datafile WHERE location = :x"
        plan = "\n".join(r[0] for r in conn.execute(text("EXPLAIN " + query), {"x": location}))
        assert "index_datafile_location" in plan
        assert conn.execute(text(query), {"x": location}).scalar_one() == 1


def test_indexes_back_after_a_failed_load(db: Database,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    with db.connect() as conn:
        before = _indexes(conn)

    def broken_finish(self: BulkWriter) -> None:
        self.flush()  # the indexes are dropped and rows are on their way
        raise RuntimeError("disk full")

    monkeypatch.setattr(BulkWriter, "finish", broken_finish)
    with pytest.raises(RuntimeError, match="disk full"):
        load_demo(catalogue_of(db), scale=0.05, password=None)
    with db.connect() as conn:
        assert _indexes(conn) == before


def test_plain_indexes_wait_for_the_end_and_unique_keys_do_not(db: Database) -> None:
    now = db.now()
    system = {"createId": "x", "modId": "x", "createTime": now, "modTime": now}
    t = db.tables
    with db.begin() as conn:
        def add(entity: str, **values: object) -> int:
            key = conn.execute(insert(t[entity]).values(**values, **system)).inserted_primary_key
            assert key is not None
            return int(key[0])

        fac = add("Facility", name="F")
        inv = add("Investigation", facility=fac, name="I", visitId="1", title="T",
                  type=add("InvestigationType", facility=fac, name="IT"))
        dataset = add("Dataset", investigation=inv, name="D", complete=False,
                      type=add("DatasetType", facility=fac, name="DT"))
    with db.connect() as conn:
        before = _datafile_indexes(conn)
    assert {"unq_datafile_0", "index_datafile_location"} <= before
    with db.begin() as conn, BulkWriter(conn, t, "db/loader", now) as writer:
        files = writer.sink("Datafile", ("dataset", "name", "location"))
        files.add((dataset, "a.nxs", "a/a.nxs"))
        writer.flush()
        during = _datafile_indexes(conn)
        assert "index_datafile_location" not in during  # built at the end
        assert "unq_datafile_0" in during  # a duplicate is still refused as it arrives
        writer.finish()
        assert _datafile_indexes(conn) == before
