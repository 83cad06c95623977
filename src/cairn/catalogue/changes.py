"""Change events: what a unit of work created, updated and deleted, for whoever follows the
catalogue (authorization's rule cache today; search indexing and publishing next).

Every write path records into its unit of work (:class:`cairn.catalogue.work.Work`): REST and
SOAP writes, deletes with their cascades, clones, the data service's uploads and deletes, and
bulk loads. When the unit ends, each :class:`ChangeListener` is told, in order:
``in_transaction`` just before the commit (it may write, e.g. request a job, and its failure
rolls everything back), then ``committed`` after the commit, or ``rolled_back`` when the
unit failed (rows it read inside the transaction may be gone). Ids are kept as runs, so a
bulk load of ten million rows records a handful of ranges.
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cairn.catalogue.work import Work

log = logging.getLogger(__name__)


class ChangeKind(StrEnum):
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


@dataclass(frozen=True)
class Change:
    entity: str
    id: int
    kind: ChangeKind


class IdRuns:
    """Ids in the order recorded, stored as runs of consecutive ids (16 bytes a run)."""

    def __init__(self) -> None:
        self._starts = array("q")
        self._stops = array("q")
        self._count = 0

    def add(self, ids: Iterable[int]) -> None:
        if isinstance(ids, range) and ids.step == 1:
            self._run(ids.start, ids.stop)
            return
        for i in ids:
            self._run(i, i + 1)

    def _run(self, start: int, stop: int) -> None:
        if stop <= start:
            return
        if self._stops and self._stops[-1] == start:
            self._stops[-1] = stop
        else:
            self._starts.append(start)
            self._stops.append(stop)
        self._count += stop - start

    def runs(self) -> Iterator[range]:
        for start, stop in zip(self._starts, self._stops, strict=True):
            yield range(start, stop)

    def __iter__(self) -> Iterator[int]:
        for run in self.runs():
            yield from run

    def __len__(self) -> int:
        return self._count


class Changes:
    """The changes of one unit of work, by entity and kind."""

    def __init__(self) -> None:
        self._ids: dict[tuple[str, ChangeKind], IdRuns] = {}

    def add(self, entity: str, kind: ChangeKind, ids: Iterable[int]) -> None:
        runs = self._ids.get((entity, kind))
        if runs is None:
            runs = self._ids[(entity, kind)] = IdRuns()
        runs.add(ids)

    def ids(self, entity: str, kind: ChangeKind) -> IdRuns:
        return self._ids.get((entity, kind)) or IdRuns()

    def groups(self) -> Iterator[tuple[str, ChangeKind, IdRuns]]:
        """(entity, kind, ids) in the order first recorded: what a listener batches over."""
        for (entity, kind), runs in self._ids.items():
            yield entity, kind, runs

    def entities(self) -> set[str]:
        return {entity for entity, _ in self._ids}

    def __iter__(self) -> Iterator[Change]:
        for entity, kind, runs in self.groups():
            for i in runs:
                yield Change(entity, i, kind)

    def __len__(self) -> int:
        return sum(len(r) for r in self._ids.values())

    def __bool__(self) -> bool:
        return bool(self._ids)


class ChangeListener:
    """Follows the catalogue; override what you need."""

    def in_transaction(self, work: Work, changes: Changes) -> None:
        """Before the commit, in the unit's transaction (``work.enqueue`` requests a job that
        exists only if the changes are committed). An exception rolls the unit back."""

    def committed(self, changes: Changes) -> None:
        """After the commit. An exception is logged, never undoes the committed changes."""

    def rolled_back(self, changes: Changes) -> None:
        """After a unit that recorded changes failed and was rolled back."""


class Listeners:
    """The listeners of one catalogue, told in the order they were added."""

    def __init__(self, listeners: Sequence[ChangeListener] = ()) -> None:
        self._all = list(listeners)

    def add(self, listener: ChangeListener) -> None:
        self._all.append(listener)

    def in_transaction(self, work: Work, changes: Changes) -> None:
        for listener in self._all:
            listener.in_transaction(work, changes)

    def committed(self, changes: Changes) -> None:
        self._after("committed", changes)

    def rolled_back(self, changes: Changes) -> None:
        self._after("rolled_back", changes)

    def _after(self, event: str, changes: Changes) -> None:
        """Every listener hears it: one's failure is logged, never stops the others."""
        for listener in self._all:
            try:
                getattr(listener, event)(changes)
            except Exception:
                log.exception("change listener %r failed (%s)", listener, event)
