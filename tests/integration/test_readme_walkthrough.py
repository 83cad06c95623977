"""The README's walkthrough ("A first hour with Cairn"), run as a newcomer would type it.

Blocks marked ``<!-- walkthrough: NAME [background] [file] -->`` are read from README.md and
run in a fresh folder holding a ``.venv`` link to this environment, so they run verbatim but
for one thing: a free port replaces 8123. ``sh`` blocks run in bash one after another and
share shell variables and functions, as in one terminal; a ``background`` block is a server,
waited for until it answers and stopped with Ctrl-C (SIGINT to its process group); a ``file``
block is saved under its name; the nginx block goes into a minimal nginx configuration.

Each test below is one stretch of the walkthrough that stands on its own, so they can run in
parallel: signing in, uploading and python-icat on the SQLite demo; PostgreSQL (skipped when
the README's server is not reachable); nginx in front (skipped when nginx is not installed).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import BACKENDS
from tests.integration.server import free_port
from tests.waiting import wait_until

README = Path(__file__).resolve().parents[2] / "README.md"
#: The port the README uses; the only text the tests change.
README_PORT = "8123"
#: Every marked block, in README order; a block added, renamed or moved must be run here.
WALKTHROUGH = ["start-demo", "sign-in", "upload", "mydata.py", "run-mydata", "postgresql",
               "serve-postgresql", "nginx-location", "serve-behind-proxy"]
#: How long a server may take to load the demo and answer (a shared machine, PostgreSQL).
SERVER_SECONDS = 300
#: The README says so.
JBLOGGS_INVESTIGATIONS = 11
#: A server stopped with Ctrl-C: the exit statuses it may have, and its last words.
INTERRUPTED = (0, 128 + signal.SIGINT, -signal.SIGINT)
SHUT_DOWN = "Application shutdown complete."

_MARK = re.compile(r"^<!-- walkthrough: (?P<name>\S+)(?P<options>(?: \w+)*) -->\n"
                   r"```(?P<lang>\w+)\n(?P<body>.*?)^```$", re.M | re.S)


@dataclass(frozen=True)
class Block:
    name: str
    lang: str
    body: str
    options: frozenset[str]

    def on_port(self, port: int) -> str:
        return re.sub(rf"\b{README_PORT}\b", str(port), self.body)


def read_blocks() -> dict[str, Block]:
    blocks = [Block(m["name"], m["lang"], m["body"], frozenset(m["options"].split()))
              for m in _MARK.finditer(README.read_text())]
    return {b.name: b for b in blocks}


BLOCKS = read_blocks()


def block(name: str) -> Block:
    assert name in BLOCKS, f"README.md has no block marked <!-- walkthrough: {name} -->"
    return BLOCKS[name]


class Background:
    """A server a block started, with its output in a file."""

    def __init__(self, command: str, cwd: Path, env: dict[str, str], log: Path,
                 port: int) -> None:
        self.log = log
        self.port = port
        with log.open("wb") as out:
            # Its own process group, as a terminal's foreground job: Ctrl-C reaches all of it.
            self.proc = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_until_serving(self) -> None:
        def answers() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited with status {self.proc.returncode}; "
                                     f"its output:\n{self.output()}")
            try:
                return httpx.get(f"http://127.0.0.1:{self.port}/icat/version",
                                 timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(answers, SERVER_SECONDS, f"the server on port {self.port} to answer",
                   step=0.2, detail=lambda: self.output()[-3000:])

    def interrupt(self) -> bool:
        """Ctrl-C; whether the server then shut down as it should (killed if it outlives a
        minute: then not)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
                return False
        # uvicorn shuts down, then dies of the SIGINT it caught, as Ctrl-C'd programs do:
        # bash reports that as 128 + 2.
        return self.proc.returncode in INTERRUPTED and SHUT_DOWN in self.output()


class Terminal:
    """A shell at the top of a fresh clone: ``.venv`` is this environment, 8123 is ``port``."""

    def __init__(self, root: Path) -> None:
        self.cwd = root / "clone"
        self.cwd.mkdir()
        (self.cwd / ".venv").symlink_to(sys.prefix, target_is_directory=True)
        self.state = root / "shell-state"  # variables and functions, kept between blocks
        self.port = free_port()
        # The newcomer's environment: none of the test run's own settings.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
        self.servers: list[Background] = []
        self._count = 0

    def run(self, b: Block) -> subprocess.CompletedProcess[str]:
        """Run an ``sh`` block with the variables and functions earlier blocks left; fail,
        showing its output, unless it exits with 0."""
        assert b.lang == "sh" and "background" not in b.options, b
        self._count += 1
        script = self.state.parent / f"block-{self._count}-{b.name}.sh"
        script.write_text(b.on_port(self.port))
        wrapper = f"""set -eo pipefail
__before=$(compgen -v)
if [ -f {self.state} ]; then source {self.state}; fi
source {script}
{{ for __v in $(compgen -v); do
     case $__v in __*|BASH*|FUNCNAME|PIPESTATUS|_) continue;; esac
     grep -qxF "$__v" <<< "$__before" || declare -p "$__v"
   done; declare -f; }} > {self.state}
"""
        done = subprocess.run(["bash", "-c", wrapper], cwd=self.cwd, env=self.env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (
            f"block {b.name!r} exited with {done.returncode}\n--- stdout\n{done.stdout}"
            f"\n--- stderr\n{done.stderr}")
        return done

    def variable(self, name: str) -> str:
        """A shell variable as the blocks so far left it."""
        done = subprocess.run(["bash", "-c", f'source {self.state}; printf %s "${name}"'],
                              capture_output=True, text=True, check=True)
        return done.stdout

    def save(self, b: Block) -> Path:
        assert "file" in b.options, b
        path = self.cwd / b.name
        path.write_text(b.on_port(self.port))
        return path

    def start(self, b: Block) -> Background:
        """Start a ``background`` block (a server) and wait until it answers."""
        assert b.lang == "sh" and "background" in b.options, b
        server = Background(b.on_port(self.port), self.cwd, self.env,
                            self.state.parent / f"{b.name}.log", self.port)
        self.servers.append(server)
        server.wait_until_serving()
        return server

    def close(self) -> None:
        for server in self.servers:
            server.interrupt()


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    if not (Path(sys.prefix) / "bin" / "cairn").exists():
        pytest.skip(f"no cairn command in {sys.prefix}/bin (make install)")
    term = Terminal(tmp_path)
    try:
        yield term
    finally:
        term.close()


def investigations_of(catalogue: Path, user: str) -> list[str]:
    with sqlite3.connect(f"file:{catalogue}?mode=ro", uri=True) as conn:
        return sorted(n for (n,) in conn.execute(
            "SELECT i.NAME FROM INVESTIGATION i JOIN INVESTIGATIONUSER iu "
            "ON iu.INVESTIGATION_ID = i.ID JOIN USER_ u ON u.ID = iu.USER_ID "
            "WHERE u.NAME = ?", (user,)))


def sign_in(base: str, user: str = "jbloggs", password: str = "demo") -> str:
    body = {"plugin": "db", "credentials": [{"username": user}, {"password": password}]}
    r = httpx.post(f"{base}/icat/session", data={"json": json.dumps(body)}, timeout=30)
    assert r.status_code == 200, r.text
    return str(r.json()["sessionId"])


def search(base: str, sid: str, query: str) -> list[Any]:
    r = httpx.get(f"{base}/icat/entityManager", params={"sessionId": sid, "query": query},
                  timeout=30)
    assert r.status_code == 200, r.text
    result: list[Any] = r.json()
    return result


def test_the_readme_marks_every_step_of_the_walkthrough() -> None:
    assert list(BLOCKS) == WALKTHROUGH


def test_a_scientist_signs_in_uploads_downloads_and_uses_python_icat(
        terminal: Terminal) -> None:
    demo = terminal.start(block("start-demo"))
    assert "db/jbloggs  password 'demo'" in demo.output(), demo.output()
    catalogue = terminal.cwd / "cairn-data" / "catalogue.db"
    theirs = investigations_of(catalogue, "db/jbloggs")
    assert len(theirs) == JBLOGGS_INVESTIGATIONS

    # "My data": one line per investigation, name first.
    out = terminal.run(block("sign-in")).stdout
    assert [line.split(" ", 1)[0] for line in out.splitlines()] == theirs, out

    out = terminal.run(block("upload")).stdout
    ds, df = int(terminal.variable("DS")), int(terminal.variable("DF"))
    assert f"datafile {df} of dataset {ds}: the same bytes came back" in out, out
    sent = (terminal.cwd / "results.txt").read_bytes()
    with sqlite3.connect(f"file:{catalogue}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT d.NAME, d.FILESIZE, i.NAME FROM DATAFILE d JOIN DATASET ds "
                           "ON ds.ID = d.DATASET_ID JOIN INVESTIGATION i "
                           "ON i.ID = ds.INVESTIGATION_ID WHERE d.ID = ?", (df,)).fetchone()
    assert row[:2] == ("results.txt", len(sent)) and row[2] in theirs

    terminal.save(block("mydata.py"))
    lines = terminal.run(block("run-mydata")).stdout.splitlines()
    assert [line.split(" ", 1)[0] for line in lines[:-1]] == theirs, lines
    assert lines[-1].startswith("results.txt in dataset ") and lines[-1].endswith(
        f": {sent!r}"), lines

    assert demo.interrupt(), demo.output()  # Ctrl-C stops it cleanly


def _postgresql_admin(database_url: str) -> str:
    """The README's PostgreSQL server, as a URL to its maintenance database; skips the test
    when it can't be used here."""
    if "postgresql" not in BACKENDS:
        pytest.skip("postgresql is not in CAIRN_TEST_BACKENDS")
    if shutil.which("createdb") is None:
        pytest.skip("createdb (PostgreSQL's client tools) is not installed")
    url = make_url(database_url)
    admin = url.set(drivername="postgresql+psycopg", database="postgres")
    engine = create_engine(admin, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                  {"n": url.database}).first()
    except Exception as e:  # any reason the server can't be used: skip, saying which
        pytest.skip(f"the README's PostgreSQL server is not reachable at "
                    f"{admin.render_as_string(hide_password=True)}: {type(e).__name__}")
    finally:
        engine.dispose()
    if exists:
        pytest.skip(f"database {url.database!r} already exists on the README's PostgreSQL "
                    "server; drop it to run this step")
    return admin.render_as_string(hide_password=False)


def test_the_catalogue_moves_to_postgresql(terminal: Terminal) -> None:
    step = block("postgresql")
    configured = re.search(r'^database = "(postgresql://[^"]+)"$', step.body, re.M)
    assert configured, step.body
    admin = _postgresql_admin(configured[1])
    name = make_url(configured[1]).database
    try:
        out = terminal.run(step).stdout
        assert "tables: as Cairn serves them" in out, out
        server = terminal.start(block("serve-postgresql"))
        assert re.search(rf"^Cairn serves .*\(catalogue: postgresql\+psycopg://.*/{name}\)$",
                         server.output(), re.M), server.output()
        base = f"http://127.0.0.1:{terminal.port}"
        mine = search(base, sign_in(base), "SELECT i.name FROM Investigation i JOIN "
                      "i.investigationUsers iu JOIN iu.user u WHERE u.name = :user")
        assert len(mine) == JBLOGGS_INVESTIGATIONS
        assert not (terminal.cwd / "cairn-data").exists()  # files under cairn-pg instead
        assert (terminal.cwd / "cairn-pg" / "main").is_dir()
        assert server.interrupt(), server.output()
    finally:
        terminal.close()  # before the drop: a server still connected would hold it
        engine = create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def _lan_address() -> str | None:
    """An address of this machine other than loopback, if it has one (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
            address = str(s.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


def _free_port_on(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {work}/access.log;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    server {{
        {listen}
{location}
    }}
}}
"""


@pytest.fixture
def nginx_work() -> Iterator[Path]:
    """A folder nginx's workers can use: they run as an unprivileged user when the tests run
    as root, and pytest's own temporary folders are private."""
    work = Path(tempfile.mkdtemp(prefix="cairn-nginx-"))
    work.chmod(0o755)
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_behind_nginx_uploads_and_downloads_stream_and_answers_name_the_public_url(
        terminal: Terminal, nginx_work: Path) -> None:
    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
    if nginx is None:
        pytest.skip("nginx is not installed (apt-get install nginx)")
    serve = block("serve-behind-proxy")
    public = re.search(r"CAIRN_SERVER__PUBLIC_URL=(\S+)", serve.body)
    assert public, serve.body
    location = block("nginx-location").on_port(terminal.port)
    proxy_port, lan = free_port(), _lan_address()
    listen = [f"listen 127.0.0.1:{proxy_port};"]
    lan_port = None
    if lan is not None:
        lan_port = _free_port_on(lan)
        listen.append(f"listen {lan}:{lan_port};")
    conf = nginx_work / "nginx.conf"
    conf.write_text(NGINX_CONF.format(work=nginx_work, listen="\n        ".join(listen),
                                      location=location))

    terminal.start(serve)
    log = (nginx_work / "stdout.log").open("wb")
    proxy = subprocess.Popen([nginx, "-e", str(nginx_work / "error.log"), "-p", str(nginx_work),
                              "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        via = f"http://127.0.0.1:{proxy_port}"

        def proxied() -> bool:
            if proxy.poll() is not None:
                raise AssertionError(f"nginx exited with {proxy.returncode}: "
                                     f"{(nginx_work / 'error.log').read_text()}")
            try:
                return httpx.get(f"{via}/icat/version", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(proxied, 30, "nginx to pass /icat/version to Cairn")
        sid = sign_in(via)
        [ds] = search(via, sid, "SELECT ds.id FROM Dataset ds JOIN ds.investigation i JOIN "
                                "i.investigationUsers iu JOIN iu.user u WHERE u.name = :user "
                                "ORDER BY ds.id LIMIT 0, 1")
        [fmt] = search(via, sid, "SELECT f.id FROM DatafileFormat f WHERE f.name = 'ascii'")
        # Over nginx's default client_max_body_size (1 MB), sent in chunks of unknown length.
        data = secrets.token_bytes(3 * 1024 * 1024 + 17)
        chunks = (data[i:i + 65536] for i in range(0, len(data), 65536))
        r = httpx.put(f"{via}/ids/put", params={"sessionId": sid, "name": "big.bin",
                                                 "datasetId": ds, "datafileFormatId": fmt},
                      content=chunks, timeout=60)
        assert r.status_code == 201, r.text
        r = httpx.get(f"{via}/ids/getData",
                      params={"sessionId": sid, "datafileIds": r.json()["id"]}, timeout=60)
        assert r.status_code == 200 and r.content == data

        # Answers name the public address, not the one Cairn listens on.
        r = httpx.get(f"{via}/ids/getIcatUrl", timeout=30)
        assert r.status_code == 200 and r.text == public[1], r.text
        r = httpx.get(f"{via}/ICATService/ICAT", params={"wsdl": ""}, timeout=30)
        assert f'location="{public[1]}/ICATService/ICAT"' in r.text, r.text[-2000:]

        if lan is not None:
            # The client's address reaches Cairn: a client of the proxy that is not on
            # loopback is refused /metrics, which loopback (nginx itself, here) may read.
            direct = httpx.get(f"http://127.0.0.1:{terminal.port}/metrics", timeout=30)
            assert direct.status_code == 200
            r = httpx.get(f"http://{lan}:{lan_port}/metrics", timeout=30)
            assert r.status_code == 403, r.text
    finally:
        proxy.terminate()
        try:
            proxy.wait(30)
        except subprocess.TimeoutExpired:
            proxy.kill()
            proxy.wait(10)
        log.close()
