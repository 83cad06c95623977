"""Shared pieces of the data-service tests (test_ids_*.py): a Cairn process with a ``[data]``
table, a small catalogue with rules, and an ``/ids`` client that returns raw answers.

The catalogue (facility ``IDS-<random>``), all created through REST as root::

    inv A   users jdoe            ds A1, A2 (A2 stays empty)
    inv B   no users              ds B1

Rules: Facility, DatafileFormat, DatasetType, InvestigationType readable by all; investigation
users read their Investigation and have CRUD on its Datasets and Datafiles. So simple/jdoe
may upload to and download from A's datasets and gets 403 for B's.
"""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import make_database
from tests.integration.server import Server

MEMBER = ("SELECT {v} FROM {e} {v} JOIN {v}.{path} iu JOIN iu.user u "
          "WHERE u.name = :user")

#: What the server logs once an upload whose client went away has been cleaned up.
GONE = "PUT /ids/put: client went away"


def uniq(prefix: str = "x") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def crc_hex(data: bytes) -> str:
    return format(zlib.crc32(data), "x")


@dataclass
class Fixture:
    facility: int
    facility_name: str
    fmt: int
    inv_a: int
    inv_a_name: str
    inv_b: int
    ds_a1: int
    ds_a2: int
    ds_b1: int


class Rest:
    """The catalogue's REST API as root (answers checked)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.root = server.login("root")

    def write(self, entities: Any, sid: str | None = None) -> list[int]:
        r = self.server.http.post("/icat/entityManager", data={
            "sessionId": sid or self.root, "entities": json.dumps(entities)})
        assert r.status_code == 200, r.text
        return list(r.json())

    def create(self, entity: str, **fields: Any) -> int:
        (new,) = self.write({entity: fields})
        return int(new)

    def get(self, query: str, id: int, sid: str | None = None) -> dict[str, Any]:
        r = self.server.http.get("/icat/entityManager", params={
            "sessionId": sid or self.root, "query": query, "id": id})
        assert r.status_code == 200, r.text
        (obj,) = r.json().values()
        return dict(obj)

    def search(self, query: str, sid: str | None = None) -> list[Any]:
        r = self.server.http.get("/icat/entityManager", params={
            "sessionId": sid or self.root, "query": query})
        assert r.status_code == 200, r.text
        return list(r.json())


def build(server: Server) -> Fixture:
    rest = Rest(server)
    fac_name = uniq("IDS")
    fac = rest.create("Facility", name=fac_name, daysUntilRelease=1095)
    fmt = rest.create("DatafileFormat", name="nexus", version="1", facility={"id": fac})
    dst = rest.create("DatasetType", name="raw", facility={"id": fac})
    it = rest.create("InvestigationType", name="experiment", facility={"id": fac})
    jdoe = rest.search("SELECT u FROM User u WHERE u.name = 'simple/jdoe'")
    user = jdoe[0]["User"]["id"] if jdoe else rest.create("User", name="simple/jdoe")

    def investigation(name: str) -> int:
        return rest.create("Investigation", name=name, visitId="N/A", title=name,
                           facility={"id": fac}, type={"id": it})

    def dataset(inv: int, name: str) -> int:
        return rest.create("Dataset", name=name, investigation={"id": inv}, type={"id": dst})

    inv_a_name = uniq("inv A")
    inv_a, inv_b = investigation(inv_a_name), investigation(uniq("invB"))
    rest.create("InvestigationUser", investigation={"id": inv_a}, user={"id": user},
                role="PI")
    ds_a1, ds_a2, ds_b1 = dataset(inv_a, "A1"), dataset(inv_a, "A2 empty"), dataset(inv_b, "B1")
    if not rest.search("SELECT r FROM Rule r WHERE r.what = 'DatafileFormat'"):
        for what in ("Facility", "DatafileFormat", "DatasetType", "InvestigationType"):
            rest.create("Rule", what=what, crudFlags="R")
        rest.create("Rule", crudFlags="R", what=MEMBER.format(
            v="i", e="Investigation", path="investigationUsers"))
        rest.create("Rule", crudFlags="CRUD", what=(
            "SELECT ds FROM Dataset ds JOIN ds.investigation i JOIN i.investigationUsers iu "
            "JOIN iu.user u WHERE u.name = :user"))
        rest.create("Rule", crudFlags="CRUD", what=(
            "SELECT df FROM Datafile df JOIN df.dataset ds JOIN ds.investigation i "
            "JOIN i.investigationUsers iu JOIN iu.user u WHERE u.name = :user"))
    return Fixture(fac, fac_name, fmt, inv_a, inv_a_name, inv_b, ds_a1, ds_a2, ds_b1)


class Ids:
    """``/ids`` over HTTP, answers unparsed."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.http: httpx.Client = server.http

    def put(self, sid: str, dataset: int, name: str, data: Any, fmt: int,
            **extra: Any) -> httpx.Response:
        params = {"sessionId": sid, "name": name, "datasetId": dataset,
                  "datafileFormatId": fmt, **extra}
        return self.http.put("/ids/put", params=params, content=data,
                             headers={"Content-Type": "application/octet-stream"})

    def ok_put(self, sid: str, dataset: int, name: str, data: bytes, fmt: int,
               **extra: Any) -> int:
        r = self.put(sid, dataset, name, data, fmt, **extra)
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["checksum"] == zlib.crc32(data) and body["size"] == len(data), body
        return int(body["id"])

    def get(self, call: str, **params: Any) -> httpx.Response:
        return self.http.get(f"/ids/{call}", params=params)

    def post(self, call: str, **params: Any) -> httpx.Response:
        return self.http.post(f"/ids/{call}", data=params)

    def get_data(self, headers: dict[str, str] | None = None, **params: Any) -> httpx.Response:
        return self.http.get("/ids/getData", params=params, headers=headers or {})


def assert_ids_error(r: httpx.Response, status: int, code: str,
                     contains: str | None = None) -> str:
    assert r.status_code == status, (r.status_code, r.text[:500])
    body = r.json()
    assert body["code"] == code, body
    if contains is not None:
        assert contains in body["message"], body
    return str(body["message"])


def start(tmp: Path, backend: str, data: str = "", env: dict[str, str] | None = None,
          db_url: str | None = None) -> tuple[Server, Any]:
    """A Cairn process with ``[data]`` settings ``data`` on a new database (or ``db_url``);
    returns it and the callable that drops its database."""
    drop: Any = lambda: None  # noqa: E731
    if db_url is None:
        db_url, drop = make_database(backend, tmp)
    extra = f"\n[data]\n{data}\n" if data else ""
    return Server(tmp, db_url, extra_config=extra, env=env), drop


def server_for(tmp: Path, backend: str, data: str = "") -> Iterator[Server]:
    srv, drop = start(tmp, backend, data)
    try:
        yield srv
    finally:
        srv.stop()
        drop()
