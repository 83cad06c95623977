"""One scheduler per process: claims due jobs of the kinds this process knows, runs them on a
small pool of threads, keeps their claims alive, and runs the periodic tasks.

Built with the server (``cairn.startup``) and started by its lifespan. Every
``poll_interval_seconds`` (at once when this process queued work) its thread refreshes the
heartbeats of running jobs (and sees cancel requests), runs the process-local periodic tasks
that are due, returns the jobs of dead processes to the queue, and claims as many due jobs
as there are idle workers. Stopping waits for running jobs, still heartbeating them; queued
jobs stay in the database for any process to take.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from sqlalchemy import Connection

from cairn.db.engine import Database
from cairn.jobs.kinds import JobContext, Kind, Periodic, Registry
from cairn.jobs.model import Again, Cancelled, Failed, Job, Payload, State, utcnow
from cairn.jobs.queue import JobQueue

log = logging.getLogger(__name__)

#: The periodic task that deletes old finished jobs.
PURGE = "jobs.purge"


def process_name() -> str:
    """This process among all that share the database: host, pid and a random part."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class Scheduler:
    def __init__(self, db: Database, *, workers: int = 4, poll_seconds: float = 1.0,
                 stale_seconds: float = 120.0, keep_finished_hours: float = 24.0,
                 keep_failed_days: float = 30.0, owner: str | None = None) -> None:
        if stale_seconds < 3 * poll_seconds:
            # A live but busy process must never look dead: its jobs would run twice.
            raise ValueError("stale_seconds must be at least three poll intervals")
        self.queue = JobQueue(db)
        self.registry = Registry()
        self.workers = max(1, workers)
        self.poll_seconds = poll_seconds
        self.stale_seconds = stale_seconds
        self.owner = owner or process_name()
        self.keep_finished = timedelta(hours=keep_finished_hours)
        self.keep_failed = timedelta(days=keep_failed_days)
        self.registry.add(Periodic(PURGE, 3600.0, self.purge))
        self._executor: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._guard = threading.Lock()
        self._running: dict[str, JobContext] = {}  # claim token -> its context
        self._local_due: dict[str, float] = {}

    # -- declaring and requesting -----------------------------------------------------------

    def register(self, *items: Kind | Periodic) -> None:
        self.registry.add(*items)

    def enqueue(self, conn: Connection, kind: str, payload: Payload, *,
                key: str | None = None, priority: int | None = None,
                not_before: datetime | None = None, delay: float = 0.0) -> int:
        """Request a job in the caller's transaction; call :meth:`wake` after the commit
        (the catalogue's unit of work does) for this process to start it at once."""
        k = self.registry.kinds.get(kind)
        if k is None:
            raise ValueError(f"unknown job kind {kind!r}")
        return self.queue.enqueue(conn, kind, payload, key=key,
                                  priority=k.priority if priority is None else priority,
                                  not_before=not_before, delay=delay,
                                  max_attempts=k.max_attempts)

    def submit(self, kind: str, payload: Payload, **options: object) -> int:
        """Request a job in a transaction of its own, and wake the scheduler."""
        with self.queue.db.begin() as conn:
            job_id = self.enqueue(conn, kind, payload, **options)  # type: ignore[arg-type]
        self.wake()
        return job_id

    def wake(self) -> None:
        """Look for work now rather than at the next poll."""
        self._wake.set()

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        for p in self.registry.periodic.values():
            if not p.local:
                self.queue.ensure_periodic(p.name, p.every)
        self._stop.clear()
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="cairn-job")
        self._thread = threading.Thread(target=self._loop, name="cairn-jobs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop claiming and wait for running jobs (heartbeating them meanwhile)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _loop(self) -> None:
        while True:
            stopping = self._stop.is_set()
            with self._guard:
                busy = bool(self._running)
            if stopping and not busy:
                break
            try:
                if stopping:  # no new work, but running jobs must not look abandoned
                    self._heartbeat()
                else:
                    self.tick()
            except Exception:
                log.exception("job scheduler tick failed; trying again")
            self._wake.wait(self.poll_seconds)
            self._wake.clear()

    # -- one round --------------------------------------------------------------------------

    def tick(self) -> None:
        """Heartbeats, local periodic tasks, stale claims, then claim and start due jobs."""
        self._heartbeat()
        self._run_local()
        self.queue.recover_stale(self.stale_seconds)
        executor = self._executor
        if executor is None:
            return
        with self._guard:
            free = self.workers - len(self._running)
        for job in self.queue.claim(self.owner, self.registry.kinds, free):
            ctx = JobContext(job)
            with self._guard:
                assert job.claim is not None
                self._running[job.claim] = ctx
            executor.submit(self._run, ctx)

    def run_pending(self, kinds: Iterable[str] | None = None) -> int:
        """Claim the jobs due now (of ``kinds``, default all) and run them in the calling
        thread; how many ran (tests and tools: the scheduler's thread does this itself)."""
        wanted = self.registry.kinds if kinds is None else \
            {k: self.registry.kinds[k] for k in kinds}
        jobs = self.queue.claim(self.owner, wanted, 1 << 16)
        for job in jobs:
            self.execute(JobContext(job))
        return len(jobs)

    def _heartbeat(self) -> None:
        with self._guard:
            running = dict(self._running)
        if not running:
            return
        held = self.queue.heartbeat({claim: ctx._progress for claim, ctx in running.items()})
        for claim, ctx in running.items():
            if held.get(claim):
                ctx._cancel.set()

    def _run_local(self) -> None:
        now = time.monotonic()
        for p in self.registry.periodic.values():
            if not p.local or self._local_due.get(p.name, 0.0) > now:
                continue
            self._local_due[p.name] = now + p.every
            try:
                p.run()
            except Exception:
                log.exception("periodic task %s failed; it runs again in %g s", p.name,
                              p.every)

    def _run(self, ctx: JobContext) -> None:
        ended = True
        try:
            ended = self.execute(ctx)
        except Exception:  # a database failure recording the outcome: stale recovery
            log.exception("job %s (%s): its outcome could not be recorded; it runs again "
                          "once its claim goes stale", ctx.job.id, ctx.job.kind)
        finally:
            with self._guard:
                self._running.pop(ctx.job.claim or "", None)
            if ended:  # a free worker, and perhaps follow-up work; a job that asked to run
                self._wake.set()  # again (a busy lock) waits for the next poll instead

    def execute(self, ctx: JobContext) -> bool:
        """Run one claimed job and record its outcome; False if it is to run again."""
        job = ctx.job
        kind = self.registry.kinds[job.kind]
        try:
            outcome = kind.handler(ctx)
        except Cancelled:
            log.info("job %s (%s) cancelled", job.id, job.kind)
            self.queue.finish(job, State.CANCELLED, progress=ctx._progress)
            return True
        except Failed as e:
            self.queue.finish(job, State.FAILED, error=e.message, progress=ctx._progress)
            return True
        except Exception as e:
            self._failed(kind, job, e)
            return True
        if isinstance(outcome, Again):
            self.queue.requeue(job, after=outcome.after, payload=outcome.payload,
                               note=outcome.error)
            return False
        self.queue.finish(job, State.DONE, progress=ctx._progress)
        return True

    def _failed(self, kind: Kind, job: Job, e: Exception) -> None:
        message = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
        failures = job.attempts + 1
        if job.max_attempts is not None and failures >= job.max_attempts:
            log.error("job %s (%s) failed for good after %d attempts: %s", job.id, job.kind,
                      failures, message, exc_info=e)
            self.queue.finish(job, State.FAILED, error=message)
            return
        delay = kind.retry_delay(failures)
        log.warning("job %s (%s) failed (attempt %d), retried in %g s: %s", job.id,
                    job.kind, failures, delay, message, exc_info=e)
        self.queue.requeue(job, after=delay, failed=message)

    # -- housekeeping -----------------------------------------------------------------------

    def purge(self) -> int:
        now = utcnow()
        n = self.queue.purge(now - self.keep_finished, now - self.keep_failed)
        if n:
            log.info("deleted %d finished jobs", n)
        return n
