"""Run ``cairn`` with Python's allocation tracer on, writing heap snapshots as it serves.

    python bench/memtrace.py OUT_DIR SECONDS [--caches-only] [--gc-probe] serve --config ...

Everything after ``SECONDS`` (and the options) is ``cairn``'s command line. Every
``SECONDS`` a daemon thread writes ``OUT_DIR/heap-<n>.pickle`` (a :class:`tracemalloc.Snapshot`,
tracebacks 16 frames deep) and ``OUT_DIR/caches-<n>.json`` (the Python heap's size, how full
each named cache is, :func:`cairn.cache.cache_sizes`, SQLAlchemy's compiled-statement caches,
the collector's counts, and the memory outside Python's objects, :func:`native_memory`), so
that :func:`growth` can say which lines of code hold the memory that appeared between two
moments, and :func:`cache_report` whether it is Python's objects or the C allocator's.
Tracing slows the server several times over: use it to find a leak, never to measure speed.
``--caches-only`` leaves the tracer off and writes only the JSON, at no cost. ``--gc-probe``
also times every collection of the garbage collector (a ``gc.callbacks`` hook: how long it
held every thread and how many objects in reference cycles it freed) and adds the totals per
generation, and each full collection, to the JSON (:func:`gc_report`); it costs two clock
readings per collection.
``bench/soak.py --trace-memory`` / ``--watch-caches`` / ``--gc-probe`` start the server this
way.

Live objects are not counted with ``gc.get_objects()``: called from a thread while others
build tuples, it hands out tuples still under construction, and their owners then fail with
``SystemError: ... bad argument to internal function`` (seen here, as INTERNAL answers).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import json
import sys
import threading
import time
import tracemalloc
from pathlib import Path

FRAMES = 16


class GcProbe:
    """Every collection's pause and the objects it freed, from ``gc.callbacks``."""

    def __init__(self) -> None:
        self.started = 0.0
        # per generation: [collections, seconds, longest, objects collected]
        self.totals = [[0, 0.0, 0.0, 0] for _ in range(3)]
        self.full: list[tuple[float, float, int]] = []  # (when, seconds, collected) of gen 2
        self.t0 = time.monotonic()

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        # runs in the collecting thread with the GIL held: no other thread runs meanwhile
        if phase == "start":
            self.started = time.perf_counter()
            return
        took = time.perf_counter() - self.started
        gen, collected = info["generation"], info["collected"]
        t = self.totals[gen]
        t[0], t[1], t[2], t[3] = t[0] + 1, t[1] + took, max(t[2], took), t[3] + collected
        if gen == 2:
            self.full.append((time.monotonic() - self.t0, took, collected))

    def state(self) -> dict[str, object]:
        return {"totals": [list(t) for t in self.totals], "full": list(self.full)}


PROBE: GcProbe | None = None


def _write(out: Path, n: int) -> None:
    if tracemalloc.is_tracing():
        snap = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)])
        snap.dump(str(out / f"heap-{n}.pickle.part"))
        (out / f"heap-{n}.pickle.part").rename(out / f"heap-{n}.pickle")
    from cairn.cache import REAPER, cache_sizes
    from cairn.query.execute import _QUERIES

    caches = {name: [entries, bound] for name, entries, bound in cache_sizes()}
    for i, db in enumerate(list(_QUERIES.keys())):  # SQLAlchemy's own, per engine
        compiled = db.engine._compiled_cache
        if compiled is not None:
            caches[f"sqlalchemy.compiled.{i}"] = [len(compiled), compiled.capacity]
    (out / f"caches-{n}.json").write_text(json.dumps({
        "traced_bytes": tracemalloc.get_traced_memory()[0],
        "allocated_blocks": sys.getallocatedblocks(),  # Python's own objects, untraced too
        "native": native_memory(),
        "collections": [g["collections"] for g in gc.get_stats()],
        "reaper_collections": REAPER.collections,
        "reaper_trim_seconds": REAPER.trim_seconds,
        "gc": PROBE.state() if PROBE is not None else None,
        "caches": caches}))


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def native_memory() -> dict[str, int]:
    """The process's resident memory and what outside Python's objects holds it, in bytes:
    glibc malloc's heaps (``mallinfo2``, all arenas: their size, in use, free but kept, and
    mapped directly) and SQLite's allocator (``sqlite3_memory_used``, within malloc's use);
    each left out where missing (not glibc, SQLite linked statically)."""
    out: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            out["rss"] = int(line.split()[1]) * 1024
    try:
        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = _MallInfo2
        info = libc.mallinfo2()
        out.update(malloc_heap=info.arena, malloc_used=info.uordblks,
                   malloc_free=info.fordblks, malloc_mapped=info.hblkhd)
    except (OSError, AttributeError):
        pass
    try:
        sqlite = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0")
        sqlite.sqlite3_memory_used.restype = ctypes.c_int64
        out["sqlite_used"] = sqlite.sqlite3_memory_used()
    except (OSError, AttributeError):
        pass
    return out


def _snapshots(out: Path, every: float) -> None:
    n = 0
    while True:
        time.sleep(every)
        _write(out, n)
        n += 1


def growth(first: Path, last: Path, top: int = 12) -> list[str]:
    """Lines describing where the heap grew most between two snapshots (and what shrank
    never matters here): size, count and the innermost frames in Cairn or a library."""
    old = tracemalloc.Snapshot.load(str(first))
    new = tracemalloc.Snapshot.load(str(last))
    lines = []
    for stat in new.compare_to(old, "traceback")[:top]:
        if stat.size_diff <= 0:
            continue
        frames = [f for f in stat.traceback if "tracemalloc" not in f.filename][-4:]
        where = " <- ".join(f"{_short(f.filename)}:{f.lineno}" for f in reversed(frames))
        lines.append(f"{stat.size_diff / 1e6:+8.2f} MB {stat.count_diff:+9,} blocks  {where}")
    return lines


def cache_report(first: Path, last: Path) -> list[str]:
    """The Python heap and each named cache's fill, at two moments."""
    old, new = json.loads(first.read_text()), json.loads(last.read_text())
    lines = [f"Python heap (traced): {old['traced_bytes'] / 1e6:.0f} -> "
             f"{new['traced_bytes'] / 1e6:.0f} MB; blocks allocated "
             f"{old.get('allocated_blocks', 0):,} -> {new.get('allocated_blocks', 0):,}; "
             "collections per generation "
             f"{old['collections']} -> {new['collections']}, by the reaper "
             f"{old['reaper_collections']} -> {new['reaper_collections']}"]
    if old.get("native") and new.get("native"):
        lines.append("native (MB): " + ", ".join(
            f"{k} {old['native'].get(k, 0) / 1e6:.1f} -> {v / 1e6:.1f}"
            for k, v in new["native"].items()))
    for name, (entries, bound) in sorted(new["caches"].items()):
        before = old["caches"].get(name, [0, bound])[0]
        lines.append(f"  {name:<24} {before:>6,} -> {entries:>6,} of {bound:,}")
    return lines


def gc_report(state: dict[str, object], since: float = 0.0) -> list[str]:
    """What the collector cost (from ``--gc-probe``'s JSON): per generation, and the full
    collections from minute ``since`` on."""
    totals = state["totals"]
    assert isinstance(totals, list)
    lines = ["collector (whole run): " + "; ".join(
        f"gen {g}: {n:,} collections, {secs:.1f} s, longest {longest * 1000:.0f} ms, "
        f"{collected:,} objects freed" for g, (n, secs, longest, collected) in enumerate(totals))]
    full = [(t, s, c) for t, s, c in state["full"] if t >= since * 60]  # type: ignore[attr-defined]
    if full:
        pauses = sorted(s for _, s, _ in full)
        freed = sorted(c for _, _, c in full)
        span = (full[-1][0] - full[0][0]) / max(1, len(full) - 1)
        lines.append(f"full collections from minute {since:g}: {len(full)}, one every "
                     f"{span:.1f} s; pause median {pauses[len(pauses) // 2] * 1000:.0f} ms, "
                     f"longest {pauses[-1] * 1000:.0f} ms; objects freed median "
                     f"{freed[len(freed) // 2]:,}, most {freed[-1]:,}")
    return lines


def _short(filename: str) -> str:
    for marker in ("/site-packages/", "/src/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def main() -> int:
    global PROBE
    out, every, argv = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
    out.mkdir(parents=True, exist_ok=True)
    options = set()
    while argv[:1] in (["--caches-only"], ["--gc-probe"]):
        options.add(argv.pop(0))
    if "--caches-only" not in options:
        tracemalloc.start(FRAMES)
    if "--gc-probe" in options:
        PROBE = GcProbe()
        gc.callbacks.append(PROBE)
    threading.Thread(target=_snapshots, args=(out, every), daemon=True,
                     name="memtrace").start()
    from cairn.cli import main as cairn_main

    return cairn_main(argv)


if __name__ == "__main__":
    sys.exit(main())
