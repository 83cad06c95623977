"""Job kinds and periodic tasks: what a room of Cairn declares to have work run for it.

A :class:`Kind` names a handler. Jobs of a kind that share a key are one line of work: while
they wait, their requests are merged (the kind's ``merge``; by default the first request
stands and a duplicate adds nothing), and they never run at the same time. A
:class:`Periodic` task runs every so often; by default by one process of all those sharing
the database at a time (it is a job that queues itself again), or with ``local=True`` in
every process (heartbeats of what this process holds).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from cairn.jobs.model import Again, Cancelled, Job, Pending

log = logging.getLogger(__name__)


class JobContext:
    """What a handler gets: the job, and ways to report progress and notice a cancel."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.payload = job.payload
        self._cancel = threading.Event()
        self._progress: tuple[int, int | None] | None = None

    def progress(self, done: int, total: int | None = None) -> None:
        """Record progress; written with the next heartbeat (not a write per call)."""
        self._progress = (done, total)

    @property
    def cancelled(self) -> bool:
        """``cairn jobs cancel`` asked this running job to stop (seen within a poll)."""
        return self._cancel.is_set()

    def check_cancelled(self) -> None:
        """Raise :class:`Cancelled` if the job was asked to stop."""
        if self.cancelled:
            raise Cancelled(f"job {self.job.id} was cancelled")


#: A handler finishes (returns None), asks to run again (:class:`Again`), or raises: a
#: failure, retried with back-off until the kind's attempts are used up.
Handler = Callable[[JobContext], Again | None]
#: Two requests for one key, the earlier first; None: together they ask for nothing.
Merge = Callable[[Pending, Pending], Pending | None]


def keep_first(first: Pending, then: Pending) -> Pending:
    """The default merge: a duplicate request adds nothing but its urgency."""
    return replace(first, not_before=min(first.not_before, then.not_before),
                   priority=min(first.priority, then.priority))


def backoff(base: float = 10.0, cap: float = 3600.0) -> Callable[[int], float]:
    """Seconds before attempt ``n + 1`` after ``n`` failures: doubling from ``base``."""
    return lambda failures: min(cap, base * 2 ** max(0, failures - 1))


DEFAULT_BACKOFF = backoff()


@dataclass(frozen=True)
class Kind:
    name: str
    handler: Handler
    merge: Merge = keep_first
    #: Failed attempts before the job is FAILED for good (None: retried for ever).
    max_attempts: int | None = 5
    retry_delay: Callable[[int], float] = DEFAULT_BACKOFF
    #: Default priority of its jobs (lower runs first).
    priority: int = 0


@dataclass(frozen=True)
class Periodic:
    name: str
    every: float
    #: The work (it logs what it did itself).
    run: Callable[[], object]
    #: Run in every process by the scheduler's own thread, not through the database.
    local: bool = False

    def kind(self) -> Kind:
        """The kind of the job that runs it once and queues itself again."""

        def handler(ctx: JobContext) -> Again:
            try:
                self.run()
            except Cancelled:
                raise
            except Exception as e:  # not a failure of the job: it runs again next time
                log.exception("periodic task %s failed; it runs again in %g s", self.name,
                              self.every)
                return Again(after=self.every, error=f"{type(e).__name__}: {e}")
            return Again(after=self.every, error="")

        return Kind(self.name, handler, max_attempts=None)


class Registry:
    """The kinds and periodic tasks of one process, by name."""

    def __init__(self) -> None:
        self.kinds: dict[str, Kind] = {}
        self.periodic: dict[str, Periodic] = {}

    def add(self, *items: Kind | Periodic) -> None:
        for item in items:
            if item.name in self.kinds or item.name in self.periodic:
                raise ValueError(f"job kind {item.name!r} is declared twice")
            if isinstance(item, Periodic):
                if not item.every > 0:
                    raise ValueError(f"periodic task {item.name!r}: every must be positive")
                self.periodic[item.name] = item
                if not item.local:
                    self.kinds[item.name] = item.kind()
            else:
                self.kinds[item.name] = item
