"""Zip streams of datafiles: deterministic STORED zips with random access, and DEFLATE zips.

ids.server builds every zip with Java's ``ZipOutputStream`` on the fly: the length is unknown,
timestamps are the time of streaming and a resumed download regenerates (and discards) every
byte before the offset. Cairn does better when ``compress=false``:

:class:`StoredZip` lays the zip out from the list of (entry name, size) alone: STORED entries
(no compression), fixed timestamps (the datafile's modTime when known, else 1980-01-01),
stable order, no data descriptors, ZIP64 records exactly where sizes or offsets need them.
So the exact length is known before a byte is read (``Content-Length``), the bytes are the
same on every request (a strong ``ETag``), and any byte range is produced by computing which
headers and which slices of which files overlap it and reading only those (``Range``
resumes in O(1) work, not O(offset)).

The one thing a STORED header needs that the layout does not: each file's CRC32. It comes from
the catalogue (``Datafile.checksum`` is the CRC32 in hex when ids.server or Cairn stored the
file); for a file without one, the CRC32 is computed by reading the file once, right before
its header is sent (or up front, with :meth:`StoredZip.resolve_crcs`). The catalogue is
trusted: its size decides the layout (a file shorter in storage aborts the stream with
INTERNAL) and its checksum is written as the entry's CRC (a wrong checksum makes zip readers
report that one entry as corrupt).

:func:`deflate_zip` is the ``compress=true`` stream: DEFLATE entries with data descriptors,
unknown length, no ranges — the same layout of names, order and timestamps.
"""

from __future__ import annotations

import struct
import zlib
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from cairn.errors import internal
from cairn.ids.checksum import parse_crc32_hex
from cairn.ids.mapper import DefaultZipMapper, DfInfo, DsInfo, ZipMapper
from cairn.ids.ranges import make_etag
from cairn.ids.storage import Storage

_LIMIT32 = 0xFFFFFFFF
_LIMIT16 = 0xFFFF

_LOCAL = struct.Struct("<IHHHHHIIIHH")  # 30 bytes + name + extra
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")  # 46 bytes + name + extra
_END = struct.Struct("<IHHHHIIH")  # 22 bytes
_END64 = struct.Struct("<IQHHIIQQQQ")  # 56 bytes
_LOCATOR64 = struct.Struct("<IIQI")  # 20 bytes

_SIG_LOCAL = 0x04034B50
_SIG_CENTRAL = 0x02014B50
_SIG_END = 0x06054B50
_SIG_END64 = 0x06064B50
_SIG_LOCATOR64 = 0x07064B50
_SIG_DESCRIPTOR = 0x08074B50

_STORED = 0
_DEFLATED = 8
_FLAG_DESCRIPTOR = 0x0008
_FLAG_UTF8 = 0x0800
#: "Made by" Unix, spec 4.5: lets unzip apply the permissions below.
_MADE_BY = (3 << 8) | 45
_FILE_MODE = 0o100644 << 16
#: Pieces smaller than this are joined before they are yielded (headers of small files).
_COALESCE = 64 * 1024


@dataclass(frozen=True)
class ZipMember:
    """One file of a zip: its entry name and where its bytes are."""

    name: str
    location: str
    size: int
    #: From the catalogue; None = computed by reading the file when needed.
    crc32: int | None = None
    #: Entry timestamp; None = 1980-01-01 00:00 (the earliest a zip can express).
    mtime: datetime | None = None
    #: Catalogue identity of the file (datafile id, row version) for the ETag.
    identity: tuple[object, ...] = field(default=(), compare=False)


def zip_members(datasets: Mapping[int, DsInfo], datafiles: Iterable[DfInfo], *,
                mapper: ZipMapper | None = None,
                storage: Storage | None = None,
                catalogue_crc: bool = True) -> tuple[list[ZipMember], list[DfInfo]]:
    """The members of a download zip, in datafile id order, and the datafiles left out.

    Like ids.server, a datafile whose entry name is already taken (same dataset name and file
    name) is left out; unlike it, the caller learns which ones. A datafile without a
    catalogued size is measured in ``storage``. ``catalogue_crc=False`` ignores catalogue
    checksums (for a facility whose ingest writes another 8-hex-digit checksum, such as
    Adler-32, into ``Datafile.checksum``): CRCs are then computed by reading the files.
    """
    mapper = mapper or DefaultZipMapper()
    members: list[ZipMember] = []
    skipped: list[DfInfo] = []
    seen: set[str] = set()
    for df in sorted(datafiles, key=lambda d: d.id):
        name = mapper.entry_name(datasets[df.dataset_id], df)
        if name in seen:
            skipped.append(df)
            continue
        seen.add(name)
        size = df.size
        if size is None:
            if storage is None:
                raise ValueError(f"datafile {df.id} has no size and no storage was given")
            size = storage.size(df.location)
        crc = parse_crc32_hex(df.checksum) if catalogue_crc else None
        members.append(ZipMember(name, df.location, size, crc,
                                 df.mod_time, (df.id, df.version)))
    return members, skipped


def dos_datetime(mtime: datetime | None) -> tuple[int, int]:
    """(time, date) fields of a zip header, clamped to what they can express."""
    if mtime is None:
        return 0, (1 << 5) | 1
    year = min(max(mtime.year, 1980), 2107)
    if year != mtime.year:
        return (0, (1 << 5) | 1) if year == 1980 else ((23 << 11) | (59 << 5) | 29,
                                                        (127 << 9) | (12 << 5) | 31)
    time = (mtime.hour << 11) | (mtime.minute << 5) | (mtime.second // 2)
    date = ((year - 1980) << 9) | (mtime.month << 5) | mtime.day
    return time, date


def _flags(name: bytes) -> int:
    return 0 if name.isascii() else _FLAG_UTF8


def _central_record(name: bytes, flags: int, method: int, mtime: datetime | None, crc: int,
                    csize: int, usize: int, offset: int, *, sizes64: bool = False) -> bytes:
    """A central directory header; ZIP64 fields exactly where the values need them (or, with
    ``sizes64``, the sizes always there, matching a ZIP64 local header)."""
    wide: list[int] = []
    usize32 = csize32 = offset32 = 0
    if sizes64 or usize >= _LIMIT32:
        wide.append(usize)
        usize32 = _LIMIT32
    else:
        usize32 = usize
    if sizes64 or csize >= _LIMIT32:
        wide.append(csize)
        csize32 = _LIMIT32
    else:
        csize32 = csize
    if offset >= _LIMIT32:
        wide.append(offset)
        offset32 = _LIMIT32
    else:
        offset32 = offset
    extra = struct.pack(f"<HH{len(wide)}Q", 1, 8 * len(wide), *wide) if wide else b""
    t, d = dos_datetime(mtime)
    return _CENTRAL.pack(_SIG_CENTRAL, _MADE_BY, 45 if wide else 20, flags, method, t, d, crc,
                         csize32, usize32, len(name), len(extra), 0, 0, 0, _FILE_MODE,
                         offset32) + name + extra


def _end_records(count: int, cd_start: int, cd_end: int) -> bytes:
    """End of central directory, preceded by the ZIP64 end record and locator if needed."""
    cd_size = cd_end - cd_start
    out = b""
    if _needs_zip64_end(count, cd_start, cd_size):
        out += _END64.pack(_SIG_END64, _END64.size - 12, _MADE_BY, 45, 0, 0, count, count,
                           cd_size, cd_start)
        out += _LOCATOR64.pack(_SIG_LOCATOR64, 0, cd_end, 1)
    n16 = min(count, _LIMIT16)
    return out + _END.pack(_SIG_END, 0, 0, n16, n16, min(cd_size, _LIMIT32),
                           min(cd_start, _LIMIT32), 0)


def _needs_zip64_end(count: int, cd_start: int, cd_size: int) -> bool:
    return count >= _LIMIT16 or cd_start >= _LIMIT32 or cd_size >= _LIMIT32


def _central_extra_len(size: int, offset: int) -> int:
    wide = (2 if size >= _LIMIT32 else 0) + (1 if offset >= _LIMIT32 else 0)
    return 4 + 8 * wide if wide else 0


class StoredZip:
    """A deterministic zip of ``members`` (STORED), readable as a whole or by byte range.

    Memory: the member list plus two arrays of offsets (16 bytes a member); nothing grows
    with file sizes. Reads go through ``storage.read`` with exact spans.
    """

    def __init__(self, members: Sequence[ZipMember], storage: Storage) -> None:
        self.members = list(members)
        self.storage = storage
        self._names = [m.name.encode("utf-8") for m in self.members]
        self._crcs: dict[int, int] = {}
        if len(set(self._names)) != len(self._names):
            raise ValueError("duplicate zip entry names")
        self._local = array("Q")  # offset of each local header
        pos = 0
        for m, name in zip(self.members, self._names, strict=True):
            if m.size < 0:
                raise ValueError(f"negative size for {m.name!r}")
            if len(name) > _LIMIT16:
                raise ValueError(f"zip entry name too long: {m.name[:50]!r}...")
            self._local.append(pos)
            pos += _LOCAL.size + len(name) + (20 if m.size >= _LIMIT32 else 0) + m.size
        self._cd_start = pos
        self._central = array("Q")  # offset of each central directory header
        for i, name in enumerate(self._names):
            self._central.append(pos)
            pos += _CENTRAL.size + len(name) + _central_extra_len(self.members[i].size,
                                                                  self._local[i])
        self._cd_end = pos
        self._tail = _end_records(len(self.members), self._cd_start, self._cd_end)
        #: Exact size of the zip in bytes.
        self.length = pos + len(self._tail)

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[bytes]:
        return self.iter_range(0, self.length)

    @cached_property
    def etag(self) -> str:
        """Strong ETag: changes whenever any byte of the zip could."""
        return make_etag(((m.name, m.location, m.size, m.crc32,
                           m.mtime.isoformat() if m.mtime else None, *m.identity)
                          for m in self.members), kind="zip-stored-1")

    def resolve_crcs(self) -> None:
        """Compute now the CRC32s the catalogue did not provide (reads those files)."""
        for i in range(len(self.members)):
            self._crc(i)

    # -- layout pieces ---------------------------------------------------------------------

    def _crc(self, i: int) -> int:
        m = self.members[i]
        if m.crc32 is not None:
            return m.crc32
        crc = self._crcs.get(i)
        if crc is None:
            crc = 0
            got = 0
            for chunk in _closing(self.storage.read(m.location, 0, m.size)):
                crc = zlib.crc32(chunk, crc)
                got += len(chunk)
            self._check_length(m, got, m.size)
            self._crcs[i] = crc
        return crc

    def _local_header(self, i: int) -> bytes:
        m, name = self.members[i], self._names[i]
        zip64 = m.size >= _LIMIT32
        extra = struct.pack("<HHQQ", 1, 16, m.size, m.size) if zip64 else b""
        size32 = _LIMIT32 if zip64 else m.size
        t, d = dos_datetime(m.mtime)
        return _LOCAL.pack(_SIG_LOCAL, 45 if zip64 else 20, _flags(name), _STORED, t, d,
                           self._crc(i), size32, size32, len(name), len(extra)) + name + extra

    def _central_header(self, i: int) -> bytes:
        m, name = self.members[i], self._names[i]
        return _central_record(name, _flags(name), _STORED, m.mtime, self._crc(i), m.size,
                               m.size, self._local[i])

    @staticmethod
    def _check_length(m: ZipMember, got: int, want: int) -> None:
        if got != want:
            raise internal(f"File {m.name!r} at {m.location!r} has fewer bytes in storage "
                           f"than the {m.size} the catalogue records")

    def _data(self, i: int, start: int, end: int) -> Iterator[bytes]:
        m = self.members[i]
        got = 0
        for chunk in _closing(self.storage.read(m.location, start, end)):
            got += len(chunk)
            yield chunk
        self._check_length(m, got, end - start)

    # -- streaming -------------------------------------------------------------------------

    def iter_range(self, start: int, end: int) -> Iterator[bytes]:
        """Bytes ``[start, end)`` of the zip, reading only the file data inside the span."""
        if not 0 <= start <= end <= self.length:
            raise ValueError(f"range [{start}, {end}) outside a zip of {self.length} bytes")
        return _coalesce(self._pieces(start, end))

    def _pieces(self, start: int, end: int) -> Iterator[bytes]:
        pos = start
        n = len(self.members)
        if pos < self._cd_start:
            i = bisect_right(self._local, pos) - 1
            while i < n and pos < end:
                header = self._local_header(i)
                data_at = self._local[i] + len(header)
                data_end = data_at + self.members[i].size
                if pos < data_at:
                    stop = min(end, data_at)
                    yield header[pos - self._local[i]:stop - self._local[i]]
                    pos = stop
                if pos < end and pos < data_end:
                    stop = min(end, data_end)
                    yield from self._data(i, pos - data_at, stop - data_at)
                    pos = stop
                i += 1
        if pos < end and pos < self._cd_end:
            j = bisect_right(self._central, pos) - 1
            while j < n and pos < end:
                header = self._central_header(j)
                at = self._central[j]
                stop = min(end, at + len(header))
                yield header[pos - at:stop - at]
                pos = stop
                j += 1
        if pos < end:
            yield self._tail[pos - self._cd_end:end - self._cd_end]


class DeflateZip:
    """The ``compress=true`` zip of ``members``: a one-pass stream of unknown length. Its bytes
    are still the same on every request (same zlib, same inputs), so it has an ETag and an
    ids.server-style resume (regenerate, skip the first N bytes) stays exact."""

    length: int | None = None

    def __init__(self, members: Sequence[ZipMember], storage: Storage, *,
                 level: int = zlib.Z_DEFAULT_COMPRESSION) -> None:
        self.members = list(members)
        self.storage = storage
        self.level = level

    def __iter__(self) -> Iterator[bytes]:
        return deflate_zip(self.members, self.storage, level=self.level)

    @cached_property
    def etag(self) -> str:
        return make_etag(((m.name, m.location, m.size, m.crc32,
                           m.mtime.isoformat() if m.mtime else None, *m.identity)
                          for m in self.members), kind="zip-deflate-1", level=self.level,
                         zlib=zlib.ZLIB_RUNTIME_VERSION)


def deflate_zip(members: Iterable[ZipMember], storage: Storage, *,
                level: int = zlib.Z_DEFAULT_COMPRESSION) -> Iterator[bytes]:
    """A DEFLATE zip of ``members`` streamed in one pass (``compress=true``; also the
    format of dataset archives). Length unknown up front; sizes and CRCs go in data
    descriptors and the central directory. Memory: 24 bytes a member plus zlib's window."""
    return _coalesce(_deflate_pieces(members, storage, level))


def _deflate_pieces(members: Iterable[ZipMember], storage: Storage,
                    level: int) -> Iterator[bytes]:
    entries: list[ZipMember] = []
    names: list[bytes] = []
    seen: set[bytes] = set()
    offsets, crcs, csizes, usizes = array("Q"), array("L"), array("Q"), array("Q")
    zip64s = bytearray()
    pos = 0
    for m in members:
        name = m.name.encode("utf-8")
        if name in seen or len(name) > _LIMIT16:
            raise ValueError(f"duplicate or too long zip entry name {m.name[:50]!r}")
        seen.add(name)
        # Decided before the data is seen; 5% covers deflate's worst-case expansion.
        zip64 = m.size * 1.05 + 65536 >= _LIMIT32
        flags = _flags(name) | _FLAG_DESCRIPTOR
        t, d = dos_datetime(m.mtime)
        extra = struct.pack("<HHQQ", 1, 16, 0, 0) if zip64 else b""
        size32 = _LIMIT32 if zip64 else 0
        header = _LOCAL.pack(_SIG_LOCAL, 45 if zip64 else 20, flags, _DEFLATED, t, d, 0,
                             size32, size32, len(name), len(extra)) + name + extra
        offsets.append(pos)
        yield header
        pos += len(header)
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
        crc = usize = csize = 0
        for chunk in _closing(storage.read(m.location)):
            crc = zlib.crc32(chunk, crc)
            usize += len(chunk)
            out = compressor.compress(chunk)
            if out:
                csize += len(out)
                yield out
        out = compressor.flush()
        csize += len(out)
        yield out
        if not zip64 and (usize >= _LIMIT32 or csize >= _LIMIT32):
            raise internal(f"File {m.name!r} is much larger in storage than catalogued")
        if zip64:
            descriptor = struct.pack("<IIQQ", _SIG_DESCRIPTOR, crc, csize, usize)
        else:
            descriptor = struct.pack("<IIII", _SIG_DESCRIPTOR, crc, csize, usize)
        yield descriptor
        pos += csize + len(descriptor)
        entries.append(m)
        names.append(name)
        crcs.append(crc)
        csizes.append(csize)
        usizes.append(usize)
        zip64s.append(zip64)
    cd_start = pos
    for i, m in enumerate(entries):
        record = _central_record(names[i], _flags(names[i]) | _FLAG_DESCRIPTOR, _DEFLATED,
                                 m.mtime, crcs[i], csizes[i], usizes[i], offsets[i],
                                 sizes64=bool(zip64s[i]))
        pos += len(record)
        yield record
    yield _end_records(len(entries), cd_start, pos)


def _closing(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Iterate ``chunks`` and close it even when our consumer stops early."""
    try:
        yield from chunks
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def _coalesce(pieces: Iterator[bytes], threshold: int = _COALESCE) -> Iterator[bytes]:
    """Join small pieces (headers, bits of small files) so consumers see few, big chunks;
    big pieces pass through without a copy."""
    buf: list[bytes] = []
    buffered = 0
    try:
        for piece in pieces:
            if not piece:
                continue
            if len(piece) >= threshold:
                if buf:
                    yield b"".join(buf)
                    buf, buffered = [], 0
                yield piece
                continue
            buf.append(piece)
            buffered += len(piece)
            if buffered >= threshold:
                yield b"".join(buf)
                buf, buffered = [], 0
        if buf:
            yield b"".join(buf)
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()
