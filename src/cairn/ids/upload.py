"""``put``'s storage half: a body into storage at a new location, and the answer.

The endpoint's order (ids.server's, §1.3): validate parameters, read the dataset, then
``location, result = upload(storage, inv_id, ds_id, chunks)`` (the HTTP adapter runs it on a
thread of its own, fed with the request body: :func:`cairn.web.upload_stream.store_body`
through :meth:`cairn.ids.service.DataService.put_store`),
create the Datafile (location with hash if a key is set, ``fileSize = result.size``,
``checksum = result.checksum``); if that fails, ``storage.delete(location)``. Answer 201 with
:func:`put_answer`. A body that fails or is cut off mid-way raises out of :func:`upload`
and leaves nothing in storage.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cairn.ids.checksum import PutResult
from cairn.ids.locations import new_location
from cairn.ids.storage import Storage


def upload(storage: Storage, investigation_id: int, dataset_id: int,
           chunks: Iterable[bytes], location: str | None = None) -> tuple[str, PutResult]:
    """Store a new file for a dataset (at ``location`` if the caller chose it, as the data
    service does to note it beforehand); return its location, size and CRC32."""
    location = location or new_location(investigation_id, dataset_id)
    return location, storage.put(location, chunks)


def put_answer(datafile_id: int, location: str, result: PutResult) -> dict[str, Any]:
    """The JSON of ids.server's 201 answer to ``put``: the CRC32 as a decimal number (which
    python-icat compares with its own) and the bare location with ``\\`` and ``'``
    backslash-escaped, as ids.server writes it."""
    escaped = location.replace("\\", "\\\\").replace("'", "\\'")
    return {"id": datafile_id, "checksum": result.crc32, "location": escaped,
            "size": result.size}
