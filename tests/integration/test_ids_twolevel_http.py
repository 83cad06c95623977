"""Two-level storage through ``/ids`` of real Cairn processes sharing one database and one
pair of storage folders: archive -> getStatus -> restore -> getData, a download in one
process holding off an archive requested from the other, a restart with queued work, and a
corrupt archive ("Restore failed", reset)."""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from cairn.db.engine import Database
from cairn.ids.twolevel_queue import KIND
from cairn.jobs import State
from cairn.jobs.model import utcnow
from tests.integration.ids_support import Fixture, Ids, assert_ids_error, build, start
from tests.integration.server import Server
from tests.unit.ids_twolevel_fixtures import wait_for


def data_config(tmp: Path, name: str, write_delay: float = 0) -> str:
    return (f'main = "{tmp / "main"}"\narchive = "{tmp / "archive"}"\n'
            f'cache_dir = "{tmp / ("cache-" + name)}"\nwrite_delay_seconds = {write_delay}\n'
            "queue_interval_seconds = 0.1\n")


@dataclass
class Site:
    tmp: Path
    a: Server
    fx: Fixture
    jdoe: str
    root: str

    @property
    def ds_folder(self) -> str:
        return f"{self.fx.inv_a}/{self.fx.ds_a1}"

    def on_main(self) -> bool:
        """Whether the dataset has files on main storage. The server may remove the folder
        while this looks (archiving does), so a folder gone mid-look is an empty one."""
        try:
            return any((self.tmp / "main" / self.ds_folder).iterdir())
        except FileNotFoundError:
            return False

    def archived_copy(self) -> Path:
        return self.tmp / "archive" / self.ds_folder

    def status(self, ids: Ids) -> str:
        r = ids.get("getStatus", sessionId=self.jdoe, datasetIds=self.fx.ds_a1)
        assert r.status_code == 200, r.text
        return r.text

    def queue(self, ids: Ids) -> list[dict[str, object]]:
        r = ids.get("getServiceStatus", sessionId=self.root)
        assert r.status_code == 200, r.text
        return list(r.json()["opsQueue"])


@pytest.fixture
def site(tmp_path: Path, backend: str) -> Iterator[Site]:
    (tmp_path / "a").mkdir()
    srv, drop = start(tmp_path / "a", backend, data_config(tmp_path, "a"))
    try:
        fx = build(srv)
        yield Site(tmp_path, srv, fx, srv.login("jdoe"), srv.login("root"))
    finally:
        srv.stop()  # stopping twice is harmless
        drop()


def second(site: Site, name: str = "b", write_delay: float = 0) -> Server:
    (site.tmp / name).mkdir()
    srv, _ = start(site.tmp / name, "", data_config(site.tmp, name, write_delay),
                   db_url=site.a.db_url)
    return srv


def archive_attempts(site: Site) -> int:
    """How often a process has taken up the queued archive so far: every claim and every
    putting back changes the job's version."""
    db = Database(site.a.db_url)
    try:
        t = db.tables.job
        with db.connect() as conn:
            versions = [r.version for r in conn.execute(select(t.c.version, t.c.payload).where(
                t.c.kind == KIND, t.c.payload.contains('"ARCHIVE_REQUESTED"')))]
    finally:
        db.dispose()
    return max(versions, default=0) // 2


def put(site: Site, ids: Ids, name: str, data: bytes) -> int:
    return ids.ok_put(site.jdoe, site.fx.ds_a1, name, data, site.fx.fmt)


def test_archive_status_restore_getdata_across_processes(site: Site) -> None:
    ids_a = Ids(site.a)
    files = {put(site, ids_a, f"f{i}.dat", os.urandom(1000 + i)): i for i in range(3)}
    wait_for(site.archived_copy().exists, "the write to the archive")
    wait_for(lambda: site.queue(ids_a) == [], "an empty queue")
    b = second(site)
    try:
        ids_b = Ids(b)
        r = ids_b.post("archive", sessionId=site.jdoe, datasetIds=site.fx.ds_a1)
        assert r.status_code == 204, r.text
        wait_for(lambda: not site.on_main(), "the archive")
        assert site.status(ids_a) == site.status(ids_b) == "ARCHIVED"
        df = next(iter(files))
        r = ids_a.get_data(sessionId=site.jdoe, datafileIds=df)
        assert_ids_error(r, 503, "DataNotOnlineException")  # ... and a restore is queued
        wait_for(lambda: site.status(ids_b) == "ONLINE", "the restore")
        for df_id in files:
            r = ids_b.get_data(sessionId=site.jdoe, datafileIds=df_id)
            assert r.status_code == 200
            assert len(r.content) == 1000 + files[df_id]
        # restore through the API, from the other process
        r = ids_a.post("archive", sessionId=site.jdoe, datasetIds=site.fx.ds_a1)
        wait_for(lambda: not site.on_main(), "the second archive")
        r = ids_b.post("restore", sessionId=site.jdoe, datasetIds=site.fx.ds_a1)
        assert r.status_code == 204
        wait_for(lambda: site.status(ids_a) == "ONLINE", "the second restore")
    finally:
        b.stop()


def test_download_in_one_process_holds_off_archive_from_the_other(site: Site) -> None:
    ids_a = Ids(site.a)
    data = os.urandom(48 << 20)  # well beyond what socket buffers hold
    df = put(site, ids_a, "big.dat", data)
    wait_for(site.archived_copy().exists, "the write to the archive")
    b = second(site)
    try:
        ids_b = Ids(b)
        with site.a.http.stream("GET", "/ids/getData", params={
                "sessionId": site.jdoe, "datafileIds": df}) as response:
            assert response.status_code == 200
            chunks = response.iter_bytes(1 << 20)
            received = [next(chunks)]
            r = ids_b.post("archive", sessionId=site.jdoe, datasetIds=site.fx.ds_a1)
            assert r.status_code == 204
            # Tried again and again, the archive is held off by the download's lock.
            wait_for(lambda: any(e["request"] == "ARCHIVE_REQUESTED"
                                 for e in site.queue(ids_b)), "the archive request")
            wait_for(lambda: archive_attempts(site) >= 3, "three tries of the archive")
            assert site.on_main()
            # (An archive attempt that is giving way may show for a moment.)
            wait_for(lambda: ids_b.get("getServiceStatus", sessionId=site.root).json()["locks"]
                     == [{"id": site.fx.ds_a1, "type": "SHARED", "count": 1}], "the lock")
            received.extend(chunks)
        assert zlib.crc32(b"".join(received)) == zlib.crc32(data)
        wait_for(lambda: not site.on_main(), "the archive once the download ended")
        assert site.status(ids_a) == "ARCHIVED"
    finally:
        b.stop()


def test_restart_picks_up_queued_write(site: Site) -> None:
    site.a.stop()
    a2 = second(site, "a2", write_delay=3600)
    try:
        put(site, Ids(a2), "late.dat", b"written after a restart")
        assert site.queue(Ids(a2))[0]["request"] == "WRITE_REQUESTED"
    finally:
        a2.stop()
    assert not site.archived_copy().exists()
    db = Database(site.a.db_url)
    try:  # the delay is over by the time the next process starts
        t = db.tables.job
        with db.begin() as conn:
            conn.execute(update(t).where(t.c.kind == KIND, t.c.state == State.QUEUED)
                         .values(not_before=utcnow() - timedelta(seconds=1)))
    finally:
        db.dispose()
    b = second(site, "b", write_delay=3600)
    try:
        wait_for(site.archived_copy().exists, "the write after the restart")
        wait_for(lambda: site.queue(Ids(b)) == [], "an empty queue")
    finally:
        b.stop()


def test_corrupt_archive_restore_failed_and_reset(site: Site) -> None:
    ids_a = Ids(site.a)
    put(site, ids_a, "x.dat", b"some bytes")
    wait_for(site.archived_copy().exists, "the write to the archive")
    wait_for(lambda: site.queue(ids_a) == [], "an empty queue")
    r = ids_a.post("archive", sessionId=site.jdoe, datasetIds=site.fx.ds_a1)
    wait_for(lambda: not site.on_main(), "the archive")
    good = site.archived_copy().read_bytes()
    site.archived_copy().write_bytes(b"this is no zip")
    r = ids_a.post("restore", sessionId=site.jdoe, datasetIds=site.fx.ds_a1)
    assert r.status_code == 204

    def failed() -> bool:
        r = ids_a.get("getStatus", sessionId=site.jdoe, datasetIds=site.fx.ds_a1)
        return r.status_code == 500

    wait_for(failed, "the failed restore")
    r = ids_a.get("getStatus", sessionId=site.jdoe, datasetIds=site.fx.ds_a1)
    assert_ids_error(r, 500, "InternalException", "Restore failed")
    r = ids_a.get("getServiceStatus", sessionId=site.root)
    assert r.json()["failures"] == [site.fx.ds_a1]
    r = ids_a.post("reset", sessionId=site.jdoe, datasetIds=site.fx.ds_a1)
    assert r.status_code == 204
    assert site.status(ids_a) == "ARCHIVED"
    site.archived_copy().write_bytes(good)
    r = ids_a.post("restore", sessionId=site.jdoe, datasetIds=site.fx.ds_a1)
    wait_for(lambda: site.status(ids_a) == "ONLINE", "the good restore")
