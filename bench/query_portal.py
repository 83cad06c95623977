"""Portal queries over REST against the same work done with hand-written SQL, in one run.

    .venv/bin/python bench/query_portal.py [--scale 100] [--database URL] [--repeat 100]
                                           [--only NAME] [--profile NAME]

Loads the demo facility (``cairn.demo.load_demo``; scale 100 is about a million datafiles,
15-25 s on SQLite) into a fresh catalogue — a temporary SQLite file unless ``--database`` names
an empty database (one already holding the demo is reused as it is) — starts a real Cairn
process on it, and times, as root, the queries a DataGateway-style portal sends most
(reference/datagateway-api.md §3):

- ``my-count``/``my-page``: investigations of a user, count and first page of 50 with the
  portal's INCLUDE list (#1, #2; the user is the demo's busiest, db/jbloggs);
- ``ds-count``/``ds-page``: datasets of an investigation (#10, #11);
- ``df-count``/``df-page``: datafiles of a dataset, count and a page with INCLUDE of the format
  and the parameters with their types (#13, #12);
- ``ds-param``/``inv-param``: parameter filters (#27, #26) on the demo's parameter types, as a
  page of 50.

Each query runs ``--repeat`` times over REST (``http_client``: the standard library's client on
one keep-alive connection, the body read but not decoded) and, interleaved, as hand-written
SQL through the raw DB-API cursor of the same database — the main statement plus one
statement per INCLUDE step, as any hand-coded back end would do, fetching every row. The
table gives both medians, the ratio, Cairn's requests per second and whether Cairn meets the
target: median within 1.5 x raw + 2 ms.

``--in-process`` adds a column: the same search, rendered and encoded to the same JSON, by a
catalogue opened in the benchmark's own process (interleaved with the other two). Next to the
REST median it separates Cairn's own work from what HTTP and the hand-off to a worker thread
add.

``--profile NAME`` samples the server with py-spy while NAME runs and prints where the time goes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cairn_process import launch_catalogue
from http_client import Http
from sqlalchemy import func, select

from cairn.catalogue.service import Catalogue
from cairn.cli import settle_heap
from cairn.config import load_settings
from cairn.db import migrate
from cairn.db.engine import Database
from cairn.demo import load_demo
from cairn.startup import catalogue_of, open_catalogue
from cairn.web.json_rows import JsonShape, results_bytes

USER, PASSWORD = "root", "secret"
#: Leaf frames of threads that wait (event loop, thread pool, GIL hand-offs): not work.
IDLE = ("selectors.py", "threading.py", "_write_to_self", "locks.py")
TARGET_RATIO, TARGET_MS = 1.5, 2.0


# -- the server -------------------------------------------------------------------------------



def start(work: Path, database: str) -> tuple[subprocess.Popen[bytes], str]:
    return launch_catalogue(work, database, USER, PASSWORD)


def login(http: Http) -> str:
    body = '{"plugin": "simple", "credentials": [{"username": "%s"}, {"password": "%s"}]}'
    r = http.post("/icat/session", data={"json": body % (USER, PASSWORD)})
    r.raise_for_status()
    return str(r.json()["sessionId"])


# -- hand-written SQL -------------------------------------------------------------------------


class Raw:
    """Hand-written SQL through the DB-API cursor (``?`` placeholders, adapted per driver)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.conn = db.engine.raw_connection()
        self.cur = self.conn.cursor()
        self.mark = "?" if db.dialect == "sqlite" else "%s"
        # the same NULL order Cairn asks for (PostgreSQL puts NULLs first when descending)
        self.nulls_last = " NULLS LAST" if db.dialect == "postgresql" else ""
        self._cols: dict[tuple[str, str], int] = {}

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.cur.execute(sql.replace("?", self.mark), tuple(params))
        return list(self.cur.fetchall())

    def by_ids(self, table: str, ids: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Rows of ``table`` with these ids (a many-to-one INCLUDE step)."""
        ids = sorted({i for i in ids if i is not None})
        if not ids:
            return []
        return self.rows(f"SELECT * FROM {table} WHERE ID IN ({', '.join('?' * len(ids))})", ids)

    def children(self, table: str, column: str, ids: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Rows of ``table`` whose ``column`` is one of ``ids`` (a one-to-many INCLUDE step)."""
        ids = sorted(set(ids))
        if not ids:
            return []
        marks = ", ".join("?" * len(ids))
        return self.rows(f"SELECT * FROM {table} WHERE {column} IN ({marks}) ORDER BY ID", ids)

    def col(self, table: str, column: str) -> int:
        """Where ``SELECT *`` puts ``column`` (looked up once)."""
        key = (table, column)
        if key not in self._cols:
            self.rows(f"SELECT * FROM {table} WHERE 1 = 0")
            names = [d[0].upper() for d in self.cur.description]
            self._cols[key] = names.index(column)
        return self._cols[key]

    def close(self) -> None:
        self.cur.close()
        self.conn.close()


def _ids(rows: list[tuple[Any, ...]]) -> list[Any]:
    return [r[0] for r in rows]  # SELECT * puts ID first


def _column(raw: Raw, table: str, column: str) -> Callable[[tuple[Any, ...]], Any]:
    index = raw.col(table, column)
    return lambda row: row[index]


def _parameters(r: Raw, table: str, parent: str, parent_ids: list[Any]) -> None:
    """The parameters of these parents with their types (``parameters AS p, p.type``)."""
    params = r.children(table, parent, parent_ids)
    type_of = _column(r, table, "PARAMETER_TYPE_ID")
    r.by_ids("PARAMETERTYPE", [type_of(x) for x in params])


# -- the queries ------------------------------------------------------------------------------


@dataclass
class Query:
    name: str
    ref: str  # datagateway-api.md §3 number
    icat: str  # ICAT query text; {user} {inv} {ds} filled in
    raw: Callable[[Raw, dict[str, Any]], int]  # hand SQL; returns the number of results


MY = ("FROM INVESTIGATION o JOIN INVESTIGATIONUSER iu ON iu.INVESTIGATION_ID = o.ID "
      "JOIN USER_ u ON u.ID = iu.USER_ID WHERE u.NAME = ?")


def raw_my_count(r: Raw, p: dict[str, Any]) -> int:
    return len(r.rows(f"SELECT COUNT(*) {MY}", [p["user"]]))


def raw_my_page(r: Raw, p: dict[str, Any]) -> int:
    invs = r.rows(f"SELECT o.* {MY} ORDER BY o.STARTDATE DESC{r.nulls_last}, o.ID LIMIT 50",
                  [p["user"]])
    ids = _ids(invs)
    dci = r.children("DATACOLLECTIONINVESTIGATION", "INVESTIGATION_ID", ids)
    dc_of = _column(r, "DATACOLLECTIONINVESTIGATION", "DATACOLLECTION_ID")
    dcs = r.by_ids("DATACOLLECTION", [dc_of(x) for x in dci])
    r.children("DATAPUBLICATION", "DATACOLLECTION_ID", _ids(dcs))
    ifc = r.children("INVESTIGATIONFACILITYCYCLE", "INVESTIGATION_ID", ids)
    fc_of = _column(r, "INVESTIGATIONFACILITYCYCLE", "FACILITYCYCLE_ID")
    r.by_ids("FACILITYCYCLE", [fc_of(x) for x in ifc])
    ii = r.children("INVESTIGATIONINSTRUMENT", "INVESTIGATION_ID", ids)
    in_of = _column(r, "INVESTIGATIONINSTRUMENT", "INSTRUMENT_ID")
    r.by_ids("INSTRUMENT", [in_of(x) for x in ii])
    return len(invs)


def raw_ds_count(r: Raw, p: dict[str, Any]) -> int:
    return len(r.rows("SELECT COUNT(*) FROM DATASET WHERE INVESTIGATION_ID = ?", [p["inv"]]))


def raw_ds_page(r: Raw, p: dict[str, Any]) -> int:
    return len(r.rows(f"SELECT * FROM DATASET WHERE INVESTIGATION_ID = ? "
                      f"ORDER BY CREATE_TIME DESC{r.nulls_last}, ID LIMIT 50", [p["inv"]]))


def raw_df_count(r: Raw, p: dict[str, Any]) -> int:
    return len(r.rows("SELECT COUNT(*) FROM DATAFILE WHERE DATASET_ID = ?", [p["ds"]]))


def raw_df_page(r: Raw, p: dict[str, Any]) -> int:
    files = r.rows("SELECT * FROM DATAFILE WHERE DATASET_ID = ? ORDER BY NAME, ID LIMIT 50",
                   [p["ds"]])
    fmt_of = _column(r, "DATAFILE", "DATAFILEFORMAT_ID")
    r.by_ids("DATAFILEFORMAT", [fmt_of(f) for f in files])
    _parameters(r, "DATAFILEPARAMETER", "DATAFILE_ID", _ids(files))
    return len(files)


def raw_ds_param(r: Raw, p: dict[str, Any]) -> int:
    ds = r.rows("SELECT o.* FROM DATASET o JOIN DATASETPARAMETER p ON p.DATASET_ID = o.ID "
                "JOIN PARAMETERTYPE pt ON pt.ID = p.PARAMETER_TYPE_ID "
                "WHERE (pt.NAME = ? AND p.STRING_VALUE = ?) OR (pt.NAME = ? AND "
                "p.NUMERIC_VALUE < ?) ORDER BY o.ID, p.ID LIMIT 50",
                ["sample_state", "solid", "temperature", 50.0])
    _parameters(r, "DATASETPARAMETER", "DATASET_ID", _ids(ds))
    return len(ds)


def raw_inv_param(r: Raw, p: dict[str, Any]) -> int:
    invs = r.rows("SELECT o.* FROM INVESTIGATION o JOIN DATASET s1 ON s1.INVESTIGATION_ID = o.ID "
                  "JOIN DATASETPARAMETER s2 ON s2.DATASET_ID = s1.ID "
                  "JOIN PARAMETERTYPE s3 ON s3.ID = s2.PARAMETER_TYPE_ID "
                  "WHERE s3.NAME = ? AND s2.NUMERIC_VALUE BETWEEN ? AND ? AND s3.UNITS = ? "
                  "ORDER BY o.ID, s1.ID, s2.ID LIMIT 50", ["temperature", 15.0, 22.0, "K"])
    ids = _ids(invs)
    ds = r.children("DATASET", "INVESTIGATION_ID", ids)
    _parameters(r, "DATASETPARAMETER", "DATASET_ID", _ids(ds))
    r.children("KEYWORD", "INVESTIGATION_ID", ids)
    itype_of = _column(r, "INVESTIGATION", "TYPE_ID")
    r.by_ids("INVESTIGATIONTYPE", [itype_of(x) for x in invs])
    return len(invs)


QUERIES = [
    Query("my-count", "#1", "SELECT COUNT(o) FROM Investigation o JOIN o.investigationUsers AS iu "
          "JOIN iu.user AS s1 WHERE s1.name = '{user}'", raw_my_count),
    Query("my-page", "#2", "SELECT o FROM Investigation o JOIN o.investigationUsers AS iu "
          "JOIN iu.user AS s1 WHERE s1.name = '{user}' ORDER BY o.startDate DESC, o.id ASC "
          "INCLUDE o.dataCollectionInvestigations AS s1, s1.dataCollection AS s2, "
          "s2.dataPublications, o.investigationFacilityCycles AS s3, s3.facilityCycle, "
          "o.investigationInstruments AS ii, ii.instrument LIMIT 0, 50", raw_my_page),
    Query("ds-count", "#10", "SELECT COUNT(o) FROM Dataset o JOIN o.investigation AS i "
          "WHERE i.id = '{inv}'", raw_ds_count),
    Query("ds-page", "#11", "SELECT o FROM Dataset o JOIN o.investigation AS i WHERE i.id = "
          "'{inv}' ORDER BY o.createTime DESC, o.id ASC LIMIT 0, 50", raw_ds_page),
    Query("df-count", "#13", "SELECT COUNT(o) FROM Datafile o JOIN o.dataset AS ds "
          "WHERE ds.id = '{ds}'", raw_df_count),
    Query("df-page", "#12", "SELECT o FROM Datafile o JOIN o.dataset AS ds WHERE ds.id = '{ds}' "
          "ORDER BY o.name ASC, o.id ASC INCLUDE o.datafileFormat, o.parameters AS p, p.type "
          "LIMIT 0, 50", raw_df_page),
    Query("ds-param", "#27", "SELECT o FROM Dataset o JOIN o.parameters AS p JOIN p.type AS pt "
          "WHERE ((pt.name = 'sample_state' and p.stringValue = 'solid') or "
          "(pt.name = 'temperature' and p.numericValue < '50')) "
          "INCLUDE o.parameters AS p, p.type LIMIT 0, 50", raw_ds_param),
    Query("inv-param", "#26", "SELECT o FROM Investigation o JOIN o.datasets AS s1 "
          "JOIN s1.parameters AS s2 JOIN s2.type AS s3 WHERE (s3.name = 'temperature' and "
          "s2.numericValue between '15' and '22' and s3.units = 'K') INCLUDE o.datasets AS s1, "
          "s1.parameters AS s2, s2.type, o.keywords, o.type LIMIT 0, 50", raw_inv_param),
]


# -- running ----------------------------------------------------------------------------------


def analyze(db: Database) -> None:
    """Planner statistics for the fresh data, as a production database has them."""
    with db.engine.connect() as conn:
        if db.dialect == "sqlite":
            conn.exec_driver_sql("ANALYZE")
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # the load's log, folded in
        elif db.dialect == "postgresql":
            conn.exec_driver_sql("ANALYZE")
        else:
            for table in db.tables.entity.values():
                conn.exec_driver_sql(f"ANALYZE TABLE {table.name}").all()
        conn.commit()


def choose(db: Database) -> dict[str, Any]:
    """The busiest user, the investigation with most datasets, a dataset of median size."""
    t = db.tables
    iu, u, ds, df = t["InvestigationUser"], t["User"], t["Dataset"], t["Datafile"]
    with db.connect() as conn:
        user = conn.execute(select(u.c.name).join(iu, iu.c.user == u.c.id).group_by(u.c.name)
                            .order_by(func.count().desc(), u.c.name).limit(1)).scalar_one()
        inv = conn.execute(select(ds.c.investigation).group_by(ds.c.investigation)
                           .order_by(func.count().desc(), ds.c.investigation).limit(1)
                           ).scalar_one()
        sizes = conn.execute(select(df.c.dataset, func.count()).group_by(df.c.dataset)
                             .order_by(func.count(), df.c.dataset)).all()
    dataset = sizes[len(sizes) // 2][0]
    return {"user": user, "inv": inv, "ds": dataset}


@dataclass
class InProcess:
    """A catalogue in the benchmark's process, on the server's configuration."""

    catalogue: Catalogue
    sid: str

    @classmethod
    def open(cls, work: Path) -> InProcess:
        catalogue = open_catalogue(load_settings(work / "cairn.toml"))
        sid = catalogue.login("simple", {"username": USER, "password": PASSWORD}, None)
        return cls(catalogue, sid)

    def run(self, text: str) -> bytes:
        zone = self.catalogue.zone  # as the server answers REST
        return results_bytes(self.catalogue.search(self.sid, text, JsonShape(zone)), zone)


@dataclass
class Result:
    query: Query
    rows: int
    cairn: list[float]
    raw: list[float]
    inproc: list[float]

    @property
    def inproc_ms(self) -> float | None:
        return statistics.median(self.inproc) * 1000 if self.inproc else None

    @property
    def cairn_ms(self) -> float:
        return statistics.median(self.cairn) * 1000

    @property
    def raw_ms(self) -> float:
        return statistics.median(self.raw) * 1000

    @property
    def meets(self) -> bool:
        return self.cairn_ms <= TARGET_RATIO * self.raw_ms + TARGET_MS


def measure(q: Query, http: Http, sid: str, raw: Raw, params: dict[str, Any],
            repeat: int, local: InProcess | None = None) -> Result:
    text = q.icat.format(**params)
    request = {"sessionId": sid, "query": text}
    r = http.get("/icat/entityManager", params=request)
    if r.status_code != 200:
        sys.exit(f"{q.name}: {r.status_code} {r.text}")
    body = r.json()
    rows = body[0] if len(body) == 1 and isinstance(body[0], int) else len(body)
    if local is not None and local.run(text) != r.content:
        sys.exit(f"{q.name}: the in-process answer differs from the server's")
    for _ in range(3):  # warm every side (caches, prepared statements)
        http.get("/icat/entityManager", params=request).raise_for_status()
        q.raw(raw, params)
        if local is not None:
            local.run(text)
    cairn, direct, inproc = [], [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = http.get("/icat/entityManager", params=request)
        t1 = time.perf_counter()
        q.raw(raw, params)
        t2 = time.perf_counter()
        if r.status_code != 200:
            sys.exit(f"{q.name}: {r.status_code} {r.text}")
        cairn.append(t1 - t0)
        direct.append(t2 - t1)
        if local is not None:
            local.run(text)
            inproc.append(time.perf_counter() - t2)
    return Result(q, rows, cairn, direct, inproc)


def profile(pid: int, seconds: float, run: Callable[[], None]) -> None:
    """py-spy on the server while ``run`` repeats; prints the top functions by own time."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("py-spy is not installed; no profile")
        return
    out = Path(tempfile.mkdtemp()) / "profile.txt"
    rec = subprocess.Popen([spy, "record", "--pid", str(pid), "--duration", str(int(seconds)),
                            "--format", "raw", "--output", str(out), "--nonblocking"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run()
    rec.wait()
    own: dict[str, int] = {}
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        n = int(count)
        leaf = frames[-1]
        if any(w in leaf for w in IDLE):
            continue
        total += n
        own[leaf] = own.get(leaf, 0) + n
        for f in set(frames):  # inclusive time of our own modules
            if "cairn/" in f:
                key = "  incl " + f
                own[key] = own.get(key, 0) + n
    print(f"\nprofile of the server ({total} samples):")
    for name, n in sorted(own.items(), key=lambda kv: -kv[1])[:40]:
        print(f"  {100 * n / total:5.1f}%  {name}")


def table(results: list[Result], scale: float, dialect: str, repeat: int) -> str:
    inproc = any(r.inproc for r in results)
    head = (f"{'query':<10} {'ref':<4} {'rows':>5} {'cairn ms':>9} {'req/s':>7} {'raw ms':>8} "
            f"{'ratio':>6} {'target ms':>9}  meets" + ("  in-process ms" if inproc else ""))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [f"scale {scale:g}, {dialect}, median of {repeat} runs, {os.cpu_count()} CPUs, "
             f"load average {load}", head, "-" * len(head)]
    for r in results:
        target = TARGET_RATIO * r.raw_ms + TARGET_MS
        rps = len(r.cairn) / sum(r.cairn)
        lines.append(f"{r.query.name:<10} {r.query.ref:<4} {r.rows:>5} {r.cairn_ms:>9.2f} "
                     f"{rps:>7.0f} {r.raw_ms:>8.2f} {r.cairn_ms / r.raw_ms:>6.2f} {target:>9.2f}"
                     f"  {'yes' if r.meets else 'NO ':<5}"
                     + (f"  {r.inproc_ms:>13.2f}" if r.inproc_ms is not None else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=float, default=100.0)
    p.add_argument("--database", help="SQLAlchemy URL of an empty (or demo) database")
    p.add_argument("--repeat", type=int, default=100)
    p.add_argument("--only", action="append", help="run only these queries (repeatable)")
    p.add_argument("--profile", help="profile the server while this query runs")
    p.add_argument("--in-process", action="store_true",
                   help="also time the search, rendered and encoded, in this process")
    args = p.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="cairn-bench-"))
    url = args.database or f"sqlite:///{work / 'catalogue.db'}"
    db = Database(url)
    migrate.upgrade(db)
    with db.connect() as conn:
        loaded = conn.execute(select(func.count()).select_from(db.tables["Datafile"])
                              ).scalar_one()
    if loaded:
        print(f"reusing the {loaded:,} datafiles already in the database")
    else:
        t0 = time.perf_counter()
        counts = load_demo(catalogue_of(db), scale=args.scale)
        print(f"demo scale {args.scale:g}: {sum(counts.values()):,} rows "
              f"({counts['Datafile']:,} datafiles) in {time.perf_counter() - t0:.1f} s")
        analyze(db)
        db.engine.dispose()
    params = choose(db)
    print(f"user {params['user']}, investigation {params['inv']}, dataset {params['ds']}")

    proc, base = start(work, url)
    raw = Raw(db)
    local: InProcess | None = None
    try:
        if args.in_process:
            local = InProcess.open(work)
            settle_heap()  # the collector configured as `cairn serve` configures it
        with Http(base) as http:
            sid = login(http)
            queries = [q for q in QUERIES if not args.only or q.name in args.only]
            results = [measure(q, http, sid, raw, params, args.repeat, local)
                       for q in queries]
            print()
            print(table(results, args.scale, db.dialect, args.repeat))
            if args.profile:
                q = next(q for q in QUERIES if q.name == args.profile)
                request = {"sessionId": sid, "query": q.icat.format(**params)}
                profile(proc.pid, 15,
                        lambda: http.get("/icat/entityManager", params=request).raise_for_status())
    finally:
        raw.close()
        if local is not None:
            local.catalogue.db.dispose()
        proc.terminate()
        proc.wait(10)
        db.dispose()
        if not args.database:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
