"""Copies between main and archive storage: the work of two-level storage's write and
restore jobs (ids.server's Ds/Df Writer and Restorer threads), without the scheduling.

``storage_unit = datafile``: each datafile is copied at its own location, both ways.
``storage_unit = dataset``: the archive holds one DEFLATE zip per dataset at
``<investigation id>/<dataset id>`` (as ids.storage_file), with entry names from the zip
mapper, so archives written by ids.server can be restored by Cairn and the other way round.

``datafiles_to_evict`` / ``datasets_to_evict`` pick what to archive when main storage passes
its high watermark (ids.plugin's getDatafilesToArchive / getDatasetsToArchive), from
``main.list()``.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

from cairn.errors import internal
from cairn.ids.checksum import PutResult
from cairn.ids.mapper import DefaultZipMapper, ZipMapper
from cairn.ids.scratch import ScratchDir
from cairn.ids.storage import CHUNK_SIZE, Storage, StoredObject
from cairn.ids.zipstream import ZipMember, deflate_zip


def write_datafile(main: Storage, archive: Storage, location: str) -> PutResult:
    """Copy a datafile from main to archive storage (same location)."""
    return archive.put(location, main.read(location))


def restore_datafile(archive: Storage, main: Storage, location: str) -> PutResult:
    """Copy a datafile from archive back to main storage (same location)."""
    return main.put(location, archive.read(location))


def write_dataset(main: Storage, archive: Storage, key: str,
                  members: Sequence[ZipMember]) -> PutResult:
    """Zip a dataset's files from main storage into the archive object ``key``, streaming
    (no temporary file): the zip is compressed as ids.server's archives are."""
    return archive.put(key, deflate_zip(members, main))


def restore_dataset(archive: Storage, main: Storage, key: str, locations: Mapping[str, str],
                    work_dir: str | os.PathLike[str] | ScratchDir, *,
                    mapper: ZipMapper | None = None) -> list[str]:
    """Unpack the archive zip ``key`` onto main storage; return the locations written.

    ``locations`` maps each Datafile.name of the dataset to its location. As ids.server's
    DsRestorer, the archive is corrupt if an entry repeats, an entry matches no datafile, or a
    datafile has no entry; then, and on any other failure, whatever was restored is deleted
    again and the error raised (INTERNAL). The zip is fetched to a temporary file in
    ``work_dir`` first because reading a zip needs its end (the central directory) first: in
    the process's own folder of the cache when that is a :class:`ScratchDir`, so that a
    crash leaves it to the sweep (:mod:`cairn.ids.leftovers`).
    """
    mapper = mapper or DefaultZipMapper()
    if isinstance(work_dir, ScratchDir):
        fd, tmp = work_dir.temp_file(".zip")
    else:
        fd, tmp = tempfile.mkstemp(prefix=".cairn-restore-", suffix=".zip", dir=work_dir)
    written: list[str] = []
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in archive.read(key):
                f.write(chunk)
        with zipfile.ZipFile(tmp) as zf:
            seen: set[str] = set()
            for info in zf.infolist():
                if info.is_dir():
                    continue
                try:
                    name = mapper.datafile_name(info.filename)
                except ValueError as e:
                    raise internal(f"Archive {key}: {e}") from None
                if name in seen:
                    raise internal(f"Archive {key}: duplicate entry {info.filename!r}")
                seen.add(name)
                if name not in locations:
                    raise internal(f"Archive {key}: spurious entry {info.filename!r}")
            missing = sorted(set(locations) - seen)
            if missing:
                raise internal(f"Archive {key}: missing entries for {missing[:10]}")
            for info in zf.infolist():
                if info.is_dir():
                    continue
                location = locations[mapper.datafile_name(info.filename)]
                with zf.open(info) as member:  # zipfile checks each entry's CRC32
                    main.put(location, _file_chunks(member))
                written.append(location)
    except zipfile.BadZipFile as e:
        _undo(main, written)
        raise internal(f"Archive {key} is not a valid zip: {e}") from None
    except BaseException:
        _undo(main, written)
        raise
    finally:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        if isinstance(work_dir, ScratchDir):
            work_dir.tidy()
    return written


def datafiles_to_evict(objects: Iterable[StoredObject], low: int, high: int) -> list[str]:
    """Locations to remove from main storage, oldest first, once it holds ``high`` bytes or
    more, until it would hold at most ``low`` (ids.storage_file's watermark rule). Pass
    ``main.list()``; the caller queues ARCHIVE for the datafiles at these locations."""
    items = list(objects)
    total = sum(o.size for o in items)
    if total < high:
        return []
    excess = total - low
    chosen: list[str] = []
    for o in sorted(items, key=lambda o: (o.mtime, o.location)):
        if excess <= 0:
            break
        chosen.append(o.location)
        excess -= o.size
    return chosen


def datasets_to_evict(objects: Iterable[StoredObject], low: int,
                      high: int) -> list[tuple[int, int]]:
    """(investigation id, dataset id) pairs to archive by the same rule, datasets with the
    oldest files first (storage_unit = dataset). Unlike ids.storage_file, a chosen dataset
    counts with all its bytes, so no more datasets are evicted than needed. Files outside
    ``<inv id>/<ds id>/`` folders are not counted."""
    sizes: dict[tuple[int, int], int] = {}
    oldest: dict[tuple[int, int], float] = {}
    for o in objects:
        ds = _dataset_of(o.location)
        if ds is not None:
            sizes[ds] = sizes.get(ds, 0) + o.size
            oldest[ds] = min(oldest.get(ds, o.mtime), o.mtime)
    total = sum(sizes.values())
    if total < high:
        return []
    excess = total - low
    chosen: list[tuple[int, int]] = []
    for ds in sorted(sizes, key=lambda d: (oldest[d], d)):
        if excess <= 0:
            break
        chosen.append(ds)
        excess -= sizes[ds]
    return chosen


_DATASET_FOLDER = re.compile(r"([0-9]+)/([0-9]+)/.+", re.ASCII | re.DOTALL)


def _dataset_of(location: str) -> tuple[int, int] | None:
    m = _DATASET_FOLDER.fullmatch(location)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _undo(main: Storage, written: list[str]) -> None:
    for location in written:
        with contextlib.suppress(Exception):
            main.delete(location)


def _file_chunks(f: IO[bytes]) -> Iterator[bytes]:
    while chunk := f.read(CHUNK_SIZE):
        yield chunk
