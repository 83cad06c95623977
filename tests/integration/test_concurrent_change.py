"""A write the database stops to break a deadlock (or to keep transactions serializable) runs
again, and a client sees an error only when it keeps being stopped.

InnoDB picks a victim of every deadlock, and ordinary concurrent writes deadlock there (a
clean-clone CI once lost a DOI's new version to one: 500 "Unexpected DB response"). Here: a
real deadlock between a client's write and another transaction on PostgreSQL and MariaDB, and
on every backend a unit stopped after it had inserted rows (the retry must not take the ids
the stopped attempt gave the new objects for existing rows).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, func, select, text, update
from sqlalchemy.exc import OperationalError

from cairn.catalogue import service as catalogue_service
from cairn.catalogue.objects import Obj
from cairn.catalogue.service import ATTEMPTS, Catalogue, ConcurrentChange
from cairn.catalogue.work import Work
from cairn.db import migrate
from cairn.db.engine import Database
from cairn.errors import ErrorType
from cairn.schema import SCHEMA
from cairn.startup import catalogue_of
from tests.integration.catalogue_objects import create

FACILITY = SCHEMA.entities["Facility"]


@pytest.fixture
def catalogue(migrated_url: str) -> Iterator[Catalogue]:
    db = Database(migrated_url)
    migrate.upgrade(db)
    db.detect_ids()
    yield catalogue_of(db)
    db.dispose()


def deadlock() -> OperationalError:
    return OperationalError("UPDATE ...", {}, Exception(
        "(1213, 'Deadlock found when trying to get lock; try restarting transaction')"))


def stopped_after(n: int, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Let the first ``n`` writes do their work and then be stopped as a deadlock victim."""
    calls: list[int] = []
    original: Callable[..., list[int]] = Work.write

    def write(self: Work, objs: list[Obj]) -> list[int]:
        calls.append(1)
        ids = original(self, objs)
        if len(calls) <= n:
            raise deadlock()
        return ids

    monkeypatch.setattr(Work, "write", write)
    return calls


def names(catalogue: Catalogue) -> list[str]:
    t = catalogue.db.tables["Facility"]
    with catalogue.db.read() as conn:
        return sorted(conn.execute(select(t.c.name)).scalars())


def test_a_stopped_write_runs_again_and_creates_each_object_once(
        catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = stopped_after(2, monkeypatch)
    monkeypatch.setattr(catalogue_service, "pause", lambda attempt: None)
    sid = catalogue.sessions.create("db/root")
    objs = [Obj(FACILITY, values={"name": n}) for n in ("a", "b")]
    ids = catalogue.write(sid, objs)
    assert len(calls) == 3
    assert names(catalogue) == ["a", "b"]
    t = catalogue.db.tables["Facility"]
    with catalogue.db.read() as conn:
        rows = {r[0]: r[1] for r in conn.execute(select(t.c.name, t.c.id))}
    assert rows == {"a": ids[0], "b": ids[1]}


def test_a_write_stopped_every_time_is_an_error_saying_so_and_leaves_nothing(
        catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = stopped_after(ATTEMPTS, monkeypatch)
    monkeypatch.setattr(catalogue_service, "pause", lambda attempt: None)
    sid = catalogue.sessions.create("db/root")
    with pytest.raises(ConcurrentChange) as e:
        catalogue.write(sid, [Obj(FACILITY, values={"name": "a"})])
    assert len(calls) == ATTEMPTS
    assert e.value.type is ErrorType.INTERNAL
    assert "concurrent" in e.value.message and "try again" in e.value.message
    assert names(catalogue) == []


def test_other_errors_are_not_run_again(catalogue: Catalogue,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    create(catalogue, "Facility", name="a")
    calls = stopped_after(0, monkeypatch)
    sid = catalogue.sessions.create("db/root")
    with pytest.raises(Exception) as e:
        catalogue.write(sid, [Obj(FACILITY, values={"name": "a"})])
    assert getattr(e.value, "type", None) is ErrorType.OBJECT_ALREADY_EXISTS
    assert len(calls) == 1


# -- a real deadlock ------------------------------------------------------------------------

def lock_waits(conn: Connection, dialect: str) -> int:
    """How many of this database's transactions wait for a row lock."""
    if dialect == "postgresql":
        n = int(conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()")).scalar_one())
        conn.rollback()  # the activity view is a snapshot per transaction
        return n
    # MariaDB 10.11's INNODB_TRX can leave a waiting transaction out; the engine's status names
    # every lock waited for, with its table
    status = conn.execute(text("SHOW ENGINE INNODB STATUS")).one()[2]
    name = conn.execute(text("SELECT DATABASE()")).scalar_one()
    conn.rollback()
    return sum(f"of table `{name}`.`FACILITY`" in line and "waiting" in line
               for line in status.splitlines())


def test_a_real_deadlock_victim_runs_again(catalogue: Catalogue, caplog: pytest.LogCaptureFixture,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    db = catalogue.db
    if db.dialect == "sqlite":
        pytest.skip("SQLite locks the whole database: its writers wait, they never deadlock")
    f1, f2 = (create(catalogue, "Facility", name=n) for n in ("f1", "f2"))
    # rows the other transaction changes first, so that InnoDB (which stops the transaction
    # that changed less) picks the client's write as the victim, as PostgreSQL does (the
    # first to wait checks for the deadlock first)
    ballast = [create(catalogue, "Facility", name=f"b{i}") for i in range(20)]
    t = db.tables["Facility"]
    sid = catalogue.sessions.create("db/root")
    result: dict[str, Any] = {}

    def client() -> None:
        try:  # f1, then f2, which the other transaction holds
            catalogue.write(sid, [Obj(FACILITY, id=f, values={"description": "client"})
                                  for f in (f1, f2)])
            result["ok"] = True
        except Exception as e:  # reported by the assertion below
            result["error"] = e

    if db.dialect == "postgresql":
        # PostgreSQL looks for a deadlock once, deadlock_timeout after a transaction starts
        # waiting: the client's look must come after the other transaction waits too, however
        # loaded the machine, and the other's never
        with db.engine.begin() as conn:
            name = conn.execute(text("SELECT current_database()")).scalar_one()
            conn.execute(text(f'ALTER DATABASE "{name}" SET deadlock_timeout = \'3s\''))
        db.engine.dispose()
    caplog.set_level(logging.INFO, logger="cairn.catalogue.service")
    # the client's pause before it runs again lasts until the other transaction has ended:
    # run again at once, it could take f1 back first and deadlock with it again
    ended = threading.Event()
    monkeypatch.setattr(catalogue_service, "pause", lambda attempt: ended.wait(30))
    with db.engine.connect() as other, db.engine.connect() as watch:
        with other.begin():
            if db.dialect == "postgresql":
                other.execute(text("SET LOCAL deadlock_timeout = '60s'"))
            for f in (*ballast, f2):
                other.execute(update(t).where(t.c.id == f).values(description="other"))
            thread = threading.Thread(target=client)
            thread.start()
            deadline = time.monotonic() + 60
            while lock_waits(watch, db.dialect) == 0:  # the client waits for f2
                assert thread.is_alive(), result
                assert time.monotonic() < deadline, "the client's write never waited"
                time.sleep(0.02)
            # f1, which the client holds: a deadlock, and the client's unit is stopped
            other.execute(update(t).where(t.c.id == f1).values(description="other"))
        ended.set()
        thread.join(30)
    assert not thread.is_alive()
    assert result == {"ok": True}
    assert any("running it again" in r.getMessage() for r in caplog.records)
    with db.read() as conn:
        got = {r[0]: r[1] for r in conn.execute(
            select(t.c.id, t.c.description).where(t.c.id.in_([f1, f2])))}
        assert got == {f1: "client", f2: "client"}
        assert conn.execute(select(func.count()).select_from(t)).scalar_one() == 22
