"""Job kinds for the tests that run several Cairn processes on one database, loaded into
each server as a plugin (``[server] plugins``). Each appends what it does to a log file named
in its payload (O_APPEND: one whole line per write), with the job id and the process id."""

from __future__ import annotations

import os
import time
from pathlib import Path

from cairn.jobs import JobContext, Kind
from cairn.startup import Cairn


def _note(path: str, *words: object) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(" ".join(map(str, words)) + "\n")


def record(ctx: JobContext) -> None:
    """Some work (``seconds`` of it), then a line ``<job id> <pid>``."""
    time.sleep(float(ctx.payload.get("seconds", 0)))  # the job's own work, not a wait
    _note(ctx.payload["log"], ctx.job.id, os.getpid())


def block(ctx: JobContext) -> None:
    """``start <job> <pid>``, then wait until the test creates the file ``release``, then
    ``done <job> <pid>``: a job the test can kill its process in the middle of."""
    _note(ctx.payload["log"], "start", ctx.job.id, os.getpid())
    release = Path(ctx.payload["release"])
    deadline = time.monotonic() + 300
    while not release.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the test never released the job")
        time.sleep(0.05)
    _note(ctx.payload["log"], "done", ctx.job.id, os.getpid())


def setup(cairn: Cairn) -> None:
    cairn.jobs.register(Kind("test.record", record), Kind("test.block", block))
