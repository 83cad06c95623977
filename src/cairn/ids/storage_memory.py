"""Storage in a dict: for tests and throw-away servers (contents die with the process)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator

from cairn.ids.checksum import Crc32Counter, PutResult
from cairn.ids.locations import check_location
from cairn.ids.storage import CHUNK_SIZE, Storage, StoredObject, check_span, not_found


class MemoryStorage(Storage):
    def __init__(self, *, chunk_size: int = CHUNK_SIZE) -> None:
        self.chunk_size = chunk_size
        self._objects: dict[str, tuple[bytes, float]] = {}
        self._lock = threading.Lock()

    def put(self, location: str, chunks: Iterable[bytes]) -> PutResult:
        check_location(location)
        counter = Crc32Counter()
        parts = []
        for chunk in chunks:  # an exception here leaves the old object, if any, in place
            counter.update(chunk)
            parts.append(bytes(chunk))
        with self._lock:
            self._objects[location] = (b"".join(parts), time.time())
        return counter.result()

    def _get(self, location: str) -> bytes:
        check_location(location)
        with self._lock:
            entry = self._objects.get(location)
        if entry is None:
            raise not_found(location)
        return entry[0]

    def read(self, location: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        check_span(start, end)
        data = self._get(location)
        stop = len(data) if end is None else min(end, len(data))
        return (data[i:min(i + self.chunk_size, stop)]
                for i in range(start, stop, self.chunk_size))

    def size(self, location: str) -> int:
        return len(self._get(location))

    def exists(self, location: str) -> bool:
        check_location(location)
        with self._lock:
            return location in self._objects

    def delete(self, location: str) -> None:
        check_location(location)
        with self._lock:
            self._objects.pop(location, None)

    def list(self, folder: str = "") -> Iterator[StoredObject]:
        prefix = check_location(folder) + "/" if folder else ""
        with self._lock:
            items = list(self._objects.items())
        for location, (data, mtime) in items:
            if location.startswith(prefix):
                yield StoredObject(location, len(data), mtime)
