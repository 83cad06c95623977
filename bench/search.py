"""Free-text search on the demo facility: rebuild throughput, search latency as a user under a
realistic rule set against root, and the cost of indexing during the bulk load, each against
a baseline measured in the same run.

    .venv/bin/python bench/search.py [--scale 100] [--database URL] [--repeat 20]
                                     [--skip-load] [--load-scale S] [--skip-rebuild]
                                     [--portal] [--skip-rest] [--only LABEL]

``--database`` names an empty database (the demo at ``--scale`` is loaded into it; a missing
PostgreSQL database is created) or one that already holds the demo, which is then reused as
it is, so the figures of a code change can be compared on the same data. Without it, a SQLite
file in a temporary folder. ``--scale 100`` is about a million datafiles.

1. **Rebuild** (``--skip-rebuild`` to leave the index as it is): for every indexed entity, the
   document table is cleared and rebuilt the way the ``search.rebuild`` job does it -- the
   job's handler (``SearchIndex._rebuild``) is called in this process with the payload each
   slice hands back in ``Again.payload`` until it finishes. Target: at least 50,000
   documents/s (icat.lucene indexes about 4,100/s). Baseline: reading the same rows (the id
   and the indexed columns of every row of every indexed entity) through the DB-API cursor,
   every row fetched (a server-side cursor on PostgreSQL); the ratio rebuild/read is printed.
2. **Search latency**: Cairn is started on the database, root adds the rule set of
   ``bench/authz_search.py`` over REST, and ``GET /icat/search/documents`` runs a text query
   with DataGateway's three facet dimensions (parameter types, sample types, instruments) for
   each target, as ``db/jbloggs`` and as root, alternating, ``--repeat`` times each after a
   warm-up. Per query: the results of the page, the documents matched (the sum of the
   target's own facet), both medians and the ratio user/root. Targets: ratio <= 1.5 and
   median <= 50 ms. Baseline lines: ``GET /icat/entityManager`` counting the target.
   With ``--portal``, the same server then times the portal's search page
   (``/search``, drawn from its hits) and its counts (``/search/facets``, the fragment the
   page's script loads), as ``db/jbloggs`` and as root, for the searches of
   :data:`PORTAL_PAGES`; baseline: the same search over REST with the page's facets in one
   request (``maxCount`` 25), which is what drawing the page with its counts cost before the
   counts were split off. Target: the page p50 <= 100 ms.
3. **Indexing cost in the bulk load** (``--skip-load`` to skip; ``--load-scale`` to make it
   smaller): the demo is loaded into two fresh databases -- SQLite files in the temporary
   folder, or databases created on the PostgreSQL server of ``--database`` (dropped after) --
   once by a bare catalogue and once with the search listener registered
   (``SearchService.start()``), which indexes in the load's own transaction. Target: the
   indexed load takes at most 1.25 x the bare one.

Everything streams: peak RSS of the benchmark process is printed after each part.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from authz_search import ROOT, ROOT_PASSWORD, USER, USER_PASSWORD, Client, demo_database, rule_set
from cairn_process import launch_catalogue, stop
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from cairn.config import SEARCHABLE, Settings
from cairn.db.engine import Database
from cairn.demo import load_demo
from cairn.jobs import JobContext, JobQueue, State
from cairn.jobs.model import Job
from cairn.search.index import FILE_NAME, INDEXED
from cairn.search.indexer import REBUILD, SearchIndex
from cairn.search.service import SearchService
from cairn.startup import open_catalogue, open_database

REBUILD_TARGET = 50_000  # documents/s
LUCENE_RATE = 4_100  # icat.lucene's documents/s, the figure to beat
RATIO_TARGET, LATENCY_TARGET = 1.5, 0.050  # user/root; seconds
LOAD_TARGET = 1.25  # indexed load / bare load
FETCH = 10_000  # rows per fetchmany of the baseline read

#: (label, target, text): a sample word, a title word, a dataset-name word, a file-name prefix.
QUERIES = (
    ("inv-sample", "Investigation", "titanium"),
    ("inv-title", "Investigation", "tomography"),
    ("ds-sample", "Dataset", "titanium"),
    ("ds-name", "Dataset", "calib"),
    ("df-sample", "Datafile", "titanium"),
    ("df-prefix", "Datafile", "calib*"),
)
PARAMETERS = {"Investigation": "InvestigationParameter", "Dataset": "DatasetParameter",
              "Datafile": "DatafileParameter"}
#: Portal searches: (label, query parameters of /search).
PORTAL_PAGES = (
    ("df-all", {"target": "Datafile"}),
    ("df-scan*", {"target": "Datafile", "text": "scan*"}),
    ("df-scan", {"target": "Datafile", "text": "scan"}),
    ("df-titanium", {"target": "Datafile", "text": "titanium"}),
    ("df-calib*", {"target": "Datafile", "text": "calib*"}),
    ("df-all-by-name", {"target": "Datafile", "sort": "name-asc"}),
    ("df-calib*-by-name", {"target": "Datafile", "text": "calib*", "sort": "name-asc"}),
    ("df-all-newest", {"target": "Datafile", "sort": "date-desc"}),
    ("df-all-oldest", {"target": "Datafile", "sort": "date-asc"}),
    ("df-all-largest", {"target": "Datafile", "sort": "size-desc"}),
    ("df-all-smallest", {"target": "Datafile", "sort": "size-asc"}),
    ("df-calib*-newest", {"target": "Datafile", "text": "calib*", "sort": "date-desc"}),
    ("ds-all", {"target": "Dataset"}),
    ("ds-titanium", {"target": "Dataset", "text": "titanium"}),
    ("inv-all", {"target": "Investigation"}),
)
PAGE_TARGET = 0.100  # seconds

#: The target's own facet (no dimensions: icat.lucene's), whose counts add up to the matches.
OWN_FACET = {"Investigation": "Investigation.type.name", "Dataset": "Dataset.type.name",
             "Datafile": "Datafile.datafileFormat.name"}


def facets(target: str) -> list[dict[str, Any]]:
    """DataGateway's facet request for a search of ``target``."""
    return [{"target": target},
            {"target": PARAMETERS[target], "dimensions": [{"dimension": "type.name"}]},
            {"target": "Sample", "dimensions": [{"dimension": "sample.type.name"}]},
            {"target": "InvestigationInstrument",
             "dimensions": [{"dimension": "instrument.name"}]}]


def peak_rss() -> str:
    return f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB"


def shown(url: str) -> str:
    return url.split("@")[-1]


# -- databases ----------------------------------------------------------------------------------


@contextmanager
def server_admin(url: str) -> Iterator[Any]:
    """An autocommit connection to the ``postgres`` database of ``url``'s server."""
    engine = create_engine(make_url(url).set(database="postgres"),
                           isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def ensure_database(url: str) -> None:
    """Create ``url``'s database if it is a PostgreSQL one that does not exist yet."""
    u = make_url(url)
    if not u.drivername.startswith("postgresql"):
        return
    with server_admin(url) as conn:
        if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                        {"n": u.database}).first() is None:
            conn.exec_driver_sql(f'CREATE DATABASE "{u.database}"')
            print(f"created database {u.database}", flush=True)


def fresh_database(base: str, name: str, work: Path) -> str:
    """The URL of a new empty database named ``name``: a SQLite file in ``work``, or a
    database on the PostgreSQL server of ``base`` (dropped first if it exists)."""
    u = make_url(base)
    if u.drivername.startswith("sqlite"):
        path = work / f"{name}.db"
        for p in work.glob(f"{name}.db*"):
            p.unlink()
        return f"sqlite:///{path}"
    if not u.drivername.startswith("postgresql"):
        raise SystemExit(f"the load comparison supports SQLite and PostgreSQL, not "
                         f"{u.drivername}; use --skip-load")
    with server_admin(base) as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    return u.set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    u = make_url(url)
    if u.drivername.startswith("sqlite"):
        assert u.database
        for p in Path(u.database).parent.glob(Path(u.database).name + "*"):
            p.unlink()
    else:
        with server_admin(url) as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{u.database}"')


def prepare(url: str, scale: float) -> Database:
    """The catalogue at ``url`` holding the demo: loaded now (without the search listener:
    the rebuild makes the index) unless it is there already."""
    ensure_database(url)
    db: Database = demo_database(url, scale)
    return db


# -- 1. rebuild ---------------------------------------------------------------------------------


@dataclass
class Rebuilt:
    entity: str
    rows: int  # rows read by the baseline
    read: float  # seconds
    docs: int = 0
    clear: float = 0.0
    rebuild: float = 0.0
    slices: int = 0


def read_rows(db: Database, entity: str) -> tuple[int, float]:
    """Every row's id and indexed columns, fetched through the DB-API cursor: (rows, s)."""
    src = db.tables[entity]
    cols = [src.c.id, *(src.c[f] for f in INDEXED[entity] if f != FILE_NAME)]
    sql = str(select(*cols).compile(dialect=db.engine.dialect))
    raw = db.engine.raw_connection()
    try:
        cur = (raw.driver_connection.cursor(name="bench_read")  # type: ignore[union-attr]
               if db.dialect == "postgresql" else raw.cursor())
        n = 0
        t0 = time.perf_counter()
        cur.execute(sql)
        while batch := cur.fetchmany(FETCH):
            n += len(batch)
        seconds = time.perf_counter() - t0
        cur.close()
        raw.rollback()
    finally:
        raw.close()
    return n, seconds


def job_context(payload: dict[str, Any]) -> JobContext:
    """What the scheduler hands ``_rebuild``: a running job carrying ``payload``."""
    now = datetime.now(UTC)
    return JobContext(Job(id=0, kind=REBUILD, key=payload["entity"], state=State.RUNNING,
                          payload=payload, priority=0, not_before=now, created=now,
                          started=now, finished=None, attempts=1, max_attempts=10,
                          claimed_by="bench", claim=None, heartbeat=now, cancel=False,
                          progress=None, progress_total=None, error=None, version=0))


def rebuild_entity(index: SearchIndex, entity: str, keys_only: bool = False) -> int:
    """Run the job's handler until it finishes, as the scheduler would; the slices run."""
    payload: dict[str, Any] = {"entity": entity, **({"keys_only": True} if keys_only else {})}
    slices = 0
    while True:
        again = index._rebuild(job_context(payload))
        slices += 1
        if again is None:
            return slices
        payload = again.payload or payload


def rebuild(db: Database) -> list[Rebuilt]:
    index = SearchIndex(db, SEARCHABLE)
    created = index.ensure()
    index.ensure_keys()  # a rebuild fills them too
    if created:
        print(f"document tables created: {', '.join(created)}", flush=True)
    out = []
    for entity in index.docs:
        read_rows(db, entity)  # warm the cache for both sides
        rows, read = read_rows(db, entity)
        r = Rebuilt(entity, rows, read)
        t0 = time.perf_counter()
        with db.begin() as conn:
            index.clear(conn, entity)
        r.clear = time.perf_counter() - t0
        t0 = time.perf_counter()
        r.slices = rebuild_entity(index, entity)
        r.rebuild = time.perf_counter() - t0
        r.docs = index.count(entity)
        out.append(r)
        print(f"  {entity}: {r.docs:,} documents in {r.rebuild:.2f} s "
              f"({r.slices} slice(s); cleared in {r.clear:.2f} s), read {rows:,} rows in "
              f"{read:.3f} s", flush=True)
    return out


def ensure_index(db: Database) -> None:
    """Without the timed rebuild: make sure the index is there before Cairn starts (else it
    would queue rebuild jobs that run during the measurements)."""
    index = SearchIndex(db, SEARCHABLE)
    index.ensure()
    unfilled = index.ensure_keys() if hasattr(index, "ensure_keys") else []  # older code
    for entity in index.docs:
        with db.connect() as conn:
            has_rows = conn.execute(select(db.tables[entity].c.id).limit(1)).first()
        if has_rows and index.count(entity) == 0:
            print(f"  indexing {entity} (untimed)", flush=True)
            rebuild_entity(index, entity)
        elif entity in unfilled:
            print(f"  filling {entity}'s sort keys (untimed)", flush=True)
            t0 = time.perf_counter()
            rebuild_entity(index, entity, keys_only=True)
            print(f"    in {time.perf_counter() - t0:.1f} s", flush=True)


def settle(db: Database) -> None:
    """After writing the index: no queued rebuild left to compete with the searches, the
    write-ahead log folded in."""
    queue = JobQueue(db)
    for jobs in queue.active(REBUILD, None).values():
        for job in jobs:
            if job.state is State.QUEUED:
                queue.cancel(job.id)
                print(f"  cancelled queued {REBUILD} job {job.id} ({job.key}): "
                      "the index was just rebuilt", flush=True)
    if db.dialect == "sqlite":
        with db.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def report_rebuild(results: list[Rebuilt]) -> bool:
    head = (f"{'entity':<18}{'documents':>11}{'rebuild s':>11}{'docs/s':>11}{'read s':>9}"
            f"{'rows/s':>12}{'ratio':>8}{'clear s':>9}")
    print(f"\n1. full rebuild (target >= {REBUILD_TARGET:,} documents/s; icat.lucene "
          f"~{LUCENE_RATE:,}/s)\n{head}\n{'-' * len(head)}")
    for r in results:
        print(f"{r.entity:<18}{r.docs:>11,}{r.rebuild:>11.2f}"
              f"{r.docs / r.rebuild if r.rebuild else 0:>11,.0f}{r.read:>9.3f}"
              f"{r.rows / r.read if r.read else 0:>12,.0f}"
              f"{r.rebuild / r.read if r.read else 0:>8.1f}{r.clear:>9.2f}")
    docs = sum(r.docs for r in results)
    secs = sum(r.rebuild for r in results)
    read = sum(r.read for r in results)
    clear = sum(r.clear for r in results)
    rate = docs / secs if secs else 0.0
    print(f"{'all':<18}{docs:>11,}{secs:>11.2f}{rate:>11,.0f}{read:>9.3f}"
          f"{sum(r.rows for r in results) / read if read else 0:>12,.0f}"
          f"{secs / read if read else 0:>8.1f}{clear:>9.2f}")
    ok = rate >= REBUILD_TARGET
    print(f"rebuild: {rate:,.0f} documents/s ({rate / LUCENE_RATE:.1f} x icat.lucene), "
          f"{docs / (secs + clear) if secs + clear else 0:,.0f}/s counting the clear; "
          f"rebuild/read {secs / read if read else 0:.1f} x -> "
          f"{'meets' if ok else 'MISSES'} the target")
    return ok


# -- 2. search latency --------------------------------------------------------------------------


@dataclass
class Timing:
    root: list[float] = field(default_factory=list)
    user: list[float] = field(default_factory=list)
    results: tuple[int, int] = (0, 0)  # root, user
    matched: tuple[int, int] = (0, 0)
    error: str | None = None


Request = Callable[[Client], tuple[int, int]]


def search_request(target: str, words: str, max_count: int) -> Request:
    query = json.dumps({"target": target, "text": words, "facets": facets(target)})

    def run(client: Client) -> tuple[int, int]:
        try:
            r = client.http.get("/icat/search/documents", params={
                "sessionId": client.sid, "query": query, "maxCount": str(max_count)})
        except httpx.TimeoutException:
            raise RuntimeError(f"timed out after {client.http.timeout.read} s") from None
        if r.status_code != 200:
            raise RuntimeError(f"{r.status_code} {r.text[:300]}")
        body = r.json()
        own = body.get("dimensions", {}).get(OWN_FACET[target], {})
        return len(body["results"]), sum(own.values())

    return run


def count_request(target: str) -> Request:
    def run(client: Client) -> tuple[int, int]:
        (n,) = client.ok(f"SELECT COUNT(o) FROM {target} o")
        return 1, int(n)

    return run


def measure(root: Client, user: Client, request: Request, repeat: int, warmup: int
            ) -> Timing:
    t = Timing()
    try:
        for _ in range(warmup):
            request(root)
            request(user)
        for i in range(repeat):  # alternate, in both orders, so drift hits both alike
            pair = [(root, t.root), (user, t.user)]
            for client, sink in pair if i % 2 == 0 else reversed(pair):
                t0 = time.perf_counter()
                try:
                    n, matched = request(client)
                except RuntimeError as e:
                    raise RuntimeError(f"{'root' if client is root else 'user'}: {e}"
                                       ) from None
                sink.append(time.perf_counter() - t0)
                if client is root:
                    t.results, t.matched = (n, t.results[1]), (matched, t.matched[1])
                else:
                    t.results, t.matched = (t.results[0], n), (t.matched[0], matched)
    except RuntimeError as e:
        t.error = str(e)
    return t


def add_rules(root: Client) -> None:
    have = {(r[0], r[1]) for r in root.ok("SELECT r.what, r.crudFlags FROM Rule r")}
    rules = [r for r in rule_set() if r not in have]
    if rules:
        root.write([{"Rule": {"crudFlags": flags, "what": what}} for what, flags in rules])
    print(f"{len(rules)} rules added, {len(have)} there already", flush=True)


def start_server(work: Path, database: str) -> tuple[Any, str]:
    """Cairn on ``database`` with free-text search on (its index is complete: no rebuild
    is queued) and the ``db`` authenticator of the benchmark user."""
    return launch_catalogue(work, database, ROOT, ROOT_PASSWORD,
                            catalogue="max_entities = 100000\nmigrate = false",
                            extra='[authn.db]\ntype = "db"', attempts=1200)


def portal_request(path: str, counted: bool) -> Request:
    """A portal page (or, ``counted``, its counts) as the signed-in client's browser asks."""
    def run(client: Client) -> tuple[int, int]:
        try:
            r = client.http.get(path, headers={"Cookie": f"cairn_session={client.sid}"})
        except httpx.TimeoutException:
            raise RuntimeError(f"timed out after {client.http.timeout.read} s") from None
        if r.status_code != 200:
            raise RuntimeError(f"{path}: {r.status_code} {r.text[:300]}")
        if counted:
            found = re.search(r'data-fill="results-count">([\d,]+) ', r.text)
            return 0, int(found.group(1).replace(",", "")) if found else -1
        return len(re.findall(r'<tr id="hit-', r.text)), 0

    return run


def portal_baseline(params: dict[str, str]) -> Request:
    """The page's search over REST with its facets, in one request: what the page with its
    counts cost when it was one request."""
    from cairn.web.portal import searching

    query = json.dumps({**({"text": params["text"]} if "text" in params else {}),
                        "target": params["target"],
                        "facets": searching.facet_requests(params["target"])})
    sort = searching.SORTS[params.get("sort", "relevance")][1]

    def run(client: Client) -> tuple[int, int]:
        r = client.http.get("/icat/search/documents", params={
            "sessionId": client.sid, "query": query, "maxCount": str(searching.PAGE_SIZE),
            **({"sort": json.dumps(sort)} if sort else {})})
        if r.status_code != 200:
            raise RuntimeError(f"{r.status_code} {r.text[:300]}")
        body = r.json()
        dims = body.get("dimensions", {}).get(f"{params['target']}.id", {})
        return len(body["results"]), int(dims.get(searching.TOTAL, 0))

    return run


def portal(root: Client, user: Client, args: argparse.Namespace
           ) -> list[tuple[str, str, Timing]]:
    """(label, what, timing) of each portal search: page, counts, baseline."""
    from urllib.parse import urlencode

    out: list[tuple[str, str, Timing]] = []
    for label, params in PORTAL_PAGES:
        if args.only and label not in args.only:
            continue
        query = urlencode(params)
        requests = [("page", portal_request(f"/search?{query}", False)),
                    ("counts", portal_request(f"/search/facets?{query}", True)),
                    ("rest+facets", portal_baseline(params))]
        for what, request in requests[:1] if args.pages_only else requests:
            t = measure(root, user, request, args.repeat, args.warmup)
            out.append((label, what, t))
            status = t.error[:160] if t.error else (
                f"root {statistics.median(t.root) * 1000:.1f} ms, "
                f"user {statistics.median(t.user) * 1000:.1f} ms")
            print(f"  portal {label} {what}: {status}", flush=True)
    return out


def report_portal(results: list[tuple[str, str, Timing]], repeat: int) -> tuple[int, int]:
    """Print the portal table; (pages, pages within the target)."""
    head = (f"{'search':<19}{'request':<13}{'rows':>7}{'found root':>12}{'found user':>12}"
            f"{'root p50':>10}{'user p50':>10}{'ratio':>7}  p50<=100ms")
    print(f"\n2b. portal search pages (median of {repeat}, ms): the page, its counts "
          f"(/search/facets), and the baseline: the same search with the page's facets over "
          f"REST in one request\n{head}\n{'-' * len(head)}")
    n = fast = 0
    for label, what, t in results:
        if t.error:
            print(f"{label:<19}{what:<13}FAILED: {t.error[:300]}")
            n += what == "page"
            continue
        r_med, u_med = statistics.median(t.root), statistics.median(t.user)
        judged = ""
        if what == "page":
            n += 1
            ok = max(r_med, u_med) <= PAGE_TARGET
            fast += ok
            judged = f"  {'yes' if ok else 'NO':>10}"
        rows = "-" if what == "counts" else f"{t.results[1]}"
        found = ("-", "-") if what == "page" else (f"{t.matched[0]:,}", f"{t.matched[1]:,}")
        print(f"{label:<19}{what:<13}{rows:>7}{found[0]:>12}{found[1]:>12}{r_med * 1000:>10.1f}"
              f"{u_med * 1000:>10.1f}{u_med / r_med:>7.2f}{judged}")
    return n, fast


def latency(work: Path, database: str, args: argparse.Namespace
            ) -> tuple[list[tuple[str, str, str, Timing]], list[tuple[str, str, Timing]]]:
    proc, url = start_server(work, database)
    try:
        root = Client(url, "simple", ROOT, ROOT_PASSWORD, args.timeout)
        user = Client(url, "db", USER, USER_PASSWORD, args.timeout)
        add_rules(root)
        out: list[tuple[str, str, str, Timing]] = []
        plan = [(label, target, words, search_request(target, words, args.max_count))
                for label, target, words in QUERIES
                if not args.skip_rest and (not args.only or label in args.only)]
        plan += [(f"count:{target}", target, "(entityManager)", count_request(target))
                 for target in dict.fromkeys(q[1] for q in plan)]
        for label, target, words, request in plan:
            t = measure(root, user, request, args.repeat, args.warmup)
            out.append((label, target, words, t))
            status = t.error[:160] if t.error else (
                f"root {statistics.median(t.root) * 1000:.1f} ms, "
                f"user {statistics.median(t.user) * 1000:.1f} ms")
            print(f"  {label}: {status}", flush=True)
        pages = portal(root, user, args) if args.portal else []
        return out, pages
    finally:
        stop(proc)


def report_latency(results: list[tuple[str, str, str, Timing]], repeat: int, max_count: int
                   ) -> tuple[int, int, int]:
    """Print the table; (queries, within the ratio, within the latency)."""
    head = (f"{'query':<21}{'text':<13}{'results':>9}{'matched root':>14}{'matched user':>14}"
            f"{'root p50':>10}{'user p50':>10}{'ratio':>7}  ratio<=1.5  p50<=50ms")
    print(f"\n2. search latency: GET /icat/search/documents, maxCount {max_count}, 3 facet "
          f"dimensions, median of {repeat} (ms)\n{head}\n{'-' * len(head)}")
    n = ratio_ok = fast = 0
    for label, _, words, t in results:
        baseline = label.startswith("count:")
        if t.error:
            print(f"{label:<21}{words:<13}FAILED: {t.error[:300]}")
            n += not baseline
            continue
        r_med, u_med = statistics.median(t.root), statistics.median(t.user)
        ratio = u_med / r_med
        if baseline:
            judged = "   (baseline)"
        else:
            n += 1
            ratio_ok += ratio <= RATIO_TARGET
            fast += max(u_med, r_med) <= LATENCY_TARGET
            judged = (f"  {'yes' if ratio <= RATIO_TARGET else 'NO':>10}"
                      f"  {'yes' if max(u_med, r_med) <= LATENCY_TARGET else 'NO':>9}")
        results_txt = "-" if baseline else f"{t.results[1]}/{t.results[0]}"
        print(f"{label:<21}{words:<13}{results_txt:>9}{t.matched[0]:>14,}{t.matched[1]:>14,}"
              f"{r_med * 1000:>10.1f}{u_med * 1000:>10.1f}{ratio:>7.2f}{judged}")
    print("results: user/root in the page; matched: documents found (the sum of the "
          "target's own facet; for a count line, the count)")
    return n, ratio_ok, fast


# -- 3. the bulk load with and without the search listener ---------------------------------------


def timed_load(url: str, work: Path, scale: float, indexed: bool) -> tuple[float, int]:
    settings = Settings(catalogue={"database": url}, server={"data_dir": str(work / "data")})
    db = open_database(settings)
    try:
        catalogue = open_catalogue(settings, db)
        if indexed:
            SearchService(catalogue, db, list(SEARCHABLE)).start()
        if db.dialect == "postgresql":  # no checkpoint of an earlier load in the way
            with db.engine.connect() as conn:
                conn.exec_driver_sql("CHECKPOINT")
        t0 = time.perf_counter()
        counts = load_demo(catalogue, scale=scale, user=f"simple/{ROOT}")
        seconds = time.perf_counter() - t0
        docs = 0
        if indexed:
            index = SearchIndex(db, SEARCHABLE)
            docs = sum(index.count(e) for e in index.docs)
        print(f"  {'with' if indexed else 'without'} the search listener: "
              f"{sum(counts.values()):,} rows ({counts.get('Datafile', 0):,} datafiles"
              + (f", {docs:,} documents" if indexed else "") + f") in {seconds:.1f} s; "
              + peak_rss(), flush=True)
        return seconds, sum(counts.values())
    finally:
        db.dispose()


def load_cost(base: str, work: Path, scale: float) -> tuple[float, float, int]:
    stem = make_url(base).database or "catalogue"
    stem = "cairn_bench_search_load" if "/" in stem else f"{stem}_load"
    bare_url = fresh_database(base, f"{stem}_bare", work)
    indexed_url = fresh_database(base, f"{stem}_indexed", work)
    try:
        bare, rows = timed_load(bare_url, work, scale, indexed=False)
        drop_database(bare_url)
        indexed, _ = timed_load(indexed_url, work, scale, indexed=True)
        return bare, indexed, rows
    finally:
        for url in (bare_url, indexed_url):
            drop_database(url)


def report_load(bare: float, indexed: float, rows: int, scale: float) -> bool:
    ratio = indexed / bare
    ok = ratio <= LOAD_TARGET
    print(f"\n3. bulk load of the demo at scale {scale:g} ({rows:,} rows; target <= "
          f"{LOAD_TARGET} x)\n"
          f"   without the search listener {bare:8.1f} s  {rows / bare:>10,.0f} rows/s\n"
          f"   with the search listener    {indexed:8.1f} s  {rows / indexed:>10,.0f} rows/s\n"
          f"   ratio with/without {ratio:.2f} -> {'meets' if ok else 'MISSES'} the target")
    return ok


# -- main ---------------------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--scale", type=float, default=100.0,
                   help="demo scale (100 = about a million datafiles; 1 for a quick run)")
    p.add_argument("--database", help="SQLAlchemy URL: empty, missing (PostgreSQL) or "
                                      "holding the demo already")
    p.add_argument("--repeat", type=int, default=20, help="timed requests per query and user")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--max-count", type=int, default=100, help="maxCount of each search")
    p.add_argument("--only", action="append", help="run only these search queries (and "
                                                     "portal searches)")
    p.add_argument("--portal", action="store_true",
                   help="also time the portal's search pages and their counts")
    p.add_argument("--pages-only", action="store_true",
                   help="with --portal: the pages alone, without their counts and baseline")
    p.add_argument("--skip-rest", action="store_true",
                   help="skip the REST search latency (with --portal: the pages only)")
    p.add_argument("--timeout", type=float, default=120,
                   help="seconds before a request counts as failed")
    p.add_argument("--skip-rebuild", action="store_true", help="leave the index as it is")
    p.add_argument("--skip-load", action="store_true",
                   help="skip the bulk-load comparison (two more loads of the demo)")
    p.add_argument("--load-scale", type=float,
                   help="demo scale of the bulk-load comparison (default: --scale)")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cairn-bench-search-"))
    database = args.database or f"sqlite:///{work / 'catalogue.db'}"
    print(f"catalogue: {shown(database)} (scale {args.scale:g}); work folder {work}",
          flush=True)
    verdicts: list[str] = []
    try:
        db = prepare(database, args.scale)
        rebuilt: list[Rebuilt] = []
        if args.skip_rebuild:
            ensure_index(db)
        else:
            print("rebuilding the index from scratch, entity by entity", flush=True)
            rebuilt = rebuild(db)
        settle(db)
        db.dispose()
        print(peak_rss(), flush=True)

        print("searching over REST", flush=True)
        searched, pages = latency(work, database, args)

        load: tuple[float, float, int] | None = None
        load_scale = args.load_scale or args.scale
        if not args.skip_load:
            print(f"bulk load comparison at scale {load_scale:g}", flush=True)
            load = load_cost(database, work, load_scale)

        load_avg = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"\n== scale {args.scale:g}, {make_url(database).get_backend_name()}, "
              f"{os.cpu_count()} CPUs, load average {load_avg}, {peak_rss()} ==")
        if rebuilt:
            ok = report_rebuild(rebuilt)
            verdicts.append(f"rebuild >= {REBUILD_TARGET:,} documents/s: "
                            f"{'met' if ok else 'NOT met'}")
        n, ratio_ok, fast = report_latency(searched, args.repeat, args.max_count)
        verdicts.append(f"search user/root <= {RATIO_TARGET}: {ratio_ok} of {n} queries")
        verdicts.append(f"search p50 <= {LATENCY_TARGET * 1000:.0f} ms (user and root): "
                        f"{fast} of {n} queries")
        if pages:
            n, fast = report_portal(pages, args.repeat)
            verdicts.append(f"portal page p50 <= {PAGE_TARGET * 1000:.0f} ms (user and root): "
                            f"{fast} of {n} pages")
        if load is not None:
            ok = report_load(*load, load_scale)
            verdicts.append(f"indexed load <= {LOAD_TARGET} x bare: {'met' if ok else 'NOT met'}")
        print("\ntargets:\n" + "\n".join(f"  {v}" for v in verdicts))
        failed = any(t.error for _, _, _, t in searched) or any(t.error for *_, t in pages)
        return 1 if failed else 0
    finally:
        if args.database:  # the temporary folder holds only logs and configuration
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
