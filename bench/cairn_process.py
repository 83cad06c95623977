"""Start a Cairn server process for a benchmark and wait until it answers."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(work: Path, config_text: str, attempts: int = 600,
           command: Sequence[str] = ("-m", "cairn.cli")) -> tuple[subprocess.Popen[bytes], str]:
    """Write ``config_text`` to ``work/cairn.toml``, serve it; the process and its base URL.

    ``{port}`` in ``config_text`` becomes the port chosen (nothing else is touched). Exits
    the benchmark with Cairn's log if the server dies or does not answer within ``attempts``
    tenths of a second. ``command`` is what Python runs, given ``serve`` and its options (a
    wrapper such as ``bench/memtrace.py`` in place of ``-m cairn.cli``).
    """
    port = free_port()
    config = work / "cairn.toml"
    config.write_text(config_text.replace("{port}", str(port)))
    log = (work / "cairn.log").open("wb")
    proc = subprocess.Popen([sys.executable, *command, "serve", "--config", str(config),
                             "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(attempts):
        if proc.poll() is not None:
            sys.exit(f"Cairn exited: {(work / 'cairn.log').read_text()}")
        try:
            if httpx.get(url + "/icat/version").status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("Cairn did not start")


def launch_catalogue(work: Path, database: str, root: str, password: str, *,
                     catalogue: str = "", extra: str = "", attempts: int = 600,
                     command: Sequence[str] = ("-m", "cairn.cli")
                     ) -> tuple[subprocess.Popen[bytes], str]:
    """Serve ``database`` on a free port with ``simple/<root>`` as root user (its password
    ``password``); ``catalogue`` adds lines to the ``[catalogue]`` table, ``extra`` tables."""
    return launch(work, f"""
[server]
host = "127.0.0.1"
port = {{port}}
data_dir = "{work / 'data'}"
[catalogue]
database = "{database}"
root_users = ["simple/{root}"]
{catalogue}
[authn.simple]
type = "simple"
[authn.simple.users]
{root} = "{password}"
{extra}
""", attempts, command)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a Cairn started by :func:`launch`: SIGTERM, then SIGKILL if it is still busy
    (e.g. with a query that timed out)."""
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
