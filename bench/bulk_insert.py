"""Bulk-insert speed of `cairn demo`, against raw sqlite3 in the same run.

    .venv/bin/python bench/bulk_insert.py --scale 10 [--database URL] [--seed 1] [-v]

Loads the demo catalogue (scale 1 ≈ 10,000 datafiles) into a fresh temporary SQLite file, or
into an empty catalogue at URL (tables are created if missing), and prints rows, seconds and
rows/s. The baseline inserts the same number of datafile-like rows with the standard
library's ``sqlite3.executemany`` into a bare table (no indexes, no foreign keys; rows made
before the clock starts, in chunks) under the same pragmas, and the ratio Cairn/baseline is
printed last. Cairn's figure includes generating realistic data, type conversion, unique
indexes, foreign-key checks and the commit; the baseline is the floor SQLite itself allows.
"""

from __future__ import annotations

import argparse
import resource
import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import inspect

from cairn.db.engine import Database
from cairn.demo import load_demo
from cairn.startup import catalogue_of

CHUNK = 50_000
BARE_TABLE = """CREATE TABLE DATAFILE (ID INTEGER PRIMARY KEY, CREATE_ID VARCHAR(255) NOT NULL,
    CREATE_TIME DATETIME NOT NULL, MOD_ID VARCHAR(255) NOT NULL, MOD_TIME DATETIME NOT NULL,
    CHECKSUM VARCHAR(255), DATAFILECREATETIME DATETIME, DATAFILEMODTIME DATETIME,
    DATASET_ID BIGINT NOT NULL, DATAFILEFORMAT_ID BIGINT, FILESIZE BIGINT,
    LOCATION VARCHAR(511), NAME VARCHAR(255) NOT NULL)"""


def run_cairn(url: str, scale: float, seed: int, verbose: bool) -> tuple[int, int, float]:
    db = Database(url)
    names = {n.lower() for n in inspect(db.engine).get_table_names()}
    if "datafile" not in names:
        db.tables.metadata.create_all(db.engine)
    progress = (lambda line: print("  ", line, file=sys.stderr)) if verbose else None
    t0 = time.perf_counter()
    counts = load_demo(catalogue_of(db), scale=scale, seed=seed, progress=progress)
    seconds = time.perf_counter() - t0
    db.dispose()
    return sum(counts.values()), counts["Datafile"], seconds


def run_baseline(path: Path, rows: int) -> float:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")  # as Cairn's engine sets them
    con.execute(BARE_TABLE)
    sql = "INSERT INTO DATAFILE VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
    now = datetime.now().replace(microsecond=0).isoformat(" ", "microseconds")
    t0 = datetime(2024, 3, 1, 9)
    elapsed = 0.0
    con.execute("BEGIN")
    for start in range(0, rows, CHUNK):
        chunk = []
        for i in range(start, min(rows, start + CHUNK)):
            ds, j = divmod(i, 50)
            name = f"scan_{ds % 16 + 1:04d}_{j + 1:05d}.cbf"
            when = (t0 + timedelta(seconds=i)).isoformat(" ", "microseconds")
            chunk.append((i + 1, "db/root", now, "db/root", now, f"{i * 2654435761 % 2**32:08x}",
                          when, when, ds + 1, 3, 6_000_000 + i % 400_000,
                          f"LSF-2024-{ds // 10:04d}-1/scan_{ds % 16 + 1:04d}/{name}", name))
        t = time.perf_counter()
        con.executemany(sql, chunk)
        elapsed += time.perf_counter() - t
    t = time.perf_counter()
    con.execute("COMMIT")
    elapsed += time.perf_counter() - t
    con.close()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=10.0, help="1 = about 10,000 datafiles")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--database", help="URL of an empty catalogue (default: temp SQLite file)")
    ap.add_argument("-v", "--verbose", action="store_true", help="progress lines on stderr")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cairn-bench-") as tmp:
        url = args.database or f"sqlite:///{Path(tmp) / 'catalogue.db'}"
        shown = url.split("@")[-1] if args.database else url
        print(f"cairn demo, scale {args.scale:g}, seed {args.seed}, into {shown}")
        rows, files, seconds = run_cairn(url, args.scale, args.seed, args.verbose)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        cairn_rate = rows / seconds
        print(f"  cairn:    {rows:>10,} rows ({files:,} datafiles) in {seconds:7.2f} s = "
              f"{cairn_rate:>9,.0f} rows/s   (peak RSS {rss:,.0f} MB)")
        base_seconds = run_baseline(Path(tmp) / "baseline.db", rows)
        base_rate = rows / base_seconds
        print(f"  baseline: {rows:>10,} rows, raw sqlite3 executemany, bare table, in "
              f"{base_seconds:7.2f} s = {base_rate:>9,.0f} rows/s")
        print(f"  ratio cairn/baseline: {cairn_rate / base_rate:.2f}")


if __name__ == "__main__":
    main()
