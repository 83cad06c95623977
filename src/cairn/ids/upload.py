"""``put``'s storage half: a request body into storage at a new location, and the answer.

The endpoint's order (ids.server's, §1.3): validate parameters, read the dataset, then
``location, result = await upload_async(storage, inv_id, ds_id, request.stream())``, create
the Datafile (location with hash if a key is set, ``fileSize = result.size``,
``checksum = result.checksum``); if that fails, ``storage.delete(location)``. Answer 201 with
:func:`put_answer`. A body that fails or is cut off mid-way raises out of ``upload_async``
and leaves nothing in storage.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Iterator
from typing import Any

import anyio.from_thread
import anyio.to_thread

from cairn.ids.checksum import PutResult
from cairn.ids.locations import new_location
from cairn.ids.storage import CHUNK_SIZE, Storage


def upload(storage: Storage, investigation_id: int, dataset_id: int,
           chunks: Iterable[bytes]) -> tuple[str, PutResult]:
    """Store a new file for a dataset; return its location, size and CRC32."""
    location = new_location(investigation_id, dataset_id)
    return location, storage.put(location, chunks)


async def upload_async(storage: Storage, investigation_id: int, dataset_id: int,
                       chunks: AsyncIterable[bytes], *,
                       chunk_size: int = CHUNK_SIZE) -> tuple[str, PutResult]:
    """:func:`upload` for an async body (an ASGI request stream).

    The blocking put runs in a worker thread that pulls the body from the event loop,
    ``chunk_size`` bytes at a time (one thread hop per MiB, not per network packet), so at
    most one chunk is in flight: memory stays flat and a slow disk slows the client down
    instead of filling a buffer.
    """
    location = new_location(investigation_id, dataset_id)
    body = _rechunk(chunks, chunk_size)
    try:
        result = await anyio.to_thread.run_sync(lambda: storage.put(location, _pull(body)))
    finally:
        await body.aclose()  # also when storage failed before reading it all
    return location, result


async def _rechunk(chunks: AsyncIterable[bytes], size: int) -> AsyncGenerator[bytes, None]:
    buf = bytearray()
    async for chunk in chunks:
        buf += chunk
        if len(buf) >= size:
            yield bytes(buf)
            buf.clear()
    if buf:
        yield bytes(buf)


def _pull(chunks: AsyncGenerator[bytes, None]) -> Iterator[bytes]:
    """Iterate an async iterator from a worker thread started by anyio."""
    while True:
        try:
            chunk = anyio.from_thread.run(chunks.__anext__)
        except StopAsyncIteration:
            return
        yield chunk


def put_answer(datafile_id: int, location: str, result: PutResult) -> dict[str, Any]:
    """The JSON of ids.server's 201 answer to ``put``: the CRC32 as a decimal number (which
    python-icat compares with its own) and the bare location with ``\\`` and ``'``
    backslash-escaped, as ids.server writes it."""
    escaped = location.replace("\\", "\\\\").replace("'", "\\'")
    return {"id": datafile_id, "checksum": result.crc32, "location": escaped,
            "size": result.size}
