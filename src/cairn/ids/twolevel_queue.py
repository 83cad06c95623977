"""Two-level storage requests as jobs: ids.server's state machine per storage unit.

ids.server queues archive/restore/write requests in memory (its FiniteStateMachine) and loses
them on restart. Here each request is a job of kind :data:`KIND` keyed by its unit (a dataset
or a datafile, by ``storage_unit``), in the catalogue database, so every process sharing it
sees one queue and a restart loses nothing. Requests for one unit merge by ids.server's
transitions (:func:`transition`) while they wait, and a unit is worked on by one process at
a time (the job system's keys). A job's payload is the unit, the state it asks for and the
unit's storage key (so work on a unit whose catalogue row is gone, a deleted datafile's
archive copy, still knows where to look).

Writes wait ``write_delay_seconds`` after the last request, but at most ``write_delay_cap``
such delays after the first (ids.server restarts the delay on every put, so a steady stream
of uploads would postpone the write for ever).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import Connection, delete, insert, select, update

from cairn.db.engine import Database
from cairn.jobs import Kind, Line, Pending, Scheduler
from cairn.jobs.model import chunks, retrying, utcnow

#: The job kind of two-level storage.
KIND = "ids.twolevel"


class StorageUnit(StrEnum):
    DATASET = "DATASET"
    DATAFILE = "DATAFILE"


class Op(StrEnum):
    WRITE = "WRITE"
    ARCHIVE = "ARCHIVE"
    RESTORE = "RESTORE"
    DELETE = "DELETE"


class UnitState(StrEnum):
    """What is requested for a unit: the states of ids.server's queue."""

    WRITE_REQUESTED = "WRITE_REQUESTED"
    WRITE_THEN_ARCHIVE_REQUESTED = "WRITE_THEN_ARCHIVE_REQUESTED"
    ARCHIVE_REQUESTED = "ARCHIVE_REQUESTED"
    RESTORE_REQUESTED = "RESTORE_REQUESTED"
    DELETE_REQUESTED = "DELETE_REQUESTED"


WRITE_STATES = frozenset({UnitState.WRITE_REQUESTED, UnitState.WRITE_THEN_ARCHIVE_REQUESTED})
#: States during which the unit may go (or be) offline: getStatus answers ARCHIVED.
ARCHIVING_STATES = frozenset({UnitState.ARCHIVE_REQUESTED,
                              UnitState.WRITE_THEN_ARCHIVE_REQUESTED,
                              UnitState.DELETE_REQUESTED})

_W, _WA, _A, _R, _D = (UnitState.WRITE_REQUESTED, UnitState.WRITE_THEN_ARCHIVE_REQUESTED,
                       UnitState.ARCHIVE_REQUESTED, UnitState.RESTORE_REQUESTED,
                       UnitState.DELETE_REQUESTED)
NEW = {Op.WRITE: _W, Op.ARCHIVE: _A, Op.RESTORE: _R, Op.DELETE: _D}

# ids.server's queue transitions (reference §2.4): current state -> op -> new state; an op
# missing from a row leaves the state unchanged; None = the queued request is cancelled.
_DATASET: dict[UnitState, dict[Op, UnitState | None]] = {
    _A: {Op.WRITE: _WA, Op.RESTORE: _R},
    _R: {Op.WRITE: _W, Op.ARCHIVE: _A},
    _W: {Op.ARCHIVE: _WA},
    _WA: {Op.RESTORE: _W},
}
# DATAFILE follows ids.server except where it loses work, marked (*): a WRITE on a queued
# ARCHIVE or RESTORE is kept, as in DATASET mode (ids.server drops it, so an archive could
# evict an unwritten file), and a DELETE on a pending write becomes DELETE (ids.server just
# drops the entry, leaving any earlier archive copy of the deleted file behind).
_DATAFILE: dict[UnitState, dict[Op, UnitState | None]] = {
    _A: {Op.WRITE: _WA, Op.RESTORE: None, Op.DELETE: _D},  # (*) WRITE
    _R: {Op.WRITE: _W, Op.ARCHIVE: _A, Op.DELETE: _D},  # (*) WRITE
    _W: {Op.ARCHIVE: _WA, Op.DELETE: _D},  # (*) DELETE
    _WA: {Op.RESTORE: _W, Op.DELETE: _D},  # (*) DELETE
    _D: {},  # final: the datafile is gone
}


def transition(unit: StorageUnit, state: UnitState | None, op: Op) -> UnitState | None:
    """The queued state after ``op`` is requested for a unit in ``state`` (None: nothing
    queued / the request cancels what was queued)."""
    if unit is StorageUnit.DATASET and op is Op.DELETE:
        raise ValueError("DELETE is a DATAFILE operation (a dataset is rewritten instead)")
    if state is None:
        return NEW[op]
    table = _DATASET if unit is StorageUnit.DATASET else _DATAFILE
    return table[state].get(op, state)


def ops_of(state: UnitState | None) -> tuple[Op, ...]:
    """The requests a queued state stands for, in the order they were made."""
    if state is None:
        return ()
    if state is _WA:
        return (Op.WRITE, Op.ARCHIVE)
    return ({_W: Op.WRITE, _A: Op.ARCHIVE, _R: Op.RESTORE, _D: Op.DELETE}[state],)


def merge_states(unit: StorageUnit, first: UnitState | None, then: UnitState | None
                 ) -> UnitState | None:
    """The state when ``first`` was requested before ``then``: requests queued one after
    the other, or a job put back in front of what was queued while it ran."""
    state = first
    for op in ops_of(then):
        state = transition(unit, state, op)
    return state


def unit_key(unit: StorageUnit, unit_id: int) -> str:
    return f"{unit}:{unit_id}"


class Enqueuer(Protocol):
    """A transaction that can request jobs: the catalogue's unit of work."""

    def enqueue(self, kind: str, payload: dict[str, Any], **options: Any) -> int: ...


@dataclass(frozen=True)
class UnitLine:
    """What is queued for (merged) and running on one unit."""

    unit_id: int
    waiting: UnitState | None
    running: UnitState | None
    location: str | None
    #: The oldest job of the unit (orders the service status like the requests).
    first_job: int

    @property
    def states(self) -> set[UnitState]:
        return {s for s in (self.waiting, self.running) if s is not None}


class UnitQueue:
    """The requests of one storage unit type, on the process's scheduler."""

    def __init__(self, scheduler: Scheduler, unit: StorageUnit, *, write_delay: float = 0.0,
                 write_delay_cap: float = 10.0) -> None:
        self.scheduler = scheduler
        self.unit = unit
        self.write_delay = timedelta(seconds=write_delay)
        self.write_delay_cap = write_delay_cap

    # -- requests ---------------------------------------------------------------------------

    def request(self, op: Op, units: Mapping[int, str | None],
                via: Enqueuer | None = None) -> None:
        """Request ``op`` for each unit (id -> storage key): in the transaction of ``via``
        (a unit of work) if given, else in transactions of its own."""
        if not units:
            return
        state = transition(self.unit, None, op)  # validates the op for this unit type
        delay = self.write_delay.total_seconds() if op is Op.WRITE else 0.0
        if via is not None:
            for unit_id, location in units.items():
                via.enqueue(KIND, self._payload(unit_id, state, location),
                            key=unit_key(self.unit, unit_id), delay=delay)
            return
        db = self.scheduler.queue.db
        for batch in chunks(sorted(units)):
            with db.begin() as conn:
                self._insert(conn, state, {u: units[u] for u in batch}, delay)
        self.scheduler.wake()

    def _payload(self, unit_id: int, state: UnitState | None, location: str | None
                 ) -> dict[str, Any]:
        return {"unit": self.unit.value, "id": unit_id, "state": state,
                "location": location}

    def _insert(self, conn: Connection, state: UnitState | None,
                units: Mapping[int, str | None], delay: float) -> None:
        for unit_id, location in units.items():
            self.scheduler.enqueue(conn, KIND, self._payload(unit_id, state, location),
                                   key=unit_key(self.unit, unit_id), delay=delay)

    def merge(self, first: Pending, then: Pending) -> Pending | None:
        """The kind's merge: ids.server's transitions, and the write delay with its cap."""
        a, b = UnitState(first.payload["state"]), UnitState(then.payload["state"])
        new = merge_states(self.unit, a, b)
        if new is None:
            return None
        if new in WRITE_STATES and a in WRITE_STATES:  # the pending write goes on
            created, not_before = first.created, first.not_before
            if b in WRITE_STATES:  # asked for again: the delay restarts, up to the cap
                cap = first.created + self.write_delay * self.write_delay_cap
                not_before = max(first.not_before, min(then.not_before, cap))
        elif new in WRITE_STATES:  # a write begins with the later request
            created, not_before = then.created, then.not_before
        else:
            created, not_before = first.created, min(first.not_before, then.not_before)
        location = then.payload.get("location") or first.payload.get("location")
        return replace(first, payload={**first.payload, "state": new.value,
                                       "location": location},
                       not_before=not_before, created=created,
                       priority=min(first.priority, then.priority))

    # -- reading ----------------------------------------------------------------------------

    def lines(self, unit_ids: Iterable[int]) -> dict[int, UnitLine]:
        """Units with something queued or running, by id."""
        keys = {unit_key(self.unit, i): i for i in unit_ids}
        return self._lines(self.scheduler.queue.lines(self.kind, keys), keys)

    def all(self) -> list[UnitLine]:
        """Every unit with something queued or running, in the order of their requests."""
        prefix = unit_key(self.unit, 0).removesuffix("0")
        found = {k: line for k, line in self.scheduler.queue.lines(self.kind, None).items()
                 if k.startswith(prefix)}
        lines = self._lines(found, {k: int(k.removeprefix(prefix)) for k in found})
        return sorted(lines.values(), key=lambda line: line.first_job)

    @staticmethod
    def _lines(found: Mapping[str, Line], keys: Mapping[str, int]) -> dict[int, UnitLine]:
        out = {}
        for key, line in found.items():
            waiting, running = line.waiting, line.running
            location = (waiting.payload.get("location") if waiting is not None else None) \
                or (running.payload.get("location") if running is not None else None)
            out[keys[key]] = UnitLine(
                unit_id=keys[key],
                waiting=UnitState(waiting.payload["state"]) if waiting is not None else None,
                running=UnitState(running.payload["state"]) if running is not None else None,
                location=location, first_job=line.first)
        return out

    @property
    def kind(self) -> Kind:
        return self.scheduler.registry.kinds[KIND]


class Failures:
    """Failure flags (ids.server's failed-restore set), persisted in CAIRN_IDS_FAILURE."""

    def __init__(self, db: Database, unit: StorageUnit) -> None:
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
