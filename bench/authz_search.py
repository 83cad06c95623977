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

Then it runs DataGateway's queries (reference datagateway-api.md §3: My Data count and pages
with their INCLUDEs, an investigation's landing page, datasets of an investigation, datafiles
of a dataset with INCLUDE, text/date and parameter filters, counts) as ``db/jbloggs`` and as
root, alternating, ``--repeat`` times each after a warm-up, and prints per query the rows
returned, the median latency, requests/s and the ratio authorized/root (target <= 1.5).
Requests are sequential on one keep-alive connection per user; client time (JSON decoding) is
included, as a portal back end experiences it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cairn_process import launch

ROOT, ROOT_PASSWORD = "root", "secret"
USER, USER_PASSWORD = "jbloggs", "bench-password"
TARGET = 1.5

ON_MY = "JOIN {i}.investigationUsers iu_ JOIN iu_.user u_ WHERE u_.name = :user"
AS_SCIENTIST = ("JOIN {i}.investigationInstruments ii_ JOIN ii_.instrument in_ "
                "JOIN in_.instrumentScientists is_ JOIN is_.user u_ WHERE u_.name = :user")
RELEASED = "WHERE {i}.releaseDate < CURRENT_TIMESTAMP"

#: Entity -> (variable, FROM text reaching the investigation as ``i``).
BELOW_INVESTIGATION = {
    "Investigation": ("i", "Investigation i"),
    "InvestigationUser": ("x", "InvestigationUser x JOIN x.investigation i"),
    "InvestigationInstrument": ("x", "InvestigationInstrument x JOIN x.investigation i"),
    "InvestigationFacilityCycle": ("x", "InvestigationFacilityCycle x JOIN x.investigation i"),
    "InvestigationParameter": ("x", "InvestigationParameter x JOIN x.investigation i"),
    "Keyword": ("x", "Keyword x JOIN x.investigation i"),
    "Publication": ("x", "Publication x JOIN x.investigation i"),
    "Sample": ("x", "Sample x JOIN x.investigation i"),
    "SampleParameter": ("x", "SampleParameter x JOIN x.sample s JOIN s.investigation i"),
    "Dataset": ("x", "Dataset x JOIN x.investigation i"),
    "DatasetParameter": ("x", "DatasetParameter x JOIN x.dataset ds JOIN ds.investigation i"),
    "Datafile": ("x", "Datafile x JOIN x.dataset ds JOIN ds.investigation i"),
    "DatafileParameter": ("x", "DatafileParameter x JOIN x.datafile df JOIN df.dataset ds "
                               "JOIN ds.investigation i"),
}
PUBLIC_TABLES = ("Facility", "Instrument", "FacilityCycle", "InvestigationType", "DatasetType",
                 "DatafileFormat", "ParameterType", "PermissibleStringValue", "SampleType",
                 "Technique", "User")


def rule_set() -> list[tuple[str, str]]:
    """(what, crudFlags) of the facility's rules, all without grouping."""
    rules = [(f"SELECT x FROM {t} x", "R") for t in PUBLIC_TABLES]
    for var, source in BELOW_INVESTIGATION.values():
        for cond in (ON_MY, AS_SCIENTIST, RELEASED):
            rules.append((f"SELECT {var} FROM {source} {cond.format(i='i')}", "R"))
    return rules



def load(url: str, scale: float) -> None:
    from cairn.authn.db import set_password
    from cairn.db import migrate
    from cairn.db.engine import Database
    from cairn.demo import load_demo

    db = Database(url)
    migrate.upgrade(db)
    db.detect_ids()
    start = time.perf_counter()
    counts = load_demo(db, scale=scale, user=f"simple/{ROOT}",
                       progress=lambda line: print("  " + line, flush=True))
    print(f"demo loaded in {time.perf_counter() - start:.0f} s: "
          f"{counts.get('Investigation', 0):,} investigations, "
          f"{counts.get('Dataset', 0):,} datasets, {counts.get('Datafile', 0):,} datafiles",
          flush=True)
    set_password(db, USER, USER_PASSWORD)
    # Planner statistics, as a catalogue in service has them (the same for root and user).
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if db.dialect == "mysql":
            for table in db.tables.metadata.sorted_tables:
                conn.exec_driver_sql(f"ANALYZE TABLE {table.name}").all()
        else:
            conn.exec_driver_sql("ANALYZE")
    db.dispose()


def start(work: Path, database: str) -> tuple[subprocess.Popen[bytes], str]:
    return launch(work, f"""
[server]
host = "127.0.0.1"
port = {{port}}
data_dir = "{work / 'data'}"
[catalogue]
database = "{database}"
root_users = ["simple/{ROOT}"]
max_entities = 100000
migrate = false
[authn.simple]
type = "simple"
[authn.simple.users]
{ROOT} = "{ROOT_PASSWORD}"
[authn.db]
type = "db"
""", attempts=1200)


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


def portal_queries(root: Client) -> list[tuple[str, str]]:
    """(label, query) in DataGateway's shapes, for data of db/jbloggs."""
    u = f"db/{USER}"
    mine = (f"FROM Investigation o JOIN o.investigationUsers AS iu JOIN iu.user AS s1 "
            f"WHERE s1.name = '{u}'")
    (n_mine,) = root.ok(f"SELECT COUNT(o) {mine}")
    inv = root.ok(f"SELECT o.id {mine} AND o.fileCount > 0 ORDER BY o.startDate DESC, "
                  f"o.id ASC LIMIT 0, 1")[0]
    ds = root.ok(f"SELECT o.id FROM Dataset o WHERE o.investigation.id = {inv} "
                 f"ORDER BY o.fileCount DESC, o.id ASC LIMIT 0, 1")[0]
    cycle = root.ok(f"SELECT c.facilityCycle.id FROM InvestigationFacilityCycle c "
                    f"WHERE c.investigation.id = {inv}")[0]
    instrument = root.ok(f"SELECT x.instrument.id FROM InvestigationInstrument x "
                         f"WHERE x.investigation.id = {inv}")[0]
    print(f"db/{USER}: {n_mine} investigations; investigation {inv}, dataset {ds}, "
          f"cycle {cycle}, instrument {instrument}")
    page2 = max(0, min(50, n_mine - 1))
    return [
        ("1 My Data count", f"SELECT COUNT(o) {mine}"),
        ("2 My Data page", f"SELECT o {mine} ORDER BY o.startDate DESC, o.id ASC "
         "INCLUDE o.dataCollectionInvestigations AS s1, s1.dataCollection AS s2, "
         "s2.dataPublications, o.investigationFacilityCycles AS s3, s3.facilityCycle, "
         "o.investigationInstruments AS ii, ii.instrument LIMIT 0, 50"),
        ("2b My Data next page", f"SELECT o {mine} ORDER BY o.startDate DESC, o.id ASC "
         f"INCLUDE o.investigationInstruments AS ii, ii.instrument LIMIT {page2}, 50"),
        ("3 My Data ids", f"SELECT DISTINCT(o.id) {mine}"),
        ("4 text+date filter", "SELECT o FROM Investigation o WHERE o.startDate >= "
         "'2019-01-01 00:00:00' AND o.startDate <= '2019-12-31 23:59:59' AND "
         "UPPER(o.title) like UPPER('%structure%') ORDER BY o.title ASC, o.id ASC LIMIT 0, 50"),
        ("8 cycle+instrument count", "SELECT COUNT(o) FROM Investigation o "
         "JOIN o.investigationFacilityCycles AS s1 JOIN s1.facilityCycle AS s2 "
         f"JOIN o.investigationInstruments AS ii JOIN ii.instrument AS s3 WHERE s2.id = "
         f"'{cycle}' AND s3.id = '{instrument}'"),
        ("9 cycle+instrument page", "SELECT o FROM Investigation o "
         "JOIN o.investigationFacilityCycles AS s1 JOIN s1.facilityCycle AS s2 "
         f"JOIN o.investigationInstruments AS ii JOIN ii.instrument AS s3 WHERE s2.id = "
         f"'{cycle}' AND s3.id = '{instrument}' ORDER BY o.title ASC, o.id ASC "
         "INCLUDE o.investigationInstruments AS ii, ii.instrument, o.investigationUsers AS iu, "
         "iu.user LIMIT 0, 50"),
        ("10 datasets count", f"SELECT COUNT(o) FROM Dataset o JOIN o.investigation AS i "
         f"WHERE i.id = '{inv}'"),
        ("11 datasets page", f"SELECT o FROM Dataset o JOIN o.investigation AS i "
         f"WHERE i.id = '{inv}' ORDER BY o.createTime DESC, o.id ASC LIMIT 0, 50"),
        ("12 datafiles page+INCLUDE", f"SELECT o FROM Datafile o JOIN o.dataset AS ds "
         f"WHERE ds.id = '{ds}' ORDER BY o.name ASC, o.id ASC "
         "INCLUDE o.datafileFormat, o.parameters AS p, p.type LIMIT 0, 50"),
        ("12b datafiles page 2", f"SELECT o FROM Datafile o JOIN o.dataset AS ds "
         f"WHERE ds.id = '{ds}' ORDER BY o.name ASC, o.id ASC LIMIT 50, 50"),
        ("13 datafiles count", f"SELECT COUNT(o) FROM Datafile o JOIN o.dataset AS ds "
         f"WHERE ds.id = '{ds}'"),
        ("14 landing page", f"SELECT o FROM Investigation o WHERE o.id = '{inv}' "
         "INCLUDE o.datasets, o.investigationInstruments AS ii, ii.instrument, "
         "o.investigationUsers AS iu, iu.user, o.publications, o.samples"),
        ("26 parameter filter (inv)", "SELECT o FROM Investigation o JOIN o.datasets AS s1 "
         "JOIN s1.parameters AS s2 JOIN s2.type AS s3 WHERE (s3.name = 'temperature' and "
         "s2.numericValue between '250' and '300' and s3.units = 'K') "
         "INCLUDE o.keywords, o.type LIMIT 0, 50"),
        ("27 parameter filter (ds)", "SELECT o FROM Dataset o JOIN o.parameters AS p "
         "JOIN p.type AS pt WHERE ((pt.name = 'sample_state' and p.stringValue = 'powder') or "
         "(pt.name = 'scan_type' and p.stringValue = 'tomography')) "
         "INCLUDE o.parameters AS p, p.type LIMIT 0, 50"),
        ("all investigations count", "SELECT COUNT(o) FROM Investigation o"),
        ("all datafiles count", "SELECT COUNT(o) FROM Datafile o"),
    ]


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


def report(results: list[tuple[str, Timing]]) -> int:
    head = (f"{'query':<28}{'rows root':>10}{'rows user':>10}{'root ms':>10}{'user ms':>10}"
            f"{'root r/s':>10}{'user r/s':>10}{'ratio':>8}")
    print("\n" + head + "\n" + "-" * len(head))
    ratios = []
    for label, t in results:
        if t.error:
            print(f"{label:<28} FAILED: {t.error[:300]}")
            continue
        r_med, u_med = statistics.median(t.root), statistics.median(t.user)
        ratio = u_med / r_med
        ratios.append(ratio)
        flag = "" if ratio <= TARGET else "  > target"
        print(f"{label:<28}{t.rows[0]:>10,}{t.rows[1]:>10,}{r_med * 1000:>10.1f}"
              f"{u_med * 1000:>10.1f}{len(t.root) / sum(t.root):>10.1f}"
              f"{len(t.user) / sum(t.user):>10.1f}{ratio:>8.2f}{flag}")
    if not ratios:
        print("no query succeeded")
        return 1
    geo = statistics.geometric_mean(ratios)
    print(f"\nauthorized/root median-latency ratio: geometric mean {geo:.2f}, "
          f"max {max(ratios):.2f} (target <= {TARGET})")
    failed = sum(1 for _, t in results if t.error)
    return 1 if failed else 0


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--scale", type=float, default=100.0,
                   help="demo scale (100 = about a million datafiles; 1 for a quick run)")
    p.add_argument("--database", help="SQLAlchemy URL of an empty database")
    p.add_argument("--repeat", type=int, default=30, help="timed requests per query and user")
    p.add_argument("--warmup", type=int, default=2)
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
        rules = rule_set()
        root.write([{"Rule": {"crudFlags": flags, "what": what}} for what, flags in rules])
        print(f"{len(rules)} rules added", flush=True)
        queries = portal_queries(root)
        results: list[tuple[str, Timing]] = []
        for label, query in queries:
            t = measure(root, user, query, args.repeat, args.warmup)
            results.append((label, t))
            status = t.error[:120] if t.error else (
                f"root {statistics.median(t.root) * 1000:.1f} ms, "
                f"user {statistics.median(t.user) * 1000:.1f} ms")
            print(f"  {label}: {status}", flush=True)
        return report(results)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:  # e.g. still busy with a timed-out query
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    sys.exit(main())
