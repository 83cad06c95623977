"""Export and import speed (`cairn export` / `cairn import`), against the bulk loader of
`cairn demo` in the same run.

    .venv/bin/python bench/port.py [--scale 100] [--into URL] [--seed 1] [-v]

1. loads the demo catalogue (scale 1 is about 12,600 rows) into a fresh temporary SQLite
   file with the bulk loader (the baseline: the fastest way rows get into the catalogue);
2. exports it, as root, to a dump file (icat.server's format), streamed;
3. imports that file into an empty catalogue: a second temporary SQLite file, or the empty
   database at URL (tables are created if missing), in one transaction, as root;
4. exports the imported catalogue again and checks the two files are identical.

Prints rows, seconds, rows/s and peak memory (RSS) of each step, and the ratios of export
and import to the bulk loader. The bulk loader writes rows it generates itself; the import
reads, parses and checks every line, resolves every reference by its natural key, looks
for duplicates and checks permissions (a no-op for root) as any write does.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import inspect

from cairn.db import migrate
from cairn.db.engine import Database
from cairn.demo import load_demo
from cairn.port.dumpfile import read_records
from cairn.port.exporter import Export
from cairn.port.importer import import_records
from cairn.startup import catalogue_of

USER = "db/root"


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Clock:
    """Wall and CPU time of a step: on a shared machine the CPU figure is the steadier."""

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def line(self, name: str, rows: int, extra: str = "") -> tuple[float, float]:
        wall = time.perf_counter() - self.wall
        cpu = time.process_time() - self.cpu
        print(f"  {name:<7} {rows:>10,} rows in {wall:7.2f} s = {rows / wall:>9,.0f} rows/s"
              f"  (CPU {cpu:7.2f} s = {rows / cpu:>9,.0f} rows/s; peak RSS "
              f"{rss_mb():,.0f} MB){extra}", flush=True)
        return rows / wall, rows / cpu


def export_to(db: Database, path: Path) -> int:
    export = Export(catalogue_of(db).as_system(read_only=True, user=USER)).open()
    with path.open("wb") as out:
        for chunk in export:
            out.write(chunk)
    return export.rows


def fresh(url: str) -> Database:
    db = Database(url)
    names = {n.lower() for n in inspect(db.engine).get_table_names()}
    if "datafile" not in names:
        migrate.upgrade(db)
    return db


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=100.0, help="1 = about 12,600 rows")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--into", metavar="URL", help="an empty catalogue to import into "
                                                 "(default: a temporary SQLite file)")
    ap.add_argument("-v", "--verbose", action="store_true", help="progress lines on stderr")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cairn-bench-port-") as tmp:
        source = fresh(f"sqlite:///{Path(tmp) / 'source.db'}")
        target = fresh(args.into or f"sqlite:///{Path(tmp) / 'target.db'}")
        shown = target.engine.url.render_as_string(hide_password=True)
        print(f"demo scale {args.scale:g}, seed {args.seed}: SQLite -> dump -> {shown}")
        progress = (lambda text: print("   ", text, file=sys.stderr)) if args.verbose \
            else None
        clock = Clock()
        counts = load_demo(catalogue_of(source), scale=args.scale, seed=args.seed,
                           user=USER, progress=progress)
        bulk = clock.line("bulk", sum(counts.values()))

        dump = Path(tmp) / "catalogue.dump"
        clock = Clock()
        rows = export_to(source, dump)
        exported = clock.line("export", rows, f", {dump.stat().st_size / 2**20:,.0f} MiB")

        clock = Clock()
        with catalogue_of(target).as_system(user=USER) as work, dump.open("rb") as f:
            report = import_records(work, read_records(f, target.zone))
        imported = clock.line("import", report.rows)

        again = Path(tmp) / "again.dump"
        export_to(target, again)
        same = again.read_bytes() == dump.read_bytes()
        print(f"  round trip identical: {'yes' if same else 'NO'}")
        print(f"  ratio export/bulk: {exported[0] / bulk[0]:.2f} (CPU {exported[1] / bulk[1]:.2f})"
              f"   import/bulk: {imported[0] / bulk[0]:.2f} (CPU {imported[1] / bulk[1]:.2f})")
        source.dispose()
        target.dispose()
        if not same:
            sys.exit(1)


if __name__ == "__main__":
    main()
