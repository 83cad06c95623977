"""The data service with main storage in an S3-compatible object store (moto's server in its
own process), over real HTTP on every backend: put (multipart) and getData byte-exact, zips,
ranged resume, delete, and an interrupted upload leaving no object and no multipart upload."""

from __future__ import annotations

import io
import os
import socket
import uuid
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.conftest import BACKENDS
from tests.integration.ids_support import GONE, Fixture, Ids, Rest, build, start, uniq
from tests.integration.moto_server import moto_server
from tests.integration.server import Server
from tests.waiting import wait_until

boto3 = pytest.importorskip("boto3", reason="boto3 (in the test extra) is not installed")
pytest.importorskip("moto.server", reason="moto[server] (in the test extra) is not installed")

MB = 1 << 20


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with moto_server(tmp_path_factory.mktemp("moto")) as url:
        yield url


@dataclass
class Env:
    server: Server
    fx: Fixture
    ids: Ids
    rest: Rest
    jdoe: str
    client: object
    bucket: str

    def objects(self) -> set[str]:
        out = self.client.list_objects_v2(Bucket=self.bucket)  # type: ignore[attr-defined]
        return {o["Key"] for o in out.get("Contents", [])}

    def uploads(self) -> list[object]:
        out = self.client.list_multipart_uploads(Bucket=self.bucket)  # type: ignore[attr-defined]
        return list(out.get("Uploads", []))

    def uploaded_parts(self) -> int:
        """How many parts the unfinished multipart uploads hold."""
        client: Any = self.client
        uploads = client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        return sum(len(client.list_parts(Bucket=self.bucket, Key=u["Key"],
                                         UploadId=u["UploadId"]).get("Parts", []))
                   for u in uploads)


@pytest.fixture(scope="module", params=BACKENDS)
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, s3: str
        ) -> Iterator[Env]:
    client = boto3.client("s3", endpoint_url=s3, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    bucket = f"cairn-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=bucket)
    tmp = tmp_path_factory.mktemp(f"ids-s3-{request.param}")
    data = (f'main = "s3://{bucket}/facility/main"\ns3_endpoint_url = "{s3}"\n'
            's3_region = "us-east-1"\n')
    # Credentials from the environment, as the documentation asks.
    srv, drop = start(tmp, str(request.param), data,
                      env={"CAIRN_DATA__S3_ACCESS_KEY": "testing",
                           "CAIRN_DATA__S3_SECRET_KEY": "testing"})
    try:
        yield Env(srv, build(srv), Ids(srv), Rest(srv), srv.login("jdoe"), client, bucket)
    finally:
        srv.stop()
        drop()


def test_put_get_zip_range_delete(env: Env) -> None:
    fx, ids = env.fx, env.ids
    big = os.urandom(20 * MB + 5)  # several S3 parts
    small = b"small file"
    r = ids.put(env.jdoe, fx.ds_a1, uniq("big"), big, fx.fmt)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["checksum"] == zlib.crc32(big)
    assert f"facility/main/{body['location']}" in env.objects()
    df_small = ids.ok_put(env.jdoe, fx.ds_a1, uniq("small"), small, fx.fmt)
    r = ids.get_data(sessionId=env.jdoe, datafileIds=body["id"])
    assert r.content == big and r.headers["content-length"] == str(len(big))
    # Resume a broken download of the zip from the middle.
    params = {"sessionId": env.jdoe, "datafileIds": f"{body['id']},{df_small}"}
    whole = ids.get_data(**params)
    assert whole.status_code == 200
    half = len(whole.content) // 2
    r = ids.get_data({"Range": f"bytes={half}-", "If-Range": whole.headers["etag"]}, **params)
    assert r.status_code == 206 and whole.content[:half] + r.content == whole.content
    with zipfile.ZipFile(io.BytesIO(whole.content)) as z:
        assert sorted(z.read(n) for n in z.namelist()) == sorted([big, small])
    r = env.server.http.delete("/ids/delete", params={"sessionId": env.jdoe,
                                                      "datafileIds": body["id"]})
    assert r.status_code == 204
    assert f"facility/main/{body['location']}" not in env.objects()


def test_interrupted_upload_leaves_no_object(env: Env) -> None:
    before, gone = env.objects(), env.server.log_lines(GONE)
    host, port = env.server.url.removeprefix("http://").split(":")
    target = "/ids/put?" + urlencode({"sessionId": env.jdoe, "name": uniq("cut"),
                                      "datasetId": env.fx.ds_a1,
                                      "datafileFormatId": env.fx.fmt})
    assert env.uploads() == []
    with socket.create_connection((host, int(port))) as s:
        s.sendall(f"PUT {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {40 * MB}\r\n\r\n"
                  .encode())
        block = os.urandom(MB)
        for _ in range(18):  # past the first 8 MiB part
            s.sendall(block)
        # Cut only once the server has stored a part of a multipart upload: the abort then
        # has something to clean up.
        wait_until(env.uploaded_parts, 60,
                   "the server to store the first part of a multipart upload in S3",
                   detail=lambda: f"multipart uploads: {env.uploads()}")
    # The server logs the cut upload once storage has aborted it.
    assert env.server.expect_log_lines(GONE, gone + 1) == gone + 1
    assert env.uploads() == []
    assert env.objects() == before
