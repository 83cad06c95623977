"""Storage in a local folder (ids.storage_file's layout: a location is a relative path)."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from cairn.ids.checksum import Crc32Counter, PutResult
from cairn.ids.locations import check_location
from cairn.ids.scratch import SCRATCH, ScratchDir
from cairn.ids.storage import CHUNK_SIZE, Storage, StoredObject, check_span, not_found

#: What Cairn before scratch areas named a put's temporary file, beside its final place:
#: never listed (only a walk of the whole storage could find such files of a crash).
_LEGACY_PREFIX = ".cairn-put-"
_LEGACY_SUFFIX = ".part"
#: Tries at placing a file while a concurrent delete prunes its (empty) folder.
_PLACE_ATTEMPTS = 5


class LocalStorage(Storage):
    """Objects as files under ``root``; folders are created and pruned as needed. A put
    writes to a temporary file in ``root/.cairn-tmp/<process token>/`` and renames it into
    place (one file system: the rename is atomic)."""

    def __init__(self, root: str | os.PathLike[str], *, chunk_size: int = CHUNK_SIZE,
                 fsync: bool = True) -> None:
        self.root = Path(root).absolute()
        self.chunk_size = chunk_size
        #: Off only for tests and benchmarks: without fsync a crash may leave empty files.
        self.fsync = fsync
        self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def path(self, location: str) -> Path:
        """The file for ``location``; BAD_PARAMETER if the location could escape ``root``."""
        return self.root.joinpath(*check_location(location).split("/"))

    def local_path(self, location: str) -> Path | None:
        return self.path(location)

    # -- writing ---------------------------------------------------------------------------

    @property
    def scratch(self) -> ScratchDir:
        return ScratchDir(self.root, self.token)

    def put(self, location: str, chunks: Iterable[bytes]) -> PutResult:
        path = self.path(location)
        scratch = self.scratch
        fd, tmp = scratch.temp_file(".part")
        counter = Crc32Counter()
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    counter.update(chunk)
                    f.write(chunk)
                f.flush()
                if self.fsync:
                    os.fsync(f.fileno())
            self._place(tmp, path)
        except BaseException:
            # Also on GeneratorExit/KeyboardInterrupt/cancellation: an interrupted upload
            # leaves no temporary file (a killed process leaves it to the sweep).
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        finally:
            scratch.tidy()
        if self.fsync:
            self._fsync_dir(path.parent)
        return counter.result()

    def _place(self, tmp: str, path: Path) -> None:
        """Rename ``tmp`` to ``path``, making its folder. A concurrent delete may prune the
        folder between mkdir and rename, or inside mkdir itself (pathlib then sees EEXIST but
        no folder: FileExistsError): retry."""
        for attempt in range(_PLACE_ATTEMPTS):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                # rename is atomic within a file system: readers never see a partial file.
                os.replace(tmp, path)
                return
            except (FileNotFoundError, FileExistsError):
                if attempt == _PLACE_ATTEMPTS - 1:
                    self._prune(path.parent)
                    raise

    def _fsync_dir(self, folder: Path) -> None:
        # Makes the rename itself durable.
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _prune(self, folder: Path) -> None:
        """Remove ``folder`` and its parents up to ``root`` while they are empty."""
        while folder != self.root and self.root in folder.parents:
            try:
                folder.rmdir()
            except OSError:  # not empty, already gone, or not ours to remove
                return
            folder = folder.parent

    def delete(self, location: str) -> None:
        path = self.path(location)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        self._prune(path.parent)

    def delete_folder(self, folder: str) -> None:
        base = self.path(folder)
        if not base.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(base, topdown=False):
            for name in filenames:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(dirpath, name))
            for name in dirnames:
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.join(dirpath, name))
        self._prune(base)

    # -- reading ---------------------------------------------------------------------------

    def read(self, location: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        check_span(start, end)
        path = self.path(location)
        try:
            f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the iterator
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise not_found(location) from None
        return _file_chunks(f, start, end, self.chunk_size)

    def size(self, location: str) -> int:
        try:
            st = self.path(location).stat()
        except (FileNotFoundError, NotADirectoryError):
            raise not_found(location) from None
        if not stat.S_ISREG(st.st_mode):
            raise not_found(location)
        return st.st_size

    def exists(self, location: str) -> bool:
        return self.path(location).is_file()

    def list(self, folder: str = "") -> Iterator[StoredObject]:
        base = self.path(folder) if folder else self.root
        if not base.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(base):
            if dirpath == str(self.root) and SCRATCH in dirnames:
                dirnames.remove(SCRATCH)  # unfinished work is no object
            for name in filenames:
                if name.startswith(_LEGACY_PREFIX) and name.endswith(_LEGACY_SUFFIX):
                    continue
                full = os.path.join(dirpath, name)
                try:
                    st = os.stat(full)
                except FileNotFoundError:
                    continue
                rel = os.path.relpath(full, self.root).replace(os.sep, "/")
                yield StoredObject(rel, st.st_size, st.st_mtime)

    def folder_exists(self, folder: str) -> bool:
        # ids.storage_file: a dataset is on main storage when its folder exists.
        return self.path(folder).is_dir()

    # -- unfinished work ---------------------------------------------------------------------

    def write_note(self, name: str, data: bytes) -> None:
        if name.endswith(".part"):
            raise ValueError("notes never end in .part (temporary files do)")
        scratch = self.scratch
        fd = scratch.create(name)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                if self.fsync:
                    os.fsync(f.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(scratch.folder / name)
            raise
        if self.fsync:  # the note must outlive a power cut that the work it guards outlives
            self._fsync_dir(scratch.folder)

    def drop_note(self, name: str) -> None:
        scratch = self.scratch
        with contextlib.suppress(FileNotFoundError):
            os.unlink(scratch.folder / name)
        scratch.tidy()

    def scratch_owners(self) -> set[str]:
        return self.scratch.owners()

    def notes(self, token: str) -> dict[str, bytes]:
        out = {}
        for p in self.scratch.files(token):
            if not p.name.endswith(".part"):
                with contextlib.suppress(FileNotFoundError):
                    out[p.name] = p.read_bytes()
        return out

    def clear_scratch(self, token: str) -> bool:
        self.scratch.remove(token)
        return True


def _file_chunks(f: BinaryIO, start: int, end: int | None, chunk_size: int) -> Iterator[bytes]:
    with f:
        if start:
            f.seek(start)
        fadvise = getattr(os, "posix_fadvise", None)
        if fadvise is not None:  # tell the kernel to read ahead aggressively
            with contextlib.suppress(OSError):
                fadvise(f.fileno(), start, 0, os.POSIX_FADV_SEQUENTIAL)
        remaining = None if end is None else end - start
        while remaining is None or remaining > 0:
            n = chunk_size if remaining is None else min(chunk_size, remaining)
            data = f.read(n)
            if not data:
                return
            if remaining is not None:
                remaining -= len(data)
            yield data
