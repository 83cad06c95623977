"""What a job is: its row, the states it goes through, and what a handler may answer."""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError

T = TypeVar("T")

Payload = dict[str, Any]


class State(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


#: States a job does not leave by itself (``cairn jobs retry`` queues a failed one again).
FINISHED = frozenset({State.DONE, State.FAILED, State.CANCELLED})


@dataclass(frozen=True)
class Job:
    """One row of CAIRN_JOB."""

    id: int
    kind: str
    key: str | None
    state: State
    payload: Payload
    priority: int
    not_before: datetime
    created: datetime
    started: datetime | None
    finished: datetime | None
    attempts: int
    max_attempts: int | None
    claimed_by: str | None
    claim: str | None
    heartbeat: datetime | None
    cancel: bool
    progress: int | None
    progress_total: int | None
    error: str | None
    version: int

    @classmethod
    def from_row(cls, row: Any) -> Job:
        return cls(id=row.id, kind=row.kind, key=row.key, state=State(row.state),
                   payload=json.loads(row.payload), priority=row.priority,
                   not_before=row.not_before, created=row.created, started=row.started,
                   finished=row.finished, attempts=row.attempts,
                   max_attempts=row.max_attempts, claimed_by=row.claimed_by,
                   claim=row.claim, heartbeat=row.heartbeat, cancel=bool(row.cancel),
                   progress=row.progress, progress_total=row.progress_total,
                   error=row.error, version=row.version)

    def pending(self) -> Pending:
        return Pending(self.payload, self.not_before, self.priority, self.created)


@dataclass(frozen=True)
class Pending:
    """A request waiting to run: what a kind's ``merge`` combines."""

    payload: Payload
    not_before: datetime
    priority: int
    #: When the request began (merging may keep an earlier one).
    created: datetime


@dataclass(frozen=True)
class Again:
    """A handler's answer: not finished, run again (in front of requests with the same key
    that arrived meanwhile). Not a failure: it counts no attempt."""

    #: Seconds to wait before the next run.
    after: float = 0.0
    #: The payload of the next run (default: the same).
    payload: Payload | None = None
    #: Kept as the job's error (a periodic task that failed and will run again); "" clears
    #: it, None leaves it as it is.
    error: str | None = None


class Failed(Exception):
    """Raised by a handler whose job cannot succeed by trying again: FAILED at once."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Cancelled(Exception):
    """Raised by a handler (``ctx.check_cancelled()``) that stops because it was cancelled."""


def utcnow() -> datetime:
    """Now as job tables store it: naive UTC, whole seconds (MariaDB's DATETIME)."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def seconds_later(seconds: float) -> datetime:
    """:func:`utcnow` plus ``seconds``, rounded up to whole seconds (never sooner)."""
    return utcnow() + timedelta(seconds=math.ceil(seconds))


class Conflict(Exception):
    """A compare-and-set lost against a concurrent change: read again and retry."""


def retrying(fn: Callable[[], T], attempts: int = 30) -> T:
    """Run ``fn`` (one whole transaction) until it doesn't conflict: a lost compare-and-set,
    a duplicate insert, a deadlock or a serialisation failure, all transient between
    concurrent processes."""
    for attempt in range(attempts):
        try:
            return fn()
        except (Conflict, IntegrityError) as e:
            last: Exception = e
        except DBAPIError as e:
            if not transient(e):
                raise
            last = e
        time.sleep(random.uniform(0, 0.01 * (attempt + 1)))
    raise last


def transient(e: DBAPIError) -> bool:
    text = str(e.orig).lower()
    return any(s in text for s in ("deadlock", "could not serialize", "database is locked",
                                   "lock wait timeout"))


def chunks(items: Iterable[T], size: int = 500) -> Iterator[list[T]]:
    batch: list[T] = []
    for i in items:
        batch.append(i)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
