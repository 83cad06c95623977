"""Writing the demo's datafiles to the data service's main storage, at their locations.

On a local folder (the default) files are written directly, without a temporary file and an
fsync each: ten thousand fsyncs would cost more than the rest of the load, and the demo's
bytes can always be made again (after a crash right after loading, start the demo afresh).
Other storage (S3) gets an ordinary ``put`` per file, a few at a time.

If the load fails, :meth:`DemoFiles.abort` removes the investigation folders this load
created, so a failed demo leaves neither rows nor files (folders that existed before are left
alone, whatever they hold).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from cairn.demo.contents import Chunk
from cairn.ids.storage import Storage

_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?\s*", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}

#: Concurrent puts to a remote storage, and how many may wait for one.
REMOTE_WORKERS = 8
_REMOTE_BACKLOG = 64


class DemoFiles:
    """Writes rendered files into ``storage``; call :meth:`finish` or :meth:`abort`."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.files = 0
        self.bytes = 0
        self.seconds = 0.0
        self._created: list[str] = []  # top-level folders this load made
        self._seen: set[str] = set()
        self._dirs: set[Path] = set()
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future[object]] = []

    def write(self, location: str, chunks: Sequence[Chunk]) -> None:
        t0 = time.perf_counter()
        top = location.split("/", 1)[0]
        if top not in self._seen:
            self._seen.add(top)
            if not self.storage.folder_exists(top):
                self._created.append(top)
        path = self.storage.local_path(location)
        if path is not None:
            if path.parent not in self._dirs:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._dirs.add(path.parent)
            with open(path, "wb") as f:
                f.writelines(chunks)
        else:
            self._put(location, b"".join(chunks))
        self.files += 1
        self.bytes += sum(len(c) for c in chunks)
        self.seconds += time.perf_counter() - t0

    def _put(self, location: str, data: bytes) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(REMOTE_WORKERS, thread_name_prefix="demo-put")
        if len(self._pending) >= _REMOTE_BACKLOG:
            self._drain()
        self._pending.append(self._pool.submit(self.storage.put, location, [data]))

    def _drain(self) -> None:
        pending, self._pending = self._pending, []
        for f in pending:
            f.result()  # re-raises a failed put

    def finish(self) -> None:
        """Wait for every write."""
        t0 = time.perf_counter()
        try:
            self._drain()
        finally:
            self._close()
        self.seconds += time.perf_counter() - t0

    def abort(self) -> None:
        """Remove what this load wrote (best effort: the load's own error matters more)."""
        for f in self._pending:
            f.cancel()
        self._close()
        for folder in self._created:
            with contextlib.suppress(Exception):  # the load's own error is the one to report
                self.storage.delete_folder(folder)

    def _close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def parse_size(text: str) -> int:
    """``4096``, ``4k``, ``1.5M``, ``1GiB`` -> bytes (binary multiples); ValueError unless
    it comes to at least one byte."""
    m = _SIZE.fullmatch(text)
    size = int(float(m[1]) * _UNITS[m[2].lower()]) if m else 0
    if size < 1:
        raise ValueError(f"a file size is a number of bytes with an optional k, M or G "
                         f"(4k, 1M), not {text!r}")
    return size
