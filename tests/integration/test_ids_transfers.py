"""Transfers over real HTTP on every backend: interrupted uploads leave nothing behind,
broken downloads resume byte-exactly with Range, concurrent downloads agree, hostile
requests are refused, and memory stays flat while gigabytes... well, tens of MB, stream."""

from __future__ import annotations

import io
import os
import socket
import time
import zipfile
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from tests.conftest import BACKENDS
from tests.integration.ids_support import (
    GONE,
    Fixture,
    Ids,
    Rest,
    assert_ids_error,
    build,
    start,
    uniq,
)
from tests.integration.server import Server
from tests.waiting import wait_until

MB = 1 << 20
#: Where local storage keeps unfinished uploads: ``.cairn-tmp/<process token>/<x>.part``.
SCRATCH = ".cairn-tmp"


@dataclass
class Env:
    server: Server
    fx: Fixture
    ids: Ids
    rest: Rest
    jdoe: str
    main: Path

    def stored(self) -> set[str]:
        if not self.main.exists():
            return set()
        return {str(p.relative_to(self.main)) for p in self.main.rglob("*")}

    def temporaries(self) -> dict[str, int]:
        """The temporary files of unfinished uploads (path -> bytes written so far)."""
        out: dict[str, int] = {}
        for p in (self.main / SCRATCH).rglob("*.part") if self.main.exists() else ():
            try:
                out[str(p.relative_to(self.main))] = p.stat().st_size
            except FileNotFoundError:  # finished or cleaned up meanwhile
                continue
        return out

    def datafiles(self) -> list[tuple[object, ...]]:
        return [tuple(r) for r in self.server.sql("SELECT ID, LOCATION FROM DATAFILE").all()]

    def rss_peak_kb(self) -> int:
        status = Path(f"/proc/{self.server.proc.pid}/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines()
                        if line.startswith("VmHWM:")))


@pytest.fixture(scope="module", params=BACKENDS)
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp(f"ids-xfer-{request.param}")
    srv, drop = start(tmp, str(request.param))
    try:
        yield Env(srv, build(srv), Ids(srv), Rest(srv), srv.login("jdoe"),
                  tmp / "data" / "main")
    finally:
        srv.stop()
        drop()


def _raw(server: Server) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _put_target(env: Env, name: str) -> str:
    return "/ids/put?" + urlencode({"sessionId": env.jdoe, "name": name,
                                    "datasetId": env.fx.ds_a1,
                                    "datafileFormatId": env.fx.fmt})


@dataclass(frozen=True)
class Mark:
    """What the server has logged and stored before a test's requests."""

    gone: int
    stored: set[str]
    rows: list[tuple[object, ...]]


def _mark(env: Env) -> Mark:
    return Mark(env.server.log_lines(GONE), env.stored(), env.datafiles())


def _settled(env: Env, mark: Mark, cut: int = 0) -> None:
    """Wait until the server has finished ``cut`` uploads whose clients went away (it logs
    each only after storage has cleaned up), then nothing may be new. Watching the folder
    instead would race: a cut upload's temporary file may not even exist yet."""
    assert env.server.expect_log_lines(GONE, mark.gone + cut) == mark.gone + cut
    assert env.stored() == mark.stored
    assert env.datafiles() == mark.rows


@pytest.mark.parametrize("chunked", [False, True])
def test_interrupted_upload_leaves_nothing(env: Env, chunked: bool) -> None:
    mark = _mark(env)
    with _raw(env.server) as s:
        head = (f"PUT {_put_target(env, uniq('cut'))} HTTP/1.1\r\nHost: x\r\n"
                "Content-Type: application/octet-stream\r\n")
        head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else \
            f"Content-Length: {20 * MB}\r\n\r\n"
        s.sendall(head.encode())
        block = os.urandom(256 * 1024)
        for _ in range(12):  # 3 MB of the promised 20
            s.sendall(f"{len(block):x}\r\n".encode() + block + b"\r\n" if chunked else block)
        # Cut only once the server has written some of it to a temporary file.
        wait_until(lambda: any(size > 0 for path, size in env.temporaries().items()
                               if path not in mark.stored), 30,
                   "the server to write part of the upload to a temporary file",
                   detail=lambda: f"temporary files: {env.temporaries()}")
    _settled(env, mark, cut=1)
    # The server is fine afterwards.
    env.ids.ok_put(env.jdoe, env.fx.ds_a1, uniq("after"), b"ok", env.fx.fmt)


def test_upload_cut_mid_chunk_and_garbage_framing(env: Env) -> None:
    mark = _mark(env)
    with _raw(env.server) as s:
        s.sendall((f"PUT {_put_target(env, uniq('bad'))} HTTP/1.1\r\nHost: x\r\n"
                   "Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n").encode())
        s.sendall(b"10\r\n0123456789abcdef\r\nzz\r\nnot hex\r\n")
        s.settimeout(5)
        reply = s.recv(4096)
    assert reply == b"" or reply.startswith(b"HTTP/1.1 4"), reply[:100]
    _settled(env, mark, cut=1)


def test_huge_headers_and_query_are_refused(env: Env) -> None:
    mark = _mark(env)
    r = env.server.http.put(_put_target(env, uniq("hdr")), content=b"x",
                            headers={"X-Big": "a" * 200_000})
    assert 400 <= r.status_code < 500
    with _raw(env.server) as sock:  # too long for httpx to send
        sock.sendall(f"PUT {_put_target(env, 'n' * 100_000)} HTTP/1.1\r\nHost: x\r\n"
                     "Content-Length: 1\r\n\r\nx".encode())
        reply = sock.recv(100)
    assert reply.startswith(b"HTTP/1.1 4"), reply
    r = env.ids.get_data(headers={"Range": "bytes=" + "1-2," * 20_000}, sessionId=env.jdoe)
    assert 400 <= r.status_code < 500
    # A form with a million-character id list is refused cleanly, not parsed forever.
    r = env.server.http.post("/ids/prepareData", content=b"datafileIds=" + b"1," * 9_000_000,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_ids_error(r, 400, "BadRequestException")
    _settled(env, mark)
    assert env.ids.get("ping").text == "IdsOK"


def _read_some(env: Env, params: dict[str, object], limit: int) -> tuple[bytes, str]:
    """Start a download and drop the connection after ``limit`` bytes."""
    got = bytearray()
    with httpx.Client(base_url=env.server.url, timeout=30) as client, \
            client.stream("GET", "/ids/getData", params=params) as r:
        assert r.status_code == 200
        etag = r.headers["etag"]
        for chunk in r.iter_raw(64 * 1024):
            got += chunk
            if len(got) >= limit:
                break
    return bytes(got[:limit]), etag


@pytest.mark.parametrize("zipped", [False, True])
def test_broken_download_resumes_byte_exact(env: Env, zipped: bool) -> None:
    data = os.urandom(12 * MB + 321)
    df = env.ids.ok_put(env.jdoe, env.fx.ds_a1, uniq("big"), data, env.fx.fmt)
    params: dict[str, object] = {"sessionId": env.jdoe, "datafileIds": df}
    if zipped:
        params["zip"] = "true"
    first, etag = _read_some(env, params, 5 * MB + 7)
    r = env.ids.get_data({"Range": f"bytes={len(first)}-", "If-Range": etag}, **params)
    assert r.status_code == 206, r.text[:200]
    whole = first + r.content
    assert r.headers["content-range"].endswith(f"/{len(whole)}")
    content = zipfile.ZipFile(io.BytesIO(whole)).read(zipfile.ZipFile(
        io.BytesIO(whole)).namelist()[0]) if zipped else whole
    # Checked against the CRC32 the catalogue recorded at upload.
    assert format(zlib.crc32(content), "x") == env.rest.get("Datafile", df)["checksum"]
    assert content == data


def test_concurrent_downloads_agree(env: Env) -> None:
    ds = env.rest.create("Dataset", name=uniq("conc"), investigation={"id": env.fx.inv_a},
                         type={"id": env.rest.search(
                             "SELECT t.id FROM DatasetType t WHERE t.facility.id = "
                             f"{env.fx.facility}")[0]})
    files = {f"f{i}.dat": os.urandom(300_000 + i) for i in range(8)}
    for name, data in files.items():
        env.ids.ok_put(env.jdoe, ds, name, data, env.fx.fmt)

    def fetch(i: int) -> bytes:
        with httpx.Client(base_url=env.server.url, timeout=60) as c:
            params = {"sessionId": env.jdoe, "datasetIds": ds}
            if i % 3 == 2:
                params["compress"] = "true"
            r = c.get("/ids/getData", params=params)
            assert r.status_code == 200
            return r.content

    with ThreadPoolExecutor(12) as pool:
        bodies = list(pool.map(fetch, range(24)))
    stored = {b for i, b in enumerate(bodies) if i % 3 != 2}
    assert len(stored) == 1  # deterministic: the same bytes every time
    for body in bodies:
        z = zipfile.ZipFile(io.BytesIO(body))
        assert {n.rsplit("/", 1)[1]: z.read(n) for n in z.namelist()} == files


def test_memory_stays_flat(env: Env) -> None:
    """A 64 MB upload and downloads of it (raw, zipped, compressed) must not grow the
    server's peak RSS by more than a few read-ahead buffers."""
    size = 64 * MB
    data = os.urandom(MB) * 64

    def body() -> Iterator[bytes]:
        for i in range(0, size, MB):
            yield data[i:i + MB]

    baseline = env.rss_peak_kb()
    r = env.server.http.put(_put_target(env, uniq("flat")), content=body())
    assert r.status_code == 201, r.text
    df = r.json()["id"]
    for extra in ({}, {"zip": "true"}, {"zip": "true", "compress": "true"}):
        n = 0
        with env.server.http.stream("GET", "/ids/getData", params={
                "sessionId": env.jdoe, "datafileIds": df, **extra}) as resp:
            for chunk in resp.iter_raw(MB):
                n += len(chunk)
        assert n >= size
    grown_mb = (env.rss_peak_kb() - baseline) / 1024
    assert grown_mb < 40, f"peak RSS grew by {grown_mb:.0f} MB"


def test_abandoned_download_releases_the_reader(env: Env) -> None:
    data = os.urandom(8 * MB)
    df = env.ids.ok_put(env.jdoe, env.fx.ds_a1, uniq("gone"), data, env.fx.fmt)
    for _ in range(20):
        _read_some(env, {"sessionId": env.jdoe, "datafileIds": df}, 100_000)
    # Twenty abandoned streams later, the server still answers promptly and fully.
    r = env.ids.get_data(sessionId=env.jdoe, datafileIds=df)
    assert r.content == data
    threads = Path(f"/proc/{env.server.proc.pid}/status").read_text()
    count = int(next(line.split()[1] for line in threads.splitlines()
                     if line.startswith("Threads:")))
    assert count < 60


def test_many_stalled_uploads_do_not_stall_the_server(env: Env) -> None:
    """Uploads wait for their bodies on threads of their own, not on the shared worker pool
    (40 threads): fifty clients that stop sending mid-body leave everyone else served."""
    mark = _mark(env)
    socks = []
    try:
        for i in range(50):
            s = _raw(env.server)
            s.sendall((f"PUT {_put_target(env, uniq(f'stall{i}'))} HTTP/1.1\r\nHost: x\r\n"
                       f"Content-Length: {10 * MB}\r\n\r\n").encode() + b"x" * 1000)
            socks.append(s)
        # Every upload has begun storing (its temporary file is open) and waits for the rest
        # of its body: were they holding workers of the shared pool, the pool is full now.
        wait_until(lambda: len(set(env.temporaries()) - mark.stored) >= 50, 60,
                   "all 50 stalled uploads to open their temporary files",
                   detail=lambda: f"{len(set(env.temporaries()) - mark.stored)} did")
        t = time.monotonic()
        with httpx.Client(base_url=env.server.url, timeout=20) as c:
            assert c.get("/icat/version").status_code == 200
            assert c.get("/ids/getSize", params={"sessionId": env.jdoe,
                                                 "datasetIds": env.fx.ds_a2}).text == "0"
        assert time.monotonic() - t < 10
        env.ids.ok_put(env.jdoe, env.fx.ds_a1, uniq("still"), b"served", env.fx.fmt)
        # What must remain: all but the stalled uploads' temporary files.
        mark = Mark(mark.gone, {p for p in env.stored() if not p.startswith(SCRATCH)},
                    env.datafiles())
    finally:
        for s in socks:
            s.close()
    _settled(env, mark, cut=50)


def test_a_refused_upload_reads_the_body_before_answering(env: Env) -> None:
    """A client sends its whole body before it reads the answer, on a connection it asked to
    close (python-icat's put does): the error must reach it, instead of the connection being
    closed under the body still being sent (a broken pipe on the client).

    The body goes out only once the server has refused the upload. The request says
    ``Expect: 100-continue``, so the server's ``100 Continue`` is the observable sign that it
    has decided and started reading the body, where a server answering at once would send
    its 400 first. (Sending the body then, without waiting for the 400, is what a client
    that ignores the interim answer, as python-icat's does, would do.)"""
    mark = _mark(env)
    block = b"x" * 8192
    with _raw(env.server) as s:
        s.settimeout(30)
        s.sendall((f"PUT {_put_target(env, '../escape')} HTTP/1.1\r\nHost: x\r\n"
                   "Connection: close\r\nExpect: 100-continue\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n").encode())
        try:
            interim, rest = _read_head(s, b"")
        except TimeoutError:
            pytest.fail("no answer within 30 s to a refused upload's headers (expected "
                        "100 Continue once the server reads the body)")
        assert interim.startswith(b"HTTP/1.1 100"), \
            f"the server answered before reading the refused upload's body: {interim[:100]!r}"
        for _ in range(25):
            s.sendall(f"{len(block):x}\r\n".encode() + block + b"\r\n")
        s.sendall(b"0\r\n\r\n")
        reply = _read_response(s, rest)
        assert reply.startswith(b"HTTP/1.1 400"), reply[:100]
        assert b"BadRequestException" in reply
    _settled(env, mark)


def _read_head(s: socket.socket, data: bytes) -> tuple[bytes, bytes]:
    """An answer's status line and headers (``data`` is what was read already), and the
    bytes read past them."""
    while b"\r\n\r\n" not in data:
        more = s.recv(65536)
        assert more, f"connection closed before a whole answer head: {data[:200]!r}"
        data += more
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _read_response(s: socket.socket, data: bytes = b"") -> bytes:
    head, rest = _read_head(s, data)
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    while len(rest) < length:
        more = s.recv(65536)
        assert more, f"connection closed {length - len(rest)} bytes before the body's end"
        rest += more
    return head + b"\r\n\r\n" + rest
