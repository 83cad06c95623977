"""``put``'s request body into storage, streamed with bounded memory (:func:`store_body`)."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

import anyio

from cairn.ids.checksum import PutResult
from cairn.ids.storage import CHUNK_SIZE
from cairn.web.streaming import READ_AHEAD

#: The blocking half: stores the chunks it is given (``DataService.put_store`` of a plan).
Store = Callable[[Iterable[bytes]], tuple[str, PutResult]]


class _BodyGone(Exception):
    """The request body ended early (client gone, bad framing): abort the storage put."""


async def store_body(store: Store, body: AsyncIterator[bytes]) -> tuple[str, PutResult]:
    """``store`` (a storage put: :func:`cairn.ids.upload.upload`) of a request body, on a
    thread of its own.

    The blocking put does not occupy a worker of the shared pool for the whole upload (forty
    slow uploads would otherwise stall every other request). The loop gathers the body into
    chunks of :data:`~cairn.ids.storage.CHUNK_SIZE` (one thread hop per MiB, not per network
    packet) and hands them to the thread at most :data:`~cairn.web.streaming.READ_AHEAD`
    ahead of the disk: memory stays flat, and a slow disk slows the client down. If the body
    fails, the thread's put is aborted and this waits until storage has cleaned up, so
    nothing of the upload remains when the error propagates. If storage fails first, the
    rest of the body is not read and storage's error propagates.
    """
    loop = asyncio.get_running_loop()
    handoff: queue.SimpleQueue[Any] = queue.SimpleQueue()
    room = asyncio.Semaphore(READ_AHEAD)
    done: asyncio.Future[tuple[str, PutResult]] = loop.create_future()

    def settle(fn: Callable[[Any], None], value: Any) -> None:
        if not done.done():
            fn(value)

    def chunks() -> Iterator[bytes]:
        while True:
            item = handoff.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            loop.call_soon_threadsafe(room.release)
            yield item

    def run() -> None:
        try:
            out = store(chunks())
            loop.call_soon_threadsafe(settle, done.set_result, out)
        except BaseException as e:
            loop.call_soon_threadsafe(settle, done.set_exception, e)

    async def give(item: Any) -> None:
        if item is not None and not isinstance(item, BaseException) and room.locked():
            # Wait for room, unless storage has stopped (failed) and will never make any.
            waiting = asyncio.ensure_future(room.acquire())
            either: set[asyncio.Future[Any]] = {waiting, done}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if not waiting.done():
                waiting.cancel()
                return
        elif item is not None and not isinstance(item, BaseException):
            await room.acquire()
        handoff.put(item)

    threading.Thread(target=run, name="ids-upload", daemon=True).start()
    try:
        buf = bytearray()
        async for piece in body:
            if done.done():  # storage gave up early: stop reading
                break
            buf += piece
            if len(buf) >= CHUNK_SIZE:
                await give(bytes(buf))
                buf.clear()
        if buf:
            await give(bytes(buf))
        handoff.put(None)
    except BaseException as e:
        handoff.put(_BodyGone(repr(e)))
        with anyio.CancelScope(shield=True), contextlib.suppress(BaseException):
            await done  # storage removes the partial file before we go on
        raise
    return await done
