"""Delivery confirmed, over real HTTP on every backend: a prepared download fetched in pieces
(bounded ranges, and connections dropped mid-stream then resumed with ``Range: bytes=N-``)
reassembles to exactly the zip, and its row says DELIVERED, with every byte counted once,
only when the last missing byte has gone out."""

from __future__ import annotations

import io
import json
import os
import socket
import struct
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from cairn.config import DownloadSettings
from cairn.db.engine import Database
from cairn.db.tables import TABLES
from cairn.downloads.delivery import Delivery, merge
from cairn.downloads.model import Status
from tests.conftest import BACKENDS
from tests.integration.ids_support import Fixture, Ids, build, start, uniq
from tests.integration.server import Server
from tests.waiting import wait_until

MB = 1 << 20
DOWNLOAD = TABLES.downloads.download


@dataclass
class Env:
    server: Server
    fx: Fixture
    ids: Ids
    jdoe: str
    db: Database

    def prepare(self, data: list[bytes], **options: str) -> str:
        ids = [self.ids.ok_put(self.jdoe, self.fx.ds_a1, uniq("part"), d, self.fx.fmt)
               for d in data]
        r = self.ids.post("prepareData", sessionId=self.jdoe,
                          datafileIds=",".join(map(str, ids)), **options)
        assert r.status_code == 200, r.text
        return r.text

    def download(self, prepared_id: str, status: Status = Status.COMPLETE,
                 email: str | None = None) -> int:
        """A download row as the download manager would have made it."""
        with self.db.begin() as conn:
            key = conn.execute(insert(DOWNLOAD).values(
                facility=self.fx.facility_name, user="simple/jdoe", transport="https",
                file_name="run", prepared_id=prepared_id, email=email, is_email_sent=False,
                status=status.value, priority=1, size=0, is_two_level=False,
                created=self.db.now(), is_deleted=False, bytes_sent=0)).inserted_primary_key
        assert key is not None
        return int(key[0])

    def row(self, download_id: int) -> Any:
        with self.db.connect() as conn:
            return conn.execute(select(DOWNLOAD).where(DOWNLOAD.c.id == download_id)).one()

    def spans(self, download_id: int) -> list[list[int]]:
        text = self.row(download_id).sent_ranges
        return json.loads(text) if text else []

    def await_spans(self, download_id: int, ok: Any, what: str) -> list[list[int]]:
        """Wait for the server's report of a response (sent once the response is over)."""
        return wait_until(lambda: (s := self.spans(download_id)) and ok(s) and s, 30, what,
                          detail=lambda: f"{self.spans(download_id)}; log tail:\n"
                          f"{self.server.log_text()[-2000:]}")


@pytest.fixture(scope="module", params=BACKENDS)
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp(f"delivery-{request.param}")
    srv, drop = start(tmp, str(request.param))
    db = Database(srv.db_url)
    try:
        yield Env(srv, build(srv), Ids(srv), srv.login("jdoe"), db)
    finally:
        db.dispose()
        srv.stop()
        drop()


def _range(env: Env, prepared_id: str, spec: str) -> tuple[bytes, int]:
    """One complete ranged getData: its body and the zip's length."""
    r = env.ids.get_data({"Range": f"bytes={spec}"}, preparedId=prepared_id)
    assert r.status_code == 206, r.text[:300]
    return r.content, int(r.headers["content-range"].rpartition("/")[2])


def _read_and_drop(env: Env, prepared_id: str, start: int, limit: int) -> bytes:
    """getData from ``start`` (``Range: bytes=<start>-``), read ``limit`` body bytes, then
    reset the connection. A small receive buffer keeps what the kernel takes on the client's
    behalf small, so the server has sent only a few MB more when it notices."""
    host, port = env.server.url.removeprefix("http://").split(":")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    s.settimeout(30)
    s.connect((host, int(port)))
    ranged = f"Range: bytes={start}-\r\n" if start else ""
    try:
        s.sendall(f"GET /ids/getData?preparedId={prepared_id} HTTP/1.1\r\nHost: {host}\r\n"
                  f"{ranged}\r\n".encode())
        raw = _Reader(s)
        head = raw.until(b"\r\n\r\n")
        assert head.split(b" ")[1] == (b"206" if start else b"200"), head
        body = bytearray()
        chunked = b"transfer-encoding: chunked" in head.lower()
        while len(body) < limit:
            if chunked:  # a body of unknown length (a compressed zip)
                size = int(raw.until(b"\r\n"), 16)
                assert size, "the body ended first"
                body += raw.take(size)
                raw.take(2)
            else:
                body += raw.take(min(65536, limit - len(body)))
        # RST rather than FIN: the connection is gone at once, as a killed client's is.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        s.close()
    return bytes(body[:limit])


class _Reader:
    def __init__(self, s: socket.socket) -> None:
        self.s = s
        self.buf = b""

    def _more(self) -> None:
        more = self.s.recv(65536)
        assert more, "the server closed the connection first"
        self.buf += more

    def until(self, mark: bytes) -> bytes:
        while mark not in self.buf:
            self._more()
        out, _, self.buf = self.buf.partition(mark)
        return out

    def take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._more()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def test_spans_merge_once_each() -> None:
    assert merge([], (5, 9)) == [(5, 9)]
    assert merge([(0, 4)], (4, 6)) == [(0, 6)]  # touching joins
    assert merge([(0, 4), (8, 10)], (2, 9)) == [(0, 10)]
    assert merge([(0, 4), (8, 10)], (5, 6)) == [(0, 4), (5, 6), (8, 10)]
    assert merge([(0, 4)], (1, 3)) == [(0, 4)]
    assert merge([(0, 4)], (7, 7)) == [(0, 4)]  # empty adds nothing
    assert merge([(2, 4)], (0, 1)) == [(0, 1), (2, 4)]


def test_interrupted_three_times_then_delivered_with_the_exact_bytes(env: Env) -> None:
    data = [os.urandom(12 * MB + 17), os.urandom(12 * MB + 4099)]
    pid = env.prepare(data, zip="true")
    dl = env.download(pid)

    # 1: the first MB, as a bounded range.
    a = MB
    first, length = _range(env, pid, f"0-{a - 1}")
    assert env.await_spans(dl, lambda s: s == [[0, a]], "the first range to count") \
        == [[0, a]]
    row = env.row(dl)
    assert (row.length, row.bytes_sent, row.status, row.delivered) == \
        (length, a, "COMPLETE", None)

    # 2: resumed from half-way into what it has (overlapping), dropped after 2 MB.
    b = a // 2
    second = _read_and_drop(env, pid, b, 2 * MB)
    got = b + len(second)
    (span,) = env.await_spans(dl, lambda s: s[0][1] > a, "the dropped stream to count")
    m2 = span[1]
    assert span[0] == 0 and got <= m2 < length - 8 * MB  # what went out, not the whole
    assert env.row(dl).bytes_sent == m2  # the overlap counted once

    # 3: the tail, as a bounded range: the last byte is out, but not every byte.
    p = length - MB
    third, _ = _range(env, pid, f"{p}-{length - 1}")
    spans = env.await_spans(dl, lambda s: len(s) == 2, "the tail to count")
    assert spans == [[0, m2], [p, length]]
    row = env.row(dl)
    assert (row.bytes_sent, row.status, row.delivered) == (m2 + MB, "COMPLETE", None)

    # 4: resumed where the client's bytes end, dropped again 2 MB past what step 2 sent.
    fourth = _read_and_drop(env, pid, got, m2 - got + 2 * MB)
    got4 = got + len(fourth)
    spans = env.await_spans(dl, lambda s: s[0][1] >= got4, "the second dropped stream")
    assert spans[0][0] == 0 and spans[1] == [p, length] and spans[0][1] < p
    assert env.row(dl).status == "COMPLETE"

    # 5: the rest, up to the tail it already has.
    fifth, _ = _range(env, pid, f"{got4}-{p - 1}")
    wait_until(lambda: env.row(dl).status == "DELIVERED", 30, "the download to be DELIVERED")
    row = env.row(dl)
    assert (row.bytes_sent, row.length) == (length, length)
    assert env.spans(dl) == [[0, length]]
    assert row.delivered is not None
    delivered = row.delivered

    # Reassembled from the pieces the client kept; overlapping pieces agree.
    whole = bytearray(length)
    have: list[tuple[int, int]] = []
    for at, piece in ((0, first), (b, second), (p, third), (got, fourth), (got4, fifth)):
        end = at + len(piece)
        for s, e in have:
            lo, hi = max(s, at), min(e, end)
            if lo < hi:
                assert whole[lo:hi] == piece[lo - at:hi - at]
        whole[at:end] = piece
        have = merge(have, (at, end))
    assert have == [(0, length)]

    # Exactly the zip a whole getData gives, and the zip of the files put.
    time.sleep(1.1)  # a later "delivered" time would be visible (times are in seconds)
    watcher = env.download(pid, Status.PAUSED)  # counts the next response, stays PAUSED
    r = env.ids.get_data(preparedId=pid)
    assert r.status_code == 200 and int(r.headers["content-length"]) == length
    assert r.content == bytes(whole)
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        assert [z.read(n) for n in z.namelist()] == data
    env.await_spans(watcher, lambda s: s == [[0, length]], "the full download to count")
    assert env.row(watcher).status == "PAUSED"  # delivered only from COMPLETE
    row = env.row(dl)
    assert (row.status, row.delivered, row.bytes_sent) == ("DELIVERED", delivered, length)


def test_the_same_zip_on_every_request(env: Env) -> None:
    """What resuming relies on: a prepared zip has one length, one ETag and one content."""
    pid = env.prepare([os.urandom(300_000), b"", os.urandom(5)], zip="true")
    answers = [env.ids.get_data(preparedId=pid) for _ in range(2)]
    assert all(r.status_code == 200 for r in answers)
    assert answers[0].content == answers[1].content
    assert answers[0].headers["etag"] == answers[1].headers["etag"]
    assert int(answers[0].headers["content-length"]) == len(answers[0].content)


@pytest.mark.parametrize("kind", ["single file", "compressed zip"])
def test_other_bodies_are_delivered_too(env: Env, kind: str) -> None:
    """A prepared single file (sent from the page cache) and a compressed zip (length
    unknown until its stream ends; resumed ids.server-style, regenerated and skipped)."""
    data = os.urandom(12 * MB + 5)
    if kind == "single file":
        pid = env.prepare([data], zip="false")
    else:
        pid = env.prepare([data, os.urandom(1000)], zip="true", compress="true")
    dl = env.download(pid)
    head = _read_and_drop(env, pid, 0, 100_000)
    env.await_spans(dl, lambda s: s[0][1] >= len(head), "the dropped stream to count")
    assert env.row(dl).status == "COMPLETE"
    r = env.ids.get_data({"Range": f"bytes={len(head)}-"}, preparedId=pid)
    assert r.status_code == 206
    whole = head + r.content
    if kind == "single file":
        assert whole == data
    else:
        with zipfile.ZipFile(io.BytesIO(whole)) as z:
            assert z.read(z.namelist()[0]) == data
    wait_until(lambda: env.row(dl).status == "DELIVERED", 30, "the download to be DELIVERED")
    row = env.row(dl)
    assert row.length == row.bytes_sent == len(whole)


def test_concurrent_reports_lose_no_span(env: Env) -> None:
    """Twenty range requests of one download reported at once: every span is kept, and the
    download becomes DELIVERED exactly once."""
    pid = str(uuid.uuid4())
    dl = env.download(pid)
    delivery = Delivery(env.db, DownloadSettings())
    went: list[int] = []
    gate = threading.Barrier(20)

    def report(i: int) -> None:
        gate.wait()
        went.extend(delivery.record(pid, i * 100, (i + 1) * 100 + 10, 2000))

    threads = [threading.Thread(target=report, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert went == [dl]
    row = env.row(dl)
    assert (row.status, row.bytes_sent) == ("DELIVERED", 2000)
    assert env.spans(dl) == [[0, 2000]]


def test_deleted_and_expired_downloads(env: Env) -> None:
    pid = str(uuid.uuid4())
    gone, expired = env.download(pid), env.download(pid, Status.EXPIRED)
    with env.db.begin() as conn:
        conn.execute(update(DOWNLOAD).where(DOWNLOAD.c.id == gone).values(is_deleted=True))
    Delivery(env.db, DownloadSettings()).record(pid, 0, 10, 10)
    assert env.row(gone).sent_ranges is None
    row = env.row(expired)
    assert (row.status, row.bytes_sent, row.delivered) == ("EXPIRED", 10, None)
