"""The data service's operations (ids.server's IdsBean) as plain blocking calls.

The HTTP adapter (:mod:`cairn.web.ids_rest`) parses parameters, calls these in a worker thread
and renders the result or the error. Selections are resolved by
:mod:`cairn.ids.selection` with the caller's permissions in SQL; bytes live in a
:class:`~cairn.ids.storage.Storage`; two-level storage (archive, restore, write jobs, locks,
failure flags) is delegated to a :class:`TwoLevelStorage` when an archive is configured.

Where ids.server's single-level storage answers 501 (``archive``, ``restore``, ``write``), so
does Cairn; ``isPrepared`` is true, ``getStatus`` ONLINE (after validating the selection) and
``reset`` a no-op, as there.

A put and a delete note the locations they will create or remove in main storage's scratch
area until both catalogue and storage are done, so that what a crash interrupts is finished
or undone by the sweep of :mod:`cairn.ids.leftovers`, which the data service runs.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import func, or_, select

from cairn.catalogue.objects import Obj
from cairn.catalogue.service import Catalogue
from cairn.catalogue.work import Work
from cairn.config import DataSettings
from cairn.db.engine import Database
from cairn.errors import IcatError, bad_parameter, insufficient_privileges, no_such_object
from cairn.ids.checksum import PutResult
from cairn.ids.download import Body, download_body, download_name
from cairn.ids.errors import data_not_online, not_implemented
from cairn.ids.leftovers import DELETE_NOTE, PUT_NOTE, Presence, Sweeper, note_body
from cairn.ids.locations import MAX_LOCATION_LENGTH, add_digest, new_location
from cairn.ids.locks import LockManager
from cairn.ids.mapper import DfInfo, DsInfo
from cairn.ids.prepared import PreparedStore, check_uuid
from cairn.ids.removal import Removals
from cairn.ids.scratch import ScratchDir
from cairn.ids.selection import ResolvedSelection, Resolver, Selection
from cairn.ids.storage import Storage
from cairn.ids.upload import put_answer, upload
from cairn.jobs import Failed, JobContext, Kind, Periodic, process_name
from cairn.schema import SCHEMA

log = logging.getLogger(__name__)

_DATAFILE, _DATASET, _FORMAT = (SCHEMA.entities[n] for n in ("Datafile", "Dataset",
                                                              "DatafileFormat"))

#: The ids.server release whose API Cairn serves (python-icat gates calls on it).
IDS_VERSION = "2.1.1"

ONLINE, RESTORING, ARCHIVED = "ONLINE", "RESTORING", "ARCHIVED"

_SINGLE_LEVEL = "This operation is unavailable for single level storage"
_CONFIGURED_OFF = "This operation has been configured to be unavailable"

#: The job that restores what a prepared id needs (two-level storage).
PREPARE = "ids.prepare"


class TwoLevelStorage(Protocol):
    """What the data service asks of two-level storage (:mod:`cairn.ids.twolevel`).

    Datasets are "empty" (always online) when no datafile of ``datafiles`` belongs to them.
    """

    def status(self, datasets: list[DsInfo], datafiles: list[DfInfo]) -> str: ...

    def ensure_online(self, datasets: list[DsInfo], datafiles: list[DfInfo]) -> bool: ...

    def request(self, op: str, datasets: list[DsInfo], datafiles: list[DfInfo]) -> None: ...

    def reset(self, datasets: list[DsInfo], datafiles: list[DfInfo]) -> None: ...

    def after_put(self, dataset: DsInfo, datafile: DfInfo, via: Work | None = None
                  ) -> None: ...

    def after_delete(self, datasets: list[DsInfo], datafiles: list[DfInfo],
                     via: Work | None = None) -> None: ...

    def service_status(self) -> dict[str, Any]: ...

    def lock(self, dataset_ids: list[int], shared: bool) -> AbstractContextManager[Any]: ...

    def job_kinds(self) -> list[Kind | Periodic]: ...

    def scratch(self) -> tuple[list[Storage], list[ScratchDir]]: ...


@dataclass
class Download:
    """A getData answer before HTTP: the body, its file name, and the locks it holds."""

    body: Body
    filename: str
    #: Releases the dataset locks; call when the stream ends (or is abandoned).
    release: Callable[[], None]


@dataclass(frozen=True)
class PutRequest:
    """``put``'s query parameters, as sent (validated by :meth:`DataService.put_begin`)."""

    session_id: str | None
    name: str | None
    datafile_format_id: str | None
    dataset_id: str | None
    description: str | None = None
    doi: str | None = None
    datafile_create_time: str | None = None
    datafile_mod_time: str | None = None


@dataclass
class PutPlan:
    """A put that passed every check: what the upload is stored for and then catalogued as,
    where, and what it holds until :meth:`release` (locks, the note of its location)."""

    request: PutRequest
    dataset: DsInfo
    datafile: Obj
    location: str
    locks: ExitStack
    #: The note in main storage naming ``location`` until the put is over.
    note: str
    storage: Storage
    #: Kept past the end when a file could not be removed: the sweep removes it once this
    #: process is gone.
    keep_note: bool = False

    def release(self) -> None:
        """The put is over (stored and catalogued, or failed): let go of what it holds."""
        try:
            self.locks.close()
        finally:
            if not self.keep_note:
                drop_note(self.storage, self.note)


def drop_note(storage: Storage, name: str) -> None:
    """Drop a note of an operation that is over. A note that stays is harmless (the sweep
    finds everything as the note expects once this process is gone): never fail for it."""
    try:
        storage.drop_note(name)
    except Exception:
        log.exception("could not drop the note %s (it goes when this process has stopped)",
                      name)


_JAVA_LONG = re.compile(r"[+-]?[0-9]{1,19}", re.ASCII)


def _long(name: str, text: str | None, *, required: bool) -> int | None:
    """Java's ``Long.parseLong``: optional sign, ASCII digits, 64 bits."""
    if text is None:
        if required:
            raise bad_parameter(f"The {name} parameter must be set")
        return None
    if not _JAVA_LONG.fullmatch(text) or not -(1 << 63) <= int(text) < (1 << 63):
        raise bad_parameter(f"The {name} parameter must be numeric")
    return int(text)


def check_datafile_name(name: str) -> str:
    """A name new uploads may have. The name never reaches storage (locations are random),
    but it becomes a path inside download zips, so it must not climb out of its folder:
    no absolute names, no ``.``/``..``/empty components, no backslashes or control
    characters. Sub-folders (``a/b.dat``) are fine, as in ids.server."""
    if not name:
        raise bad_parameter("The name parameter must not be empty")
    if len(name) > MAX_LOCATION_LENGTH:
        raise bad_parameter(f"The name is longer than {MAX_LOCATION_LENGTH} characters")
    if any(ord(c) < 0x20 or c == "\x7f" for c in name):
        raise bad_parameter("Illegal filename: it contains a control character")
    if "\\" in name:
        raise bad_parameter(f"Illegal filename {name!r}: backslashes are not allowed")
    if name.startswith("/"):
        raise bad_parameter(f"Illegal filename {name!r}: absolute paths are not allowed")
    for part in name.split("/"):
        if part in ("", ".", ".."):
            raise bad_parameter(f"Illegal filename {name!r}: bad path component {part!r}")
    return name


def _epoch_ms(value: int | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(value / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        raise bad_parameter(f"The time {value} (milliseconds since 1970) is out of range") \
            from None


#: Told what getData sent of a prepared id: ``(prepared_id, start, end, length)``, bytes
#: ``[start, end)`` of a body of ``length`` bytes (None: unknown). See
#: :meth:`DataService.on_delivery`.
DeliveryListener = Callable[[str, int, int, int | None], None]


class DataService:
    """The data service over the catalogue's core API (as the session's user, or as the
    system where ids.server uses its reader account) and its own tables in ``db``."""

    def __init__(self, catalogue: Catalogue, db: Database, settings: DataSettings,
                 main: Storage, twolevel: TwoLevelStorage | None, icat_url: str) -> None:
        self.cat = catalogue
        self.settings = settings
        self.main = main
        self.twolevel = twolevel
        self.icat_url = icat_url
        self.prepared = PreparedStore(db, settings.prepared_lifetime_seconds)
        self._delivery_listeners: list[DeliveryListener] = []
        # This process's name, as its jobs and locks carry it: its unfinished work in storage
        # is named after it, and its presence row keeps other processes' sweeps off it.
        jobs = catalogue.jobs
        owner = jobs.owner if jobs is not None else process_name()
        stale = jobs.stale_seconds if jobs is not None else catalogue.settings.job_stale_seconds
        main.bind(owner)
        self.presence = Presence(db, owner, stale)
        # Downloads lock their datasets SHARED (as readers) on single-level storage too: a
        # delete leaves the files they read in place until they end (cairn.ids.removal).
        self.locks = LockManager(db, owner, stale_seconds=stale)
        self.removals = Removals(db, main, self.locks, self._referenced, jobs,
                                 every=self.presence.every)
        storages, dirs = twolevel.scratch() if twolevel is not None else ([], [])
        self.sweeper = Sweeper(self.presence, [main, *storages], dirs, self._referenced, jobs,
                               remove=self.removals.remove)

    def job_kinds(self) -> list[Kind | Periodic]:
        """The data service's work on the scheduler: the purge of expired preparedIds, the
        presence heartbeat and the sweep of what crashed processes left, and with two-level
        storage the restores for prepared data and the storage jobs."""
        interval = min(3600.0, self.settings.prepared_lifetime_seconds / 4)
        out: list[Kind | Periodic] = [Periodic("ids.prepared.purge", interval,
                                               self.purge_prepared),
                                      *self.sweeper.job_kinds(), *self.removals.job_kinds()]
        if self.twolevel is not None:
            out.append(Kind(PREPARE, self._restore_prepared, max_attempts=3))
            out.extend(self.twolevel.job_kinds())  # its lock heartbeat refreshes ours too
        else:
            # Ten heartbeats per stale timeout: a live download's locks never look dead.
            out.append(Periodic("ids.locks.heartbeat", self.presence.every,
                                self.locks.heartbeat, local=True))
        return out

    # -- service information ---------------------------------------------------------------

    @property
    def read_only(self) -> bool:
        return self.settings.read_only

    @property
    def two_level(self) -> bool:
        return self.twolevel is not None

    def service_status(self, session_id: str | None) -> dict[str, Any]:
        user = self.cat.session(session_id).user
        if not self.cat.is_root(user):
            raise insufficient_privileges(f"{user} is not included in the ids rootUserNames "
                                          "set.")
        if self.twolevel is None:
            return {"opsQueue": [], "lockCount": 0, "locks": [], "failures": []}
        return self.twolevel.service_status()

    # -- resolving ---------------------------------------------------------------------------

    @contextmanager
    def _work(self, session_id: str | None) -> Iterator[Work]:
        check_uuid("sessionId", session_id)
        with self.cat.as_user(session_id) as work:
            yield work

    def _reader(self, read_only: bool = False) -> AbstractContextManager[Work]:
        """A unit of work of the system: ids.server's reader account (no permission checks,
        used only where ids.server uses its reader)."""
        return self.cat.as_system(read_only=read_only)

    def _resolver(self, work: Work) -> Resolver:
        return Resolver(work, self.settings.key)

    def resolve(self, session_id: str | None, sel: Selection) -> ResolvedSelection:
        with self._work(session_id) as work:
            return self._resolver(work).resolve(sel)

    # -- prepared downloads ------------------------------------------------------------------

    def prepare(self, session_id: str | None, sel: Selection, *, zip: bool,
                compress: bool) -> str:
        with self._work(session_id) as work:
            return self.prepare_in(work, sel, zip=zip, compress=compress)

    def prepare_in(self, work: Work, sel: Selection, *, zip: bool, compress: bool) -> str:
        """prepareData inside the caller's unit of work, with its caller's permissions: the
        snapshot and (two-level) its restore job exist only if that unit commits. The
        download manager prepares this way as Cairn itself on behalf of a download's user
        (``Catalogue.as_system(user=...)``), whose right was checked at submission."""
        resolved = self._resolver(work).resolve(sel)
        if self.twolevel is not None:
            self.twolevel.reset(resolved.dataset_list, resolved.datafiles)
        pid = self.prepared.save(work.conn, work.user, zip or sel.must_zip, compress,
                                 resolved)
        if self.twolevel is not None:
            # As ids.server: restores are queued in the background (by a job requested
            # with the prepared id, so neither exists without the other) and prepareData
            # answers at once.
            work.enqueue(PREPARE, {"prepared_id": pid})
        return pid

    def _restore_prepared(self, ctx: JobContext) -> None:
        """Queue the restores a prepared id needs (the job requested by :meth:`prepare`)."""
        assert self.twolevel is not None
        try:
            p = self.prepared.load(ctx.payload["prepared_id"])
        except IcatError as e:  # expired or purged meanwhile: nothing to restore for
            raise Failed(e.message) from e
        self.twolevel.ensure_online(p.resolved.dataset_list, p.resolved.datafiles)

    def is_prepared(self, prepared_id: str | None) -> bool:
        p = self.prepared.load(prepared_id)
        if self.twolevel is None:
            return True
        datasets, datafiles = p.resolved.dataset_list, p.resolved.datafiles
        if self.twolevel.status(datasets, datafiles) == ONLINE:  # raises "Restore failed"
            return True
        return self.twolevel.ensure_online(datasets, datafiles)

    def purge_prepared(self) -> int:
        return self.prepared.purge()

    # -- information about a selection -------------------------------------------------------

    def datafile_ids(self, prepared_id: str | None, session_id: str | None,
                     sel: Selection) -> dict[str, Any]:
        if prepared_id is not None:
            p = self.prepared.load(prepared_id)
            return {"zip": p.zip, "compress": p.compress,
                    "ids": [d.id for d in p.resolved.datafiles]}
        with self._work(session_id) as work:
            return {"ids": self._resolver(work).datafile_ids(sel)}

    def size(self, prepared_id: str | None, session_id: str | None, sel: Selection) -> int:
        if prepared_id is not None:
            p = self.prepared.load(prepared_id)
            return sum(d.size or 0 for d in p.resolved.datafiles)
        with self._work(session_id) as work:
            return self._resolver(work).size(sel)

    def status(self, prepared_id: str | None, session_id: str | None, sel: Selection) -> str:
        if prepared_id is not None:
            p = self.prepared.load(prepared_id)
            if self.twolevel is None:
                return ONLINE
            return self.twolevel.status(p.resolved.dataset_list, p.resolved.datafiles)
        # Without a session anybody may ask (ids.server uses its reader account).
        work_of = self._reader() if session_id is None else self._work(session_id)
        with work_of as work:
            resolver = self._resolver(work)
            if self.twolevel is None:
                resolver.validate(sel)
                return ONLINE
            resolved = resolver.resolve(sel)
        return self.twolevel.status(resolved.dataset_list, resolved.datafiles)

    # -- two-level requests ------------------------------------------------------------------

    def archive(self, session_id: str | None, sel: Selection) -> None:
        self._request("ARCHIVE", session_id, sel)

    def restore(self, session_id: str | None, sel: Selection) -> None:
        self._request("RESTORE", session_id, sel)

    def _request(self, op: str, session_id: str | None, sel: Selection) -> None:
        check_uuid("sessionId", session_id)
        if self.twolevel is None:
            raise not_implemented(_SINGLE_LEVEL)
        resolved = self.resolve(session_id, sel)
        self.twolevel.request(op, resolved.dataset_list, resolved.datafiles)

    def write(self, session_id: str | None, sel: Selection) -> None:
        if not self.settings.write_enabled:
            raise not_implemented(_CONFIGURED_OFF)
        check_uuid("sessionId", session_id)
        if self.twolevel is None:
            raise not_implemented(_SINGLE_LEVEL)
        resolved = self.resolve(session_id, sel)
        datasets, datafiles = resolved.dataset_list, resolved.datafiles
        with self.twolevel.lock([d.id for d in datasets], True):
            if self.twolevel.status(datasets, datafiles) != ONLINE:
                raise data_not_online("Requested data is not online, write request refused")
            self.twolevel.request("WRITE", datasets, datafiles)

    def reset(self, prepared_id: str | None, session_id: str | None, sel: Selection) -> None:
        if prepared_id is not None:
            resolved = self.prepared.load(prepared_id).resolved
        else:
            resolved = self.resolve(session_id, sel)
        if self.twolevel is not None:
            self.twolevel.reset(resolved.dataset_list, resolved.datafiles)

    # -- delivery: what getData actually sent of a prepared id --------------------------------

    def on_delivery(self, listener: DeliveryListener) -> None:
        """Have ``listener`` told, once per getData response of a prepared id (at its end,
        or when the client went away), which bytes of the body went out: the download
        manager confirms delivery with it. Listeners run in the adapter's worker thread."""
        self._delivery_listeners.append(listener)

    def delivered(self, prepared_id: str, start: int, end: int, length: int | None) -> None:
        """The adapter's report: bytes ``[start, end)`` of the body of ``prepared_id`` were
        handed to the client; the body has ``length`` bytes (None: unknown). A listener that
        fails is logged: a download never fails for its bookkeeping."""
        for listener in self._delivery_listeners:
            try:
                listener(prepared_id, start, end, length)
            except Exception:
                log.exception("a delivery listener failed on %s [%d, %d)", prepared_id,
                              start, end)

    # -- getData -----------------------------------------------------------------------------

    def download(self, prepared_id: str | None, session_id: str | None, sel: Selection, *,
                 zip: bool, compress: bool, outname: str | None) -> Download:
        """Everything of getData but the bytes: checks, locks, body and name.

        The datasets are locked SHARED before the datafiles are checked against the
        catalogue and held until the stream ends: a delete meanwhile leaves the files of
        this download in storage until it is over (:mod:`cairn.ids.removal`), and a datafile
        deleted before the lock is left out (404 if it was asked for by id or through a
        preparedId). Data being archived or restored (two-level) is 503 "Data is busy"."""
        if prepared_id is not None:
            p = self.prepared.load(prepared_id)
            resolved, zip, compress = p.resolved, p.zip, p.compress
        else:
            resolved = self.resolve(session_id, sel)
            zip = zip or sel.must_zip
        datasets = resolved.dataset_list
        holder = self.locks.acquire([d.id for d in datasets], True)
        try:
            if prepared_id is not None:
                self._check_still_catalogued(resolved.datafiles)
                datafiles = resolved.datafiles
            else:
                datafiles = self._still_catalogued(resolved.datafiles, sel)
            if self.twolevel is not None and \
                    not self.twolevel.ensure_online(datasets, datafiles):
                raise data_not_online("Before getting a datafile, its dataset has to be "
                                      "restored, restoration requested automatically")
            files = self._checked_sizes(datafiles) if zip else datafiles
            body = download_body(resolved.datasets, files, self.main, zip=zip,
                                 compress=compress,
                                 catalogue_crc=self.settings.trust_catalogue_checksums)
            name = download_name(zip=zip, outname=outname,
                                 datafile_name=None if zip else datafiles[0].name)
        except BaseException:
            self.locks.release(holder)
            raise
        return Download(body, name, lambda: self.locks.release(holder))

    def _catalogued(self, ids: list[int]) -> set[int]:
        """Which of these Datafile ids the catalogue still has (ids.server's reader)."""
        found: set[int] = set()
        with self._reader(read_only=True) as work:
            df = work.tables["Datafile"]
            for batch in work.chunks(ids):
                found.update(work.conn.execute(select(df.c.id).where(df.c.id.in_(batch)))
                             .scalars())
        return found

    def _check_still_catalogued(self, datafiles: Sequence[DfInfo]) -> None:
        """A prepared snapshot may name datafiles deleted since (ids.server's check)."""
        ids = [d.id for d in datafiles]
        if ids and len(self._catalogued(ids)) != len(set(ids)):
            raise no_such_object("One of the data files requested has been deleted")

    def _still_catalogued(self, datafiles: list[DfInfo], sel: Selection) -> list[DfInfo]:
        """The resolved datafiles less those deleted since they were resolved: a datafile
        asked for by id is 404 as if it had been deleted before the call; one that came
        with its dataset or investigation is simply no longer part of it."""
        if not datafiles:
            return datafiles
        found = self._catalogued([d.id for d in datafiles])
        if len(found) == len(datafiles):
            return datafiles
        named = set(sel.datafile_ids)
        for d in datafiles:
            if d.id not in found and d.id in named:
                raise no_such_object(f"Datafile[id:{d.id}] has been deleted")
        return [d for d in datafiles if d.id in found]

    def _checked_sizes(self, datafiles: list[DfInfo]) -> list[DfInfo]:
        """Zip layouts come from catalogue sizes; on local storage (a stat each) use the real
        ones, so a wrong ``fileSize`` cannot break a download half-way, and fail before the
        first byte when a file is missing."""
        if not datafiles or self.main.local_path(datafiles[0].location) is None:
            return datafiles
        out = []
        for d in datafiles:
            try:
                real = self.main.size(d.location)
            except Exception as e:
                log.error("datafile %s (%s) is missing from main storage: %s", d.id,
                          d.location, e)
                raise no_such_object(f"The file of Datafile[id:{d.id}] ({d.name}) is missing "
                                     "from storage") from None
            # A checksum of other content is no checksum: compute it while streaming.
            out.append(d if real == d.size else replace(d, size=real, checksum=None))
        return out

    # -- put ----------------------------------------------------------------------------------

    def put_begin(self, req: PutRequest) -> PutPlan:
        """Every check of put before a byte is read (ids.server's order), plus a trial
        create rolled back, so that a refused upload is refused before it is sent."""
        if self.settings.read_only:
            raise not_implemented(_CONFIGURED_OFF)
        check_uuid("sessionId", req.session_id)
        if req.name is None:
            raise bad_parameter("The name parameter must be set")
        format_id = _long("datafileFormatId", req.datafile_format_id, required=True)
        dataset_id = _long("datasetId", req.dataset_id, required=True)
        create_time = _epoch_ms(_long("datafileCreateTime", req.datafile_create_time,
                                      required=False))
        mod_time = _epoch_ms(_long("datafileModTime", req.datafile_mod_time, required=False))
        name = check_datafile_name(req.name)
        assert format_id is not None and dataset_id is not None
        with self._work(req.session_id) as work:
            dataset = self._dataset_for_put(work, dataset_id)
        entity = _DATAFILE
        values: dict[str, Any] = {"name": name, "location": "pending",
                                  "fileSize": 0, "checksum": "0"}
        for key, value in (("description", req.description), ("doi", req.doi),
                           ("datafileCreateTime", create_time),
                           ("datafileModTime", mod_time)):
            if value is not None:
                values[key] = value
        obj = Obj(entity=entity, values=values,
                  ones={"dataset": Obj(_DATASET, id=dataset_id),
                        "datafileFormat": Obj(_FORMAT, id=format_id)})
        self._trial_create(req.session_id, obj)
        locks = ExitStack()
        location = new_location(dataset.investigation_id, dataset.id)
        try:
            if self.twolevel is not None:
                locks.enter_context(self.twolevel.lock([dataset_id], True))
                if self.settings.storage_unit == "dataset":
                    with self._work(req.session_id) as work:
                        located = self._resolver(work).resolve(
                            Selection(dataset_ids=(dataset_id,))).datafiles
                    if not self.twolevel.ensure_online([dataset], located):
                        raise data_not_online(
                            "Before putting, getting or deleting a datafile, its dataset has "
                            "to be restored, restoration requested automatically")
            # Noted before a byte is stored: if this process dies before the Datafile is
            # committed, the sweep removes the file (see cairn.ids.leftovers).
            note = self._note(PUT_NOTE, [(location, dataset.id)])
        except BaseException:
            locks.close()
            raise
        return PutPlan(req, dataset, obj, location, locks, note, self.main)

    def _note(self, kind: str, files: list[tuple[str, int]]) -> str:
        """Note the locations (and their datasets) an operation is about to create or
        remove, until it is over."""
        self.presence.ensure()  # alive before leaving anything a sweep could take for dead
        name = f"{uuid.uuid4().hex}{kind}"
        self.main.write_note(name, note_body([loc for loc, _ in files],
                                             [ds for _, ds in files]))
        return name

    def _referenced(self, location: str) -> bool:
        """Whether a Datafile names ``location`` (exactly, or with a hash; ids.server's
        prefix LIKE also matched ``a/10`` for ``a/1``)."""
        escaped = location.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self._reader(read_only=True) as work:
            df = work.tables["Datafile"]
            return bool(work.conn.execute(select(func.count()).select_from(df).where(or_(
                df.c.location == location,
                df.c.location.like(escaped + " %", escape="\\")))).scalar_one())

    def _dataset_for_put(self, work: Work, dataset_id: int) -> DsInfo:
        """ids.server reads ``Dataset INCLUDE Investigation, Facility`` with the user's
        session: 404 if absent, 403 unless all three are readable."""
        return self._resolver(work).named(Selection(dataset_ids=(dataset_id,)))[dataset_id]

    class _Rollback(Exception):
        pass

    def _trial_create(self, session_id: str | None, obj: Obj) -> None:
        """Create the Datafile and roll back: validation, uniqueness of the name within
        the dataset, the format's existence and the CREATE rules, all before the upload."""
        try:
            with self._work(session_id) as work:
                trial = Obj(entity=obj.entity, values=dict(obj.values), ones=dict(obj.ones))
                self._check_format(work, trial)
                work.create(trial)
                raise DataService._Rollback()
        except DataService._Rollback:
            pass

    @staticmethod
    def _check_format(work: Work, obj: Obj) -> None:
        """The format must exist and be readable (404, 403)."""
        fmt = obj.ones["datafileFormat"]
        assert fmt is not None and fmt.id is not None
        work.get("DatafileFormat", fmt.id)

    def put_store(self, plan: PutPlan, chunks: Iterable[bytes]) -> tuple[str, PutResult]:
        """Store the body at the plan's location (blocking: the HTTP adapter runs it on a
        thread of its own, :func:`cairn.web.upload_stream.store_body`)."""
        return upload(self.main, plan.dataset.investigation_id, plan.dataset.id, chunks,
                      location=plan.location)

    def put_commit(self, plan: PutPlan, location: str, result: PutResult) -> dict[str, Any]:
        """Catalogue an uploaded file (and request its archive write, in the same
        transaction); if that fails, delete the file again."""
        try:
            obj = plan.datafile
            obj.values.update(location=location, fileSize=result.size,
                              checksum=result.checksum)
            with self._work(plan.request.session_id) as work:
                self._check_format(work, obj)
                df_id = work.create(obj)
                if self.settings.key is not None:
                    # The hash needs the id. ids.server updates with the user's session
                    # (needing UPDATE permission); this is the service's own bookkeeping.
                    with work.as_system():
                        work.update(Obj(_DATAFILE, id=df_id, values={
                            "location": add_digest(df_id, location, self.settings.key)}))
                if self.twolevel is not None:
                    self.twolevel.after_put(plan.dataset, DfInfo(
                        id=df_id, name=obj.values["name"], location=location,
                        dataset_id=plan.dataset.id, size=result.size,
                        checksum=result.checksum, create_id=work.user, mod_id=work.user),
                        work)
        except BaseException:
            try:
                self.main.delete(location)
            except Exception:
                log.exception("could not remove %s after a failed put; it goes when this "
                              "process has stopped", location)
                plan.keep_note = True
            raise
        return put_answer(df_id, location, result)

    # -- delete -------------------------------------------------------------------------------

    def delete(self, session_id: str | None, sel: Selection) -> None:
        """Delete the Datafiles in the catalogue (with the caller's DELETE permission, all
        or none), then their files from main storage: at once, or for files on datasets
        that downloads are reading, once those downloads are over (:mod:`cairn.ids.removal`).
        A delete is never refused because of downloads; on two-level storage, data being
        archived or restored is 503 "Data is busy" (its dataset lock is EXCLUSIVE)."""
        if self.settings.read_only:
            raise not_implemented(_CONFIGURED_OFF)
        resolved = self.resolve(session_id, sel)
        datasets, datafiles = resolved.dataset_list, resolved.datafiles
        holder: str | None = None
        try:
            if self.twolevel is not None:
                # SHARED, as a put: kept out of archive and restore, but not of readers.
                holder = self.locks.acquire([d.id for d in datasets], True)
                if self.settings.storage_unit == "dataset" and \
                        not self.twolevel.ensure_online(datasets, datafiles):
                    raise data_not_online(
                        "Before putting, getting or deleting a datafile, its dataset has to "
                        "be restored, restoration requested automatically")
            files = [(d.location, d.dataset_id) for d in datafiles]
            # Noted before the commit: if this process dies after it, the sweep removes the
            # files of the deleted Datafiles (see cairn.ids.leftovers).
            note = self._note(DELETE_NOTE, files) if files else None
            committed = removed = False
            try:
                with self._work(session_id) as work:
                    if datafiles:
                        work.delete([(_DATAFILE, d.id) for d in datafiles])
                    if self.twolevel is not None:
                        self.twolevel.after_delete(datasets, datafiles, work)
                committed = True
                removed = self._remove_deleted(files, holder)
            finally:
                # Rolled back: nothing to undo. Removed, or handed to removal jobs: done.
                # Otherwise the note stays for the sweep once this process has stopped.
                if note is not None and (removed or not committed):
                    drop_note(self.main, note)
        finally:
            if holder is not None:
                self.locks.release(holder)

    def _remove_deleted(self, files: list[tuple[str, int]], own: str | None) -> bool:
        """The files of Datafiles just deleted go (now or after their readers); False if
        one could not be removed."""
        return self.removals.remove(files, own=own)
