"""Nothing left behind by a crash: who is alive, and the sweep of what the dead left.

Every piece of unfinished work lives under its process's token (:mod:`cairn.ids.scratch`):
temporary files and multipart uploads of puts into a storage, restore zips in the cache,
and the notes of a put or delete in progress, which name the locations it is about to
create or remove. Whether a process is alive is read from the catalogue database, which
every process on every machine shares: a process is alive while any row of its own has a
heartbeat younger than the stale-claim timeout, be it a running job's claim (CAIRN_JOB), a
dataset lock, or its presence row (:class:`Presence`). That is the rule the job system
already uses to take over a dead process's jobs, so what a crash leaves is swept at the
moment its jobs are taken over, and never while the process lives (a process stalled for
longer than the timeout is taken for dead by both alike).

The sweep (:class:`Sweeper`) runs in every process at start-up and then once per timeout:
it removes dead owners' folders from this machine's cache at once, and for each dead owner
of a storage requests a job (kind ``ids.leftovers``, one per owner) that undoes its noted
work and clears its scratch area. A put's note makes a file that reached its location but
whose Datafile was never committed go again; a delete's note removes the files of Datafiles
whose deletion was committed (once the downloads still reading them are over, as the
deleting process would have: :mod:`cairn.ids.removal`). So after a crash at any point the
catalogue and storage show the operation done or not begun, never half of it. Archive
writes and restores need no notes: they are jobs, which run again after a crash and
overwrite what they had begun.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update

from cairn.db.engine import Database
from cairn.ids.scratch import ScratchDir, owner_token
from cairn.ids.storage import Storage
from cairn.jobs import Again, JobContext, Kind, Periodic, Scheduler, State
from cairn.jobs.model import retrying, utcnow

log = logging.getLogger(__name__)

#: The dataset id of presence rows in CAIRN_IDS_LOCK: a SHARED lock on no dataset, which
#: conflicts with nothing.
PRESENCE_DATASET = -1
#: The job that clears one dead owner's scratch areas (keyed by its token).
CLEAN = "ids.leftovers"
#: Unfinished work that names no owner (left by a Cairn before scratch areas) goes after this.
STRAY_SECONDS = 86400.0
#: Note name endings of the data service's operations in main storage.
PUT_NOTE, DELETE_NOTE = ".put", ".delete"


class Presence:
    """This process's sign of life in the catalogue database, and the liveness of others.

    The presence row is a lock row (CAIRN_IDS_LOCK) on :data:`PRESENCE_DATASET` with this
    process's name; refreshed ten times per stale timeout, as dataset locks are.
    """

    def __init__(self, db: Database, owner: str, stale_seconds: float) -> None:
        self.db = db
        self.t = db.tables.ids_lock
        self.job = db.tables.job
        self.owner = owner
        self.token = owner_token(owner)
        self.stale = stale_seconds
        self.holder = uuid.uuid4().hex
        self._beaten: float | None = None
        self._guard = threading.Lock()

    @property
    def every(self) -> float:
        return self.stale / 10

    def beat(self) -> None:
        """Refresh (or make again) this process's row; remove the rows of dead processes."""
        t = self.t

        def go() -> None:
            now = utcnow()
            with self.db.begin() as conn:
                if not conn.execute(update(t).where(t.c.holder == self.holder)
                                    .values(heartbeat=now)).rowcount:
                    conn.execute(insert(t).values(
                        holder=self.holder, dataset_id=PRESENCE_DATASET, shared=True,
                        owner=self.owner, heartbeat=now))
                conn.execute(delete(t).where(t.c.dataset_id == PRESENCE_DATASET,
                                             t.c.heartbeat < self._cutoff(now)))

        with self._guard:
            retrying(go)
            self._beaten = time.monotonic()

    def ensure(self) -> None:
        """Make sure the row exists and is fresh before this process starts work that
        leaves something in storage (the periodic beat keeps it fresh afterwards)."""
        beaten = self._beaten
        if beaten is None or time.monotonic() - beaten > self.every:
            self.beat()

    def _cutoff(self, now: datetime | None = None) -> datetime:
        # Whole seconds in the tables: a heartbeat may look up to a second older than it is.
        return (now or utcnow()) - timedelta(seconds=self.stale + 1)

    def live_tokens(self) -> set[str]:
        """Tokens of every process with a fresh heartbeat anywhere."""
        t, job, cutoff = self.t, self.job, self._cutoff()
        with self.db.connect() as conn:
            owners = set(conn.execute(select(t.c.owner).where(t.c.heartbeat >= cutoff)
                                      .distinct()).scalars())
            owners.update(conn.execute(select(job.c.claimed_by).where(
                job.c.state == State.RUNNING, job.c.heartbeat >= cutoff,
                job.c.claimed_by.is_not(None)).distinct()).scalars())
        return {owner_token(o) for o in owners}


class Sweeper:
    """Finds dead owners' work in the scratch areas of ``storages`` (main storage first: the
    notes are there) and of ``dirs`` (this machine's cache), and removes it."""

    def __init__(self, presence: Presence, storages: Sequence[Storage],
                 dirs: Sequence[ScratchDir], referenced: Callable[[str], bool],
                 jobs: Scheduler | None,
                 remove: Callable[[Sequence[tuple[str, int | None]]], bool] | None = None
                 ) -> None:
        self.presence = presence
        self.main = storages[0]
        self.storages = list(storages)
        self.dirs = list(dirs)
        self.referenced = referenced
        self.jobs = jobs
        #: How a noted file whose Datafile is gone is removed: by the data service, so that
        #: downloads still reading it finish first (:mod:`cairn.ids.removal`); None: at once.
        self.remove = remove
        self._strays_due = 0.0

    def job_kinds(self) -> list[Kind | Periodic]:
        return [Periodic("ids.presence", self.presence.every, self.presence.beat, local=True),
                # Local: at start-up in every process, and each looks at its own cache. Twice
                # per timeout: a dead process's leftovers go soon after its jobs are taken over.
                Periodic("ids.leftovers.find", self.presence.stale / 2, self.find, local=True),
                Kind(CLEAN, self._clean_job, max_attempts=None)]

    def mine(self) -> set[str]:
        return {self.presence.token, *(s.token for s in self.storages),
                *(d.token for d in self.dirs)}

    def find(self) -> list[str]:
        """One sweep; the dead owners found in storage (their clean-up is a job)."""
        # Listed before the liveness is read: a process that starts meanwhile has its row
        # written before it makes its folder, so it is either not listed or seen alive.
        in_dirs = [(d, d.owners()) for d in self.dirs]
        in_storage: set[str] = set()
        for s in self.storages:
            in_storage |= s.scratch_owners()
        live = self.presence.live_tokens() | self.mine()
        for d, owners in in_dirs:
            for token in sorted(owners - live):
                n = d.remove(token)
                log.warning("removed %d temporary files of a stopped process (%s) from %s",
                            n, token, d.root)
        dead = sorted(in_storage - live)
        if dead:
            self._request(dead)
        if time.monotonic() >= self._strays_due:  # hourly: it lists every unfinished upload
            self._strays_due = time.monotonic() + 3600
            for s in self.storages:
                if n := s.clear_strays(STRAY_SECONDS):
                    log.warning("aborted %d unfinished uploads older than a day in %r", n, s)
        return dead

    def _request(self, dead: list[str]) -> None:
        if self.jobs is None:  # tools without a scheduler do it themselves
            for token in dead:
                self.clean(token)
            return
        waiting = self.jobs.queue.active(CLEAN, dead)
        for token in dead:
            if token not in waiting:
                self.jobs.submit(CLEAN, {"owner": token}, key=token)

    def _clean_job(self, ctx: JobContext) -> Again | None:
        return None if self.clean(str(ctx.payload["owner"])) else \
            Again(after=self.presence.stale)

    def clean(self, token: str) -> bool:
        """Undo a dead owner's noted work and clear its scratch areas; False if something
        must wait for a later run."""
        if token in self.presence.live_tokens() | self.mine():
            return True  # a stalled process came back: its work is its own again
        notes = self.main.notes(token)
        undone = 0
        try:
            for name, data in sorted(notes.items()):
                if name.endswith((PUT_NOTE, DELETE_NOTE)):
                    undone += self._undo(name, data)
        except _Later:
            return False  # the notes stay for the next run
        cleared = [s.clear_scratch(token) for s in self.storages]
        log.warning("cleared what a stopped process (%s) left: %d notes, %d files of "
                    "unfinished puts and deletes removed (or left to be removed once "
                    "the downloads reading them end)", token, len(notes), undone)
        return all(cleared)

    def _undo(self, name: str, data: bytes) -> int:
        """Finish a noted put or delete the way the catalogue decided: a location no
        Datafile names goes (a put never committed, a delete committed); how many the note
        named that are gone now or will be once their readers are done."""
        try:
            body = json.loads(data)
            locations = body["locations"]
            datasets = body.get("datasets") or [None] * len(locations)
        except (ValueError, KeyError, TypeError, AttributeError):
            log.error("unreadable note %s ignored", name)
            return 0
        files = [(loc, ds if isinstance(ds, int) else None)
                 for loc, ds in zip(locations, datasets, strict=False)
                 if isinstance(loc, str) and not self.referenced(loc)
                 and self.main.exists(loc)]
        if self.remove is not None:
            if not self.remove(files):
                raise _Later()
            return len(files)
        for location, _ in files:
            self.main.delete(location)
        return len(files)


class _Later(Exception):
    """A removal failed: the clean-up of this owner runs again later."""


def note_body(locations: Sequence[str], datasets: Sequence[int] | None = None) -> bytes:
    """A note naming the locations an operation is about to create or remove, and the
    dataset of each (so that their removal can wait for the downloads reading them)."""
    body: dict[str, list[Any]] = {"locations": list(locations)}
    if datasets is not None:
        body["datasets"] = list(datasets)
    return json.dumps(body).encode()
