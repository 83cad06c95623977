"""The plans and times of portal search pages sorted by a kept sort key (a datafile's date or
size), on a catalogue holding the demo (as ``bench/search.py`` leaves it): what the database
does for the page statement, to check that it walks the key table's (key, id) index and stops
after the page instead of sorting every file.

    .venv/bin/python bench/search_plans.py --database URL [--repeat 5] [--no-plans]

For each search, as root and as the benchmark user (``db/jbloggs`` under the demo's rules):
the page statement's plan (SQLite ``EXPLAIN QUERY PLAN``, PostgreSQL ``EXPLAIN (ANALYZE)``,
MariaDB ``ANALYZE FORMAT=JSON``, shortened), whether it sorts, and the median time of the
search (the service call, in process) with the key table against the same search reading
the expressions (the key table marked unfilled for the run): the baseline, with the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, update

from cairn.config import SEARCHABLE
from cairn.db.engine import Database
from cairn.search.service import SearchService
from cairn.startup import catalogue_of

USER = "db/jbloggs"
#: (label, query, sort)
SEARCHES = (
    ("all newest", {"target": "Datafile"}, {"date": "desc"}),
    ("all oldest", {"target": "Datafile"}, {"date": "asc"}),
    ("all largest", {"target": "Datafile"}, {"fileSize": "desc"}),
    ("all smallest", {"target": "Datafile"}, {"fileSize": "asc"}),
    ("calib* newest", {"target": "Datafile", "text": "calib*"}, {"date": "desc"}),
    ("scan* newest", {"target": "Datafile", "text": "scan*"}, {"date": "desc"}),
    ("datasets newest", {"target": "Dataset"}, {"date": "desc"}),
)
PAGE = 25


@contextmanager
def captured(db: Database) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def grab(conn: Any, cursor: Any, statement: str, params: Any, context: Any,
             many: bool) -> None:
        seen.append((statement, params))

    event.listen(db.engine, "before_cursor_execute", grab)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", grab)


def plan(db: Database, statement: str, params: Any) -> list[str]:
    prefix = {"sqlite": "EXPLAIN QUERY PLAN ", "postgresql": "EXPLAIN (ANALYZE, COSTS OFF) ",
              }.get(db.dialect, "ANALYZE FORMAT=JSON ")
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(prefix + statement, params)
        rows = cur.fetchall()
    finally:
        raw.close()
    if db.dialect == "sqlite":
        return [f"{r[1]:>3} {r[3]}" for r in rows]
    if db.dialect == "postgresql":
        return [r[0] for r in rows]
    doc = json.loads(rows[0][0])
    out: list[str] = []

    def walk(node: Any, depth: int) -> None:
        if isinstance(node, dict):
            if "table_name" in node:
                t = node
                out.append(f"{'  ' * depth}{t['table_name']}: {t.get('access_type')} "
                           f"key={t.get('key')} r_rows={t.get('r_rows')}")
            for k, v in node.items():
                if k in ("filesort", "temporary_table"):
                    out.append(f"{'  ' * depth}{k}")
                walk(v, depth + 1)
        elif isinstance(node, list):
            for v in node:
                walk(v, depth)

    walk(doc, 0)
    return out


def set_filled(service: SearchService, target: str, filled: bool) -> None:
    st = service.index.state
    with service.db.begin() as conn:
        conn.execute(update(st).where(st.c.entity == target).values(filled=int(filled)))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--database", required=True)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--no-plans", action="store_true")
    p.add_argument("--only", action="append", help="only these searches (labels)")
    args = p.parse_args()
    db = Database(args.database)
    db.detect_ids()
    catalogue = catalogue_of(db)
    service = SearchService(catalogue, db, list(SEARCHABLE))
    sids = {"root": catalogue.sessions.create("db/root"),
            "user": catalogue.sessions.create(USER)}
    print(f"{db.dialect}; load average {os.getloadavg()[0]:.2f}", flush=True)

    def run(sid: str, query: dict[str, Any], sort: dict[str, str]) -> float:
        t0 = time.perf_counter()
        service.search_documents(sid, json.dumps(query), max_count=str(PAGE),
                                 sort=json.dumps(sort))
        return time.perf_counter() - t0

    rows = []
    for label, query, sort in SEARCHES:
        if args.only and label not in args.only:
            continue
        for who, sid in sids.items():
            if not args.no_plans:
                with captured(db) as seen:
                    run(sid, query, sort)
                page = [s for s in seen if "ORDER BY" in s[0] and "LIMIT" in s[0]]
                print(f"\n== {label} as {who}: {len(page)} page statement(s)")
                for statement, params in page[-1:]:
                    for line in plan(db, statement, params):
                        print("   " + line)
            times = {}
            for filled in (True, False):
                set_filled(service, query["target"], filled)
                run(sid, query, sort)  # warm
                times[filled] = statistics.median(run(sid, query, sort)
                                                  for _ in range(args.repeat))
            set_filled(service, query["target"], True)
            rows.append((label, who, times[True], times[False]))
    print(f"\nmedian of {args.repeat}, ms (load average {os.getloadavg()[0]:.2f})")
    print(f"{'search':<18}{'who':<6}{'keys':>9}{'exprs':>9}{'ratio':>8}")
    for label, who, keyed, plain in rows:
        print(f"{label:<18}{who:<6}{keyed * 1000:>9.1f}{plain * 1000:>9.1f}"
              f"{keyed / plain:>8.2f}")
    db.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
