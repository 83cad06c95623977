"""The soak benchmark's clients: what a portal, an ingest script and a downloader do, mixed.

:func:`prepare` sets the catalogue up over REST as root (the facility's rules, a dataset of
small real files per user investigation, uploaded through ``/ids/put``) and finds, for each
user, what that user may read and write, by asking the server as that user. A
:class:`Client` then loops until told to stop: log in, run ``session_ops`` operations drawn
from :data:`MIX`, log out. Every HTTP request is timed and recorded in a :class:`Recorder`;
an answer other than the one expected is an error (its first lines are kept).
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

ROOT, ROOT_PASSWORD = "root", "secret"
USER_PASSWORD = "soak-password"
#: Demo users: investigation users (they write keywords) and instrument scientists.
USERS = ("jbloggs", "calvarez", "alovelace", "bweber", "dnovak", "hmeyer", "dcosta", "gjensen")

#: Investigation users may add and remove keywords of their investigations.
KEYWORD_RULE = ("SELECT x FROM Keyword x JOIN x.investigation i JOIN i.investigationUsers iu_ "
                "JOIN iu_.user u_ WHERE u_.name = :user", "CUD")
SOAK_DATASET = "soak-files"
FILES_PER_DATASET = 5
WORDS = ("calcite", "scan", "protein", "diffraction", "nxs", "temperature", "crystal",
         "powder", "calib*", "sample")


# -- recording --------------------------------------------------------------------------------

@dataclass
class Recorder:
    """Timed requests as ``(end, kind, seconds, ok)``, appended by every client thread
    (``list.append`` is atomic), read by the reporter by index."""

    samples: list[tuple[float, str, float, bool]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, seconds: float, ok: bool, detail: str = "") -> None:
        self.samples.append((time.monotonic(), kind, seconds, ok))
        if not ok:
            with self._lock:
                self.error_count += 1
                if len(self.errors) < 20:
                    self.errors.append(f"{kind}: {detail[:300]}")


class Conn:
    """One keep-alive HTTP/1.1 connection, reopened after the server closed it.

    A request on a connection the server had closed (its keep-alive timeout passed while the
    client was busy elsewhere) is sent again once on a new connection, as HTTP clients do;
    ``reconnects`` counts how often, so that a server dropping live connections shows.
    """

    reconnects = 0  # across all connections

    def __init__(self, base: str, timeout: float = 120) -> None:
        u = urlsplit(base)
        self.host, self.port, self.timeout = u.hostname or "127.0.0.1", u.port, timeout
        self._conn = self._open()

    def _open(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def send(self, method: str, target: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        reused = self._conn.sock is not None
        try:
            return self._send(method, target, body, headers)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            self._conn.close()
            self._conn = self._open()
            if not reused:
                raise
            Conn.reconnects += 1
            return self._send(method, target, body, headers)

    def _send(self, method: str, target: str, body: bytes | None,
              headers: dict[str, str] | None) -> tuple[int, bytes]:
        try:
            self._conn.request(method, target, body, headers or {})
            r = self._conn.getresponse()
            return r.status, r.read()
        except (http.client.HTTPException, OSError):
            self._conn.close()
            self._conn = self._open()
            raise

    def close(self) -> None:
        self._conn.close()


def form(data: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    return urlencode(data).encode(), {"Content-Type": "application/x-www-form-urlencoded"}


class Session:
    """A logged-in user on one connection, every request timed into ``recorder``."""

    def __init__(self, conn: Conn, recorder: Recorder | None) -> None:
        self.conn, self.recorder, self.sid = conn, recorder, ""

    def call(self, kind: str, method: str, path: str, params: dict[str, Any] | None = None,
             body: bytes | None = None, headers: dict[str, str] | None = None,
             expect: int = 200) -> bytes | None:
        """The answer's body, or None (recorded as an error) if it was not ``expect``."""
        target = path + ("?" + urlencode(params) if params else "")
        start = time.perf_counter()
        try:
            status, content = self.conn.send(method, target, body, headers)
        except (http.client.HTTPException, OSError) as e:
            self._record(kind, time.perf_counter() - start, False, f"{method} {path}: {e!r}")
            return None
        ok = status == expect
        self._record(kind, time.perf_counter() - start, ok,
                     "" if ok else f"{method} {path} -> {status} {content[:300]!r}")
        return content if ok else None

    def _record(self, kind: str, seconds: float, ok: bool, detail: str) -> None:
        if self.recorder is not None:
            self.recorder.add(kind, seconds, ok, detail)
        elif not ok:
            raise RuntimeError(detail)

    def login(self, plugin: str, name: str, password: str) -> bool:
        creds = {"plugin": plugin, "credentials": [{"username": name}, {"password": password}]}
        body = self.call("login", "POST", "/icat/session", None,
                         *form({"json": json.dumps(creds)}))
        self.sid = json.loads(body)["sessionId"] if body else ""
        return bool(self.sid)

    def logout(self) -> None:
        self.call("logout", "DELETE", f"/icat/session/{quote(self.sid)}", expect=204)

    def search(self, kind: str, query: str) -> Any:
        body = self.call(kind, "GET", "/icat/entityManager",
                         {"sessionId": self.sid, "query": query})
        return None if body is None else json.loads(body)

    def write(self, kind: str, entities: list[dict[str, Any]]) -> list[int] | None:
        body = self.call(kind, "POST", "/icat/entityManager", None, *form(
            {"sessionId": self.sid, "entities": json.dumps(entities)}))
        return None if body is None else list(json.loads(body))

    def delete(self, kind: str, entity: str, ids: list[int]) -> None:
        self.call(kind, "DELETE", "/icat/entityManager", {
            "sessionId": self.sid,
            "entities": json.dumps([{entity: {"id": i}} for i in ids])}, expect=204)


# -- what each user may touch -----------------------------------------------------------------

@dataclass
class Plan:
    plugin: str
    name: str
    password: str
    investigations: list[int]  # readable, for searches
    datasets: list[int]  # readable, for gets and file listings
    own: list[int]  # investigations whose keywords this user may write
    files: list[int]  # soak files this user may read
    soak_datasets: list[int]  # the soak datasets among those readable
    format_id: int = 0  # root only: the DatafileFormat of uploads

    @property
    def user(self) -> str:
        return f"{self.plugin}/{self.name}"


def ids(answer: Any) -> list[int]:
    return [int(x) for x in answer or []]


def prepare(url: str, rules: list[tuple[str, str]], file_bytes: int = 32_000) -> list[Plan]:
    """Rules, soak files and one plan per user (root first); fails loudly on any error."""
    root = Session(Conn(url), None)
    root.login("simple", ROOT, ROOT_PASSWORD)
    have = {(r[0], r[1]) for r in root.search("setup", "SELECT r.what, r.crudFlags FROM Rule r")}
    missing = [r for r in [*rules, KEYWORD_RULE] if r not in have]
    if missing:
        root.write("setup", [{"Rule": {"crudFlags": f, "what": w}} for w, f in missing])
    ds_type = root.search("setup", "SELECT t.id FROM DatasetType t ORDER BY t.id LIMIT 0, 1")[0]
    fmt = root.search("setup", "SELECT f.id FROM DatafileFormat f ORDER BY f.id LIMIT 0, 1")[0]
    users = ", ".join(f"'db/{u}'" for u in USERS)
    own = ids(root.search("setup", "SELECT DISTINCT i.id FROM Investigation i JOIN "
                          f"i.investigationUsers iu JOIN iu.user u WHERE u.name IN ({users})"))
    rng = random.Random(7)
    for inv in own:
        found = root.search("setup", f"SELECT ds.id FROM Dataset ds WHERE ds.name = "
                            f"'{SOAK_DATASET}' AND ds.investigation.id = {inv}")
        if found:
            continue
        (ds,) = root.write("setup", [{"Dataset": {
            "name": SOAK_DATASET, "investigation": {"id": inv}, "type": {"id": ds_type}}}]) or []
        for n in range(FILES_PER_DATASET):
            root.call("setup", "PUT", "/ids/put", {
                "sessionId": root.sid, "name": f"soak-{n}.dat", "datasetId": ds,
                "datafileFormatId": fmt}, rng.randbytes(file_bytes),
                {"Content-Type": "application/octet-stream"}, expect=201)
    plans = [plan_for(url, "simple", ROOT, ROOT_PASSWORD, own)]
    plans[0].format_id = fmt
    plans += [plan_for(url, "db", u, USER_PASSWORD, own) for u in USERS]
    root.logout()
    return plans


def plan_for(url: str, plugin: str, name: str, password: str, own_all: list[int]) -> Plan:
    s = Session(Conn(url), None)
    s.login(plugin, name, password)
    user = f"{plugin}/{name}"
    invs = ids(s.search("setup", "SELECT i.id FROM Investigation i ORDER BY i.id LIMIT 0, 200"))
    dss = ids(s.search("setup", "SELECT ds.id FROM Dataset ds WHERE ds.name <> "
                       f"'{SOAK_DATASET}' ORDER BY ds.id LIMIT 0, 500"))
    mine = ids(s.search("setup", "SELECT i.id FROM Investigation i JOIN i.investigationUsers "
                        f"iu JOIN iu.user u WHERE u.name = '{user}'"))
    files = ids(s.search("setup", "SELECT df.id FROM Datafile df JOIN df.dataset ds "
                         f"WHERE ds.name = '{SOAK_DATASET}'"))
    soak = ids(s.search("setup", f"SELECT ds.id FROM Dataset ds WHERE ds.name = "
                        f"'{SOAK_DATASET}'"))
    s.logout()
    s.conn.close()
    own = own_all if plugin == "simple" else [i for i in mine if i in own_all]
    return Plan(plugin, name, password, invs, dss, own, files, soak)


# -- the operations ---------------------------------------------------------------------------

Op = Callable[["Client"], None]


def op_page(c: Client) -> None:
    """A portal page with INCLUDE: datasets of an investigation, files of a dataset, or the
    user's investigations with their instruments; paged as portals do."""
    p, r = c.plan, c.rng
    match r.randrange(3):
        case 0:
            c.s.search("search", f"SELECT ds FROM Dataset ds WHERE ds.investigation.id = "
                       f"{r.choice(p.investigations)} ORDER BY ds.id "
                       f"INCLUDE ds.type, ds.parameters LIMIT {r.randrange(3) * 10}, 10")
        case 1:
            c.s.search("search", f"SELECT df FROM Datafile df WHERE df.dataset.id = "
                       f"{r.choice(p.datasets)} ORDER BY df.name INCLUDE df.datafileFormat "
                       f"LIMIT {r.randrange(4) * 20}, 20")
        case _:
            c.s.search("search", "SELECT i FROM Investigation i ORDER BY i.startDate DESC "
                       "INCLUDE i.type, i.investigationInstruments AS ii, ii.instrument "
                       f"LIMIT {r.randrange(5) * 20}, 20")


def op_count(c: Client) -> None:
    c.s.search("count", "SELECT COUNT(df) FROM Datafile df WHERE df.dataset.investigation.id = "
               f"{c.rng.choice(c.plan.investigations)}")


def op_get(c: Client) -> None:
    c.s.call("get", "GET", "/icat/entityManager", {
        "sessionId": c.s.sid, "query": "Dataset ds INCLUDE ds.investigation, ds.type",
        "id": c.rng.choice(c.plan.datasets)})


def op_text(c: Client) -> None:
    target = c.rng.choice(("Investigation", "Dataset"))
    c.s.call("text", "GET", "/icat/search/documents", {
        "sessionId": c.s.sid, "maxCount": 20,
        "query": json.dumps({"target": target, "text": c.rng.choice(WORDS)})})


def op_write(c: Client) -> None:
    """A user adds a keyword to an investigation of theirs and removes it; root adds a
    datafile to a soak dataset, renames it and deletes it."""
    p = c.plan
    if p.plugin == "simple":
        ds = c.rng.choice(p.soak_datasets)
        made = c.s.write("write", [{"Datafile": {
            "name": f"w-{uuid.uuid4().hex}", "dataset": {"id": ds}, "fileSize": 1}}])
        if made:
            c.s.write("write", [{"Datafile": {"id": made[0], "description": "soak"}}])
            c.s.delete("write", "Datafile", made)
        return
    if not p.own:
        return op_page(c)
    made = c.s.write("write", [{"Keyword": {
        "name": f"soak-{uuid.uuid4().hex}", "investigation": {"id": c.rng.choice(p.own)}}}])
    if made:
        c.s.delete("write", "Keyword", made)


def op_put(c: Client) -> None:
    """Root only: upload a small file through the data service and delete it again."""
    p = c.plan
    body = c.s.call("put", "PUT", "/ids/put", {
        "sessionId": c.s.sid, "name": f"p-{uuid.uuid4().hex}.dat",
        "datasetId": c.rng.choice(p.soak_datasets), "datafileFormatId": p.format_id},
        c.rng.randbytes(8_000), {"Content-Type": "application/octet-stream"}, expect=201)
    if body:
        c.s.call("put", "DELETE", "/ids/delete",
                 {"sessionId": c.s.sid, "datafileIds": json.loads(body)["id"]}, expect=204)


def op_download(c: Client) -> None:
    """A file, a dataset's zip, or a prepared download of a few files."""
    p, r = c.plan, c.rng
    if not p.files:
        return op_get(c)
    match r.randrange(3):
        case 0:
            c.s.call("download", "GET", "/ids/getData",
                     {"sessionId": c.s.sid, "datafileIds": r.choice(p.files)})
        case 1:
            c.s.call("download", "GET", "/ids/getData",
                     {"sessionId": c.s.sid, "datasetIds": r.choice(p.soak_datasets)})
        case _:
            picked = ",".join(str(f) for f in r.sample(p.files, min(3, len(p.files))))
            prepared = c.s.call("download", "POST", "/ids/prepareData", None, *form(
                {"sessionId": c.s.sid, "datafileIds": picked, "zip": "true"}))
            if prepared:
                c.s.call("download", "GET", "/ids/getData",
                         {"preparedId": prepared.decode().strip()})


def op_session(c: Client) -> None:
    c.s.call("session", "GET", f"/icat/session/{quote(c.s.sid)}")


#: (operation, weight for users, weight for root)
MIX: tuple[tuple[Op, int, int], ...] = (
    (op_page, 35, 30), (op_count, 10, 10), (op_get, 20, 15), (op_text, 5, 5),
    (op_write, 10, 15), (op_put, 0, 5), (op_download, 15, 15), (op_session, 5, 5),
)


class Client:
    """One simulated user: log in, ``session_ops`` operations, log out, again."""

    def __init__(self, url: str, plan: Plan, recorder: Recorder, seed: int,
                 session_ops: int = 200) -> None:
        self.plan, self.rng, self.session_ops = plan, random.Random(seed), session_ops
        self.s = Session(Conn(url), recorder)
        root = plan.plugin == "simple"
        self.ops = [op for op, _, _ in MIX]
        self.weights = [as_root if root else as_user for _, as_user, as_root in MIX]

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                p = self.plan
                if not self.s.login(p.plugin, p.name, p.password):
                    stop.wait(1)
                    continue
                for _ in range(self.session_ops):
                    if stop.is_set():
                        break
                    self.rng.choices(self.ops, self.weights)[0](self)
                self.s.logout()
        finally:
            self.s.conn.close()
