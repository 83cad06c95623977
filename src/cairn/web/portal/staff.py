"""Pages for facility staff (root users): download queue, data service, access, health.

- ``/staff``: the catalogue's health at a glance: what ``/ready`` checks (database, storage,
  cache, the job scheduler), the version, the jobs waiting, running and failed, the
  free-text index.
- ``/staff/downloads``: every download of every user (the download manager's admin calls,
  as ``/topcat/admin`` serves them), filtered and paged by id (keyset, newest first); each
  row's actions (pause, resume, back to the queue, re-prepare, priority, delete, undelete)
  are POST forms ending in a notice.
- ``/staff/data``: the data service's storage (main, archive, cache), its two-level queue,
  locks and failures (``getServiceStatus``), and the durable jobs table with retry and
  cancel.
- ``/staff/access``, ``/staff/access/investigation/{id}``: who can read an investigation and
  through which rule, computed rule by rule with the authorizer's own SQL
  (:mod:`cairn.authz.explain`).

Only the catalogue's root users see them (``pages.page(fn, root=True)``); a download action
also needs the download manager to count the visitor among its admins (by default the root
users), as ``/topcat/admin`` does.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio.from_thread
from sqlalchemy import select
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from cairn.authz.explain import Explanation, Grant, explain
from cairn.catalogue.work import Work
from cairn.downloads.service import DownloadService, cairn_version
from cairn.errors import ErrorType, IcatError
from cairn.jobs import State
from cairn.web.portal import pages
from cairn.web.portal.downloads_pages import download_service, manager_errors
from cairn.web.portal.pages import Call
from cairn.web.portal.signin import quoted, safe_next

#: Downloads per page of /staff/downloads, jobs per page of /staff/data.
DOWNLOADS_PAGE = 50
JOBS_PAGE = 50
#: Most entries of the two-level queue, locks and failures shown.
SERVICE_ROWS = 200
#: Most files looked at when summing the cache folder.
CACHE_SCAN = 50_000
#: Investigations offered when looking one up by name.
LOOKUP_ROWS = 25
#: The statuses a staff member filters by (DELIVERED: COMPLETE and every byte sent).
STATUSES = ("QUEUED", "PREPARING", "RESTORING", "PAUSED", "COMPLETE", "DELIVERED", "EXPIRED")
#: Highest queue priority taken from the form (lower runs first).
MAX_PRIORITY = 1_000_000

CRUMBS_HOME = ("Staff", "/staff")


# -- /staff: health -------------------------------------------------------------------------


def health(call: Call) -> Response:
    """What /ready checks, the version, the jobs queue and the search index."""
    readiness = call.cairn.readiness
    ready, report = anyio.from_thread.run(readiness.report)
    queue = call.cairn.catalogue.jobs.queue if call.cairn.catalogue.jobs else None
    counts = queue.counts() if queue is not None else {}
    totals = {s: sum(n for (_, state), n in counts.items() if state is s) for s in State}
    search = call.cairn.search
    settings = call.cairn.settings
    return call.render(
        "portal/staff.html", crumbs=[("Staff", None)], ready=ready, checks=report["checks"],
        version=cairn_version(), dialect=call.cairn.catalogue.db.dialect,
        totals=totals, counts=sorted(counts.items()),
        search=search.status() if search is not None else None,
        downloads_on=call.cairn.downloads is not None,
        publishing_on=call.cairn.publishing is not None,
        root_users=settings.catalogue.root_users)


# -- /staff/downloads -----------------------------------------------------------------------


@dataclass(frozen=True)
class DownloadFilters:
    status: str
    user: str
    name: str
    facility: str
    deleted: str  # "" (hide deleted), "all", "only"

    @classmethod
    def read(cls, args: Mapping[str, str]) -> DownloadFilters:
        status = (args.get("status") or "").upper()
        if status and status not in STATUSES:
            raise IcatError(ErrorType.BAD_PARAMETER,
                            f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        deleted = args.get("deleted") or ""
        if deleted not in ("", "all", "only"):
            raise IcatError(ErrorType.BAD_PARAMETER, "deleted must be all or only")
        return cls(status, (args.get("user") or "").strip()[:255],
                   (args.get("name") or "").strip()[:255],
                   (args.get("facility") or "").strip()[:255], deleted)

    def conditions(self) -> list[str]:
        """The filters in the download manager's queryOffset language."""
        out = []
        if self.status == "DELIVERED":
            out.append("download.isDelivered = true")
        elif self.status == "COMPLETE":
            out.append("download.status = 'COMPLETE' AND download.isDelivered = false")
        elif self.status:
            out.append(f"download.status = {quoted(self.status)}")
        if self.user:
            out.append(f"download.userName = {quoted(self.user)}")
        if self.facility:
            out.append(f"download.facilityName = {quoted(self.facility)}")
        if self.name:
            escaped = self.name.lower().replace("\\", "\\\\").replace("%", "\\%") \
                .replace("_", "\\_")
            out.append(f"LOWER(download.fileName) LIKE {quoted('%' + escaped + '%')} "
                       "ESCAPE '\\'")
        if self.deleted == "":
            out.append("download.isDeleted = false")
        elif self.deleted == "only":
            out.append("download.isDeleted = true")
        return out

    def args(self) -> dict[str, str]:
        return {k: v for k, v in (("status", self.status), ("user", self.user),
                                  ("name", self.name), ("facility", self.facility),
                                  ("deleted", self.deleted)) if v}


def query_offset(conditions: list[str], descending: bool, limit: int) -> str:
    text = " AND ".join(f"({c})" for c in conditions)
    way = "DESC" if descending else "ASC"
    return (f"WHERE {text} " if text else "") + f"ORDER BY download.id {way} LIMIT 0, {limit}"


def downloads_page(call: Call) -> Response:
    """Every download, newest first, filtered; paged by id (``before``/``after``)."""
    service = download_service(call)
    filters = DownloadFilters.read(call.args)
    before, after = call.arg_int("before"), call.arg_int("after")
    size = DOWNLOADS_PAGE
    where = filters.conditions()
    with manager_errors():
        if after is not None:  # the page of newer downloads, read upwards
            rows = service.admin_downloads(None, call.sid, query_offset(
                [*where, f"download.id > {int(after)}"], False, size + 1))
            has_newer = len(rows) > size
            rows = list(reversed(rows[:size]))
            has_older = True
            if not has_newer and len(rows) < size:  # fewer than a page: the first page
                rows = service.admin_downloads(None, call.sid,
                                               query_offset(where, True, size + 1))
                has_older = len(rows) > size
                rows = rows[:size]
        else:
            extra = [f"download.id < {int(before)}"] if before is not None else []
            rows = service.admin_downloads(None, call.sid,
                                           query_offset([*where, *extra], True, size + 1))
            has_older = len(rows) > size
            rows = rows[:size]
            has_newer = before is not None
    base = filters.args()
    older = pages.query_string(base, before=rows[-1]["id"]) if has_older and rows else None
    newer = pages.query_string(base, after=rows[0]["id"]) if has_newer and rows else None
    if has_newer and not rows:
        newer = pages.query_string(base)
    here = call.request.url.path + ("?" + call.request.url.query if call.request.url.query
                                    else "")
    settings = service.settings
    return call.render(
        "portal/staff_downloads.html",
        crumbs=[CRUMBS_HOME, ("Download queue", None)], downloads=rows, filters=filters,
        statuses=STATUSES, older=older, newer=newer, here=here,
        max_active=settings.max_active, queue_carts=settings.queue_carts,
        priorities=settings.priorities, admins=service.admins(),
        is_admin=call.visitor is not None and call.visitor.user in service.admins())


def _one(service: DownloadService, call: Call, download_id: int) -> dict[str, Any]:
    found = service.admin_downloads(None, call.sid, f"WHERE download.id = {int(download_id)}")
    if not found:
        raise IcatError(ErrorType.NO_SUCH_OBJECT_FOUND, f"There is no download {download_id}.")
    return found[0]


def _back(call: Call) -> str:
    target = safe_next(call.field("next") or None)
    return target if target.startswith("/staff/downloads") else "/staff/downloads"


def download_action(call: Call) -> Response:
    """POST /staff/download/{id}/{action}: one change to one download, then back to the list
    with a notice."""
    service = download_service(call)
    download_id = int(call.request.path_params["id"])
    action = call.request.path_params["action"]
    with manager_errors():
        d = _one(service, call, download_id)
        status = "DELIVERED" if d["isDelivered"] else d["status"]
        name = f"Download {download_id} ({d['fileName']})"
        if action == "pause":
            if status not in ("QUEUED", "PREPARING", "RESTORING"):
                raise IcatError(ErrorType.BAD_PARAMETER,
                                f"{name} is {status}: only a queued, preparing or restoring "
                                "download can be paused.")
            service.admin_set_status(download_id, None, call.sid, "PAUSED", None)
            notice = f"{name} is paused."
        elif action in ("resume", "requeue"):
            if status != "PAUSED":
                raise IcatError(ErrorType.BAD_PARAMETER, f"{name} is {status}, not paused.")
            if action == "resume":  # where it was: preparing, or restoring if prepared
                service.admin_set_status(download_id, None, call.sid, "PREPARING", None)
                notice = f"{name} resumes."
            else:
                service.admin_set_status(download_id, None, call.sid, "QUEUED", None)
                notice = f"{name} is back in the queue."
        elif action == "prepare":
            service.admin_prepare(download_id, None, call.sid)
            notice = f"{name} is being prepared again."
        elif action in ("delete", "undelete"):
            service.admin_set_deleted(download_id, None, call.sid, action == "delete")
            notice = f"{name} is {'deleted' if action == 'delete' else 'restored'}."
        elif action == "priority":
            value = _priority(call.field("priority"))
            service.admin_set_priority(download_id, None, call.sid, value)
            notice = f"{name} has queue priority {value}."
        else:
            raise IcatError(ErrorType.NO_SUCH_OBJECT_FOUND, f"There is no action {action!r}.")
    return call.redirect(_back(call), notice=notice)


def _priority(raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise IcatError(ErrorType.BAD_PARAMETER,
                        f"A priority is a whole number, not {raw!r}.") from None
    if not 1 <= value <= MAX_PRIORITY:
        raise IcatError(ErrorType.BAD_PARAMETER,
                        f"A priority is from 1 (first) to {MAX_PRIORITY}; pause a download "
                        "to hold it.")
    return value


# -- /staff/data ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Disk:
    path: str
    total: int
    used: int
    free: int


def _disk(path: str | Path | None) -> Disk | None:
    if path is None or str(path).startswith("s3://"):
        return None
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return None
    return Disk(str(path), usage.total, usage.used, usage.free)


def _folder_bytes(path: Path | None, limit: int = CACHE_SCAN) -> tuple[int, int, bool]:
    """(files, bytes, complete) under ``path``, looking at no more than ``limit`` files."""
    files = total = 0
    if path is None:
        return 0, 0, True
    stack = [str(path)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for e in entries:
                    try:
                        if e.is_dir(follow_symlinks=False):
                            stack.append(e.path)
                        elif e.is_file(follow_symlinks=False):
                            files += 1
                            total += e.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
                    if files >= limit:
                        return files, total, False
        except OSError:
            continue
    return files, total, True


def data_page(call: Call) -> Response:
    """Storage, the two-level queue, locks and failures, and the durable jobs."""
    data = call.cairn.data
    settings = call.cairn.settings.data
    status = data.service_status(call.sid)
    cache_files, cache_bytes, cache_complete = _folder_bytes(
        Path(settings.cache_dir) if settings.cache_dir else None)
    scheduler = call.cairn.catalogue.jobs
    queue = scheduler.queue if scheduler is not None else None
    state = (call.args.get("state") or "").upper()
    if state and state not in State.__members__:
        raise IcatError(ErrorType.BAD_PARAMETER,
                        f"state must be one of {', '.join(State)}, not {state!r}")
    kind = (call.args.get("kind") or "").strip()[:200]
    before = call.arg_int("before")
    jobs = queue.find(states=[State(state)] if state else (), kind=kind or None,
                      limit=JOBS_PAGE + 1, before=before) if queue is not None else []
    counts = queue.counts() if queue is not None else {}
    kinds = sorted({k for k, _ in counts} | (set(scheduler.registry.kinds)
                                              if scheduler is not None else set()))
    base = {k: v for k, v in (("state", state), ("kind", kind)) if v}
    older = pages.query_string(base, before=jobs[JOBS_PAGE - 1].id) \
        if len(jobs) > JOBS_PAGE else None
    here = call.request.url.path + ("?" + call.request.url.query if call.request.url.query
                                    else "")
    return call.render(
        "portal/staff_data.html", crumbs=[CRUMBS_HOME, ("Data service", None)],
        settings=settings, two_level=data.two_level, read_only=data.read_only,
        main_disk=_disk(settings.main), archive_disk=_disk(settings.archive),
        cache_disk=_disk(settings.cache_dir), cache_files=cache_files,
        cache_bytes=cache_bytes, cache_complete=cache_complete,
        ops=status["opsQueue"][:SERVICE_ROWS], ops_total=len(status["opsQueue"]),
        locks=status["locks"][:SERVICE_ROWS], lock_count=status["lockCount"],
        failures=status["failures"][:SERVICE_ROWS], failure_total=len(status["failures"]),
        jobs=jobs[:JOBS_PAGE], older=older, newer=pages.query_string(base) if before else None,
        job_states=list(State), kinds=kinds, state=state, kind=kind,
        counts=_count_table(counts), here=here,
        periodic=set(scheduler.registry.periodic) if scheduler is not None else set())


def _count_table(counts: Mapping[tuple[str, State], int]) -> list[tuple[str, dict[str, int]]]:
    """Jobs per kind: state -> count, kinds in name order."""
    out: dict[str, dict[str, int]] = {}
    for (kind, state), n in counts.items():
        out.setdefault(kind, {})[state.value] = n
    return sorted(out.items())


def job_action(call: Call) -> Response:
    """POST /staff/job/{id}/{retry|cancel}: as ``cairn jobs retry|cancel``."""
    scheduler = call.cairn.catalogue.jobs
    if scheduler is None:
        raise IcatError(ErrorType.NOT_IMPLEMENTED, "This server runs no jobs.")
    job_id = int(call.request.path_params["id"])
    action = call.request.path_params["action"]
    try:
        if action == "retry":
            job = scheduler.queue.retry(job_id)
            scheduler.wake()
            notice = f"Job {job_id} ({job.kind}) is queued again."
        elif action == "cancel":
            seen = scheduler.queue.get(job_id)
            if seen is None:
                raise LookupError(job_id)
            if seen.kind in scheduler.registry.periodic and seen.key == seen.kind:
                raise IcatError(ErrorType.BAD_PARAMETER,
                                f"Job {job_id} is the periodic task {seen.kind}: cancelled, "
                                "it would not run again until a restart (cairn jobs cancel "
                                "does it, if that is what you want).")
            job = scheduler.queue.cancel(job_id)
            notice = (f"Job {job_id} ({job.kind}) was asked to stop."
                      if job.state is State.RUNNING else f"Job {job_id} ({job.kind}) is cancelled.")
        else:
            raise IcatError(ErrorType.NO_SUCH_OBJECT_FOUND, f"There is no action {action!r}.")
    except LookupError:
        raise IcatError(ErrorType.NO_SUCH_OBJECT_FOUND, f"There is no job {job_id}.") from None
    except ValueError as e:
        raise IcatError(ErrorType.BAD_PARAMETER, str(e)) from None
    target = safe_next(call.field("next") or None)
    return call.redirect(target if target.startswith("/staff/data") else "/staff/data",
                         notice=notice)


# -- /staff/access ---------------------------------------------------------------------------


def access_lookup(call: Call) -> Response:
    """Find the investigation to explain: by id (straight to its page) or by name, visit id
    or title."""
    text = " ".join((call.args.get("investigation") or "").split())[:200]
    found: list[Any] = []
    if text.isdigit():
        raise pages.Redirect(f"/staff/access/investigation/{int(text)}")
    if text:
        pattern = quoted("%" + text.lower().replace("\\", "\\\\").replace("%", "\\%")
                         .replace("_", "\\_") + "%")
        found = call.cairn.catalogue.search(
            call.sid, "SELECT i FROM Investigation i WHERE LOWER(i.name) LIKE "
                      f"{pattern} OR LOWER(i.visitId) LIKE {pattern} OR LOWER(i.title) LIKE "
                      f"{pattern} ORDER BY i.id DESC LIMIT 0, {LOOKUP_ROWS}")
    return call.render("portal/staff_access_lookup.html",
                       crumbs=[CRUMBS_HOME, ("Who can see this", None)], text=text,
                       found=found, limit=LOOKUP_ROWS)


def reason(g: Grant) -> str:
    """A few words on what a rule asks, from its text (the rule itself is shown beside)."""
    what = g.what
    if g.public_table:
        out = "public table: every row, every user"
    elif g.per_user and "investigationUsers" in what:
        out = "on the investigation"
    elif g.per_user and "instrumentScientists" in what:
        out = "scientist of its instrument"
    elif not g.per_user and "releaseDate" in what:
        out = "released (its release date has passed)"
    elif g.per_user:
        out = "a condition on the user"
    elif g.grouping is not None and not g.everyone and ("WHERE" not in what.upper()):
        out = "every investigation"
    else:
        out = "a condition on the investigation"
    if g.grouping is not None:
        out += f", for members of {g.grouping}"
    return out


def access_page(call: Call) -> Response:
    """Who can read this investigation, and through which rule (exactly as enforced)."""
    inv_id = int(call.request.path_params["id"])
    with call.cairn.catalogue.as_user(call.sid, read_only=True) as work:
        found: Explanation = explain(work.conn, work.db, work.authz, work.params,
                                     "Investigation", inv_id)
        readers = found.by_user()
        names = _full_names(work, [*found.root_users, *readers])
    investigation = call.cairn.catalogue.get(
        call.sid, "Investigation i INCLUDE i.facility", inv_id)
    label = investigation.values.get("title") or investigation.values.get("name")
    return call.render(
        "portal/staff_access.html",
        crumbs=[CRUMBS_HOME, ("Who can see this", "/staff/access"), (label, None)],
        investigation=investigation, explanation=found, readers=readers, full_names=names,
        reason=reason, query=urlencode({"investigation": inv_id}))


def _full_names(work: Work, names: list[str]) -> dict[str, str]:
    """User name -> full name, for the users listed."""
    u = work.tables["User"]
    out: dict[str, str] = {}
    for i in range(0, len(names), work.max_ids):
        for name, full in work.conn.execute(select(u.c.name, u.c.fullName)
                                            .where(u.c.name.in_(names[i:i + work.max_ids]))):
            if full:
                out[str(name)] = str(full)
    return out


def routes() -> list[BaseRoute]:
    return [
        Route("/staff", pages.page(health, root=True), methods=["GET"]),
        Route("/staff/downloads", pages.page(downloads_page, root=True), methods=["GET"]),
        Route("/staff/download/{id:int}/{action}", pages.page(download_action, root=True),
              methods=["POST"]),
        Route("/staff/data", pages.page(data_page, root=True), methods=["GET"]),
        Route("/staff/job/{id:int}/{action}", pages.page(job_action, root=True),
              methods=["POST"]),
        Route("/staff/access", pages.page(access_lookup, root=True), methods=["GET"]),
        Route("/staff/access/investigation/{id:int}", pages.page(access_page, root=True),
              methods=["GET"]),
    ]
