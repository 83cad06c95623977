"""``[data]`` options over real HTTP, on every backend: the location hash (``key``), a second,
read-only Cairn process on the same database and storage (preparedIds are shared), preparedId
expiry, validation of the settings, and ``cairn serve`` without any configuration."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cairn.config import ConfigError, load_settings
from cairn.ids.locations import location_digest
from tests.conftest import BACKENDS
from tests.integration.ids_support import Fixture, Ids, Rest, assert_ids_error, build, start, uniq
from tests.integration.server import STARTUP_SECONDS, Server, free_port
from tests.waiting import wait_until

KEY = "wombat"
LIFETIME_HOURS = 0.002  # 7.2 seconds


@dataclass
class Pair:
    writer: Server  # key, short preparedId lifetime
    reader: Server  # the same database and storage, read_only
    fx: Fixture
    rest: Rest
    jdoe: str


@pytest.fixture(scope="module", params=BACKENDS)
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Pair]:
    tmp_w = tmp_path_factory.mktemp(f"ids-opt-w-{request.param}")
    tmp_r = tmp_path_factory.mktemp(f"ids-opt-r-{request.param}")
    main = tmp_w / "shared-main"
    writer, drop = start(tmp_w, str(request.param),
                         f'main = "{main}"\nkey = "{KEY}"\n'
                         f"prepared_lifetime_hours = {LIFETIME_HOURS}\n")
    try:
        # Processes sharing a database share their settings but for read_only: the purge
        # of expired preparedIds is one periodic job for all of them.
        reader, _ = start(tmp_r, str(request.param),
                          f'main = "{main}"\nkey = "{KEY}"\nread_only = true\n'
                          f"prepared_lifetime_hours = {LIFETIME_HOURS}\n",
                          db_url=writer.db_url)
        try:
            yield Pair(writer, reader, build(writer), Rest(writer), writer.login("jdoe"))
        finally:
            reader.stop()
    finally:
        writer.stop()
        drop()


def test_location_hash(pair: Pair) -> None:
    ids, fx = Ids(pair.writer), pair.fx
    data = os.urandom(5000)
    r = ids.put(pair.jdoe, fx.ds_a1, uniq("hashed"), data, fx.fmt)
    assert r.status_code == 201, r.text
    body = r.json()
    bare = body["location"]
    assert " " not in bare  # the answer carries the bare location, as ids.server's
    stored = pair.rest.get("Datafile", body["id"])["location"]
    assert stored == f"{bare} {location_digest(body['id'], bare, KEY)}"
    assert re.fullmatch(r"\S+ [0-9A-F]{64}", stored)
    assert ids.get_data(sessionId=pair.jdoe, datafileIds=body["id"]).content == data
    # Locations without a valid hash are refused: named, or inside a selected dataset.
    dstype = pair.rest.search(
        f"SELECT t.id FROM DatasetType t WHERE t.facility.id = {fx.facility}")[0]
    for location, text in ((bare, "does not contain hash"),
                           (f"{bare} {'0' * 64}", "does not contain a valid hash")):
        ds = pair.rest.create("Dataset", name=uniq("forged"), investigation={"id": fx.inv_a},
                              type={"id": dstype})
        forged = pair.rest.create("Datafile", name=uniq("forged"), location=location,
                                  fileSize=5000, dataset={"id": ds})
        assert_ids_error(ids.get_data(sessionId=pair.jdoe, datafileIds=forged), 403,
                         "InsufficientPrivilegesException", text)
        assert_ids_error(ids.get_data(sessionId=pair.jdoe, datasetIds=ds), 403,
                         "InsufficientPrivilegesException", text)


def test_second_process_shares_prepared_ids_and_refuses_writes(pair: Pair) -> None:
    w, rd, fx = Ids(pair.writer), Ids(pair.reader), pair.fx
    assert rd.get("isReadOnly").text == "true" and w.get("isReadOnly").text == "false"
    data = os.urandom(70_000)
    df = w.ok_put(pair.jdoe, fx.ds_a1, uniq("shared"), data, fx.fmt)
    pid = w.post("prepareData", sessionId=pair.jdoe, datafileIds=df, zip="true").text
    # Prepared on one process, served by the other.
    r = rd.get_data(preparedId=pid)
    assert r.status_code == 200, r.text
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        assert z.read(z.namelist()[0]) == data
    assert rd.get_data(sessionId=pair.jdoe, datafileIds=df).content == data
    before = sorted(p.name for p in Path(pair.writer.config.parent, "shared-main").rglob("*"))
    assert_ids_error(rd.put(pair.jdoe, fx.ds_a1, uniq("ro"), b"no", fx.fmt), 501,
                     "NotImplementedException", "configured to be unavailable")
    r = pair.reader.http.delete("/ids/delete", params={"sessionId": pair.jdoe,
                                                       "datafileIds": df})
    assert_ids_error(r, 501, "NotImplementedException")
    assert_ids_error(rd.post("write", sessionId=pair.jdoe, datafileIds=df), 501,
                     "NotImplementedException", "configured to be unavailable")
    after = sorted(p.name for p in Path(pair.writer.config.parent, "shared-main").rglob("*"))
    assert before == after
    assert rd.get_data(sessionId=pair.jdoe, datafileIds=df).content == data


def test_prepared_ids_expire(pair: Pair) -> None:
    ids, fx = Ids(pair.writer), pair.fx
    df = ids.ok_put(pair.jdoe, fx.ds_a1, uniq("exp"), b"soon gone", fx.fmt)
    pid = ids.post("prepareData", sessionId=pair.jdoe, datafileIds=df).text
    assert ids.get("isPrepared", preparedId=pid).text == "true"

    def status() -> int:
        return ids.get("isPrepared", preparedId=pid).status_code

    # The lifetime is 7.2 s; a minute is far beyond it and the purge that follows.
    deadline = time.monotonic() + 60
    wait_until(lambda: status() != 200, deadline - time.monotonic(),
               f"preparedId {pid} to expire (lifetime {LIFETIME_HOURS * 3600:g} s)", step=0.5)
    for call in ("isPrepared", "getData", "getSize", "getStatus", "getDatafileIds"):
        # 410 with ids.server's NotFoundException code: gone for good, prepare again.
        assert_ids_error(ids.get(call, preparedId=pid), 410, "NotFoundException",
                         "expired")
    # Twice the lifetime later the row is purged: the id is simply unknown.
    wait_until(lambda: status() != 410, deadline - time.monotonic(),
               f"the expired preparedId {pid} to be purged", step=0.5,
               detail=lambda: (f"writer's log:\n{pair.writer.log_text()[-2000:]}\n"
                               f"reader's log:\n{pair.reader.log_text()[-2000:]}"))
    assert_ids_error(ids.get("isPrepared", preparedId=pid), 404, "NotFoundException",
                     "is not known")


# -- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "complaint"), [
    ('storage_unit = "tape"', "storage_unit"),
    ('main = "ftp://host/x"', "folder or s3://"),
    ('main = "s3:///prefix"', "names no bucket"),
    ("start_archiving_level_bytes = 10", "go together"),
    ('archive = "/a"\nstart_archiving_level_bytes = 10\nstop_archiving_level_bytes = 20',
     "must be below"),
    ("start_archiving_level_bytes = 20\nstop_archiving_level_bytes = 10", "need an archive"),
    ('key = ""', "key must not be empty"),
    ("prepared_lifetime_hours = 0", "prepared_lifetime_hours"),
    ("queue_interval_seconds = -1", "queue_interval_seconds"),
    ("shelf = 3", "shelf"),
    ('s3_access_key = "a"', "go together"),
])
def test_bad_settings_are_named(tmp_path: Path, data: str, complaint: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[data]\n{data}\n")
    with pytest.raises(ConfigError, match=re.escape(complaint)):
        load_settings(cfg, environ={})


def test_data_paths(tmp_path: Path) -> None:
    cfg = tmp_path / "etc" / "c.toml"
    cfg.parent.mkdir()
    cfg.write_text('[server]\ndata_dir = "d"\n[data]\narchive = "arch"\n'
                   'cache_dir = "/abs/cache"\n')
    s = load_settings(cfg, environ={"CAIRN_DATA__STORAGE_UNIT": "datafile"})
    assert s.data.main == str(tmp_path / "etc" / "d" / "main")
    assert s.data.archive == str(tmp_path / "etc" / "arch")
    assert s.data.cache_dir == Path("/abs/cache")
    assert s.data.storage_unit == "datafile" and s.data.two_level
    s = load_settings(None, environ={"CAIRN_DATA__MAIN": "s3://bucket/pre/fix",
                                     "CAIRN_DATA__S3_SECRET_KEY": "hidden",
                                     "CAIRN_DATA__S3_ACCESS_KEY": "id"})
    assert s.data.main == "s3://bucket/pre/fix" and not s.data.two_level
    assert "hidden" not in repr(s)
    assert s.data.write_enabled and not load_settings(
        None, environ={"CAIRN_DATA__READ_ONLY": "true"}).data.write_enabled


def test_serve_without_configuration(tmp_path: Path) -> None:
    """`cairn serve` alone: single-level storage under ./cairn-data."""
    port = free_port()
    env = {**os.environ, "CAIRN_ROOT_PASSWORD": "pw"}
    env.pop("CAIRN_DATA__MAIN", None)
    log = (tmp_path / "log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "cairn.cli", "serve", "--port", str(port),
                             "--log-level", "warning"], cwd=tmp_path, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"

        def pings() -> bool:
            assert proc.poll() is None, \
                f"cairn serve exited: {(tmp_path / 'log').read_text(errors='replace')}"
            try:
                return httpx.get(url + "/ids/ping").text == "IdsOK"
            except httpx.TransportError:
                return False

        wait_until(pings, STARTUP_SECONDS, f"cairn serve to answer {url}/ids/ping", step=0.2,
                   detail=lambda: (tmp_path / "log").read_text(errors="replace")[-3000:])
        assert httpx.get(url + "/ids/isTwoLevel").text == "false"
        assert httpx.get(url + "/ids/isReadOnly").text == "false"
        assert (tmp_path / "cairn-data" / "main").is_dir()
        assert (tmp_path / "cairn-data" / "cache").is_dir()
        creds = {"plugin": "db", "credentials": [{"username": "root"}, {"password": "pw"}]}
        sid = httpx.post(url + "/icat/session", data={"json": json.dumps(creds)}).json()
        r = httpx.get(url + "/ids/getServiceStatus", params={"sessionId": sid["sessionId"]})
        assert r.json()["opsQueue"] == []
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_serve_refuses_bad_data_settings(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[data]\nstorage_unit = "tape"\n')
    out = subprocess.run([sys.executable, "-m", "cairn.cli", "serve", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "data.storage_unit" in out.stderr + out.stdout
