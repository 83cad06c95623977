"""Every way `cairn serve` can fail to start ends in one line saying what to do, a non-zero
exit status, and nothing on disk or in the database; a database that is down is waited for,
and while serving, its outage is named to clients."""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from cairn.cli import build_parser
from tests.conftest import SERVERS, make_database, server_reachable
from tests.integration.cli_support import Outcome, TcpProxy, cairn, clean_env
from tests.integration.server import Server, free_port
from tests.waiting import wait_until


def assert_failed_cleanly(out: Outcome, status: int, *fragments: str) -> None:
    """One error line holding ``fragments``, exit ``status``, no traceback."""
    assert out.returncode == status, out
    assert "Traceback" not in out.stderr, out.stderr
    assert len(out.errors) == 1, out.stderr
    for fragment in fragments:
        assert fragment in out.errors[0], out.errors[0]
    assert "Created root account" not in out.stdout


def assert_nothing_created(cwd: Path) -> None:
    assert sorted(p.name for p in cwd.iterdir()) == [], list(cwd.iterdir())


def db_env(url: str, **extra: str) -> dict[str, str]:
    return clean_env(CAIRN_CATALOGUE__DATABASE=url, CAIRN_CATALOGUE__DATABASE_WAIT_SECONDS="0",
                     **extra)


def server_url(backend: str, **changes: object) -> str:
    why = server_reachable(backend)
    if why:
        pytest.skip(why)
    return str(make_url(SERVERS[backend]).set(**changes)  # type: ignore[arg-type]
               .render_as_string(hide_password=False))


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    where = tmp_path / "cwd"
    where.mkdir()
    return where


# -- the command line --------------------------------------------------------------------------


def test_version(cwd: Path) -> None:
    out = cairn(cwd, "--version")
    assert out.returncode == 0
    assert out.stdout.strip() == "cairn 0.1.0 (ICAT 6.2.0)"


def _actions(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield path, action


def test_every_option_has_help() -> None:
    missing = [f"{path} {action.option_strings or action.dest}"
               for path, action in _actions(build_parser(), "cairn")
               if not action.help or action.help == argparse.SUPPRESS]
    assert missing == []


@pytest.mark.parametrize(("args", "fragment"), [
    (["serve", "--log-level", "foo"], "argument --log-level: invalid choice: 'foo'"),
    (["serve", "--port", "70000"], "a TCP port is a number from 1 to 65535"),
    (["demo", "--scale", "0"], "the demo's scale is a number above 0"),
    (["demo", "--scale", "-3"], "the demo's scale is a number above 0"),
])
def test_bad_arguments(cwd: Path, args: list[str], fragment: str) -> None:
    out = cairn(cwd, *args)
    assert out.returncode == 2, out
    assert fragment in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert_nothing_created(cwd)


# -- the port ----------------------------------------------------------------------------------


def test_port_in_use_is_found_before_anything_is_written(cwd: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = cairn(cwd, "serve", "--port", str(port))
    assert_failed_cleanly(out, 1, f"port {port} on 127.0.0.1 is in use", "--port")
    assert_nothing_created(cwd)


# -- the database ------------------------------------------------------------------------------


def test_unwritable_sqlite_path(cwd: Path) -> None:
    (cwd / "a-file").write_text("not a folder")
    out = cairn(cwd, "serve", "--port", str(free_port()),
                env=clean_env(CAIRN_SERVER__DATA_DIR=str(cwd / "a-file" / "data")))
    assert_failed_cleanly(out, 1, "cannot create the catalogue database",
                          f"{cwd / 'a-file'} is not a writable folder")
    assert [p.name for p in cwd.iterdir()] == ["a-file"]


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_unreachable_database(cwd: Path, backend: str) -> None:
    scheme = {"postgresql": "postgresql", "mariadb": "mariadb"}[backend]
    url = f"{scheme}://cairn@127.0.0.1:{free_port()}/icat"
    out = cairn(cwd, "serve", "--port", str(free_port()), env=db_env(url))
    assert_failed_cleanly(out, 1, "is unreachable", "Connection refused",
                          "start it, or correct [catalogue] database")
    assert_nothing_created(cwd)


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_refused_login(cwd: Path, backend: str) -> None:
    url = server_url(backend, username="cairn_nobody", password="wrong")
    out = cairn(cwd, "serve", "--port", str(free_port()), env=db_env(url))
    assert_failed_cleanly(out, 1, "refused the login", "cairn_nobody",
                          "correct the user or password in [catalogue] database")
    assert "wrong" not in out.stderr  # the password is not echoed
    assert_nothing_created(cwd)


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_missing_database(cwd: Path, backend: str) -> None:
    url = server_url(backend, database="cairn_no_such_database")
    out = cairn(cwd, "serve", "--port", str(free_port()), env=db_env(url))
    assert_failed_cleanly(out, 1, "the database 'cairn_no_such_database' does not exist",
                          "CREATE DATABASE cairn_no_such_database")
    assert_nothing_created(cwd)


def test_missing_driver_names_the_extra(cwd: Path) -> None:
    # As if psycopg were not installed: importing it fails.
    out = cairn(cwd, "serve", "--port", str(free_port()),
                env=db_env("postgresql://icat@127.0.0.1/icat"),
                python_prelude="import sys; sys.modules['psycopg'] = None")
    assert_failed_cleanly(out, 1, "the postgresql driver (psycopg) is not installed",
                          "pip install 'cairn[postgresql]'")
    assert_nothing_created(cwd)


def test_unknown_database_kind(cwd: Path) -> None:
    out = cairn(cwd, "serve", "--port", str(free_port()),
                env=db_env("oracle://icat@db.example.org/icat"))
    assert_failed_cleanly(out, 1, "Cairn runs on SQLite, PostgreSQL and MariaDB, not on oracle")
    assert_nothing_created(cwd)


# -- waiting for the database, and its outage while serving -------------------------------------


def _pg_target() -> tuple[str, int]:
    why = server_reachable("postgresql")
    if why:
        pytest.skip(why)
    u = make_url(SERVERS["postgresql"])
    return u.host or "127.0.0.1", u.port or 5432


def test_start_up_waits_for_the_database(tmp_path: Path) -> None:
    """Started before its database, Cairn logs one line per attempt and starts once the
    database answers."""
    target = _pg_target()
    url, drop = make_database("postgresql", tmp_path)
    proxy = TcpProxy(target, free_port())
    proxied = str(make_url(url).set(host="127.0.0.1", port=proxy.port)
                  .render_as_string(hide_password=False))
    port = free_port()
    log = tmp_path / "serve.log"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cairn.cli", "serve", "--port", str(port)], cwd=cwd,
            stdout=sink, stderr=subprocess.STDOUT,
            env=clean_env(CAIRN_CATALOGUE__DATABASE=proxied,
                          CAIRN_CATALOGUE__DATABASE_WAIT_SECONDS="120"))
    try:
        def attempts() -> int:
            return log.read_text().count("waiting for the catalogue database")

        wait_until(lambda: attempts() >= 2, 60, "two attempts to be logged",
                   detail=lambda: log.read_text())
        assert not (cwd / "cairn-data").exists()  # nothing made while waiting
        proxy.start()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            def answers() -> bool:
                assert proc.poll() is None, log.read_text()
                try:
                    return client.get("/icat/version").status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(answers, 60, "Cairn to answer once its database is up",
                       detail=lambda: log.read_text())
        text = log.read_text()
        lines = [line for line in text.splitlines() if "waiting for the catalogue" in line]
        # One line per attempt, numbered, each with the reason and the next pause.
        assert [f"(attempt {i}: Connection refused)" in line
                for i, line in enumerate(lines, 1)] == [True] * len(lines), lines
        assert "catalogue database unreachable" not in text  # no second line per attempt
        assert "Traceback" not in text
    finally:
        proc.terminate()
        proc.wait(10)
        proxy.stop()
        drop()  # type: ignore[operator]


def test_outage_while_serving_is_named_to_clients(tmp_path: Path) -> None:
    target = _pg_target()
    url, drop = make_database("postgresql", tmp_path)
    proxy = TcpProxy(target, free_port())
    proxy.start()
    proxied = str(make_url(url).set(host="127.0.0.1", port=proxy.port)
                  .render_as_string(hide_password=False))
    server = Server(tmp_path, proxied)
    try:
        sid = server.login("root")
        query = {"sessionId": sid, "query": "SELECT f FROM Facility f"}
        assert server.http.get("/icat/entityManager", params=query).status_code == 200
        proxy.stop()  # every connection of Cairn's pool is cut, and no new one can be made
        for _ in range(3):  # the first request finds the pool broken, the next ones refused
            r = server.http.get("/icat/entityManager", params=query)
            assert r.status_code == 500, r.text
            assert r.json() == {"code": "INTERNAL", "message":
                                "The catalogue database is unreachable; try again later "
                                "(the server's log says why)"}
        ids = server.http.get("/ids/getStatus", params={"sessionId": sid, "datafileIds": "1"})
        assert ids.status_code == 500
        assert ids.json()["message"].startswith("The catalogue database is unreachable")
        # A login too (the session table is in the same database).
        body = {"plugin": "simple", "credentials": [{"username": "root"},
                                                    {"password": "secret"}]}
        r = server.http.post("/icat/session", data={"json": json.dumps(body)})
        assert r.status_code == 500 and "database is unreachable" in r.json()["message"]
        proxy.start()

        def back() -> bool:
            return server.http.get("/icat/entityManager", params=query).status_code == 200

        wait_until(back, 60, "Cairn to serve again once its database is back")
        # The server's log says why, briefly, and no request counted it as a bug.
        assert server.log_lines("catalogue database unreachable") >= 1
        assert "unexpected error on" not in server.log_text()
    finally:
        server.stop()
        proxy.stop()
        time.sleep(0.1)
        drop()  # type: ignore[operator]
