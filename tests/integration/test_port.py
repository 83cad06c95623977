"""Export and import (``/icat/port``, ``cairn export``, ``cairn import``) on every backend.

The round trip: the demo at scale 5 exported from SQLite, imported into an empty catalogue
on each configured backend, exported again: the two files are identical. Then each
``duplicate`` mode, all-or-nothing, python-icat's own XML and YAML files, HTTP and the
command line, and memory that does not grow with the catalogue.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from cairn.catalogue.service import Catalogue
from cairn.db import migrate
from cairn.db.engine import Database
from cairn.demo import load_demo
from cairn.errors import ErrorType, IcatError
from cairn.port.exporter import Export
from cairn.port.importer import Attributes, Duplicate, ImportReport, import_records
from cairn.port.sniff import read_any
from cairn.startup import catalogue_of
from tests.conftest import make_database
from tests.integration.server import Server, write_config

ROOT = "db/root"
SCALE = 5  # 50,000 datafiles: many batches of every table each way

#: A small catalogue in the dump format: a keyless DataCollection referred to by label, a
#: NULL reference, a time with a zone, and references that share columns.
SMALL = """# written by hand
1.0

Facility(name:0, fullName:1, daysUntilRelease:2)
"F", "The facility", 90

InvestigationType(facility(name:0), name:1, description:2)
"F", "experiment", "an experiment"

Investigation(facility(name:0), name:1, visitId:2, title:3, type(facility(name:0), name:4), startDate:5)
"F", "inv1", "1", "First", "experiment", 2020-01-02T03:04:05+01:00
"F", "inv2", "1", "Second", "experiment", NULL

DataCollection(?:0, doi:1)
"c1", "doi:c1"

DataCollectionInvestigation(dataCollection(?:0), investigation(facility(name:1), name:2, visitId:3))
"c1", "F", "inv1", "1"
"""  # noqa: E501


def database(url: str) -> Database:
    db = Database(url)
    migrate.upgrade(db)
    return db


def export_bytes(cat: Catalogue, queries: list[str] | None = None,
                 every: bool = False) -> bytes:
    return b"".join(Export(cat.as_system(read_only=True, user=ROOT), queries or (),
                           every).open())


def import_bytes(cat: Catalogue, data: bytes, duplicate: Duplicate = Duplicate.THROW,
                 attributes: Attributes = Attributes.USER) -> ImportReport:
    with cat.as_system(user=ROOT) as work:
        return import_records(work, read_any(io.BytesIO(data), cat.zone), duplicate,
                              attributes)


def counts(db: Database) -> dict[str, int]:
    with db.connect() as conn:
        return {name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for name, t in db.tables.entity.items()}


def rows(db: Database, entity: str) -> list[Any]:
    t = db.tables[entity]
    with db.connect() as conn:
        return list(conn.execute(select(t).order_by(t.c.id)))


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    d = database(database_url)
    try:
        yield d
    finally:
        d.dispose()


# -- the round trip -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_dump(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The demo at scale 5, loaded into SQLite by the bulk loader and exported."""
    tmp = tmp_path_factory.mktemp("port-demo")
    source = database(f"sqlite:///{tmp / 'source.db'}")
    cat = catalogue_of(source)
    loaded = load_demo(cat, scale=SCALE, user=ROOT)
    data = export_bytes(cat)
    assert sum(1 for line in data.splitlines() if line and line[:1] not in b"#") > \
        sum(loaded.values())  # a line per row, and the headers
    source.dispose()
    return data


def test_demo_round_trip_is_identical(demo_dump: bytes, db: Database) -> None:
    cat = catalogue_of(db)
    report = import_bytes(cat, demo_dump)
    assert report.created["Datafile"] > 40_000
    assert export_bytes(cat) == demo_dump
    # Sums the database keeps came out as the datafiles add up, not as the file said.
    with db.connect() as conn:
        ds = db.tables["Dataset"]
        df = db.tables["Datafile"]
        total = conn.execute(select(func.sum(ds.c.fileSize))).scalar_one()
        assert total == conn.execute(select(func.sum(df.c.fileSize))).scalar_one()


# -- duplicates, all or nothing -------------------------------------------------------------------


def test_import_creates_rows_and_follows_labels(db: Database) -> None:
    cat = catalogue_of(db)
    report = import_bytes(cat, SMALL.encode())
    assert report.created == {"Facility": 1, "InvestigationType": 1, "Investigation": 2,
                              "DataCollection": 1, "DataCollectionInvestigation": 1}
    (dci,) = rows(db, "DataCollectionInvestigation")
    (dc,) = rows(db, "DataCollection")
    inv1 = next(r for r in rows(db, "Investigation") if r.name == "inv1")
    assert (dci.dataCollection, dci.investigation) == (dc.id, inv1.id)
    assert inv1.startDate.isoformat() == "2020-01-02T02:04:05"  # UTC, as the catalogue keeps
    assert {r.createId for r in rows(db, "Investigation")} == {ROOT}


def _snapshot(db: Database) -> dict[str, list[Any]]:
    return {name: [tuple(r) for r in rows(db, name)] for name in db.tables.entity}


def test_throw_names_the_line_and_changes_nothing(db: Database) -> None:
    cat = catalogue_of(db)
    import_bytes(cat, SMALL.encode())
    before = _snapshot(db)
    with pytest.raises(IcatError) as e:
        import_bytes(cat, SMALL.encode())
    assert e.value.type == ErrorType.OBJECT_ALREADY_EXISTS
    assert e.value.message == "Facility exists with name = 'F' at line 5"
    assert e.value.offset == 5
    assert _snapshot(db) == before


def test_ignore_skips_existing_rows(db: Database) -> None:
    cat = catalogue_of(db)
    import_bytes(cat, SMALL.encode())
    report = import_bytes(cat, SMALL.encode(), Duplicate.IGNORE)
    assert report.ignored == {"Facility": 1, "InvestigationType": 1, "Investigation": 2}
    # Without a uniqueness constraint a DataCollection is always new, and so is its link.
    assert report.created == {"DataCollection": 1, "DataCollectionInvestigation": 1}
    assert counts(db)["Investigation"] == 2


def test_check_compares_every_field(db: Database) -> None:
    cat = catalogue_of(db)
    import_bytes(cat, SMALL.encode())
    report = import_bytes(cat, SMALL.encode(), Duplicate.CHECK)
    assert report.checked["Investigation"] == 2
    before = _snapshot(db)
    changed = SMALL.replace('"Second"', '"Second, changed"')
    with pytest.raises(IcatError) as e:
        import_bytes(cat, changed.encode(), Duplicate.CHECK)
    assert e.value.type == ErrorType.VALIDATION
    assert e.value.message == "Duplicate check fails for field title of Investigation at line 12"
    assert _snapshot(db) == before


def test_overwrite_updates_existing_rows(db: Database) -> None:
    cat = catalogue_of(db)
    import_bytes(cat, SMALL.encode())
    ids = {r.name: r.id for r in rows(db, "Investigation")}
    changed = SMALL.replace('"Second", "experiment", NULL',
                            '"Second, changed", "experiment", 2021-06-01T00:00:00Z')
    report = import_bytes(cat, changed.encode(), Duplicate.OVERWRITE)
    assert report.overwritten["Investigation"] == 2
    after = {r.name: r for r in rows(db, "Investigation")}
    assert {n: r.id for n, r in after.items()} == ids
    assert after["inv2"].title == "Second, changed"
    assert after["inv2"].startDate.isoformat() == "2021-06-01T00:00:00"


def test_a_row_repeated_in_the_file_is_a_duplicate(db: Database) -> None:
    cat = catalogue_of(db)
    twice = '1.0\nFacility(name:0, fullName:1)\n"F", "one"\n"G", "two"\n"F", "again"\n'
    with pytest.raises(IcatError) as e:
        import_bytes(cat, twice.encode())
    assert (e.value.type, e.value.offset) == (ErrorType.OBJECT_ALREADY_EXISTS, 5)
    assert counts(db)["Facility"] == 0
    report = import_bytes(cat, twice.encode(), Duplicate.OVERWRITE)
    assert (report.created["Facility"], report.overwritten["Facility"]) == (2, 1)
    assert {r.name: r.fullName for r in rows(db, "Facility")} == {"F": "again", "G": "two"}


def test_a_failure_at_the_end_leaves_nothing(db: Database) -> None:
    cat = catalogue_of(db)
    broken = SMALL + ('\nDataCollectionInvestigation(dataCollection(?:0), '
                      'investigation(facility(name:1), name:2, visitId:3))\n'
                      '"c1", "F", "no-such-investigation", "1"\n')
    with pytest.raises(IcatError) as e:
        import_bytes(cat, broken.encode())
    assert e.value.type == ErrorType.NO_SUCH_OBJECT_FOUND
    assert e.value.message == ("Investigation(facility=Facility(name='F'), "
                               "name='no-such-investigation', visitId='1') not found at line 21")
    assert not any(counts(db).values())


def test_validation_and_unknown_labels_name_the_line(db: Database) -> None:
    cat = catalogue_of(db)
    long_name = "1.0\nFacility(name:0)\n" + '"' + "x" * 300 + '"\n'
    with pytest.raises(IcatError) as e:
        import_bytes(cat, long_name.encode())
    assert e.value.message == "Facility: name cannot have length > 255 at line 3"
    label = "1.0\nJob(inputDataCollection(?:0))\n\"nowhere\"\n"
    with pytest.raises(IcatError) as e:
        import_bytes(cat, label.encode())
    assert (e.value.type, e.value.offset) == (ErrorType.BAD_PARAMETER, 3)
    assert "No DataCollection labelled 'nowhere' earlier in the file" in e.value.message


def test_all_attributes_keep_the_files_system_fields(db: Database) -> None:
    cat = catalogue_of(db)
    text = ('1.0\nFacility(createId:0, createTime:1, modId:2, modTime:3, name:4)\n'
            '"db/alice", 2001-02-03T04:05:06Z, "db/bob", 2002-03-04T05:06:07Z, "F"\n'
            '\nFacility(name:0)\n"G"\n')
    import_bytes(cat, text.encode(), attributes=Attributes.ALL)
    f, g = rows(db, "Facility")
    assert (f.createId, f.modId, f.createTime.year, f.modTime.year) == \
        ("db/alice", "db/bob", 2001, 2002)
    assert g.createId == ROOT  # not given: the importer
    every = export_bytes(cat, every=True).decode()
    assert '"db/alice",2001-02-03T04:05:06.000Z,"db/bob",2002-03-04T05:06:07.000Z' in every


def test_query_export_takes_includes_and_refuses_non_entities(db: Database) -> None:
    cat = catalogue_of(db)
    import_bytes(cat, SMALL.encode())
    text = export_bytes(cat, ["SELECT i FROM Investigation i WHERE i.name = 'inv1' "
                              "INCLUDE i.type"]).decode()
    assert "\nInvestigationType(" in text and '"inv1"' in text and '"inv2"' not in text
    assert "\nFacility(" not in text  # not included: named by key only
    with pytest.raises(IcatError) as e:
        export_bytes(cat, ["SELECT COUNT(i) FROM Investigation i"])
    assert e.value.type == ErrorType.BAD_PARAMETER


# -- python-icat's files -----------------------------------------------------------------------


def _python_icat_dump(srv: Server, path: Path, fmt: str) -> None:
    """What python-icat's icatdump writes, through its own library and SOAP client."""
    import icat
    import icat.dumpfile_xml
    import icat.dumpfile_yaml
    from icat.dump_queries import (
        getAuthQueries,
        getDataCollectionQueries,
        getFundingQueries,
        getInvestigationQueries,
        getOtherQueries,
        getStaticQueries,
    )
    from icat.dumpfile import open_dumpfile

    client = icat.Client(srv.url + "/ICATService/ICAT?wsdl", cache=None)
    client.login("simple", {"username": "root", "password": "secret"})
    with open_dumpfile(client, path, fmt, "w") as dumpfile:
        dumpfile.writedata(getAuthQueries(client))
        dumpfile.writedata(getStaticQueries(client))
        dumpfile.writedata(getFundingQueries(client))
        for inv in client.search("SELECT i.id FROM Investigation i ORDER BY i.id"):
            dumpfile.writedata(getInvestigationQueries(client, inv))
        dumpfile.writedata(getDataCollectionQueries(client))
        dumpfile.writedata(getOtherQueries(client))
    client.logout()


def _tables(dump: bytes) -> dict[str, list[str]]:
    """Each table's lines, sorted, without the labels of rows (they are ids)."""
    out: dict[str, list[str]] = {}
    header = None
    for line in dump.decode().splitlines()[2:]:
        if not line:
            header = None
        elif header is None:
            header = line
            out[header] = []
        else:
            out[header].append(line.split(",", 1)[1] if "(?:0" in header else line)
    return {h: sorted(v) for h, v in out.items()}


@pytest.mark.parametrize("fmt", ["XML", "YAML"])
def test_python_icat_files_import(fmt: str, tmp_path: Path) -> None:
    source = tmp_path / "source.db"
    with_demo = database(f"sqlite:///{source}")
    load_demo(catalogue_of(with_demo), scale=0.05, user=ROOT)
    srv = Server(tmp_path, f"sqlite:///{source}")
    try:
        path = tmp_path / f"dump.{fmt.lower()}"
        _python_icat_dump(srv, path, fmt)
    finally:
        srv.stop()
    target = database(f"sqlite:///{tmp_path / 'target.db'}")
    cat = catalogue_of(target)
    report = import_bytes(cat, path.read_bytes())
    assert report.created["Datafile"] == counts(with_demo)["Datafile"] > 100
    assert _tables(export_bytes(cat)) == _tables(export_bytes(catalogue_of(with_demo)))


def test_a_small_hand_written_xml_file(db: Database) -> None:
    xml = """<?xml version="1.0" encoding="utf-8"?>
<icatdata>
<data>
  <facility id="Facility_name-F"><name>F</name></facility>
  <investigationType id="t"><name>experiment</name><facility ref="Facility_name-F"/>
  </investigationType>
  <investigation id="Investigation_facility-(name-F)_name-inv1_visitId-1">
    <name>inv1</name><title>First</title><visitId>1</visitId>
    <startDate>2020-01-02T03:04:05+01:00</startDate>
    <facility ref="Facility_name-F"/>
    <type name="experiment" facility.ref="Facility_name-F"/>
    <keywords><name>alpha</name></keywords>
    <keywords><name>beta</name></keywords>
  </investigation>
  <dataCollection id="DataCollection_00000001">
    <dataCollectionInvestigations>
      <investigation ref="Investigation_facility-(name-F)_name-inv1_visitId-1"/>
    </dataCollectionInvestigations>
  </dataCollection>
</data>
</icatdata>
"""
    report = import_bytes(catalogue_of(db), xml.encode())
    assert report.created == {"Facility": 1, "InvestigationType": 1, "Investigation": 1,
                              "Keyword": 2, "DataCollection": 1,
                              "DataCollectionInvestigation": 1}
    (inv,) = rows(db, "Investigation")
    assert inv.startDate.isoformat() == "2020-01-02T02:04:05"
    assert {r.investigation for r in rows(db, "Keyword")} == {inv.id}


# -- HTTP ------------------------------------------------------------------------------------


def _post(srv: Server, sid: str, data: str, **options: str) -> httpx.Response:
    return srv.http.post("/icat/port", data={"json": json.dumps({"sessionId": sid, **options})},
                         files={"file": ("icat.port", data.encode(), "text/plain")})


def _get(srv: Server, **options: Any) -> httpx.Response:
    return srv.http.get("/icat/port", params={"json": json.dumps(options)})


def test_http_export_and_import(server: Server) -> None:
    sid = server.login()
    r = _post(server, sid, SMALL.replace('"F"', '"HTTP"'))
    assert r.status_code == 204, r.text
    r = _get(server, sessionId=sid, query="SELECT i FROM Investigation i WHERE "
             "i.facility.name = 'HTTP' INCLUDE i.type")
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"] == 'attachment; filename="icat.export"'
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text.startswith("# ICAT Export file written by simple/root\n1.0\n")
    assert ',"HTTP",0,0,"inv1",' in r.text and ',"First","HTTP","experiment","1"' in r.text
    assert "\nInvestigationType(" in r.text and '"inv2"' in r.text
    r = _get(server, sessionId=sid, query="SELECT i FROM Investigation i WHERE i.name = 'x'")
    assert r.status_code == 204
    r = _get(server, sessionId=sid, query=["SELECT f FROM Facility f WHERE f.name = 'HTTP'",
                                           "SELECT t FROM InvestigationType t"],
             attributes="all")
    assert r.status_code == 200 and "Facility(createId:0," in r.text
    # Again, the same rows: refused at its line with nothing written; IGNORE passes.
    r = _post(server, sid, SMALL.replace('"F"', '"HTTP"'))
    assert (r.status_code, r.json()["code"], r.json()["offset"]) == \
        (412, "OBJECT_ALREADY_EXISTS", 5)
    assert _post(server, sid, SMALL.replace('"F"', '"HTTP"'), duplicate="IGNORE") \
        .status_code == 204


def test_http_errors(server: Server) -> None:
    sid = server.login()
    assert server.http.get("/icat/port").json() == {
        "code": "BAD_PARAMETER", "message": "json must not be null"}
    r = _get(server, sessionId=sid, attributes="SOME")
    assert r.json()["message"] == "SOME is not a valid value for 'attributes'"
    r = _get(server, sessionId=sid, colour="red")
    assert r.json()["message"] == "colour is not an expected key in the json"
    assert _get(server, sessionId="nope").json()["code"] == "SESSION"
    r = _post(server, sid, "4.3\n")
    assert (r.status_code, r.json()["message"]) == (412, "Version of file must be 1.0 at line 1")
    r = server.http.post("/icat/port", data={"json": json.dumps({"sessionId": sid})})
    assert r.status_code == 400 and "file part" in r.json()["message"]
    user = server.login("jdoe")
    r = _post(server, user, SMALL, attributes="ALL")
    assert (r.status_code, r.json()["message"]) == (
        403, "Only root users may import with Attributes.ALL")
    # A user without rules creates nothing and exports no rows (headers only).
    r = _post(server, user, SMALL.replace('"F"', '"JDOE"'))
    assert (r.status_code, r.json()["code"]) == (403, "INSUFFICIENT_PRIVILEGES")
    assert "at line 5" in r.json()["message"]
    r = _get(server, sessionId=user)
    assert r.status_code == 200
    lines = [x for x in r.text.splitlines()[2:] if x]
    assert all("(" in x for x in lines)  # every line a header: nothing readable


# -- the command line ------------------------------------------------------------------------


def _cairn(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cairn.cli", *args], capture_output=True,
                          text=True, timeout=300)


def test_command_line(tmp_path: Path) -> None:
    source = database(f"sqlite:///{tmp_path / 'a' / 'source.db'}")
    import_bytes(catalogue_of(source), SMALL.encode())
    a = write_config(tmp_path / "a" / "cairn.toml", f"sqlite:///{tmp_path / 'a' / 'source.db'}",
                     8080)
    url, drop = make_database("sqlite", tmp_path / "b")
    (tmp_path / "b").mkdir(exist_ok=True)
    b = write_config(tmp_path / "b" / "cairn.toml", url, 8080)
    dump = tmp_path / "small.dump"
    done = _cairn("export", "--config", str(a), str(dump))
    assert done.returncode == 0, done.stderr
    assert "exported 6 rows of 53 tables" in done.stderr
    done = _cairn("import", "--config", str(b), str(dump))
    assert done.returncode == 0, done.stderr
    assert "6 rows (6 created)" in done.stderr
    done = _cairn("import", "--config", str(b), "--duplicate", "check", str(dump))
    # The keyless DataCollection is always new, and so is its link to the investigation.
    assert done.returncode == 0 and "(2 created, 4 checked)" in done.stderr, done.stderr
    done = _cairn("import", "--config", str(b), str(dump))
    assert done.returncode == 1
    assert "error: Facility exists with name = 'F' at line 15; nothing was imported" in \
        done.stderr  # a full export: the headers of the five tables before Facility's
    out = _cairn("export", "--config", str(b), "--query",
                 "SELECT f FROM Facility f", "-")
    assert out.returncode == 0 and '90,NULL,"The facility","F",NULL' in out.stdout
    drop()  # type: ignore[operator]


# -- memory --------------------------------------------------------------------------------


def _peaks(tmp: Path, scale: float) -> tuple[int, int]:
    """Peak Python memory of exporting and of importing the demo at ``scale``."""
    source = database(f"sqlite:///{tmp / f'source-{scale}.db'}")
    load_demo(catalogue_of(source), scale=scale, user=ROOT)
    path = tmp / f"dump-{scale}"
    cat = catalogue_of(source)
    tracemalloc.start()
    with path.open("wb") as out:
        for chunk in Export(cat.as_system(read_only=True, user=ROOT)).open():
            out.write(chunk)
    export_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    target = catalogue_of(database(f"sqlite:///{tmp / f'target-{scale}.db'}"))
    tracemalloc.start()
    with target.as_system(user=ROOT) as work, path.open("rb") as f:
        import_records(work, read_any(f, target.zone))
    import_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return export_peak, import_peak


def test_memory_does_not_grow_with_the_catalogue(tmp_path: Path) -> None:
    _peaks(tmp_path, 0.05)  # one-time allocations (compiled statements, layouts) first
    small = _peaks(tmp_path, 0.5)
    large = _peaks(tmp_path, 2.0)  # four times the rows
    for s, big in zip(small, large, strict=True):
        assert big < s * 1.25 + 2**20, (small, large)
