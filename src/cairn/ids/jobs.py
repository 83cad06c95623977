"""The two-level storage job queue and failure flags, kept in the catalogue database.

ids.server queues archive/restore/write requests in memory (its FiniteStateMachine) and
loses them on restart. Here each unit (a dataset or a datafile, by ``storage_unit``) has at
most one row in CAIRN_IDS_JOB (UNIQUE(unit, unit_id)), so every process sharing the database
sees one queue:

- ``state``: the queued request, a state of ids.server's machine (see :func:`transition`),
  or ``NONE`` when nothing is queued behind a running job;
- ``running``: what the claimant executes (ids.server's "changing" map), NULL when idle;
- ``claimed_by``/``claimed_at``: which process runs it and its last heartbeat. A claim whose
  heartbeat stops (a dead process) goes stale and the work returns to the queue;
- ``not_before``: write delay (and retry back-off); ``created``: when the queued request
  began (it bounds the write delay); ``location``: the unit's storage key when queued.

Every change is a compare-and-set (an UPDATE whose WHERE repeats the values read, checked by
its row count) retried on conflict, so it is safe on SQLite, PostgreSQL and MariaDB alike,
without relying on isolation levels; claims also use ``FOR UPDATE SKIP LOCKED`` where the
database has it, so processes don't queue behind each other's candidate rows.

Times in these tables are naive UTC, truncated to whole seconds (MariaDB DATETIME keeps no
fraction, and compare-and-set needs exact round trips).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import Connection, and_, delete, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from cairn.db.engine import Database

log = logging.getLogger(__name__)

T = TypeVar("T")


class Unit(StrEnum):
    DATASET = "DATASET"
    DATAFILE = "DATAFILE"


class Op(StrEnum):
    WRITE = "WRITE"
    ARCHIVE = "ARCHIVE"
    RESTORE = "RESTORE"
    DELETE = "DELETE"


class State(StrEnum):
    WRITE_REQUESTED = "WRITE_REQUESTED"
    WRITE_THEN_ARCHIVE_REQUESTED = "WRITE_THEN_ARCHIVE_REQUESTED"
    ARCHIVE_REQUESTED = "ARCHIVE_REQUESTED"
    RESTORE_REQUESTED = "RESTORE_REQUESTED"
    DELETE_REQUESTED = "DELETE_REQUESTED"


#: ``state`` of a row whose running job has nothing queued behind it.
NONE = "NONE"

WRITE_STATES = frozenset({State.WRITE_REQUESTED, State.WRITE_THEN_ARCHIVE_REQUESTED})
#: States during which the unit may go (or be) offline: getStatus answers ARCHIVED.
ARCHIVING_STATES = frozenset({State.ARCHIVE_REQUESTED, State.WRITE_THEN_ARCHIVE_REQUESTED,
                              State.DELETE_REQUESTED})

_W, _WA, _A, _R, _D = (State.WRITE_REQUESTED, State.WRITE_THEN_ARCHIVE_REQUESTED,
                       State.ARCHIVE_REQUESTED, State.RESTORE_REQUESTED, State.DELETE_REQUESTED)
_NEW = {Op.WRITE: _W, Op.ARCHIVE: _A, Op.RESTORE: _R, Op.DELETE: _D}

# ids.server's queue transitions (reference §2.4): current state -> op -> new state; an op
# missing from a row leaves the state unchanged; None = the queued request is cancelled.
_DATASET: dict[State, dict[Op, State | None]] = {
    _A: {Op.WRITE: _WA, Op.RESTORE: _R},
    _R: {Op.WRITE: _W, Op.ARCHIVE: _A},
    _W: {Op.ARCHIVE: _WA},
    _WA: {Op.RESTORE: _W},
}
# DATAFILE follows ids.server except where it loses work, marked (*): a WRITE on a queued
# ARCHIVE or RESTORE is kept, as in DATASET mode (ids.server drops it, so an archive could
# evict an unwritten file), and a DELETE on a pending write becomes DELETE (ids.server just
# drops the entry, leaving any earlier archive copy of the deleted file behind).
_DATAFILE: dict[State, dict[Op, State | None]] = {
    _A: {Op.WRITE: _WA, Op.RESTORE: None, Op.DELETE: _D},  # (*) WRITE
    _R: {Op.WRITE: _W, Op.ARCHIVE: _A, Op.DELETE: _D},  # (*) WRITE
    _W: {Op.ARCHIVE: _WA, Op.DELETE: _D},  # (*) DELETE
    _WA: {Op.RESTORE: _W, Op.DELETE: _D},  # (*) DELETE
    _D: {},  # final: the datafile is gone
}


def transition(unit: Unit, state: State | None, op: Op) -> State | None:
    """The queued state after ``op`` is requested for a unit in ``state`` (None: nothing
    queued / the request cancels what was queued)."""
    if unit is Unit.DATASET and op is Op.DELETE:
        raise ValueError("DELETE is a DATAFILE operation (a dataset is rewritten instead)")
    if state is None:
        return _NEW[op]
    table = _DATASET if unit is Unit.DATASET else _DATAFILE
    return table[state].get(op, state)


def _ops_of(state: State | None) -> tuple[Op, ...]:
    """The requests a queued state stands for, in the order they were made."""
    if state is None:
        return ()
    if state is _WA:
        return (Op.WRITE, Op.ARCHIVE)
    return ({_W: Op.WRITE, _A: Op.ARCHIVE, _R: Op.RESTORE, _D: Op.DELETE}[state],)


def merge(unit: Unit, first: State | None, then: State | None) -> State | None:
    """The queue state when ``first`` was requested before ``then``: used to put a running
    job back in front of what was queued while it ran (a lock was busy, its process died)."""
    state = first
    for op in _ops_of(then):
        state = transition(unit, state, op)
    return state


@dataclass(frozen=True)
class Job:
    """One row of the queue."""

    id: int
    unit: Unit
    unit_id: int
    #: The queued request (None: nothing queued behind ``running``).
    state: State | None
    running: State | None
    location: str | None
    not_before: datetime
    claimed_by: str | None
    claimed_at: datetime | None
    created: datetime

    @classmethod
    def from_row(cls, row: Any) -> Job:
        return cls(id=row.id, unit=Unit(row.unit), unit_id=row.unit_id,
                   state=None if row.state == NONE else State(row.state),
                   running=None if row.running is None else State(row.running),
                   location=row.location, not_before=row.not_before,
                   claimed_by=row.claimed_by, claimed_at=row.claimed_at, created=row.created)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


class Conflict(Exception):
    """A compare-and-set lost against a concurrent change: read again and retry."""


def retrying(fn: Callable[[], T], attempts: int = 30) -> T:
    """Run ``fn`` until it doesn't conflict: lost compare-and-set, duplicate insert,
    deadlock or serialisation failure (all transient between concurrent processes)."""
    for attempt in range(attempts):
        try:
            return fn()
        except (Conflict, IntegrityError) as e:
            last: Exception = e
        except DBAPIError as e:
            if not _transient(e):
                raise
            last = e
        time.sleep(random.uniform(0, 0.01 * (attempt + 1)))
    raise last


def _transient(e: DBAPIError) -> bool:
    text = str(e.orig).lower()
    return any(s in text for s in ("deadlock", "could not serialize", "database is locked",
                                   "lock wait timeout"))


def chunks(ids: Iterable[T], size: int = 500) -> Iterator[list[T]]:
    batch: list[T] = []
    for i in ids:
        batch.append(i)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class JobQueue:
    """The queue of one storage unit type, as seen by one process (``owner``)."""

    def __init__(self, db: Database, unit: Unit, owner: str, *, write_delay: float = 0.0,
                 write_delay_cap: float = 10.0, stale_seconds: float = 120.0) -> None:
        self.db = db
        self.t = db.tables.ids_job
        self.unit = unit
        self.owner = owner
        self.write_delay = timedelta(seconds=write_delay)
        #: A write waits at most this many write delays after it was first requested, however
        #: often it is requested again (ids.server restarts the delay on every put, so a
        #: steady stream of uploads postpones the write for ever).
        self.write_delay_cap = write_delay_cap
        self.stale = timedelta(seconds=stale_seconds)

    # -- requests ---------------------------------------------------------------------------

    def request(self, op: Op, units: Mapping[int, str | None]) -> None:
        """Apply ``op`` to each unit (id -> storage key) by the state machine."""
        for batch in chunks(sorted(units)):  # sorted: concurrent batches lock in one order
            retrying(lambda batch=batch: self._request_batch(op, {u: units[u] for u in batch}))

    def _request_batch(self, op: Op, units: dict[int, str | None]) -> None:
        now = utcnow()
        with self.db.begin() as conn:
            rows = {r.unit_id: r for r in conn.execute(
                select(self.t).where(self.t.c.unit == self.unit,
                                     self.t.c.unit_id.in_(list(units))))}
            for unit_id, location in units.items():
                row = rows.get(unit_id)
                if row is None:
                    new = transition(self.unit, None, op)
                    if new is not None:
                        conn.execute(insert(self.t).values(
                            unit=self.unit, unit_id=unit_id, state=new, running=None,
                            location=location, not_before=self._not_before(op, None, new, now),
                            claimed_by=None, claimed_at=None, created=now))
                    continue
                job = Job.from_row(row)
                new = transition(self.unit, job.state, op)
                if new is None and job.running is None:
                    self._cas(conn, row, delete(self.t))
                    continue
                values: dict[str, Any] = {"state": new or NONE,
                                          "location": location or job.location}
                if new != job.state or op is Op.WRITE:
                    values["not_before"] = self._not_before(op, job, new, now)
                    if (new in WRITE_STATES) != (job.state in WRITE_STATES) \
                            or job.state is None:
                        values["created"] = now  # a new request begins: restart the cap
                self._cas(conn, row, update(self.t).values(**values))

    def _not_before(self, op: Op, job: Job | None, new: State | None,
                    now: datetime) -> datetime:
        if new not in WRITE_STATES:
            return now
        old = job.state if job is not None else None
        if old not in WRITE_STATES:
            return now + self.write_delay if op is Op.WRITE else now
        assert job is not None
        if op is not Op.WRITE:
            return job.not_before  # e.g. WRITE + ARCHIVE: the write keeps its delay
        # Restart the delay, but never beyond the cap counted from the first request.
        cap = job.created + self.write_delay * self.write_delay_cap
        return max(job.not_before, min(now + self.write_delay, cap))

    def _cas(self, conn: Connection, row: Any, stmt: Any) -> None:
        """Execute an UPDATE/DELETE of ``row`` only if it is still as read."""
        t = self.t
        cond = [t.c.id == row.id, t.c.state == row.state]
        for col in ("running", "claimed_by"):
            value = getattr(row, col)
            cond.append(t.c[col].is_(None) if value is None else t.c[col] == value)
        if conn.execute(stmt.where(and_(*cond))).rowcount != 1:
            raise Conflict(f"job {row.id} changed")

    # -- reading ----------------------------------------------------------------------------

    def jobs(self, unit_ids: Iterable[int]) -> dict[int, Job]:
        out: dict[int, Job] = {}
        with self.db.connect() as conn:
            for batch in chunks(set(unit_ids)):
                for row in conn.execute(select(self.t).where(
                        self.t.c.unit == self.unit, self.t.c.unit_id.in_(batch))):
                    out[row.unit_id] = Job.from_row(row)
        return out

    def all(self) -> list[Job]:
        with self.db.connect() as conn:
            return [Job.from_row(r) for r in conn.execute(
                select(self.t).where(self.t.c.unit == self.unit).order_by(self.t.c.id))]

    def get(self, job_id: int) -> Job | None:
        with self.db.connect() as conn:
            row = conn.execute(select(self.t).where(self.t.c.id == job_id)).first()
        return None if row is None else Job.from_row(row)

    # -- claiming and finishing -------------------------------------------------------------

    def claim(self, limit: int) -> list[Job]:
        """Claim up to ``limit`` runnable jobs for this process (after returning stale claims
        of dead processes to the queue)."""
        if limit <= 0:
            return []
        self.recover_stale()
        return retrying(lambda: self._claim(limit))

    def _claim(self, limit: int) -> list[Job]:
        t, now = self.t, utcnow()
        claimed: list[Job] = []
        with self.db.begin() as conn:
            q = (select(t).where(t.c.unit == self.unit, t.c.claimed_by.is_(None),
                                 t.c.state != NONE, t.c.not_before <= now)
                 .order_by(t.c.not_before, t.c.id).limit(limit))
            if self.db.dialect in ("postgresql", "mysql"):
                # Rows another process is claiming right now are skipped, not waited for.
                q = q.with_for_update(skip_locked=True)
            for row in conn.execute(q).all():
                result = conn.execute(update(t).where(
                    t.c.id == row.id, t.c.claimed_by.is_(None), t.c.state == row.state,
                ).values(running=row.state, state=NONE, claimed_by=self.owner, claimed_at=now))
                if result.rowcount == 1:  # else another process was first
                    claimed.append(Job.from_row(row))
        return [Job(id=j.id, unit=j.unit, unit_id=j.unit_id, state=None, running=j.state,
                    location=j.location, not_before=j.not_before, claimed_by=self.owner,
                    claimed_at=now, created=j.created) for j in claimed]

    def heartbeat(self, job_ids: Iterable[int]) -> None:
        """Keep the claims of these running jobs fresh (called every tick by the poller).
        Only jobs known to run: a claim leaked by a bug goes stale and is recovered."""
        now = utcnow()
        with self.db.begin() as conn:
            for batch in chunks(job_ids):
                conn.execute(update(self.t).where(self.t.c.claimed_by == self.owner,
                                                  self.t.c.id.in_(batch))
                             .values(claimed_at=now))

    def recover_stale(self) -> int:
        """Return the work of claims whose heartbeat stopped to the queue."""
        t = self.t
        cutoff = utcnow() - self.stale
        with self.db.connect() as conn:
            rows = conn.execute(select(t).where(t.c.unit == self.unit,
                                                t.c.claimed_by.is_not(None),
                                                t.c.claimed_at < cutoff)).all()
        for row in rows:
            log.warning("Job %s (%s %s) of %s went stale: queued again", row.id, row.unit,
                        row.unit_id, row.claimed_by)
            retrying(lambda row=row: self._return(row.id, row.claimed_by, None, None))
        return len(rows)

    def release(self, job: Job, *, retry_after: float = 0.0) -> None:
        """Give a claimed job back, in front of whatever was queued meanwhile (its lock was
        busy, it must wait for a pending write, or it failed and is retried later)."""
        retrying(lambda: self._return(job.id, self.owner, job.running, retry_after))

    def finish(self, job: Job, *, then: Op | None = None) -> None:
        """The claimed job is done; ``then`` is requested next (ARCHIVE after the write of
        WRITE_THEN_ARCHIVE) before whatever was queued meanwhile."""
        first = transition(self.unit, None, then) if then is not None else None
        retrying(lambda: self._return(job.id, self.owner, first, 0.0))

    def _return(self, job_id: int, claimant: str, first: State | None,
                retry_after: float | None) -> None:
        t, now = self.t, utcnow()
        with self.db.begin() as conn:
            row = conn.execute(select(t).where(t.c.id == job_id)).first()
            if row is None or row.claimed_by != claimant:
                log.warning("Job %s: claim by %s lost", job_id, claimant)
                return
            job = Job.from_row(row)
            if retry_after is None:  # stale: put back what the dead claimant was running
                first = job.running
            new = merge(self.unit, first, job.state)
            if new is None:
                self._cas(conn, row, delete(t))
                return
            delay = timedelta(seconds=retry_after or 0)
            not_before = now + delay
            if job.state in WRITE_STATES and new in WRITE_STATES:
                not_before = max(not_before, job.not_before)
            self._cas(conn, row, update(t).values(
                state=new, running=None, claimed_by=None, claimed_at=None,
                not_before=not_before,
                created=job.created if job.state is not None else now))


class Failures:
    """Failure flags (ids.server's failed-restore set), persisted in CAIRN_IDS_FAILURE."""

    def __init__(self, db: Database, unit: Unit) -> None:
        self.db = db
        self.t = db.tables.ids_failure
        self.unit = unit

    def set(self, unit_id: int, message: str) -> None:
        def put() -> None:
            with self.db.begin() as conn:
                values = {"message": message[:1024], "created": utcnow()}
                done = conn.execute(update(self.t).where(
                    self.t.c.unit == self.unit, self.t.c.unit_id == unit_id).values(**values))
                if done.rowcount == 0:
                    conn.execute(insert(self.t).values(unit=self.unit, unit_id=unit_id,
                                                       **values))
        retrying(put)

    def clear(self, unit_ids: Iterable[int]) -> None:
        with self.db.begin() as conn:
            for batch in chunks(set(unit_ids)):
                conn.execute(delete(self.t).where(self.t.c.unit == self.unit,
                                                  self.t.c.unit_id.in_(batch)))

    def of(self, unit_ids: Iterable[int]) -> dict[int, str]:
        """The flagged units among ``unit_ids`` and their messages."""
        out: dict[int, str] = {}
        with self.db.connect() as conn:
            for batch in chunks(set(unit_ids)):
                for row in conn.execute(select(self.t.c.unit_id, self.t.c.message).where(
                        self.t.c.unit == self.unit, self.t.c.unit_id.in_(batch))):
                    out[row.unit_id] = row.message or ""
        return out

    def all(self) -> list[int]:
        with self.db.connect() as conn:
            return list(conn.execute(select(self.t.c.unit_id).where(
                self.t.c.unit == self.unit).order_by(self.t.c.unit_id)).scalars())
