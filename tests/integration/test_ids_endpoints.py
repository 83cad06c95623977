"""The data service over real HTTP, single-level storage, on every backend: each endpoint of
ids.server 2.1 with its success and error answers, authorization, and bad input."""

from __future__ import annotations

import io
import os
import random
import re
import uuid
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import BACKENDS
from tests.integration.ids_support import (
    Fixture,
    Ids,
    Rest,
    assert_ids_error,
    build,
    crc_hex,
    start,
    uniq,
)
from tests.integration.server import Server

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass
class Env:
    server: Server
    fx: Fixture
    ids: Ids
    rest: Rest
    root: str
    jdoe: str
    main: Path

    def stored(self) -> set[str]:
        """Every file in main storage (temporary files included)."""
        if not self.main.exists():
            return set()
        return {str(p.relative_to(self.main)) for p in self.main.rglob("*") if p.is_file()}

    def datafiles(self) -> list[tuple[object, ...]]:
        return [tuple(r) for r in self.server.sql(
            "SELECT ID, NAME, LOCATION FROM DATAFILE ORDER BY ID").all()]


@pytest.fixture(scope="module", params=BACKENDS)
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp(f"ids-{request.param}")
    srv, drop = start(tmp, str(request.param))
    try:
        fx = build(srv)
        yield Env(srv, fx, Ids(srv), Rest(srv), srv.login("root"), srv.login("jdoe"),
                  tmp / "data" / "main")
    finally:
        srv.stop()
        drop()


def payload(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


# -- service information ---------------------------------------------------------------------


def test_service_information(env: Env) -> None:
    ids = env.ids
    r = ids.get("ping")
    assert (r.status_code, r.text) == (200, "IdsOK")
    assert r.headers["content-type"].startswith("text/plain")
    r = ids.get("version")
    assert r.json() == {"version": "2.1.1"}
    assert r.headers["content-type"] == "application/json"
    assert ids.get("getIcatUrl").text == env.server.url
    assert ids.get("isReadOnly").text == "false"
    assert ids.get("isTwoLevel").text == "false"
    # ids.server's CORS headers on every answer, errors included.
    for r in (ids.get("ping"), ids.get("getSize", sessionId="x")):
        assert r.headers["access-control-allow-origin"] == "*"
        assert r.headers["access-control-allow-methods"] == "GET, POST, DELETE, PUT"
        assert "Content-Type" in r.headers["access-control-allow-headers"]
    r = env.server.http.options("/ids/getData")
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"


def test_unknown_calls_and_methods(env: Env) -> None:
    for path in ("/ids/nothing", "/ids/getApiVersion", "/ids", "/ids/ping/x"):
        r = env.server.http.get(path)
        assert r.status_code == 501, path
        assert r.json() == {"code": "NOT_IMPLEMENTED",
                            "message": "Operation not implemented by this IDS server."}
    r = env.server.http.get("/ids/prepareData")
    assert r.status_code == 405 and "POST" in r.headers["allow"]
    assert_ids_error(env.ids.post("getLink", sessionId=env.root, datafileId=1,
                                  username="x"), 501, "NotImplementedException")
    # The catalogue's own 404 answer is untouched by the data service.
    assert env.server.http.get("/icat/nothing").json()["code"] == "NOT_IMPLEMENTED"


ICAT_CORS = {"access-control-allow-origin": "*",
             "access-control-allow-methods": "GET, POST, DELETE, PUT"}
IDS_CORS = {**ICAT_CORS,
            "access-control-allow-headers": "Content-Type, Range, If-Range",
            "access-control-expose-headers":
                "Content-Disposition, Content-Length, Content-Range, Accept-Ranges, ETag"}
PREFLIGHT = {"Origin": "https://portal.example", "Access-Control-Request-Method": "PUT",
             "Access-Control-Request-Headers": "content-type"}


def cors_headers(r: httpx.Response) -> dict[str, str]:
    return {k.lower(): v for k, v in r.headers.items()
            if k.lower().startswith("access-control-")}


def test_cors_on_every_face(env: Env) -> None:
    http = env.server.http
    # The data service: ids.server's four headers on every answer, errors included; any
    # OPTIONS request is a preflight, answered at once.
    for r in (env.ids.get("ping"), env.ids.get("getSize", sessionId="x"),
              http.get("/ids/nothing"), http.get("/ids/prepareData")):
        assert r.status_code in (200, 400, 405, 501)
        assert cors_headers(r) == IDS_CORS, r.url
    for path in ("/ids/put", "/ids/getData", "/ids/nothing"):
        r = http.options(path, headers=PREFLIGHT)
        assert (r.status_code, r.content) == (200, b"")
        assert cors_headers(r) == {**IDS_CORS, "access-control-max-age": "86400"}
    # The catalogue (REST and SOAP): icat.server's two headers on every answer, errors
    # included. It answers no preflight: OPTIONS is a method its routes do not implement.
    for r in (http.get("/icat/version"), http.get(f"/icat/session/{uuid.uuid4()}"),
              http.get("/icat/nothing"), http.get("/ICATService/ICAT?wsdl"),
              http.post("/ICATService/ICAT", content=b"<bad",
                        headers={"content-type": "text/xml"})):
        assert r.status_code in (200, 403, 500, 501)
        assert cors_headers(r) == ICAT_CORS, r.url
    for path in ("/icat/session", "/icat/entityManager", "/ICATService/ICAT"):
        r = http.options(path, headers=PREFLIGHT)
        assert r.status_code == 501
        assert r.json() == {"code": "NOT_IMPLEMENTED",
                            "message": "Operation not implemented by this ICAT server."}
        assert cors_headers(r) == ICAT_CORS


def test_service_status_is_for_root_users(env: Env) -> None:
    r = env.ids.get("getServiceStatus", sessionId=env.root)
    assert r.json() == {"opsQueue": [], "lockCount": 0, "locks": [], "failures": []}
    assert_ids_error(env.ids.get("getServiceStatus", sessionId=env.jdoe), 403,
                     "InsufficientPrivilegesException", "rootUserNames")
    assert_ids_error(env.ids.get("getServiceStatus", sessionId=str(uuid.uuid4())), 403,
                     "InsufficientPrivilegesException")


# -- put and getData ---------------------------------------------------------------------------


def test_put_then_get_is_byte_exact(env: Env) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # several storage chunks, odd size
    r = env.ids.put(env.jdoe, env.fx.ds_a1, "e1.nxs", data, env.fx.fmt,
                    datafileModTime=1286600400000, datafileCreateTime=1286600300000,
                    description="first", doi="10.1/x")
    assert r.status_code == 201, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"id", "checksum", "location", "size"}
    assert body["checksum"] == zlib.crc32(data) and body["size"] == len(data)
    assert re.fullmatch(rf"{env.fx.inv_a}/{env.fx.ds_a1}/{UUID.pattern}", body["location"])
    df = env.rest.get("Datafile", body["id"])
    assert df["location"] == body["location"]
    assert df["fileSize"] == len(data) and df["checksum"] == crc_hex(data)
    assert df["name"] == "e1.nxs" and df["description"] == "first" and df["doi"] == "10.1/x"
    assert df["datafileModTime"].startswith("2010-10-09T05:00:00")
    assert df["datafileCreateTime"].startswith("2010-10-09T04:58:20")
    assert df["createId"] == "simple/jdoe"
    assert (env.main / body["location"]).read_bytes() == data

    r = env.ids.get_data(sessionId=env.jdoe, datafileIds=body["id"])
    assert r.status_code == 200
    assert r.content == data
    assert r.headers["content-length"] == str(len(data))
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"] == 'attachment; filename="e1.nxs"'
    assert r.headers["accept-ranges"] == "bytes" and r.headers["etag"]
    head = env.server.http.head("/ids/getData",
                                params={"sessionId": env.jdoe, "datafileIds": body["id"]})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(data))
    assert head.headers["etag"] == r.headers["etag"]
    r = env.ids.get_data(sessionId=env.jdoe, datafileIds=body["id"], outname="mine.bin")
    assert r.headers["content-disposition"] == 'attachment; filename="mine.bin"'


def test_checksum_is_unpadded_lowercase_hex(env: Env) -> None:
    seed = 0
    while zlib.crc32(data := f"small {seed}".encode()) >= 0x10000000:
        seed += 1
    df = env.ids.ok_put(env.jdoe, env.fx.ds_a1, uniq("pad") + ".dat", data, env.fx.fmt)
    stored = env.rest.get("Datafile", df)["checksum"]
    assert stored == format(zlib.crc32(data), "x") and len(stored) < 8


def test_empty_upload(env: Env) -> None:
    df = env.ids.ok_put(env.jdoe, env.fx.ds_a1, uniq("empty"), b"", env.fx.fmt)
    r = env.ids.get_data(sessionId=env.jdoe, datafileIds=df)
    assert r.status_code == 200 and r.content == b"" and r.headers["content-length"] == "0"
    assert env.rest.get("Datafile", df)["checksum"] == "0"


def test_names_with_folders_are_kept(env: Env) -> None:
    name = f"{uniq('sub')}/dir/f ile.dat"
    data = b"nested"
    env.ids.ok_put(env.jdoe, env.fx.ds_a1, name, data, env.fx.fmt)
    r = env.ids.get_data(sessionId=env.jdoe, datasetIds=env.fx.ds_a1)
    names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    assert any(n.endswith("/A1/" + name) for n in names), names


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a/../../b", "a//b", "./a", "a/",
                                  "a\\..\\b", "x\x00y", "tab\tname", "", "x" * 300])
def test_put_refuses_bad_names_and_stores_nothing(env: Env, name: str) -> None:
    before, rows = env.stored(), env.datafiles()
    r = env.ids.put(env.jdoe, env.fx.ds_a1, name, b"evil", env.fx.fmt)
    assert_ids_error(r, 400, "BadRequestException")
    assert env.stored() == before and env.datafiles() == rows


def test_put_errors_store_nothing(env: Env) -> None:
    fx = env.fx
    before, rows = env.stored(), env.datafiles()

    def put(**params: object) -> object:
        base: dict[str, object] = {"sessionId": env.jdoe, "name": uniq("bad"),
                                   "datasetId": fx.ds_a1, "datafileFormatId": fx.fmt}
        base.update(params)
        return env.server.http.put("/ids/put", params={k: v for k, v in base.items()
                                                       if v is not None}, content=b"data")

    cases = [
        (put(name=None), 400, "BadRequestException", "name parameter must be set"),
        (put(datafileFormatId=None), 400, "BadRequestException", "datafileFormatId"),
        (put(datafileFormatId="x"), 400, "BadRequestException", "must be numeric"),
        (put(datasetId=None), 400, "BadRequestException", "datasetId parameter must be set"),
        (put(datasetId="1.5"), 400, "BadRequestException", "must be numeric"),
        (put(datafileModTime="yesterday"), 400, "BadRequestException", "datafileModTime"),
        (put(datafileCreateTime="1e9"), 400, "BadRequestException", "datafileCreateTime"),
        (put(datafileModTime=str(10**18)), 400, "BadRequestException", "out of range"),
        (put(sessionId="not-a-session"), 400, "BadRequestException", "not a valid UUID"),
        (put(sessionId=str(uuid.uuid4()).upper()), 400, "BadRequestException", "UUID"),
        (put(sessionId=str(uuid.uuid4())), 403, "InsufficientPrivilegesException", None),
        (put(datasetId=10**12), 404, "NotFoundException", "Dataset"),
        (put(datasetId=fx.ds_b1), 403, "InsufficientPrivilegesException", "Dataset"),
        (put(datafileFormatId=10**12), 404, "NotFoundException", "DatafileFormat"),
    ]
    for r, status, code, text in cases:
        assert_ids_error(r, status, code, text)  # type: ignore[arg-type]
    assert env.stored() == before and env.datafiles() == rows


def test_duplicate_names_are_refused_before_the_upload(env: Env) -> None:
    name = uniq("dup") + ".dat"
    env.ids.ok_put(env.jdoe, env.fx.ds_a1, name, b"one", env.fx.fmt)
    before, rows = env.stored(), env.datafiles()
    r = env.ids.put(env.jdoe, env.fx.ds_a1, name, b"two", env.fx.fmt)
    assert_ids_error(r, 400, "BadRequestException")
    assert env.stored() == before and env.datafiles() == rows
    # The same name in another dataset is fine.
    env.ids.ok_put(env.root, env.fx.ds_b1, name, b"two", env.fx.fmt)


# -- selections --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", ",1", "1,,2", "abc", "1.5", "0x10", " 1",
                                   "99999999999999999999", "\u0661", "1;2", "1 2"])
def test_malformed_id_lists(env: Env, value: str) -> None:
    for name in ("investigationIds", "datasetIds", "datafileIds"):
        r = env.ids.get("getSize", sessionId=env.jdoe, **{name: value})
        msg = assert_ids_error(r, 400, "BadRequestException",
                               "is not a valid string representation of a comma separated "
                               "list of longs")
        assert name in msg


def test_id_lists_as_ids_server_reads_them(env: Env) -> None:
    fx = env.fx
    # Whitespace around commas and a trailing comma are fine (Java's split), repeats too.
    for value in (f"{fx.ds_a1}", f"{fx.ds_a1} , {fx.ds_a2},", f"{fx.ds_a1},{fx.ds_a1}",
                  f"+{fx.ds_a1}"):
        r = env.ids.get("getDatafileIds", sessionId=env.jdoe, datasetIds=value)
        assert r.status_code == 200, (value, r.text)


def test_selection_contents(env: Env) -> None:
    fx, ids = env.fx, env.ids
    a = [ids.ok_put(env.jdoe, fx.ds_a1, uniq("sel"), payload(100 + i, i), fx.fmt)
         for i in range(3)]
    # A datafile without location is invisible: excluded from its dataset, 404 by id.
    nolocation = env.rest.create("Datafile", name=uniq("noloc"), fileSize=5,
                                 dataset={"id": fx.ds_a1})
    r = ids.get("getDatafileIds", sessionId=env.jdoe, datasetIds=fx.ds_a1)
    got = r.json()["ids"]
    assert set(a) <= set(got) and nolocation not in got and got == sorted(got)
    assert_ids_error(ids.get("getSize", sessionId=env.jdoe, datafileIds=nolocation),
                     404, "NotFoundException")
    by_inv = ids.get("getDatafileIds", sessionId=env.jdoe, investigationIds=fx.inv_a)
    assert by_inv.json()["ids"] == got
    sizes = {d: env.rest.get("Datafile", d)["fileSize"] for d in got}
    r = ids.get("getSize", sessionId=env.jdoe, datasetIds=fx.ds_a1)
    assert r.text == str(sum(sizes.values())) and r.headers["content-type"].startswith("text/")
    # Overlapping parts count once.
    r = ids.get("getSize", sessionId=env.jdoe, datasetIds=fx.ds_a1,
                datafileIds=f"{a[0]},{a[1]}", investigationIds=fx.inv_a)
    assert r.text == str(sum(sizes.values()))
    r = ids.get("getSize", sessionId=env.jdoe, datafileIds=f"{a[0]},{a[1]}")
    assert r.text == str(sizes[a[0]] + sizes[a[1]])
    # Empty dataset and empty selection: nothing, not an error.
    assert ids.get("getSize", sessionId=env.jdoe, datasetIds=fx.ds_a2).text == "0"
    assert ids.get("getDatafileIds", sessionId=env.jdoe).json() == {"ids": []}
    r = ids.get_data(sessionId=env.jdoe)
    assert r.status_code == 200 and zipfile.ZipFile(io.BytesIO(r.content)).namelist() == []
    r = ids.get_data(sessionId=env.jdoe, datasetIds=fx.ds_a2)
    assert zipfile.ZipFile(io.BytesIO(r.content)).namelist() == []


def test_unknown_objects_are_404(env: Env) -> None:
    for name in ("investigationIds", "datasetIds", "datafileIds"):
        for call in ("getSize", "getDatafileIds", "getStatus"):
            r = env.ids.get(call, sessionId=env.jdoe, **{name: 10**12})
            assert_ids_error(r, 404, "NotFoundException", "not found")
        assert_ids_error(env.ids.get_data(sessionId=env.jdoe, **{name: 10**12}), 404,
                         "NotFoundException")
        assert_ids_error(env.ids.post("prepareData", sessionId=env.jdoe, **{name: 10**12}),
                         404, "NotFoundException")


def test_sessions(env: Env) -> None:
    for sid, status in (("nonsense", 400), (str(uuid.uuid4()).upper(), 400), (None, 400),
                        (str(uuid.uuid4()), 403)):
        params = {"datasetIds": env.fx.ds_a1}
        if sid is not None:
            params["sessionId"] = sid  # type: ignore[assignment]
        for call in ("getSize", "getDatafileIds"):
            r = env.ids.get(call, **params)
            assert r.status_code == status, (sid, call, r.text)
        assert env.ids.get_data(**params).status_code == status
        assert env.ids.post("prepareData", **params).status_code == status


# -- authorization -----------------------------------------------------------------------------


def test_users_get_their_data_and_403_for_others(env: Env) -> None:
    fx, ids = env.fx, env.ids
    mine = ids.ok_put(env.jdoe, fx.ds_a1, uniq("mine"), b"jdoe's bytes", fx.fmt)
    theirs = ids.ok_put(env.root, fx.ds_b1, uniq("theirs"), b"secret bytes", fx.fmt)
    assert ids.get_data(sessionId=env.jdoe, datafileIds=mine).content == b"jdoe's bytes"
    r = ids.get_data(sessionId=env.jdoe, investigationIds=fx.inv_a)
    assert r.status_code == 200
    for sel in ({"datafileIds": theirs}, {"datasetIds": fx.ds_b1},
                {"investigationIds": fx.inv_b}, {"datafileIds": f"{mine},{theirs}"},
                {"datasetIds": f"{fx.ds_a1},{fx.ds_b1}"}):
        for call in ("getSize", "getDatafileIds"):
            assert_ids_error(ids.get(call, sessionId=env.jdoe, **sel), 403,
                             "InsufficientPrivilegesException")
        assert_ids_error(ids.get_data(sessionId=env.jdoe, **sel), 403,
                         "InsufficientPrivilegesException")
        assert_ids_error(ids.post("prepareData", sessionId=env.jdoe, **sel), 403,
                         "InsufficientPrivilegesException")
    assert ids.get_data(sessionId=env.root, datafileIds=theirs).content == b"secret bytes"
    # getStatus without a session is anybody's (ids.server's reader account).
    r = ids.get("getStatus", datasetIds=fx.ds_b1)
    assert (r.status_code, r.text) == (200, "ONLINE")
    assert_ids_error(ids.get("getStatus", sessionId=env.jdoe, datasetIds=fx.ds_b1), 403,
                     "InsufficientPrivilegesException")
    # Deleting needs DELETE permission; refused deletes change nothing.
    before, rows = env.stored(), env.datafiles()
    r = env.server.http.delete("/ids/delete", params={"sessionId": env.jdoe,
                                                      "datafileIds": theirs})
    assert_ids_error(r, 403, "InsufficientPrivilegesException")
    assert env.stored() == before and env.datafiles() == rows


# -- zips --------------------------------------------------------------------------------------


def test_zip_layout_and_determinism(env: Env) -> None:
    fx, ids = env.fx, env.ids
    ds = env.rest.create("Dataset", name="zip me/1", investigation={"id": fx.inv_a},
                         type={"id": env.rest.search(
                             f"SELECT t.id FROM DatasetType t WHERE t.facility.id = {fx.facility}"
                         )[0]})
    files = {"b.dat": payload(5000, 1), "a.dat": payload(70000, 2), "c/d.dat": b""}
    ids_by_name = {n: ids.ok_put(env.jdoe, ds, n, d, fx.fmt) for n, d in files.items()}
    r1 = ids.get_data(sessionId=env.jdoe, datasetIds=ds)
    r2 = ids.get_data(sessionId=env.jdoe, datasetIds=ds)
    assert r1.status_code == 200 and r1.content == r2.content
    assert r1.headers["etag"] == r2.headers["etag"]
    assert r1.headers["content-length"] == str(len(r1.content))
    assert re.fullmatch(r'attachment; filename="\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d\.zip"',
                        r1.headers["content-disposition"])
    z = zipfile.ZipFile(io.BytesIO(r1.content))
    prefix = f"ids/{fx.facility_name}/{fx.inv_a_name.replace(' ', '+')}/N%2FA/zip+me%2F1/"
    order = sorted(ids_by_name, key=ids_by_name.__getitem__)  # datafile id order
    assert z.namelist() == [prefix + n for n in order]
    for info in z.infolist():
        name = info.filename[len(prefix):]
        assert info.compress_type == zipfile.ZIP_STORED
        assert z.read(info) == files[name]
        assert zlib.crc32(files[name]) == info.CRC
    # compress=true: DEFLATE, no length up front, same entries.
    r = ids.get_data(sessionId=env.jdoe, datasetIds=ds, compress="true", outname="x")
    assert "content-length" not in r.headers
    assert r.headers["content-disposition"] == 'attachment; filename="x.zip"'
    z = zipfile.ZipFile(io.BytesIO(r.content))
    assert [i.compress_type for i in z.infolist()] == [zipfile.ZIP_DEFLATED] * 3
    assert {i.filename[len(prefix):]: z.read(i) for i in z.infolist()} == files
    # zip=true for one file; an outname ending in .zip is kept.
    r = ids.get_data(sessionId=env.jdoe, datafileIds=ids_by_name["a.dat"], zip="TRUE",
                     outname="y.zip")
    assert r.headers["content-disposition"] == 'attachment; filename="y.zip"'
    assert zipfile.ZipFile(io.BytesIO(r.content)).read(prefix + "a.dat") == files["a.dat"]
    # Only "true" is true.
    r = ids.get_data(sessionId=env.jdoe, datafileIds=ids_by_name["a.dat"], zip="yes")
    assert r.content == files["a.dat"]


# -- prepared downloads ------------------------------------------------------------------------


def test_prepared_downloads(env: Env) -> None:
    fx, ids = env.fx, env.ids
    df1 = ids.ok_put(env.jdoe, fx.ds_a1, uniq("p1"), b"one", fx.fmt)
    df2 = ids.ok_put(env.jdoe, fx.ds_a1, uniq("p2"), b"two!", fx.fmt)
    r = ids.post("prepareData", sessionId=env.jdoe, datafileIds=f"{df1},{df2}",
                 compress="true")
    assert r.status_code == 200 and UUID.fullmatch(r.text), r.text
    pid = r.text
    # Every preparedId call works without a session (a bearer token).
    assert ids.get("isPrepared", preparedId=pid).text == "true"
    assert ids.get("getStatus", preparedId=pid).text == "ONLINE"
    assert ids.get("getSize", preparedId=pid).text == "7"
    assert ids.get("getDatafileIds", preparedId=pid).json() == {
        "zip": True, "compress": True, "ids": [df1, df2]}
    assert ids.post("reset", preparedId=pid).status_code == 204
    r = ids.get_data(preparedId=pid, outname="mine")
    assert r.status_code == 200
    assert r.headers["content-disposition"] == 'attachment; filename="mine.zip"'
    z = zipfile.ZipFile(io.BytesIO(r.content))
    assert sorted(z.read(n) for n in z.namelist()) == [b"one", b"two!"]
    # The preparedId wins over a session selection; zip/compress come from prepareData.
    r = ids.get_data(preparedId=pid, sessionId=env.jdoe, datafileIds=df1, zip="false")
    assert r.content[:2] == b"PK"
    # One datafile, zip not asked: not zipped.
    pid1 = ids.post("prepareData", sessionId=env.jdoe, datafileIds=df1).text
    assert ids.get("getDatafileIds", preparedId=pid1).json()["zip"] is False
    r = ids.get_data(preparedId=pid1, outname="raw.bin")
    assert r.content == b"one"
    assert r.headers["content-disposition"] == 'attachment; filename="raw.bin"'
    # Frozen at prepare time: later uploads are not in it.
    pid_ds = ids.post("prepareData", sessionId=env.jdoe, datasetIds=fx.ds_a1).text
    before = ids.get("getDatafileIds", preparedId=pid_ds).json()["ids"]
    ids.ok_put(env.jdoe, fx.ds_a1, uniq("later"), b"later", fx.fmt)
    assert ids.get("getDatafileIds", preparedId=pid_ds).json()["ids"] == before
    # A datafile deleted since: getData refuses, as ids.server.
    r = env.server.http.delete("/ids/delete", params={"sessionId": env.jdoe,
                                                      "datafileIds": df2})
    assert r.status_code == 204, r.text
    assert_ids_error(ids.get_data(preparedId=pid), 404, "NotFoundException",
                     "has been deleted")


def test_unknown_and_malformed_prepared_ids(env: Env) -> None:
    unknown = str(uuid.uuid4())
    for call in ("isPrepared", "getStatus", "getSize", "getDatafileIds", "getData"):
        assert_ids_error(env.ids.get(call, preparedId=unknown), 404, "NotFoundException",
                         f"The preparedId {unknown} is not known")
        for bad in ("x", unknown.upper(), unknown + "0", "../../etc/passwd", ""):
            assert_ids_error(env.ids.get(call, preparedId=bad), 400, "BadRequestException",
                             "is not a valid UUID")
    assert_ids_error(env.ids.post("reset", preparedId=unknown), 404, "NotFoundException")


# -- single-level answers ----------------------------------------------------------------------


def test_single_level_migration_calls(env: Env) -> None:
    fx, ids = env.fx, env.ids
    for call in ("archive", "restore", "write"):
        assert_ids_error(ids.post(call, sessionId=env.jdoe, datasetIds=fx.ds_a1), 501,
                         "NotImplementedException", "single level")
        assert_ids_error(ids.post(call, sessionId="bad", datasetIds=fx.ds_a1), 400,
                         "BadRequestException")
    assert ids.post("reset", sessionId=env.jdoe, datasetIds=fx.ds_a1).status_code == 204
    assert_ids_error(ids.post("reset", sessionId=env.jdoe, datasetIds=fx.ds_b1), 403,
                     "InsufficientPrivilegesException")
    r = ids.get("getStatus", sessionId=env.jdoe, investigationIds=fx.inv_a)
    assert r.text == "ONLINE"
    r = ids.post("isPrepared", preparedId=str(uuid.uuid4()))
    assert r.status_code == 405


# -- ranges ------------------------------------------------------------------------------------


def test_ranges(env: Env) -> None:
    fx, ids = env.fx, env.ids
    data = os.urandom(200_000)
    df = ids.ok_put(env.jdoe, fx.ds_a1, uniq("range"), data, fx.fmt)
    zipped = ids.get_data(sessionId=env.jdoe, datafileIds=df, zip="true")
    for params, whole in (({"datafileIds": df}, data), ({"datafileIds": df, "zip": "true"},
                                                         zipped.content)):
        n = len(whole)
        etag = ids.get_data(sessionId=env.jdoe, **params).headers["etag"]

        def get(rng: str, *, if_range: str | None = None, p: dict = params) -> object:
            headers = {"Range": rng}
            if if_range is not None:
                headers["If-Range"] = if_range
            return ids.get_data(headers, sessionId=env.jdoe, **p)

        r = get("bytes=1000-")  # ids.server's form, now with Content-Range
        assert r.status_code == 206 and r.content == whole[1000:]
        assert r.headers["content-range"] == f"bytes 1000-{n - 1}/{n}"
        assert r.headers["content-length"] == str(n - 1000)
        r = get("bytes=10-19")
        assert (r.status_code, r.content) == (206, whole[10:20])
        r = get("bytes=-100")
        assert r.content == whole[-100:] and r.headers["content-range"] == \
            f"bytes {n - 100}-{n - 1}/{n}"
        r = get(f"bytes=5-{10 * n}")
        assert r.content == whole[5:]
        assert get("bytes=0-", if_range=etag).status_code == 206
        r = get("bytes=100-", if_range='"stale"')
        assert (r.status_code, r.content) == (200, whole)
        r = get("bytes=0-1,5-6")
        assert (r.status_code, r.content) == (200, whole)
        for bad in ("bytes=abc", "bytes=5-2", "bytes=", "pages 1-2", "bytes=1-2-3",
                    "bytes=" + "9" * 2000):
            assert_ids_error(get(bad), 400, "BadRequestException")  # type: ignore[arg-type]
        r = get(f"bytes={n}-")
        assert_ids_error(r, 416, "BadRequestException")  # type: ignore[arg-type]
        assert r.headers["content-range"] == f"bytes */{n}"  # type: ignore[attr-defined]
    # compress=true: unknown length; ids.server's bytes=N- still works (206, no
    # Content-Range), other ranges are ignored.
    p = {"sessionId": env.jdoe, "datafileIds": df, "zip": "true", "compress": "true"}
    full = ids.get_data(**p).content
    r = ids.get_data({"Range": "bytes=777-"}, **p)
    assert r.status_code == 206 and r.content == full[777:]
    assert "content-range" not in r.headers
    assert ids.get_data({"Range": "bytes=0-9"}, **p).content == full


# -- delete ------------------------------------------------------------------------------------


def test_delete(env: Env) -> None:
    fx, ids = env.fx, env.ids
    one = ids.ok_put(env.jdoe, fx.ds_a1, uniq("del"), b"bye", fx.fmt)
    location = env.rest.get("Datafile", one)["location"]
    assert (env.main / location).is_file()
    r = env.server.http.delete("/ids/delete", params={"sessionId": env.jdoe,
                                                      "datafileIds": one})
    assert r.status_code == 204 and r.content == b""
    assert not (env.main / location).exists()
    assert env.rest.search(f"SELECT df FROM Datafile df WHERE df.id = {one}") == []
    assert_ids_error(ids.get_data(sessionId=env.jdoe, datafileIds=one), 404,
                     "NotFoundException")
    # A whole dataset: every located file goes, the dataset stays.
    ds = env.rest.create("Dataset", name=uniq("gone"), investigation={"id": fx.inv_a},
                         type={"id": env.rest.search(
                             f"SELECT t.id FROM DatasetType t WHERE t.facility.id = {fx.facility}"
                         )[0]})
    dfs = [ids.ok_put(env.jdoe, ds, f"f{i}", b"x" * i, fx.fmt) for i in range(3)]
    locations = [env.rest.get("Datafile", d)["location"] for d in dfs]
    r = env.server.http.delete("/ids/delete", params={"sessionId": env.jdoe, "datasetIds": ds})
    assert r.status_code == 204, r.text
    assert not any((env.main / loc).exists() for loc in locations)
    assert env.rest.get("Dataset", ds)["id"] == ds
    assert ids.get("getDatafileIds", sessionId=env.jdoe, datasetIds=ds).json() == {"ids": []}


# -- python-icat as the client -----------------------------------------------------------------


def test_python_icat_ids_client(env: Env) -> None:
    from icat.exception import (
        IDSBadRequestError,
        IDSInsufficientPrivilegesError,
        IDSNotFoundError,
        IDSNotImplementedError,
    )
    from icat.ids import DataSelection, IDSClient

    fx = env.fx
    client = IDSClient(env.server.url + "/ids", sessionId=env.jdoe)
    assert str(client.apiversion) == "2.1.1"
    client.ping()
    assert client.getIcatUrl() == env.server.url
    assert client.isReadOnly() is False and client.isTwoLevel() is False
    data = os.urandom(100_000)
    # put compares the server's CRC32 with its own and raises on a mismatch.
    df = client.put(io.BytesIO(data), uniq("pyicat") + ".dat", fx.ds_a1, fx.fmt,
                    description="via python-icat", datafileModTime=1286600400000)
    sel = DataSelection({"datafileIds": [df]})
    assert client.getData(sel).read() == data
    assert client.getData(sel, offset=1234).read() == data[1234:]
    assert client.getSize(sel) == len(data)
    assert client.getDatafileIds(sel) == [df]
    assert client.getStatus(sel) == "ONLINE"
    pid = client.prepareData(DataSelection({"datasetIds": [fx.ds_a1]}), zipFlag=True)
    assert client.isPrepared(pid) is True
    assert client.getStatus(pid) == "ONLINE"
    assert df in client.getDatafileIds(pid)
    assert client.getSize(pid) >= len(data)
    with zipfile.ZipFile(io.BytesIO(client.getData(pid).read())) as z:
        assert any(n.endswith(".dat") for n in z.namelist())
    client.reset(pid)
    with pytest.raises(IDSNotImplementedError):
        client.archive(sel)
    with pytest.raises(IDSInsufficientPrivilegesError):
        client.getSize(DataSelection({"datasetIds": [fx.ds_b1]}))
    with pytest.raises(IDSNotFoundError):
        client.getSize(DataSelection({"datasetIds": [10**12]}))
    with pytest.raises(IDSNotFoundError):
        client.isPrepared(str(uuid.uuid4()))
    with pytest.raises(IDSBadRequestError):
        client.isPrepared("nonsense")
    with pytest.raises(IDSBadRequestError):
        client.put(io.BytesIO(b"x"), "../escape", fx.ds_a1, fx.fmt)
    client.delete(sel)
    with pytest.raises(IDSNotFoundError):
        client.getSize(sel)
