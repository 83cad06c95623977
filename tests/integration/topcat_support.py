"""Shared pieces of the ``/topcat`` tests: a small catalogue with files, and a client that
speaks TopCat's API as the DataGateway portal does (query parameters on GET and DELETE, form
fields on POST and PUT).

The catalogue (facility ``facility``), made through REST and ``/ids/put`` as root::

    inv A  visit V1  users jdoe, acord   ds A1 (3 files), A2 (2 files), A3 (1 file)
    inv B  visit V1  users jdoe          ds B1 (2 files)
    inv C  visit V2  no users            ds C1 (1 file)
    inv P  visit PUB public              ds P1 (2 files)

Rules: Facility, the types and data collections readable by all; investigation users read their
investigations, datasets and datafiles; everybody (anonymous users too) reads P and what it
holds. Groupings: ``globus-users`` = {acord}.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.integration.ids_support import Ids, Rest
from tests.integration.server import Server

MEMBER = ("SELECT {v} FROM {e} {v} {path} JOIN i.investigationUsers iu JOIN iu.user u "
          "WHERE u.name = :user")


@dataclass
class Catalogue:
    facility: str
    inv: dict[str, int] = field(default_factory=dict)
    ds: dict[str, int] = field(default_factory=dict)
    #: Datafile ids by dataset name, in upload order.
    files: dict[str, list[int]] = field(default_factory=dict)
    #: name -> bytes of every datafile
    content: dict[int, tuple[str, bytes]] = field(default_factory=dict)
    locations: dict[int, str] = field(default_factory=dict)

    def size(self, *datasets: str) -> int:
        return sum(len(self.content[f][1]) for d in datasets for f in self.files[d])


def build(server: Server, facility: str) -> Catalogue:
    rest, ids = Rest(server), Ids(server)
    fac = rest.create("Facility", name=facility)
    fmt = rest.create("DatafileFormat", name="raw", version="1", facility={"id": fac})
    dst = rest.create("DatasetType", name="raw", facility={"id": fac})
    it = rest.create("InvestigationType", name="experiment", facility={"id": fac})
    users = {}
    for name in ("simple/jdoe", "simple/acord", "simple/nbour"):
        users[name] = rest.create("User", name=name, fullName=name.split("/")[1].title())
    grouping = rest.create("Grouping", name="globus-users")
    rest.create("UserGroup", grouping={"id": grouping}, user={"id": users["simple/acord"]})
    for what in ("Facility", "DatafileFormat", "DatasetType", "InvestigationType",
                 "DataCollection"):
        rest.create("Rule", what=what, crudFlags="R")
    rest.create("Rule", crudFlags="R", what=MEMBER.format(v="i", e="Investigation", path=""))
    rest.create("Rule", crudFlags="R", what=MEMBER.format(
        v="ds", e="Dataset", path="JOIN ds.investigation i"))
    rest.create("Rule", crudFlags="R", what=MEMBER.format(
        v="df", e="Datafile", path="JOIN df.dataset ds JOIN ds.investigation i"))
    rest.create("Rule", crudFlags="R", what="SELECT i FROM Investigation i WHERE i.visitId = 'PUB'")
    rest.create("Rule", crudFlags="R", what=(
        "SELECT ds FROM Dataset ds JOIN ds.investigation i WHERE i.visitId = 'PUB'"))
    rest.create("Rule", crudFlags="R", what=(
        "SELECT df FROM Datafile df JOIN df.dataset ds JOIN ds.investigation i "
        "WHERE i.visitId = 'PUB'"))
    cat = Catalogue(facility)
    plan = {"A": ("V1", ["simple/jdoe", "simple/acord"], {"A1": 3, "A2": 2, "A3": 1}),
            "B": ("V1", ["simple/jdoe"], {"B1": 2}),
            "C": ("V2", [], {"C1": 1}),
            "P": ("PUB", [], {"P1": 2})}
    for inv_name, (visit, members, datasets) in plan.items():
        inv = rest.create("Investigation", name=f"inv {inv_name}", visitId=visit,
                          title=f"Investigation {inv_name}", facility={"id": fac},
                          type={"id": it})
        cat.inv[inv_name] = inv
        for user in members:
            rest.create("InvestigationUser", investigation={"id": inv},
                        user={"id": users[user]}, role="PI")
        for ds_name, n in datasets.items():
            ds = rest.create("Dataset", name=ds_name, investigation={"id": inv},
                             type={"id": dst})
            cat.ds[ds_name] = ds
            cat.files[ds_name] = []
            for k in range(n):
                name = f"{ds_name.lower()}_{k}.dat"
                data = f"{ds_name} file {k} ".encode() * (50 + 7 * k)
                df = ids.ok_put(rest.root, ds, name, data, fmt)
                cat.files[ds_name].append(df)
                cat.content[df] = (name, data)
    for row in rest.search(f"SELECT df FROM Datafile df WHERE df.dataset.investigation"
                           f".facility.name = '{facility}'"):
        cat.locations[int(row["Datafile"]["id"])] = row["Datafile"]["location"]
    return cat


class Topcat:
    """``/topcat`` as the portal calls it; answers unparsed."""

    def __init__(self, server: Server, facility: str) -> None:
        self.server = server
        self.http: httpx.Client = server.http
        self.facility = facility

    def get(self, path: str, sid: str | None, **params: Any) -> httpx.Response:
        query: dict[str, Any] = {"facilityName": self.facility, **params}
        if sid is not None:
            query["sessionId"] = sid
        return self.http.get(f"/topcat{path}", params=query)

    def post(self, path: str, sid: str | None, **form: Any) -> httpx.Response:
        body: dict[str, Any] = {"facilityName": self.facility, **form}
        if sid is not None:
            body["sessionId"] = sid
        return self.http.post(f"/topcat{path}", data=body)

    def put(self, path: str, sid: str | None, **form: Any) -> httpx.Response:
        body: dict[str, Any] = {"facilityName": self.facility, **form}
        if sid is not None:
            body["sessionId"] = sid
        return self.http.put(f"/topcat{path}", data=body)

    def delete(self, path: str, sid: str | None, **params: Any) -> httpx.Response:
        query: dict[str, Any] = {**params}
        if sid is not None:
            query["sessionId"] = sid
        return self.http.delete(f"/topcat{path}", params=query)

    # -- the calls, answers checked ----------------------------------------------------------

    def cart(self, sid: str) -> dict[str, Any]:
        return ok(self.get(f"/user/cart/{self.facility}", sid))

    def add(self, sid: str, items: str) -> dict[str, Any]:
        return ok(self.post(f"/user/cart/{self.facility}/cartItems", sid, items=items))

    def remove(self, sid: str, items: str) -> dict[str, Any]:
        return ok(self.delete(f"/user/cart/{self.facility}/cartItems", sid, items=items))

    def submit(self, sid: str, file_name: str = "mydata", transport: str = "https",
               **form: Any) -> int:
        body = ok(self.post(f"/user/cart/{self.facility}/submit", sid, transport=transport,
                            fileName=file_name, zipType="ZIP", **form))
        assert body["cartItems"] == [], body
        return int(body["downloadId"])

    def downloads(self, sid: str, query_offset: str | None = None) -> list[dict[str, Any]]:
        params = {} if query_offset is None else {"queryOffset": query_offset}
        return list(ok(self.get("/user/downloads", sid, **params)))

    def download(self, sid: str, download_id: int) -> dict[str, Any]:
        (d,) = self.downloads(sid, f"where download.id = {download_id}")
        return d


def ok(r: httpx.Response) -> Any:
    assert r.status_code == 200, (r.status_code, r.text[:1000])
    return r.json() if r.content else None


def assert_error(r: httpx.Response, status: int, code: str, contains: str | None = None
                 ) -> str:
    """TopCat's error shape: {"status", "code", "message"}; the message."""
    assert r.status_code == status, (r.status_code, r.text[:1000])
    body = r.json()
    assert set(body) == {"status", "code", "message"}, body
    assert body["status"] == status and body["code"] == code, body
    if contains is not None:
        assert contains in body["message"], body
    return str(body["message"])


def zip_members(data: bytes) -> dict[str, bytes]:
    """The files of a zip by their own name (the zip's paths are the data service's
    ``ids/<facility>/<investigation>/<visit>/<dataset>/<name>``)."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        files = [i for i in z.infolist() if not i.is_dir()]
        out = {i.filename.rpartition("/")[2]: z.read(i) for i in files}
    assert len(out) == len(files), [i.filename for i in files]
    return out


def pretty(value: Any) -> str:
    return json.dumps(value, indent=1)[:2000]
