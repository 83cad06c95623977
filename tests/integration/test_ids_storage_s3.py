"""S3 storage against a real S3-protocol server: moto's server, in its own process on a free
127.0.0.1 port (a reported skip if boto3 or moto is not installed; a failure if it is but the
server won't start)."""

from __future__ import annotations

import contextlib
import io
import os
import tracemalloc
import uuid
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.moto_server import moto_server
from tests.unit.test_ids_storage import Boom, StorageContract, failing

boto3 = pytest.importorskip("boto3", reason="boto3 (in the test extra) is not installed")
pytest.importorskip("moto.server", reason="moto[server] (in the test extra) is not installed")

from cairn.ids.archive import restore_dataset, write_dataset  # noqa: E402
from cairn.ids.storage_local import LocalStorage  # noqa: E402
from cairn.ids.storage_s3 import S3Storage  # noqa: E402
from cairn.ids.zipstream import StoredZip, ZipMember  # noqa: E402

MB = 1 << 20
CREDENTIALS = {"access_key": "testing", "secret_key": "testing", "region_name": "us-east-1"}


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with moto_server(tmp_path_factory.mktemp("moto")) as url:
        yield url


def _client(endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                        aws_secret_access_key="testing", region_name="us-east-1")


def _bucket(endpoint: str) -> str:
    name = f"cairn-{uuid.uuid4().hex[:12]}"
    _client(endpoint).create_bucket(Bucket=name)
    return name


class TestS3Storage(StorageContract):
    @pytest.fixture
    def storage(self, endpoint: str) -> S3Storage:
        return S3Storage(_bucket(endpoint), "main", endpoint_url=endpoint,
                         part_size=5 * MB, chunk_size=64 * 1024, **CREDENTIALS)

    def test_multipart_upload(self, storage: S3Storage) -> None:
        data = os.urandom(17 * MB + 123)  # three full parts and a short last one
        pieces = [data[i:i + 700_000] for i in range(0, len(data), 700_000)]
        r = storage.put("m/1/big", pieces)
        assert (r.size, r.crc32) == (len(data), zlib.crc32(data))
        assert storage.size("m/1/big") == len(data)
        assert b"".join(storage.read("m/1/big", 5 * MB - 10, 10 * MB + 10)) == \
            data[5 * MB - 10:10 * MB + 10]
        head = storage.client.head_object(Bucket=storage.bucket, Key="main/m/1/big")
        assert head["ETag"].strip('"').endswith("-4")  # it really went up in 4 parts

    def test_exactly_one_part(self, storage: S3Storage) -> None:
        data = os.urandom(5 * MB)
        storage.put("m/1/five", [data])
        assert storage.read_all("m/1/five") == data

    def test_failed_multipart_is_aborted(self, storage: S3Storage) -> None:
        with pytest.raises(Boom):
            storage.put("m/2/fail", failing([os.urandom(MB)] * 12))
        assert not storage.exists("m/2/fail")
        uploads = storage.client.list_multipart_uploads(Bucket=storage.bucket)
        assert uploads.get("Uploads", []) == []

    def test_prefix_isolation(self, storage: S3Storage, endpoint: str) -> None:
        other = S3Storage(storage.bucket, "archive", endpoint_url=endpoint, **CREDENTIALS)
        storage.put("1/2/x", [b"main"])
        other.put("1/2/x", [b"archive"])
        assert storage.read_all("1/2/x") == b"main"
        assert [o.location for o in other.list()] == ["1/2/x"]

    def test_put_memory_is_bounded(self, storage: S3Storage) -> None:
        def body() -> Iterator[bytes]:
            chunk = os.urandom(MB)
            for _ in range(40):
                yield chunk

        tracemalloc.start()
        try:
            storage.put("m/3/forty", body())
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert storage.size("m/3/forty") == 40 * MB
        assert peak < 4 * storage.part_size, peak

    def test_zip_from_s3_by_range(self, storage: S3Storage) -> None:
        files = {f"z/{i}": os.urandom(i * 1000) for i in range(5)}
        for loc, data in files.items():
            storage.put(loc, [data])
        z = StoredZip([ZipMember(f"ids/f/i/v/d/{i}", f"z/{i}", len(d), None)
                       for i, (loc, d) in enumerate(files.items())], storage)
        body = b"".join(z)
        assert len(body) == z.length
        with zipfile.ZipFile(io.BytesIO(body)) as zf:
            assert zf.testzip() is None
        assert b"".join(z.iter_range(1000, 5000)) == body[1000:5000]


def test_dataset_archive_on_s3(endpoint: str, tmp_path: Path) -> None:
    main = LocalStorage(tmp_path / "main")
    archive = S3Storage(_bucket(endpoint), endpoint_url=endpoint, part_size=5 * MB,
                        **CREDENTIALS)
    main.put("1/2/a", [b"alpha"])
    main.put("1/2/b", [os.urandom(6 * MB)])
    expected = {loc: main.read_all(loc) for loc in ("1/2/a", "1/2/b")}
    members = [ZipMember("ids/f/i/v/d/a", "1/2/a", 5), ZipMember("ids/f/i/v/d/b", "1/2/b", 6 * MB)]
    write_dataset(main, archive, "1/2", members)
    main.delete_folder("1/2")
    with contextlib.suppress(FileExistsError):
        (tmp_path / "work").mkdir()
    restore_dataset(archive, main, "1/2", {"a": "1/2/a", "b": "1/2/b"}, tmp_path / "work")
    assert {loc: main.read_all(loc) for loc in expected} == expected
