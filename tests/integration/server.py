"""Run a real Cairn server process for integration tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, select, text

from cairn.db.tables import TABLES
from tests.waiting import wait_until

USERS = {"root": "secret", "useroffice": "secret", "jdoe": "secret",
         # users of the authorization tests (test_authz_*.py)
         "acord": "secret", "ahau": "secret", "jbotu": "secret", "nbour": "secret",
         "rbeck": "secret"}
#: How long a server process may take to answer its first request.
STARTUP_SECONDS = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(path: Path, db_url: str, port: int, extra: str = "") -> Path:
    users = "\n".join(f'{name} = "{pw}"' for name, pw in USERS.items())
    path.write_text(f"""
[server]
host = "127.0.0.1"
port = {port}
data_dir = "{path.parent / 'data'}"

[catalogue]
database = "{db_url}"
root_users = ["simple/root", "db/root"]

[authn.simple]
type = "simple"
friendly = "Simple"
[authn.simple.users]
{users}

[authn.db]
type = "db"

[authn.anon]
type = "anon"
{extra}
""")
    return path


class Server:
    """A Cairn process serving one database; stopped with :meth:`stop`."""

    #: What `cairn demo` printed, for a server on a demo catalogue (portal_support).
    demo_output = ""

    def __init__(self, tmp: Path, db_url: str, extra_config: str = "",
                 env: dict[str, str] | None = None, log_level: str = "warning") -> None:
        self.db_url = db_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = write_config(tmp / "cairn.toml", db_url, self.port, extra_config)
        self.log = (tmp / "server.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cairn.cli", "serve", "--config", str(self.config),
             "--log-level", log_level],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        self.http = httpx.Client(base_url=self.url, timeout=30)
        try:
            self._wait()
        except BaseException:
            # Nobody gets this object to stop it: do not leave the process running.
            self.http.close()
            self.proc.kill()
            self.proc.wait(10)
            self.log.close()
            raise
        self.engine = create_engine(db_url)

    def _wait(self) -> None:
        def answers() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Cairn exited with status {self.proc.returncode} before "
                                   f"answering; its log:\n{self.log_text()}")
            try:
                return self.http.get("/icat/version").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(answers, STARTUP_SECONDS, f"Cairn to answer GET {self.url}/icat/version",
                   step=0.1, detail=lambda: f"its log:\n{self.log_text()[-3000:]}")

    def log_text(self) -> str:
        """The server's log (stdout and stderr) so far."""
        return Path(self.log.name).read_text(errors="replace")

    def log_lines(self, containing: str) -> int:
        """How many lines of the server's log so far contain ``containing``."""
        return sum(containing in line for line in self.log_text().splitlines())

    def await_log_lines(self, containing: str, count: int, timeout: float = 30) -> int:
        """Wait until ``count`` lines of the log contain ``containing``; return how many do
        (fewer if ``timeout`` passed first: the caller compares)."""
        deadline = time.monotonic() + timeout
        while (seen := self.log_lines(containing)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return seen

    def expect_log_lines(self, containing: str, count: int, timeout: float = 30) -> int:
        """Wait until at least ``count`` lines of the log contain ``containing`` and return
        how many do; fail after ``timeout`` seconds, naming the line and showing the log."""
        wait_until(lambda: self.log_lines(containing) >= count, timeout,
                   f"{count} line(s) of the server log to contain {containing!r}",
                   detail=lambda: (f"{self.log_lines(containing)} do; the log's tail:\n"
                                   f"{self.log_text()[-3000:]}"))
        return self.log_lines(containing)

    def login(self, user: str = "root", plugin: str = "simple") -> str:
        body = {"plugin": plugin, "credentials": [{"username": user},
                                                  {"password": USERS.get(user, "secret")}]}
        r = self.http.post("/icat/session", data={"json": json.dumps(body)})
        assert r.status_code == 200, r.text
        return str(r.json()["sessionId"])

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every catalogue table, to prove a failed request changed nothing."""
        out: dict[str, list[tuple[Any, ...]]] = {}
        with self.engine.connect() as conn:
            for name, table in TABLES.entity.items():
                out[name] = [tuple(r) for r in conn.execute(select(table).order_by(table.c.id))]
            out["PASSWD"] = [tuple(r) for r in conn.execute(select(TABLES.passwd))]
        return out

    def sql(self, statement: str, **params: Any) -> Any:
        with self.engine.begin() as conn:
            return conn.execute(text(statement), params)

    def stop(self) -> None:
        self.http.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.engine.dispose()
        self.log.close()
