"""A small, hand-designed catalogue for the free-text search tests (test_search_rest.py).

Every word, date, size and parameter below was chosen so that each search in the tests has
one exact answer, worked out by hand from this text. The catalogue is built over REST as root;
:class:`Catalogue` maps symbolic names ("inv:A", "ds:alpha-raw", "df:1") to the ids the server
gave them.

Vocabulary (a word appears only where listed):

* Facility "Hexham Synchrotron"; investigation types experiment (A, C, D), calibration (B).
* Investigations: A "ALPHA-2020" V20A "Thermal expansion of olivine" / "Olivine crystals heated
  slowly in a furnace"; B "BRAVO-2021" V21B "Detector response study" / "Response of the
  powder detector to a calibrant"; C "CHARLIE-2022" V22C "Magnetic structure of hematite" /
  "Neutron diffraction of hematite in a field; hematite magnetic order"; D "DELTA-2023" V23D
  "Calcite under pressure" / "High pressure study of calcite and olivine".
* Instruments I11 (A, B, D) and I15 (B, C); rbeck is I15's instrument scientist.
* Investigation users: jdoe (A, D), acord (A, B), nbour (C).
* Samples (type): garnet-01 (A, silicate), beryl-02 (B, silicate), zircon-03 (C, oxide),
  magnetite-05 (C, oxide), topaz-04 (D, silicate).
* Datasets: alpha-raw (A, garnet-01), alpha-processed (A, no sample), bravo-raw (B, beryl-02),
  charlie-raw (C, zircon-03), delta-raw (D, topaz-04).
* Datafiles df:1 … df:7, see :data:`DATAFILES`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.integration.server import Server

FACILITY = "Hexham Synchrotron"

USERS = {"simple/jdoe": "John Doe", "simple/acord": "Alice Cord",
         "simple/nbour": "Nora Bourbaki", "simple/rbeck": "Robert Beck"}


def ms(iso: str) -> int:
    """Epoch milliseconds of a UTC time written ``2020-01-10T08:00``."""
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp() * 1000)


def rest_date(iso: str) -> str:
    """A UTC time as the REST interface writes it."""
    return datetime.fromisoformat(iso).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass(frozen=True)
class Inv:
    key: str
    name: str
    visit: str
    title: str
    summary: str
    type: str
    start: str
    end: str
    instruments: tuple[str, ...]
    users: tuple[tuple[str, str], ...]  # (user, role)
    samples: tuple[tuple[str, str], ...]  # (name, sample type)


INVESTIGATIONS = (
    Inv("A", "ALPHA-2020", "V20A", "Thermal expansion of olivine",
        "Olivine crystals heated slowly in a furnace", "experiment",
        "2020-01-10T08:00", "2020-01-12T18:00", ("I11",),
        (("simple/jdoe", "PI"), ("simple/acord", "CI")), (("garnet-01", "silicate"),)),
    Inv("B", "BRAVO-2021", "V21B", "Detector response study",
        "Response of the powder detector to a calibrant", "calibration",
        "2021-06-01T00:00", "2021-06-03T00:00", ("I11", "I15"),
        (("simple/acord", "PI"),), (("beryl-02", "silicate"),)),
    Inv("C", "CHARLIE-2022", "V22C", "Magnetic structure of hematite",
        "Neutron diffraction of hematite in a field; hematite magnetic order", "experiment",
        "2022-03-05T00:00", "2022-03-20T00:00", ("I15",),
        (("simple/nbour", "PI"),), (("zircon-03", "oxide"), ("magnetite-05", "oxide"))),
    Inv("D", "DELTA-2023", "V23D", "Calcite under pressure",
        "High pressure study of calcite and olivine", "experiment",
        "2023-09-01T00:00", "2023-09-02T00:00", ("I11",),
        (("simple/jdoe", "PI"),), (("topaz-04", "silicate"),)),
)


@dataclass(frozen=True)
class Ds:
    name: str
    inv: str
    type: str
    description: str
    sample: str | None
    start: str
    end: str


DATASETS = (
    Ds("alpha-raw", "A", "raw", "Furnace scans of garnet", "garnet-01",
       "2020-01-10T09:00", "2020-01-11T12:00"),
    Ds("alpha-processed", "A", "processed", "Reduced patterns", None,
       "2020-01-12T09:00", "2020-01-12T11:00"),
    Ds("bravo-raw", "B", "raw", "Detector flat field", "beryl-02",
       "2021-06-02T10:00", "2021-06-02T14:00"),
    Ds("charlie-raw", "C", "raw", "Magnetic reflections", "zircon-03",
       "2022-03-06T00:00", "2022-03-07T00:00"),
    Ds("delta-raw", "D", "raw", "Pressure ramp", "topaz-04",
       "2023-09-01T10:00", "2023-09-01T14:00"),
)


@dataclass(frozen=True)
class Df:
    key: str  # df:1 … df:7, in creation (so id) order
    dataset: str
    name: str
    location: str
    format: str
    size: int
    mod_time: str | None
    create_time: str | None = None
    description: str | None = None

    @property
    def date(self) -> str:
        d = self.mod_time or self.create_time
        assert d is not None
        return d


DATAFILES = (
    Df("df:1", "alpha-raw", "run_001.nxs", "/data/alpha/raw/run_001.nxs", "nexus", 1000,
       "2020-01-10T09:30", description="First furnace run"),
    Df("df:2", "alpha-raw", "run_002.nxs", "/data/alpha/raw/run_002.nxs", "nexus", 3000,
       "2020-01-11T09:30"),
    Df("df:3", "alpha-processed", "reduced.txt", "/data/alpha/processed/reduced.txt", "ascii",
       200, "2020-01-12T10:00"),
    Df("df:4", "bravo-raw", "flat_001.tiff", "/data/bravo/flat_001.tiff", "tiff", 5000,
       "2021-06-02T12:00"),
    Df("df:5", "bravo-raw", "run_001.nxs", "/data/bravo/run_001.nxs", "nexus", 3000,
       "2021-06-02T13:00"),
    Df("df:6", "charlie-raw", "hematite_map.nxs", "/data/charlie/hematite_map.nxs", "nexus",
       8000, "2022-03-06T06:00"),
    # Only a creation time: its date falls back to datafileCreateTime.
    Df("df:7", "delta-raw", "pressure_scan.dat", "/data/delta/pressure_scan.dat", "ascii",
       3000, None, create_time="2023-09-01T12:00"),
)

#: (name, units, valueType)
PARAMETER_TYPES = (
    ("temperature", "K", "NUMERIC"),
    ("temperature", "degC", "NUMERIC"),
    ("energy", "eV", "NUMERIC"),
    ("colour", "N/A", "STRING"),
    ("start_time", "N/A", "DATE_AND_TIME"),
)

#: (owner key, parameter type (name, units), value): a float, a str, or ("date", iso)
PARAMETERS: tuple[tuple[str, tuple[str, str], Any], ...] = (
    ("inv:A", ("temperature", "K"), 300.0),  # 26.85 degC
    ("inv:A", ("colour", "N/A"), "red"),
    ("inv:A", ("energy", "eV"), 12000.0),
    ("inv:B", ("temperature", "degC"), 25.0),  # 298.15 K
    ("inv:B", ("colour", "N/A"), "green"),
    ("inv:C", ("temperature", "K"), 4.2),  # -268.95 degC
    ("inv:C", ("colour", "N/A"), "red"),
    ("inv:C", ("start_time", "N/A"), ("date", "2022-03-05T10:00")),
    ("inv:D", ("temperature", "degC"), 500.0),  # 773.15 K
    ("inv:D", ("colour", "N/A"), "blue"),
    ("inv:D", ("start_time", "N/A"), ("date", "2023-09-01T06:00")),
    ("ds:alpha-raw", ("temperature", "K"), 310.0),
    ("ds:bravo-raw", ("temperature", "degC"), 30.0),  # 303.15 K
    ("ds:charlie-raw", ("energy", "eV"), 8000.0),
    ("df:1", ("temperature", "degC"), 31.85),  # 305 K
    ("df:6", ("temperature", "K"), 4.2),  # -268.95 degC
    ("df:4", ("colour", "N/A"), "white"),
)

#: Rules without a grouping: dictionaries for everybody, data for its investigation users,
#: investigations and their data for the scientists of their instruments.
_IU = "JOIN {i}.investigationUsers iu JOIN iu.user u WHERE u.name = :user"
_SCI = ("JOIN {i}.investigationInstruments ii JOIN ii.instrument inst "
        "JOIN inst.instrumentScientists s JOIN s.user u WHERE u.name = :user")
RULES = (
    *(f"SELECT x FROM {e} x" for e in ("Facility", "InvestigationType", "DatasetType",
                                         "DatafileFormat", "SampleType", "ParameterType",
                                         "Instrument", "User")),
    "SELECT i FROM Investigation i " + _IU.format(i="i"),
    "SELECT ds FROM Dataset ds JOIN ds.investigation i " + _IU.format(i="i"),
    "SELECT df FROM Datafile df JOIN df.dataset ds JOIN ds.investigation i "
    + _IU.format(i="i"),
    "SELECT p FROM InvestigationParameter p JOIN p.investigation i " + _IU.format(i="i"),
    "SELECT p FROM DatasetParameter p JOIN p.dataset ds JOIN ds.investigation i "
    + _IU.format(i="i"),
    "SELECT p FROM DatafileParameter p JOIN p.datafile df JOIN df.dataset ds "
    "JOIN ds.investigation i " + _IU.format(i="i"),
    "SELECT s FROM Sample s JOIN s.investigation i " + _IU.format(i="i"),
    "SELECT x FROM InvestigationInstrument x JOIN x.investigation i " + _IU.format(i="i"),
    "SELECT x FROM InvestigationUser x JOIN x.investigation i " + _IU.format(i="i"),
    "SELECT i FROM Investigation i " + _SCI.format(i="i"),
    "SELECT ds FROM Dataset ds JOIN ds.investigation i " + _SCI.format(i="i"),
    "SELECT df FROM Datafile df JOIN df.dataset ds JOIN ds.investigation i "
    + _SCI.format(i="i"),
)


def write(server: Server, sid: str, entities: Any) -> httpx.Response:
    return server.http.post("/icat/entityManager",
                            data={"sessionId": sid, "entities": json.dumps(entities)})


def create(server: Server, sid: str, items: list[tuple[str, dict[str, Any]]]) -> list[int]:
    """Create top-level objects in one call; their ids, in order."""
    r = write(server, sid, [{entity: fields} for entity, fields in items])
    assert r.status_code == 200, r.text
    ids = [int(i) for i in r.json()]
    assert len(ids) == len(items)
    return ids


def update(server: Server, sid: str, entity: str, **fields: Any) -> None:
    r = write(server, sid, {entity: fields})
    assert r.status_code == 200, r.text


def remove(server: Server, sid: str, entity: str, id: int) -> None:
    r = server.http.delete("/icat/entityManager", params={
        "sessionId": sid, "entities": json.dumps({entity: {"id": id}})})
    assert r.status_code == 204, r.text


@dataclass
class Catalogue:
    """The built catalogue on one server: symbolic names to ids, and search helpers."""

    server: Server
    root: str
    ids: dict[str, int]
    sessions: dict[str, str] = field(default_factory=dict)

    def sid(self, user: str) -> str:
        if user == "root":
            return self.root
        if user not in self.sessions:
            self.sessions[user] = self.server.login(user)
        return self.sessions[user]

    def __call__(self, *keys: str) -> list[int]:
        """The ids of symbolic names, in the order given."""
        return [self.ids[k] for k in keys]

    def inv(self, *keys: str) -> list[int]:
        return self(*(f"inv:{k}" for k in keys))

    def ds(self, *names: str) -> list[int]:
        return self(*(f"ds:{n}" for n in names))

    def df(self, *numbers: int) -> list[int]:
        return self(*(f"df:{n}" for n in numbers))

    # -- requests ------------------------------------------------------------------------------

    def search(self, query: dict[str, Any] | str | None, *, user: str = "root",
               sid: str | None = None, **params: Any) -> httpx.Response:
        p: dict[str, Any] = {"sessionId": sid if sid is not None else self.sid(user)}
        if query is not None:
            p["query"] = query if isinstance(query, str) else json.dumps(query)
        for k, v in params.items():
            p[k] = v if isinstance(v, str) else json.dumps(v)
        # A new connection each time: a server error must not break the next request.
        return self.server.http.get("/icat/search/documents", params=p,
                                    headers={"Connection": "close"})

    def ok(self, query: dict[str, Any], **kw: Any) -> dict[str, Any]:
        r = self.search(query, **kw)
        assert r.status_code == 200, (query, kw, r.text)
        body = r.json()
        assert isinstance(body, dict)
        return body

    def found(self, target: str, text: str | None = None, **kw: Any) -> list[int]:
        """Ids found, in result order (everything: maxCount 1000 unless given)."""
        query: dict[str, Any] = {"target": target}
        if text is not None:
            query["text"] = text
        for key in ("user", "userFullName", "lower", "upper", "parameters", "filter",
                    "facets", "samples"):
            if key in kw:
                query[key] = kw.pop(key)
        kw.setdefault("maxCount", "1000")
        return [int(x["id"]) for x in self.ok(query, **kw)["results"]]

    def facet(self, query: dict[str, Any] | str | None, *, user: str = "root"
              ) -> httpx.Response:
        p: dict[str, Any] = {"sessionId": self.sid(user)}
        if query is not None:
            p["query"] = query if isinstance(query, str) else json.dumps(query)
        return self.server.http.get("/icat/facet/documents", params=p,
                                    headers={"Connection": "close"})


def build(server: Server) -> Catalogue:
    """Create the catalogue described in the module documentation, as root, over REST."""
    root = server.login("root")
    ids: dict[str, int] = {}

    user_ids = create(server, root, [("User", {"name": name, "fullName": full})
                                     for name, full in USERS.items()])
    for name, i in zip(USERS, user_ids, strict=True):
        ids[f"user:{name}"] = i
    (fac,) = create(server, root, [("Facility", {"name": FACILITY, "daysUntilRelease": 1})])
    ids["facility"] = fac
    f = {"id": fac}
    dicts: list[tuple[str, str, dict[str, Any]]] = [
        ("it:experiment", "InvestigationType", {"name": "experiment", "facility": f}),
        ("it:calibration", "InvestigationType", {"name": "calibration", "facility": f}),
        ("dt:raw", "DatasetType", {"name": "raw", "facility": f}),
        ("dt:processed", "DatasetType", {"name": "processed", "facility": f}),
        ("st:silicate", "SampleType", {"name": "silicate", "molecularFormula": "SiO4",
                                       "facility": f}),
        ("st:oxide", "SampleType", {"name": "oxide", "molecularFormula": "O", "facility": f}),
        ("instr:I11", "Instrument", {"name": "I11", "fullName": "High resolution powder "
                                     "diffraction", "facility": f}),
        ("instr:I15", "Instrument", {"name": "I15", "fullName": "Extreme conditions",
                                     "facility": f}),
        *((f"fmt:{n}", "DatafileFormat", {"name": n, "version": "1", "facility": f})
          for n in ("nexus", "tiff", "ascii")),
        *((f"pt:{n}/{u}", "ParameterType", {
            "name": n, "units": u, "valueType": vt, "facility": f,
            "applicableToInvestigation": True, "applicableToDataset": True,
            "applicableToDatafile": True, "applicableToSample": True})
          for n, u, vt in PARAMETER_TYPES),
    ]
    for (key, _, _), i in zip(dicts, create(server, root, [(e, b) for _, e, b in dicts]),
                              strict=True):
        ids[key] = i

    invs = create(server, root, [("Investigation", {
        "name": v.name, "visitId": v.visit, "title": v.title, "summary": v.summary,
        "startDate": rest_date(v.start), "endDate": rest_date(v.end), "facility": f,
        "type": {"id": ids[f"it:{v.type}"]}}) for v in INVESTIGATIONS])
    for v, i in zip(INVESTIGATIONS, invs, strict=True):
        ids[f"inv:{v.key}"] = i

    links: list[tuple[str, dict[str, Any]]] = []
    samples: list[str] = []
    for v in INVESTIGATIONS:
        inv = {"id": ids[f"inv:{v.key}"]}
        links += [("InvestigationInstrument", {"investigation": inv,
                                               "instrument": {"id": ids[f"instr:{n}"]}})
                  for n in v.instruments]
        links += [("InvestigationUser", {"investigation": inv, "role": role,
                                         "user": {"id": ids[f"user:{u}"]}})
                  for u, role in v.users]
    links.append(("InstrumentScientist", {"instrument": {"id": ids["instr:I15"]},
                                          "user": {"id": ids["user:simple/rbeck"]}}))
    create(server, root, links)
    sample_items = []
    for v in INVESTIGATIONS:
        for name, st in v.samples:
            samples.append(name)
            sample_items.append(("Sample", {"name": name, "type": {"id": ids[f"st:{st}"]},
                                            "investigation": {"id": ids[f"inv:{v.key}"]}}))
    for name, i in zip(samples, create(server, root, sample_items), strict=True):
        ids[f"sample:{name}"] = i

    ds_ids = create(server, root, [("Dataset", {
        "name": d.name, "description": d.description, "complete": False,
        "startDate": rest_date(d.start), "endDate": rest_date(d.end),
        "investigation": {"id": ids[f"inv:{d.inv}"]}, "type": {"id": ids[f"dt:{d.type}"]},
        **({"sample": {"id": ids[f"sample:{d.sample}"]}} if d.sample else {})})
        for d in DATASETS])
    for d, i in zip(DATASETS, ds_ids, strict=True):
        ids[f"ds:{d.name}"] = i

    df_items = []
    for x in DATAFILES:
        body: dict[str, Any] = {
            "name": x.name, "location": x.location, "fileSize": x.size,
            "dataset": {"id": ids[f"ds:{x.dataset}"]},
            "datafileFormat": {"id": ids[f"fmt:{x.format}"]}}
        if x.mod_time:
            body["datafileModTime"] = rest_date(x.mod_time)
        if x.create_time:
            body["datafileCreateTime"] = rest_date(x.create_time)
        if x.description:
            body["description"] = x.description
        df_items.append(("Datafile", body))
    for x, i in zip(DATAFILES, create(server, root, df_items), strict=True):
        ids[x.key] = i

    params = []
    for owner, (name, units), value in PARAMETERS:
        kind, _, _ = owner.partition(":")
        entity, parent = {"inv": ("InvestigationParameter", "investigation"),
                          "ds": ("DatasetParameter", "dataset"),
                          "df": ("DatafileParameter", "datafile")}[kind]
        body = {parent: {"id": ids[owner]}, "type": {"id": ids[f"pt:{name}/{units}"]}}
        if isinstance(value, float):
            body["numericValue"] = value
        elif isinstance(value, str):
            body["stringValue"] = value
        else:
            body["dateTimeValue"] = rest_date(value[1])
        params.append((entity, body))
    create(server, root, params)
    create(server, root, [("Rule", {"crudFlags": "R", "what": what}) for what in RULES])
    return Catalogue(server, root, ids)
