"""The jobs table: requests, claims, outcomes; every change a compare-and-set.

A request is one INSERT, so it can join any transaction (the change that causes it) and never
conflicts with anything. Requests with a key are merged lazily: when one of them is due, the
claiming process folds all waiting requests of that key, in the order they were made, with
the kind's ``merge`` into the oldest row and deletes the others; a job put back to wait (run
again, retried, or left by a dead process) keeps its id and so stays in front of requests
that came after it. A key whose job is running is not claimed again until it is over.

Claims are compare-and-set (an UPDATE whose WHERE repeats the version read, checked by its
row count) plus ``FOR UPDATE SKIP LOCKED`` where the database has it, so two processes never
run one job, on SQLite, PostgreSQL and MariaDB alike. A running job carries its process's
heartbeat; a claim whose heartbeat stops belongs to a dead process and is recovered: the job
waits again (a failed attempt) or, out of attempts, fails.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, delete, exists, func, insert, select, update

from cairn.db.engine import Database
from cairn.jobs.kinds import Kind
from cairn.jobs.model import (
    Conflict,
    Job,
    Payload,
    Pending,
    State,
    chunks,
    retrying,
    seconds_later,
    utcnow,
)

log = logging.getLogger(__name__)

#: Longest error text kept with a job.
MAX_ERROR = 4000


def fold(kind: Kind, waiting: Iterable[Job]) -> Pending | None:
    """The one request that waiting requests of one key (oldest first) amount to."""
    out: Pending | None = None
    for job in waiting:
        out = job.pending() if out is None else kind.merge(out, job.pending())
    return out


@dataclass(frozen=True)
class Line:
    """The jobs of one key: what waits (merged) and what runs."""

    waiting: Pending | None
    running: Job | None
    #: The oldest of its jobs (orders lines as their requests were made).
    first: int


def _dumps(payload: Payload) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _error(text: str | None) -> str | None:
    return None if text is None else text[:MAX_ERROR]


class JobQueue:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.t: Table = db.tables.job
        # Made once: a fresh alias per claim was ~150 objects in reference cycles (its proxied
        # columns) left for the collector, at every poll of every scheduler.
        self._other = self.t.alias("other_job")

    # -- requests ---------------------------------------------------------------------------

    def enqueue(self, conn: Connection, kind: str, payload: Payload, *,
                key: str | None = None, priority: int = 0, not_before: datetime | None = None,
                delay: float = 0.0, max_attempts: int | None = 5) -> int:
        """Add a request in the caller's transaction (a rollback withdraws it)."""
        now = utcnow()
        when = not_before if not_before is not None else seconds_later(delay)
        result = conn.execute(insert(self.t).values(
            kind=kind, key=key, state=State.QUEUED, payload=_dumps(payload),
            priority=priority, not_before=when, created=now, attempts=0,
            max_attempts=max_attempts, cancel=False, version=0))
        key_values = result.inserted_primary_key
        assert key_values is not None
        return int(key_values[0])

    # -- reading ----------------------------------------------------------------------------

    def get(self, job_id: int) -> Job | None:
        with self.db.connect() as conn:
            row = conn.execute(select(self.t).where(self.t.c.id == job_id)).first()
        return None if row is None else Job.from_row(row)

    def find(self, *, states: Iterable[State] = (), kind: str | None = None,
             limit: int = 100, before: int | None = None) -> list[Job]:
        """Jobs newest first, optionally of some states and one kind, ids below ``before``."""
        t = self.t
        q = select(t).order_by(t.c.id.desc()).limit(limit)
        if states := list(states):
            q = q.where(t.c.state.in_(states))
        if kind is not None:
            q = q.where(t.c.kind == kind)
        if before is not None:
            q = q.where(t.c.id < before)
        with self.db.connect() as conn:
            return [Job.from_row(r) for r in conn.execute(q)]

    def counts(self) -> dict[tuple[str, State], int]:
        """Jobs per kind and state."""
        t = self.t
        with self.db.connect() as conn:
            rows = conn.execute(select(t.c.kind, t.c.state, func.count())
                                .group_by(t.c.kind, t.c.state)).all()
        return {(kind, State(state)): int(n) for kind, state, n in rows}

    def active(self, kind: str, keys: Iterable[str] | None) -> dict[str, list[Job]]:
        """Waiting and running jobs of these keys (None: of every key), oldest first; keys
        without any are absent."""
        t = self.t
        live = [t.c.kind == kind, t.c.state.in_([State.QUEUED, State.RUNNING])]
        wheres = [t.c.key.is_not(None)] if keys is None else \
            [t.c.key.in_(batch) for batch in chunks(sorted(set(keys)))]
        out: dict[str, list[Job]] = {}
        with self.db.connect() as conn:
            for where in wheres:
                for row in conn.execute(select(t).where(*live, where).order_by(t.c.id)):
                    out.setdefault(row.key, []).append(Job.from_row(row))
        return out

    def lines(self, kind: Kind, keys: Iterable[str] | None) -> dict[str, Line]:
        """What waits (merged as a claim would merge it) and runs, per key (None: every
        key of the kind)."""
        out = {}
        for key, jobs in self.active(kind.name, keys).items():
            running = next((j for j in jobs if j.state is State.RUNNING), None)
            waiting = fold(kind, (j for j in jobs if j.state is State.QUEUED))
            if waiting is not None or running is not None:
                out[key] = Line(waiting, running, jobs[0].id)
        return out

    # -- claiming ---------------------------------------------------------------------------

    def claim(self, owner: str, kinds: Mapping[str, Kind], limit: int) -> list[Job]:
        """Claim up to ``limit`` due jobs of these kinds for the process ``owner``."""
        if limit <= 0 or not kinds:
            return []
        return retrying(lambda: self._claim(owner, kinds, limit))

    def _claim(self, owner: str, kinds: Mapping[str, Kind], limit: int) -> list[Job]:
        t, now = self.t, utcnow()
        other = self._other
        key_busy = exists().where(other.c.state == State.RUNNING, other.c.kind == t.c.kind,
                                  other.c.key == t.c.key)
        q = (select(t).where(t.c.state == State.QUEUED, t.c.not_before <= now,
                             t.c.kind.in_(sorted(kinds)), ~key_busy)
             .order_by(t.c.priority, t.c.not_before, t.c.id).limit(limit))
        if self.db.dialect in ("postgresql", "mysql"):
            # Rows another process is claiming right now are skipped, not waited for.
            q = q.with_for_update(skip_locked=True)
        claimed: list[Job] = []
        settled: set[tuple[str, str]] = set()
        with self.db.begin() as conn:
            for row in conn.execute(q).all():
                job = Job.from_row(row)
                if job.key is not None:
                    if (job.kind, job.key) in settled:
                        continue
                    settled.add((job.kind, job.key))
                    got = self._settle(conn, kinds[job.kind], job.key, now)
                    if got is None:
                        continue
                    job, waiting = got
                    taken = self._take(conn, job, waiting, owner, now)
                else:
                    taken = self._take(conn, job, job.pending(), owner, now)
                if taken is not None:
                    claimed.append(taken)
        return claimed

    def _settle(self, conn: Connection, kind: Kind, key: str, now: datetime
                ) -> tuple[Job, Pending] | None:
        """Fold the waiting requests of ``key`` into its oldest; that job and the merged
        request if it is due now, else None (what is left waits, merged)."""
        t = self.t
        rows = conn.execute(select(t).where(
            t.c.kind == kind.name, t.c.key == key,
            t.c.state.in_([State.QUEUED, State.RUNNING])).order_by(t.c.id)).all()
        jobs = [Job.from_row(r) for r in rows]
        if not jobs or any(j.state is State.RUNNING for j in jobs):
            return None
        first, rest = jobs[0], jobs[1:]
        merged = fold(kind, jobs)
        if rest:
            ids = [j.id for j in rest]
            gone = conn.execute(delete(t).where(t.c.id.in_(ids), t.c.state == State.QUEUED))
            if gone.rowcount != len(ids):
                raise Conflict(f"requests of {kind.name} {key} changed")
        if merged is None:  # they cancel each other out
            self._cas(conn, first, delete(t))
            return None
        if merged.not_before > now:
            if rest or merged != first.pending():
                self._cas(conn, first, update(t).values(**self._waiting(merged),
                                                         version=first.version + 1))
            return None
        return first, merged

    def _take(self, conn: Connection, job: Job, waiting: Pending, owner: str,
              now: datetime) -> Job | None:
        t = self.t
        claim = str(uuid.uuid4())
        values: dict[str, Any] = {
            **self._waiting(waiting), "state": State.RUNNING, "claimed_by": owner,
            "claim": claim, "heartbeat": now, "started": now, "cancel": False,
            "progress": None, "progress_total": None, "version": job.version + 1}
        done = conn.execute(update(t).where(t.c.id == job.id, t.c.version == job.version,
                                            t.c.state == State.QUEUED).values(**values))
        if done.rowcount != 1:  # another process was first
            if job.key is not None:
                raise Conflict(f"job {job.id} changed")
            return None
        return Job(id=job.id, kind=job.kind, key=job.key, state=State.RUNNING,
                   payload=waiting.payload, priority=waiting.priority,
                   not_before=waiting.not_before, created=waiting.created, started=now,
                   finished=None, attempts=job.attempts, max_attempts=job.max_attempts,
                   claimed_by=owner, claim=claim, heartbeat=now, cancel=False, progress=None,
                   progress_total=None, error=job.error, version=job.version + 1)

    @staticmethod
    def _waiting(p: Pending) -> dict[str, Any]:
        return {"payload": _dumps(p.payload), "not_before": p.not_before,
                "priority": p.priority, "created": p.created}

    def _cas(self, conn: Connection, job: Job, stmt: Any) -> None:
        """Execute an UPDATE/DELETE of ``job``'s row only if it is still as read."""
        t = self.t
        if conn.execute(stmt.where(t.c.id == job.id, t.c.version == job.version)
                        ).rowcount != 1:
            raise Conflict(f"job {job.id} changed")

    # -- running ----------------------------------------------------------------------------

    def heartbeat(self, progress: Mapping[str, tuple[int, int | None] | None]
                  ) -> dict[str, bool]:
        """Refresh the claims (claim token -> progress to record, if any) of jobs this process
        runs; answer each claim still held with whether a cancel was asked for."""
        if not progress:
            return {}
        t, now = self.t, utcnow()
        held: dict[str, bool] = {}
        with self.db.begin() as conn:
            for batch in chunks(sorted(progress)):
                conn.execute(update(t).where(t.c.claim.in_(batch)).values(heartbeat=now))
                held.update((r.claim, bool(r.cancel)) for r in conn.execute(
                    select(t.c.claim, t.c.cancel).where(t.c.claim.in_(batch))))
            for claim, value in progress.items():
                if value is not None:
                    conn.execute(update(t).where(t.c.claim == claim).values(
                        progress=value[0], progress_total=value[1]))
        return held

    def finish(self, job: Job, state: State, *, error: str | None = None,
               progress: tuple[int, int | None] | None = None) -> bool:
        """A claimed job ended DONE, FAILED or CANCELLED; False if its claim was lost."""
        values: dict[str, Any] = {"state": state, "finished": utcnow(), "claim": None,
                                  "version": job.version + 1}
        if error is not None:  # else an earlier attempt's error stays, as history
            values["error"] = _error(error)
        if state is State.FAILED:
            values["attempts"] = job.attempts + 1
        if progress is not None:
            values["progress"], values["progress_total"] = progress
        return self._release(job, values)

    def requeue(self, job: Job, *, after: float, payload: Payload | None = None,
                failed: str | None = None, note: str | None = None) -> bool:
        """Put a claimed job back to wait ``after`` seconds (in front of later requests of its
        key). ``failed``: it failed with this error (an attempt counted); ``note``: an error
        to keep without counting one ("" clears the error)."""
        values: dict[str, Any] = {
            "state": State.QUEUED, "claim": None, "cancel": False,
            "not_before": seconds_later(after), "version": job.version + 1}
        if payload is not None:
            values["payload"] = _dumps(payload)
        if failed is not None:
            values["attempts"] = job.attempts + 1
            values["error"] = _error(failed)
        elif note is not None:
            values["error"] = _error(note) or None  # "" clears it
        return self._release(job, values)

    def _release(self, job: Job, values: dict[str, Any]) -> bool:
        t = self.t

        def go() -> bool:
            with self.db.begin() as conn:
                done = conn.execute(update(t).where(t.c.id == job.id, t.c.claim == job.claim)
                                    .values(**values))
                return done.rowcount == 1

        if retrying(go):
            return True
        log.warning("job %s (%s): its claim was lost (taken back as stale?); the outcome of "
                    "this run is not recorded", job.id, job.kind)
        return False

    def recover_stale(self, stale_seconds: float) -> int:
        """Jobs whose process stopped heartbeating wait again (a failed attempt), or fail
        once out of attempts; returns how many."""
        t = self.t
        # Whole seconds: a heartbeat may look up to a second older than it is.
        cutoff = utcnow() - timedelta(seconds=stale_seconds + 1)
        with self.db.connect() as conn:
            rows = conn.execute(select(t).where(t.c.state == State.RUNNING,
                                                t.c.heartbeat < cutoff)).all()
        n = 0
        for row in rows:
            job = Job.from_row(row)
            error = (f"the process running it ({job.claimed_by}) stopped (no heartbeat since "
                     f"{job.heartbeat:%Y-%m-%d %H:%M:%S} UTC)")
            out = job.max_attempts is not None and job.attempts + 1 >= job.max_attempts
            values: dict[str, Any] = {"claim": None, "attempts": job.attempts + 1,
                                      "error": error, "version": job.version + 1}
            if out:
                values.update(state=State.FAILED, finished=utcnow())
            else:
                values.update(state=State.QUEUED, not_before=utcnow())

            def go(job: Job = job, values: dict[str, Any] = values) -> bool:
                with self.db.begin() as conn:
                    return conn.execute(update(t).where(
                        t.c.id == job.id, t.c.claim == job.claim,
                        t.c.heartbeat == job.heartbeat).values(**values)).rowcount == 1

            if retrying(go):
                n += 1
                log.warning("job %s (%s): %s; %s", job.id, job.kind, error,
                            "it failed for good" if out else "it waits to run again")
        return n

    # -- administration ---------------------------------------------------------------------

    def cancel(self, job_id: int) -> Job:
        """Cancel a waiting job at once; ask a running one to stop (its handler sees it)."""
        def go() -> None:
            with self.db.begin() as conn:
                job = self._must(conn, job_id)
                if job.state is State.QUEUED:
                    values: dict[str, Any] = {"state": State.CANCELLED, "finished": utcnow()}
                elif job.state is State.RUNNING:
                    values = {"cancel": True}
                else:
                    raise ValueError(f"job {job_id} is already {job.state.lower()}")
                self._cas(conn, job, update(self.t).values(**values,
                                                           version=job.version + 1))
        retrying(go)
        return self._found(job_id)

    def retry(self, job_id: int) -> Job:
        """Queue a failed or cancelled job again, with its attempts counted afresh."""
        def go() -> None:
            with self.db.begin() as conn:
                job = self._must(conn, job_id)
                if job.state not in (State.FAILED, State.CANCELLED):
                    raise ValueError(f"job {job_id} is {job.state.lower()}: only failed or "
                                     "cancelled jobs are retried")
                self._cas(conn, job, update(self.t).values(
                    state=State.QUEUED, not_before=utcnow(), attempts=0, finished=None,
                    cancel=False, claim=None, version=job.version + 1))
        retrying(go)
        return self._found(job_id)

    def _must(self, conn: Connection, job_id: int) -> Job:
        row = conn.execute(select(self.t).where(self.t.c.id == job_id)).first()
        if row is None:
            raise LookupError(f"no job {job_id}")
        return Job.from_row(row)

    def _found(self, job_id: int) -> Job:
        job = self.get(job_id)
        if job is None:
            raise LookupError(f"no job {job_id}")
        return job

    def purge(self, done_before: datetime, failed_before: datetime) -> int:
        """Delete finished jobs: done or cancelled before ``done_before``, failed before
        ``failed_before``."""
        t = self.t
        with self.db.begin() as conn:
            n = conn.execute(delete(t).where(t.c.state.in_([State.DONE, State.CANCELLED]),
                                             t.c.finished < done_before)).rowcount or 0
            n += conn.execute(delete(t).where(t.c.state == State.FAILED,
                                              t.c.finished < failed_before)).rowcount or 0
        return n

    def ensure_periodic(self, name: str, every: float) -> None:
        """One waiting or running job for a periodic task (at start-up); a changed interval
        is taken over, and brings its next run forward if it is now sooner."""
        t = self.t

        def go() -> None:
            now = utcnow()
            with self.db.begin() as conn:
                jobs = [Job.from_row(r) for r in conn.execute(select(t).where(
                    t.c.kind == name, t.c.key == name,
                    t.c.state.in_([State.QUEUED, State.RUNNING])))]
                if not jobs:
                    self.enqueue(conn, name, {"every": every}, key=name, max_attempts=None)
                    return
                for job in jobs:
                    if job.state is State.QUEUED and job.payload.get("every") != every:
                        log.warning("periodic task %s: every %s s in the database, %g s here; "
                                    "processes sharing a database should share their "
                                    "settings (the last one started decides)", name,
                                    job.payload.get("every"), every)
                        sooner = min(job.not_before, now + timedelta(seconds=every))
                        self._cas(conn, job, update(t).values(
                            payload=_dumps({"every": every}), not_before=sooner,
                            version=job.version + 1))

        retrying(go)
