"""How the portal queries grow with the catalogue: root and user latency per size, one table.

    .venv/bin/python bench/scale.py --database URL_WITH_{scale} [--scales 100,300,1000]
        [--repeat 20]   # e.g. postgresql://postgres@127.0.0.1/cairn_scale_{scale}

For each scale (100 is about a million datafiles, 1000 ten million) the catalogue at
``--database`` with ``{scale}`` replaced is used as it is if it holds the demo, loaded
otherwise (a PostgreSQL or MariaDB database is created if missing; a SQLite URL names a file,
e.g. ``sqlite:////tmp/cairn-scale/{scale}.db``). Each catalogue then gets the rule set of
``bench/authz_search.py`` and its portal queries, timed as root and as ``db/jbloggs`` over REST
exactly as that benchmark times them (alternating, medians). The table printed last has one
row per query and, per scale, root ms, user ms and user/root, so the growth of each query with
the catalogue shows in one run; loading times and rates are printed as they happen.

``--shapes N`` adds, per size, the count of every datafile in process, root against the user
with the predicate correlated per row and as sets of readable datasets (both shapes of
``cairn.authz``, whichever the backend uses in service), N times each, alternating.

The databases are kept: a second run measures again without loading. On a machine shared
with other work, compare ratios within a column and say the load (printed per scale).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from authz_search import (
    ROOT,
    ROOT_PASSWORD,
    USER,
    USER_PASSWORD,
    Client,
    Timing,
    demo_database,
    portal_queries,
    rule_set,
    run,
    start,
)
from cairn_process import stop
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cairn.db.engine import normalise_url


@dataclass
class Column:
    scale: float
    datafiles: int
    load: str
    results: dict[str, Timing]
    shapes: dict[str, list[float]] | None = None
    shapes_load: str = ""


def ensure_database(url: str) -> None:
    """Create the PostgreSQL or MariaDB database named by ``url`` if it does not exist."""
    u = make_url(normalise_url(url))
    if u.drivername.startswith("sqlite"):
        if u.database:
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        return
    name = u.database
    # A database that is always there (URL.set(database=None) keeps the old name).
    admin_db = "postgres" if u.drivername.startswith("postgresql") else "mysql"
    engine = create_engine(u.set(database=admin_db), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if u.drivername.startswith("postgresql"):
                there = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                     {"n": name}).first()
                if there is None:
                    conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            else:
                conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS `{name}`")
    finally:
        engine.dispose()


def measure_scale(url: str, scale: float, repeat: int, warmup: int, timeout: float,
                  only: list[str] | None, shapes: int = 0) -> Column:
    ensure_database(url)
    started = time.perf_counter()
    db = demo_database(url, scale)
    with db.connect() as conn:
        files = int(conn.exec_driver_sql("SELECT COUNT(*) FROM DATAFILE").scalar_one())
    db.dispose()
    print(f"scale {scale:g}: {files:,} datafiles ready after "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    work = Path(tempfile.mkdtemp(prefix=f"cairn-bench-scale-{scale:g}-"))
    proc, base = start(work, url)
    try:
        root = Client(base, "simple", ROOT, ROOT_PASSWORD, timeout)
        user = Client(base, "db", USER, USER_PASSWORD, timeout)
        have = {(r[0], r[1]) for r in root.ok("SELECT r.what, r.crudFlags FROM Rule r")}
        missing = [r for r in rule_set() if r not in have]
        if missing:
            root.write([{"Rule": {"crudFlags": flags, "what": what}} for what, flags in missing])
        portal, informative = portal_queries(root)
        queries = [q for q in portal + informative if not only or q[0] in only]
        results = dict(run(root, user, queries, repeat, warmup))
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    finally:
        stop(proc)
    column = Column(scale, files, load, results)
    if shapes:
        column.shapes = count_shapes(url, shapes)
        column.shapes_load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return column


def count_shapes(url: str, repeat: int) -> dict[str, list[float]]:
    """Seconds to count every datafile in process, as root and as the user with each shape
    of the authorization predicate (rows: correlated per row; sets: the readable datasets
    once, ``cairn.authz.rules.as_one_set``), alternating; the same statement Cairn runs for
    ``SELECT COUNT(o) FROM Datafile o``, without HTTP."""
    from sqlalchemy import func, select

    from cairn.authz import Access, policy
    from cairn.db.engine import Database
    from cairn.query.execute import queries_for
    from cairn.startup import catalogue_of

    db = Database(url)
    db.detect_ids()
    saved = policy.SET_SHAPE_DIALECTS
    policy.SET_SHAPE_DIALECTS = saved | {db.dialect}  # measure both wherever they are used
    try:
        c = catalogue_of(db)
        q = queries_for(db).search("SELECT COUNT(o) FROM Datafile o")
        col = q.id_paths[0].column
        times: dict[str, list[float]] = {"root": [], "rows": [], "sets": []}
        counts: dict[str, int] = {}
        with c.as_user(c.sessions.create(f"db/{USER}"), read_only=True) as work:
            preds = {"root": None,
                     "rows": c.authz.predicate(work, Access.READ, "Datafile", col),
                     "sets": c.authz.predicate(work, Access.READ, "Datafile", col,
                                               whole_table=True)}
            stmts = {k: select(func.count(col)) if p is None
                     else select(func.count(col)).where(p) for k, p in preds.items()}
            for i in range(repeat):
                for k in (list(stmts) if i % 2 == 0 else list(reversed(stmts))):
                    t = time.perf_counter()
                    counts[k] = work.conn.execute(stmts[k], dict(work.params)).scalar_one()
                    times[k].append(time.perf_counter() - t)
        if counts["rows"] != counts["sets"]:
            raise RuntimeError(f"the two shapes disagree: {counts}")
        return times
    finally:
        policy.SET_SHAPE_DIALECTS = saved
        db.dispose()


def table(columns: list[Column]) -> str:
    labels = list(dict.fromkeys(label for c in columns for label in c.results))
    head = f"{'query':<14}" + "".join(
        f"{f'{c.datafiles / 1e6:.1f} M datafiles: root / user ms (x)':>42}" for c in columns)
    lines = [head, "-" * len(head)]
    for label in labels:
        cells = []
        for c in columns:
            t = c.results.get(label)
            if t is None or t.error or not t.root or not t.user:
                cells.append(f"{'failed' if t is not None and t.error else '-':>42}")
                continue
            r, u = statistics.median(t.root) * 1000, statistics.median(t.user) * 1000
            cells.append(f"{f'{r:.1f} / {u:.1f} ({u / r:.2f})':>42}")
        lines.append(f"{label:<14}" + "".join(cells))
    lines.append(f"{'load average':<14}" + "".join(f"{c.load:>42}" for c in columns))
    if any(c.shapes for c in columns):
        lines += ["", "Counting every datafile in process (--shapes): root / user ms (x), "
                  "the user's predicate correlated per row and as sets"]
        for shape in ("rows", "sets"):
            cells = []
            for c in columns:
                if not c.shapes:
                    cells.append(f"{'-':>42}")
                    continue
                r = statistics.median(c.shapes["root"]) * 1000
                u = statistics.median(c.shapes[shape]) * 1000
                cells.append(f"{f'{r:,.0f} / {u:,.0f} ({u / r:.2f})':>42}")
            lines.append(f"{'df-count ' + shape:<14}" + "".join(cells))
        lines.append(f"{'load average':<14}" + "".join(f"{c.shapes_load:>42}" for c in columns))
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--database", required=True,
                   help="SQLAlchemy URL with {scale}, e.g. "
                        "postgresql://postgres@127.0.0.1/cairn_scale_{scale}")
    p.add_argument("--scales", default="100,300,1000",
                   help="comma-separated demo scales (100 = about a million datafiles)")
    p.add_argument("--repeat", type=int, default=20, help="timed requests per query and user")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--only", action="append", help="run only these queries (repeatable)")
    p.add_argument("--shapes", type=int, default=0, metavar="N",
                   help="also count every datafile in process N times as root and with each "
                        "shape of the user's predicate (correlated, sets)")
    args = p.parse_args()
    if "{scale}" not in args.database:
        sys.exit("--database must contain {scale}: each size is a catalogue of its own")
    columns = []
    for raw in args.scales.split(","):
        scale = float(raw)
        url = args.database.replace("{scale}", f"{scale:g}")
        print(f"\n== scale {scale:g}: {url.split('@')[-1]}", flush=True)
        columns.append(measure_scale(url, scale, args.repeat, args.warmup, args.timeout,
                                     args.only, args.shapes))
    print(f"\n{os.cpu_count()} CPUs; medians of {args.repeat} requests per query and user, "
          "over REST; (x) = user / root\n")
    print(table(columns))
    failed = sum(1 for c in columns for t in c.results.values() if t.error)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
