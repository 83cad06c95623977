"""Makes a real ``cairn serve`` stop at chosen points of the data service's work, so that a
test can kill it there with SIGKILL (test_crash_cleanup.py).

``CAIRN_CRASH_AT=<point>``: on reaching the point the process logs ``CRASH-POINT <point>``
and waits (for the kill). ``CAIRN_CRASH_SLOW=<seconds>``: every point, and every chunk that
main or archive storage writes, takes that long, so that a kill at a random moment lands
anywhere inside an operation. The points, in the order an operation passes them:

- ``put.body``: a put's body is half stored (a temporary file in main storage);
- ``put.stored``: the file is at its location, its Datafile not yet committed;
- ``put.committed``: the Datafile is committed, the put not yet over;
- ``delete.noted``: a delete's locations are noted, its commit not yet made;
- ``delete.committed``: the Datafiles are deleted, their files not yet;
- ``archive.write``: a job writes a dataset's zip to the archive (a temporary file there);
- ``restore.unpack``: a job unpacks a restored zip (in the cache) onto main storage.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from cairn.ids.checksum import PutResult
from cairn.ids.storage import Storage

log = logging.getLogger("cairn.tests.crash")

AT = os.environ.get("CAIRN_CRASH_AT", "")
SLOW = float(os.environ.get("CAIRN_CRASH_SLOW", "0") or 0)


def point(name: str) -> None:
    if name == AT:
        log.warning("CRASH-POINT %s", name)
        time.sleep(3600)  # until the test kills the process
    elif SLOW:
        time.sleep(SLOW)


def _chunks(chunks: Iterable[bytes], name: str) -> Iterator[bytes]:
    for i, chunk in enumerate(chunks):
        if i == 1:  # the first chunk is written: the temporary file holds part of the body
            point(name)
        elif SLOW:
            time.sleep(SLOW)
        yield chunk


def _slow_puts(storage: Storage, name_of: Callable[[], str | None]) -> None:
    put = storage.put

    def slow_put(location: str, chunks: Iterable[bytes]) -> PutResult:
        name = name_of()
        return put(location, _chunks(chunks, name) if name else chunks)

    storage.put = slow_put  # type: ignore[method-assign]


def _thread() -> str:
    return threading.current_thread().name


def setup(cairn: Any) -> None:
    data = cairn.data
    main = data.main
    _slow_puts(main, lambda: "put.body" if _thread() == "ids-upload" else
               "restore.unpack" if _thread().startswith("cairn-job") else None)
    if data.twolevel is not None:
        _slow_puts(data.twolevel.archive, lambda: "archive.write")

    put_commit = data.put_commit

    def commit(*args: Any) -> Any:
        point("put.stored")
        answer = put_commit(*args)
        point("put.committed")
        return answer

    data.put_commit = commit

    write_note = main.write_note

    def note(name: str, body: bytes) -> None:
        write_note(name, body)
        if name.endswith(".delete"):
            point("delete.noted")

    main.write_note = note

    remove = data._remove_deleted

    def delete_files(*args: Any) -> bool:
        point("delete.committed")
        return bool(remove(*args))

    data._remove_deleted = delete_files
