"""Pooled connections: a connection the database dropped is replaced, not handed out; reads
on PostgreSQL skip the transaction, and writes still commit or roll back as a whole."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Connection, exc, text

from cairn.db import engine as engine_module
from cairn.db.engine import Database
from tests.waiting import wait_until

SERVER_BACKENDS = ("postgresql", "mariadb")


def _backend_pid(db: Database) -> int:
    sql = "SELECT pg_backend_pid()" if db.dialect == "postgresql" else "SELECT CONNECTION_ID()"
    with db.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def _kill(db: Database, pid: int) -> None:
    """Drop the server side of a connection from another session, as a restart would, and
    wait until the server no longer lists it (termination is asynchronous)."""
    other = Database(db.url, pool_size=1)
    listed = text("SELECT COUNT(*) FROM pg_stat_activity WHERE pid = :p"
                  if db.dialect == "postgresql" else
                  "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = :p")

    def gone() -> bool:
        with other.connect() as conn:
            return int(conn.execute(listed, {"p": pid}).scalar_one()) == 0

    try:
        with other.connect() as conn:
            if db.dialect == "postgresql":
                conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            else:
                conn.execute(text(f"KILL {pid}"))
        wait_until(gone, 30, f"the database to drop connection {pid}")
    finally:
        other.dispose()


@pytest.mark.parametrize("backend", SERVER_BACKENDS, indirect=True)
def test_a_dropped_idle_connection_is_replaced(database_url: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    db = Database(database_url, pool_size=1, max_overflow=0)
    try:
        pid = _backend_pid(db)
        _kill(db, pid)
        monkeypatch.setattr(engine_module, "IDLE_PING_SECONDS", 0.0)
        # the pool's only connection is dead; the next checkout tests it and reconnects
        assert _backend_pid(db) != pid
        with db.read() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        db.dispose()


class _Gone:
    """A DB-API connection whose server went away: any use fails."""

    def __init__(self) -> None:
        self.cursors = 0

    def cursor(self) -> None:
        self.cursors += 1
        raise OSError("server closed the connection")


class _Record:
    def __init__(self, idle: float) -> None:
        self.info = {"checked_in": time.monotonic() - idle}


def test_only_idle_connections_are_pinged() -> None:
    """Handed back a moment ago, a connection goes out again without a round trip; after
    sitting idle it is tested, and a dead one is refused so that the pool takes another."""
    conn = _Gone()
    engine_module._ping_if_idle(conn, _Record(idle=0.0), None)
    assert conn.cursors == 0
    with pytest.raises(exc.DisconnectionError, match="stale pooled connection"):
        engine_module._ping_if_idle(conn, _Record(idle=engine_module.IDLE_PING_SECONDS + 1),
                                    None)
    assert conn.cursors == 1


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_postgresql_reads_run_without_a_transaction(database_url: str) -> None:
    """now() is the start of the transaction: in autocommit every statement starts its own,
    so two statements apart in time read two times; inside a transaction both read its start.
    (PostgreSQL only: elsewhere reads keep their transaction.)"""
    db = Database(database_url)
    assert db.dialect == "postgresql"
    now = text("SELECT now()")
    try:
        with db.read() as conn:
            first = conn.execute(now).scalar_one()
            time.sleep(0.01)  # part of the scenario: time passes between two statements
            assert conn.execute(now).scalar_one() > first
        with db.begin() as conn:
            first = conn.execute(now).scalar_one()
            time.sleep(0.01)  # part of the scenario: time passes between two statements
            assert conn.execute(now).scalar_one() == first
    finally:
        db.dispose()


def _prepared(conn: Connection, label: str) -> int:
    """How many statements naming ``label`` the connection holds prepared on the server."""
    return int(conn.execute(text(
        "SELECT COUNT(*) FROM pg_prepared_statements "
        "WHERE statement LIKE :pattern AND statement NOT LIKE '%pg_prepared_statements%'"),
        {"pattern": f"%{label}%"}).scalar_one())


def _added(conn: Connection, label: str) -> int:
    return int(conn.execute(text(f"SELECT CAST(:v AS INTEGER) + 2 AS {label}"),
                            {"v": 40}).scalar_one())


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_postgresql_prepares_a_statement_on_its_first_run(database_url: str) -> None:
    """A statement is prepared on the server the first time it runs, so PostgreSQL's own
    plan cache (five plans for the values, then one for all if it is no costlier) starts
    counting at once rather than after psycopg's default five unprepared runs."""
    db = Database(database_url, pool_size=1, max_overflow=0)
    try:
        with db.read() as conn:
            assert _prepared(conn, "cairn_first_run") == 0
            assert _added(conn, "cairn_first_run") == 42
            assert _prepared(conn, "cairn_first_run") == 1
    finally:
        db.dispose()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_search_plans_its_statements_afresh_and_the_pool_restores_the_default(
        database_url: str) -> None:
    """A search's statements are never prepared (PostgreSQL would keep a plan made without
    their values), and the connection prepares again once back in the pool."""
    from cairn.search.index import backend_for

    db = Database(database_url, pool_size=1, max_overflow=0)
    try:
        with db.read() as conn:
            backend_for(db).prepare(conn)  # as a search begins
            for _ in range(8):
                assert _added(conn, "cairn_search_run") == 42
            assert _prepared(conn, "cairn_search_run") == 0
        with db.read() as conn:  # the same connection (a pool of one), given back
            assert _added(conn, "cairn_search_run") == 42
            assert _prepared(conn, "cairn_search_run") == 1
    finally:
        db.dispose()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_the_sources_after_a_search_are_prepared_again(database_url: str) -> None:
    """Once a search's own statements are done, the rest of its unit of work (reading the
    documents found, rules and all) is prepared as any read is."""
    from cairn.search.index import backend_for

    db = Database(database_url, pool_size=1, max_overflow=0)
    backend = backend_for(db)
    try:
        with db.read() as conn:
            backend.prepare(conn)
            assert _added(conn, "cairn_search_own") == 42
            backend.finish(conn)  # as the search hands over to its sources
            assert _added(conn, "cairn_search_sources") == 42
            assert _prepared(conn, "cairn_search_own") == 0
            assert _prepared(conn, "cairn_search_sources") == 1
    finally:
        db.dispose()
