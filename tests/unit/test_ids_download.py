"""getData's body/status/headers decisions and put's storage half, without HTTP."""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from functools import partial
from pathlib import Path

import anyio
import pytest

from cairn.errors import ErrorType, IcatError
from cairn.ids.checksum import PutResult, crc32_hex
from cairn.ids.download import (
    FileBody,
    answer,
    content_disposition,
    download_body,
    download_name,
    must_zip,
)
from cairn.ids.mapper import DfInfo, DsInfo
from cairn.ids.ranges import make_etag
from cairn.ids.storage_local import LocalStorage
from cairn.ids.storage_memory import MemoryStorage
from cairn.ids.upload import put_answer, upload
from cairn.ids.zipstream import DeflateZip, StoredZip
from cairn.web.upload_stream import store_body

DS = {3: DsInfo(3, "ds", 2, "inv", "v", 1, "fac")}
DATA = {"2/3/a": b"alpha" * 1000, "2/3/b": b"", "2/3/c": b"charlie"}


def _dfs(with_crc: bool = True) -> list[DfInfo]:
    return [DfInfo(i + 10, f"{loc[-1]}.dat", loc, 3, len(d),
                   crc32_hex(zlib.crc32(d)) if with_crc else None)
            for i, (loc, d) in enumerate(DATA.items())]


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    s = LocalStorage(tmp_path / "main")
    for loc, d in DATA.items():
        s.put(loc, [d])
    return s


def test_must_zip() -> None:
    assert not must_zip([], [], [5])
    assert must_zip([], [], [5, 6])
    assert must_zip([], [1], [])
    assert must_zip([1], [], [5])
    assert must_zip([], [], [])  # an empty selection is an empty zip


def test_download_name() -> None:
    now = datetime(2024, 3, 9, 7, 5, 1)
    assert download_name(zip=True, outname=None, now=now) == "2024-03-09_07-05-01.zip"
    assert download_name(zip=True, outname="mydata") == "mydata.zip"
    assert download_name(zip=True, outname="mydata.zip") == "mydata.zip"
    assert download_name(zip=True, outname="mydata.ZIP") == "mydata.ZIP.zip"  # as ids.server
    assert download_name(zip=True, outname="a.tar") == "a.tar.zip"
    assert download_name(zip=False, outname=None, datafile_name="sub/x.dat") == "sub/x.dat"
    assert download_name(zip=False, outname="given", datafile_name="x.dat") == "given"
    with pytest.raises(ValueError):
        download_name(zip=False, outname=None)


def test_content_disposition() -> None:
    assert content_disposition("a.zip") == 'attachment; filename="a.zip"'
    assert content_disposition('q"b\\.dat') == 'attachment; filename="q\\"b\\\\.dat"'
    cd = content_disposition("Grüße.txt")
    assert cd == ("attachment; filename=\"Gr__e.txt\"; "
                  "filename*=UTF-8''Gr%C3%BC%C3%9Fe.txt")
    cd.encode("latin-1")  # always a valid header value
    content_disposition("a\r\nX-Injected: 1").encode("ascii")
    assert "\r" not in content_disposition("a\r\nX-Injected: 1")


def test_single_file_full_and_ranges(storage: LocalStorage) -> None:
    df = _dfs()[0]
    body = download_body(DS, [df], storage, zip=False, compress=False)
    assert isinstance(body, FileBody)
    a = answer(body, "a.dat")
    assert a.status == 200
    assert a.headers["Content-Length"] == "5000"
    assert a.headers["Content-Disposition"] == 'attachment; filename="a.dat"'
    assert a.headers["ETag"] == body.etag
    assert a.file == (storage.path("2/3/a"), 0, 5000)
    assert b"".join(a.chunks) == DATA["2/3/a"]
    r = answer(body, "a.dat", "bytes=4990-")
    assert (r.status, r.headers["Content-Range"]) == (206, "bytes 4990-4999/5000")
    assert b"".join(r.chunks) == DATA["2/3/a"][4990:]
    assert r.file == (storage.path("2/3/a"), 4990, 5000)
    assert answer(body, "a.dat", "bytes=5000-").status == 416
    assert answer(body, "a.dat", "bytes=10-", '"stale"').status == 200
    with pytest.raises(IcatError):
        answer(body, "a.dat", "bytes=x")


def test_single_file_uses_size_in_storage(storage: LocalStorage) -> None:
    wrong = DfInfo(1, "a.dat", "2/3/c", 3, 999_999)  # catalogue size is wrong
    body = download_body(DS, [wrong], storage, zip=False, compress=False)
    a = answer(body, "a.dat")
    assert a.headers["Content-Length"] == "7"
    assert b"".join(a.chunks) == b"charlie"


def test_single_file_changed_under_us(storage: LocalStorage) -> None:
    body = download_body(DS, [_dfs()[0]], storage, zip=False, compress=False)
    a = answer(body, "a.dat")
    storage.put("2/3/a", [b"short now"])
    with pytest.raises(IcatError) as e:
        b"".join(a.chunks)
    assert e.value.type == ErrorType.INTERNAL


def test_missing_single_file(storage: LocalStorage) -> None:
    with pytest.raises(IcatError) as e:
        download_body(DS, [DfInfo(1, "x", "2/3/none", 3, 1)], storage, zip=False,
                      compress=False)
    assert e.value.type == ErrorType.NO_SUCH_OBJECT_FOUND


def test_memory_storage_has_no_file(storage: LocalStorage) -> None:
    mem = MemoryStorage()
    mem.put("2/3/a", [b"xyz"])
    a = answer(download_body(DS, [_dfs()[0]], mem, zip=False, compress=False), "a")
    assert a.file is None and b"".join(a.chunks) == b"xyz"


@pytest.mark.parametrize("with_crc", [True, False])
def test_stored_zip_download_resume(storage: LocalStorage, with_crc: bool) -> None:
    body = download_body(DS, _dfs(with_crc), storage, zip=True, compress=False)
    assert isinstance(body, StoredZip)
    a = answer(body, "x.zip")
    assert a.status == 200 and a.file is None
    full = b"".join(a.chunks)
    assert a.headers["Content-Length"] == str(len(full))
    # An interrupted download resumed with curl -C - style Range + If-Range.
    cut = len(full) // 3
    r = answer(body, "x.zip", f"bytes={cut}-", a.headers["ETag"])
    assert r.status == 206
    assert full[:cut] + b"".join(r.chunks) == full
    with zipfile.ZipFile(io.BytesIO(full)) as zf:
        assert zf.namelist() == [f"ids/fac/inv/v/ds/{n}.dat" for n in "abc"]
        assert zf.read("ids/fac/inv/v/ds/c.dat") == b"charlie"


def test_deflate_zip_download(storage: LocalStorage) -> None:
    body = download_body(DS, _dfs(), storage, zip=True, compress=True)
    assert isinstance(body, DeflateZip) and body.length is None
    a = answer(body, "x.zip")
    assert a.status == 200 and "Content-Length" not in a.headers
    full = b"".join(a.chunks)
    with zipfile.ZipFile(io.BytesIO(full)) as zf:
        assert zf.testzip() is None
    r = answer(body, "x.zip", "bytes=100-")  # ids.server's resume: regenerate and skip
    assert r.status == 206 and "Content-Range" not in r.headers
    assert b"".join(r.chunks) == full[100:]
    assert answer(body, "x.zip", "bytes=0-10").status == 200  # not servable: ignored
    assert answer(body, "x.zip", "bytes=100-", '"other"').status == 200
    with pytest.raises(IcatError):
        answer(body, "x.zip", "bytes=abc")


def test_empty_selection_is_empty_zip(storage: LocalStorage) -> None:
    body = download_body(DS, [], storage, zip=True, compress=False)
    a = answer(body, "e.zip")
    data = b"".join(a.chunks)
    assert len(data) == 22 and zipfile.ZipFile(io.BytesIO(data)).namelist() == []
    assert answer(body, "e.zip", "bytes=0-").status == 206


def test_unzipped_needs_one_file(storage: LocalStorage) -> None:
    with pytest.raises(ValueError):
        download_body(DS, _dfs(), storage, zip=False, compress=False)


def test_etags_differ_by_kind(storage: LocalStorage) -> None:
    dfs = _dfs()
    tags = {download_body(DS, dfs, storage, zip=True, compress=False).etag,
            download_body(DS, dfs, storage, zip=True, compress=True).etag,
            download_body(DS, dfs[:1], storage, zip=False, compress=False).etag,
            download_body(DS, dfs[:1], storage, zip=True, compress=False).etag}
    assert len(tags) == 4
    assert make_etag([]) not in tags


# -- put ----------------------------------------------------------------------------------


def test_upload_and_answer(storage: LocalStorage) -> None:
    location, result = upload(storage, 2, 3, [b"hello ", b"world"])
    assert location.startswith("2/3/")
    assert storage.read_all(location) == b"hello world"
    assert result.crc32 == zlib.crc32(b"hello world")
    assert put_answer(77, location, result) == {
        "id": 77, "checksum": zlib.crc32(b"hello world"), "location": location, "size": 11}
    assert put_answer(1, "a\\b'c", result)["location"] == "a\\\\b\\'c"


async def _body(parts: list[bytes], fail_after: int | None = None) -> AsyncIterator[bytes]:
    for i, part in enumerate(parts):
        if fail_after is not None and i == fail_after:
            raise ConnectionResetError("client disconnected")
        await anyio.sleep(0)  # yields to the event loop, as each packet from a network does
        yield part


def test_store_body(storage: LocalStorage) -> None:
    """A request body (many small packets) stored as put stores it: on a thread of its own,
    fed 1 MiB chunks by the event loop."""
    parts = [bytes([i]) * 70_000 for i in range(40)]  # ~2.8 MB in 70 kB packets

    async def main() -> tuple[str, object]:
        return await store_body(partial(upload, storage, 2, 3), _body(parts))

    location, result = anyio.run(main)
    data = b"".join(parts)
    assert location.startswith("2/3/")
    assert storage.read_all(location) == data
    assert result == upload(MemoryStorage(), 1, 1, [data])[1]


def test_store_body_interrupted_leaves_nothing(storage: LocalStorage) -> None:
    before = sorted(o.location for o in storage.list())

    async def main() -> None:
        await store_body(partial(upload, storage, 2, 3),
                         _body([b"x" * 600_000] * 10, fail_after=5))

    with pytest.raises(ConnectionResetError):
        anyio.run(main)
    assert sorted(o.location for o in storage.list()) == before
    assert [p.name for p in (storage.root / "2" / "3").iterdir()
            if p.name.startswith(".")] == []
    assert not (storage.root / ".cairn-tmp").exists()  # no temporary file, no scratch folder


def test_store_body_stops_reading_when_storage_fails() -> None:
    class Full(MemoryStorage):
        def put(self, location: str, chunks: Iterable[bytes]) -> PutResult:
            next(iter(chunks))
            raise IcatError(ErrorType.INTERNAL, "disk full")

    read = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal read
        for _ in range(100):  # 60 MB, were it all read
            read += 1
            await anyio.sleep(0)  # yields to the event loop, as each packet from a network does
            yield b"x" * 600_000

    async def main() -> None:
        await store_body(partial(upload, Full(), 2, 3), body())

    with pytest.raises(IcatError, match="disk full"):
        anyio.run(main)
    assert read < 20
