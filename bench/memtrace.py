"""Run ``cairn`` with Python's allocation tracer on, writing heap snapshots as it serves.

    python bench/memtrace.py OUT_DIR SECONDS [--caches-only] serve --config cairn.toml ...

Everything after ``SECONDS`` (and ``--caches-only``) is ``cairn``'s command line. Every
``SECONDS`` a daemon thread writes ``OUT_DIR/heap-<n>.pickle`` (a :class:`tracemalloc.Snapshot`,
tracebacks 16 frames deep) and ``OUT_DIR/caches-<n>.json`` (the Python heap's size, how full
each named cache is, :func:`cairn.cache.cache_sizes`, SQLAlchemy's compiled-statement caches
and the collector's counts), so that :func:`growth` can say which lines of code hold the
memory that appeared between two moments. Tracing slows the server several times over: use
it to find a leak, never to measure speed. ``--caches-only`` leaves the tracer off and writes
only the JSON, at no cost. ``bench/soak.py --trace-memory`` / ``--watch-caches`` start the
server this way.

Live objects are not counted with ``gc.get_objects()``: called from a thread while others
build tuples, it hands out tuples still under construction, and their owners then fail with
``SystemError: ... bad argument to internal function`` (seen here, as INTERNAL answers).
"""

from __future__ import annotations

import gc
import json
import sys
import threading
import time
import tracemalloc
from pathlib import Path

FRAMES = 16


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
        "collections": [g["collections"] for g in gc.get_stats()],
        "reaper_collections": REAPER.collections,
        "caches": caches}))


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
             f"{new['traced_bytes'] / 1e6:.0f} MB; collections per generation "
             f"{old['collections']} -> {new['collections']}, by the reaper "
             f"{old['reaper_collections']} -> {new['reaper_collections']}"]
    for name, (entries, bound) in sorted(new["caches"].items()):
        before = old["caches"].get(name, [0, bound])[0]
        lines.append(f"  {name:<24} {before:>6,} -> {entries:>6,} of {bound:,}")
    return lines


def _short(filename: str) -> str:
    for marker in ("/site-packages/", "/src/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def main() -> int:
    out, every, argv = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
    out.mkdir(parents=True, exist_ok=True)
    if argv[:1] == ["--caches-only"]:
        argv = argv[1:]
    else:
        tracemalloc.start(FRAMES)
    threading.Thread(target=_snapshots, args=(out, every), daemon=True,
                     name="memtrace").start()
    from cairn.cli import main as cairn_main

    return cairn_main(argv)


if __name__ == "__main__":
    sys.exit(main())
