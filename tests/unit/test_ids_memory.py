"""Memory stays flat while hundreds of MB stream through the data-service iterators.

Files are sparse (holes read as zeros), so the tests cost little disk and time. Each test
checks Python's own allocations (tracemalloc peak) and the growth of the process's peak
resident size (``ru_maxrss``); no timing assertions.
"""

from __future__ import annotations

import resource
import sys
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cairn.ids.storage_local import LocalStorage
from cairn.ids.zipstream import StoredZip, ZipMember, deflate_zip

MB = 1 << 20
SIZE = 300 * MB
LIMIT = 24 * MB  # generous: a few 1 MiB chunks in flight plus interpreter noise


def _maxrss() -> int:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb if sys.platform == "darwin" else kb * 1024


def _measure(consume: Callable[[], int]) -> tuple[int, int, int]:
    """(bytes consumed, tracemalloc peak, ru_maxrss growth)."""
    rss0 = _maxrss()
    tracemalloc.start()
    try:
        n = consume()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return n, peak, _maxrss() - rss0


def _drain(chunks: Iterator[bytes]) -> int:
    n = 0
    for chunk in chunks:
        n += len(chunk)
    return n


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    s = LocalStorage(tmp_path / "main", fsync=False)
    for name in ("1/1/a", "1/1/b", "1/1/c"):
        path = s.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            f.truncate(SIZE)
    return s


def test_single_file_read(storage: LocalStorage) -> None:
    n, peak, rss = _measure(lambda: _drain(storage.read("1/1/a")))
    assert n == SIZE
    assert peak < LIMIT and rss < LIMIT, (peak, rss)


def test_stored_zip(storage: LocalStorage) -> None:
    crc = zlib.crc32(bytes(SIZE))
    members = [ZipMember(f"ids/f/{x}", f"1/1/{x}", SIZE, crc) for x in "abc"]
    z = StoredZip(members, storage)
    n, peak, rss = _measure(lambda: _drain(iter(z)))
    assert n == z.length > 3 * SIZE
    assert peak < LIMIT and rss < LIMIT, (peak, rss)
    # a range from the middle of the second file to the end
    n, peak, rss = _measure(lambda: _drain(z.iter_range(SIZE + SIZE // 2, z.length)))
    assert n == z.length - SIZE - SIZE // 2
    assert peak < LIMIT and rss < LIMIT, (peak, rss)


def test_deflate_zip(storage: LocalStorage) -> None:
    members = [ZipMember(f"ids/f/{x}", f"1/1/{x}", SIZE) for x in "ab"]
    n, peak, rss = _measure(lambda: _drain(deflate_zip(members, storage)))
    assert 0 < n < SIZE  # zeros compress
    assert peak < LIMIT and rss < LIMIT, (peak, rss)


def test_put(storage: LocalStorage) -> None:
    def body() -> Iterator[bytes]:
        chunk = bytes(MB)
        for _ in range(SIZE // MB):
            yield chunk

    result = None

    def run() -> int:
        nonlocal result
        result = storage.put("2/2/upload", body())
        return result.size

    n, peak, rss = _measure(run)
    assert n == SIZE and storage.size("2/2/upload") == SIZE
    assert result is not None and result.crc32 == zlib.crc32(bytes(SIZE))
    assert peak < LIMIT and rss < LIMIT, (peak, rss)
