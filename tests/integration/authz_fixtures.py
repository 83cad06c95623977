"""Shared pieces of the authorization tests (test_authz_*.py): REST helpers, the fixture
catalogue of the authorization matrix, its rule set and what each user may read.

Everything is created through REST as root, the way a facility sets up ICAT, so the rules go
through rule validation like any other. Objects are referred to by symbolic names
(``"inv:A"``, ``"ds:A1"``, ``"df:a1-1"`` ...) that :func:`build_catalogue` maps to ids.

The catalogue (facility ``AZ``)::

    instruments X (scientist acord), Y
    groupings   readers = {nbour}, editors = {ahau}
    inv A  release 2199  instrument Y  users jdoe (PI), jbotu (CO)
           ds A1 (raw, temp 10)   df a1-1 (10 B), a1-2 (20 B)    a1-1 has a DatafileParameter
           ds A2 (proc)           df a2-1 (30 B)
    inv B  release 2199  instrument X  users jbotu (PI)
           ds B1 (raw, temp 20)   df b1-1 (40 B), b1-2 (50 B)
    inv C  release 2001  instrument X  (public after its release date)
           ds C1 (raw, temp 30)   df c1-1 (60 B)
    inv D  no release    instrument Y
           ds D1 (proc)           df d1-1 (70 B)

Rules: see :data:`RULES`. PublicSteps: Dataset.datafiles, InvestigationUser.user.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests import waiting
from tests.integration.server import Server

ROOT = "root"
#: The simple-authenticator users of the matrix; each logs in as ``simple/<name>``.
USERS = ("root", "jdoe", "acord", "nbour", "rbeck", "ahau", "jbotu")
NON_ROOT = USERS[1:]
FUTURE = "2199-01-01T00:00:00.000Z"
PAST = "2001-01-01T00:00:00.000Z"

ON_MY_INVESTIGATION = ("JOIN ds.investigation i JOIN i.investigationUsers iu JOIN iu.user u "
                       "WHERE u.name = :user")
AS_SCIENTIST = ("JOIN i.investigationInstruments ii JOIN ii.instrument inst "
                "JOIN inst.instrumentScientists s JOIN s.user u WHERE u.name = :user")


@dataclass(frozen=True)
class RuleSpec:
    key: str
    what: str
    flags: str
    grouping: str | None = None  # symbolic grouping name; None = everybody


#: The matrix' rule set: every kind of rule §2 describes.
RULES: tuple[RuleSpec, ...] = (
    # Public tables: unrestricted rules without grouping (JPQL and concise spellings).
    RuleSpec("pub:Facility", "Facility", "R"),
    RuleSpec("pub:Instrument", "SELECT x FROM Instrument x", "R"),
    RuleSpec("pub:InvestigationType", "InvestigationType", "R"),
    RuleSpec("pub:DatasetType", "SELECT t FROM DatasetType t", "R"),
    RuleSpec("pub:DatafileFormat", "DatafileFormat", "R"),
    RuleSpec("pub:ParameterType", "SELECT pt FROM ParameterType pt", "R"),
    # Investigation users (:user through joins).
    RuleSpec("iu:Investigation",
             "SELECT i FROM Investigation i JOIN i.investigationUsers iu JOIN iu.user u "
             "WHERE u.name = :user", "R"),
    RuleSpec("iu:Dataset", f"SELECT ds FROM Dataset ds {ON_MY_INVESTIGATION}", "CRUD"),
    RuleSpec("iu:Datafile",
             "Datafile <-> Dataset <-> Investigation <-> InvestigationUser <-> User "
             "[name = :user]", "CRUD"),
    RuleSpec("iu:DatasetParameter",
             "DatasetParameter <-> Dataset <-> Investigation <-> InvestigationUser <-> User "
             "[name = :user]", "R"),
    RuleSpec("iu:InvestigationUser",
             "SELECT iu FROM InvestigationUser iu JOIN iu.user u WHERE u.name = :user", "R"),
    # Instrument scientists (InstrumentScientist through InvestigationInstrument).
    RuleSpec("sci:Investigation", f"SELECT i FROM Investigation i {AS_SCIENTIST}", "R"),
    RuleSpec("sci:Dataset",
             f"SELECT ds FROM Dataset ds JOIN ds.investigation i {AS_SCIENTIST}", "RU"),
    # Public after the release date.
    RuleSpec("rel:Investigation",
             "SELECT i FROM Investigation i WHERE i.releaseDate < CURRENT_TIMESTAMP", "R"),
    RuleSpec("rel:Dataset", "SELECT ds FROM Dataset ds JOIN ds.investigation i "
             "WHERE i.releaseDate < CURRENT_TIMESTAMP", "R"),
    RuleSpec("rel:Datafile", "SELECT df FROM Datafile df JOIN df.dataset ds "
             "JOIN ds.investigation i WHERE i.releaseDate < CURRENT_TIMESTAMP", "R"),
    # Through groups.
    RuleSpec("readers:Dataset", "Dataset", "R", "readers"),
    RuleSpec("editors:Investigation", "SELECT x FROM Investigation x", "R", "editors"),
    RuleSpec("editors:doi", "SELECT x.doi FROM Investigation x", "U", "editors"),
    # Attribute-level update, restricted: investigation users may edit their summary.
    RuleSpec("iu:summary", "SELECT x.summary FROM Investigation x JOIN x.investigationUsers iu "
             "JOIN iu.user u WHERE u.name = :user", "U"),
    # Owner rule on a system field: satisfied at creation because createId is set first.
    RuleSpec("own:Sample", "SELECT s FROM Sample s WHERE s.createId = :user", "CRUD"),
)

PUBLIC_STEPS = (("Dataset", "datafiles"), ("InvestigationUser", "user"))

#: What each user may read, per entity (symbolic names); derived by hand from RULES.
READABLE: dict[str, dict[str, tuple[str, ...]]] = {
    "Investigation": {
        "root": ("inv:A", "inv:B", "inv:C", "inv:D"),
        "jdoe": ("inv:A", "inv:C"),
        "acord": ("inv:B", "inv:C"),
        "nbour": ("inv:C",),
        "rbeck": ("inv:C",),
        "ahau": ("inv:A", "inv:B", "inv:C", "inv:D"),
        "jbotu": ("inv:A", "inv:B", "inv:C"),
    },
    "Dataset": {
        "root": ("ds:A1", "ds:A2", "ds:B1", "ds:C1", "ds:D1"),
        "jdoe": ("ds:A1", "ds:A2", "ds:C1"),
        "acord": ("ds:B1", "ds:C1"),
        "nbour": ("ds:A1", "ds:A2", "ds:B1", "ds:C1", "ds:D1"),
        "rbeck": ("ds:C1",),
        "ahau": ("ds:C1",),
        "jbotu": ("ds:A1", "ds:A2", "ds:B1", "ds:C1"),
    },
    "Datafile": {
        "root": ("df:a1-1", "df:a1-2", "df:a2-1", "df:b1-1", "df:b1-2", "df:c1-1", "df:d1-1"),
        "jdoe": ("df:a1-1", "df:a1-2", "df:a2-1", "df:c1-1"),
        "acord": ("df:c1-1",),
        "nbour": ("df:c1-1",),
        "rbeck": ("df:c1-1",),
        "ahau": ("df:c1-1",),
        "jbotu": ("df:a1-1", "df:a1-2", "df:a2-1", "df:b1-1", "df:b1-2", "df:c1-1"),
    },
    "DatasetParameter": {
        "root": ("dsp:A1", "dsp:B1", "dsp:C1"),
        "jdoe": ("dsp:A1",),
        "jbotu": ("dsp:A1", "dsp:B1"),
    },
    "InvestigationUser": {
        "root": ("iu:A-jdoe", "iu:A-jbotu", "iu:B-jbotu"),
        "jdoe": ("iu:A-jdoe",),
        "acord": (), "nbour": (), "rbeck": (), "ahau": (),
        "jbotu": ("iu:A-jbotu", "iu:B-jbotu"),
    },
    "User": {"root": ("user:jdoe", "user:acord", "user:nbour", "user:rbeck", "user:ahau",
                      "user:jbotu")},
    "DatafileParameter": {"root": ("dfp:a1-1",)},
}
#: Entities for which no READ rule applies to the non-root users: their searches give the
#: no-permission result ([0] for a count query, [] otherwise). Every other entity of READABLE
#: has a rule without grouping, so an empty selection is an ordinary empty result there (a SUM
#: over no rows is [null], not []).
NO_RULES = ("User", "DatafileParameter")


def readable(entity: str, user: str) -> tuple[str, ...]:
    return READABLE[entity].get(user, ())


# -- REST ----------------------------------------------------------------------------------


class Rest:
    """Thin REST client over a test :class:`Server` (one httpx client, answers unparsed)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.http: httpx.Client = server.http
        self._sessions: dict[str, str] = {}

    def session(self, user: str) -> str:
        if user not in self._sessions:
            self._sessions[user] = self.server.login(user)
        return self._sessions[user]

    def write(self, user: str, entities: Any) -> httpx.Response:
        text = entities if isinstance(entities, str) else json.dumps(entities)
        return self.http.post("/icat/entityManager",
                              data={"sessionId": self.session(user), "entities": text})

    def get(self, user: str, query: str, id: int) -> httpx.Response:
        return self.http.get("/icat/entityManager", params={
            "sessionId": self.session(user), "query": query, "id": id})

    def search(self, user: str, query: str) -> httpx.Response:
        return self.http.get("/icat/entityManager",
                             params={"sessionId": self.session(user), "query": query})

    def delete(self, user: str, entities: Any) -> httpx.Response:
        return self.http.delete("/icat/entityManager", params={
            "sessionId": self.session(user), "entities": json.dumps(entities)})

    def clone(self, user: str, name: str, id: int, keys: dict[str, str]) -> httpx.Response:
        return self.http.post("/icat/cloner", data={
            "sessionId": self.session(user), "name": name, "id": str(id),
            "keys": json.dumps(keys)})

    # -- answers ---------------------------------------------------------------------------

    def ok_search(self, user: str, query: str) -> Any:
        r = self.search(user, query)
        assert r.status_code == 200, (user, query, r.text)
        return r.json()

    def ok_write(self, user: str, entities: Any) -> list[int]:
        r = self.write(user, entities)
        assert r.status_code == 200, (user, entities, r.text)
        return list(r.json())

    def create(self, entity: str, **fields: Any) -> int:
        """Create one object as root; return its id."""
        (new,) = self.ok_write(ROOT, {entity: fields})
        return int(new)

    def remove(self, entity: str, id: int) -> None:
        """Delete one object as root (clean-up); a missing object is fine."""
        r = self.delete(ROOT, {entity: {"id": id}})
        assert r.status_code in (204, 404), r.text

    def add_rule(self, what: str, flags: str, grouping: int | None = None) -> int:
        body: dict[str, Any] = {"crudFlags": flags, "what": what}
        if grouping is not None:
            body["grouping"] = {"id": grouping}
        return self.create("Rule", **body)


def ids_of(results: list[Any]) -> list[int]:
    """Ids of a list of wrapped entities, in result order."""
    out = []
    for item in results:
        assert isinstance(item, dict) and len(item) == 1, item
        (obj,) = item.values()
        out.append(int(obj["id"]))
    return out


def unwrap(item: Any, entity: str) -> dict[str, Any]:
    assert isinstance(item, dict) and list(item) == [entity], item
    return dict(item[entity])


def assert_error(r: httpx.Response, status: int, code: str, message: str | None = None,
                 offset: int | None = None) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["code"] == code, body
    if message is not None:
        assert body["message"] == message, body
    if offset is not None:
        assert body.get("offset") == offset, body
    return dict(body)


def assert_denied(r: httpx.Response, access: str, entity: str,
                  offset: int | None = None) -> None:
    """icat.server's refusal: 403 INSUFFICIENT_PRIVILEGES "<ACCESS> access to this <T> ..."."""
    assert_error(r, 403, "INSUFFICIENT_PRIVILEGES",
                 f"{access} access to this {entity} is not allowed.", offset)


def wait_until(condition: Callable[[], bool], within: float, what: str = "the condition",
               step: float = 0.05) -> float:
    """Poll ``condition`` until true; return the seconds it took, or fail after ``within``
    naming ``what`` was awaited."""
    start = time.monotonic()
    waiting.wait_until(condition, within, what, step=step)
    return time.monotonic() - start


# -- the matrix catalogue ------------------------------------------------------------------


@dataclass
class Catalogue:
    rest: Rest
    ids: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, key: str) -> int:
        return self.ids[key]

    def resolve(self, names: Iterable[str]) -> list[int]:
        return [self.ids[n] for n in names]


def _dataset(cat: Catalogue, name: str, typ: str, files: list[tuple[str, int]],
             temp: float | None) -> dict[str, Any]:
    ds: dict[str, Any] = {
        "name": name, "type": {"id": cat[f"dst:{typ}"]},
        "datafiles": [{"name": f, "fileSize": size, "datafileFormat": {"id": cat["dff"]}}
                      for f, size in files]}
    if temp is not None:
        ds["parameters"] = [{"type": {"id": cat["pt:temp"]}, "numericValue": temp}]
    return ds


def build_catalogue(server: Server) -> Catalogue:
    """Create the matrix catalogue, its users, groups, rules and public steps as root."""
    rest = Rest(server)
    cat = Catalogue(rest)
    ids = cat.ids
    ids["fac"] = rest.create("Facility", name="AZ", fullName="Authorization Facility",
                             daysUntilRelease=365)
    fac = {"id": ids["fac"]}
    ids["it"] = rest.create("InvestigationType", name="exp", facility=fac)
    ids["dst:raw"] = rest.create("DatasetType", name="raw", facility=fac)
    ids["dst:proc"] = rest.create("DatasetType", name="proc", facility=fac)
    ids["dff"] = rest.create("DatafileFormat", name="nexus", version="1", facility=fac)
    ids["pt:temp"] = rest.create("ParameterType", name="temp", units="K", valueType="NUMERIC",
                                 applicableToDataset=True, applicableToDatafile=True,
                                 facility=fac)
    for name in ("X", "Y"):
        ids[f"inst:{name}"] = rest.create("Instrument", name=name, fullName=f"Instrument {name}",
                                          facility=fac)
    for user in NON_ROOT:
        ids[f"user:{user}"] = rest.create("User", name=f"simple/{user}", fullName=user.title())
    rest.create("InstrumentScientist", user={"id": ids["user:acord"]},
                instrument={"id": ids["inst:X"]})
    for group, members in (("readers", ["nbour"]), ("editors", ["ahau"])):
        ids[f"grp:{group}"] = rest.create("Grouping", name=group, userGroups=[
            {"user": {"id": ids[f"user:{m}"]}} for m in members])

    def investigation(name: str, title: str, start: str, release: str | None, inst: str,
                      users: list[tuple[str, str]], datasets: list[dict[str, Any]]) -> int:
        body: dict[str, Any] = {
            "name": name, "visitId": "1", "title": title, "startDate": start,
            "facility": fac, "type": {"id": ids["it"]},
            "investigationInstruments": [{"instrument": {"id": ids[f"inst:{inst}"]}}],
            "investigationUsers": [{"user": {"id": ids[f"user:{u}"]}, "role": role}
                                   for u, role in users],
            "datasets": datasets}
        if release is not None:
            body["releaseDate"] = release
        return rest.create("Investigation", **body)

    ids["inv:A"] = investigation(
        "A", "Alpha", "2020-01-01T00:00:00.000Z", FUTURE, "Y", [("jdoe", "PI"), ("jbotu", "CO")],
        [_dataset(cat, "A1", "raw", [("a1-1", 10), ("a1-2", 20)], 10.0),
         _dataset(cat, "A2", "proc", [("a2-1", 30)], None)])
    ids["inv:B"] = investigation(
        "B", "Beta", "2021-01-01T00:00:00.000Z", FUTURE, "X", [("jbotu", "PI")],
        [_dataset(cat, "B1", "raw", [("b1-1", 40), ("b1-2", 50)], 20.0)])
    ids["inv:C"] = investigation(
        "C", "Gamma", "2010-01-01T00:00:00.000Z", PAST, "X", [],
        [_dataset(cat, "C1", "raw", [("c1-1", 60)], 30.0)])
    ids["inv:D"] = investigation(
        "D", "Delta", "2022-01-01T00:00:00.000Z", None, "Y", [],
        [_dataset(cat, "D1", "proc", [("d1-1", 70)], None)])

    for row in rest.ok_search(ROOT, "SELECT ds.id, ds.name FROM Dataset ds"):
        ids[f"ds:{row[1]}"] = row[0]
    for row in rest.ok_search(ROOT, "SELECT df.id, df.name FROM Datafile df"):
        ids[f"df:{row[1]}"] = row[0]
    for row in rest.ok_search(ROOT, "SELECT p.id, p.dataset.name FROM DatasetParameter p"):
        ids[f"dsp:{row[1]}"] = row[0]
    for row in rest.ok_search(ROOT, "SELECT iu.id, iu.investigation.name, iu.user.name "
                                    "FROM InvestigationUser iu"):
        ids[f"iu:{row[1]}-{row[2].removeprefix('simple/')}"] = row[0]
    ids["dfp:a1-1"] = rest.create("DatafileParameter", datafile={"id": ids["df:a1-1"]},
                                  type={"id": ids["pt:temp"]}, numericValue=1.0)

    for spec in RULES:
        grouping = ids[f"grp:{spec.grouping}"] if spec.grouping else None
        ids[f"rule:{spec.key}"] = rest.add_rule(spec.what, spec.flags, grouping)
    for origin, fname in PUBLIC_STEPS:
        ids[f"step:{origin}.{fname}"] = rest.create("PublicStep", origin=origin, field=fname)
    return cat
