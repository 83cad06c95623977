"""moto's S3-protocol server in a process of its own, for the S3 storage tests.

The tests that use it import boto3 and moto with :func:`pytest.importorskip` (both are in
the ``test`` extra): missing, they are a reported skip. Installed but not starting, the
server is a failure, with its log.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.integration.server import free_port
from tests.waiting import wait_until

#: The credentials moto accepts (any); given to the server and to every client.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
STARTUP_SECONDS = 30


@contextmanager
def moto_server(folder: Path) -> Iterator[str]:
    """Run ``python -m moto.server`` on a free 127.0.0.1 port (log in ``folder``); yield its
    endpoint URL while it accepts connections."""
    port = free_port()
    log = folder / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                 "-p", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **CREDENTIALS})
    try:
        def listening() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"moto's server exited with status {proc.returncode}; "
                                   f"its log:\n{log.read_text(errors='replace')[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return True
            except OSError:
                return False

        wait_until(listening, STARTUP_SECONDS, f"moto's server to listen on port {port}",
                   step=0.1, detail=lambda: f"its log:\n{log.read_text(errors='replace')[-2000:]}")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
