"""Storage in an S3-compatible object store (AWS S3, MinIO, Ceph RGW, ...), through boto3.

Location ``a/b/c`` is the object ``<prefix>a/b/c`` in the bucket. ``put`` streams: objects
smaller than one part go up in one PUT, larger ones as a multipart upload holding one part
in memory at a time (aborted on any failure, so no half object and no orphaned parts stay
behind). An object only becomes visible when its upload completes, which gives the atomicity
the local backend gets from rename.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from cairn.ids.checksum import Crc32Counter, PutResult
from cairn.ids.locations import check_location
from cairn.ids.storage import CHUNK_SIZE, Storage, StoredObject, check_span, not_found

#: S3's smallest part (except the last) is 5 MiB; 8 MiB keeps requests few and memory low.
PART_SIZE = 8 << 20
_MAX_PARTS = 10_000
#: Parts double in size every this many, so uploads up to ~0.5 TB fit in S3's 10,000 parts
#: without guessing the size up front (memory stays 8 MiB until 16 GB, 16 MiB until 48 GB...).
_PARTS_PER_SIZE = 2_000
_MISSING = {"404", "NoSuchKey", "NotFound"}


class S3Storage(Storage):
    def __init__(self, bucket: str, prefix: str = "", *, client: Any = None,
                 endpoint_url: str | None = None, region_name: str | None = None,
                 access_key: str | None = None, secret_key: str | None = None,
                 part_size: int = PART_SIZE, chunk_size: int = CHUNK_SIZE) -> None:
        if part_size < 5 << 20:
            raise ValueError("S3 parts must be at least 5 MiB")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self.bucket = bucket
        self.prefix = prefix
        self.part_size = part_size
        self.chunk_size = chunk_size
        self.client = client or boto3.client(
            "s3", endpoint_url=endpoint_url, region_name=region_name,
            aws_access_key_id=access_key, aws_secret_access_key=secret_key,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}))

    def __repr__(self) -> str:
        return f"S3Storage({self.bucket!r}, {self.prefix!r})"

    def key(self, location: str) -> str:
        return self.prefix + check_location(location)

    # -- writing ---------------------------------------------------------------------------

    def put(self, location: str, chunks: Iterable[bytes]) -> PutResult:
        key = self.key(location)
        counter = Crc32Counter()
        buf = bytearray()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        part_size = self.part_size
        try:
            for chunk in chunks:
                counter.update(chunk)
                buf += chunk
                while len(buf) >= part_size:
                    if upload_id is None:
                        upload_id = self.client.create_multipart_upload(
                            Bucket=self.bucket, Key=key)["UploadId"]
                    part = bytes(buf[:part_size])
                    del buf[:part_size]  # O(1) on a bytearray: no second copy of the rest
                    parts.append(self._upload_part(key, upload_id, len(parts) + 1, part))
                    del part
                    if len(parts) % _PARTS_PER_SIZE == 0:
                        part_size *= 2
            if upload_id is None:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=bytes(buf))
            else:
                if buf or not parts:
                    parts.append(self._upload_part(key, upload_id, len(parts) + 1, bytes(buf)))
                self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id,
                    MultipartUpload={"Parts": parts})
        except BaseException:
            if upload_id is not None:
                with contextlib.suppress(Exception):  # the original error matters more
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=key,
                                                       UploadId=upload_id)
            raise
        return counter.result()

    def _upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> dict[str, Any]:
        if number > _MAX_PARTS:
            raise ValueError("upload too large for S3 (more than 10,000 parts)")
        answer = self.client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                         PartNumber=number, Body=data)
        return {"PartNumber": number, "ETag": answer["ETag"]}

    def delete(self, location: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(location))

    def delete_folder(self, folder: str) -> None:
        batch: list[dict[str, str]] = []
        for obj in self.list(folder):
            batch.append({"Key": self.prefix + obj.location})
            if len(batch) == 1000:  # DeleteObjects takes at most 1000 keys
                self._delete_batch(batch)
                batch = []
        if batch:
            self._delete_batch(batch)

    def _delete_batch(self, batch: list[dict[str, str]]) -> None:
        self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    # -- reading ---------------------------------------------------------------------------

    def read(self, location: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        check_span(start, end)
        key = self.key(location)
        if end is not None and end == start:
            # S3 has no empty range; still fail now if the object is missing.
            self.size(location)
            return iter(())
        span = f"bytes={start}-" if end is None else f"bytes={start}-{end - 1}"
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=key, Range=span)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code")
            if code in _MISSING:
                raise not_found(location) from None
            if code == "InvalidRange":  # start at or past the end: no bytes, like a file
                self.size(location)
                return iter(())
            raise
        return _body_chunks(answer["Body"], self.chunk_size)

    def _head(self, location: str) -> dict[str, Any] | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self.key(location))
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise

    def size(self, location: str) -> int:
        head = self._head(location)
        if head is None:
            raise not_found(location)
        return int(head["ContentLength"])

    def exists(self, location: str) -> bool:
        return self._head(location) is not None

    def list(self, folder: str = "") -> Iterator[StoredObject]:
        prefix = self.prefix + (check_location(folder) + "/" if folder else "")
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                       Prefix=prefix)
        for page in pages:
            for obj in page.get("Contents", []):
                yield StoredObject(obj["Key"][len(self.prefix):], int(obj["Size"]),
                                   obj["LastModified"].timestamp())


def _body_chunks(body: Any, chunk_size: int) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(chunk_size)
    finally:
        body.close()
