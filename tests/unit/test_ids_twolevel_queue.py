"""The persisted job queue, failure flags and dataset locks on an SQLite catalogue."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from cairn.db.engine import Database
from cairn.ids.errors import ids_error
from cairn.ids.jobs import Failures, JobQueue, Op, State, Unit, utcnow
from cairn.ids.locks import DataBusy, LockManager
from tests.unit.ids_twolevel_fixtures import sqlite_database

W, WA, A, R, D = (State.WRITE_REQUESTED, State.WRITE_THEN_ARCHIVE_REQUESTED,
                  State.ARCHIVE_REQUESTED, State.RESTORE_REQUESTED, State.DELETE_REQUESTED)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database_ = sqlite_database(tmp_path)
    yield database_
    database_.dispose()


def queue(db: Database, owner: str = "p1", unit: Unit = Unit.DATASET,
          **kw: float) -> JobQueue:
    return JobQueue(db, unit, owner, **kw)


def backdate(db: Database, unit_id: int, **columns: timedelta) -> None:
    t = db.tables.ids_job
    now = utcnow()
    with db.begin() as conn:
        conn.execute(update(t).where(t.c.unit_id == unit_id)
                     .values(**{c: now - d for c, d in columns.items()}))


def test_requests_follow_the_state_machine_in_the_database(db: Database) -> None:
    q = queue(db)
    q.request(Op.ARCHIVE, {1: "1/1", 2: "1/2"})
    q.request(Op.WRITE, {1: None})
    q.request(Op.RESTORE, {2: None})
    jobs = q.jobs([1, 2, 3])
    assert (jobs[1].state, jobs[2].state) == (WA, R)
    assert 3 not in jobs
    assert jobs[1].location == "1/1"  # kept when a later request knows no key
    q.request(Op.RESTORE, {1: None})  # WRITE_THEN_ARCHIVE + RESTORE: the write stays
    assert q.jobs([1])[1].state == W


def test_cancelled_request_removes_the_row(db: Database) -> None:
    q = queue(db, unit=Unit.DATAFILE)
    q.request(Op.ARCHIVE, {7: "x"})
    q.request(Op.RESTORE, {7: "x"})
    assert q.all() == []


def test_write_delay_restarts_but_is_bounded(db: Database) -> None:
    q = queue(db, write_delay=100, write_delay_cap=3)
    q.request(Op.WRITE, {1: None})
    first = q.jobs([1])[1]
    assert first.not_before >= first.created + timedelta(seconds=100)
    assert q.claim(10) == []  # not yet
    # The first request was 250 s ago: another WRITE may push it to 300 s after it, no more.
    backdate(db, 1, created=timedelta(seconds=250), not_before=timedelta(seconds=150))
    q.request(Op.WRITE, {1: None})
    job = q.jobs([1])[1]
    assert job.not_before == job.created + timedelta(seconds=300)
    # Once the cap has passed, new requests no longer postpone it.
    backdate(db, 1, created=timedelta(seconds=400), not_before=timedelta(seconds=100))
    q.request(Op.WRITE, {1: None})
    assert q.jobs([1])[1].not_before <= utcnow()
    assert [j.running for j in q.claim(10)] == [W]


def test_archive_on_a_pending_write_keeps_the_delay(db: Database) -> None:
    q = queue(db, write_delay=100)
    q.request(Op.WRITE, {1: None})
    before = q.jobs([1])[1].not_before
    q.request(Op.ARCHIVE, {1: None})
    job = q.jobs([1])[1]
    assert (job.state, job.not_before) == (WA, before)


def test_a_job_is_claimed_once(db: Database) -> None:
    q1, q2 = queue(db, "p1"), queue(db, "p2")
    q1.request(Op.RESTORE, {i: None for i in range(20)})
    results: dict[str, list[int]] = {}

    def claim(q: JobQueue) -> None:
        results[q.owner] = [j.unit_id for j in q.claim(100)]

    threads = [threading.Thread(target=claim, args=(q,)) for q in (q1, q2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = results["p1"] + results["p2"]
    assert sorted(claimed) == list(range(20))  # each exactly once
    assert queue(db, "p3").claim(100) == []


def test_request_while_running_is_queued_behind_it(db: Database) -> None:
    q = queue(db, unit=Unit.DATAFILE)
    q.request(Op.ARCHIVE, {1: "a"})
    [job] = q.claim(10)
    assert (job.running, job.state) == (A, None)
    # ARCHIVE + RESTORE cancels a *queued* archive; a running one must be followed by it.
    q.request(Op.RESTORE, {1: "a"})
    row = q.jobs([1])[1]
    assert (row.running, row.state, row.claimed_by) == (A, R, "p1")
    assert queue(db, "p2", unit=Unit.DATAFILE).claim(10) == []  # still claimed
    q.finish(job)
    row = q.jobs([1])[1]
    assert (row.running, row.state, row.claimed_by) == (None, R, None)


def test_finish_removes_the_row_or_requests_what_follows(db: Database) -> None:
    q = queue(db)
    q.request(Op.ARCHIVE, {1: None})
    q.request(Op.WRITE, {1: None})
    [job] = q.claim(10)
    assert job.running == WA
    q.finish(job, then=Op.ARCHIVE)
    assert q.jobs([1])[1].state == A
    [job] = q.claim(10)
    q.finish(job)
    assert q.all() == []


def test_release_puts_the_running_job_back_in_front(db: Database) -> None:
    q = queue(db)
    q.request(Op.WRITE, {1: None})
    [job] = q.claim(10)
    q.request(Op.ARCHIVE, {1: None})  # arrives while the write runs (or waits for its lock)
    q.release(job, retry_after=60)
    row = q.jobs([1])[1]
    assert (row.state, row.running, row.claimed_by) == (WA, None, None)
    assert row.not_before >= utcnow() + timedelta(seconds=50)  # retried later
    assert q.claim(10) == []


def test_stale_claims_of_dead_processes_return_to_the_queue(db: Database) -> None:
    dead = queue(db, "dead", stale_seconds=30)
    dead.request(Op.RESTORE, {1: None, 2: None})
    claimed = dead.claim(1)
    assert len(claimed) == 1
    alive = queue(db, "alive", stale_seconds=30)
    assert [j.unit_id for j in alive.claim(10)] == [2]  # the claimed one is taken
    dead.request(Op.ARCHIVE, {claimed[0].unit_id: None})  # queued behind the running restore
    backdate(db, claimed[0].unit_id, claimed_at=timedelta(seconds=60))
    [job] = alive.claim(10)
    assert job.unit_id == claimed[0].unit_id
    # The dead process's RESTORE went back in front of the ARCHIVE queued meanwhile.
    assert job.running == A  # DATASET: RESTORE then ARCHIVE -> ARCHIVE
    dead.finish(claimed[0])  # a late finish from a claim that was lost changes nothing
    assert alive.jobs([job.unit_id])[job.unit_id].claimed_by == "alive"


def test_heartbeat_keeps_claims_fresh(db: Database) -> None:
    q = queue(db, "p1", stale_seconds=30)
    q.request(Op.RESTORE, {1: None, 2: None})
    running, leaked = q.claim(2)
    backdate(db, 1, claimed_at=timedelta(seconds=60))
    backdate(db, 2, claimed_at=timedelta(seconds=60))
    q.heartbeat([running.id])
    other = queue(db, "p2", stale_seconds=30)
    assert other.recover_stale() == 1  # the claim nothing runs any more
    assert [j.unit_id for j in other.claim(10)] == [leaked.unit_id]


def test_failure_flags(db: Database) -> None:
    f = Failures(db, Unit.DATASET)
    f.set(1, "bad zip")
    f.set(1, "worse zip")  # replaced, not duplicated
    f.set(2, "x" * 5000)
    assert f.of([1, 3]) == {1: "worse zip"}
    assert f.all() == [1, 2]
    assert Failures(db, Unit.DATAFILE).all() == []  # per unit type
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
