"""Portal queries as a non-root user under a realistic rule set, against the same queries as
root, on the demo facility, over REST, in the same run.

    .venv/bin/python bench/authz_search.py [--scale 100] [--database URL] [--repeat 30]

Loads the demo facility (``cairn.demo.load_demo``; ``--scale 100`` is about a million
datafiles) into a fresh catalogue -- a SQLite file in a temporary folder unless ``--database``
names an empty database --, gives the demo's busiest user ``db/jbloggs`` a password, starts
Cairn and, as root through REST, adds the rules a facility like this one has:

- public tables: Facility, Instrument, FacilityCycle, the type tables, Technique...;
- investigation users: ``... JOIN i.investigationUsers iu JOIN iu.user u WHERE u.name = :user``
  for Investigation and everything below it;
- instrument scientists: ``... JOIN i.investigationInstruments ii JOIN ii.instrument inst
  JOIN inst.instrumentScientists s JOIN s.user u WHERE u.name = :user``, likewise;
- public after the release date: ``... WHERE i.releaseDate < CURRENT_TIMESTAMP``, likewise.

Then it runs the portal queries of the query-language benchmark (``bench/query_portal.py``
QUERIES: my-count, my-page, ds-count, ds-page, df-count, df-page, ds-param, inv-param) for
``db/jbloggs``'s data -- the investigation of theirs with most datasets, a dataset of median
size in it -- as ``db/jbloggs`` and as root, alternating, ``--repeat`` times each after a
warm-up, and prints per query the rows returned, the median latencies, the ratio
authorized/root and whether it meets the target (<= 1.5). Counting every investigation and
every datafile is reported below, for information: no portal asks that of a user. Requests are
sequential on one keep-alive connection per user; client time (JSON decoding) is included, as
a portal back end experiences it.

``--database`` may name a database already holding the demo (and the rules): it is reused as
it is, so the figures of a code change can be compared on the same data.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cairn_process import launch_catalogue, stop
from query_portal import QUERIES, analyze

ROOT, ROOT_PASSWORD = "root", "secret"
USER, USER_PASSWORD = "jbloggs", "bench-password"
TARGET = 1.5

def rule_set() -> list[tuple[str, str]]:
    """(what, crudFlags) of the facility's read rules, all without grouping: the demo's own
    (``cairn.demo.rules``: public reference tables; an investigation and everything below it
    for its users, its instruments' scientists and everyone once released)."""
    from cairn.demo import rules

    return [r for r in rules.rules() if r[1] == "R"]


def load(url: str, scale: float) -> None:
    demo_database(url, scale).dispose()


def demo_database(url: str, scale: float) -> Any:
    """The catalogue at ``url`` with the demo (loaded now unless it is there already) and
    the benchmark user's password; the caller disposes of the returned Database."""
    from sqlalchemy import func, select

    from cairn.authn.db import set_password
    from cairn.db import migrate
    from cairn.db.engine import Database
    from cairn.demo import load_demo
    from cairn.startup import catalogue_of

    db = Database(url)
    migrate.upgrade(db)
    db.detect_ids()
    with db.connect() as conn:
        loaded = conn.execute(select(func.count()).select_from(db.tables["Datafile"])
                              ).scalar_one()
    if loaded:
        print(f"reusing the {loaded:,} datafiles already in the database", flush=True)
    else:
        start = time.perf_counter()
        counts = load_demo(catalogue_of(db), scale=scale, user=f"simple/{ROOT}",
                           progress=lambda line: print("  " + line, flush=True))
        print(f"demo loaded in {time.perf_counter() - start:.0f} s: "
              f"{counts.get('Investigation', 0):,} investigations, "
              f"{counts.get('Dataset', 0):,} datasets, {counts.get('Datafile', 0):,} "
              "datafiles", flush=True)
        analyze(db)  # planner statistics, as a catalogue in service has them
    set_password(db, USER, USER_PASSWORD)
    return db


def start(work: Path, database: str) -> tuple[subprocess.Popen[bytes], str]:
    # Free-text search off: none of these queries reads its index, and the rebuild a fresh
    # catalogue starts with (minutes at ten million datafiles) would run under the timings.
    return launch_catalogue(work, database, ROOT, ROOT_PASSWORD,
                            catalogue="max_entities = 100000\nmigrate = false",
                            extra='[authn.db]\ntype = "db"\n[search]\nenabled = false',
                            attempts=1200)


class Client:
    """One user's keep-alive REST session."""

    def __init__(self, url: str, plugin: str, user: str, password: str,
                 timeout: float = 120) -> None:
        self.http = httpx.Client(base_url=url, timeout=timeout)
        body = {"plugin": plugin, "credentials": [{"username": user}, {"password": password}]}
        r = self.http.post("/icat/session", data={"json": json.dumps(body)})
        if r.status_code != 200:
            sys.exit(f"login of {plugin}/{user} failed: {r.text}")
        self.sid = r.json()["sessionId"]

    def search(self, query: str) -> httpx.Response:
        return self.http.get("/icat/entityManager",
                             params={"sessionId": self.sid, "query": query})

    def ok(self, query: str) -> Any:
        try:
            r = self.search(query)
        except httpx.TimeoutException:
            raise RuntimeError(f"timed out after {self.http.timeout.read} s") from None
        if r.status_code != 200:
            raise RuntimeError(f"{query}: {r.status_code} {r.text}")
        return r.json()

    def write(self, entities: Any) -> list[int]:
        r = self.http.post("/icat/entityManager",
                           data={"sessionId": self.sid, "entities": json.dumps(entities)})
        if r.status_code != 200:
            raise RuntimeError(f"write failed: {r.status_code} {r.text}")
        return list(r.json())


def portal_queries(root: Client) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(label, query) of the portal queries for db/jbloggs's data, and the informative ones."""
    u = f"db/{USER}"
    mine = ("FROM Investigation i JOIN i.investigationUsers iu JOIN iu.user u "
            f"WHERE u.name = '{u}'")
    (n_mine,) = root.ok(f"SELECT COUNT(i) {mine}")
    inv = root.ok(f"SELECT i.id {mine} ORDER BY SIZE(i.datasets) DESC, i.id LIMIT 0, 1")[0]
    sizes = root.ok(f"SELECT ds.id, ds.fileCount FROM Dataset ds WHERE ds.investigation.id = "
                    f"{inv} AND ds.fileCount > 0 ORDER BY ds.fileCount, ds.id")
    ds, files = sizes[len(sizes) // 2]
    (released,) = root.ok(f"SELECT COUNT(i) FROM Investigation i WHERE i.id = {inv} "
                          "AND i.releaseDate < CURRENT_TIMESTAMP")
    print(f"{u}: {n_mine} investigations; investigation {inv} "
          f"({'released' if released else 'not released'}, {len(sizes)} datasets), "
          f"dataset {ds} ({files} datafiles)", flush=True)
    params = {"user": u, "inv": inv, "ds": ds}
    portal = [(q.name, q.icat.format(**params)) for q in QUERIES]
    informative = [("all-inv-count", "SELECT COUNT(o) FROM Investigation o"),
                   ("all-df-count", "SELECT COUNT(o) FROM Datafile o")]
    return portal, informative


def rows(answer: Any) -> int:
    if isinstance(answer, list) and len(answer) == 1 and isinstance(answer[0], int | float):
        return int(answer[0])  # a count: show the number
    return len(answer) if isinstance(answer, list) else 1


@dataclass
class Timing:
    root: list[float] = field(default_factory=list)
    user: list[float] = field(default_factory=list)
    rows: tuple[int, int] = (0, 0)
    error: str | None = None


def measure(root: Client, user: Client, query: str, repeat: int, warmup: int) -> Timing:
    t = Timing()

    def once(client: Client) -> tuple[float, Any]:
        start = time.perf_counter()
        try:
            answer = client.ok(query)
        except RuntimeError as e:
            raise RuntimeError(f"{'root' if client is root else 'user'}: {e}") from None
        return time.perf_counter() - start, answer

    try:
        for _ in range(warmup):
            once(root)
            once(user)
        for i in range(repeat):  # alternate, in both orders, so drift hits both alike
            pair: list[tuple[Client, list[float]]] = [(root, t.root), (user, t.user)]
            for client, sink in pair if i % 2 == 0 else reversed(pair):
                secs, answer = once(client)
                sink.append(secs)
                if client is root:
                    t.rows = (rows(answer), t.rows[1])
                else:
                    t.rows = (t.rows[0], rows(answer))
    except RuntimeError as e:
        t.error = str(e)
    return t


def report(title: str, results: list[tuple[str, Timing]], judged: bool) -> int:
    """Print a table; the number of queries that failed."""
    head = (f"{'query':<14}{'rows root':>10}{'rows user':>10}{'root ms':>10}{'user ms':>10}"
            f"{'user r/s':>10}{'ratio':>8}" + ("   meets" if judged else ""))
    print(f"\n{title}\n{head}\n{'-' * len(head)}")
    ratios, meets, failed = [], 0, 0
    for label, t in results:
        if t.error:
            print(f"{label:<14} FAILED: {t.error[:300]}")
            failed += 1
            continue
        r_med, u_med = statistics.median(t.root), statistics.median(t.user)
        ratio = u_med / r_med
        ratios.append(ratio)
        ok = ratio <= TARGET
        meets += ok
        print(f"{label:<14}{t.rows[0]:>10,}{t.rows[1]:>10,}{r_med * 1000:>10.1f}"
              f"{u_med * 1000:>10.1f}{len(t.user) / sum(t.user):>10.1f}{ratio:>8.2f}"
              + (f"   {'yes' if ok else 'NO'}" if judged else ""))
    if ratios and judged:
        print(f"authorized/root median-latency ratio: geometric mean "
              f"{statistics.geometric_mean(ratios):.2f}, max {max(ratios):.2f}; "
              f"{meets} of {len(results)} within the target ({TARGET})")
    return failed


def run(root: Client, user: Client, queries: list[tuple[str, str]], repeat: int, warmup: int
        ) -> list[tuple[str, Timing]]:
    results: list[tuple[str, Timing]] = []
    for label, query in queries:
        t = measure(root, user, query, repeat, warmup)
        results.append((label, t))
        status = t.error[:120] if t.error else (
            f"root {statistics.median(t.root) * 1000:.1f} ms, "
            f"user {statistics.median(t.user) * 1000:.1f} ms")
        print(f"  {label}: {status}", flush=True)
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--scale", type=float, default=100.0,
                   help="demo scale (100 = about a million datafiles; 1 for a quick run)")
    p.add_argument("--database", help="SQLAlchemy URL of an empty database")
    p.add_argument("--repeat", type=int, default=30, help="timed requests per query and user")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--only", action="append", help="run only these queries (repeatable)")
    p.add_argument("--timeout", type=float, default=120,
                   help="seconds before a request counts as failed")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cairn-bench-authz-"))
    database = args.database or f"sqlite:///{work / 'catalogue.db'}"
    print(f"catalogue: {database.split('@')[-1]} (scale {args.scale:g})", flush=True)
    load(database, args.scale)
    proc, url = start(work, database)
    try:
        root = Client(url, "simple", ROOT, ROOT_PASSWORD, args.timeout)
        user = Client(url, "db", USER, USER_PASSWORD, args.timeout)
        have = {(r[0], r[1]) for r in root.ok("SELECT r.what, r.crudFlags FROM Rule r")}
        rules = [r for r in rule_set() if r not in have]
        if rules:
            root.write([{"Rule": {"crudFlags": flags, "what": what}} for what, flags in rules])
        print(f"{len(rules)} rules added, {len(have)} there already", flush=True)
        portal, informative = portal_queries(root)
        if args.only:
            portal = [q for q in portal if q[0] in args.only]
            informative = [q for q in informative if q[0] in args.only]
        results = run(root, user, portal, args.repeat, args.warmup)
        extra = run(root, user, informative, max(3, args.repeat // 5), 1)
        load_avg = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"\nscale {args.scale:g}, {database.split(':')[0]}, median of {args.repeat} "
              f"requests each, {os.cpu_count()} CPUs, load average {load_avg}")
        failed = report("portal queries (issue #4 target: user/root <= 1.5)", results, True)
        failed += report("for information", extra, False)
        return 1 if failed else 0
    finally:
        stop(proc)


if __name__ == "__main__":
    sys.exit(main())
