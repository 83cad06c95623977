"""``/health`` and ``/ready``: for load balancers and orchestrators (Kubernetes probes).

``/health`` says the process answers HTTP; it touches nothing else, so it stays cheap and a
database outage never gets a healthy process restarted. ``/ready`` says whether this process
can serve: the catalogue database answers ``SELECT 1``, main storage and the data service's
cache take a write, and the job scheduler's loop has run lately. Each answers 200 or 503 with
``{"status": ..., "checks": {name: {"status": "ok" | "failing", "reason": ...}}}``.

The database is checked through an engine of its own, without a pool and with connect and
statement timeouts, so a probe neither waits behind busy requests for a pooled connection nor
hangs on an unreachable server. Each check runs in a daemon thread of its own and is awaited
at most ``timeout`` seconds; a check still running when the next probe comes is awaited
again rather than started twice, so a hung storage never piles up threads.
"""

from __future__ import annotations

import asyncio
import functools
import math
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from cairn.jobs import Periodic, Scheduler
from cairn.logs import Redactor
from cairn.web.jsonresponse import JSONResponse

if TYPE_CHECKING:
    from cairn.ids.storage import Storage
    from cairn.startup import Cairn

#: Seconds a readiness check may take before it counts as failing. Below Kubernetes' default
#: probe timeout would be 1 s; a probe should be given ``timeoutSeconds: 3`` or more.
READY_TIMEOUT = 2.0
#: The note main storage's check writes and removes (in this process's scratch area, where a
#: crash in between leaves it for the sweep of dead processes' leftovers).
PROBE_NOTE = "ready.probe"

_redact = Redactor()


@dataclass(frozen=True)
class Check:
    ok: bool
    reason: str

    def json(self) -> dict[str, str]:
        return {"status": "ok" if self.ok else "failing", "reason": self.reason}


def describe(e: BaseException) -> str:
    """One line on what failed: the error's type and first line, without secrets."""
    first = (str(e).strip().splitlines() or [""])[0][:300]
    return _redact(f"{type(e).__name__}: {first}" if first else type(e).__name__)


class Probe:
    """A blocking check run in a daemon thread and awaited at most ``timeout`` seconds; the
    check returns what it found (the reason of a success) or raises."""

    def __init__(self, name: str, check: Callable[[], str], timeout: float) -> None:
        self.name = name
        self.check = check
        self.timeout = timeout
        self._running: Future[str] | None = None
        self._since = 0.0

    def _start(self) -> Future[str]:
        future: Future[str] = Future()

        def run() -> None:
            try:
                future.set_result(self.check())
            except BaseException as e:
                future.set_exception(e)

        threading.Thread(target=run, name=f"cairn-ready-{self.name}", daemon=True).start()
        return future

    async def __call__(self) -> Check:
        future = self._running  # only touched on the event loop
        if future is None or future.done():
            future = self._running = self._start()
            self._since = time.monotonic()
        try:
            found = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)),
                                           self.timeout)
        except TimeoutError:
            return Check(False, f"no answer within {self.timeout:g} s (the check has been "
                                f"running for {time.monotonic() - self._since:.0f} s)")
        except Exception as e:
            return Check(False, describe(e))
        return Check(True, found)


def bounded_engine(url: str, timeout: float) -> Engine:
    """An engine on ``url`` that opens a fresh connection per use, giving up on connecting
    and on each statement after about ``timeout`` seconds."""
    u = make_url(url)
    whole = max(1, math.ceil(timeout))
    args: dict[str, Any]
    if u.drivername.startswith("sqlite"):
        args = {"timeout": timeout}  # waiting for a lock held by a writer
        if u.database and u.database != ":memory:" and not u.database.startswith("file:"):
            # mode=rw: a catalogue file gone missing is an error, not a new empty file.
            u = u.set(database=f"file:{urllib.parse.quote(u.database)}",
                      query={"mode": "rw", "uri": "true"})
    elif u.drivername.startswith("postgresql"):
        args = {"connect_timeout": whole,
                "options": f"-c statement_timeout={int(timeout * 1000)}"}
    elif u.drivername.startswith("mysql"):
        args = {"connect_timeout": whole, "read_timeout": whole, "write_timeout": whole}
    else:
        args = {}
    return create_engine(u, poolclass=NullPool, connect_args=args)


class SchedulerPulse:
    """A local periodic task of the job scheduler that notes when its loop last ran."""

    NAME = "ops.pulse"

    def __init__(self) -> None:
        self.last: float | None = None

    def __call__(self) -> None:
        self.last = time.monotonic()

    @classmethod
    def attach(cls, jobs: Scheduler) -> SchedulerPulse:
        existing = jobs.registry.periodic.get(cls.NAME)
        if existing is not None and isinstance(existing.run, SchedulerPulse):
            return existing.run  # one per scheduler, however many apps are built on it
        pulse = cls()
        jobs.register(Periodic(cls.NAME, jobs.poll_seconds, pulse, local=True))
        return pulse


class Readiness:
    """The checks of ``/ready`` for one assembled Cairn."""

    def __init__(self, cairn: Cairn, timeout: float = READY_TIMEOUT) -> None:
        self.db_engine = bounded_engine(cairn.db.url, timeout)
        self.query = "SELECT COUNT(*) FROM sqlite_master" if cairn.db.dialect == "sqlite" \
            else "SELECT 1"  # SQLite's SELECT 1 would not even open the file
        self.main: Storage = cairn.data.main
        data = cairn.settings.data
        # A read-only data service on single-level storage may sit on read-only storage.
        self.main_writes = data.write_enabled or data.two_level
        assert data.cache_dir is not None
        self.cache_dir = Path(data.cache_dir)
        self.pulse = SchedulerPulse.attach(cairn.jobs)
        self.stale = cairn.settings.job_stale_seconds
        self.probes: dict[str, Callable[[], Awaitable[Check]]] = {
            "database": Probe("database", self._database, timeout),
            "storage": Probe("storage", self._storage, timeout),
            "cache": Probe("cache", self._cache, timeout),
            "jobs": self._jobs,
        }

    def _database(self) -> str:
        started = time.perf_counter()
        with self.db_engine.connect() as conn:
            conn.execute(text(self.query)).all()
        return f"{self.query} answered in {(time.perf_counter() - started) * 1000:.0f} ms"

    def _storage(self) -> str:
        if not self.main_writes:
            self.main.exists(PROBE_NOTE)
            return "main storage answers (read-only data service: not written)"
        self.main.write_note(PROBE_NOTE, b"")
        self.main.drop_note(PROBE_NOTE)
        return "main storage took a write"

    def _cache(self) -> str:
        with tempfile.TemporaryFile(dir=self.cache_dir) as f:
            f.write(b"\0")
            f.flush()
        return f"{self.cache_dir} took a write"

    async def _jobs(self) -> Check:
        last = self.pulse.last
        if last is None:
            return Check(False, "the job scheduler has not started")
        ago = time.monotonic() - last
        if ago > self.stale:
            return Check(False, f"the job scheduler's loop last ran {ago:.0f} s ago; other "
                                f"processes take a process silent for {self.stale:g} s "
                                "for dead")
        return Check(True, f"the job scheduler's loop ran {ago:.1f} s ago")

    async def report(self) -> tuple[bool, dict[str, Any]]:
        names = list(self.probes)
        results = await asyncio.gather(*(self.probes[n]() for n in names))
        ok = all(c.ok for c in results)
        return ok, {"status": "ready" if ok else "not ready",
                    "checks": {n: c.json() for n, c in zip(names, results, strict=True)}}


@functools.cache  # reading the package metadata takes milliseconds
def _version() -> str:
    try:
        return version("cairn")
    except PackageNotFoundError:
        return "unknown"


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok", "version": _version()})


async def ready(request: Request) -> Response:
    readiness: Readiness = request.app.state.readiness
    ok, body = await readiness.report()
    return JSONResponse(body, status_code=200 if ok else 503,
                        headers={"Cache-Control": "no-store"})


def routes() -> list[BaseRoute]:
    return [Route("/health", health, methods=["GET"]), Route("/ready", ready, methods=["GET"])]
