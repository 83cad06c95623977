"""Bounded in-process caches of things built once and reused by every request.

Every cache of the server is one of these (or a ``functools.lru_cache`` with a ``maxsize``),
so memory stops growing once each is full; ``docs/security.md`` ("Resource limits and
caches") lists them with their bounds and what a full one costs. Named caches register
themselves, so :func:`cache_sizes` can show how full each is (``bench/memtrace.py``).
"""

from __future__ import annotations

import gc
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from cairn import heap

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: Named caches alive in this process (weakly: a cache that goes, such as a test's, leaves).
_NAMED: weakref.WeakSet[Lru[Any, Any]] = weakref.WeakSet()


class Reaper:
    """Collects the garbage that evicted cache entries leave, after every ``every`` evictions.

    A cached value is mostly an object graph with reference cycles (a SQLAlchemy statement,
    its aliases and their columns), which reference counting never frees. By the time it is
    evicted it has survived young collections into the collector's oldest generation, which
    ``cairn serve`` collects only every few million allocations (``cli.settle_heap``). A
    churning cache (a portal's queries carry ids, so most texts are new) then makes garbage
    faster than it is collected: under ``bench/soak.py`` the server passed 1.1 GB and was
    still growing. With a full collection after every ``every`` evictions (all caches
    together), evicted garbage stays below that many entries, and a cache that does not churn
    costs nothing.
    """

    def __init__(self, every: int) -> None:
        self.every = every
        self.evicted = 0
        self.collections = 0
        self.trim_seconds = 0.0
        self._busy = threading.Lock()

    def note_eviction(self) -> None:
        self.evicted += 1  # racy increments may lose a count: harmless for a threshold
        if self.evicted >= self.every and self._busy.acquire(blocking=False):
            try:
                self.evicted = 0
                gc.collect()
                self.collections += 1
                # what the collection freed, handed back (malloc keeps it otherwise: cairn.heap)
                started = time.perf_counter()
                heap.trim()
                self.trim_seconds += time.perf_counter() - started
            finally:
                self._busy.release()


#: ~1,000 evictions is ~340 distinct queries (each evicts a compiled query, a prepared page
#: and a predicate), at most ~110 MB of garbage; a full collection with full caches takes
#: 0.1-0.5 s (measured on the demo), so even a cache missing on every query spends little.
REAPER = Reaper(1024)


class Lru(Generic[K, V]):
    """At most ``size`` values, the least recently used dropped first; safe across threads."""

    def __init__(self, size: int, name: str = "") -> None:
        if size < 1:
            raise ValueError(f"a cache holds at least one value, not {size}")
        self.size = size
        self.name = name
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        if name:
            _NAMED.add(self)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        """The value of ``key`` (now the most recently used), or None."""
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            evicted = len(self._entries) > self.size
            if evicted:
                self._entries.popitem(last=False)
        if evicted:
            REAPER.note_eviction()  # outside the lock: a collection takes a while

    def discard(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def fetch(self, key: K, make: Callable[[], V]) -> V:
        """The value of ``key``, made (and kept) on first use."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        value = make()  # outside the lock: building may take a moment; a race builds twice
        self.put(key, value)
        return value


class IdentityCache(Generic[V]):
    """Values built from objects that have no equality by value (schema entities, compiled
    queries, authorization predicates, dialects), keyed by those objects' identities plus a
    hashable rest.

    An ``id()`` is unique only while its object lives, so every entry holds its anchors: while
    it is cached, no other object can take their addresses, and a key of ids means those very
    objects.
    """

    def __init__(self, size: int, name: str = "") -> None:
        self._lru: Lru[Hashable, tuple[tuple[object, ...], V]] = Lru(size, name)

    def __len__(self) -> int:
        return len(self._lru)

    def fetch(self, anchors: tuple[object, ...], rest: Hashable, make: Callable[[], V]) -> V:
        """The value built from ``anchors`` and ``rest``, made (and kept) on first use."""
        key = (*map(id, anchors), rest)
        return self._lru.fetch(key, lambda: (anchors, make()))[1]


def cache_sizes() -> list[tuple[str, int, int]]:
    """(name, entries, bound) of every named cache alive, by name."""
    return sorted((c.name, len(c), c.size) for c in list(_NAMED))
