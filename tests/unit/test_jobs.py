"""The durable job system on an SQLite catalogue: requests, claims, outcomes, merging by key,
stale claims, cancel and retry, periodic tasks, and the scheduler's own thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from cairn.db.engine import Database
from cairn.jobs import (
    Again,
    Cancelled,
    Failed,
    JobContext,
    JobQueue,
    Kind,
    Pending,
    Periodic,
    Scheduler,
    State,
)
from cairn.jobs.model import utcnow
from tests.unit.ids_twolevel_fixtures import sqlite_database, wait_for


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database_ = sqlite_database(tmp_path)
    yield database_
    database_.dispose()


class Recorder:
    """A handler that records what it ran, and answers what the test tells it to."""

    def __init__(self) -> None:
        self.ran: list[tuple[int, dict[str, Any]]] = []
        self.answers: list[Any] = []

    def __call__(self, ctx: JobContext) -> Again | None:
        self.ran.append((ctx.job.id, dict(ctx.payload)))
        answer = self.answers.pop(0) if self.answers else None
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[no-any-return]


def scheduler(db: Database, *kinds: Kind | Periodic, owner: str = "p1",
              **options: Any) -> Scheduler:
    s = Scheduler(db, owner=owner, poll_seconds=options.pop("poll_seconds", 0.05),
                  stale_seconds=options.pop("stale_seconds", 5.0), **options)
    s.register(*kinds)
    return s


def submit(s: Scheduler, kind: str, payload: dict[str, Any] | None = None,
           **options: Any) -> int:
    return s.submit(kind, payload or {}, **options)


def job_state(db: Database, job_id: int) -> State | None:
    job = JobQueue(db).get(job_id)
    return None if job is None else job.state


def backdate(db: Database, job_id: int, **columns: timedelta) -> None:
    t = db.tables.job
    with db.begin() as conn:
        conn.execute(update(t).where(t.c.id == job_id)
                     .values(**{c: utcnow() - d for c, d in columns.items()}))


# -- requests and outcomes ----------------------------------------------------------------


def test_a_request_exists_only_if_its_transaction_commits(db: Database) -> None:
    rec = Recorder()
    s = scheduler(db, Kind("t.work", rec))

    class Boom(Exception):
        pass

    with pytest.raises(Boom), db.begin() as conn:
        s.enqueue(conn, "t.work", {"n": 1})
        raise Boom
    assert s.run_pending() == 0
    with db.begin() as conn:
        job_id = s.enqueue(conn, "t.work", {"n": 2})
    assert s.run_pending() == 1
    assert rec.ran == [(job_id, {"n": 2})]
    job = JobQueue(db).get(job_id)
    assert job is not None and job.state is State.DONE and job.finished is not None


def test_unknown_kinds_are_refused_and_foreign_kinds_left_alone(db: Database) -> None:
    s = scheduler(db, Kind("t.mine", Recorder()))
    with pytest.raises(ValueError, match="unknown job kind"):
        submit(s, "t.other")
    with db.begin() as conn:  # another process's kind
        foreign = JobQueue(db).enqueue(conn, "t.other", {})
    assert s.run_pending() == 0
    assert job_state(db, foreign) is State.QUEUED


def test_a_job_is_claimed_once_whoever_asks(db: Database) -> None:
    kinds = {"t.work": Kind("t.work", Recorder())}
    queue = JobQueue(db)
    with db.begin() as conn:
        ids = [queue.enqueue(conn, "t.work", {"n": i}) for i in range(20)]
    first = queue.claim("a", kinds, 7)
    second = queue.claim("b", kinds, 100)
    assert len(first) == 7 and len(second) == 13
    assert sorted(j.id for j in first + second) == ids
    assert {j.claimed_by for j in first} == {"a"} and queue.claim("c", kinds, 10) == []


def test_claims_in_threads_take_every_job_exactly_once(db: Database) -> None:
    kinds = {"t.work": Kind("t.work", Recorder())}
    queue = JobQueue(db)
    with db.begin() as conn:
        for i in range(200):
            queue.enqueue(conn, "t.work", {"n": i})
    taken: list[int] = []
    guard = threading.Lock()

    def worker(name: str) -> None:
        while jobs := JobQueue(db).claim(name, kinds, 5):
            with guard:
                taken.extend(j.id for j in jobs)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken) == 200 and len(set(taken)) == 200


def test_priority_then_time_then_order(db: Database) -> None:
    rec = Recorder()
    s = scheduler(db, Kind("t.work", rec))
    late = submit(s, "t.work", {"n": "late"}, delay=3600)
    a = submit(s, "t.work", {"n": "a"})
    b = submit(s, "t.work", {"n": "b"}, priority=-5)
    c = submit(s, "t.work", {"n": "c"})
    assert s.run_pending() == 3
    assert [i for i, _ in rec.ran] == [b, a, c]
    assert job_state(db, late) is State.QUEUED


def test_failures_are_retried_with_backoff_then_fail_for_good(db: Database) -> None:
    rec = Recorder()
    rec.answers = [RuntimeError("disk full"), RuntimeError("disk still full")]
    s = scheduler(db, Kind("t.work", rec, max_attempts=2, retry_delay=lambda n: 600 * n))
    job_id = submit(s, "t.work")
    assert s.run_pending() == 1
    job = JobQueue(db).get(job_id)
    assert job is not None and job.state is State.QUEUED and job.attempts == 1
    assert job.error == "RuntimeError: disk full"
    assert job.not_before >= utcnow() + timedelta(seconds=590)
    assert s.run_pending() == 0  # backing off
    backdate(db, job_id, not_before=timedelta(seconds=1))
    assert s.run_pending() == 1
    job = JobQueue(db).get(job_id)
    assert job is not None and job.state is State.FAILED and job.attempts == 2
    assert job.error == "RuntimeError: disk still full"
    assert s.run_pending() == 0


def test_failed_fails_at_once(db: Database) -> None:
    rec = Recorder()
    rec.answers = [Failed("the archive copy is corrupt")]
    s = scheduler(db, Kind("t.work", rec, max_attempts=None))
    job_id = submit(s, "t.work")
    s.run_pending()
    job = JobQueue(db).get(job_id)
    assert job is not None and job.state is State.FAILED
    assert job.error == "the archive copy is corrupt"


def test_again_runs_later_with_its_new_payload_and_counts_no_attempt(db: Database) -> None:
    rec = Recorder()
    rec.answers = [Again(payload={"step": 2}), Again(after=3600, error="busy")]
    s = scheduler(db, Kind("t.work", rec, max_attempts=1))
    job_id = submit(s, "t.work", {"step": 1})
    assert s.run_pending() == 1 and s.run_pending() == 1
    assert [p for _, p in rec.ran] == [{"step": 1}, {"step": 2}]
    job = JobQueue(db).get(job_id)
    assert job is not None and job.state is State.QUEUED and job.attempts == 0
    assert job.error == "busy" and job.not_before > utcnow() + timedelta(seconds=3000)


def test_progress_is_recorded(db: Database) -> None:
    def handler(ctx: JobContext) -> None:
        ctx.progress(40, 100)

    s = scheduler(db, Kind("t.work", handler))
    job_id = submit(s, "t.work")
    s.run_pending()
    job = JobQueue(db).get(job_id)
    assert job is not None and (job.progress, job.progress_total) == (40, 100)


# -- keys -----------------------------------------------------------------------------------


def test_requests_with_one_key_merge_into_the_oldest(db: Database) -> None:
    rec = Recorder()
    s = scheduler(db, Kind("t.work", rec))
    first = submit(s, "t.work", {"n": 1}, key="ds:1")
    submit(s, "t.work", {"n": 2}, key="ds:1", priority=-1)
    other = submit(s, "t.work", {"n": 3}, key="ds:2")
    assert s.run_pending() == 2
    assert sorted(rec.ran, key=lambda r: r[0]) == [(first, {"n": 1}), (other, {"n": 3})]
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(db.tables.job)).scalar() == 2


def test_a_merge_sees_requests_in_order_and_may_cancel_them(db: Database) -> None:
    def merge(first: Pending, then: Pending) -> Pending | None:
        total = first.payload["n"] + then.payload["n"]
        return None if total == 0 else Pending({"n": total}, first.not_before,
                                               first.priority, first.created)

    rec = Recorder()
    s = scheduler(db, Kind("t.sum", rec, merge=merge))
    for n in (5, -5, 2, 3):
        submit(s, "t.sum", {"n": n}, key="k")
    line = JobQueue(db).lines(s.registry.kinds["t.sum"], ["k"])["k"]
    assert line.waiting is not None and line.waiting.payload == {"n": 5}
    assert line.running is None
    assert s.run_pending() == 1
    assert [p for _, p in rec.ran] == [{"n": 5}]
    for n in (4, -4):
        submit(s, "t.sum", {"n": n}, key="k")
    assert JobQueue(db).lines(s.registry.kinds["t.sum"], ["k"]) == {}
    assert s.run_pending() == 0
    assert [j.state for j in JobQueue(db).find()] == [State.DONE]  # the cancelled went


def test_a_key_never_runs_twice_at_once(db: Database) -> None:
    rec = Recorder()
    kinds = {"t.work": Kind("t.work", rec)}
    s = scheduler(db, *kinds.values())
    submit(s, "t.work", {"n": 1}, key="k")
    queue = JobQueue(db)
    (running,) = queue.claim("a", kinds, 10)
    second = submit(s, "t.work", {"n": 2}, key="k")
    assert queue.claim("b", kinds, 10) == []  # its key is busy
    queue.finish(running, State.DONE)
    (taken,) = queue.claim("b", kinds, 10)
    assert taken.id == second and taken.payload == {"n": 2}


def test_a_job_put_back_goes_in_front_of_later_requests(db: Database) -> None:
    order: list[Pending] = []

    def merge(first: Pending, then: Pending) -> Pending:
        order.append(first)
        return Pending({"seq": first.payload["seq"] + then.payload["seq"]}, first.not_before,
                       first.priority, first.created)

    kinds = {"t.seq": Kind("t.seq", Recorder(), merge=merge)}
    s = scheduler(db, *kinds.values())
    submit(s, "t.seq", {"seq": ["a"]}, key="k")
    queue = JobQueue(db)
    (running,) = queue.claim("p", kinds, 1)
    submit(s, "t.seq", {"seq": ["b"]}, key="k")
    queue.requeue(running, after=0)
    (again,) = queue.claim("p", kinds, 1)
    assert again.id == running.id and again.payload == {"seq": ["a", "b"]}


# -- dead processes, cancel, retry, purge ----------------------------------------------------


def test_a_claim_without_heartbeat_is_recovered(db: Database) -> None:
    kinds = {"t.work": Kind("t.work", Recorder(), max_attempts=2)}
    queue = JobQueue(db)
    with db.begin() as conn:
        job_id = queue.enqueue(conn, "t.work", {}, max_attempts=2)
    (claimed,) = queue.claim("dead", kinds, 1)
    assert queue.recover_stale(60) == 0  # fresh
    assert queue.heartbeat({claimed.claim or "": (3, 10)}) == {claimed.claim: False}
    backdate(db, job_id, heartbeat=timedelta(seconds=300))
    assert queue.recover_stale(60) == 1
    job = queue.get(job_id)
    assert job is not None and job.state is State.QUEUED and job.attempts == 1
    assert job.error is not None and "(dead) stopped" in job.error
    # The dead process's outcome comes too late: its claim is gone.
    assert not queue.finish(claimed, State.DONE)
    (second,) = queue.claim("other", kinds, 1)
    backdate(db, job_id, heartbeat=timedelta(seconds=300))
    assert queue.recover_stale(60) == 1
    job = queue.get(job_id)
    assert job is not None and job.state is State.FAILED and job.attempts == 2
    assert second.claim != claimed.claim


def test_cancel_a_queued_job(db: Database) -> None:
    s = scheduler(db, Kind("t.work", Recorder()))
    job_id = submit(s, "t.work")
    assert s.queue.cancel(job_id).state is State.CANCELLED
    assert s.run_pending() == 0
    with pytest.raises(ValueError, match="already cancelled"):
        s.queue.cancel(job_id)
    with pytest.raises(LookupError):
        s.queue.cancel(job_id + 100)


def test_cancel_a_running_job_is_seen_by_its_handler(db: Database) -> None:
    started, proceed = threading.Event(), threading.Event()

    def handler(ctx: JobContext) -> None:
        started.set()
        proceed.wait(30)
        ctx.check_cancelled()

    s = scheduler(db, Kind("t.work", handler))
    s.start()
    try:
        job_id = submit(s, "t.work")
        assert started.wait(30)
        assert s.queue.cancel(job_id).cancel
        wait_for(lambda: all(c.cancelled for c in list(s._running.values())) and
                 bool(s._running), "the scheduler to see the cancel")
        proceed.set()
        wait_for(lambda: job_state(db, job_id) is State.CANCELLED, "the job to end cancelled")
    finally:
        proceed.set()
        s.stop()


def test_retry_queues_a_failed_job_afresh(db: Database) -> None:
    rec = Recorder()
    rec.answers = [RuntimeError("no")]
    s = scheduler(db, Kind("t.work", rec, max_attempts=1))
    job_id = submit(s, "t.work")
    s.run_pending()
    assert job_state(db, job_id) is State.FAILED
    with pytest.raises(ValueError, match="only failed or cancelled"):
        s.queue.retry(submit(s, "t.work"))
    job = s.queue.retry(job_id)
    assert job.state is State.QUEUED and job.attempts == 0
    s.run_pending()
    assert job_state(db, job_id) is State.DONE


def test_purge_keeps_recent_and_unfinished_jobs(db: Database) -> None:
    rec = Recorder()
    rec.answers = [None, RuntimeError("x")]
    s = scheduler(db, Kind("t.work", rec, max_attempts=1), keep_finished_hours=1,
                  keep_failed_days=1)
    done, failed = submit(s, "t.work"), submit(s, "t.work")
    s.run_pending()
    waiting = submit(s, "t.work", delay=3600)
    assert s.purge() == 0
    backdate(db, done, finished=timedelta(hours=2))
    backdate(db, failed, finished=timedelta(hours=2))
    assert s.purge() == 1
    assert job_state(db, done) is None and job_state(db, failed) is State.FAILED
    backdate(db, failed, finished=timedelta(days=2))
    assert s.purge() == 1
    assert job_state(db, waiting) is State.QUEUED


# -- periodic tasks and the scheduler's thread -------------------------------------------------


def test_periodic_tasks_queue_themselves_again(db: Database) -> None:
    runs: list[str] = []
    s = scheduler(db, Periodic("t.tick", 600, lambda: runs.append("tick")))
    s.queue.ensure_periodic("t.tick", 600)
    s.queue.ensure_periodic("t.tick", 600)  # a second process starting: still one
    assert s.run_pending() == 1 and runs == ["tick"]
    (job,) = s.queue.find(kind="t.tick")
    assert job.state is State.QUEUED and job.not_before >= utcnow() + timedelta(seconds=590)
    assert s.run_pending() == 0
    s.queue.ensure_periodic("t.tick", 60)  # configured sooner: brought forward
    (job,) = s.queue.find(kind="t.tick")
    assert job.payload == {"every": 60} and job.not_before <= utcnow() + timedelta(seconds=60)


def test_a_failing_periodic_task_keeps_its_error_and_runs_again(db: Database) -> None:
    failing = [True]

    def tick() -> None:
        if failing[0]:
            raise OSError("storage unreachable")

    s = scheduler(db, Periodic("t.tick", 600, tick))
    s.queue.ensure_periodic("t.tick", 600)
    s.run_pending()
    (job,) = s.queue.find(kind="t.tick")
    assert job.state is State.QUEUED and job.error == "OSError: storage unreachable"
    assert job.attempts == 0 and job.not_before > utcnow() + timedelta(seconds=590)
    failing[0] = False
    backdate(db, job.id, not_before=timedelta(seconds=1))
    s.run_pending()
    (job,) = s.queue.find(kind="t.tick")
    assert job.state is State.QUEUED and job.error is None  # a good run clears it


def test_the_scheduler_runs_jobs_periodic_and_local_tasks(db: Database) -> None:
    ran = threading.Event()
    ticks: list[int] = []
    shared: list[int] = []
    s = scheduler(db, Kind("t.work", lambda ctx: ran.set()),
                  Periodic("t.local", 0.05, lambda: ticks.append(1), local=True),
                  Periodic("t.shared", 3600, lambda: shared.append(1)))
    s.start()
    try:
        submit(s, "t.work")
        assert ran.wait(30)
        wait_for(lambda: len(ticks) >= 3, "the local task to run every poll")
        wait_for(lambda: shared == [1], "the shared periodic task to run once")
    finally:
        s.stop()


def test_stop_waits_for_running_jobs_and_leaves_queued_ones(db: Database) -> None:
    started, proceed = threading.Event(), threading.Event()

    def slow(ctx: JobContext) -> None:
        started.set()
        proceed.wait(30)

    s = scheduler(db, Kind("t.slow", slow), workers=1)
    s.start()
    first = submit(s, "t.slow")
    assert started.wait(30)
    second = submit(s, "t.slow")
    stopper = threading.Thread(target=s.stop)
    stopper.start()
    stopper.join(0.3)
    assert stopper.is_alive()  # still waiting for the running job
    proceed.set()
    stopper.join(30)
    assert not stopper.is_alive()
    assert job_state(db, first) is State.DONE and job_state(db, second) is State.QUEUED


def test_handlers_may_raise_cancelled_themselves(db: Database) -> None:
    rec = Recorder()
    rec.answers = [Cancelled("gave up")]
    s = scheduler(db, Kind("t.work", rec))
    job_id = submit(s, "t.work")
    s.run_pending()
    assert job_state(db, job_id) is State.CANCELLED


def test_settings_refuse_a_stale_timeout_shorter_than_three_polls(db: Database) -> None:
    with pytest.raises(ValueError, match="three poll intervals"):
        Scheduler(db, poll_seconds=10, stale_seconds=20)
