"""Storage in an S3-compatible object store (AWS S3, MinIO, Ceph RGW, ...), through boto3.

Location ``a/b/c`` is the object ``<prefix>a/b/c`` in the bucket. ``put`` streams: objects
smaller than one part go up in one PUT, larger ones as a multipart upload holding one part
in memory at a time (aborted on any failure, so no half object and no orphaned parts stay
behind). An object only becomes visible when its upload completes, which gives the atomicity
the local backend gets from rename.

A process killed during a multipart upload cannot abort it, and S3 lists unfinished uploads
without saying whose they are. So each one is noted in the scratch area
(``<prefix>.cairn-tmp/<process token>/<n>.upload``: its key, then also its upload id) before
it begins and until it ends; the sweep of a dead process aborts the uploads its notes name
(:meth:`S3Storage.clear_scratch`).
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from cairn.ids.checksum import Crc32Counter, PutResult
from cairn.ids.locations import check_location
from cairn.ids.scratch import SCRATCH
from cairn.ids.storage import CHUNK_SIZE, Storage, StoredObject, check_span, not_found

#: S3's smallest part (except the last) is 5 MiB; 8 MiB keeps requests few and memory low.
PART_SIZE = 8 << 20
_MAX_PARTS = 10_000
#: Parts double in size every this many, so uploads up to ~0.5 TB fit in S3's 10,000 parts
#: without guessing the size up front (memory stays 8 MiB until 16 GB, 16 MiB until 48 GB...).
_PARTS_PER_SIZE = 2_000
_MISSING = {"404", "NoSuchKey", "NotFound"}
_NO_UPLOAD = {"404", "NoSuchUpload"}
_UPLOAD_NOTE = ".upload"


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
        note: str | None = None
        parts: list[dict[str, Any]] = []
        part_size = self.part_size
        try:
            for chunk in chunks:
                counter.update(chunk)
                buf += chunk
                while len(buf) >= part_size:
                    if upload_id is None:
                        note = f"{uuid.uuid4().hex}{_UPLOAD_NOTE}"
                        upload_id = self._begin_upload(key, note)
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
                try:
                    self._abort(key, upload_id)
                except Exception:  # the original error matters more; the note stays, so
                    note = None    # the upload is aborted by the sweep once we are gone
            raise
        finally:
            if note is not None:
                with contextlib.suppress(Exception):
                    self.drop_note(note)
        return counter.result()

    def _begin_upload(self, key: str, note: str) -> str:
        """Start a multipart upload, noted before it exists (a sweep then never takes it for
        nobody's) and with its id once it does (so the sweep aborts exactly it)."""
        self.write_note(note, json.dumps({"key": key}).encode())
        upload_id: str | None = None
        try:
            upload_id = str(self.client.create_multipart_upload(
                Bucket=self.bucket, Key=key)["UploadId"])
            self.write_note(note, json.dumps({"key": key, "upload": upload_id}).encode())
        except BaseException:
            if upload_id is not None:
                with contextlib.suppress(Exception):
                    self._abort(key, upload_id)
            with contextlib.suppress(Exception):
                self.drop_note(note)
            raise
        return upload_id

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") not in _NO_UPLOAD:  # completed or gone
                raise

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
        scratch = self._scratch_root()
        for obj in self._objects(prefix):
            if not obj["Key"].startswith(scratch):  # unfinished work is no object
                yield StoredObject(obj["Key"][len(self.prefix):], int(obj["Size"]),
                                   obj["LastModified"].timestamp())

    def _objects(self, prefix: str) -> Iterator[dict[str, Any]]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                       Prefix=prefix)
        for page in pages:
            yield from page.get("Contents", [])

    # -- unfinished work ---------------------------------------------------------------------

    def _scratch_root(self) -> str:
        return f"{self.prefix}{SCRATCH}/"

    def _scratch(self, token: str) -> str:
        return f"{self._scratch_root()}{token}/"

    def write_note(self, name: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._scratch(self.token) + name,
                               Body=data)

    def drop_note(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._scratch(self.token) + name)

    def scratch_owners(self) -> set[str]:
        root = self._scratch_root()
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=root, Delimiter="/")
        return {p["Prefix"][len(root):].rstrip("/") for page in pages
                for p in page.get("CommonPrefixes", [])}

    def notes(self, token: str) -> dict[str, bytes]:
        base = self._scratch(token)
        out = {}
        for obj in self._objects(base):
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"]
            except ClientError as e:
                if e.response.get("Error", {}).get("Code") in _MISSING:
                    continue  # dropped meanwhile
                raise
            with contextlib.closing(body):
                out[obj["Key"][len(base):]] = body.read()
        return out

    def clear_scratch(self, token: str) -> bool:
        kept: set[str] = set()
        for name, data in self.notes(token).items():
            if not name.endswith(_UPLOAD_NOTE):
                continue
            key, upload_id = _upload_note(data)
            if upload_id is not None and key is not None:
                self._abort(key, upload_id)
            elif key is not None and not self._abort_unclaimed(key, token):
                kept.add(name)
        base = self._scratch(token)
        batch = [{"Key": o["Key"]} for o in self._objects(base)
                 if o["Key"][len(base):] not in kept]
        for i in range(0, len(batch), 1000):  # DeleteObjects takes at most 1000 keys
            self._delete_batch(batch[i:i + 1000])
        return not kept

    def _abort_unclaimed(self, key: str, dead: str) -> bool:
        """The dead process died between noting an upload of ``key`` and noting its id:
        abort the uploads of ``key`` that no other process's note claims. Uploads are listed
        before the notes are read, so an upload just begun by a live process is always seen
        with its note. False (try again later) while another process is beginning one."""
        uploads = [u["UploadId"] for u in self._uploads(key) if u["Key"] == key]
        if not uploads:
            return True
        claimed: set[str] = set()
        for token in self.scratch_owners() - {dead}:
            for name, data in self.notes(token).items():
                other_key, other_id = _upload_note(data)
                if name.endswith(_UPLOAD_NOTE) and other_key == key:
                    if other_id is None:
                        return False
                    claimed.add(other_id)
        for upload_id in uploads:
            if upload_id not in claimed:
                self._abort(key, upload_id)
        return True

    def _uploads(self, prefix: str) -> Iterator[dict[str, Any]]:
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=prefix)
        for page in pages:
            yield from page.get("Uploads", [])

    def clear_strays(self, older_than: float) -> int:
        cutoff = time.time() - older_than
        old = [u for u in self._uploads(self.prefix)
               if u["Initiated"].timestamp() < cutoff]
        if not old:
            return 0
        claimed: set[str] = set()
        busy: set[str] = set()
        for token in self.scratch_owners():
            for name, data in self.notes(token).items():
                key, upload_id = _upload_note(data)
                if name.endswith(_UPLOAD_NOTE) and key is not None:
                    (busy if upload_id is None else claimed).add(upload_id or key)
        n = 0
        for u in old:
            if u["UploadId"] not in claimed and u["Key"] not in busy:
                self._abort(u["Key"], u["UploadId"])
                n += 1
        return n


def _upload_note(data: bytes) -> tuple[str | None, str | None]:
    """The key and (once known) the upload id of an upload note."""
    try:
        note = json.loads(data)
    except ValueError:
        return None, None
    if not isinstance(note, dict):
        return None, None
    key, upload_id = note.get("key"), note.get("upload")
    return (key if isinstance(key, str) else None,
            upload_id if isinstance(upload_id, str) else None)


def _body_chunks(body: Any, chunk_size: int) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(chunk_size)
    finally:
        body.close()
