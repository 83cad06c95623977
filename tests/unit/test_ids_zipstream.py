"""Zip streams: read back by Python's zipfile and by Info-ZIP's ``unzip -t``."""

from __future__ import annotations

import functools
import io
import os
import shutil
import subprocess
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from cairn.errors import ErrorType, IcatError
from cairn.ids.checksum import PutResult, crc32_hex
from cairn.ids.mapper import DfInfo, DsInfo
from cairn.ids.storage import Storage, StoredObject, check_span
from cairn.ids.storage_memory import MemoryStorage
from cairn.ids.zipstream import StoredZip, ZipMember, deflate_zip, dos_datetime, zip_members

GiB = 1 << 30
BIG = 4 * GiB + GiB // 2
UNZIP = shutil.which("unzip")


class ZeroStorage(Storage):
    """Objects of any size, all zero bytes, costing no memory or disk: for ZIP64 tests.
    Also counts open readers, to check streams close what they open."""

    chunk_size = 1 << 20

    def __init__(self, sizes: dict[str, int], data: dict[str, bytes] | None = None) -> None:
        self.sizes = dict(sizes)
        self.data = data or {}
        self.open_readers = 0
        self.reads: list[tuple[str, int, int | None]] = []

    def put(self, location: str, chunks: Iterable[bytes]) -> PutResult:
        raise NotImplementedError

    def read(self, location: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        check_span(start, end)
        self.reads.append((location, start, end))
        size = self.size(location)
        stop = size if end is None else min(end, size)
        self.open_readers += 1
        return self._gen(location, start, stop)

    def _gen(self, location: str, start: int, stop: int) -> Iterator[bytes]:
        try:
            if location in self.data:
                yield self.data[location][start:stop]
                return
            zeros = bytes(self.chunk_size)
            pos = start
            while pos < stop:
                n = min(self.chunk_size, stop - pos)
                yield zeros if n == self.chunk_size else bytes(n)
                pos += n
        finally:
            self.open_readers -= 1

    def size(self, location: str) -> int:
        if location in self.data:
            return len(self.data[location])
        return self.sizes[location]

    def exists(self, location: str) -> bool:
        return location in self.sizes or location in self.data

    def delete(self, location: str) -> None:
        raise NotImplementedError

    def list(self, folder: str = "") -> Iterator[StoredObject]:
        return iter(())


class ZipView(io.RawIOBase):
    """A read-only, seekable file over a StoredZip that only ever asks for byte ranges:
    zipfile reading through it exercises random access."""

    def __init__(self, z: StoredZip) -> None:
        self.z = z
        self.pos = 0
        self.requests = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.z.length}[whence]
        self.pos = base + offset
        return self.pos

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        n = max(0, min(len(b), self.z.length - self.pos))
        data = b"".join(self.z.iter_range(self.pos, self.pos + n))
        assert len(data) == n
        b[:n] = data
        self.pos += n
        self.requests += 1
        return n


def _store(files: dict[str, bytes], chunk_size: int = 4096) -> MemoryStorage:
    s = MemoryStorage(chunk_size=chunk_size)
    for loc, data in files.items():
        s.put(loc, [data])
    return s


def _members(files: dict[str, bytes], *, crc: bool = True, prefix: str = "ids/F/I/V/D/"
             ) -> list[ZipMember]:
    return [ZipMember(prefix + loc.replace("/", "_"), loc, len(data),
                      zlib.crc32(data) if crc else None)
            for loc, data in files.items()]


def _unzip_t(path: Path) -> None:
    """Info-ZIP's own check of the zip; without the command, a reported skip (the checks the
    test made before this one have passed), never a silent pass."""
    if UNZIP is None:
        pytest.skip("the unzip command (Info-ZIP) is not installed: the zip was checked with "
                    "Python's zipfile only")
    r = subprocess.run([UNZIP, "-tq", str(path)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr


def _check(body: bytes, files: dict[str, bytes], members: list[ZipMember],
           tmp_path: Path) -> None:
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        assert zf.testzip() is None
        infos = zf.infolist()
        assert [i.filename for i in infos] == [m.name for m in members]
        for info, m in zip(infos, members, strict=True):
            assert zf.read(info) == files[m.location]
    path = tmp_path / "t.zip"
    path.write_bytes(body)
    _unzip_t(path)


FILES = {
    "1/1/empty": b"",
    "1/1/one": b"x",
    "1/1/ids52": b"0123456789" * 5 + b"ab",
    "1/2/rand": os.urandom(70_000),
    "1/2/zeros": bytes(10_000),
}


@pytest.mark.parametrize("crc", [True, False])
def test_stored_zip_roundtrip(tmp_path: Path, crc: bool) -> None:
    members = _members(FILES, crc=crc)
    z = StoredZip(members, _store(FILES))
    body = b"".join(z)
    assert len(body) == z.length == len(z)
    _check(body, FILES, members, tmp_path)
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        for info in zf.infolist():
            assert info.compress_type == zipfile.ZIP_STORED
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.external_attr >> 16 == 0o100644


def test_crc_from_catalogue_or_storage_gives_same_bytes() -> None:
    store = _store(FILES)
    a = b"".join(StoredZip(_members(FILES, crc=True), store))
    b = b"".join(StoredZip(_members(FILES, crc=False), store))
    assert a == b


def test_length_known_before_reading() -> None:
    storage = ZeroStorage({loc: len(d) for loc, d in FILES.items()})
    z = StoredZip(_members(FILES, crc=False), storage)
    assert z.length > 0
    assert storage.reads == []  # layout needs no I/O at all


def test_every_range(tmp_path: Path) -> None:
    z = StoredZip(_members(FILES), _store(FILES, chunk_size=1000))
    body = b"".join(z)
    n = len(body)
    ends = [0, 1, 29, 30, 31, 100, 1000, n // 2, n - 23, n - 22, n - 1, n]
    for start in range(0, n, 7):
        for end in {min(n, max(start, e)) for e in ends} | {start, min(n, start + 1)}:
            assert b"".join(z.iter_range(start, end)) == body[start:end], (start, end)
    with pytest.raises(ValueError):
        z.iter_range(0, n + 1)
    with pytest.raises(ValueError):
        z.iter_range(5, 4)


def test_ranges_read_only_what_they_need() -> None:
    sizes = {f"d/{i}": 1_000_000 for i in range(50)}
    storage = ZeroStorage(sizes)
    members = [ZipMember(f"f{i}", f"d/{i}", 1_000_000, zlib.crc32(bytes(1_000_000)))
               for i in range(50)]
    z = StoredZip(members, storage)
    start = z.length - 1_500_000
    tail = b"".join(z.iter_range(start, z.length))
    assert len(tail) == 1_500_000
    # only the last two files were touched, each from the right offset
    assert [r[0] for r in storage.reads] == ["d/48", "d/49"]
    assert storage.reads[1] == ("d/49", 0, 1_000_000)
    assert storage.open_readers == 0


def test_many_files_zip64_end_record(tmp_path: Path) -> None:
    # More than 65,535 entries: the entry count only fits in the ZIP64 end record.
    files = {f"m/{i}": str(i).encode() for i in range(70_000)}
    storage = ZeroStorage({}, files)
    members = [ZipMember(f"ids/F/I/V/D/{i}", f"m/{i}", len(files[f"m/{i}"]),
                         zlib.crc32(files[f"m/{i}"])) for i in range(70_000)]
    z = StoredZip(members, storage)
    body = b"".join(z)
    assert len(body) == z.length
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        infos = zf.infolist()
        assert len(infos) == 70_000
        assert zf.read("ids/F/I/V/D/69999") == b"69999"
        assert zf.testzip() is None
    path = tmp_path / "many.zip"
    path.write_bytes(body)
    _unzip_t(path)


def test_empty_zip() -> None:
    z = StoredZip([], MemoryStorage())
    body = b"".join(z)
    assert len(body) == z.length == 22
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        assert zf.infolist() == []
    assert b"".join(deflate_zip([], MemoryStorage())) == body


def _big_members() -> tuple[list[ZipMember], ZeroStorage]:
    """4.5 GiB of zeros, then a small file past 4 GiB: a size and an offset need ZIP64."""
    small = b"after the big one"
    storage = ZeroStorage({"b/1": BIG}, {"b/2": small})
    return [ZipMember("big/zeros", "b/1", BIG, _zero_crc(BIG)),
            ZipMember("big/small", "b/2", len(small), zlib.crc32(small))], storage


@functools.cache
def _zero_crc(n: int) -> int:
    crc = 0
    block = bytes(16 << 20)
    while n:
        k = min(n, len(block))
        crc = zlib.crc32(block[:k] if k < len(block) else block, crc)
        n -= k
    return crc


def test_zip64_sizes_and_offsets_by_ranges() -> None:
    members, storage = _big_members()
    z = StoredZip(members, storage)
    assert z.length > BIG
    view = ZipView(z)
    with zipfile.ZipFile(io.BufferedReader(view, 1 << 16)) as zf:
        infos = zf.infolist()
        assert [(i.filename, i.file_size) for i in infos] == [
            ("big/zeros", BIG), ("big/small", 17)]
        assert infos[1].header_offset > BIG
        assert zf.read("big/small") == b"after the big one"
    assert view.requests < 20  # central directory + one entry: no pass over the zeros
    # The last bytes of the big entry and the header after it, by range.
    data_at = 30 + len(b"big/zeros") + 20
    around = b"".join(z.iter_range(data_at + BIG - 4, data_at + BIG + 4))
    assert around == bytes(4) + b"PK\x03\x04"
    assert storage.open_readers == 0


@pytest.mark.slow
@pytest.mark.skipif(UNZIP is None, reason="the unzip command (Info-ZIP) is not installed")
@pytest.mark.skipif(not os.environ.get("CAIRN_SLOW_TESTS"),
                    reason="about a minute; set CAIRN_SLOW_TESTS=1 to run")
def test_zip64_unzip_t(tmp_path: Path) -> None:
    """The whole 4.5 GiB zip through ``unzip -t``, written as a sparse file (holes for the
    zeros) so it costs no disk."""
    members, storage = _big_members()
    z = StoredZip(members, storage)
    path = tmp_path / "big.zip"
    with open(path, "wb") as f:
        for chunk in z:
            if chunk.count(0) == len(chunk):
                f.seek(len(chunk), os.SEEK_CUR)
            else:
                f.write(chunk)
        f.truncate()
    assert path.stat().st_size == z.length
    _unzip_t(path)


def test_short_file_in_storage_aborts() -> None:
    storage = _store({"s/x": b"short"})
    z = StoredZip([ZipMember("x", "s/x", 10, 0)], storage)
    with pytest.raises(IcatError) as e:
        b"".join(z)
    assert e.value.type == ErrorType.INTERNAL
    z2 = StoredZip([ZipMember("x", "s/x", 10, None)], storage)  # CRC pass notices too
    with pytest.raises(IcatError):
        b"".join(z2)


def test_missing_file_aborts() -> None:
    z = StoredZip([ZipMember("x", "s/none", 3, 0)], MemoryStorage())
    with pytest.raises(IcatError) as e:
        b"".join(z)
    assert e.value.type == ErrorType.NO_SUCH_OBJECT_FOUND


def test_stopping_early_closes_readers() -> None:
    storage = ZeroStorage({"a": 5_000_000, "b": 5_000_000})
    z = StoredZip([ZipMember("a", "a", 5_000_000, 1), ZipMember("b", "b", 5_000_000, 2)],
                  storage)
    it = iter(z)
    next(it)
    next(it)
    assert storage.open_readers == 1
    it.close()  # type: ignore[attr-defined]
    assert storage.open_readers == 0


def test_entry_times_and_utf8_names(tmp_path: Path) -> None:
    files = {"t/1": b"one", "t/2": b"two"}
    when = datetime(2023, 5, 17, 13, 45, 31)
    members = [ZipMember("ids/F/I/V/D/Grüße.txt", "t/1", 3, None, when),
               ZipMember("ids/F/I/V/D/plain.txt", "t/2", 3, None, datetime(1970, 1, 1))]
    body = b"".join(StoredZip(members, _store(files)))
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        a, b = zf.infolist()
        assert a.filename == "ids/F/I/V/D/Grüße.txt" and a.flag_bits & 0x800
        assert a.date_time == (2023, 5, 17, 13, 45, 30)  # DOS time has 2 s resolution
        assert b.date_time == (1980, 1, 1, 0, 0, 0)  # clamped
        assert not b.flag_bits & 0x800
    assert dos_datetime(datetime(2200, 1, 1))[1] >> 9 == 127
    _check(body, files, members, tmp_path)


def test_deterministic_and_etag() -> None:
    store = _store(FILES)
    m1 = _members(FILES)
    z1, z2 = StoredZip(m1, store), StoredZip(list(m1), store)
    assert b"".join(z1) == b"".join(z2)
    assert z1.etag == z2.etag
    renamed = [ZipMember(m.name + "x", m.location, m.size, m.crc32) for m in m1]
    assert StoredZip(renamed, store).etag != z1.etag


def test_duplicate_names_refused() -> None:
    with pytest.raises(ValueError):
        StoredZip([ZipMember("a", "x", 0), ZipMember("a", "y", 0)], MemoryStorage())


def test_deflate_zip_roundtrip(tmp_path: Path) -> None:
    members = _members(FILES, crc=False)
    store = _store(FILES, chunk_size=3000)
    body = b"".join(deflate_zip(members, store))
    _check(body, FILES, members, tmp_path)
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_DEFLATED}
        assert zf.getinfo(members[4].name).compress_size < 100  # 10,000 zeros squeeze
    assert b"".join(deflate_zip(members, store)) == body  # deterministic too


def test_deflate_zip64_local_headers(tmp_path: Path) -> None:
    # A member catalogued as > 4 GiB gets ZIP64 headers and descriptor before its bytes are
    # seen; readers must accept that even when the bytes turn out small.
    files = {"z/1": b"tiny", "z/2": b"also tiny"}
    members = [ZipMember("a", "z/1", 5 * GiB), ZipMember("b", "z/2", 9)]
    body = b"".join(deflate_zip(members, _store(files)))
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        assert zf.read("a") == b"tiny"
        assert zf.read("b") == b"also tiny"
        assert zf.testzip() is None
    path = tmp_path / "d64.zip"
    path.write_bytes(body)
    _unzip_t(path)


def test_zip_members_layout_order_and_duplicates() -> None:
    ds = {7: DsInfo(7, "Ds 1", 3, "Inv", "v1", 1, "Fac"),
          8: DsInfo(8, "Ds 1", 3, "Inv", "v1", 1, "Fac")}  # same name: folders merge
    storage = _store({"3/8/u": b"abcd"})
    dfs = [DfInfo(30, "b.dat", "3/7/x", 7, 5, crc32_hex(123)),
           DfInfo(10, "a.dat", "3/7/y", 7, 0, None, datetime(2020, 1, 2), "v9"),
           DfInfo(20, "b.dat", "3/8/u", 8, None, "not-a-crc")]
    members, skipped = zip_members(ds, dfs, storage=storage)
    assert [m.name for m in members] == ["ids/Fac/Inv/v1/Ds+1/a.dat", "ids/Fac/Inv/v1/Ds+1/b.dat"]
    assert [m.location for m in members] == ["3/7/y", "3/8/u"]  # id order: 20 before 30
    assert members[1].size == 4 and members[1].crc32 is None
    assert members[0].mtime == datetime(2020, 1, 2) and members[0].identity == (10, "v9")
    assert [d.id for d in skipped] == [30]
    with pytest.raises(ValueError):
        zip_members(ds, [DfInfo(1, "n", "l", 7)])


def test_overlong_name_refused() -> None:
    with pytest.raises(ValueError):
        StoredZip([ZipMember("x" * 70_000, "a", 0)], MemoryStorage())
    with pytest.raises(ValueError):
        b"".join(deflate_zip([ZipMember("x" * 70_000, "a", 0)], MemoryStorage()))


def test_catalogue_crc_can_be_ignored() -> None:
    ds = {1: DsInfo(1, "d", 1, "i", "v", 1, "f")}
    store = _store({"1/1/a": b"data"})
    adler = format(zlib.adler32(b"data"), "x")  # not a CRC32, but looks like one
    df = DfInfo(1, "a", "1/1/a", 1, 4, adler)
    trusted, _ = zip_members(ds, [df])
    assert trusted[0].crc32 == zlib.adler32(b"data")
    members, _ = zip_members(ds, [df], catalogue_crc=False)
    assert members[0].crc32 is None
    body = b"".join(StoredZip(members, store))
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        assert zf.testzip() is None
