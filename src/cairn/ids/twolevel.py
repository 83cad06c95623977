"""Two-level storage: main storage in front of an archive, with jobs that move data between
them (ids.server's FiniteStateMachine, Tidier and LockManager, reference §2.4-§2.7).

One :class:`TwoLevel` per process. Everything that must survive is in the catalogue
database (DESIGN principle 4): the queue (:mod:`cairn.ids.jobs`), failure flags, and dataset
locks (:mod:`cairn.ids.locks`). So a restart, or any other Cairn process on the same
database, picks up queued work; a unit's job is claimed by one process at a time, so a
restore is never started twice; and a download in one process blocks archiving of its
datasets in every other.

A background thread polls the queue every ``queue_interval_seconds``: it refreshes this
process's claims and locks (heartbeats), claims runnable jobs (write delay expired) up to the
number of free workers, and runs them in a thread pool, each under its dataset lock (SHARED
for writes, EXCLUSIVE for archive, restore and delete); a job whose lock is busy goes back
to the queue for the next tick. A job claim or lock not refreshed for ``stale_claim_seconds``
belongs to a dead process: the job goes back to the queue, the lock is dropped. Every
``eviction_check_interval_seconds`` it measures main storage; above
``start_archiving_level_bytes`` it queues ARCHIVE for the oldest units until the rest would
fit under ``stop_archiving_level_bytes``. "Oldest" is the earliest modification time
on main storage of any of the unit's files, that is when the unit arrived there (upload or
restore); reads don't count, as with ids.storage_file.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from cairn.config import DataSettings
from cairn.db.engine import Database
from cairn.errors import IcatError, bad_parameter, internal
from cairn.ids import archive as copies
from cairn.ids.jobs import (
    ARCHIVING_STATES,
    WRITE_STATES,
    Failures,
    Job,
    JobQueue,
    Op,
    State,
    Unit,
    chunks,
)
from cairn.ids.locations import dataset_folder
from cairn.ids.locks import DataBusy, LockManager
from cairn.ids.mapper import DfInfo, DsInfo, ZipMapper
from cairn.ids.storage import Storage
from cairn.ids.worker import CatalogueReader, UnitWork

log = logging.getLogger(__name__)

__all__ = ["DataBusy", "TwoLevel"]


class TwoLevel:
    def __init__(self, db: Database, main: Storage, archive: Storage,
                 settings: DataSettings, *, mapper: ZipMapper | None = None,
                 workers: int = 4, stale_seconds: float | None = None,
                 tidy_interval_seconds: float | None = None, write_delay_cap: float = 10.0,
                 retry_seconds: float = 60.0) -> None:
        unit = str(settings.storage_unit).lower()
        if unit not in ("dataset", "datafile"):
            raise ValueError(f"storage_unit must be dataset or datafile, not {unit!r}")
        self.unit = Unit.DATASET if unit == "dataset" else Unit.DATAFILE
        self.db = db
        self.main = main
        self.archive = archive
        self.settings = settings
        self.interval = max(float(settings.queue_interval_seconds), 0.01)
        # Keyword arguments override the settings (tests).
        stale = float(stale_seconds if stale_seconds is not None
                      else settings.stale_claim_timeout)
        host = socket.gethostname()[:30]
        self.owner = f"{host}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.queue = JobQueue(db, self.unit, self.owner,
                              write_delay=float(settings.write_delay_seconds),
                              write_delay_cap=write_delay_cap, stale_seconds=stale)
        self.failures = Failures(db, self.unit)
        self.locks = LockManager(db, self.owner, stale_seconds=stale)
        self.reader = CatalogueReader(db, settings.key)
        cache = Path(settings.cache_dir) if settings.cache_dir else Path(tempfile.gettempdir())
        self.work = UnitWork(main, archive, self.reader, cache / "dataset", mapper)
        self.workers = max(1, workers)
        self.tidy_interval = float(tidy_interval_seconds if tidy_interval_seconds is not None
                                   else settings.eviction_check_interval_seconds)
        self.stale_seconds = stale
        self.retry_seconds = retry_seconds
        self._executor: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._tidier: threading.Thread | None = None
        # None: the first tick checks at once (time.monotonic() may still be smaller than a
        # long interval shortly after boot).
        self._last_tidy: float | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._running: set[int] = set()
        self._guard = threading.Lock()

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._clean_work_dir()
        self._stop.clear()
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="cairn-ids-job")
        self._thread = threading.Thread(target=self._poll, name="cairn-ids-queue", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop claiming and wait for running jobs (still heartbeating them); queued ones
        stay in the database."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._tidier is not None:
            self._tidier.join()
            self._tidier = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _poll(self) -> None:
        while True:
            stopping = self._stop.is_set()
            with self._guard:
                busy = bool(self._running)
            if stopping and not busy:
                break
            try:
                if stopping:  # no new work, but running jobs must not look abandoned
                    self._heartbeat()
                else:
                    self.tick()
            except Exception:
                log.exception("Two-level storage queue tick failed")
            self._wake.wait(self.interval)
            self._wake.clear()

    def _heartbeat(self) -> None:
        with self._guard:
            running = list(self._running)
        self.queue.heartbeat(running)
        self.locks.heartbeat()

    def tick(self) -> None:
        """One round of the poller: heartbeats, tidying when due, claiming and starting jobs."""
        self._heartbeat()
        now = time.monotonic()
        if ((self._last_tidy is None or now - self._last_tidy >= self.tidy_interval)
                and (self._tidier is None or not self._tidier.is_alive())):
            self._last_tidy = now
            # Its own thread: walking a big main storage must not delay heartbeats.
            self._tidier = threading.Thread(target=self._tidy_logged, name="cairn-ids-tidy",
                                            daemon=True)
            self._tidier.start()
        executor = self._executor
        if executor is None:
            return
        with self._guard:
            free = self.workers - len(self._running)
        for job in self.queue.claim(free):
            with self._guard:
                self._running.add(job.id)
            executor.submit(self._run, job)

    def process_once(self) -> int:
        """Run every job that is runnable now in the calling thread; return how many ran
        (tests and tools; the poller does this in the background)."""
        jobs = self.queue.claim(1 << 16)
        for job in jobs:
            self.execute(job)
        return len(jobs)

    def _run(self, job: Job) -> None:
        try:
            self.execute(job)
        except Exception:
            log.exception("Job %s failed unexpectedly", job.id)
            try:  # don't leave it claimed: retry later
                self.queue.release(job, retry_after=self.retry_seconds)
            except Exception:
                log.exception("Job %s could not be released; it is retried once stale",
                              job.id)
        finally:
            with self._guard:
                self._running.discard(job.id)
            self._wake.set()  # follow-up work (ARCHIVE after WRITE_THEN_ARCHIVE), free slot

    def _clean_work_dir(self) -> None:
        """Temporary restore zips left by a crash (a day old: another process on this
        machine may be using the same cache directory right now)."""
        cutoff = time.time() - 86400
        try:
            for p in self.work.work_dir.glob(".cairn-restore-*"):
                if p.stat().st_mtime < cutoff:
                    p.unlink(missing_ok=True)
        except OSError:
            pass

    # -- the interface of the data service ----------------------------------------------------

    def status(self, datasets: list[DsInfo], datafiles: list[DfInfo]) -> str:
        """getStatus (§1.3): ARCHIVED if any unit is queued or being processed for archive
        (any state but WRITE_REQUESTED and RESTORE_REQUESTED) or is missing from main
        storage, else RESTORING if any is being restored, else ONLINE. Never queues."""
        units = self._units(datasets, datafiles)
        if not units:
            return "ONLINE"
        self.check_failures(datasets, datafiles)
        jobs = self.queue.jobs(units)
        restoring = False
        unknown: list[int] = []
        for uid in units:
            states = _states(jobs.get(uid))
            if states & ARCHIVING_STATES:
                return "ARCHIVED"
            if State.RESTORE_REQUESTED in states:
                restoring = True
            else:
                unknown.append(uid)
        if not self._all_online(unknown, datasets, datafiles):
            return "ARCHIVED"
        return "RESTORING" if restoring else "ONLINE"

    def check_failures(self, datasets: list[DsInfo], datafiles: list[DfInfo]) -> None:
        """INTERNAL "Restore failed" if any unit of the selection carries a failure flag."""
        units = self._units(datasets, datafiles)
        if units and self.failures.of(units):
            raise internal("Restore failed")

    def ensure_online(self, datasets: list[DsInfo], datafiles: list[DfInfo]) -> bool:
        """True if everything is on main storage; else queue RESTORE for what isn't (or may
        soon not be: queued for archive) and return False. Like ids.server's getData, this
        queues a restore even for a unit flagged as failed (call :meth:`check_failures`
        first for isPrepared's "Restore failed")."""
        units = self._units(datasets, datafiles)
        if not units:
            return True
        jobs = self.queue.jobs(units)
        offline: set[int] = set()
        restore: dict[int, str | None] = {}
        unknown: list[int] = []
        for uid, key in units.items():
            states = _states(jobs.get(uid))
            if State.RESTORE_REQUESTED in states:
                offline.add(uid)
            elif states & ARCHIVING_STATES:
                offline.add(uid)
                restore[uid] = key
            else:
                unknown.append(uid)
        for uid in self._offline(unknown, datasets, datafiles, stop_at_first=False):
            offline.add(uid)
            restore[uid] = units[uid]
        if restore:
            self.queue.request(Op.RESTORE, restore)
            self._wake.set()
        return not offline

    def request(self, op: str, datasets: list[DsInfo], datafiles: list[DfInfo]) -> None:
        """Queue ARCHIVE, RESTORE, WRITE or DELETE for the units of a selection. In DATASET
        mode DELETE rewrites the datasets' archive zips (WRITE). Callers check beforehand
        what the HTTP call requires (e.g. ``write`` refuses data that is not online)."""
        try:
            wanted = Op(op.upper())
        except ValueError:
            raise bad_parameter(f"Unknown two-level operation {op!r}") from None
        if wanted is Op.DELETE and self.unit is Unit.DATASET:
            wanted = Op.WRITE
        units = self._units(datasets, datafiles)
        if units:
            self.queue.request(wanted, units)
            self._wake.set()

    def reset(self, datasets: list[DsInfo], datafiles: list[DfInfo]) -> None:
        """Clear the failure flags of the selection's units."""
        self.failures.clear(self._units(datasets, datafiles))

    def after_put(self, dataset: DsInfo, datafile: DfInfo) -> None:
        """A file was stored on main storage: queue the write of its unit to the archive."""
        self.request("WRITE", [dataset], [] if self.unit is Unit.DATASET else [datafile])

    def after_delete(self, datasets: list[DsInfo], datafiles: list[DfInfo]) -> None:
        """Datafiles were deleted: rewrite their datasets' zips (DATASET), or delete their
        archive copies (DATAFILE)."""
        if self.unit is Unit.DATASET:
            self.request("WRITE", datasets, datafiles)
        else:
            self.request("DELETE", [], datafiles)

    def service_status(self) -> dict[str, Any]:
        """getServiceStatus: the queue (running jobs too), locks and failures."""
        ops = []
        for job in self.queue.all():
            data = job.location or f"{job.unit.lower()} {job.unit_id}"
            if job.running is not None:
                ops.append({"data": data, "request": job.running.value, "running": True})
            if job.state is not None:
                ops.append({"data": data, "request": job.state.value})
        locks = self.locks.summary()
        return {"opsQueue": ops, "lockCount": len(locks), "locks": locks,
                "failures": self.failures.all()}

    def lock(self, dataset_ids: list[int], shared: bool) -> AbstractContextManager[None]:
        """Hold dataset locks (in every process) for a ``with`` block; DataBusy (answer 503
        "Data is busy") when another holder conflicts. Downloads and uploads take SHARED."""
        return self.locks.lock(dataset_ids, shared)

    # -- selections ---------------------------------------------------------------------------

    def _units(self, datasets: Iterable[DsInfo],
               datafiles: Iterable[DfInfo]) -> dict[int, str | None]:
        """The selection's units -> their storage keys. DATASET: the datasets and those of
        the datafiles; DATAFILE: the datafiles (the caller expands datasets into them)."""
        if self.unit is Unit.DATAFILE:
            return {df.id: df.location for df in datafiles}
        out: dict[int, str | None] = {
            ds.id: dataset_folder(ds.investigation_id, ds.id) for ds in datasets}
        missing = {df.dataset_id for df in datafiles} - out.keys()
        if missing:
            found = self.reader.datasets(missing)
            for ds_id in missing:
                ds = found.get(ds_id)
                out[ds_id] = dataset_folder(ds.investigation_id, ds.id) if ds else None
        return out

    def _all_online(self, unit_ids: list[int], datasets: list[DsInfo],
                    datafiles: list[DfInfo]) -> bool:
        return not self._offline(unit_ids, datasets, datafiles, stop_at_first=True)

    def _offline(self, unit_ids: list[int], datasets: list[DsInfo], datafiles: list[DfInfo],
                 *, stop_at_first: bool) -> list[int]:
        """Units not (entirely) on main storage."""
        out: list[int] = []
        if not unit_ids:
            return out
        if self.unit is Unit.DATAFILE:
            given = {df.id: df for df in datafiles}
            for uid in unit_ids:
                if not self.work.datafile_online(given[uid]):
                    out.append(uid)
                    if stop_at_first:
                        break
            return out
        known = {ds.id: ds for ds in datasets}
        # In batches: a big selection's file list never sits in memory whole, and a status
        # answer stops at the first offline dataset.
        for batch in chunks(unit_ids, 200):
            missing = set(batch) - known.keys()
            if missing:
                known.update(self.reader.datasets(missing))
            files = self.reader.datafiles_of(batch)
            for uid in batch:
                ds = known.get(uid)
                if ds is None:
                    continue  # gone from the catalogue: nothing of it to be online
                if not self.work.dataset_online(ds, files.get(uid, [])):
                    out.append(uid)
                    if stop_at_first:
                        return out
        return out

    # -- running jobs -------------------------------------------------------------------------

    def execute(self, job: Job) -> None:
        """Run one claimed job under its dataset lock and record the outcome."""
        state = job.running
        assert state is not None
        try:
            holder = self.locks.acquire(self._lock_targets(job), state in WRITE_STATES)
        except DataBusy:
            self.queue.release(job)  # retried next tick
            return
        try:
            if state is State.ARCHIVE_REQUESTED:
                current = self.queue.get(job.id)
                if current is not None and current.state in WRITE_STATES:
                    # A put queued a write while we waited for the lock: evicting now would
                    # lose it. Back in the queue this becomes WRITE_THEN_ARCHIVE.
                    self.queue.release(job)
                    return
            try:
                self._do(state, job)
            except Exception as e:
                self._failed(job, state, e)
                return
            if state is State.RESTORE_REQUESTED:
                self.failures.clear([job.unit_id])
            then = Op.ARCHIVE if state is State.WRITE_THEN_ARCHIVE_REQUESTED else None
            self.queue.finish(job, then=then)
        finally:
            self.locks.release(holder)

    def _failed(self, job: Job, state: State, e: Exception) -> None:
        what = f"{state.value} of {job.unit.lower()} {job.unit_id}"
        message = e.message if isinstance(e, IcatError) else f"{type(e).__name__}: {e}"
        if isinstance(e, IcatError):
            log.error("%s failed: %s", what, message)
        else:
            log.exception("%s failed", what)
        if state is State.RESTORE_REQUESTED:
            self.failures.set(job.unit_id, message)  # until reset or a later success
            self.queue.finish(job)
        elif state is State.ARCHIVE_REQUESTED:
            self.queue.finish(job)  # still (partly) on main storage: nothing is lost
        else:
            # Writes and deletes must happen eventually (a pending write also keeps the unit
            # from being archived): retry later.
            self.queue.release(job, retry_after=self.retry_seconds)

    def _lock_targets(self, job: Job) -> list[int]:
        if job.unit is Unit.DATASET:
            return [job.unit_id]
        df = self.reader.datafiles([job.unit_id]).get(job.unit_id)
        return [df.dataset_id] if df is not None else []

    def _do(self, state: State, job: Job) -> None:
        w = self.work
        if job.unit is Unit.DATASET:
            actions = {State.WRITE_REQUESTED: w.write_dataset,
                       State.WRITE_THEN_ARCHIVE_REQUESTED: w.write_dataset,
                       State.ARCHIVE_REQUESTED: w.archive_dataset,
                       State.RESTORE_REQUESTED: w.restore_dataset}
        else:
            actions = {State.WRITE_REQUESTED: w.write_datafile,
                       State.WRITE_THEN_ARCHIVE_REQUESTED: w.write_datafile,
                       State.ARCHIVE_REQUESTED: w.archive_datafile,
                       State.RESTORE_REQUESTED: w.restore_datafile,
                       State.DELETE_REQUESTED: w.delete_datafile}
        actions[state](job.unit_id, job.location)

    # -- eviction -----------------------------------------------------------------------------

    def tidy(self) -> int:
        """Queue ARCHIVE for the oldest units if main storage is above the high watermark;
        return how many units were queued."""
        high = self.settings.start_archiving_level_bytes
        low = self.settings.stop_archiving_level_bytes
        if not high:
            return 0
        low = low or 0
        objects = self.main.list()
        units: dict[int, str | None] = {}
        if self.unit is Unit.DATASET:
            pairs = copies.datasets_to_evict(objects, low, high)
            found = self.reader.datasets(ds for _, ds in pairs)
            for inv_id, ds_id in pairs:
                ds = found.get(ds_id)
                if ds is not None and ds.investigation_id == inv_id:
                    units[ds_id] = dataset_folder(inv_id, ds_id)
        else:
            for df in self.reader.datafiles_at(copies.datafiles_to_evict(objects, low, high)):
                units[df.id] = df.location
        if units:
            log.info("Main storage above %d bytes: archiving %d units", high, len(units))
            self.queue.request(Op.ARCHIVE, units)
            self._wake.set()
        return len(units)

    def _tidy_logged(self) -> None:
        try:
            self.tidy()
        except Exception:
            log.exception("Two-level storage tidy failed")


def _states(job: Job | None) -> set[State]:
    """What is queued for and running on a unit."""
    if job is None:
        return set()
    return {s for s in (job.state, job.running) if s is not None}
