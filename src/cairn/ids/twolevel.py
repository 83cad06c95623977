"""Two-level storage: main storage in front of an archive, with jobs that move data between
them (ids.server's FiniteStateMachine, Tidier and LockManager, reference §2.4-§2.7).

One :class:`TwoLevel` per process. Everything that must survive is in the catalogue
database (DESIGN principle 4): the requests are jobs of the process's scheduler
(:mod:`cairn.ids.twolevel_queue`), failure flags and dataset locks (:mod:`cairn.ids.locks`)
have tables of their own. So a restart, or any other Cairn process on the same database,
picks up queued work; a unit's job is run by one process at a time, so a restore is never
started twice; and a download in one process blocks archiving of its datasets in every other.

Each job runs under its dataset lock (SHARED for writes, EXCLUSIVE for archive, restore and
delete); a job whose lock is busy waits for the next poll, in front of what was requested
meanwhile. Every ``eviction_check_interval_seconds`` one process measures main storage;
above ``start_archiving_level_bytes`` it queues ARCHIVE for the oldest units until the rest
would fit under ``stop_archiving_level_bytes``. "Oldest" is the earliest modification time
on main storage of any of the unit's files, that is when the unit arrived there (upload or
restore); reads don't count, as with ids.storage_file.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from cairn.config import DataSettings
from cairn.db.engine import Database
from cairn.errors import IcatError, bad_parameter, internal
from cairn.ids import archive as copies
from cairn.ids.locations import dataset_folder
from cairn.ids.locks import DataBusy, LockManager
from cairn.ids.mapper import DfInfo, DsInfo, ZipMapper
from cairn.ids.scratch import ScratchDir, owner_token
from cairn.ids.storage import Storage
from cairn.ids.twolevel_queue import (
    ARCHIVING_STATES,
    KIND,
    WRITE_STATES,
    Enqueuer,
    Failures,
    Op,
    StorageUnit,
    UnitLine,
    UnitQueue,
    UnitState,
)
from cairn.ids.worker import CatalogueReader, UnitMoves
from cairn.jobs import Again, Failed, JobContext, Kind, Periodic, Scheduler
from cairn.jobs.model import chunks

log = logging.getLogger(__name__)

__all__ = ["DataBusy", "TwoLevel"]

#: Restore zips named as before scratch folders (beside each other in the cache, with no
#: owner) are taken for a crash's once this old.
STALE_RESTORE_SECONDS = 86400


class TwoLevel:
    def __init__(self, db: Database, main: Storage, archive: Storage,
                 settings: DataSettings, scheduler: Scheduler, *,
                 mapper: ZipMapper | None = None, stale_seconds: float | None = None,
                 tidy_interval_seconds: float | None = None, write_delay_cap: float = 10.0,
                 retry_seconds: float = 60.0) -> None:
        unit = str(settings.storage_unit).lower()
        if unit not in ("dataset", "datafile"):
            raise ValueError(f"storage_unit must be dataset or datafile, not {unit!r}")
        self.unit = StorageUnit.DATASET if unit == "dataset" else StorageUnit.DATAFILE
        self.db = db
        self.main = main
        self.archive = archive
        self.settings = settings
        self.scheduler = scheduler
        # Temporary files and uploads carry this process's name (cairn.ids.scratch).
        main.bind(scheduler.owner)
        archive.bind(scheduler.owner)
        # Keyword arguments override the settings (tests).
        stale = float(stale_seconds if stale_seconds is not None
                      else settings.stale_claim_timeout)
        self.queue = UnitQueue(scheduler, self.unit,
                               write_delay=float(settings.write_delay_seconds),
                               write_delay_cap=write_delay_cap)
        self.failures = Failures(db, self.unit)
        self.locks = LockManager(db, scheduler.owner, stale_seconds=stale)
        self.reader = CatalogueReader(db, settings.key)
        cache = Path(settings.cache_dir) if settings.cache_dir else Path(tempfile.gettempdir())
        self.moves = UnitMoves(main, archive, self.reader, cache / "dataset", mapper,
                               token=owner_token(scheduler.owner))
        self.tidy_interval = float(tidy_interval_seconds if tidy_interval_seconds is not None
                                   else settings.eviction_check_interval_seconds)
        self.stale_seconds = stale
        self.retry_seconds = retry_seconds

    def job_kinds(self) -> list[Kind | Periodic]:
        """What two-level storage runs on the scheduler: its requests (every process),
        the lock heartbeat and the sweep of restore zips left by older Cairns (each process
        for itself), and the eviction check (one process at a time). What crashes leave now
        is swept by the data service (:meth:`scratch`)."""
        out: list[Kind | Periodic] = [
            Kind(KIND, self.run, merge=self.queue.merge, max_attempts=None,
                 retry_delay=lambda failures: self.retry_seconds),
            # Ten heartbeats per stale timeout: a live process's locks never look dead.
            Periodic("ids.locks.heartbeat", max(self.scheduler.poll_seconds,
                                                self.stale_seconds / 10),
                     self.locks.heartbeat, local=True),
            Periodic("ids.restore-leftovers", 3600.0, self._clean_work_dir, local=True)]
        if self.settings.start_archiving_level_bytes:
            out.append(Periodic("ids.evict", self.tidy_interval, self.tidy))
        return out

    def process_once(self) -> int:
        """Run every two-level job that is due now in the calling thread; return how many
        ran (tests and tools; the scheduler does this in the background)."""
        return self.scheduler.run_pending([KIND])

    def scratch(self) -> tuple[list[Storage], list[ScratchDir]]:
        """Where this process keeps unfinished work besides main storage: the archive, and
        the cache folder of restore zips (for :class:`cairn.ids.leftovers.Sweeper`)."""
        return [self.archive], [self.moves.scratch]

    def _clean_work_dir(self) -> None:
        """Restore zips that an older Cairn left by a crash (they name no owner)."""
        cutoff = time.time() - STALE_RESTORE_SECONDS
        try:
            for p in self.moves.work_dir.glob(".cairn-restore-*"):
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
        lines = self.queue.lines(units)
        restoring = False
        unknown: list[int] = []
        for uid in units:
            states = _states(lines.get(uid))
            if states & ARCHIVING_STATES:
                return "ARCHIVED"
            if UnitState.RESTORE_REQUESTED in states:
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
        lines = self.queue.lines(units)
        offline: set[int] = set()
        restore: dict[int, str | None] = {}
        unknown: list[int] = []
        for uid, key in units.items():
            states = _states(lines.get(uid))
            if UnitState.RESTORE_REQUESTED in states:
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
        return not offline

    def request(self, op: str, datasets: list[DsInfo], datafiles: list[DfInfo],
                via: Enqueuer | None = None) -> None:
        """Queue ARCHIVE, RESTORE, WRITE or DELETE for the units of a selection, in the
        transaction of ``via`` (a unit of work) if given. In DATASET mode DELETE rewrites the
        datasets' archive zips (WRITE). Callers check beforehand what the HTTP call requires
        (e.g. ``write`` refuses data that is not online)."""
        try:
            wanted = Op(op.upper())
        except ValueError:
            raise bad_parameter(f"Unknown two-level operation {op!r}") from None
        if wanted is Op.DELETE and self.unit is StorageUnit.DATASET:
            wanted = Op.WRITE
        units = self._units(datasets, datafiles)
        if units:
            self.queue.request(wanted, units, via)

    def reset(self, datasets: list[DsInfo], datafiles: list[DfInfo]) -> None:
        """Clear the failure flags of the selection's units."""
        self.failures.clear(self._units(datasets, datafiles))

    def after_put(self, dataset: DsInfo, datafile: DfInfo, via: Enqueuer | None = None
                  ) -> None:
        """A file is being stored on main storage: queue the write of its unit to the
        archive (in the transaction that catalogues it, ``via``)."""
        self.request("WRITE", [dataset], [] if self.unit is StorageUnit.DATASET else [datafile],
                     via)

    def after_delete(self, datasets: list[DsInfo], datafiles: list[DfInfo],
                     via: Enqueuer | None = None) -> None:
        """Datafiles are being deleted: rewrite their datasets' zips (DATASET), or delete
        their archive copies (DATAFILE); in the deleting transaction, ``via``."""
        if self.unit is StorageUnit.DATASET:
            self.request("WRITE", datasets, datafiles, via)
        else:
            self.request("DELETE", [], datafiles, via)

    def service_status(self) -> dict[str, Any]:
        """getServiceStatus: the queue (running jobs too), locks and failures."""
        ops = []
        for line in self.queue.all():
            data = line.location or f"{self.unit.lower()} {line.unit_id}"
            if line.running is not None:
                ops.append({"data": data, "request": line.running.value, "running": True})
            if line.waiting is not None:
                ops.append({"data": data, "request": line.waiting.value})
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
        if self.unit is StorageUnit.DATAFILE:
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
        if self.unit is StorageUnit.DATAFILE:
            given = {df.id: df for df in datafiles}
            for uid in unit_ids:
                if not self.moves.datafile_online(given[uid]):
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
                if not self.moves.dataset_online(ds, files.get(uid, [])):
                    out.append(uid)
                    if stop_at_first:
                        return out
        return out

    # -- running jobs -----------------------------------------------------------------------

    def run(self, ctx: JobContext) -> Again | None:
        """The job of one unit, under its dataset lock. A busy lock, or an archive that a
        newly queued write must precede, waits for the next poll in front of what was
        requested meanwhile (WRITE_THEN_ARCHIVE ends as an ARCHIVE of its own)."""
        p = ctx.payload
        state, unit_id, location = UnitState(p["state"]), int(p["id"]), p.get("location")
        try:
            holder = self.locks.acquire(self._lock_targets(unit_id), state in WRITE_STATES)
        except DataBusy:
            return Again()  # at the next poll
        try:
            if state is UnitState.ARCHIVE_REQUESTED:
                line = self.queue.lines([unit_id]).get(unit_id)
                if line is not None and line.waiting in WRITE_STATES:
                    # A put queued a write while we waited for the lock: evicting now would
                    # lose it. Merged with it, this becomes WRITE_THEN_ARCHIVE.
                    return Again()
            try:
                self._do(state, unit_id, location)
            except Exception as e:
                return self._failed(unit_id, state, e)
            if state is UnitState.RESTORE_REQUESTED:
                self.failures.clear([unit_id])
            if state is UnitState.WRITE_THEN_ARCHIVE_REQUESTED:
                return Again(payload={**p, "state": UnitState.ARCHIVE_REQUESTED.value})
            return None
        finally:
            self.locks.release(holder)

    def _failed(self, unit_id: int, state: UnitState, e: Exception) -> Again:
        """A failed restore flags its unit (until reset or a later success) and a failed
        archive leaves the data on main storage: both are over (FAILED). Writes and deletes
        must happen eventually (a pending write also keeps the unit from being archived):
        they are retried."""
        what = f"{state.value} of {self.unit.lower()} {unit_id}"
        message = e.message if isinstance(e, IcatError) else f"{type(e).__name__}: {e}"
        if isinstance(e, IcatError):
            log.error("%s failed: %s", what, message)
        else:
            log.exception("%s failed", what)
        if state is UnitState.RESTORE_REQUESTED:
            self.failures.set(unit_id, message)
        if state in (UnitState.RESTORE_REQUESTED, UnitState.ARCHIVE_REQUESTED):
            raise Failed(message) from e
        return Again(after=self.retry_seconds, error=message)

    def _lock_targets(self, unit_id: int) -> list[int]:
        if self.unit is StorageUnit.DATASET:
            return [unit_id]
        df = self.reader.datafiles([unit_id]).get(unit_id)
        return [df.dataset_id] if df is not None else []

    def _do(self, state: UnitState, unit_id: int, location: str | None) -> None:
        m = self.moves
        actions: dict[UnitState, Callable[[int, str | None], None]]
        if self.unit is StorageUnit.DATASET:
            actions = {UnitState.WRITE_REQUESTED: m.write_dataset,
                       UnitState.WRITE_THEN_ARCHIVE_REQUESTED: m.write_dataset,
                       UnitState.ARCHIVE_REQUESTED: m.archive_dataset,
                       UnitState.RESTORE_REQUESTED: m.restore_dataset}
        else:
            actions = {UnitState.WRITE_REQUESTED: m.write_datafile,
                       UnitState.WRITE_THEN_ARCHIVE_REQUESTED: m.write_datafile,
                       UnitState.ARCHIVE_REQUESTED: m.archive_datafile,
                       UnitState.RESTORE_REQUESTED: m.restore_datafile,
                       UnitState.DELETE_REQUESTED: m.delete_datafile}
        actions[state](unit_id, location)

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
        if self.unit is StorageUnit.DATASET:
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
        return len(units)


def _states(line: UnitLine | None) -> set[UnitState]:
    """What is queued for and running on a unit."""
    return set() if line is None else line.states
