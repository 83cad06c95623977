"""Trying the demo as a person would: `cairn demo`, then a real server, signed in over HTTP as
the demo scientist it names (with the documented password), as an instrument scientist, as
an outsider and as root. Each sees what the demo's rules say, and data comes back as the
bytes the catalogue describes.

Which investigations are public depends on today's date (``releaseDate < CURRENT_TIMESTAMP``):
the fixture releases one investigation out of three in 2001 and the others in 2199, so
members, instrument scientists and the public each see a different part of the catalogue
whatever the date the tests run on.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cairn.demo.accounts import DEMO_PASSWORD
from tests.conftest import BACKENDS
from tests.integration.portal_support import demo_server
from tests.integration.server import Server

SCALE = 0.5  # ten investigations, about 5,000 datafiles with their bytes


@pytest.fixture(scope="module", params=BACKENDS)
def demo(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    """A server on a catalogue `cairn demo` filled; and what `cairn demo` printed."""
    for srv in demo_server(str(request.param), tmp_path_factory.mktemp(f"demo-{request.param}"),
                           scale=SCALE):
        yield srv, srv.demo_output


def login(server: Server, plugin: str, user: str, password: str) -> str:
    body = {"plugin": plugin, "credentials": [{"username": user}, {"password": password}]}
    r = server.http.post("/icat/session", data={"json": json.dumps(body)})
    assert r.status_code == 200, r.text
    return str(r.json()["sessionId"])


def search(server: Server, sid: str, query: str) -> Any:
    r = server.http.get("/icat/entityManager", params={"sessionId": sid, "query": query})
    assert r.status_code == 200, r.text
    return r.json()


def ids(server: Server, sql: str, **params: Any) -> set[int]:
    return {int(r[0]) for r in server.sql(sql, **params)}


def printed_user(output: str, role: str) -> str:
    m = re.search(rf"^  {role}:\s+(db/\S+)  password '{DEMO_PASSWORD}'", output, re.M)
    assert m, output
    return m[1]


MEMBER_OF = ("SELECT iu.INVESTIGATION_ID FROM INVESTIGATIONUSER iu "
             "JOIN USER_ u ON u.ID = iu.USER_ID WHERE u.NAME = :name")
SCIENTIST_OF = ("SELECT ii.INVESTIGATION_ID FROM INVESTIGATIONINSTRUMENT ii "
                "JOIN INSTRUMENTSCIENTIST s ON s.INSTRUMENT_ID = ii.INSTRUMENT_ID "
                "JOIN USER_ u ON u.ID = s.USER_ID WHERE u.NAME = :name")
RELEASED = "SELECT ID FROM INVESTIGATION WHERE ID % 3 = 0"


def test_the_scientist_sees_their_investigations_and_the_public_ones(
        demo: tuple[Server, str]) -> None:
    server, output = demo
    name = printed_user(output, "scientist")
    sid = login(server, "db", name.split("/")[1], DEMO_PASSWORD)
    theirs, public = ids(server, MEMBER_OF, name=name), ids(server, RELEASED)
    everything = ids(server, "SELECT ID FROM INVESTIGATION")
    assert theirs - public and public - theirs  # both paths matter
    assert theirs | public != everything  # and some investigations stay hidden
    assert set(search(server, sid, "SELECT i.id FROM Investigation i")) == theirs | public
    # Everything below follows its investigation: datafiles, through a dataset's INCLUDE too.
    visible = search(server, sid, "SELECT COUNT(df) FROM Datafile df")[0]
    assert visible == server.sql(
        "SELECT COUNT(*) FROM DATAFILE df JOIN DATASET ds ON ds.ID = df.DATASET_ID "
        f"WHERE ds.INVESTIGATION_ID IN ({MEMBER_OF}) OR ds.INVESTIGATION_ID % 3 = 0",
        name=name).scalar_one()
    [ds] = search(server, sid, f"SELECT ds FROM Dataset ds WHERE ds.investigation.id = "
                               f"{min(theirs - public)} ORDER BY ds.id LIMIT 0, 1 "
                               "INCLUDE ds.datafiles, ds.investigation.investigationUsers.user")
    dataset = ds["Dataset"]
    assert len(dataset["datafiles"]) == dataset["fileCount"] > 0
    assert name in {iu["user"]["name"] for iu in dataset["investigation"]["investigationUsers"]}
    # "My data", as portals ask for it.
    mine = search(server, sid, "SELECT i.id FROM Investigation i JOIN i.investigationUsers iu "
                               f"JOIN iu.user u WHERE u.name = '{name}'")
    assert set(mine) == theirs


def test_an_instrument_scientist_sees_their_instruments_investigations(
        demo: tuple[Server, str]) -> None:
    server, output = demo
    name = printed_user(output, "instrument scientist")
    sid = login(server, "db", name.split("/")[1], DEMO_PASSWORD)
    expected = ids(server, SCIENTIST_OF, name=name) | ids(server, RELEASED)
    assert set(search(server, sid, "SELECT i.id FROM Investigation i")) == expected
    # Reference tables are public, the beamline's contacts too.
    [inst] = search(server, sid, "SELECT ins FROM Instrument ins JOIN ins.instrumentScientists "
                                 f"s JOIN s.user u WHERE u.name = '{name}' "
                                 "INCLUDE ins.instrumentScientists.user")
    assert name in {s["user"]["name"] for s in inst["Instrument"]["instrumentScientists"]}
    assert search(server, sid, "SELECT COUNT(f) FROM DatafileFormat f")[0] > 0


def test_root_sees_everything(demo: tuple[Server, str]) -> None:
    server, _ = demo
    sid = server.login("root")  # simple/root, a root user of the test configuration
    assert search(server, sid, "SELECT COUNT(i) FROM Investigation i")[0] == len(
        ids(server, "SELECT ID FROM INVESTIGATION"))
    assert search(server, sid, "SELECT COUNT(df) FROM Datafile df")[0] == server.sql(
        "SELECT COUNT(*) FROM DATAFILE").scalar_one()


def _embargoed_datafile(server: Server, name: str) -> tuple[int, int, int, str]:
    """(id, dataset, fileSize, checksum) of a datafile of ``name``'s not yet public data."""
    row = server.sql(
        "SELECT df.ID, df.DATASET_ID, df.FILESIZE, df.CHECKSUM FROM DATAFILE df "
        "JOIN DATASET ds ON ds.ID = df.DATASET_ID "
        f"WHERE ds.INVESTIGATION_ID IN ({MEMBER_OF}) AND ds.INVESTIGATION_ID % 3 <> 0 "
        "ORDER BY df.ID", name=name).first()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2]), str(row[3])


def test_get_data_gives_the_bytes_the_catalogue_describes(demo: tuple[Server, str]) -> None:
    server, output = demo
    name = printed_user(output, "scientist")
    sid = login(server, "db", name.split("/")[1], DEMO_PASSWORD)
    df, dataset, size, checksum = _embargoed_datafile(server, name)
    r = server.http.get("/ids/getData", params={"sessionId": sid, "datafileIds": df})
    assert r.status_code == 200, r.text
    assert len(r.content) == size and format(zlib.crc32(r.content), "x") == checksum
    r = server.http.get("/ids/getSize", params={"sessionId": sid, "datafileIds": df})
    assert r.status_code == 200 and int(r.text) == size
    # A whole dataset as a zip: every entry is its datafile, byte for byte.
    r = server.http.get("/ids/getData", params={"sessionId": sid, "datasetIds": dataset})
    assert r.status_code == 200, r.text
    expected = {n: (s, c) for n, s, c in server.sql(
        "SELECT NAME, FILESIZE, CHECKSUM FROM DATAFILE WHERE DATASET_ID = :ds", ds=dataset)}
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        got = {Path(i.filename).name: (i.file_size, format(i.CRC, "x")) for i in z.infolist()}
    assert got == expected


def test_someone_elses_embargoed_data_is_refused(demo: tuple[Server, str]) -> None:
    server, output = demo
    name = printed_user(output, "scientist")
    df = _embargoed_datafile(server, name)[0]
    outsiders = [n for (n,) in server.sql(
        "SELECT u.NAME FROM USER_ u WHERE u.NAME LIKE 'db/%' AND u.ID NOT IN "
        "(SELECT iu.USER_ID FROM INVESTIGATIONUSER iu JOIN DATASET ds ON "
        " ds.INVESTIGATION_ID = iu.INVESTIGATION_ID JOIN DATAFILE f ON f.DATASET_ID = ds.ID "
        " WHERE f.ID = :df) AND u.ID NOT IN (SELECT USER_ID FROM INSTRUMENTSCIENTIST) "
        "ORDER BY u.ID", df=df)]
    sid = login(server, "db", outsiders[0].split("/")[1], DEMO_PASSWORD)
    r = server.http.get("/ids/getData", params={"sessionId": sid, "datafileIds": df})
    assert r.status_code == 403, r.text
    assert search(server, sid, f"SELECT COUNT(df) FROM Datafile df WHERE df.id = {df}") == [0]


def test_a_scientist_uploads_into_their_dataset_but_not_others(
        demo: tuple[Server, str]) -> None:
    server, output = demo
    name = printed_user(output, "scientist")
    sid = login(server, "db", name.split("/")[1], DEMO_PASSWORD)
    _, dataset, _, _ = _embargoed_datafile(server, name)
    fmt = server.sql("SELECT ID FROM DATAFILEFORMAT WHERE NAME = 'ascii'").scalar_one()
    data = b"# my own reduction\n1 2 3\n"

    def put(ds: int, filename: str) -> httpx.Response:
        return server.http.put("/ids/put", params={
            "sessionId": sid, "name": filename, "datasetId": ds, "datafileFormatId": fmt},
            content=data, headers={"Content-Type": "application/octet-stream"})

    r = put(dataset, "reduced.dat")
    assert r.status_code == 201, r.text
    new = int(r.json()["id"])
    got = server.http.get("/ids/getData", params={"sessionId": sid, "datafileIds": new})
    assert got.content == data
    public_not_mine = server.sql(
        f"SELECT ds.ID FROM DATASET ds WHERE ds.INVESTIGATION_ID % 3 = 0 AND "
        f"ds.INVESTIGATION_ID NOT IN ({MEMBER_OF}) ORDER BY ds.ID", name=name).first()
    assert public_not_mine is not None
    r = put(int(public_not_mine[0]), "intruder.dat")
    assert r.status_code == 403, r.text


def test_cairn_demo_prints_how_to_sign_in(demo: tuple[Server, str]) -> None:
    _, output = demo
    assert re.search(r"Sign in to the demo in a browser at http://127\.0\.0\.1:\d+/ or over "
                     r"REST \(POST http://127\.0\.0\.1:\d+/icat/session\)", output), output
    # The test configuration's first root user is simple/root: no password of Cairn's.
    assert "root:                 simple/root  through the 'simple' authenticator" in output
    assert re.search(r"datafile contents: [\d,]+ files, [\d.]+ MB written to", output), output
