"""Single-file downloads from local storage: FileSpan reads (page cache on the event loop,
else a disk thread) and FileSpanResponse over a fake ASGI connection."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from cairn.errors import IcatError
from cairn.ids import filespan
from cairn.ids.filespan import FileSpan
from cairn.web import streaming
from cairn.web.streaming import FileSpanResponse

DATA = bytes(range(256)) * 4099  # not a multiple of any chunk size


@pytest.fixture
def path(tmp_path: Path) -> Path:
    p = tmp_path / "f.bin"
    p.write_bytes(DATA)
    return p


def drain(span: FileSpan, cached_only: bool = False) -> bytes:
    out = bytearray()
    while span.remaining > 0:
        data = span.read_cached()
        if data is None:
            assert not cached_only
            data = span.read()
        out += data
    span.close()
    return bytes(out)


@pytest.mark.skipif(filespan._NOWAIT is None,
                    reason="os.preadv with RWF_NOWAIT is not available on this platform")
def test_a_cached_file_is_read_without_the_disk_thread(path: Path) -> None:
    path.read_bytes()  # in the page cache now
    span = FileSpan.open(path, 0, len(DATA), chunk_size=4096)
    assert drain(span, cached_only=True) == DATA
    assert span.disk_reads == 0 and span.cached_reads == -(-len(DATA) // 4096)


@pytest.mark.parametrize("start, end", [(0, len(DATA)), (1, 2), (5000, 70_001),
                                        (len(DATA) - 1, len(DATA)), (7, 7)])
def test_spans_are_exact(path: Path, start: int, end: int) -> None:
    assert drain(FileSpan.open(path, start, end, chunk_size=1000)) == DATA[start:end]


def test_without_rwf_nowait_every_chunk_goes_to_the_disk_thread(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filespan, "_NOWAIT", None)
    span = FileSpan.open(path, 10, len(DATA), chunk_size=3000)
    assert drain(span) == DATA[10:]
    assert span.cached_reads == 0 and span.disk_reads > 0


@pytest.mark.parametrize("error, falls_back", [
    (BlockingIOError(errno.EAGAIN, "would block"), True),  # not cached: this chunk only
    (OSError(errno.EOPNOTSUPP, "not supported"), False),  # never ask again
])
def test_nowait_refusals(path: Path, monkeypatch: pytest.MonkeyPatch, error: OSError,
                         falls_back: bool) -> None:
    if filespan._NOWAIT is None:
        monkeypatch.setattr(filespan, "_NOWAIT", 8)

    def refuse(*_a: Any) -> int:
        raise error

    monkeypatch.setattr(filespan.os, "preadv", refuse)
    span = FileSpan.open(path, 0, len(DATA), chunk_size=50_000)
    assert span.read_cached() is None
    assert span.nowait is falls_back
    assert drain(span) == DATA


def test_other_errors_propagate(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filespan, "_NOWAIT", 8)

    def broken(*_a: Any) -> int:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(filespan.os, "preadv", broken)
    span = FileSpan.open(path, 0, len(DATA))
    with pytest.raises(OSError, match="I/O error"):
        span.read_cached()
    span.close()


def test_a_file_that_shrinks_is_an_error_not_a_short_body(path: Path) -> None:
    span = FileSpan.open(path, 0, len(DATA), chunk_size=100_000)
    first = span.read()
    os.truncate(path, 150_000)
    assert span.read_cached() in (None, DATA[100_000:150_000])
    with pytest.raises(IcatError, match="changed size"):
        while span.remaining > 0:
            span.read()
    span.close()
    assert first == DATA[:100_000]
    span.close()  # idempotent


# -- the response over a fake ASGI connection ---------------------------------------------------


class Client:
    """Receives the response; ``gone_after`` bytes in, it says http.disconnect."""

    def __init__(self, gone_after: int | None = None) -> None:
        self.messages: list[dict[str, Any]] = []
        self.body = bytearray()
        self.gone_after = gone_after
        self.gone = asyncio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        self.body += message.get("body", b"")
        if self.gone_after is not None and len(self.body) >= self.gone_after:
            self.gone.set()
        await asyncio.sleep(0)  # as a real server yields between writes

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}


def respond(span: FileSpan, client: Client) -> list[str]:
    released: list[str] = []
    resp = FileSpanResponse(206, {"Content-Length": str(span.remaining)}, span,
                            on_close=lambda: released.append("released"))
    asyncio.run(resp(None, client.receive, client.send))  # type: ignore[arg-type]
    return released


@pytest.mark.parametrize("nowait", [True, False])
def test_response_sends_the_span(path: Path, monkeypatch: pytest.MonkeyPatch,
                                 nowait: bool) -> None:
    if not nowait:
        monkeypatch.setattr(filespan, "_NOWAIT", None)
    client = Client()
    span = FileSpan.open(path, 3, len(DATA) - 3, chunk_size=64 << 10)
    assert respond(span, client) == ["released"]
    assert client.messages[0]["status"] == 206
    assert bytes(client.body) == DATA[3:-3]
    assert client.messages[-1] == {"type": "http.response.body", "body": b"",
                                   "more_body": False}
    assert span.fd is None


def test_response_of_an_empty_span(path: Path) -> None:
    client = Client()
    assert respond(FileSpan.open(path, 0, 0), client) == ["released"]
    assert [m["type"] for m in client.messages] == ["http.response.start",
                                                    "http.response.body"]


def test_response_stops_when_the_client_goes_away(path: Path) -> None:
    client = Client(gone_after=1)
    span = FileSpan.open(path, 0, len(DATA), chunk_size=4096)
    assert respond(span, client) == ["released"]
    assert 0 < len(client.body) < len(DATA)
    assert client.messages[-1]["more_body"] is True  # never said "complete"
    assert span.fd is None


def test_response_aborts_when_the_file_shrinks(path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filespan, "_NOWAIT", None)  # every chunk read by a disk thread
    span = FileSpan.open(path, 0, len(DATA), chunk_size=100_000)
    os.truncate(path, 250_000)
    client = Client()
    with pytest.raises(streaming._Aborted, match="changed size"):
        respond(span, client)
    assert len(client.body) == 250_000  # then the server drops the connection
    assert all(m.get("more_body", True) for m in client.messages[1:])
    assert span.fd is None


def test_cancelled_during_a_disk_read_closes_the_file_after_it(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk thread still holds the descriptor: closing it under the thread could make
    its read hit whatever file gets that number next."""
    monkeypatch.setattr(filespan, "_NOWAIT", None)
    span = FileSpan.open(path, 0, len(DATA))
    reading, finish = threading.Event(), threading.Event()
    real_read = span.read

    def slow_read() -> bytes:  # a disk read that takes until the test lets it finish
        reading.set()
        assert finish.wait(30), "the test never let the slow disk read finish"
        return real_read()

    monkeypatch.setattr(span, "read", slow_read)
    client = Client()

    async def main() -> None:
        resp = FileSpanResponse(200, {}, span)
        task = asyncio.ensure_future(resp(None, client.receive, client.send))  # type: ignore[arg-type]
        started = await asyncio.get_running_loop().run_in_executor(None, reading.wait, 30)
        assert started, "the response did not start a disk read within 30 s"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert span.fd is not None  # the thread is still reading
        finish.set()
        deadline = asyncio.get_running_loop().time() + 30
        while span.fd is not None:  # closed by the disk thread once its read returns
            assert asyncio.get_running_loop().time() < deadline, \
                "the file was not closed within 30 s of the disk read finishing"
            await asyncio.sleep(0.01)

    asyncio.run(main())
    assert span.fd is None
