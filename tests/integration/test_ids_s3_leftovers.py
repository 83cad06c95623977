"""What a process killed during a put to S3 leaves (an unfinished multipart upload, its
notes), and how another process's sweep removes it without touching live uploads; against
moto's S3 server. Each storage object stands for one process (its token)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.moto_server import moto_server

boto3 = pytest.importorskip("boto3", reason="boto3 (in the test extra) is not installed")
pytest.importorskip("moto.server", reason="moto[server] (in the test extra) is not installed")

from cairn.ids.scratch import SCRATCH  # noqa: E402
from cairn.ids.storage_s3 import S3Storage  # noqa: E402

MB = 1 << 20


class Killed(BaseException):
    """Where the process died: nothing of it runs after this (see :func:`killed_put`)."""


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with moto_server(tmp_path_factory.mktemp("moto")) as url:
        yield url


@pytest.fixture
def bucket(endpoint: str) -> str:
    name = f"cairn-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                 aws_secret_access_key="testing", region_name="us-east-1"
                 ).create_bucket(Bucket=name)
    return name


def process(endpoint: str, bucket: str, owner: str) -> S3Storage:
    s = S3Storage(bucket, "main", endpoint_url=endpoint, part_size=5 * MB,
                  access_key="testing", secret_key="testing", region_name="us-east-1")
    s.bind(owner)
    return s


def uploads(s: S3Storage) -> dict[str, str]:
    """Unfinished uploads: id -> key."""
    answer: Any = s.client.list_multipart_uploads(Bucket=s.bucket)
    return {u["UploadId"]: u["Key"] for u in answer.get("Uploads", [])}


def killed_put(s: S3Storage, location: str, parts: int) -> None:
    """A put whose process is killed after ``parts`` parts went up: nothing of its clean-up
    (the abort, dropping its note) runs, as after SIGKILL."""
    s._abort = lambda key, upload_id: None  # type: ignore[method-assign]
    s.drop_note = lambda name: None  # type: ignore[method-assign]

    def body() -> Iterator[bytes]:
        for _ in range(parts):
            yield os.urandom(5 * MB)
        yield b"x"  # the last part waits here...
        raise Killed  # ...when the process dies

    with pytest.raises(Killed):
        s.put(location, body())


def test_a_killed_multipart_put_is_aborted_by_another_process(endpoint: str,
                                                              bucket: str) -> None:
    dead = process(endpoint, bucket, "host:1:dead")
    killed_put(dead, "1/2/big", parts=2)
    sweeper = process(endpoint, bucket, "host:2:sweeper")
    assert list(uploads(sweeper).values()) == ["main/1/2/big"]
    assert sweeper.scratch_owners() == {dead.token}
    (note,) = sweeper.notes(dead.token).values()
    assert set(json.loads(note)) == {"key", "upload"}
    assert [o.location for o in sweeper.list()] == []  # notes are no objects

    assert sweeper.clear_scratch(dead.token)
    assert uploads(sweeper) == {}
    assert sweeper.scratch_owners() == set()
    assert not sweeper.exists("1/2/big")


def test_death_between_beginning_an_upload_and_noting_its_id(endpoint: str,
                                                             bucket: str) -> None:
    dead = process(endpoint, bucket, "dead")
    live = process(endpoint, bucket, "live")
    # The dead process noted the key, created the upload, and died before noting the id.
    dead.write_note("w.upload", json.dumps({"key": "main/1/2/f"}).encode())
    dead.client.create_multipart_upload(Bucket=bucket, Key="main/1/2/f")
    # A live process is writing the same key (a job taken over) and has noted its upload.
    theirs = live._begin_upload("main/1/2/f", "l.upload")
    assert len(uploads(live)) == 2

    assert live.clear_scratch(dead.token)
    assert list(uploads(live)) == [theirs]  # only the dead one's upload went
    assert live.scratch_owners() == {live.token}


def test_a_live_process_beginning_an_upload_of_the_key_makes_the_sweep_wait(
        endpoint: str, bucket: str) -> None:
    dead, live = process(endpoint, bucket, "dead"), process(endpoint, bucket, "live")
    dead.write_note("w.upload", json.dumps({"key": "main/k"}).encode())
    dead.client.create_multipart_upload(Bucket=bucket, Key="main/k")
    # The live process has noted the key but not yet its upload id: whose upload is whose
    # cannot be told, so nothing is aborted this time.
    live.write_note("l.upload", json.dumps({"key": "main/k"}).encode())
    assert not live.clear_scratch(dead.token)
    assert len(uploads(live)) == 1
    assert live.notes(dead.token).keys() == {"w.upload"}
    live.drop_note("l.upload")
    assert live.clear_scratch(dead.token)
    assert uploads(live) == {}


def test_strays_are_uploads_no_note_names(endpoint: str, bucket: str) -> None:
    live = process(endpoint, bucket, "live")
    mine = live._begin_upload("main/mine", "m.upload")
    live.client.create_multipart_upload(Bucket=bucket, Key="main/older-cairn")
    live.client.create_multipart_upload(Bucket=bucket, Key="elsewhere/not-ours")
    # (moto says every upload began in 2010: all three are old enough)
    assert live.clear_strays(3600) == 1
    assert sorted(uploads(live).values()) == ["elsewhere/not-ours", "main/mine"]
    assert mine in uploads(live)


def test_a_finished_put_leaves_no_note(endpoint: str, bucket: str) -> None:
    s = process(endpoint, bucket, "p")
    s.put("1/1/f", [os.urandom(6 * MB)])
    assert s.scratch_owners() == set()
    answer: Any = s.client.list_objects_v2(Bucket=bucket, Prefix=f"main/{SCRATCH}/")
    assert answer.get("KeyCount", 0) == 0
