"""The download manager's operations, as TopCat's back end (datagateway-download-api) offers
them under ``/topcat``: carts, submits, queues, downloads and their statuses, transports,
sizes and configuration values, for users and for admins (ids-download.md §4.3).

Each operation is one unit of work on the core API, as the caller (a session's user): the
cart, the download rows and the jobs that will prepare them are written in one transaction,
so a download never exists without the jobs that carry it, nor the other way round. The HTTP
adapter (:mod:`cairn.web.topcat_rest`) parses parameters and renders the answer or a
:class:`TopcatError`; catalogue errors (:class:`~cairn.errors.IcatError`) pass through and are
mapped there.

What TopCat does that Cairn does not: session ids are never stored (a download is prepared as
Cairn itself, on behalf of its user, whose right to the data is checked at submission); an
anonymous user's carts are keyed by a hash of the session, not the session; user text (visit
ids, locations, ``queryOffset``) only ever reaches SQL as bound parameters.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, func, select

from cairn.catalogue.service import Catalogue
from cairn.catalogue.work import Work
from cairn.config import DownloadSettings, FacilityDownloads, TransportSettings
from cairn.downloads import queueing
from cairn.downloads.carts import Carts, owner_of
from cairn.downloads.items import parse_items, parse_removal
from cairn.downloads.lifecycle import Lifecycle
from cairn.downloads.mail import Mailer, request_mail, valid_address
from cairn.downloads.model import ENTITY_TYPES, Download, Status
from cairn.downloads.query_offset import QueryOffset, apply, parse_query_offset
from cairn.downloads.store import Store, utcnow
from cairn.errors import ErrorType, IcatError
from cairn.ids.selection import Selection
from cairn.ids.service import DataService
from cairn.jobs import Kind, Periodic, Scheduler

if TYPE_CHECKING:
    from cairn.search.service import SearchService

log = logging.getLogger(__name__)


class TopcatError(Exception):
    """An error as TopCat answers it: an HTTP status and TopCat's exception name."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def bad_request(message: str) -> TopcatError:
    return TopcatError(400, "BadRequestException", message)


def forbidden(message: str) -> TopcatError:
    return TopcatError(403, "ForbiddenException", message)


def not_found(message: str) -> TopcatError:
    return TopcatError(404, "NotFoundException", message)


def cairn_version() -> str:
    try:
        return package_version("cairn")
    except PackageNotFoundError:  # run from a source tree
        return "unknown"


#: What a user may set a download's status to: pause it, or resume a paused one.
_USER_VALUES = frozenset({Status.PAUSED, Status.PREPARING, Status.RESTORING})
_ADMIN_ONLY_MESSAGE = ("Only the download manager's admins may do this: give the sessionId "
                       "of one of them and a valid facilityName")


@dataclass(frozen=True)
class Caller:
    work: Work
    #: The ICAT user name.
    user: str
    #: Whose carts and downloads: the user, or for the anonymous user one per session.
    owner: str


class DownloadService:
    def __init__(self, catalogue: Catalogue, data: DataService, settings: DownloadSettings,
                 public_url: str, jobs: Scheduler | None = None,
                 lifecycle: Lifecycle | None = None, mailer: Mailer | None = None,
                 search: SearchService | None = None) -> None:
        self.catalogue = catalogue
        #: Free-text search, for ``search/files`` (None: search is switched off).
        self.search = search
        self.data = data
        self.settings = settings
        self.public_url = public_url.rstrip("/")
        self.jobs = jobs
        self.store = Store(catalogue.db.tables.downloads)
        self.carts = Carts(self.store)
        self.lifecycle = lifecycle or Lifecycle(catalogue, data, settings, jobs)
        self.mailer = mailer or Mailer(catalogue.db, settings, self.public_url)

    def job_kinds(self) -> list[Kind | Periodic]:
        """The room's work on the scheduler: preparing, polling and queueing downloads, and
        their mails."""
        return [*self.lifecycle.job_kinds(), *self.mailer.job_kinds()]

    # -- who calls ----------------------------------------------------------------------------

    @contextmanager
    def _caller(self, session_id: str | None, read_only: bool = False) -> Iterator[Caller]:
        with self.catalogue.as_user(session_id, read_only=read_only) as work:
            yield Caller(work, work.user,
                         owner_of(work.user, session_id or "", self.settings.anon_user))

    def admins(self) -> list[str]:
        return list(self.settings.admins or self.catalogue.settings.catalogue.root_users)

    def _is_admin_session(self, session_id: str | None) -> bool:
        try:
            user = self.catalogue.session(session_id).user
        except IcatError:
            return False
        return user in self.admins()

    @contextmanager
    def _admin(self, facility: str | None, session_id: str | None,
               read_only: bool = False) -> Iterator[Caller]:
        """The caller's unit, if the caller is an admin (403 otherwise, an invalid session
        included, as TopCat)."""
        if not self._is_admin_session(session_id):
            raise forbidden(_ADMIN_ONLY_MESSAGE)
        with self._caller(session_id, read_only) as caller:
            if facility is not None:
                self._facility(caller.work, facility)
            yield caller

    # -- facilities, transports ---------------------------------------------------------------

    def facilities(self, work: Work) -> list[str]:
        """The valid facilityName values: configured, or every Facility of the catalogue."""
        if self.settings.facilities:
            return list(self.settings.facilities)
        f = work.tables["Facility"]
        return [r[0] for r in work.conn.execute(select(f.c.name).order_by(f.c.name))]

    def _facility(self, work: Work, name: str | None) -> str:
        valid = self.facilities(work)
        if not name:
            if len(valid) == 1:  # TopCat's default facility, when there is only one
                return valid[0]
            raise bad_request("facilityName is required; one of: " + ", ".join(valid))
        if name not in valid:
            raise bad_request(f"Unknown facilityName {name!r}; this server knows: "
                              + (", ".join(valid) or "none (the catalogue has no Facility)"))
        return name

    def _limits(self, facility: str) -> FacilityDownloads:
        return self.settings.facilities.get(facility) or FacilityDownloads()

    def _in_groupings(self, work: Work, user: str, groupings: Sequence[str]) -> bool:
        t = work.tables
        ug, g, u = t["UserGroup"], t["Grouping"], t["User"]
        q = (select(func.count()).select_from(ug.join(g, ug.c.grouping == g.c.id)
                                              .join(u, ug.c.user == u.c.id))
             .where(g.c.name.in_(list(groupings)), u.c.name == user))
        return bool(work.conn.execute(q).scalar_one())

    def _usable(self, caller: Caller, name: str) -> TransportSettings:
        """The transport ``name``, if the caller may use it; else the error saying why."""
        t = self.settings.transports.get(name)
        if t is None:
            raise bad_request(f"Unknown transport {name!r}; this server offers: "
                              + ", ".join(self.settings.transports))
        if not self._may_use(caller.work, caller.user, t):
            raise forbidden(f"{caller.user} not allowed to use {name}")
        return t

    def _may_use(self, work: Work, user: str, t: TransportSettings) -> bool:
        mnemonic = user.partition("/")[0] if "/" in user else ""
        if mnemonic and mnemonic in t.disallowed_authn:
            return False
        return not t.allowed_groupings or self._in_groupings(work, user, t.allowed_groupings)

    def _ids_url(self, t: TransportSettings) -> str:
        return (t.ids_url or f"{self.public_url}/ids").rstrip("/")

    def _transport_json(self, work: Work, facility: str, name: str) -> dict[str, Any]:
        t = self.settings.transports[name]
        disabled, message = self.store.download_type(work.conn, facility, name) or (False, "")
        return {"idsUrl": self._ids_url(t), "displayName": t.display_name,
                "description": t.description, "disabled": disabled, "message": message}

    def _transport(self, caller: Caller, facility: str, name: str | None) -> str:
        """A transport the caller may submit with (none named: the first configured), or
        the error saying why not."""
        if name is None or not name.strip():
            name = next(iter(self.settings.transports))
        self._usable(caller, name)
        switch = self.store.download_type(caller.work.conn, facility, name)
        if switch is not None and switch[0]:
            raise forbidden(f"The transport {name} is disabled"
                            + (f": {switch[1]}" if switch[1] else ""))
        return name

    def _email(self, transport: str, email: str | None) -> str | None:
        email = (email or "").strip() or None
        if email is None and self.settings.transports[transport].mail_required:
            raise bad_request(f"email is required for {transport}")
        if email is not None and (len(email) > 255 or not valid_address(email)):
            raise bad_request(f"email {email[:255]!r} is not an e-mail address")
        return email

    def _check_anonymous(self, caller: Caller) -> None:
        if caller.user == self.settings.anon_user and not self.settings.anon_download_enabled:
            raise forbidden("Downloads by anonymous users not supported")

    def _full_name(self, work: Work, user: str) -> str:
        u = work.tables["User"]
        name = work.conn.execute(select(u.c.fullName).where(u.c.name == user)).scalar()
        return str(name) if name else user

    # -- general ------------------------------------------------------------------------------

    def version(self) -> str:
        return cairn_version()

    def conf_var(self, name: str) -> str:
        with self.catalogue.as_system(read_only=True) as work:
            return self.store.conf_var(work.conn, name) or ""

    def login(self, facility: str | None, username: str | None, password: str | None,
              plugin: str | None, ip: str | None) -> dict[str, str]:
        """TopCat's ``user/session``: an ICAT login with form fields."""
        if facility:
            with self.catalogue.as_system(read_only=True) as work:
                self._facility(work, facility)
        mnemonic = plugin or next(iter(self.catalogue.authenticators), None)
        credentials = {"username": username or "", "password": password or ""}
        try:
            return {"sessionId": self.catalogue.login(mnemonic, credentials, ip)}
        except IcatError as e:
            # TopCat relays ICAT's answer: refused credentials are its 403.
            if e.type in (ErrorType.SESSION, ErrorType.INSUFFICIENT_PRIVILEGES):
                raise forbidden(e.message) from None
            raise

    # -- carts --------------------------------------------------------------------------------

    def cart(self, facility: str, session_id: str | None) -> dict[str, Any]:
        with self._caller(session_id, read_only=True) as c:
            facility = self._facility(c.work, facility)
            return self.carts.get(c.work, facility, c.owner).to_json()

    def add_to_cart(self, facility: str, session_id: str | None, items: str | None
                    ) -> dict[str, Any]:
        pairs = parse_items(items)
        with self._caller(session_id) as c:
            facility = self._facility(c.work, facility)
            return self.carts.add(c.work, facility, c.owner, pairs).to_json()

    def remove_from_cart(self, facility: str, session_id: str | None, items: str | None
                         ) -> dict[str, Any]:
        removal = parse_removal(items)
        with self._caller(session_id) as c:
            facility = self._facility(c.work, facility)
            return self.carts.remove(c.work, facility, c.owner, removal).to_json()

    def submit(self, facility: str, session_id: str | None, transport: str | None,
               file_name: str | None, email: str | None) -> dict[str, Any]:
        """The cart becomes a download (and the cart is emptied)."""
        file_name = _file_name(file_name, None)
        with self._caller(session_id) as c:
            facility = self._facility(c.work, facility)
            transport = self._transport(c, facility, transport)
            email = self._email(transport, email)
            self._check_anonymous(c)
            cart = self.carts.take(c.work, facility, c.owner)
            out: dict[str, Any] = {"facilityName": facility, "userName": c.owner,
                                   "cartItems": []}
            if cart is None or not cart.items:
                return out  # as TopCat: nothing to submit, no downloadId
            items = [(i.entity_type, i.entity_id) for i in cart.items]
            for kind in ENTITY_TYPES:  # rights may have changed since the items were added
                ids = [i for t, i in items if t == kind]
                if ids:
                    c.work.require_readable(kind.capitalize(), ids)
            count, size = totals(c.work, items)
            limits = self._limits(facility)
            if count > limits.limit_count:
                raise bad_request("Unable to submit for cart for download, number of files "
                                  f"exceeds limit ({count} > {limits.limit_count})")
            if size > limits.limit_size:
                raise bad_request("Unable to submit for cart for download, size of files "
                                  f"exceeds limit ({size} > {limits.limit_size} bytes)")
            queued = self.settings.queue_carts
            priority = 1
            if queued:
                priority = self._queue_priority(c)
            out["downloadId"] = self._insert(c, facility, transport, file_name, email,
                                             items, size, queued, priority)
            return out

    def _insert(self, c: Caller, facility: str, transport: str, file_name: str,
                email: str | None, items: list[tuple[str, int]], size: int, queued: bool,
                priority: int) -> int:
        d = Download(id=0, facility=facility, user=c.owner,
                     full_name=self._full_name(c.work, c.user), transport=transport,
                     file_name=file_name, status=Status.QUEUED if queued else Status.PREPARING,
                     priority=priority, size=size, is_two_level=self.data.two_level,
                     created=utcnow(), items=items, email=email)
        download_id = self.store.insert_download(c.work.conn, d)
        self.lifecycle.submitted(c.work, download_id, queued)
        log.info("download %d submitted by %s: %d item(s), %d bytes, %s%s", download_id,
                 c.owner, len(items), size, transport, " (queued)" if queued else "")
        return download_id

    # -- downloads ----------------------------------------------------------------------------

    def downloads(self, facility: str, session_id: str | None, query_offset: str | None
                  ) -> list[dict[str, Any]]:
        """The caller's downloads in the facility, narrowed by ``queryOffset``."""
        t = self.store.t.download
        qo = parse_query_offset(query_offset, t)
        with self._caller(session_id, read_only=True) as c:
            facility = self._facility(c.work, facility)
            q = self.store.select_downloads().where(t.c.user == c.owner,
                                                    t.c.facility == facility)
            return self._listed(c.work, q, qo)

    def _listed(self, work: Work, q: Select[Any], qo: QueryOffset) -> list[dict[str, Any]]:
        q = apply(q, qo)
        if not qo.order_by:
            q = q.order_by(self.store.t.download.c.id)
        return [d.to_json() for d in self.store.downloads(work.conn, q)]

    def statuses(self, facility: str, session_id: str | None, ids: Sequence[int]
                 ) -> list[str]:
        """The statuses of the caller's downloads ``ids``, in the order asked for."""
        if not ids:
            raise bad_request("At least one downloadId required")
        with self._caller(session_id, read_only=True) as c:
            self._facility(c.work, facility)
            found = self.store.owners_and_statuses(c.work.conn, ids)
            for i in ids:
                if i not in found or found[i][1] != c.owner:
                    raise not_found(f"Could not find download {i}")
            return [found[i][2].legacy.value for i in ids]

    def _own(self, c: Caller, download_id: int, verb: str) -> Download:
        d = self.store.download(c.work.conn, download_id)
        if d is None:
            raise not_found("could not find download")
        if d.user != c.owner:
            raise forbidden(f"you do not have permission to {verb} this download")
        return d

    def set_deleted(self, download_id: int, facility: str | None, session_id: str | None,
                    value: bool) -> None:
        with self._caller(session_id) as c:
            self._facility(c.work, facility)
            self._own(c, download_id, "delete")
            self._mark_deleted(c.work, download_id, value)

    def _mark_deleted(self, work: Work, download_id: int, value: bool) -> None:
        self.store.update(work.conn, download_id, is_deleted=value,
                          deleted_at=utcnow() if value else None)
        if not value:  # an undeleted download may need its job again
            self.lifecycle.changed(work, download_id)

    def set_status(self, download_id: int, facility: str | None, session_id: str | None,
                   value: str | None) -> None:
        """A user pauses a download or resumes a paused one; nothing else (TopCat lets a user
        set any status, COMPLETE included)."""
        status = _status(value)
        with self._caller(session_id) as c:
            self._facility(c.work, facility)
            d = self._own(c, download_id, "change")
            if d.status is Status.QUEUED:
                raise forbidden("Cannot modify status of a QUEUED Download")
            if status not in _USER_VALUES:
                raise forbidden(f"A download can be paused (PAUSED) or resumed (RESTORING), "
                                f"not set to {status.value}")
            if status is Status.PAUSED:
                if d.status not in (Status.PREPARING, Status.RESTORING, Status.PAUSED):
                    raise forbidden(f"Only a download being prepared or restored can be "
                                    f"paused; this one is {d.status.legacy.value}")
                if not self.store.update(c.work.conn, download_id,
                                         when={"status": d.status}, status=Status.PAUSED):
                    raise bad_request("The download changed meanwhile; try again")
                return
            if d.status is not Status.PAUSED:
                return  # resuming what runs: nothing to do
            self._resume(c.work, d)

    def _resume(self, work: Work, d: Download) -> None:
        """A paused download carries on where it was: preparing if it has no prepared id
        yet, else restoring (the lifecycle takes it from there)."""
        to = Status.RESTORING if d.prepared_id else Status.PREPARING
        if self.store.update(work.conn, d.id, when={"status": Status.PAUSED}, status=to):
            self.lifecycle.changed(work, d.id)

    # -- sizes --------------------------------------------------------------------------------

    def size(self, facility: str | None, session_id: str | None, entity_type: str | None,
             entity_id: int) -> int:
        """The bytes of an investigation, dataset or datafile the caller may read."""
        kind = (entity_type or "").lower()
        if kind not in ENTITY_TYPES:
            raise bad_request("entityType must be one of " + ", ".join(ENTITY_TYPES))
        with self.catalogue.as_system(read_only=True) as work:
            self._facility(work, facility)
        return self.data.size(None, session_id, Selection(**{f"{kind}_ids": (entity_id,)}))

    def size_of_visit(self, facility: str | None, session_id: str | None,
                      visit_id: str | None) -> dict[str, int]:
        if not visit_id:
            raise bad_request("visitId must be provided")
        with self._caller(session_id, read_only=True) as c:
            facility = self._facility(c.work, facility)
            parts = queueing.visit_parts(c.work, facility, visit_id, self.settings.part_files)
            count, size = totals(c.work, [item for part in parts for item in part])
            return {"totalCount": count, "totalSize": size}

    def size_of_files(self, facility: str | None, session_id: str | None,
                      files: Sequence[str]) -> dict[str, Any]:
        self._check_files(files)
        with self._caller(session_id, read_only=True) as c:
            self._facility(c.work, facility)
            items, missing = queueing.files_items(c.work, list(files))
            count, size = totals(c.work, items)
            return {"totalCount": count, "totalSize": size, "notFound": missing}

    def _check_files(self, files: Sequence[str]) -> None:
        if not files:
            raise bad_request("At least one Datafile.location required")
        if len(files) > self.settings.max_files:
            raise bad_request(f"Limit of {self.settings.max_files} files exceeded")

    # -- finding files --------------------------------------------------------------------------

    def search_files(self, facility: str | None, session_id: str | None,
                     max_results: int | None, text: str | None,
                     search_after: str | None) -> dict[str, Any]:
        """The locations and sizes of the datafiles a free-text query finds, for queue/files,
        in icat.lucene's answer shape (TopCat passes icat.lucene's answer on as it is).

        TopCat asks icat.lucene directly, which knows nothing of rules, so it narrows a
        non-admin to the investigations they are on; Cairn's search runs under the caller's
        rules as well, and keeps that narrowing so the same query finds the same files."""
        if self.search is None or "Datafile" not in self.search.index.docs:
            raise bad_request("Querying not enabled: free-text search of Datafiles is off "
                              "here ([search] enabled, entities)")
        limit = self.settings.search_max_results
        if max_results is not None and max_results > limit:
            raise bad_request(f"maxResults cannot exceed {limit}")
        if max_results is None or max_results < 1:
            max_results = min(limit, self.settings.max_files)
        if text is None or not text.strip():
            raise bad_request("query is required: free text in Lucene syntax")
        with self._caller(session_id, read_only=True) as c:
            self._facility(c.work, facility)
            user = c.user
        query: dict[str, Any] = {"target": "Datafile", "text": text}
        if not self._is_admin_session(session_id):
            query["user"] = user
        found = self.search.search_documents(
            session_id, json.dumps(query), search_after=search_after or None,
            max_count=str(max_results))
        out: dict[str, Any] = {"results": [
            {"_id": hit["id"], "_shardIndex": -1,
             **({"_score": hit["score"]} if "score" in hit else {}),
             "_source": {k: hit["source"][k] for k in ("id", "location", "fileSize")
                         if k in hit["source"]}}
            for hit in found["results"]]}
        if "search_after" in found:
            out["search_after"] = found["search_after"]
        return out

    # -- transports ---------------------------------------------------------------------------

    def transports(self, facility: str | None, session_id: str | None) -> dict[str, Any]:
        """Every transport the caller may use, with its switch."""
        with self._caller(session_id, read_only=True) as c:
            facility = self._facility(c.work, facility)
            return {name: self._transport_json(c.work, facility, name)
                    for name, t in self.settings.transports.items()
                    if self._may_use(c.work, c.user, t)}

    def transport(self, name: str, facility: str | None, session_id: str | None
                  ) -> dict[str, Any]:
        with self._caller(session_id, read_only=True) as c:
            facility = self._facility(c.work, facility)
            self._usable(c, name)
            return self._transport_json(c.work, facility, name)

    # -- queues -------------------------------------------------------------------------------

    def _queue_priority(self, c: Caller) -> int:
        p = queueing.priority(c.work, self.settings, c.user)
        if p <= 0:
            raise forbidden("Queuing downloads is forbidden")
        return p

    def queue_allowed(self, facility: str | None, session_id: str | None) -> bool:
        with self._caller(session_id, read_only=True) as c:
            self._facility(c.work, facility)
            return queueing.priority(c.work, self.settings, c.user) > 0

    @contextmanager
    def _queueing(self, facility: str | None, session_id: str | None, transport: str | None,
                  email: str | None) -> Iterator[tuple[Caller, str, str, str | None, int]]:
        """What every queue call checks first: (caller, facility, transport, e-mail,
        priority)."""
        with self._caller(session_id) as c:
            facility = self._facility(c.work, facility)
            transport = self._transport(c, facility, transport)
            email = self._email(transport, email)
            self._check_anonymous(c)
            yield c, facility, transport, email, self._queue_priority(c)

    def queue_visit(self, facility: str | None, session_id: str | None,
                    transport: str | None, file_name: str | None, email: str | None,
                    visit_id: str | None) -> list[int]:
        """Every dataset of the visit, queued in parts of at most ``part_files`` files."""
        if not visit_id:
            raise bad_request("visitId must be provided")
        with self._queueing(facility, session_id, transport, email) as (c, f, t, e, p):
            name = _file_name(file_name, f"{f}_{visit_id}")
            parts = queueing.visit_parts(c.work, f, visit_id, self.settings.part_files)
            if not parts:  # investigations the caller may read, but nothing in them
                raise not_found(f"No Datasets found for {visit_id}")
            return self._queue_parts(c, f, t, name, e, p, parts)

    def queue_collection(self, facility: str | None, session_id: str | None,
                         transport: str | None, file_name: str | None, email: str | None,
                         collection_id: int | None) -> list[int]:
        if collection_id is None or collection_id < 1:
            raise bad_request("Valid dataCollectionId must be provided")
        with self._queueing(facility, session_id, transport, email) as (c, f, t, e, p):
            name = _file_name(file_name, f"{f}_DataCollection{collection_id}")
            parts = queueing.collection_parts(c.work, collection_id, self.settings.part_files)
            if not parts:
                raise not_found(f"No data found for DataCollection {collection_id}")
            return self._queue_parts(c, f, t, name, e, p, parts)

    def _queue_parts(self, c: Caller, facility: str, transport: str, name: str,
                     email: str | None, priority: int, parts: Sequence[list[tuple[str, int]]]
                     ) -> list[int]:
        names = queueing.part_names(name, len(parts))
        return [self._insert(c, facility, transport, n, email, part, totals(c.work, part)[1],
                             True, priority) for n, part in zip(names, parts, strict=True)]

    def queue_files(self, facility: str | None, session_id: str | None,
                    transport: str | None, file_name: str | None, email: str | None,
                    files: Sequence[str]) -> dict[str, Any]:
        """The datafiles at ``files`` (locations), queued as one download."""
        self._check_files(files)
        with self._queueing(facility, session_id, transport, email) as (c, f, t, e, p):
            name = _file_name(file_name, f"{f}_files")
            items, missing = queueing.files_items(c.work, list(files))
            if not items:
                raise not_found("No Datafiles found")
            _, size = totals(c.work, items)
            download_id = self._insert(c, f, t, name, e, items, size, True, p)
            return {"downloadId": download_id, "notFound": missing}

    # -- admin --------------------------------------------------------------------------------

    def is_admin(self, facility: str | None, session_id: str | None) -> bool:
        """Whether the session is an admin's (false for an invalid one, as TopCat)."""
        if facility:
            with self.catalogue.as_system(read_only=True) as work:
                self._facility(work, facility)
        return self._is_admin_session(session_id)

    def admin_downloads(self, facility: str | None, session_id: str | None,
                        query_offset: str | None) -> list[dict[str, Any]]:
        """Every download (any user, any facility), narrowed by ``queryOffset``."""
        qo = parse_query_offset(query_offset, self.store.t.download)
        with self._admin(facility, session_id, read_only=True) as c:
            return self._listed(c.work, self.store.select_downloads(), qo)

    def admin_set_status(self, download_id: int, facility: str | None,
                         session_id: str | None, value: str | None,
                         custom_value: str | None) -> None:
        """Any status. QUEUED -> RESTORING becomes PREPARING (a queued download has nothing
        prepared to restore yet); a paused download resumes where it was. COMPLETE records
        the time and requests the ready mail, with ``${customValue}`` when given (sent again
        then, even if a ready mail went before): how an outside transport agent says it is
        done."""
        status = _status(value)
        if status is Status.DELIVERED:
            raise bad_request("DELIVERED is not set by hand: Cairn sets it when every byte of "
                              "the download has gone out (set COMPLETE instead)")
        with self._admin(facility, session_id) as c:
            d = self.store.download(c.work.conn, download_id)
            if d is None:
                raise not_found("could not find download")
            if d.status is Status.QUEUED and status is Status.RESTORING:
                status = Status.PREPARING
            if d.status is Status.PAUSED and status in (Status.PREPARING, Status.RESTORING):
                self._resume(c.work, d)
                return
            values: dict[str, Any] = {"status": status}
            if status is Status.COMPLETE:
                values["completed"] = utcnow()
                if custom_value:
                    values.update(custom_value=custom_value, is_email_sent=False)
            if not self.store.update(c.work.conn, download_id, when={"status": d.status},
                                     **values):
                raise bad_request("The download changed meanwhile; try again")
            if status is Status.COMPLETE and d.email and self.jobs is not None:
                request_mail(self.jobs, c.work.conn, download_id, "ready")
                c.work.enqueued = True  # wakes the scheduler after the commit
            self.lifecycle.changed(c.work, download_id)

    def admin_set_priority(self, download_id: int, facility: str | None,
                           session_id: str | None, priority: int) -> None:
        """A queued (or paused) download's place in the queue: lower starts first. A
        compare-and-set on its status, as every change of a download; the queue is looked at
        again at once."""
        if priority < 1:
            raise bad_request("A priority is 1 (first) or more; pause a download to hold it")
        with self._admin(facility, session_id) as c:
            d = self.store.download(c.work.conn, download_id)
            if d is None:
                raise not_found("could not find download")
            if d.status not in (Status.QUEUED, Status.PAUSED):
                raise bad_request(f"Download {download_id} is {d.status.value}: a priority "
                                  "orders only queued (or paused) downloads")
            if not self.store.update(c.work.conn, download_id, when={"status": d.status},
                                     priority=priority):
                raise bad_request("The download changed meanwhile; try again")
            if d.status is Status.QUEUED:
                self.lifecycle.request_schedule(c.work)

    def admin_prepare(self, download_id: int, facility: str | None,
                      session_id: str | None) -> None:
        """Prepare a download again (an expired or deleted one included): undeleted, its
        dates cleared, a new prepared id."""
        with self._admin(facility, session_id) as c:
            if self.store.download(c.work.conn, download_id) is None:
                raise not_found("could not find download")
            self.store.update(c.work.conn, download_id, is_deleted=False, deleted_at=None,
                              completed=None)
            self.lifecycle.reprepare(c.work, download_id)

    def admin_set_deleted(self, download_id: int, facility: str | None,
                          session_id: str | None, value: bool) -> None:
        with self._admin(facility, session_id) as c:
            if self.store.download(c.work.conn, download_id) is None:
                raise not_found("could not find download")
            self._mark_deleted(c.work, download_id, value)

    def admin_set_transport(self, name: str, facility: str | None, session_id: str | None,
                            disabled: bool, message: str | None) -> None:
        with self._admin(facility, session_id) as c:
            if name not in self.settings.transports:
                raise bad_request(f"Unknown transport {name!r}; this server offers: "
                                  + ", ".join(self.settings.transports))
            f = self._facility(c.work, facility)
            self.store.set_download_type(c.work.conn, f, name, disabled, (message or "")[:1024])

    def admin_clear_size(self, facility: str | None, session_id: str | None) -> None:
        """TopCat drops a cached size; Cairn caches none (sizes are summed when asked)."""
        with self._admin(facility, session_id, read_only=True):
            pass

    def admin_set_conf_var(self, name: str, facility: str | None, session_id: str | None,
                           value: str | None) -> None:
        if len(name) > 255:
            raise bad_request("A configuration variable's name has at most 255 characters")
        with self._admin(facility, session_id) as c:
            self.store.set_conf_var(c.work.conn, name, value or "")


def _status(value: str | None) -> Status:
    try:
        return Status((value or "").strip().upper())
    except ValueError:
        raise bad_request(f"Unknown status {value!r}; one of: "
                          + ", ".join(s.value for s in Status)) from None


def _file_name(given: str | None, default: str | None) -> str:
    name = (given or "").strip() or default
    if not name:
        raise bad_request("fileName is required")
    if len(name) > 255:
        raise bad_request("fileName is longer than 255 characters")
    return name


def totals(work: Work, items: Sequence[tuple[str, int]]) -> tuple[int, int]:
    """(files, bytes) of the located datafiles (those a download holds) ``items`` name,
    summed over Datafile rows: a Dataset's or Investigation's own fileCount/fileSize may be
    stale. The items must not overlap (a cart never holds an entity with its parent, nor a
    queue part), so the sums are exact."""
    df, ds = work.tables["Datafile"], work.tables["Dataset"]
    located = df.c.location.is_not(None)
    sums = select(func.count(df.c.id), func.sum(df.c.fileSize))
    by_kind: dict[str, Callable[[list[int]], Select[int, Any]]] = {
        "datafile": lambda ids: sums.where(df.c.id.in_(ids), located),
        "dataset": lambda ids: sums.where(df.c.dataset.in_(ids), located),
        "investigation": lambda ids: sums.select_from(df.join(ds, df.c.dataset == ds.c.id))
        .where(ds.c.investigation.in_(ids), located),
    }
    count, size = 0, 0
    for kind, query in by_kind.items():
        for batch in work.chunks(sorted({i for t, i in items if t == kind})):
            n, total = work.conn.execute(query(batch)).one()
            count += int(n or 0)
            size += int(total or 0)
    return count, size


def icat_error(e: IcatError, session_id: str | None = None) -> TopcatError:
    """A catalogue error as TopCat surfaces ICAT's: 404 stays NotFound, internal errors are
    InternalException, and everything else (sessions, rights, parameters) BadRequest. The
    session id is never echoed back."""
    message = e.message
    if session_id:
        message = message.replace(session_id, "<sessionId>")
    if e.type is ErrorType.NO_SUCH_OBJECT_FOUND:
        return not_found(message)
    if e.type is ErrorType.INTERNAL:
        return TopcatError(500, "InternalException", message)
    return bad_request(message)
