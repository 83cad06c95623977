"""The one small storage interface behind main and archive storage.

ids.plugin has two plugin interfaces (MainStorage, ArchiveStorage) with a dozen methods. Cairn
needs less: a storage is a flat namespace of byte objects named by locations (see
:mod:`cairn.ids.locations`), with folders only as ``/`` in names. Main storage holds
datafiles at their locations. Archive storage is the same interface: datafiles at their
locations (``storage_unit = datafile``) or one zip per dataset at
``<investigation id>/<dataset id>`` (``storage_unit = dataset``); :mod:`cairn.ids.archive`
copies between the two.

Contract every backend keeps:

- ``put`` stores a whole stream atomically: readers see the old object or the new one, never
  a part; if the stream or the write fails (or is interrupted), nothing new is left behind.
  It returns size and CRC32 computed on the fly, in constant memory.
- ``read`` opens eagerly (a missing object fails on the call, before any byte is sent) and
  returns an iterator of chunks over ``[start, end)``; closing the iterator releases the
  file or connection.
- Missing objects are NO_SUCH_OBJECT_FOUND; unsafe locations are BAD_PARAMETER. Other
  failures (I/O, network) propagate as they are.
- All methods block; callers on an event loop run them in a worker thread.

Unfinished work (temporary files, multipart uploads, notes) lives in the storage's scratch
area under the token of the process that does it (:mod:`cairn.ids.scratch`); the methods of
the last section let :mod:`cairn.ids.leftovers` find and remove what dead processes left.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cairn.errors import bad_parameter, no_such_object
from cairn.ids.checksum import PutResult
from cairn.ids.scratch import UNBOUND, owner_token

#: Default size of the chunks ``read`` yields: big enough that per-chunk overhead (a thread
#: hop, an ASGI message) vanishes next to the copy, small enough to keep memory flat.
CHUNK_SIZE = 1 << 20


@dataclass(frozen=True)
class StoredObject:
    location: str
    size: int
    #: Last modification, seconds since the epoch (used to pick eviction victims).
    mtime: float


class Storage(ABC):
    """A flat namespace of byte objects named by locations."""

    chunk_size: int = CHUNK_SIZE

    @abstractmethod
    def put(self, location: str, chunks: Iterable[bytes]) -> PutResult:
        """Store ``chunks`` at ``location`` (replacing any object there), atomically."""

    @abstractmethod
    def read(self, location: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Bytes ``[start, end)`` of the object (``end=None``: to its end) as chunks."""

    @abstractmethod
    def size(self, location: str) -> int:
        """Size in bytes; NO_SUCH_OBJECT_FOUND if absent."""

    @abstractmethod
    def exists(self, location: str) -> bool: ...

    @abstractmethod
    def delete(self, location: str) -> None:
        """Remove the object; no error if it is absent."""

    @abstractmethod
    def list(self, folder: str = "") -> Iterator[StoredObject]:
        """Every object under ``folder`` (``""``: all), in no particular order."""

    def folder_exists(self, folder: str) -> bool:
        """Whether any object lies under ``folder`` (a dataset "is on main storage")."""
        return next(iter(self.list(folder)), None) is not None

    def delete_folder(self, folder: str) -> None:
        """Remove every object under ``folder``."""
        for obj in list(self.list(folder)):
            self.delete(obj.location)

    def local_path(self, location: str) -> Path | None:
        """The file behind ``location`` if it is one on this machine (lets the HTTP layer
        use ``sendfile``), else None."""
        return None

    def read_all(self, location: str) -> bytes:
        """The whole object in memory: for small objects and tests only."""
        return b"".join(self.read(location))

    # -- unfinished work ---------------------------------------------------------------------
    # The defaults suit a storage whose contents die with the process (nothing to sweep).

    #: The token of the process whose unfinished work this object names (see :meth:`bind`).
    token: str = UNBOUND

    def bind(self, owner: str) -> None:
        """Name this object's unfinished work after the process ``owner`` (its scheduler's
        name), once: the first binding stands, so a service assembled from parts that each
        bind the storage keeps one identity."""
        if self.token == UNBOUND:
            self.token = owner_token(owner)

    def write_note(self, name: str, data: bytes) -> None:
        """Keep ``data`` under ``name`` in this process's scratch area, durably, until
        :meth:`drop_note`: what undoing this process's work needs if it dies meanwhile."""
        return None

    def drop_note(self, name: str) -> None:
        """Remove a note of this process (no error if it is absent)."""
        return None

    def scratch_owners(self) -> set[str]:
        """Tokens of the processes with unfinished work (or its remains) here."""
        return set()

    def notes(self, token: str) -> dict[str, bytes]:
        """The notes of a process, by name."""
        return {}

    def clear_scratch(self, token: str) -> bool:
        """Remove everything a dead process left in the scratch area (temporary files,
        notes; on S3 its unfinished multipart uploads are aborted). False if something had
        to wait for the next sweep."""
        return True

    def clear_strays(self, older_than: float) -> int:
        """Remove unfinished work that names no process (left by a Cairn before scratch
        areas) and is older than ``older_than`` seconds; how much was removed."""
        return 0


def check_span(start: int, end: int | None) -> None:
    """Validate a ``read`` span (programming errors rather than user input)."""
    if start < 0 or (end is not None and end < start):
        raise bad_parameter(f"Bad byte span [{start}, {end})")


def not_found(location: str) -> Exception:
    return no_such_object(f"No file at location {location!r} in storage")
