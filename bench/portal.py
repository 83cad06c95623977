"""The portal's pages over the demo facility, timed as a scientist and as root, each against
the catalogue query it is built on, sent over REST in the same run.

    .venv/bin/python bench/portal.py [--scale 10] [--database URL] [--repeat 50]
                                     [--only PAGE]

Loads the demo facility (``cairn.demo.load_demo``; scale 100 is about a million datafiles) into
a fresh catalogue -- a temporary SQLite file unless ``--database`` names an empty database (one
already holding the demo is reused as it is) -- starts a real Cairn process on it (free-text
search off: no page here reads its index, and its rebuild would run under the timings), and
times the main pages, each as the demo's busiest scientist (``db/jbloggs``: the demo's rules,
three READ paths per entity) and as root:

- ``home`` (``/``), ``browse`` (``/browse``), ``mine`` (``/browse/mine``);
- ``instrument``: the instrument of the chosen investigation, with its cycles and its
  investigations;
- ``investigation``: the scientist's investigation with the most datasets;
- ``dataset``: the biggest dataset the scientist may read, with its first page of datafiles;
- ``deep``: the last page of that dataset's datafiles, reached by its keyset cursor;
- ``datafile``: a datafile of it (the one with most parameters).

A page is fetched as a browser would (the session cookie, one keep-alive connection: the
standard library's client, ``http_client``) and its whole body read. Interleaved with each
page, its **baseline** runs: the page's main query (the table's page of rows, or the ``get``
of a detail page) as ``GET /icat/entityManager`` with the same session -- the same catalogue
work through REST's JSON instead of HTML, without the page's other queries (breadcrumbs,
visitor, counts). The table gives p50 and p95 of both, the ratio of the medians, and whether
the page meets the target: p95 under 100 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cairn_process import launch_catalogue, stop
from http_client import Http, Response
from query_portal import analyze
from sqlalchemy import func, select

from cairn.db import migrate
from cairn.db.engine import Database
from cairn.demo import load_demo
from cairn.demo.accounts import DEMO_PASSWORD
from cairn.startup import catalogue_of
from cairn.web.portal import browse, signin
from cairn.web.portal.paging import Cursor

ROOT, ROOT_PASSWORD = "root", "secret"
TARGET_MS = 100.0
PAGE_SIZE = 50  # the portal's default page_size


class Browser(Http):
    """A keep-alive connection sending a portal session cookie."""

    def __init__(self, base: str, sid: str) -> None:
        super().__init__(base)
        self.cookie = f"cairn_session={sid}"

    def page(self, path: str) -> Response:
        return self._send("GET", path, None, {"Cookie": self.cookie})


def login(http: Http, plugin: str, user: str, password: str) -> str:
    body = json.dumps({"plugin": plugin,
                       "credentials": [{"username": user}, {"password": password}]})
    r = http.post("/icat/session", data={"json": body})
    r.raise_for_status()
    return str(r.json()["sessionId"])


# -- what to open -------------------------------------------------------------------------


def choose(db: Database) -> dict[str, Any]:
    """The busiest scientist; their investigation with most datasets; the biggest dataset of
    their investigations, its datafile with most parameters and the cursor of its last
    page."""
    t = db.tables
    iu, u, inv, ds, df, ii = (t[n] for n in ("InvestigationUser", "User", "Investigation",
                                              "Dataset", "Datafile", "InvestigationInstrument"))
    with db.connect() as conn:
        user = conn.execute(select(u.c.name).join(iu, iu.c.user == u.c.id)
                            .where(u.c.name.like("db/%")).group_by(u.c.name)
                            .order_by(func.count().desc(), u.c.name).limit(1)).scalar_one()
        mine = select(iu.c.investigation).join(u, iu.c.user == u.c.id).where(u.c.name == user)
        investigation = conn.execute(
            select(ds.c.investigation).where(ds.c.investigation.in_(mine))
            .group_by(ds.c.investigation)
            .order_by(func.count().desc(), ds.c.investigation).limit(1)).scalar_one()
        instrument = conn.execute(select(ii.c.instrument).where(
            ii.c.investigation == investigation).order_by(ii.c.id).limit(1)).scalar_one()
        dataset, files = conn.execute(
            select(df.c.dataset, func.count()).join(ds, df.c.dataset == ds.c.id)
            .where(ds.c.investigation.in_(mine)).group_by(df.c.dataset)
            .order_by(func.count().desc(), df.c.dataset).limit(1)).one()
        names = conn.execute(select(df.c.id, df.c.name).where(df.c.dataset == dataset)
                             .order_by(df.c.name, df.c.id)).all()
        dfp = t["DatafileParameter"]
        datafile = conn.execute(  # one with parameters, if the dataset has any
            select(df.c.id).outerjoin(dfp, dfp.c.datafile == df.c.id)
            .where(df.c.dataset == dataset).group_by(df.c.id)
            .order_by(func.count(dfp.c.id).desc(), df.c.id).limit(1)).scalar_one()
        n_investigations = conn.execute(select(func.count()).select_from(inv)).scalar_one()
    last = ((len(names) - 1) // PAGE_SIZE) * PAGE_SIZE  # the first row of the last page
    after = names[last - 1] if last else None
    return {"user": user, "investigation": investigation, "instrument": instrument,
            "dataset": dataset, "files": files, "datafile": datafile,
            "after": after, "investigations": n_investigations}


# -- the pages and their baselines --------------------------------------------------------


@dataclass
class Check:
    name: str
    path: str
    baseline: str  # ICAT query text (a search), or "<get query>|<id>" for a get


def checks(p: dict[str, Any]) -> list[Check]:
    def table(listing: Any, source: str, where: list[str], include: str,
              cursor: Cursor | None = None) -> str:
        column = listing.column(listing.default)
        desc = column.descending
        conditions = [*where] + ([listing.beyond(column, desc, cursor)] if cursor else [])
        return listing.query(source, conditions, listing.order_by(column, desc),
                             PAGE_SIZE + 1, include)

    ins, inv, ds = p["instrument"], p["investigation"], p["dataset"]
    deep_path = f"/browse/dataset/{ds}"
    cursor = None
    if p["after"] is not None:
        ident, name = p["after"]
        cursor = Cursor(int(ident), name, False)
        deep_path += "?" + "&".join((f"after={ident}", "at=" + _quote(name)))
    return [
        Check("home", "/", "SELECT i FROM Investigation i JOIN i.investigationUsers iu "
              "JOIN iu.user u WHERE u.name = :user ORDER BY i.startDate DESC, i.id DESC "
              f"LIMIT 0, {signin.HOME_ROWS} INCLUDE i.investigationInstruments.instrument, "
              "i.type"),
        Check("browse", "/browse", "SELECT f FROM Facility f ORDER BY f.name, f.id "
              f"LIMIT 0, {browse.MAX_FACILITIES + 1} INCLUDE f.instruments"),
        Check("mine", "/browse/mine", table(
            browse.INVESTIGATIONS, "Investigation i",
            ["i.id IN (SELECT iu.investigation.id FROM InvestigationUser iu "
             "WHERE iu.user.name = :user)"], browse.INVESTIGATION_ROW)),
        Check("instrument", f"/browse/instrument/{ins}", table(
            browse.INVESTIGATIONS, "Investigation i JOIN i.investigationInstruments ii",
            [f"ii.instrument.id = {ins}"], "i.type")),
        Check("investigation", f"/browse/investigation/{inv}",
              "Investigation i INCLUDE i.type, i.facility, i.investigationUsers iu, iu.user, "
              "i.samples s, s.type, s.parameters sp, sp.type, i.parameters p, p.type, "
              "i.publications, i.keywords, i.investigationInstruments ii, ii.instrument"
              f"|{inv}"),
        Check("dataset", f"/browse/dataset/{ds}", table(
            browse.DATAFILES, "Datafile df", [f"df.dataset.id = {ds}"], "df.datafileFormat")),
        Check("deep", deep_path, table(
            browse.DATAFILES, "Datafile df", [f"df.dataset.id = {ds}"], "df.datafileFormat",
            cursor)),
        Check("datafile", f"/browse/datafile/{p['datafile']}",
              "Datafile df INCLUDE df.datafileFormat, df.parameters p, p.type, df.dataset ds, "
              "ds.investigation inv, inv.facility, inv.investigationInstruments ii, "
              f"ii.instrument|{p['datafile']}"),
    ]


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


def baseline_request(check: Check, sid: str) -> dict[str, str]:
    if "|" in check.baseline:
        query, ident = check.baseline.rsplit("|", 1)
        return {"sessionId": sid, "query": query, "id": ident}
    return {"sessionId": sid, "query": check.baseline}


# -- running ------------------------------------------------------------------------------


@dataclass
class Result:
    check: Check
    who: str
    bytes: int
    page: list[float]
    base: list[float]

    @staticmethod
    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000

    @property
    def meets(self) -> bool:
        return self.pct(self.page, 0.95) < TARGET_MS


def measure(check: Check, who: str, browser: Browser, sid: str, repeat: int,
            warmup: int) -> Result:
    request = baseline_request(check, sid)
    r = browser.page(check.path)
    if r.status_code != 200:
        sys.exit(f"{check.name} as {who}: HTTP {r.status_code} {r.text[:500]}")
    b = browser.get("/icat/entityManager", params=request)
    if b.status_code != 200:
        sys.exit(f"{check.name} baseline as {who}: HTTP {b.status_code} {b.text[:500]}")
    for _ in range(warmup):
        browser.page(check.path)
        browser.get("/icat/entityManager", params=request)
    page, base = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        browser.page(check.path).raise_for_status()
        t1 = time.perf_counter()
        browser.get("/icat/entityManager", params=request).raise_for_status()
        t2 = time.perf_counter()
        page.append(t1 - t0)
        base.append(t2 - t1)
    return Result(check, who, len(r.content), page, base)


def table(results: list[Result], scale: float, dialect: str, repeat: int) -> str:
    head = (f"{'page':<14} {'as':<10} {'kB':>5} {'p50 ms':>8} {'p95 ms':>8} "
            f"{'base p50':>9} {'base p95':>9} {'ratio':>6}  p95<{TARGET_MS:.0f}ms")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [f"scale {scale:g}, {dialect}, {repeat} runs each, {os.cpu_count()} CPUs, "
             f"load average {load}", head, "-" * len(head)]
    for r in results:
        p50, b50 = Result.pct(r.page, 0.5), Result.pct(r.base, 0.5)
        lines.append(f"{r.check.name:<14} {r.who:<10} {r.bytes / 1000:>5.0f} {p50:>8.2f} "
                     f"{Result.pct(r.page, 0.95):>8.2f} {b50:>9.2f} "
                     f"{Result.pct(r.base, 0.95):>9.2f} {p50 / b50:>6.2f}  "
                     f"{'yes' if r.meets else 'NO'}")
    return "\n".join(lines)


def load(url: str, scale: float) -> Database:
    db = Database(url)
    migrate.upgrade(db)
    with db.connect() as conn:
        loaded = conn.execute(select(func.count()).select_from(db.tables["Datafile"])
                              ).scalar_one()
    if loaded:
        print(f"reusing the {loaded:,} datafiles already in the database", flush=True)
        return db
    t0 = time.perf_counter()
    counts = load_demo(catalogue_of(db), scale=scale, user=f"simple/{ROOT}")
    print(f"demo scale {scale:g}: {sum(counts.values()):,} rows ({counts['Datafile']:,} "
          f"datafiles) in {time.perf_counter() - t0:.1f} s", flush=True)
    analyze(db)
    db.engine.dispose()
    return db


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--scale", type=float, default=10.0,
                   help="demo scale (100 = about a million datafiles)")
    p.add_argument("--database", help="SQLAlchemy URL of an empty (or demo) database")
    p.add_argument("--repeat", type=int, default=50)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--only", action="append", help="time only these pages (repeatable)")
    args = p.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="cairn-bench-portal-"))
    url = args.database or f"sqlite:///{work / 'catalogue.db'}"
    db = load(url, args.scale)
    chosen = choose(db)
    print(f"scientist {chosen['user']}, instrument {chosen['instrument']}, investigation "
          f"{chosen['investigation']} (of {chosen['investigations']:,}), dataset "
          f"{chosen['dataset']} ({chosen['files']} files), datafile {chosen['datafile']}",
          flush=True)
    proc, base = launch_catalogue(
        work, url, ROOT, ROOT_PASSWORD, catalogue="migrate = false",
        extra='[authn.db]\ntype = "db"\n[search]\nenabled = false', attempts=1200)
    results: list[Result] = []
    try:
        with Http(base) as http:
            sessions = {"scientist": login(http, "db", chosen["user"].split("/", 1)[1],
                                           DEMO_PASSWORD),
                        "root": login(http, "simple", ROOT, ROOT_PASSWORD)}
        todo = [c for c in checks(chosen) if not args.only or c.name in args.only]
        browsers: dict[str, Browser] = {who: Browser(base, sid) for who, sid in sessions.items()}
        try:
            for check in todo:
                for who, sid in sessions.items():
                    results.append(measure(check, who, browsers[who], sid, args.repeat,
                                           args.warmup))
        finally:
            for b in browsers.values():
                b.close()
        print()
        print(table(results, args.scale, db.dialect, args.repeat))
    finally:
        stop(proc)
        db.dispose()
        if not args.database:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r.meets for r in results) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())

