"""Removing the files of deleted Datafiles from main storage once nobody reads them.

A download that has begun serves the files it started with, whole: a delete never cuts it
short. Every getData holds a SHARED lock on its datasets (:mod:`cairn.ids.locks`, rows of
CAIRN_IDS_LOCK, shared by every process on the catalogue database) from before it checks its
datafiles against the catalogue until its last byte is sent. A delete commits the catalogue
first and only then looks at those locks:

- nobody holds a lock on the file's dataset: the file goes at once;
- someone does: the file stays until every one of those holders has let go (or its process
  has died), then a job (kind ``ids.remove``) removes it. Readers that come later don't
  postpone it: they lock before they check the catalogue, so they no longer see the file.

Of a download that locks while a delete commits, one of the two sees the other: either the
delete sees the lock (and waits for it), or the download's check of the catalogue, which
comes after its lock, sees the Datafile gone (and leaves the file out, or answers 404 for a
file asked for by id). So no download ever opens a file that is already gone, and no file
of a deleted Datafile stays for longer than the downloads that were reading it.

The removal job is in the catalogue database: it survives a crash of the deleting process
(and runs wherever a Cairn serves the database); a reader that dies stops refreshing its
locks, which then count as released. A crash between the catalogue's commit and the job's
request leaves the delete's note, which the sweep of :mod:`cairn.ids.leftovers` hands to
:meth:`Removals.remove` as the process would have.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from cairn.db.engine import Database
from cairn.ids.locks import LockManager
from cairn.ids.storage import Storage
from cairn.jobs import Again, JobContext, JobQueue, Kind, Scheduler, backoff
from cairn.jobs.model import chunks

log = logging.getLogger(__name__)

#: The job that removes files once the downloads reading them are over.
KIND = "ids.remove"
#: Locations per removal job (a delete of a million datafiles is many small jobs).
BATCH = 500

#: A file to remove: its location and the id of its dataset (None: unknown, e.g. a note
#: written by an older Cairn; removed without waiting for anyone).
File = tuple[str, int | None]


class Removals:
    def __init__(self, db: Database, main: Storage, locks: LockManager,
                 referenced: Callable[[str], bool], jobs: Scheduler | None,
                 every: float) -> None:
        self.db = db
        self.main = main
        self.locks = locks
        self.referenced = referenced
        self.jobs = jobs
        #: Seconds between looks at whether the readers are done.
        self.every = every

    def job_kinds(self) -> list[Kind]:
        return [Kind(KIND, self._run, max_attempts=None,
                     retry_delay=backoff(self.every, 600.0))]

    def remove(self, files: Sequence[File], *, own: str | None = None) -> bool:
        """Remove each file that no Datafile names any more: now if no lock is held on its
        dataset (but ``own``, the caller's), else by a job once those holders are gone.
        False if a removal failed (the caller keeps its note, which the sweep finishes)."""
        datasets = {ds for _, ds in files if ds is not None}
        readers = self.locks.holders(datasets, but=own) if datasets else {}
        ok, later, waiting_for = True, [], set()
        for location, ds in files:
            if ds is not None and ds in readers:
                later.append(location)
                waiting_for |= readers[ds]
            else:
                ok = self._remove_one(location) and ok
        if later:
            self._request(later, sorted(waiting_for))
            log.info("the files of %d deleted datafiles stay until %d readers of their "
                     "datasets are done", len(later), len(waiting_for))
        return ok

    def _request(self, locations: list[str], holders: list[str]) -> None:
        payloads = [{"locations": batch, "holders": holders}
                    for batch in chunks(locations, BATCH)]
        if self.jobs is not None:
            for p in payloads:
                self.jobs.submit(KIND, p)
            return
        # A tool without a scheduler: the next Cairn that serves this database removes them.
        queue = JobQueue(self.db)
        with self.db.begin() as conn:
            for p in payloads:
                queue.enqueue(conn, KIND, p, max_attempts=None)

    def _remove_one(self, location: str) -> bool:
        """Remove the file unless a Datafile names it; False (logged) if that failed."""
        if self.referenced(location):
            return True  # another Datafile names it too
        try:
            self.main.delete(location)
        except Exception:
            log.exception("could not remove %s from main storage (its Datafile is deleted)",
                          location)
            return False
        return True

    def _run(self, ctx: JobContext) -> Again | None:
        p: dict[str, Any] = ctx.payload
        if self.locks.any_alive(p.get("holders", [])):
            return Again(after=self.every)
        failed = [loc for loc in p["locations"] if not self._remove_one(loc)]
        if failed:  # retried with back-off
            raise RuntimeError(f"{len(failed)} files of deleted datafiles could not be "
                               f"removed from main storage (the first: {failed[0]!r})")
        return None
