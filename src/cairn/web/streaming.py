"""Download answers of the data service that stream with bounded memory, and stop reading
at once when the client goes away.

A single file on local storage is read on the event loop while its pages are in memory, and
by a worker thread only when the disk must be waited for (:class:`FileSpanResponse`,
:mod:`cairn.ids.filespan`). Other downloads (zips, S3) stream from a dedicated thread per
response that reads ahead a few chunks (:class:`StreamResponse`): disk and network overlap.
Either way memory stays at a few MiB per download.

Both count the body bytes handed to the client and, when given ``on_sent``, report them once
at the end of the response (or when the client went away): ``on_sent(sent, complete)``. A
byte counts once ``send`` has returned with the connection still open; bytes still in the
kernel's socket buffer when the client goes away count as sent (TCP tells no more).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import anyio
import anyio.to_thread
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from cairn.errors import IcatError
from cairn.ids.filespan import FileSpan

log = logging.getLogger(__name__)

#: Chunks a body's reader thread may be ahead of the network (a download's), or the network
#: ahead of the storage thread (an upload's, :mod:`cairn.web.upload_stream`).
READ_AHEAD = 4
#: Threads for the chunks of single-file downloads that must wait for the disk: their own,
#: so that slow storage cannot take the shared worker pool that every request needs.
DISK_READERS = 8
_disk_readers: ThreadPoolExecutor | None = None


#: Told, once per response, how many body bytes went out and whether that was all of them.
SentListener = Callable[[int, bool], None]


async def release(fn: Callable[[], None]) -> None:
    """Run a lock release (database work in two-level storage) off the event loop, even
    while the request is being cancelled."""
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(fn)


class StreamResponse(Response):
    """Headers, then blocking chunks read ahead by a thread of their own.

    A dedicated thread (not the shared worker pool, which long downloads would exhaust) runs
    the iterator and hands at most :data:`READ_AHEAD` chunks to the event loop. The loop sends
    them and listens for the client going away, which stops the thread at its next chunk.
    A failure after the headers aborts the connection, so the client sees a short body
    rather than a complete-looking corrupt one.
    """

    def __init__(self, status: int, headers: Mapping[str, str], chunks: Iterator[bytes] | None,
                 on_close: Callable[[], None] | None = None,
                 on_sent: SentListener | None = None) -> None:
        # Not Response.__init__: it would add "content-length: 0" to a body of unknown length.
        self.status_code = status
        self.background = None
        self.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1"))
                            for k, v in headers.items()]
        self.chunks = chunks
        self.on_close = on_close
        self.on_sent = on_sent
        #: Body bytes handed to the client so far, and whether that is the whole body.
        self.sent = 0
        self.complete = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": self.raw_headers})
            if self.chunks is None:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await self._pump(self.chunks, receive, send)
        finally:
            try:
                if self.on_close is not None:
                    await release(self.on_close)
            finally:
                await _report(self.on_sent, self.sent, self.complete)

    async def _pump(self, chunks: Iterator[bytes], receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        room = threading.Semaphore(READ_AHEAD)
        stop = threading.Event()
        done = object()

        def produce() -> None:
            try:
                for chunk in chunks:
                    while not room.acquire(timeout=0.5):
                        if stop.is_set():
                            return
                    if stop.is_set():
                        return
                    loop.call_soon_threadsafe(queue.put_nowait, chunk)
                loop.call_soon_threadsafe(queue.put_nowait, done)
            except BaseException as e:  # handed to the loop, which aborts the response
                if not stop.is_set():
                    with contextlib.suppress(RuntimeError):  # loop already closed
                        loop.call_soon_threadsafe(queue.put_nowait, e)
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    with contextlib.suppress(Exception):
                        close()

        reader = threading.Thread(target=produce, name="ids-download", daemon=True)
        reader.start()
        watcher = asyncio.ensure_future(_gone(receive))
        try:
            while True:
                item = queue.get_nowait() if not queue.empty() else None
                if item is None:
                    getter = asyncio.ensure_future(queue.get())
                    finished, _ = await asyncio.wait({getter, watcher},
                                                     return_when=asyncio.FIRST_COMPLETED)
                    if getter not in finished:
                        getter.cancel()
                        log.info("download abandoned by the client")
                        return
                    item = getter.result()
                room.release()
                if item is done:
                    self.complete = True
                    await send({"type": "http.response.body", "body": b"",
                                "more_body": False})
                    return
                if isinstance(item, BaseException):
                    message = item.message if isinstance(item, IcatError) else repr(item)
                    log.error("download aborted after the headers were sent: %s", message)
                    raise _Aborted(message)
                await send({"type": "http.response.body", "body": item, "more_body": True})
                if not await _still_there(watcher):
                    log.info("download abandoned by the client")
                    return
                self.sent += len(item)
        finally:
            stop.set()
            watcher.cancel()


class FileSpanResponse(Response):
    """Headers, then a span of a local file: chunks in the page cache are read and sent on
    the event loop, the others read by a disk thread (:mod:`cairn.ids.filespan`).

    No read-ahead queue is needed: ``send`` waits while the socket's buffer is full, so one
    chunk at a time is in memory. The loop listens for the client going away between chunks.
    A failure after the headers aborts the connection (see :class:`StreamResponse`).
    """

    def __init__(self, status: int, headers: Mapping[str, str], span: FileSpan,
                 on_close: Callable[[], None] | None = None,
                 on_sent: SentListener | None = None) -> None:
        self.status_code = status
        self.background = None
        self.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1"))
                            for k, v in headers.items()]
        self.span = span
        self.on_close = on_close
        self.on_sent = on_sent
        self.sent = 0
        self.complete = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        span = self.span
        pending: Future[bytes] | None = None
        try:
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": self.raw_headers})
            watcher = asyncio.ensure_future(_gone(receive))
            try:
                while span.remaining > 0:
                    if watcher.done():
                        log.info("download abandoned by the client")
                        return
                    data = span.read_cached()
                    if data is None:
                        pending = _disk_pool().submit(span.read)
                        data = await asyncio.wrap_future(pending)
                        pending = None
                    await send({"type": "http.response.body", "body": data,
                                "more_body": True})
                    if not await _still_there(watcher):
                        log.info("download abandoned by the client")
                        return
                    self.sent += len(data)
                self.complete = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except Exception as e:
                message = e.message if isinstance(e, IcatError) else repr(e)
                log.error("download aborted after the headers were sent: %s", message)
                raise _Aborted(message) from e
            finally:
                watcher.cancel()
        finally:
            if pending is not None:
                # Cancelled while a disk thread reads: the file is closed once it is done
                # (at once if it is already).
                pending.add_done_callback(lambda _: span.close())
            else:
                span.close()
            try:
                if self.on_close is not None:
                    await release(self.on_close)
            finally:
                await _report(self.on_sent, self.sent, self.complete)


def _disk_pool() -> ThreadPoolExecutor:
    global _disk_readers
    if _disk_readers is None:
        _disk_readers = ThreadPoolExecutor(DISK_READERS, thread_name_prefix="ids-disk-read")
    return _disk_readers


async def _report(on_sent: SentListener | None, sent: int, complete: bool) -> None:
    """Tell ``on_sent`` what went out (off the loop, even while the request is cancelled);
    nothing to tell when not a byte went out of a body that had some."""
    if on_sent is not None and (sent or complete):
        await release(lambda: on_sent(sent, complete))


async def _still_there(watcher: asyncio.Future[None]) -> bool:
    """Whether the client is still there after a send, i.e. whether the chunk went out.

    A send on a connection that has just failed returns without yielding (the server drops
    the chunk), and the server learns of the failure in a callback: without yielding here, a
    chunk-after-chunk loop would "send" the rest of the body to nobody. Yield twice: once for
    the server's connection_lost to run, once for the watcher to hear of it."""
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    return not watcher.done()


async def _gone(receive: Receive) -> None:
    """Returns once the client has gone away."""
    while (await receive())["type"] != "http.disconnect":
        pass


class _Aborted(Exception):
    """Raised to the server after the headers: it then drops the connection."""

