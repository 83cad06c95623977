"""Pooled connections: a connection the database dropped is replaced, not handed out; reads
on PostgreSQL skip the transaction, and writes still commit or roll back as a whole."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import exc, text

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
    """now() is the start of the transaction, statement_timestamp() of the statement: inside
    a transaction begun earlier they differ; in autocommit every statement is its own.
    (PostgreSQL only: elsewhere reads keep their transaction.)"""
    db = Database(database_url)
    assert db.dialect == "postgresql"
    same = text("SELECT now() = statement_timestamp()")
    try:
        with db.read() as conn:
            conn.execute(text("SELECT 1"))
            time.sleep(0.01)  # part of the scenario: time passes between two statements
            assert conn.execute(same).scalar_one()
        with db.begin() as conn:
            conn.execute(text("SELECT 1"))
            time.sleep(0.01)  # part of the scenario: time passes between two statements
            assert not conn.execute(same).scalar_one()
    finally:
        db.dispose()
