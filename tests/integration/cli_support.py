"""Running the real `cairn` command in a subprocess, and a TCP proxy that can take a database
server away from it and give it back."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str

    @property
    def errors(self) -> list[str]:
        """The lines of standard error that are not log lines."""
        return [line for line in self.stderr.splitlines()
                if line.strip() and " WARNING " not in line and " INFO " not in line]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any CAIRN_ setting of the caller's, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env.update(extra)
    return env


def cairn(cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120,
          python_prelude: str = "") -> Outcome:
    """``cairn ARGS`` run to its end in ``cwd``; ``python_prelude`` runs first in the same
    interpreter (to take a module away, say)."""
    code = f"{python_prelude}\nimport sys\nfrom cairn.cli import main\nsys.exit(main())"
    r = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True,
                       text=True, timeout=timeout, env=env if env is not None else clean_env())
    return Outcome(r.returncode, r.stdout, r.stderr)


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``target``; :meth:`stop` closes the listener and every
    forwarded connection (the database is gone for whoever used it), :meth:`start` listens
    again on the same port."""

    def __init__(self, target: tuple[str, int], port: int) -> None:
        self.target = target
        self.port = port
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        if self._listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would not, and
            # that accept() would still take one more connection.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
