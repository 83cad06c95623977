"""Bulk-insert speed of `cairn demo`, against the backend's raw floor in the same run.

    .venv/bin/python bench/bulk_insert.py --scale 10 [--database URL] [--seed 1] [-v]

Loads the demo catalogue (scale 1 ≈ 10,000 datafiles, 12,200 rows) into a fresh temporary
SQLite file, or into an empty catalogue at URL (brought to Cairn's schema by its migrations,
as ``cairn demo`` finds it, triggers included), and prints rows, seconds, rows/s and the
process's peak memory. The baseline writes the same number of datafile-like rows into a
bare table (no indexes, no foreign keys, no triggers), made before the clock starts, the
fastest way the driver offers:

- SQLite: the standard library's ``sqlite3.executemany``, under Cairn's pragmas;
- PostgreSQL: psycopg's ``COPY`` of ready text (into a table dropped afterwards);
- MariaDB: PyMySQL's ``executemany`` (multi-row INSERTs) in one transaction.

The ratio Cairn/baseline is printed last. Cairn's figure includes generating realistic data,
type conversion, indexes, foreign-key checks, the file-size sums and the commit; the
baseline is the floor the database itself allows.
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cairn.db import migrate
from cairn.db.engine import Database
from cairn.demo import load_demo
from cairn.startup import catalogue_of

CHUNK = 50_000
BARE = "CAIRN_BENCH_BARE_DATAFILE"
COLUMNS = """(ID {id}, CREATE_ID VARCHAR(255) NOT NULL,
    CREATE_TIME {dt} NOT NULL, MOD_ID VARCHAR(255) NOT NULL, MOD_TIME {dt} NOT NULL,
    CHECKSUM VARCHAR(255), DATAFILECREATETIME {dt}, DATAFILEMODTIME {dt},
    DATASET_ID BIGINT NOT NULL, DATAFILEFORMAT_ID BIGINT, FILESIZE BIGINT,
    LOCATION VARCHAR(511), NAME VARCHAR(255) NOT NULL)"""
TYPES = {"sqlite": {"id": "INTEGER PRIMARY KEY", "dt": "DATETIME"},
         "postgresql": {"id": "BIGINT", "dt": "TIMESTAMP"},
         "mysql": {"id": "BIGINT", "dt": "DATETIME(6)"}}


def run_cairn(url: str, scale: float, seed: int, verbose: bool) -> tuple[int, int, float]:
    db = Database(url)
    migrate.upgrade(db)
    db.detect_ids()
    progress = (lambda line: print("  ", line, file=sys.stderr)) if verbose else None
    t0 = time.perf_counter()
    counts = load_demo(catalogue_of(db), scale=scale, seed=seed, progress=progress)
    seconds = time.perf_counter() - t0
    db.dispose()
    return sum(counts.values()), counts["Datafile"], seconds


def chunks(rows: int) -> Iterator[list[tuple[Any, ...]]]:
    """Datafile-like rows, CHUNK at a time."""
    now = datetime.now().replace(microsecond=0)
    t0 = datetime(2024, 3, 1, 9)
    for start in range(0, rows, CHUNK):
        chunk = []
        for i in range(start, min(rows, start + CHUNK)):
            ds, j = divmod(i, 50)
            name = f"scan_{ds % 16 + 1:04d}_{j + 1:05d}.cbf"
            when = t0 + timedelta(seconds=i)
            chunk.append((i + 1, "db/root", now, "db/root", now, f"{i * 2654435761 % 2**32:08x}",
                          when, when, ds + 1, 3, 6_000_000 + i % 400_000,
                          f"LSF-2024-{ds // 10:04d}-1/scan_{ds % 16 + 1:04d}/{name}", name))
        yield chunk


def baseline_sqlite(path: Path, rows: int) -> float:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")  # as Cairn's engine sets them
    con.execute(f"CREATE TABLE {BARE} {COLUMNS.format(**TYPES['sqlite'])}")
    sql = f"INSERT INTO {BARE} VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
    elapsed = 0.0
    con.execute("BEGIN")
    for chunk in chunks(rows):
        text_rows = [tuple(v.isoformat(" ", "microseconds") if isinstance(v, datetime) else v
                           for v in row) for row in chunk]
        t = time.perf_counter()
        con.executemany(sql, text_rows)
        elapsed += time.perf_counter() - t
    t = time.perf_counter()
    con.execute("COMMIT")
    elapsed += time.perf_counter() - t
    con.close()
    return elapsed


def baseline_postgresql(url: str, rows: int) -> float:
    import psycopg

    from cairn.demo.copytext import copy_text

    db = Database(url)
    conninfo = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    db.dispose()
    elapsed = 0.0
    with psycopg.connect(conninfo) as con:
        con.execute(f"DROP TABLE IF EXISTS {BARE}")
        con.execute(f"CREATE TABLE {BARE} {COLUMNS.format(**TYPES['postgresql'])}")
        con.commit()
        try:
            for chunk in chunks(rows):
                data = (copy_text([list(c) for c in zip(*chunk, strict=True)], len(chunk))
                        or "").encode()
                t = time.perf_counter()
                with con.cursor() as cur, cur.copy(f"COPY {BARE} FROM STDIN") as pipe:
                    pipe.write(data)
                elapsed += time.perf_counter() - t
            t = time.perf_counter()
            con.commit()
            elapsed += time.perf_counter() - t
        finally:
            con.execute(f"DROP TABLE IF EXISTS {BARE}")
            con.commit()
    return elapsed


def baseline_mariadb(url: str, rows: int) -> float:
    db = Database(url)
    elapsed = 0.0
    with db.engine.connect() as conn:
        raw: Any = conn.connection.driver_connection
        cur = raw.cursor()
        cur.execute(f"DROP TABLE IF EXISTS {BARE}")
        cur.execute(f"CREATE TABLE {BARE} {COLUMNS.format(**TYPES['mysql'])}")
        raw.commit()
        sql = f"INSERT INTO {BARE} VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
        try:
            for chunk in chunks(rows):
                t = time.perf_counter()
                cur.executemany(sql, chunk)
                elapsed += time.perf_counter() - t
            t = time.perf_counter()
            raw.commit()
            elapsed += time.perf_counter() - t
        finally:
            cur.execute(f"DROP TABLE IF EXISTS {BARE}")
            raw.commit()
    db.dispose()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=10.0, help="1 = about 10,000 datafiles")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--database", help="URL of an empty catalogue (default: temp SQLite file)")
    ap.add_argument("-v", "--verbose", action="store_true", help="progress lines on stderr")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cairn-bench-") as tmp:
        url = args.database or f"sqlite:///{Path(tmp) / 'catalogue.db'}"
        shown = url.split("@")[-1] if args.database else url
        print(f"cairn demo, scale {args.scale:g}, seed {args.seed}, into {shown} "
              f"({os.cpu_count()} CPUs, load average {_load()})")
        rows, files, seconds = run_cairn(url, args.scale, args.seed, args.verbose)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        cairn_rate = rows / seconds
        print(f"  cairn:    {rows:>10,} rows ({files:,} datafiles) in {seconds:7.2f} s = "
              f"{cairn_rate:>9,.0f} rows/s   (peak RSS {rss:,.0f} MB)")
        probe = Database(url)
        backend = probe.dialect
        probe.dispose()
        if backend == "postgresql":
            what, base_seconds = "psycopg COPY of ready text", baseline_postgresql(url, rows)
        elif backend == "sqlite":
            what = "sqlite3 executemany"
            base_seconds = baseline_sqlite(Path(tmp) / "baseline.db", rows)
        else:
            what, base_seconds = "PyMySQL executemany", baseline_mariadb(url, rows)
        base_rate = rows / base_seconds
        print(f"  baseline: {rows:>10,} rows, {what}, bare table, in "
              f"{base_seconds:7.2f} s = {base_rate:>9,.0f} rows/s")
        print(f"  ratio cairn/baseline: {cairn_rate / base_rate:.2f} (load average {_load()})")


def _load() -> str:
    """The 1, 5 and 15 minute load averages: on a shared machine, what the rates ran under."""
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
