"""getData against delete: a download that has begun is whole, whatever is deleted meanwhile.

The soak benchmark found the one race of the data service: a dataset's zip being streamed
while a datafile of it is deleted ended as a truncated zip or a 404 half-way. Cairn's answer
(:mod:`cairn.ids.removal`): a download holds SHARED locks on its datasets until its last
byte; a delete commits in the catalogue at once and is never refused for a download, but
the files of the deleted Datafiles stay in storage until the downloads reading their
datasets are over, then a job removes them. Downloads that begin after the delete leave the
file out. A process killed meanwhile leaves nothing behind: its locks stop counting once
their heartbeat stops, and a deleting process killed between its commit and the removal has
its note finished by the sweep, which also waits for the readers.

Every test reads a real zip slowly over HTTP from a real ``cairn serve`` while the file is
deleted through /ids/delete (or the catalogue), on every backend.
"""

from __future__ import annotations

import io
import json
import os
import signal
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select

from cairn.db.tables import TABLES
from tests.conftest import BACKENDS, make_database
from tests.integration.ids_support import Fixture, Ids, Rest, build, uniq
from tests.integration.server import Server
from tests.waiting import wait_until

MB = 1 << 20
#: Each file is larger than what the server reads ahead of a slow client plus what the
#: sockets hold, so the last file of a zip is not yet open when the test deletes it.
SIZE = 6 * MB
#: Fast polls; a process is taken for dead 3 s after its last heartbeat.
JOBS = "\n[jobs]\npoll_interval_seconds = 0.2\nstale_claim_seconds = 2\n"
SCRATCH = ".cairn-tmp"


@dataclass
class Site:
    """One catalogue and main storage, and the Cairn processes serving them."""

    tmp: Path
    url: str
    drop: Any
    main: Path
    runs: int = 0
    servers: list[Server] = field(default_factory=list)
    fx: Fixture | None = None

    def start(self, env: dict[str, str] | None = None) -> Server:
        self.runs += 1
        folder = self.tmp / f"run{self.runs}"
        folder.mkdir()
        extra = f'\n[data]\nmain = "{self.main}"\ncache_dir = "{self.tmp / "cache"}"\n{JOBS}'
        server = Server(folder, self.url, extra, env=env)
        self.servers.append(server)
        if self.fx is None:
            self.fx = build(server)
        return server

    def kill(self, server: Server) -> None:
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(10)
        server.stop()
        self.servers.remove(server)

    def close(self) -> None:
        for s in self.servers:
            s.stop()
        self.drop()


@pytest.fixture(params=BACKENDS)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    url, drop = make_database(str(request.param), tmp_path)
    s = Site(tmp_path, url, drop, tmp_path / "main")
    try:
        yield s
    finally:
        s.close()


@dataclass
class Files:
    """A dataset of three large files, in datafile id order (the zip's order)."""

    dataset: int
    ids: list[int]
    names: list[str]
    data: list[bytes]
    locations: list[str]


def dataset_of_three(site: Site, server: Server) -> Files:
    assert site.fx is not None
    rest = Rest(server)
    dst = rest.search(f"SELECT t.id FROM DatasetType t WHERE t.facility.id = "
                      f"{site.fx.facility}")[0]
    ds = rest.create("Dataset", name=uniq("race"), investigation={"id": site.fx.inv_a},
                     type={"id": dst})
    sid = server.login()
    out = Files(ds, [], [], [], [])
    for i in range(3):
        data = os.urandom(SIZE)
        name = f"f{i}-{uniq()}.dat"
        r = Ids(server).put(sid, ds, name, data, site.fx.fmt)
        assert r.status_code == 201, r.text
        out.ids.append(int(r.json()["id"]))
        out.names.append(name)
        out.data.append(data)
        out.locations.append(str(r.json()["location"]))
    return out


class SlowRead:
    """A getData response read a little at a time by a client of its own."""

    def __init__(self, server: Server, **params: Any) -> None:
        self.client = httpx.Client(base_url=server.url, timeout=60)
        self.response = self.client.send(
            self.client.build_request("GET", "/ids/getData", params=params), stream=True)
        assert self.response.status_code == 200, self.response.read()[:500]
        self.chunks = self.response.iter_bytes(64 * 1024)
        self.got = bytearray()

    def some(self, at_least: int = 64 * 1024) -> None:
        while len(self.got) < at_least:
            self.got += next(self.chunks)

    def rest(self) -> bytes:
        for chunk in self.chunks:
            self.got += chunk
        self.close()
        return bytes(self.got)

    def close(self) -> None:
        self.response.close()
        self.client.close()


@contextmanager
def slow_read(server: Server, **params: Any) -> Iterator[SlowRead]:
    r = SlowRead(server, **params)
    try:
        yield r
    finally:
        r.close()


def ids_delete(server: Server, **selection: Any) -> httpx.Response:
    return server.http.delete("/ids/delete", params={"sessionId": server.login(),
                                                     **selection})


def catalogue_delete(server: Server, datafile: int) -> httpx.Response:
    return server.http.delete("/icat/entityManager", params={
        "sessionId": server.login(),
        "entities": json.dumps([{"Datafile": {"id": datafile}}])})


def zip_contents(body: bytes) -> dict[str, bytes]:
    """The entries of a zip by their base names; fails unless the zip is whole and valid."""
    z = zipfile.ZipFile(io.BytesIO(body))
    assert z.testzip() is None
    return {info.filename.rsplit("/", 1)[-1]: z.read(info) for info in z.infolist()}


def catalogued(server: Server, datafile: int) -> bool:
    return bool(Rest(server).search(f"SELECT df.id FROM Datafile df WHERE df.id = {datafile}"))


def lock_rows(url: str) -> list[tuple[Any, ...]]:
    """Dataset locks of any process, dead or alive (presence rows left out)."""
    t = TABLES.ids_lock
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(select(t.c.dataset_id, t.c.owner)
                                                   .where(t.c.dataset_id >= 0))]
    finally:
        engine.dispose()


def waiting_removals(url: str) -> list[tuple[Any, ...]]:
    t = TABLES.job
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(select(t.c.id, t.c.state).where(
                t.c.kind == "ids.remove", t.c.state.in_(["QUEUED", "RUNNING"])))]
    finally:
        engine.dispose()


def scratch_files(main: Path) -> list[str]:
    root = main / SCRATCH
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) \
        if root.exists() else []


@pytest.mark.parametrize("compress", ["false", "true"])
def test_a_zip_being_read_is_whole_when_a_file_of_it_is_deleted(site: Site,
                                                                compress: str) -> None:
    server = site.start()
    f = dataset_of_three(site, server)
    victim = f.locations[2]
    with slow_read(server, sessionId=server.login(), datasetIds=f.dataset,
                   compress=compress) as reader:
        reader.some()
        r = ids_delete(server, datafileIds=f.ids[2])
        assert r.status_code == 204, r.text
        # Deleted at once in the catalogue; its bytes stay while the zip is being read.
        assert not catalogued(server, f.ids[2])
        assert (site.main / victim).is_file()
        # A download that begins now leaves the file out, and is whole too.
        later = server.http.get("/ids/getData", params={"sessionId": server.login(),
                                                        "datasetIds": f.dataset})
        assert later.status_code == 200
        assert zip_contents(later.content) == dict(zip(f.names[:2], f.data[:2],
                                                       strict=True))
        body = reader.rest()
    assert zip_contents(body) == dict(zip(f.names, f.data, strict=True))
    # Once nobody reads it, the file goes; the others stay.
    wait_until(lambda: not (site.main / victim).exists(), 30,
               "the deleted file to be removed once its download ended",
               detail=lambda: server.log_text()[-3000:])
    assert all((site.main / loc).is_file() for loc in f.locations[:2])
    wait_until(lambda: not waiting_removals(site.url) and not lock_rows(site.url), 30,
               "the removal job to end and the downloads' locks to be released")


def test_a_prepared_download_and_a_single_file_are_whole_too(site: Site) -> None:
    server = site.start()
    f = dataset_of_three(site, server)
    sid = server.login()
    prepared = server.http.post("/ids/prepareData", data={
        "sessionId": sid, "datafileIds": ",".join(map(str, f.ids))}).text.strip()
    with slow_read(server, preparedId=prepared) as zipped, \
            slow_read(server, sessionId=sid, datafileIds=f.ids[1]) as single:
        zipped.some()
        single.some()
        assert ids_delete(server, datafileIds=f"{f.ids[1]},{f.ids[2]}").status_code == 204
        assert (site.main / f.locations[1]).is_file() and (site.main / f.locations[2]).is_file()
        # The prepared id names deleted files now: refused before its first byte, as
        # ids.server does; the one file by id is gone for new requests.
        again = server.http.get("/ids/getData", params={"preparedId": prepared})
        assert again.status_code == 404 and again.json()["code"] == "NotFoundException"
        gone = server.http.get("/ids/getData", params={"sessionId": sid,
                                                       "datafileIds": f.ids[1]})
        assert gone.status_code == 404
        assert single.rest() == f.data[1]
        assert (site.main / f.locations[2]).is_file()  # the zip still reads it
        assert zip_contents(zipped.rest()) == dict(zip(f.names, f.data, strict=True))
    wait_until(lambda: not any((site.main / loc).exists() for loc in f.locations[1:]), 30,
               "the deleted files to be removed once their downloads ended",
               detail=lambda: server.log_text()[-3000:])
    assert (site.main / f.locations[0]).is_file()


def test_a_catalogue_delete_leaves_the_zip_whole(site: Site) -> None:
    """Deleting the Datafile through the catalogue never touches storage (as icat.server):
    the zip being read is whole, later ones leave the file out."""
    server = site.start()
    f = dataset_of_three(site, server)
    with slow_read(server, sessionId=server.login(), datasetIds=f.dataset) as reader:
        reader.some()
        assert catalogue_delete(server, f.ids[2]).status_code == 204
        later = server.http.get("/ids/getData", params={"sessionId": server.login(),
                                                        "datasetIds": f.dataset})
        assert zip_contents(later.content) == dict(zip(f.names[:2], f.data[:2],
                                                       strict=True))
        body = reader.rest()
    assert zip_contents(body) == dict(zip(f.names, f.data, strict=True))


def test_a_killed_reader_leaves_no_lock_and_the_file_goes(site: Site) -> None:
    first = site.start()
    f = dataset_of_three(site, first)
    reader = SlowRead(first, sessionId=first.login(), datasetIds=f.dataset)
    try:
        reader.some()
        assert lock_rows(site.url), "the download holds no lock"
        assert ids_delete(first, datafileIds=f.ids[2]).status_code == 204
        assert (site.main / f.locations[2]).is_file()
        site.kill(first)
    finally:
        reader.close()
    second = site.start()
    wait_until(lambda: not (site.main / f.locations[2]).exists()
               and not lock_rows(site.url) and not waiting_removals(site.url)
               and not scratch_files(site.main), 60,
               "the restarted server to drop the dead reader's locks and remove the file",
               detail=lambda: (f"locks: {lock_rows(site.url)}\n"
                               f"jobs: {waiting_removals(site.url)}\n"
                               f"scratch: {scratch_files(site.main)}\n"
                               f"{second.log_text()[-3000:]}"))
    assert all((site.main / loc).is_file() for loc in f.locations[:2])
    assert not catalogued(second, f.ids[2])


def test_a_deleter_killed_after_its_commit_waits_for_the_readers_of_another_process(
        site: Site) -> None:
    """The sweep that finishes a dead process's delete leaves the file to the downloads
    that still read it, as that process would have."""
    reader_server = site.start()
    f = dataset_of_three(site, reader_server)
    deleter = site.start(env={"CAIRN_SERVER__PLUGINS": "tests.integration.crash_plugin",
                              "CAIRN_CRASH_AT": "delete.committed"})
    with slow_read(reader_server, sessionId=reader_server.login(),
                   datasetIds=f.dataset) as reader:
        reader.some()
        sid = deleter.login()
        client = httpx.Client(base_url=deleter.url, timeout=60)
        try:
            with pytest.raises(httpx.TransportError):
                # The deleter stops after its commit; the kill cuts this request off.
                def kill_at_point() -> None:
                    deleter.expect_log_lines("CRASH-POINT delete.committed", 1)
                    site.kill(deleter)

                killer = threading.Thread(target=kill_at_point)
                killer.start()
                try:
                    client.delete("/ids/delete", params={"sessionId": sid,
                                                         "datafileIds": f.ids[2]})
                finally:
                    killer.join()
        finally:
            client.close()
        assert not catalogued(reader_server, f.ids[2])
        # The reader's process sweeps what the dead one left: its note is finished, the
        # file left to the download that reads it.
        reader_server.expect_log_lines("cleared what a stopped process", 1, timeout=60)
        assert (site.main / f.locations[2]).is_file()
        body = reader.rest()
    assert zip_contents(body) == dict(zip(f.names, f.data, strict=True))
    wait_until(lambda: not (site.main / f.locations[2]).exists()
               and not waiting_removals(site.url) and not scratch_files(site.main), 60,
               "the file to go once its download ended, and nothing else to be left",
               detail=lambda: (f"jobs: {waiting_removals(site.url)}\n"
                               f"scratch: {scratch_files(site.main)}\n"
                               f"{reader_server.log_text()[-3000:]}"))
    assert all((site.main / loc).is_file() for loc in f.locations[:2])
