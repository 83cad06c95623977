"""`cairn serve` with no configuration: SQLite under ./cairn-data, schema and root account."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.integration.server import STARTUP_SECONDS, free_port
from tests.waiting import wait_until


@contextmanager
def serve(cwd: Path, *args: str, env: dict[str, str] | None = None
          ) -> Iterator[tuple[httpx.Client, Path]]:
    port = free_port()
    log = cwd / f"serve-{port}.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "cairn.cli", "serve", "--port", str(port),
                                 "--log-level", "warning", *args],
                                cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        try:
            def answers() -> bool:
                assert proc.poll() is None, f"cairn serve exited: {log.read_text()}"
                try:
                    return client.get("/icat/version").status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(answers, STARTUP_SECONDS, f"cairn serve to answer on port {port}",
                       step=0.1, detail=lambda: log.read_text()[-3000:])
            yield client, log
        finally:
            client.close()
            proc.terminate()
            proc.wait(10)


def login(client: httpx.Client, user: str, password: str) -> httpx.Response:
    body = {"plugin": "db", "credentials": [{"username": user}, {"password": password}]}
    return client.post("/icat/session", data={"json": json.dumps(body)})


def test_serve_without_configuration(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    with serve(tmp_path, env=env) as (client, log):
        r = login(client, "root", "wrong")
        assert r.status_code == 403
        text = log.read_text()
        m = re.search(r"Created root account db/root with password: (\S+)", text)
        assert m, text
        password = m.group(1)
        r = login(client, "root", password)
        assert r.status_code == 200
        sid = r.json()["sessionId"]
        fac = client.post("/icat/entityManager", data={
            "sessionId": sid, "entities": json.dumps({"Facility": {"name": "Embedded"}})})
        assert fac.status_code == 200 and fac.json() == [1]  # ids count from 1 per table
    assert (tmp_path / "cairn-data" / "catalogue.db").is_file()
    # A restart keeps everything: data, the root password and even the session.
    with serve(tmp_path, env=env) as (client, log):
        assert "Created root account" not in log.read_text()
        assert client.get(f"/icat/session/{sid}").json()["userName"] == "db/root"
        got = client.get("/icat/entityManager",
                         params={"sessionId": sid, "query": "Facility", "id": 1})
        assert got.json()["Facility"]["name"] == "Embedded"


def test_root_password_from_environment(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env["CAIRN_ROOT_PASSWORD"] = "from-env-1"
    with serve(tmp_path, env=env) as (client, log):
        assert "from-env-1" not in log.read_text()  # never echo a given password
        assert login(client, "root", "from-env-1").status_code == 200


def test_bad_configuration_stops_with_a_clear_message(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[catalogue]\nsession_lifetime_minutes = -5\n")
    r = subprocess.run([sys.executable, "-m", "cairn.cli", "serve", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "catalogue.session_lifetime_minutes" in r.stderr
    assert "Traceback" not in r.stderr
