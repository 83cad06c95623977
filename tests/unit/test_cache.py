"""Bounded caches: least recently used out first; identity-keyed entries pin their anchors."""

from __future__ import annotations

import gc
import weakref

from cairn.cache import IdentityCache, Lru


class Thing:
    """No equality by value, like a schema entity or a compiled query."""


def test_lru_makes_once_and_drops_the_least_recently_used() -> None:
    made: list[str] = []
    cache: Lru[str, str] = Lru(2)

    def make(key: str) -> str:
        made.append(key)
        return key.upper()

    assert cache.fetch("a", lambda: make("a")) == "A"
    assert cache.fetch("b", lambda: make("b")) == "B"
    assert cache.fetch("a", lambda: make("a")) == "A"  # kept; now the most recent
    cache.fetch("c", lambda: make("c"))  # drops b, the least recently used
    assert len(cache) == 2
    cache.fetch("a", lambda: make("a"))
    cache.fetch("b", lambda: make("b"))
    assert made == ["a", "b", "c", "b"]


def test_anchored_values_belong_to_the_very_objects() -> None:
    cache: IdentityCache[int] = IdentityCache(10)
    one, other = Thing(), Thing()
    calls = []

    def make(n: int) -> int:
        calls.append(n)
        return n

    assert cache.fetch((one,), "x", lambda: make(1)) == 1
    assert cache.fetch((one,), "x", lambda: make(2)) == 1  # the same object: cached
    assert cache.fetch((other,), "x", lambda: make(3)) == 3  # another object: its own value
    assert cache.fetch((one,), "y", lambda: make(4)) == 4  # another rest: its own value
    assert cache.fetch((one, other), "x", lambda: make(5)) == 5
    assert calls == [1, 3, 4, 5]


def test_an_anchor_lives_as_long_as_its_entry() -> None:
    """While cached, no new object can take an anchor's address (and so its entry)."""
    cache: IdentityCache[str] = IdentityCache(1)
    thing = Thing()
    ref = weakref.ref(thing)
    cache.fetch((thing,), None, lambda: "value")
    del thing
    gc.collect()
    assert ref() is not None  # pinned by the entry
    cache.fetch((Thing(),), None, lambda: "another")  # evicts the first entry (size 1)
    gc.collect()
    assert ref() is None
