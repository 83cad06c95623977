"""Every cache stops at its bound, keeps what was used last, and its bound is documented."""

from __future__ import annotations

import gc
import re
import weakref
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from cairn import cache
from cairn.authz.policy import Authorizer
from cairn.cache import IdentityCache, Lru, Reaper, cache_sizes
from cairn.catalogue.sessions import SessionStore
from cairn.db.engine import Database
from cairn.query.execute import Queries

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


class Thing:
    """No equality by value, like a compiled query."""


def test_lru_stays_at_its_bound_keeping_the_most_recently_used() -> None:
    cache: Lru[int, str] = Lru(100)
    for i in range(1000):
        cache.put(i, str(i))
        assert len(cache) == min(i + 1, 100)
    assert [k for k in range(1000) if cache.get(k) is not None] == list(range(900, 1000))


def test_a_read_makes_an_entry_recent() -> None:
    cache: Lru[int, int] = Lru(3)
    for i in (1, 2, 3):
        cache.put(i, i)
    assert cache.get(1) == 1  # read: now the most recent, so 2 is the oldest
    cache.put(4, 4)
    assert cache.get(2) is None
    assert [cache.get(k) for k in (1, 3, 4)] == [1, 3, 4]
    assert cache.fetch(3, lambda: -1) == 3  # a hit through fetch counts too
    cache.put(5, 5)
    cache.put(6, 6)
    assert cache.get(3) == 3
    assert len(cache) == 3


def test_identity_cache_stays_at_its_bound_and_keeps_the_latest() -> None:
    cache: IdentityCache[str] = IdentityCache(10)
    things = [Thing() for _ in range(50)]
    for i, thing in enumerate(things):
        cache.fetch((thing,), "rest", partial(str.format, "first {}", i))
    assert len(cache) == 10
    again = [cache.fetch((t,), "rest", lambda: "again") for t in reversed(things[-10:])]
    assert again == [f"first {i}" for i in reversed(range(40, 50))]
    assert cache.fetch((things[0],), "rest", lambda: "again") == "again"  # evicted long ago
    assert len(cache) == 10


class Cycle:
    """A value that only the cyclic collector frees, as a SQLAlchemy statement."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def collector_off() -> Iterator[None]:
    """Only explicit collections run (the reaper's), as with cairn serve's rare old ones."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_evicted_cycles_are_collected_after_so_many_evictions(
        collector_off: None, monkeypatch: pytest.MonkeyPatch) -> None:
    reaper = Reaper(every=5)
    monkeypatch.setattr(cache, "REAPER", reaper)
    lru: Lru[int, Cycle] = Lru(1)
    refs = []
    for i in range(5):  # the 5th put is the 4th eviction
        value = Cycle()
        refs.append(weakref.ref(value))
        lru.put(i, value)
        del value
    assert reaper.collections == 0
    assert all(r() is not None for r in refs)  # evicted, but garbage waiting in cycles
    lru.put(5, Cycle())  # the 5th eviction
    assert reaper.collections == 1
    assert [r() is None for r in refs] == [True] * 5  # every evicted one freed
    assert lru.get(5) is not None  # the cached one lives


def test_a_cache_cannot_be_made_empty() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Lru(0)


def test_compiled_queries_stop_at_the_bound_and_keep_the_latest(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        queries = Queries(db, size=20)
        texts = [f"SELECT ds FROM Dataset ds WHERE ds.id = {i}" for i in range(60)]
        first = {t: queries.search(t) for t in texts}
        assert queries._search.size == 20 and len(queries._search) == 20
        # the latest twenty are served from the cache (looked at newest first, as a look at
        # an older one would evict the oldest of them); the first one was compiled again
        assert all(queries.search(t) is first[t] for t in reversed(texts[-20:]))
        assert queries.search(texts[0]) is not first[texts[0]]
        assert len(queries._search) == 20
    finally:
        db.dispose()


def documented_bounds() -> dict[str, int]:
    """``cache name -> bound`` from the table of docs/security.md."""
    rows = re.findall(r"^\| `([a-z.]+)` \| ([\d,]+) \|", DOC.read_text(), re.MULTILINE)
    return {name: int(bound.replace(",", "")) for name, bound in rows}


def test_every_named_cache_is_documented_with_its_bound(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        alive = (Queries(db), Authorizer(db, []), SessionStore(db, 120))  # per-object caches
        in_code = {name: bound for name, _, bound in cache_sizes()}
        assert {"query.search", "query.prepared", "authz.predicates", "sessions.seen",
                "fastread.keyed"} <= set(in_code)
        documented = documented_bounds()
        assert {name: documented.get(name) for name in in_code} == in_code
        del alive
    finally:
        db.dispose()
