"""The life of a download (TopCat's §4.4 lifecycle), driven by durable jobs.

::

    submitted ─┬─► PREPARING ── downloads.prepare ──┬─► COMPLETE   (single-level, http/https)
               │                                    ├─► RESTORING  (two-level, http/https)
               │                                    │     downloads.poll: COMPLETE once it is
               │                                    │     online, EXPIRED if the restore
               │                                    │     failed, PREPARING again if the
               │                                    │     prepared id has gone (404/410)
               │                                    └─► RESTORING  (other transports: for
               │                                                    their outside agent)
               └─► QUEUED ── downloads.schedule ──► PREPARING  (a free slot; lowest positive
                                                                priority, then the oldest)

A download is prepared through the data service's core (:meth:`DataService.prepare_in`),
never over HTTP, by Cairn itself on behalf of the download's user: the user's right to the
data was checked when the download was submitted, and a restore may outlive their session
(TopCat's functional account). Zipped, stored (``compress=False``): the zip has a known
length and serves byte ranges, which delivery tracking needs.

What Cairn does differently from TopCat, on purpose:

- Every request is a job in the catalogue database, requested in the transaction that makes
  the change (:meth:`Lifecycle.submitted`), so a restart or a killed process loses nothing;
  every status change is a compare-and-set on the status read (and the prepared id), so an
  admin's or a user's change, or another process, is never overwritten.
- A prepared id that has gone (unknown: 404, or expired: 410) is prepared again, never
  polled for ever (TopCat's stuck RESTORING downloads).
- Transports other than http/https are left RESTORING for their outside agent on
  single-level storage too: TopCat marks every transport COMPLETE at once there, so the
  agent (Globus, ...) never sees them.
- The periodic ``downloads.schedule`` also adopts downloads whose status was set by someone
  else (a download resumed from PAUSED, an admin's PREPARING) and that have no job yet.

Deleted downloads and PAUSED ones are not processed; a job that finds its download so (or in
any status but the one it handles) simply ends.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Connection, false, func, select, update
from sqlalchemy.engine import Row

from cairn.catalogue.service import Catalogue
from cairn.catalogue.work import Work
from cairn.config import DownloadSettings
from cairn.downloads.model import Status
from cairn.errors import ErrorType, IcatError, no_such_object
from cairn.ids.prepared import decode
from cairn.ids.selection import Selection
from cairn.ids.service import DataService
from cairn.jobs import Again, JobContext, Kind, Periodic, Scheduler, backoff
from cairn.jobs.model import State, utcnow

log = logging.getLogger(__name__)

PREPARE = "downloads.prepare"
POLL = "downloads.poll"
SCHEDULE = "downloads.schedule"
#: The ready mail (cairn.downloads.mail): requested with {"download": id, "event": "ready"}.
MAIL = "downloads.mail"

#: Transports Cairn delivers itself, from its own data service; an outside agent completes
#: any other.
SERVED = frozenset({"http", "https"})
#: Downloads holding a slot of ``max_active``.
ACTIVE = (Status.PREPARING, Status.RESTORING)
#: Errors of preparing a selection that no retry will mend (an item deleted since, a
#: selection too large for the database...): the download is EXPIRED with the message.
#: INTERNAL (a database failure, mapped by the catalogue) is retried.
_PERMANENT = frozenset({ErrorType.NO_SUCH_OBJECT_FOUND, ErrorType.BAD_PARAMETER,
                        ErrorType.VALIDATION, ErrorType.INSUFFICIENT_PRIVILEGES,
                        ErrorType.NOT_IMPLEMENTED, ErrorType.OBJECT_ALREADY_EXISTS})
_MAX_ERROR = 4000


class _Lost(Exception):
    """A compare-and-set found the download changed: undo the unit, leave it to the change."""


def served(transport: str) -> bool:
    return transport.lower() in SERVED


class Lifecycle:
    """Requests and runs the jobs of downloads. ``jobs`` is the scheduler the kinds are
    registered with (None: the catalogue's)."""

    def __init__(self, catalogue: Catalogue, data: DataService, settings: DownloadSettings,
                 jobs: Scheduler | None) -> None:
        self.cat = catalogue
        self.db = catalogue.db
        self.data = data
        self.settings = settings
        self.jobs = jobs if jobs is not None else catalogue.jobs
        self.t = catalogue.db.tables.downloads

    def job_kinds(self) -> list[Kind | Periodic]:
        # Retried for ever (with back-off): what fails here is the database or storage being
        # away, and a download must come through once they are back. Permanent failures
        # end as EXPIRED with the error instead of failing the job.
        retry = backoff(10.0, 900.0)
        return [Kind(PREPARE, self._prepare, max_attempts=None, retry_delay=retry),
                Kind(POLL, self._poll, max_attempts=None, retry_delay=retry),
                Periodic(SCHEDULE, self.settings.poll_seconds, self.schedule)]

    # -- requests, in the caller's unit of work --------------------------------------------

    def submitted(self, work: Work, download_id: int, queued: bool) -> None:
        """Call in the transaction that inserted the download (QUEUED if ``queued``, else
        PREPARING): its job exists exactly when it does."""
        if queued:
            self.request_schedule(work)
        else:
            self._request(work, PREPARE, download_id)

    def reprepare(self, work: Work, download_id: int) -> None:
        """Back to PREPARING with a new job (an admin's "prepare", or a prepared id that has
        gone): a new prepared id, so a new zip: the dates, the error and what was delivered of
        the old one are cleared, and the ready mail is due again. ``is_deleted`` is left to
        the caller. NO_SUCH_OBJECT_FOUND if there is no such download."""
        d = self.t.download
        done = work.conn.execute(update(d).where(d.c.id == download_id)
                                 .values(status=Status.PREPARING.value, **_fresh()))
        if done.rowcount != 1:
            raise no_such_object(f"Download[id:{download_id}] not found")
        self._request(work, PREPARE, download_id)

    def changed(self, work: Work, download_id: int) -> None:
        """Call after setting a download's status or ``is_deleted`` outside the lifecycle (a
        user's pause or resume, an admin's change): requests what its state needs now. The
        periodic schedule would find it too, within ``poll_seconds``."""
        row = work.conn.execute(select(self.t.download).where(
            self.t.download.c.id == download_id)).first()
        if row is not None and not row.is_deleted:
            kind = self._job_for(row)
            if kind is not None:
                self._request(work, kind, download_id)
        self.request_schedule(work)

    def request_schedule(self, work: Work) -> None:
        """Run the scheduler of queued downloads soon (merged into the periodic task's
        line: its key and payload are the periodic task's own)."""
        work.enqueue(SCHEDULE, {"every": self.settings.poll_seconds}, key=SCHEDULE)

    def _request(self, work: Work, kind: str, download_id: int) -> None:
        # Keyed by download: repeated requests merge and never run at the same time.
        work.enqueue(kind, {"download": download_id}, key=str(download_id))

    @staticmethod
    def _job_for(row: Any) -> str | None:
        if row.status == Status.PREPARING:
            return PREPARE
        if row.status == Status.RESTORING and served(row.transport):
            return POLL
        return None

    # -- the jobs ---------------------------------------------------------------------------

    def _prepare(self, ctx: JobContext) -> None:
        """PREPARING -> a prepared id, then RESTORING (two-level storage, or a transport an
        outside agent completes) or, once its zip has been laid out, COMPLETE."""
        row = self._row(int(ctx.payload["download"]))
        if row is None or row.is_deleted or row.status != Status.PREPARING:
            return None  # paused, deleted, done or changed by someone else meanwhile
        single = not self.data.two_level and served(row.transport)
        current: Row[Any] | None = row
        try:
            # A prepared id with the status still PREPARING: an earlier run of this job
            # prepared it and stopped before COMPLETE; lay its zip out now.
            if row.prepared_id is None or not single:
                current = self._prepared(row, single)
            if current is not None:
                self._complete(current)
        except _Lost:
            log.info("download %s changed while it was prepared; left as it is now", row.id)
        except IcatError as e:
            if e.type not in _PERMANENT:
                raise  # the database: try again
            self._expire(current or row, f"The data could not be prepared: {e.message}")
        return None

    def _prepared(self, row: Row[Any], single: bool) -> Row[Any] | None:
        """Prepare the download's selection (its prepared id and restore job exist only if
        this unit commits); the row as it is now, or None when it went on to RESTORING."""
        # The user's right to the data was checked at submission: no checks now.
        with self.cat.as_system(user=row.user) as work:
            sel = self._selection(work.conn, row.id)
            pid = self.data.prepare_in(work, sel, zip=True, compress=False)
            values: dict[str, Any] = {
                "prepared_id": pid, "size": self._size(work.conn, pid), "error": None,
                "is_two_level": self.data.two_level, "completed": None}
            if not single:
                values.update(status=Status.RESTORING.value)
            if not self._cas(work.conn, row, **values):
                raise _Lost()  # the prepared id and its restore job go with the unit
            if not single and served(row.transport):
                self._request(work, POLL, row.id)
        log.info("download %s prepared as %s", row.id, pid)
        return None if not single else self._row(row.id)

    def _complete(self, row: Row[Any]) -> None:
        """Single-level storage: lay the zip out (its exact length, every file found in
        storage), then COMPLETE, so a user's link works the moment it is offered."""
        length = self._zip_length(row.prepared_id)
        with self.cat.as_system() as work:
            if not self._cas(work.conn, row, status=Status.COMPLETE.value,
                             completed=utcnow(), length=length, error=None):
                raise _Lost()
            self._ready(work, row)
        log.info("download %s COMPLETE (%s bytes)", row.id, length)

    def _poll(self, ctx: JobContext) -> Again | None:
        """RESTORING (http/https) -> COMPLETE once the data is online."""
        row = self._row(int(ctx.payload["download"]))
        if row is None or row.is_deleted or row.status != Status.RESTORING \
                or not served(row.transport):
            return None
        if row.prepared_id is None:  # set RESTORING by hand before it was ever prepared
            self._back_to_preparing(row, "it has no prepared id")
            return None
        try:
            ready = self.data.is_prepared(row.prepared_id)
        except IcatError as e:
            if e.type is ErrorType.NO_SUCH_OBJECT_FOUND:  # unknown (404) or expired (410)
                self._back_to_preparing(row, e.message)
            else:  # "Restore failed", as TopCat: EXPIRED (an admin may prepare it again)
                self._expire(row, e.message)
            return None
        if not ready:
            return Again(after=self.settings.poll_seconds)
        try:
            length = self._zip_length(row.prepared_id)
        except IcatError as e:
            if e.type not in _PERMANENT:
                raise
            self._expire(row, e.message)
            return None
        with self.cat.as_system() as work:
            if self._cas(work.conn, row, status=Status.COMPLETE.value, completed=utcnow(),
                         length=length, error=None):
                self._ready(work, row)
                log.info("download %s restored: COMPLETE", row.id)
        return None

    def schedule(self) -> int:
        """The periodic task: give downloads without a job theirs, then start QUEUED
        downloads (lowest positive priority first, then the oldest) while fewer than
        ``max_active`` are PREPARING or RESTORING (any transport: a download waiting for an
        outside agent holds its slot, as in TopCat); how many were started."""
        self._adopt()
        self._renew()
        started = 0
        d = self.t.download
        while True:
            with self.cat.as_system() as work:
                limit = self.settings.max_active
                if limit > 0:
                    active = work.conn.execute(select(func.count()).select_from(d).where(
                        d.c.status.in_([s.value for s in ACTIVE]),
                        d.c.is_deleted == false())).scalar_one()
                    if active >= limit:
                        break
                row = work.conn.execute(
                    select(d).where(d.c.status == Status.QUEUED.value, d.c.priority > 0,
                                    d.c.is_deleted == false())
                    .order_by(d.c.priority, d.c.created, d.c.id).limit(1)).first()
                if row is None:
                    break
                if self._cas(work.conn, row, status=Status.PREPARING.value):
                    self._request(work, PREPARE, row.id)
                    started += 1
                    log.info("queued download %s (priority %s) started", row.id,
                             row.priority)
        return started

    def _adopt(self) -> None:
        """Request the job of each PREPARING or (http/https) RESTORING download that has none
        waiting or running: one whose status was set by hand, resumed from PAUSED or
        undeleted. The jobs are read before the downloads: a download whose job appears in
        between (with its status change) gets a second request, which merges with that job
        while it waits, and which the job's status check makes harmless anyway."""
        d, j = self.t.download, self.db.tables.job
        with self.cat.as_system() as work:
            live = {(r.kind, r.key) for r in work.conn.execute(
                select(j.c.kind, j.c.key).where(
                    j.c.kind.in_([PREPARE, POLL]),
                    j.c.state.in_([State.QUEUED.value, State.RUNNING.value])))}
            rows = work.conn.execute(select(d.c.id, d.c.status, d.c.transport).where(
                d.c.status.in_([s.value for s in ACTIVE]), d.c.is_deleted == false())
                .order_by(d.c.id)).all()
            for r in rows:
                kind = self._job_for(r)
                if kind is not None and (kind, str(r.id)) not in live:
                    log.info("download %s has no %s job: requested", r.id, kind)
                    self._request(work, kind, int(r.id))

    def _renew(self) -> None:
        """Prepare again each COMPLETE download whose prepared id has expired or gone (its
        link would answer 410 or 404): a ready download never offers a dead link. The new
        link is mailed again."""
        d, p = self.t.download, self.db.tables.ids_prepared
        oldest = self.db.now() - self.data.prepared.lifetime
        with self.db.connect() as conn:
            rows = conn.execute(
                select(d).select_from(d.outerjoin(p, p.c.id == d.c.prepared_id))
                .where(d.c.status == Status.COMPLETE.value, d.c.is_deleted == false(),
                       d.c.prepared_id.is_not(None),
                       (p.c.id.is_(None)) | (p.c.created <= oldest))
                .order_by(d.c.id).limit(1000)).all()
        for row in rows:
            self._back_to_preparing(row, "its prepared id expired")

    # -- transitions ------------------------------------------------------------------------

    def _ready(self, work: Work, row: Row[Any]) -> None:
        """Just COMPLETE: the ready mail, and a free slot for the queue."""
        if row.email and self.settings.mail.enabled:
            if self.jobs is not None and MAIL not in self.jobs.registry.kinds:
                log.warning("download %s is ready but no %s job kind is registered: no mail",
                            row.id, MAIL)
            else:
                # The mail room's key: requests for one download's ready mail merge.
                work.enqueue(MAIL, {"download": row.id, "event": "ready"},
                             key=f"{row.id}:ready")
        self.request_schedule(work)

    def _expire(self, row: Row[Any], message: str) -> None:
        with self.cat.as_system() as work:
            if self._cas(work.conn, row, status=Status.EXPIRED.value,
                         error=message[:_MAX_ERROR]):
                self.request_schedule(work)
                log.warning("download %s EXPIRED: %s", row.id, message)

    def _back_to_preparing(self, row: Row[Any], why: str) -> None:
        with self.cat.as_system() as work:
            if self._cas(work.conn, row, status=Status.PREPARING.value, **_fresh()):
                self._request(work, PREPARE, row.id)
                log.info("download %s is prepared again: %s", row.id, why)

    def _cas(self, conn: Connection, row: Row[Any], **values: Any) -> bool:
        """Update the download only if its status and prepared id are still as read and it
        has not been deleted meanwhile."""
        d = self.t.download
        pid = d.c.prepared_id.is_(None) if row.prepared_id is None \
            else d.c.prepared_id == row.prepared_id
        return conn.execute(update(d).where(
            d.c.id == row.id, d.c.status == row.status, pid, d.c.is_deleted == false())
            .values(**values)).rowcount == 1

    # -- reading ----------------------------------------------------------------------------

    def _row(self, download_id: int) -> Row[Any] | None:
        d = self.t.download
        with self.db.connect() as conn:
            return conn.execute(select(d).where(d.c.id == download_id)).first()

    def _selection(self, conn: Connection, download_id: int) -> Selection:
        i = self.t.download_item
        ids: dict[str, list[int]] = {"investigation": [], "dataset": [], "datafile": []}
        for r in conn.execute(select(i.c.entity_type, i.c.entity_id)
                              .where(i.c.download == download_id).order_by(i.c.id)):
            if r.entity_type not in ids:
                raise IcatError(ErrorType.BAD_PARAMETER,
                                f"Unknown download item type {r.entity_type!r}")
            ids[r.entity_type].append(int(r.entity_id))
        return Selection(tuple(ids["investigation"]), tuple(ids["dataset"]),
                         tuple(ids["datafile"]))

    def _size(self, conn: Connection, prepared_id: str) -> int:
        """Bytes of the prepared data (TopCat's getSize: the catalogue's file sizes), read
        from the snapshot just written in this transaction."""
        p = self.db.tables.ids_prepared
        content = conn.execute(select(p.c.content).where(p.c.id == prepared_id)).scalar_one()
        return sum(f.size or 0 for f in decode(content).datafiles)

    def _zip_length(self, prepared_id: str) -> int | None:
        """Exact bytes of the zip getData serves for the prepared id (it stats the files,
        whose catalogue sizes may be wrong). A file missing from storage raises the data
        service's error (the download cannot be served); None when the zip has no length
        known in advance."""
        got = self.data.download(prepared_id, None, Selection(), zip=True, compress=False,
                                 outname=None)
        try:
            return got.body.length
        finally:
            got.release()


def _fresh() -> dict[str, Any]:
    """What a new preparation clears: the old prepared id and everything that was of it."""
    return {"prepared_id": None, "completed": None, "error": None, "length": None,
            "sent_ranges": None, "bytes_sent": 0, "delivered": None, "is_email_sent": False}
