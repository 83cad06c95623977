"""Bounded in-process caches of things built once and reused by every request."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Lru(Generic[K, V]):
    """At most ``size`` values, the least recently used dropped first; safe across threads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        with self._lock:
            return self._entries.get(key)

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            if len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def discard(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)

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

    def __init__(self, size: int) -> None:
        self._lru: Lru[Hashable, tuple[tuple[object, ...], V]] = Lru(size)

    def __len__(self) -> int:
        return len(self._lru)

    def fetch(self, anchors: tuple[object, ...], rest: Hashable, make: Callable[[], V]) -> V:
        """The value built from ``anchors`` and ``rest``, made (and kept) on first use."""
        key = (*map(id, anchors), rest)
        return self._lru.fetch(key, lambda: (anchors, make()))[1]
