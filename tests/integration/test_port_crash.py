"""A real ``cairn serve`` killed with SIGKILL in the middle of an import (``POST /icat/port``)
leaves the catalogue exactly as it was: an import is one transaction, so after the restart
every row is as before the request (or, had the import committed before the kill, all of it
is there), on every backend."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cairn.db import migrate
from cairn.db.engine import Database
from cairn.demo import load_demo
from cairn.port.exporter import Export
from cairn.startup import catalogue_of
from tests.conftest import BACKENDS, make_database
from tests.integration.server import Server

#: About 8,000 rows: an import of some seconds, long enough to be cut in the middle.
SCALE = 0.6
#: Seconds after the request is sent at which the server is killed.
KILL_AFTER = (0.8, 1.6, 2.4)


@pytest.fixture(scope="module")
def dump(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    tmp = tmp_path_factory.mktemp("port-crash-source")
    db = Database(f"sqlite:///{tmp / 'source.db'}")
    migrate.upgrade(db)
    try:
        cat = catalogue_of(db)
        load_demo(cat, scale=SCALE, user="db/root")
        return b"".join(Export(cat.as_system(read_only=True, user="db/root"), (), False)
                        .open())
    finally:
        db.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    url, drop = make_database(str(request.param), tmp_path)
    try:
        yield url
    finally:
        drop()  # type: ignore[operator]


def _kill(server: Server) -> None:
    server.proc.kill()
    server.proc.wait(10)
    server.stop()  # closes its client, engine and log; the process is already gone


def test_an_import_killed_midway_leaves_nothing(database_url: str, dump: bytes,
                                                tmp_path: Path) -> None:
    n = 0
    (tmp_path / "run0").mkdir()
    server = Server(tmp_path / "run0", database_url)
    cut_short = 0
    try:
        sid = server.login()
        for delay in KILL_AFTER:
            before = server.snapshot()
            answer: dict[str, Any] = {}

            def post(srv: Server = server, answer: dict[str, Any] = answer) -> None:
                try:
                    answer["r"] = srv.http.post(
                        "/icat/port", data={"json": json.dumps({"sessionId": sid})},
                        files={"file": ("icat.port", dump, "text/plain")}, timeout=300)
                except httpx.TransportError as e:
                    answer["error"] = e

            thread = threading.Thread(target=post)
            thread.start()
            time.sleep(delay)
            _kill(server)
            thread.join(30)
            n += 1
            (tmp_path / f"run{n}").mkdir()
            server = Server(tmp_path / f"run{n}", database_url)
            after = server.snapshot()
            r = answer.get("r")
            if r is not None and r.status_code == 204:  # it committed before the kill
                assert sum(map(len, after.values())) > sum(map(len, before.values()))
                continue
            cut_short += 1
            assert after == before, f"an import killed after {delay} s left rows behind"
        # Nothing here is worth much if every import had finished before its kill.
        assert cut_short >= 2, "the imports finished before the kills: make SCALE bigger"
        # And the catalogue still takes the whole import afterwards.
        r = server.http.post("/icat/port", data={"json": json.dumps({"sessionId": sid,
                                                                      "duplicate": "IGNORE"})},
                             files={"file": ("icat.port", dump, "text/plain")}, timeout=300)
        assert r.status_code == 204, r.text
    finally:
        server.stop()
