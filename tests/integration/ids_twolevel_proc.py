"""A second (third...) Cairn process for the two-level storage tests.

    python -m tests.integration.ids_twolevel_proc worker URL MAIN ARCHIVE CACHE LOG STOP
    python -m tests.integration.ids_twolevel_proc hold URL MAIN ARCHIVE CACHE DATASET STOP

``worker`` runs a TwoLevel (DATASET unit) on local storage whose archive reads are slow and
logged to LOG (one line per restore), with its jobs on a running scheduler, prints ``ready``,
and when the file STOP appears prints the status of every dataset as JSON and exits.
``hold`` takes a SHARED lock on one dataset, as a download in progress does, prints
``locked``, and releases it when STOP appears.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import select

from cairn.config import DataSettings
from cairn.db.engine import Database
from cairn.ids.storage_local import LocalStorage
from tests.unit.ids_twolevel_fixtures import two_level


class LoggedArchive(LocalStorage):
    """Archive storage that records each full read (a dataset restore) and is slow, so that
    concurrent processes would have every chance to restore the same dataset twice."""

    def __init__(self, root: str, log: str) -> None:
        super().__init__(root)
        self.log = log

    def read(self, location: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        with open(self.log, "a", encoding="utf-8") as f:  # O_APPEND: one whole line each
            f.write(f"{location} {os.getpid()}\n")
        time.sleep(0.3)
        return super().read(location, start, end)


def wait_for_file(path: str) -> None:
    """Until the test creates ``path`` (its signal to go on)."""
    deadline = time.monotonic() + 300
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"the test never created {path}")
        time.sleep(0.02)


def main(argv: list[str]) -> None:
    mode, url, main_dir, archive_dir, cache = argv[:5]
    db = Database(url)
    settings = DataSettings(main=main_dir, archive=archive_dir, cache_dir=Path(cache),
                            write_delay_seconds=0, queue_interval_seconds=0.05)
    if mode == "worker":
        log, stop = argv[5:7]
        tl = two_level(db, LocalStorage(main_dir), LoggedArchive(archive_dir, log), settings)
        tl.scheduler.start()
        print("ready", flush=True)
        wait_for_file(stop)
        t = db.tables["Dataset"]
        with db.connect() as conn:
            ids = list(conn.execute(select(t.c.id).order_by(t.c.id)).scalars())
        found = tl.reader.datasets(ids)
        print(json.dumps({i: tl.status([found[i]], []) for i in ids}), flush=True)
        tl.scheduler.stop()
    elif mode == "hold":
        dataset, stop = int(argv[5]), argv[6]
        # Not started: a process that runs no jobs of its own, so the test decides when the
        # archive is tried (its lock outlives the test without heartbeats).
        tl = two_level(db, LocalStorage(main_dir), LocalStorage(archive_dir), settings)
        with tl.lock([dataset], shared=True):
            print("locked", flush=True)
            wait_for_file(stop)
        print("released", flush=True)
    else:
        raise SystemExit(f"unknown mode {mode}")
    db.dispose()


if __name__ == "__main__":
    main(sys.argv[1:])
