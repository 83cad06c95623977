"""``cairn.heap``: the C allocator's arenas limited and its free pages handed back (glibc)."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cairn import cache, heap
from cairn.cache import Lru, Reaper

glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                           reason="malloc arenas and malloc_trim are glibc's")

# Eight threads each allocate from malloc (bytes objects over 512 bytes bypass pymalloc),
# then malloc_info says how many arenas (<heap nr=...>) exist. The threads wait for each other
# before they end: an ended thread's arena goes to the next thread, so threads that happened to
# run one after the other (a loaded CI machine) shared one and the count said nothing.
ARENAS = textwrap.dedent("""
    import ctypes, sys, threading
    from cairn import heap
    if sys.argv[1] == "limit":
        assert heap.limit_arenas(2)
    kept = []
    together = threading.Barrier(8)
    def work():
        kept.append([bytes(1000 + i) for i in range(2000)])
        together.wait(60)
    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    libc = ctypes.CDLL(None)
    libc.fopen.restype = ctypes.c_void_p
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    f = libc.fopen(sys.argv[2].encode(), b"w")
    libc.malloc_info(0, f)
    libc.fclose(f)
""")


def _arenas(tmp_path: Path, mode: str) -> int:
    out = tmp_path / f"{mode}.xml"
    subprocess.run([sys.executable, "-c", ARENAS, mode, str(out)], check=True, timeout=120)
    return out.read_text().count("<heap nr=")


@glibc
def test_threads_share_the_arenas_allowed(tmp_path: Path) -> None:
    assert _arenas(tmp_path, "default") > 2  # a thread meeting others takes an arena of its own
    assert _arenas(tmp_path, "limit") <= 2


def _rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096


@glibc
def test_trim_returns_free_pages_inside_the_heap() -> None:
    """40 MB freed below a live allocation: malloc keeps it resident until trimmed."""
    pieces = [bytes(2000 + i % 7) for i in range(20_000)]
    last = bytes(2000)  # above them: nothing freed can shrink the heap from its top
    heap.trim()
    del pieces
    before = _rss()
    assert heap.trim()
    assert before - _rss() > 20_000_000
    del last


def test_the_reaper_trims_after_each_collection(monkeypatch: pytest.MonkeyPatch) -> None:
    trims: list[int] = []

    def trim() -> bool:
        trims.append(1)
        return True

    monkeypatch.setattr(heap, "trim", trim)
    reaper = Reaper(every=3)
    monkeypatch.setattr(cache, "REAPER", reaper)
    lru: Lru[int, int] = Lru(1)
    for i in range(7):  # six evictions
        lru.put(i, i)
    assert reaper.collections == 2
    assert len(trims) == 2
