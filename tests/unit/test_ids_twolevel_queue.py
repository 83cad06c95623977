"""Two-level requests on the job system (merged by ids.server's transitions, write delays),
failure flags and dataset locks, on an SQLite catalogue."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from cairn.db.engine import Database
from cairn.ids.errors import ids_error
from cairn.ids.locks import DataBusy, LockManager
from cairn.ids.twolevel_queue import KIND, Failures, Op, StorageUnit, UnitQueue, UnitState
from cairn.jobs import Job, Kind, Scheduler, State
from cairn.jobs.model import utcnow
from tests.unit.ids_twolevel_fixtures import sqlite_database

W, WA, A, R, D = (UnitState.WRITE_REQUESTED, UnitState.WRITE_THEN_ARCHIVE_REQUESTED,
                  UnitState.ARCHIVE_REQUESTED, UnitState.RESTORE_REQUESTED,
                  UnitState.DELETE_REQUESTED)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database_ = sqlite_database(tmp_path)
    yield database_
    database_.dispose()


def queue(db: Database, owner: str = "p1", unit: StorageUnit = StorageUnit.DATASET,
          **kw: Any) -> UnitQueue:
    """The unit queue of one process (its own scheduler); jobs are claimed by hand."""
    jobs = Scheduler(db, owner=owner, poll_seconds=0.05,
                     stale_seconds=kw.pop("stale_seconds", 120.0))
    q = UnitQueue(jobs, unit, **kw)
    jobs.register(Kind(KIND, lambda ctx: None, merge=q.merge, max_attempts=None))
    return q


def claim(q: UnitQueue, limit: int = 10) -> list[Job]:
    jobs = q.scheduler
    return jobs.queue.claim(jobs.owner, jobs.registry.kinds, limit)


def lines(q: UnitQueue, *ids: int) -> dict[int, tuple[UnitState | None, UnitState | None]]:
    return {u: (line.waiting, line.running) for u, line in q.lines(ids).items()}


def waiting(q: UnitQueue, unit_id: int) -> Any:
    """The merged request waiting for a unit (payload, not_before, created)."""
    (line,) = q.scheduler.queue.lines(q.kind, [f"{q.unit}:{unit_id}"]).values()
    assert line.waiting is not None
    return line.waiting


def backdate(db: Database, **columns: timedelta) -> None:
    t = db.tables.job
    now = utcnow()
    with db.begin() as conn:
        conn.execute(update(t).where(t.c.kind == KIND)
                     .values(**{c: now - d for c, d in columns.items()}))


def test_requests_follow_the_state_machine_in_the_database(db: Database) -> None:
    q = queue(db)
    q.request(Op.ARCHIVE, {1: "1/1", 2: "1/2"})
    q.request(Op.WRITE, {1: None})
    q.request(Op.RESTORE, {2: None})
    assert lines(q, 1, 2, 3) == {1: (WA, None), 2: (R, None)}
    assert q.lines([1])[1].location == "1/1"  # kept when a later request knows no key
    q.request(Op.RESTORE, {1: None})  # WRITE_THEN_ARCHIVE + RESTORE: the write stays
    assert lines(q, 1) == {1: (W, None)}


def test_cancelled_requests_vanish(db: Database) -> None:
    q = queue(db, unit=StorageUnit.DATAFILE)
    q.request(Op.ARCHIVE, {7: "x"})
    q.request(Op.RESTORE, {7: "x"})
    assert q.all() == []
    assert claim(q) == []  # and the rows themselves go once looked at
    assert q.scheduler.queue.find(kind=KIND) == []


def test_write_delay_restarts_but_is_bounded(db: Database) -> None:
    q = queue(db, write_delay=100, write_delay_cap=3)
    q.request(Op.WRITE, {1: None})
    first = waiting(q, 1)
    assert first.not_before >= first.created + timedelta(seconds=100)
    assert claim(q) == []  # not yet
    # The first request was 250 s ago: another WRITE may push it to 300 s after it, no more.
    backdate(db, created=timedelta(seconds=250), not_before=timedelta(seconds=150))
    q.request(Op.WRITE, {1: None})
    w = waiting(q, 1)
    assert w.not_before == w.created + timedelta(seconds=300)
    # Once the cap has passed, new requests no longer postpone it.
    backdate(db, created=timedelta(seconds=400), not_before=timedelta(seconds=100))
    q.request(Op.WRITE, {1: None})
    assert waiting(q, 1).not_before <= utcnow()
    assert [j.payload["state"] for j in claim(q)] == [W]


def test_archive_on_a_pending_write_keeps_the_delay(db: Database) -> None:
    q = queue(db, write_delay=100)
    q.request(Op.WRITE, {1: None})
    before = waiting(q, 1).not_before
    q.request(Op.ARCHIVE, {1: None})
    w = waiting(q, 1)
    assert (w.payload["state"], w.not_before) == (WA, before)


def test_request_while_running_is_queued_behind_it(db: Database) -> None:
    q = queue(db, unit=StorageUnit.DATAFILE)
    q.request(Op.ARCHIVE, {1: "a"})
    [job] = claim(q)
    assert lines(q, 1) == {1: (None, A)}
    # ARCHIVE + RESTORE cancels a *queued* archive; a running one must be followed by it.
    q.request(Op.RESTORE, {1: "a"})
    assert lines(q, 1) == {1: (R, A)}
    assert claim(queue(db, "p2", unit=StorageUnit.DATAFILE)) == []  # one at a time
    assert q.scheduler.queue.finish(job, State.DONE)
    assert lines(q, 1) == {1: (R, None)}


def test_a_write_then_archive_goes_on_as_an_archive(db: Database) -> None:
    q = queue(db)
    q.request(Op.ARCHIVE, {1: None})
    q.request(Op.WRITE, {1: None})
    [job] = claim(q)
    assert job.payload["state"] == WA
    q.scheduler.queue.requeue(job, after=0, payload={**job.payload, "state": A})
    assert lines(q, 1) == {1: (A, None)}
    [job] = claim(q)
    assert job.payload["state"] == A


def test_a_job_put_back_goes_in_front_of_what_came_meanwhile(db: Database) -> None:
    q = queue(db)
    q.request(Op.WRITE, {1: None})
    [job] = claim(q)
    q.request(Op.ARCHIVE, {1: None})  # arrives while the write runs (or waits for its lock)
    q.scheduler.queue.requeue(job, after=60, failed="archive unreachable")
    assert lines(q, 1) == {1: (WA, None)}
    assert waiting(q, 1).not_before >= utcnow() + timedelta(seconds=50)  # retried later
    assert claim(q) == []


def test_stale_claims_of_dead_processes_return_to_the_queue(db: Database) -> None:
    dead = queue(db, "dead", stale_seconds=30)
    dead.request(Op.RESTORE, {1: None, 2: None})
    claimed = claim(dead, 1)
    assert len(claimed) == 1
    alive = queue(db, "alive", stale_seconds=30)
    assert [j.payload["id"] for j in claim(alive)] == [2]  # the claimed one is taken
    unit_id = claimed[0].payload["id"]
    dead.request(Op.ARCHIVE, {unit_id: None})  # queued behind the running restore
    t = db.tables.job
    with db.begin() as conn:
        conn.execute(update(t).where(t.c.id == claimed[0].id)
                     .values(heartbeat=utcnow() - timedelta(seconds=60)))
    assert alive.scheduler.queue.recover_stale(30) == 1
    [job] = claim(alive)
    assert job.payload["id"] == unit_id
    # The dead process's RESTORE went back in front of the ARCHIVE queued meanwhile.
    assert job.payload["state"] == A  # DATASET: RESTORE then ARCHIVE -> ARCHIVE
    assert not dead.scheduler.queue.finish(claimed[0], State.DONE)  # too late
    assert job.claimed_by == "alive"


def test_every_unit_has_its_line(db: Database) -> None:
    q = queue(db)
    q.request(Op.RESTORE, {i: None for i in range(20)})
    assert sorted(line.unit_id for line in q.all()) == list(range(20))
    assert [line.unit_id for line in q.all()] == list(range(20))  # in request order
    assert queue(db, unit=StorageUnit.DATAFILE).all() == []  # per unit type


def test_failure_flags(db: Database) -> None:
    f = Failures(db, StorageUnit.DATASET)
    f.set(1, "bad zip")
    f.set(1, "worse zip")  # replaced, not duplicated
    f.set(2, "x" * 5000)
    assert f.of([1, 3]) == {1: "worse zip"}
    assert f.all() == [1, 2]
    assert Failures(db, StorageUnit.DATAFILE).all() == []  # per unit type
    f.clear([1, 2])
    assert f.all() == []


def test_locks_shared_and_exclusive(db: Database) -> None:
    a, b = LockManager(db, "a"), LockManager(db, "b")
    with a.lock([1, 2], shared=True), b.lock([2, 3], shared=True):
        with pytest.raises(DataBusy) as e:
            b.acquire([3, 2], shared=False)
        assert ids_error(e.value) == (503, "DataNotOnlineException")
        assert e.value.message == "Data is busy"
        b.release(b.acquire([4], shared=False))
        assert {(x["id"], x["type"], x["count"]) for x in a.summary()} == {
            (1, "SHARED", 1), (2, "SHARED", 2), (3, "SHARED", 1)}
    with a.lock([2], shared=False):
        with pytest.raises(DataBusy):
            b.acquire([2], shared=True)
        with pytest.raises(DataBusy):
            a.acquire([2], shared=False)  # not re-entrant, like ids.server's
        assert a.summary() == [{"id": 2, "type": "EXCLUSIVE", "count": 1}]
    assert a.summary() == []
    assert not a.held([1, 2, 3])
    with a.lock([], shared=False):
        pass


def test_locks_of_dead_processes_expire(db: Database) -> None:
    dead = LockManager(db, "dead", stale_seconds=30)
    dead.acquire([5], shared=False)
    alive = LockManager(db, "alive", stale_seconds=30)
    with pytest.raises(DataBusy):
        alive.acquire([5], shared=True)
    t = db.tables.ids_lock
    with db.begin() as conn:
        conn.execute(update(t).values(heartbeat=utcnow() - timedelta(seconds=60)))
    alive.release(alive.acquire([5], shared=False))
    alive.heartbeat()  # purges the dead rows
    with db.connect() as conn:
        assert conn.execute(select(t)).all() == []


def test_lock_exclusion_under_contention(db: Database) -> None:
    """Threads of two "processes" hammer one dataset: an exclusive holder is always alone."""
    managers = [LockManager(db, "a"), LockManager(db, "b")]
    state = {"shared": 0, "exclusive": 0, "violations": 0, "acquired": 0}
    guard = threading.Lock()

    def worker(i: int) -> None:
        m = managers[i % 2]
        for n in range(15):
            shared = (n + i) % 3 != 0
            try:
                holder = m.acquire([9], shared)
            except DataBusy:
                continue
            with guard:
                state["acquired"] += 1
                if state["exclusive"] or (not shared and state["shared"]):
                    state["violations"] += 1
                state["shared" if shared else "exclusive"] += 1
            with guard:
                state["shared" if shared else "exclusive"] -= 1
            m.release(holder)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert state["violations"] == 0
    assert state["acquired"] > 0
