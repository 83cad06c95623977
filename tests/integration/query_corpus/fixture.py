"""A small, deterministic catalogue for the query corpus, and the JSON ICAT renders for it.

Every row has a fixed id and fixed system fields, so expected results can be written down as
exact JSON. Most rows are inserted with plain SQL (SQLAlchemy Core on the catalogue's tables);
Grouping, UserGroup and Rule go through the catalogue's own write (REST or in-process) so that
Rule's derived columns are filled in as for any rule, and their timestamps are then set to the
fixed values too.

Data rules that keep results identical on SQLite, PostgreSQL (binary collation) and MariaDB
(case-insensitive ``utf8mb4_general_ci``):

* values of a column that the corpus sorts, groups, compares or matches with LIKE never differ
  only by case, and within such a column all values share one case pattern ("DATASET 1"-like
  names are not mixed with "fred"-like ones in one sorted list);
* no value ends with a space (MariaDB pads), no non-ASCII text;
* ``_`` never meets a letter at the same position of two sorted values.

:func:`render` is an independent implementation of §4.2 of the reference (system fields
first, then the rest alphabetically; nulls omitted; many-to-one only when included; one-to-many
always, empty unless included) working on the rows below, never on anything Cairn returns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, update

from cairn.db.tables import TABLES
from cairn.schema import SCHEMA

#: Default system times and user of every row.
T0 = datetime(2010, 1, 1, 0, 0, 0)
LOADER = "db/loader"

Row = dict[str, Any]


def d(text: str) -> datetime:
    """``'2019-03-01 10:00'`` or ``'2019-03-01 10:00:00'`` or ``'2019-03-01'``."""
    return datetime.fromisoformat(text)


# -- the catalogue ----------------------------------------------------------------------------
# Ids are given explicitly; foreign keys are ids. Each list is inserted in this order.

FACILITY: list[Row] = [
    {"id": 1, "name": "LILS", "fullName": "Lorum Ipsum Light Source", "daysUntilRelease": 30,
     "description": "A light source", "url": "http://lils.example.org"},
    {"id": 2, "name": "Test port facility", "fullName": "Test Port Facility",
     "daysUntilRelease": 10},
    {"id": 3, "name": "Test__Facility"},
]
INVESTIGATION_TYPE: list[Row] = [
    {"id": 1, "name": "INVESTIGATIONTYPE 1", "facility": 1, "description": "experiment"},
    {"id": 2, "name": "INVESTIGATIONTYPE 2", "facility": 1},
    {"id": 3, "name": "INVESTIGATIONTYPE 3", "facility": 2},
]
DATASET_TYPE: list[Row] = [
    {"id": 1, "name": "GS", "facility": 1, "description": "good sample"},
    {"id": 2, "name": "GQ", "facility": 1},
    {"id": 3, "name": "RAW", "facility": 1},
    {"id": 4, "name": "GS", "facility": 2},
]
DATAFILE_FORMAT: list[Row] = [
    {"id": 1, "name": "nexus", "version": "4.0", "facility": 1, "type": "HDF5"},
    {"id": 2, "name": "raw", "version": "1", "facility": 1},
    {"id": 3, "name": "text", "version": "1", "facility": 1},
]
INSTRUMENT: list[Row] = [
    {"id": 1, "name": "INSTRUMENT 1", "fullName": "Alpha beamline", "facility": 1,
     "type": "diffractometer", "startDate": d("2005-01-01")},
    {"id": 2, "name": "INSTRUMENT 2", "fullName": "Beta beamline", "facility": 1},
    {"id": 3, "name": "INSTRUMENT 10", "facility": 1},
    {"id": 4, "name": "INSTRUMENT 12", "fullName": "Gamma beamline", "facility": 2},
]
FACILITY_CYCLE: list[Row] = [
    {"id": 1, "name": "2019/1", "facility": 1, "startDate": d("2019-01-01"),
     "endDate": d("2019-06-30")},
    {"id": 2, "name": "2019/2", "facility": 1, "startDate": d("2019-07-01"),
     "endDate": d("2019-12-31")},
    {"id": 3, "name": "2020/1", "facility": 1, "startDate": d("2020-01-01"),
     "endDate": d("2020-06-30")},
    {"id": 4, "name": "2007/1", "facility": 2, "startDate": d("2007-01-01"),
     "endDate": d("2007-12-31")},
]
PARAMETER_TYPE: list[Row] = [
    {"id": 1, "name": "PARAMETERTYPE 1", "units": "unit 1", "valueType": "NUMERIC",
     "facility": 1, "applicableToDataset": True, "applicableToDatafile": True,
     "minimumNumericValue": 0.0, "maximumNumericValue": 100.0},
    {"id": 2, "name": "PARAMETERTYPE 2", "units": "unit 2", "valueType": "NUMERIC",
     "facility": 1, "applicableToInvestigation": True, "applicableToDataset": True},
    {"id": 3, "name": "PARAMETERTYPE 39", "units": "unit 39", "valueType": "NUMERIC",
     "facility": 1, "applicableToDataset": True},
    {"id": 4, "name": "sample_state", "units": "none", "valueType": "STRING", "facility": 1,
     "applicableToDataset": True, "applicableToSample": True, "applicableToDatafile": True,
     "enforced": True},
    {"id": 5, "name": "A1", "units": "mm", "valueType": "NUMERIC", "facility": 1,
     "applicableToDataset": True},
    {"id": 6, "name": "A2", "units": "mm", "valueType": "NUMERIC", "facility": 1,
     "applicableToDataset": True},
    {"id": 7, "name": "TIMESTAMP", "units": "none", "valueType": "DATE_AND_TIME",
     "facility": 1, "applicableToDataset": True},
    {"id": 8, "name": "temp", "units": "K", "valueType": "NUMERIC", "facility": 2,
     "applicableToDataset": True, "unitsFullName": "Kelvin"},
]
USER: list[Row] = [
    {"id": 1, "name": "simple/root", "fullName": "Root"},
    {"id": 2, "name": "simple/jbloggs", "fullName": "Joe Bloggs", "givenName": "Joe",
     "familyName": "Bloggs", "email": "jbloggs@example.org"},
    {"id": 3, "name": "db/jdoe", "fullName": "John Doe"},
    {"id": 4, "name": "db/sgriffin", "fullName": "Sarah Griffin", "affiliation": "LILS"},
    {"id": 5, "name": "db/lib", "fullName": "Dr. Horace Worblehat",
     "affiliation": "Unseen University", "givenName": "Horace", "familyName": "Worblehat"},
    {"id": 6, "name": "anon/anon"},
]
INVESTIGATION: list[Row] = [
    {"id": 1, "name": "INVESTIGATION 1", "visitId": "1", "title": "Neutron scattering of water",
     "facility": 1, "type": 1, "startDate": d("2019-03-01 10:00"),
     "endDate": d("2019-03-05 18:00"), "fileSize": 1000, "fileCount": 9,
     "doi": "0-417-77631-4", "summary": "The nature of hydrogen bonds",
     "releaseDate": d("2022-03-05"), "createTime": d("2010-06-01")},
    {"id": 2, "name": "INVESTIGATION 2", "visitId": "1",
     "title": "Test data for Python ICAT on DataGateway API", "facility": 1, "type": 2,
     "startDate": d("2019-07-15 08:30:58"), "endDate": d("2019-07-16"), "fileSize": 5000,
     "summary": "Second", "createTime": d("2011-02-01")},
    {"id": 3, "name": "INVESTIGATION 3", "visitId": "2",
     "title": "Test data for Python ICAT on DataGateway API", "facility": 1, "type": 1,
     "startDate": d("2020-01-10"), "createTime": d("2012-05-05")},
    {"id": 4, "name": "INVESTIGATION 4", "visitId": "1", "title": "X-ray study of nature",
     "facility": 1, "type": 2, "startDate": d("2007-06-30 08:30:58"), "fileSize": 250,
     "summary": "Nature of crystals", "createTime": d("2007-07-01")},
    {"id": 5, "name": "INVESTIGATION 5", "visitId": "1", "title": "Muon work", "facility": 2,
     "type": 3, "fileSize": 0, "createTime": d("2011-01-15")},
    {"id": 6, "name": "INVESTIGATION 6", "visitId": "1", "title": "Empty", "facility": 2,
     "type": 3, "createTime": d("2013-01-01")},
]
INVESTIGATION_USER: list[Row] = [
    {"id": 1, "investigation": 1, "user": 1, "role": "PI"},
    {"id": 2, "investigation": 1, "user": 2, "role": "CI"},
    {"id": 3, "investigation": 2, "user": 2, "role": "PI"},
    {"id": 4, "investigation": 3, "user": 2, "role": "CI"},
    {"id": 5, "investigation": 4, "user": 4, "role": "PI"},
    {"id": 6, "investigation": 2, "user": 4, "role": "CI"},
    {"id": 7, "investigation": 5, "user": 3, "role": "PI"},
    {"id": 8, "investigation": 3, "user": 1, "role": "CI"},
]
INVESTIGATION_INSTRUMENT: list[Row] = [
    {"id": 1, "investigation": 1, "instrument": 1},
    {"id": 2, "investigation": 2, "instrument": 1},
    {"id": 3, "investigation": 2, "instrument": 2},
    {"id": 4, "investigation": 3, "instrument": 3},
    {"id": 5, "investigation": 5, "instrument": 4},
    {"id": 6, "investigation": 4, "instrument": 3},
]
INVESTIGATION_FACILITY_CYCLE: list[Row] = [
    {"id": 1, "investigation": 1, "facilityCycle": 1},
    {"id": 2, "investigation": 2, "facilityCycle": 2},
    {"id": 3, "investigation": 3, "facilityCycle": 3},
    {"id": 4, "investigation": 4, "facilityCycle": 2},
    {"id": 5, "investigation": 5, "facilityCycle": 4},
]
INSTRUMENT_SCIENTIST: list[Row] = [
    {"id": 1, "instrument": 1, "user": 3},
    {"id": 2, "instrument": 3, "user": 4},
]
KEYWORD: list[Row] = [
    {"id": 1, "name": "water", "investigation": 1},
    {"id": 2, "name": "neutron", "investigation": 1},
    {"id": 3, "name": "test", "investigation": 2},
    {"id": 4, "name": "xray", "investigation": 4},
]
INVESTIGATION_PARAMETER: list[Row] = [
    {"id": 1, "investigation": 1, "type": 2, "numericValue": 30.0},
    {"id": 2, "investigation": 2, "type": 2, "numericValue": 50.0},
    {"id": 3, "investigation": 3, "type": 4, "stringValue": "solid"},
]
PUBLICATION: list[Row] = [
    {"id": 1, "investigation": 1, "fullReference": "Doe J. (2020) Water. J. Water 1:1",
     "doi": "10.1000/pub1"},
    {"id": 2, "investigation": 1, "fullReference": "Second reference"},
]
SAMPLE_TYPE: list[Row] = [
    {"id": 1, "facility": 1, "name": "crystal", "molecularFormula": "H2O"},
]
SAMPLE: list[Row] = [
    {"id": 1, "investigation": 1, "name": "sample-1", "type": 1},
    {"id": 2, "investigation": 2, "name": "sample-2"},
]
SAMPLE_PARAMETER: list[Row] = [
    {"id": 1, "sample": 1, "type": 4, "stringValue": "solid"},
]
STUDY: list[Row] = [
    {"id": 1, "name": "study-1", "status": "COMPLETE", "user": 1},
    {"id": 2, "name": "study-2", "status": "NEW"},
    {"id": 3, "name": "study-3"},
]
STUDY_INVESTIGATION: list[Row] = [
    {"id": 1, "study": 1, "investigation": 1},
    {"id": 2, "study": 1, "investigation": 2},
]
DATA_COLLECTION: list[Row] = [
    {"id": 1, "doi": "10.1000/dc1"},
    {"id": 2},
]
DATA_COLLECTION_INVESTIGATION: list[Row] = [
    {"id": 1, "dataCollection": 1, "investigation": 1},
]
DATA_COLLECTION_DATASET: list[Row] = [
    {"id": 1, "dataCollection": 1, "dataset": 1},
    {"id": 2, "dataCollection": 2, "dataset": 3},
]
DATA_PUBLICATION_TYPE: list[Row] = [
    {"id": 1, "facility": 1, "name": "dataset"},
]
DATA_PUBLICATION: list[Row] = [
    {"id": 1, "facility": 1, "content": 1, "pid": "doi:10.1000/dp1", "title": "Water data",
     "publicationDate": d("2020-01-01"), "type": 1},
]
DATASET: list[Row] = [
    {"id": 1, "name": "dataset 1", "investigation": 1, "type": 1, "complete": True,
     "doi": "0-449-78690-0", "description": "first", "startDate": d("2019-03-01 11:00"),
     "sample": 1, "location": "/data/1", "createTime": d("2019-03-01 12:00")},
    {"id": 2, "name": "dataset 2", "investigation": 1, "type": 2, "complete": False,
     "createTime": d("2019-03-02 12:00")},
    {"id": 3, "name": "dataset 3", "investigation": 2, "type": 1, "complete": True,
     "createTime": d("2019-07-15 12:00")},
    {"id": 4, "name": "dataset 30", "investigation": 2, "type": 3, "complete": False,
     "createTime": d("2019-07-16 12:00")},
    {"id": 5, "name": "dataset 31", "investigation": 3, "type": 1, "complete": False,
     "createTime": d("2020-01-11")},
    {"id": 6, "name": "fred", "investigation": 4, "type": 2, "complete": True,
     "createTime": d("2007-07-01")},
    {"id": 7, "name": "a fred", "investigation": 4, "type": 3, "complete": False,
     "createTime": d("2007-07-02")},
    {"id": 8, "name": "another fred", "investigation": 5, "type": 4, "complete": True,
     "createTime": d("2011-02-01")},
]
DATAFILE: list[Row] = [
    {"id": 1, "name": "Datafile 1071", "dataset": 1, "fileSize": 155061160,
     "datafileFormat": 1, "location": "/data/1/1071", "description": "first file",
     "checksum": "aa11", "doi": "10.1000/df1"},
    {"id": 2, "name": "Datafile 1547", "dataset": 1, "fileSize": 200000000,
     "datafileFormat": 1},
    {"id": 3, "name": "Datafile 25", "dataset": 1, "fileSize": 1000, "datafileFormat": 2},
    {"id": 4, "name": "Datafile 250", "dataset": 1, "fileSize": 2500, "datafileFormat": 2},
    {"id": 5, "name": "Datafile 9", "dataset": 1, "fileSize": 900, "datafileFormat": 3},
    {"id": 6, "name": "Datafile 90", "dataset": 1, "fileSize": 155061162,
     "datafileFormat": 1},
    {"id": 7, "name": "Datafile 10060", "dataset": 1, "fileSize": 10060, "datafileFormat": 3},
    {"id": 8, "name": "Datafile 2a", "dataset": 2, "fileSize": 100, "datafileFormat": 2,
     "datafileCreateTime": d("2019-03-02 10:00")},
    {"id": 9, "name": "Datafile 2b", "dataset": 2, "fileSize": 300, "datafileFormat": 2},
    {"id": 10, "name": "Datafile 3a.tmp", "dataset": 3, "fileSize": 50, "datafileFormat": 3},
    {"id": 11, "name": "Datafile 3b", "dataset": 3},
    {"id": 12, "name": "Datafile 4a", "dataset": 4, "fileSize": 4000, "datafileFormat": 1},
    {"id": 13, "name": "Datafile 5a", "dataset": 5, "fileSize": 500, "datafileFormat": 2},
    {"id": 14, "name": "Datafile 5b", "dataset": 5, "fileSize": 600, "datafileFormat": 2},
    {"id": 15, "name": "Datafile 5c", "dataset": 5, "fileSize": 700, "datafileFormat": 1},
    {"id": 16, "name": "Datafile 6_a", "dataset": 6, "fileSize": 10, "datafileFormat": 3},
    {"id": 17, "name": "Datafile 6_b", "dataset": 6, "fileSize": 20, "datafileFormat": 3},
    {"id": 18, "name": "Datafile 8a", "dataset": 8, "fileSize": 8},
]
DATASET_PARAMETER: list[Row] = [
    {"id": 1, "dataset": 1, "type": 5, "numericValue": 60.0},
    {"id": 2, "dataset": 1, "type": 6, "numericValue": 30.0},
    {"id": 3, "dataset": 2, "type": 5, "numericValue": 55.0},
    {"id": 4, "dataset": 2, "type": 6, "numericValue": 10.0},
    {"id": 5, "dataset": 3, "type": 5, "numericValue": 40.0},
    {"id": 6, "dataset": 3, "type": 6, "numericValue": 25.0},
    {"id": 7, "dataset": 1, "type": 1, "numericValue": 15.5},
    {"id": 8, "dataset": 3, "type": 1, "numericValue": 25.0},
    {"id": 9, "dataset": 2, "type": 3, "numericValue": 44.0},
    {"id": 10, "dataset": 4, "type": 4, "stringValue": "solid"},
    {"id": 11, "dataset": 5, "type": 7, "dateTimeValue": d("2019-05-05 12:00")},
    {"id": 12, "dataset": 5, "type": 2, "numericValue": 18.0},
    {"id": 13, "dataset": 8, "type": 8, "numericValue": 300.0, "error": 0.5},
]
DATAFILE_PARAMETER: list[Row] = [
    {"id": 1, "datafile": 1, "type": 1, "numericValue": 5.0},
    {"id": 2, "datafile": 2, "type": 4, "stringValue": "liquid"},
    {"id": 3, "datafile": 8, "type": 1, "numericValue": 7.5},
]

#: Inserted with SQL, in this order (parents before children).
SQL_ROWS: dict[str, list[Row]] = {
    "Facility": FACILITY,
    "InvestigationType": INVESTIGATION_TYPE,
    "DatasetType": DATASET_TYPE,
    "DatafileFormat": DATAFILE_FORMAT,
    "Instrument": INSTRUMENT,
    "FacilityCycle": FACILITY_CYCLE,
    "ParameterType": PARAMETER_TYPE,
    "User": USER,
    "Investigation": INVESTIGATION,
    "InvestigationUser": INVESTIGATION_USER,
    "InvestigationInstrument": INVESTIGATION_INSTRUMENT,
    "InvestigationFacilityCycle": INVESTIGATION_FACILITY_CYCLE,
    "InstrumentScientist": INSTRUMENT_SCIENTIST,
    "Keyword": KEYWORD,
    "InvestigationParameter": INVESTIGATION_PARAMETER,
    "Publication": PUBLICATION,
    "SampleType": SAMPLE_TYPE,
    "Sample": SAMPLE,
    "SampleParameter": SAMPLE_PARAMETER,
    "Study": STUDY,
    "StudyInvestigation": STUDY_INVESTIGATION,
    "DataCollection": DATA_COLLECTION,
    "DataCollectionInvestigation": DATA_COLLECTION_INVESTIGATION,
    "DataPublicationType": DATA_PUBLICATION_TYPE,
    "DataPublication": DATA_PUBLICATION,
    "Dataset": DATASET,
    "DataCollectionDataset": DATA_COLLECTION_DATASET,
    "Datafile": DATAFILE,
    "DatasetParameter": DATASET_PARAMETER,
    "DatafileParameter": DATAFILE_PARAMETER,
}

#: Written through the catalogue (REST JSON), in this order; ids come out as given.
API_ROWS: dict[str, list[Row]] = {
    "Grouping": [{"id": 1, "name": "FacilityAdmins"}, {"id": 2, "name": "root"}],
    "UserGroup": [{"id": 1, "user": 4, "grouping": 1}, {"id": 2, "user": 5, "grouping": 1},
                  {"id": 3, "user": 1, "grouping": 2}],
    "Rule": [{"id": 1, "what": "Investigation", "crudFlags": "R", "grouping": 2},
             {"id": 2, "what": "Dataset", "crudFlags": "CRUD", "grouping": 2},
             {"id": 3, "what": "Investigation", "crudFlags": "R", "grouping": 1},
             {"id": 4, "what": "Facility", "crudFlags": "R"}],
}


def _complete(entity: str, row: Row) -> Row:
    """The row as stored: system fields, and booleans false unless set (column default)."""
    out: Row = {"createId": LOADER, "createTime": T0, "modId": LOADER, **row}
    out.setdefault("modTime", out["createTime"])
    for f in SCHEMA.entities[entity].attributes:
        if f.type == "boolean" and not f.hidden:
            out.setdefault(f.name, False)
    return out


ROWS: dict[str, dict[int, Row]] = {
    name: {r["id"]: _complete(name, r) for r in rows}
    for name, rows in (*SQL_ROWS.items(), *API_ROWS.items())
}


# -- loading ----------------------------------------------------------------------------------


def load_sql(engine: Engine) -> None:
    """Insert the SQL part into an empty, migrated catalogue."""
    with engine.begin() as conn:
        for entity, rows in SQL_ROWS.items():
            table = TABLES[entity]
            for row in rows:  # one by one: rows set different columns
                conn.execute(insert(table), ROWS[entity][row["id"]])
        # The sums are fixed values too (as in a catalogue whose sums nobody kept), but the
        # database's size triggers (cairn.db.sizes) counted the datafiles in: write them back,
        # datasets first (their trigger carries a change up), investigations last.
        for entity in ("Dataset", "Investigation"):
            table = TABLES[entity]
            for row in ROWS[entity].values():
                conn.execute(update(table).where(table.c.id == row["id"]).values(
                    fileSize=row.get("fileSize"), fileCount=row.get("fileCount")))


def api_entities() -> list[list[dict[str, Any]]]:
    """The API part as batches of REST entity JSON (each batch one write call)."""
    batches = []
    for entity, rows in API_ROWS.items():
        batch = []
        for row in rows:
            body: dict[str, Any] = {}
            for key, value in row.items():
                if key == "id":
                    continue
                f = SCHEMA.entities[entity].fields[key]
                body[key] = {"id": value} if f.is_one else value
            batch.append({entity: body})
        batches.append(batch)
    return batches


def load(engine: Engine, write: Callable[[list[dict[str, Any]]], list[int]]) -> None:
    """The whole fixture: SQL rows, then the API rows through ``write``, then fixed times."""
    load_sql(engine)
    for batch, (entity, rows) in zip(api_entities(), API_ROWS.items(), strict=True):
        ids = write(batch)
        assert ids == [r["id"] for r in rows], (entity, ids)
    with engine.begin() as conn:
        for entity in API_ROWS:
            conn.execute(update(TABLES[entity]).values(
                createId=LOADER, createTime=T0, modId=LOADER, modTime=T0))


# -- expected JSON ----------------------------------------------------------------------------

Tree = dict[str, "Tree"]


def tree(spec: str | Iterable[str] | Tree | None) -> Tree:
    """``"datasets.datafiles, facility"`` -> ``{"datasets": {"datafiles": {}}, "facility": {}}``."""
    if spec is None:
        return {}
    if isinstance(spec, dict):
        return spec
    paths = [p.strip() for p in spec.split(",")] if isinstance(spec, str) else list(spec)
    out: Tree = {}
    for p in paths:
        node = out
        for step in p.split("."):
            node = node.setdefault(step, {})
    return out


def fmt_date(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _scalar(typ: str, value: Any) -> Any:
    match typ:
        case "Date":
            return fmt_date(value)
        case "Double":
            return float(value)
        case "Long" | "Integer":
            return int(value)
        case _:
            return value


def _children(entity: str, field: str, parent: int) -> list[int]:
    """A one-to-many list in the order of the child's unique key when it starts with the
    parent (the rest of the key, then id), else by id."""
    f = SCHEMA.entities[entity].fields[field]
    back = SCHEMA.inverse(f).name
    key = SCHEMA.entities[f.type].key
    rest = key[1:] if len(key) > 1 and key[0] == back else ()
    rows = ROWS.get(f.type, {})
    mine = [i for i, r in rows.items() if r.get(back) == parent]
    return sorted(mine, key=lambda i: (*(rows[i][k] for k in rest), i))


def plain(entity: str, id: int, include: Tree | None = None) -> dict[str, Any]:
    """The unwrapped JSON object of one fixture row with the given INCLUDE tree."""
    include = include or {}
    e = SCHEMA.entities[entity]
    row = ROWS[entity][id]
    unknown = set(include) - {f.name for f in e.fields.values() if not f.is_attribute}
    assert not unknown, f"{entity} has no relationship {unknown}"
    system = ["id", "createId", "createTime", "modId", "modTime"]
    rest = sorted(f.name for f in e.fields.values() if not f.hidden and f.name not in system)
    out: dict[str, Any] = {}
    for name in system + rest:
        f = e.fields[name]
        if f.is_attribute:
            value = row.get(name)
            if value is not None:
                out[name] = _scalar(f.type, value)
        elif f.is_one:
            ref = row.get(name)
            if name in include and ref is not None:
                out[name] = plain(f.type, ref, include[name])
        elif name in include:
            out[name] = [plain(f.type, c, include[name]) for c in _children(entity, name, id)]
        else:
            out[name] = []
    return out


def render(entity: str, id: int, include: Tree | None = None) -> dict[str, Any]:
    """The wrapped JSON of a search result entity (§4.2)."""
    return {entity: plain(entity, id, include)}

