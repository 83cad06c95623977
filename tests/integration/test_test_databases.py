"""The test suite's own databases: dropping one never waits on a connection a test left open.

A test that leaves a connection checked out in a transaction holds MariaDB metadata locks on
the tables it read; ``DROP DATABASE`` then waited for ever (a CI run hung at 17 % this way).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import SERVERS, make_database


def test_a_database_with_a_connection_left_in_a_transaction_is_dropped(
        backend: str, tmp_path: Path) -> None:
    if backend == "sqlite":
        pytest.skip("a SQLite file has no server to wait on")
    url, drop = make_database(backend, tmp_path, migrated=True)
    name = url.rsplit("/", 1)[1].split("?")[0]
    engine = create_engine(url)
    left_open = engine.connect()  # as a careless test would leave it
    left_open.execute(text("SELECT COUNT(*) FROM FACILITY")).scalar_one()
    assert left_open.in_transaction()

    dropped = threading.Thread(target=drop, daemon=True)  # type: ignore[arg-type]
    dropped.start()
    dropped.join(30)
    assert not dropped.is_alive(), "DROP DATABASE waited on the open transaction"

    admin = create_engine(SERVERS[backend])
    with admin.connect() as conn:
        if backend == "postgresql":
            found = conn.execute(text("SELECT datname FROM pg_database WHERE datname = :n"),
                                 {"n": name}).all()
        else:
            found = conn.execute(text("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA "
                                      "WHERE SCHEMA_NAME = :n"), {"n": name}).all()
    admin.dispose()
    assert found == []
    left_open.invalidate()
    engine.dispose()
