"""A small server speaking DataCite's REST API (JSON:API over HTTP), for the tests.

It serves on a free 127.0.0.1 port (the fixture ``datacite_server``, or a
:class:`DataCiteServer` a test starts and stops itself); tests point Cairn's DataCite client
at ``server.url`` with ``server.username``, ``server.password`` and ``server.prefix``. It
keeps DOIs in memory, logs every request it gets (:attr:`DataCiteServer.calls`) and can be
told to fail.

What it models, following DataCite's own server (``datacite/lupo``) where it could be read:

* Accounts: a repository account (user name, password, prefixes) authenticates with HTTP
  Basic. Bad credentials on any request, or none on a write, -> 401 "Bad credentials.";
  writing a DOI outside the account's prefixes, or one another account owns -> 403.
* ``GET /dois/{doi}``: a findable DOI is public; a draft or registered DOI is shown to the
  account owning it only, and is 404 to anyone else (as at DataCite, which hides it).
* ``POST /dois`` with ``doi``, or with only ``prefix`` (a random suffix is drawn) -> 201.
  An existing DOI -> 422 ``{"source": "doi", "title": "This DOI has already been taken"}``.
* ``PUT /dois/{doi}`` replaces the attributes it is given. Like DataCite, it also *creates*
  a DOI that does not exist yet (201).
* States draft / registered / findable and the attribute ``event``: ``publish`` (draft or
  registered -> findable), ``register`` (draft -> registered), ``hide`` (findable ->
  registered), ``show`` (registered -> findable). An event that does not apply to the
  current state (hide a draft, register a findable DOI) or an unknown one is ignored, state
  unchanged, as DataCite's state machine does (it does not refuse such a transition).
* A registered or findable DOI must have ``url`` and the mandatory properties (creators with
  names, titles, publisher, publicationYear, types.resourceTypeGeneral); otherwise 422 and
  nothing changes. A draft may be incomplete. Error entries are ``{"source", "title", "uid"}``
  with DataCite's attribute names as sources (``url``, ``creators``, ``titles``,
  ``publisher``, ``publication_year``, ``types``, ...), one entry per source, as DataCite
  gives them. The titles of the mandatory-property errors are this server's wording: DataCite
  words them from its XML schema validator, which is not reproduced.
* ``DELETE /dois/{doi}``: a draft -> 204; a registered or findable DOI -> 405 "Method not
  allowed" with an ``Allow`` header (DataCite's answer); an unknown DOI -> 404.
* Answers ``{"data": {"id", "type": "dois", "attributes": {...}}}`` with the stored
  attributes plus ``doi``, ``prefix``, ``suffix`` (lower-cased, as DataCite gives DOIs),
  ``state``, ``url``, ``created``, ``updated``, ``registered``. As at DataCite, ``publisher``
  is answered as a plain name and affiliations as plain names unless the query asks for
  ``publisher=true`` / ``affiliation=true``, and ``publicationYear`` as a number.

Schema validation (``validate_schema``, on by default): whenever a DOI is (or becomes)
registered or findable, its metadata are also checked against DataCite Metadata Schema 4.5 in
JSON, the schema of the ``datacite`` package (:data:`datacite.schema45.validator`), and every
violation is a 422 entry. The REST API's attributes differ from that schema's JSON in a few
places; the server adapts them before validating, never the client:

* ``publisher``: the REST API takes a plain string (or, since 4.5, an object); the schema
  wants the object ``{"name": ...}``.
* ``publicationYear``: the REST API takes a number or a string; the schema wants a string.
* ``schemaVersion``: required (``http://datacite.org/schema/kernel-4``) by the schema; the
  REST API sets it itself.
* ``identifiers`` (``identifier``/``identifierType``) is the REST API's name for alternate
  identifiers (it takes ``alternateIdentifiers`` as an alias); the schema knows
  ``alternateIdentifiers`` (``alternateIdentifier``/``alternateIdentifierType``) only.
* ``types``: the REST API derives ``schemaOrg``, ``bibtex``, ``citeproc`` and ``ris`` and
  takes them back; the schema allows ``resourceType`` and ``resourceTypeGeneral`` only.
* REST-only attributes (``xml``, ``contentUrl``, ``landingPage``, ...) are not metadata and
  are left out. Any *other* attribute the schema does not know is reported (source ``xml``):
  DataCite itself drops unknown attributes silently, but a misspelt property in what Cairn
  sends is a bug these tests should catch.
* The ``datacite`` package validates without a format checker, so ``uri`` and date formats
  are not checked by it.

Failures to test retrying with (see the methods): :meth:`DataCiteServer.outage` (every request
answered 503 until switched off), :meth:`~DataCiteServer.fail_next` (the next N requests
answered with a status, not processed), :meth:`~DataCiteServer.lose_next` (the next N
requests are processed, then the connection is closed after the status line: the client gets
no answer although DataCite did the work), :meth:`~DataCiteServer.hang_next` (processed, the
answer held back longer than a client waits), and :meth:`~DataCiteServer.stop` /
:meth:`~DataCiteServer.start` (connection refused meanwhile; state is kept).
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import binascii
import copy
import json
import logging
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import pytest
import uvicorn
from datacite import schema45
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from tests.waiting import wait_until

JSON_API = "application/vnd.api+json"
KERNEL_4 = "http://datacite.org/schema/kernel-4"
RESOURCE_TYPES_GENERAL = frozenset(
    schema45.validator.schema["definitions"]["resourceTypeGeneral"]["enum"])

#: A DOI DataCite takes: its prefix and a suffix of these characters (DataCite's own check).
DOI_RE = re.compile(r"^10\.\d{4,9}/[-._;()/:a-zA-Z0-9*~$=]+$")
URL_RE = re.compile(r"^(ftp|http|https)://\S+$")
#: Event -> {state before: state after}; anything else leaves the state as it is.
TRANSITIONS = {
    "register": {"draft": "registered"},
    "publish": {"draft": "findable", "registered": "findable"},
    "hide": {"findable": "registered"},
    "show": {"registered": "findable"},
}
#: Attributes the server owns or that steer a request; not stored as metadata.
CONTROL = frozenset({"doi", "prefix", "suffix", "event", "state", "created", "updated",
                     "registered", "published"})
#: REST attributes that are not metadata, left out of schema validation.
REST_ONLY = frozenset({"xml", "contentUrl", "landingPage", "source", "metadataVersion",
                       "isActive", "reason", "confirmDoi", "mode", "should_validate",
                       "regenerate", "client", "schemaVersion", "viewCount", "downloadCount",
                       "citationCount", "referenceCount", "partCount", "partOfCount",
                       "versionCount", "versionOfCount"})
#: ``types`` keys the REST API derives from resourceTypeGeneral.
DERIVED_TYPES = frozenset({"schemaOrg", "bibtex", "citeproc", "ris"})
#: Attributes that are lists of objects (a plain string in one is refused at any state).
OBJECT_LISTS = ("creators", "contributors", "titles", "subjects", "dates", "descriptions",
                "rightsList", "identifiers", "alternateIdentifiers", "relatedIdentifiers",
                "relatedItems", "fundingReferences", "geoLocations")
#: DataCite's attribute names (error sources) where they are not the REST name snake_cased.
SOURCES = {"alternateIdentifiers": "identifiers", "version": "version_info"}


@dataclass(frozen=True)
class Account:
    """A DataCite repository account."""

    username: str
    password: str
    prefixes: tuple[str, ...]


#: The account tests use, and a second one owning another prefix (for 403s).
ACCOUNT = Account("CAIRN.TEST", "repository-secret", ("10.80001",))
OTHER = Account("OTHER.REPO", "other-secret", ("10.80002",))


@dataclass
class Record:
    """A DOI as the server keeps it."""

    doi: str  # lower-cased
    owner: str  # the owning account's user name
    state: str
    #: The metadata as sent, merged over the writes (attributes set to null are dropped).
    attributes: dict[str, Any]
    created: datetime
    updated: datetime
    registered: datetime | None = None

    @property
    def url(self) -> str | None:
        return self.attributes.get("url")


@dataclass
class Call:
    """One request the server received and what it answered."""

    method: str
    path: str
    doi: str | None  # lower-cased, from the path or the body
    event: str | None
    status: int
    username: str | None  # as given in the Basic credentials, right or wrong
    content_type: str | None
    body: Any  # the parsed JSON body, None without one (or when it was not JSON)
    params: dict[str, str] = field(default_factory=dict)
    #: The answer did not reach the client (lose_next / hang_next).
    lost: bool = False


class _Refusal(Exception):
    """An error answer: status and JSON:API error entries."""

    def __init__(self, status: int, errors: list[dict[str, Any]],
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.errors = errors
        self.headers = headers


class _Dropped(Exception):
    """Raised after a partial answer so that uvicorn closes the connection."""


class _QuietDrops(logging.Filter):
    """Keeps uvicorn from logging the dropped connections as application errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _Dropped))


_QUIET = _QuietDrops()


def _status_error(status: int, title: str) -> _Refusal:
    return _Refusal(status, [{"status": str(status), "title": title}])


UNAUTHORIZED = "Bad credentials."
FORBIDDEN = "You are not authorized to access this resource."
NOT_FOUND = "The resource you are looking for doesn't exist."


def _timestamp(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _source(name: str) -> str:
    """DataCite's attribute name (its error ``source``) for a REST attribute."""
    return SOURCES.get(name) or re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


class DataCiteServer:
    """DataCite's REST API for DOIs, in memory, served by uvicorn in a background thread.

    Control from the test's thread: :meth:`start`, :meth:`stop`, :meth:`reset`,
    :meth:`outage`, :meth:`fail_next`, :meth:`lose_next`, :meth:`hang_next`, :meth:`seed`;
    inspect with :attr:`calls`, :meth:`calls_to`, :meth:`record` and :attr:`records`.
    """

    def __init__(self, accounts: Iterable[Account] = (ACCOUNT, OTHER), *,
                 validate_schema: bool = True) -> None:
        self.accounts = {a.username.upper(): a for a in accounts}
        self.account = next(iter(self.accounts.values()))
        #: Check registered and findable DOIs against schema 4.5 too (see the module's doc).
        self.validate_schema = self._validate_schema = validate_schema
        self.port = 0
        #: DOIs by lower-cased DOI.
        self.records: dict[str, Record] = {}
        #: Every request received, in order.
        self.calls: list[Call] = []
        self._lock = threading.RLock()
        self._outage = False
        #: Failures to come, in order: (kind, method or None for any, status or seconds).
        self._faults: list[tuple[str, str | None, float]] = []
        #: Changed by stop() and reset(): answers held back by hang_next go out then.
        self._generation = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._app = Starlette(routes=[
            Route("/heartbeat", self._heartbeat, methods=["GET"]),
            Route("/dois", self._endpoint, methods=["POST"]),
            Route("/dois/{doi:path}", self._endpoint, methods=["GET", "PUT", "DELETE"]),
        ])

    # -- what tests use --------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def prefix(self) -> str:
        """The first prefix of the first account (the one tests write with)."""
        return self.account.prefixes[0]

    @property
    def username(self) -> str:
        return self.account.username

    @property
    def password(self) -> str:
        return self.account.password

    def config(self, password: bool = True) -> str:
        """The ``[publishing]`` section of a Cairn configuration using this server (fast
        updates, CC-BY-4.0); without ``password`` it must come from the environment."""
        secret = f'password = "{self.password}"\n' if password else ""
        return (f'[publishing]\ndatacite_url = "{self.url}"\nprefix = "{self.prefix}"\n'
                f'username = "{self.username}"\n{secret}update_delay_seconds = 0.2\n'
                'rights = "CC-BY-4.0"\n')

    def start(self) -> None:
        """Serve (again) on the same port as before, or on a free one the first time."""
        if self._thread is not None:
            return
        logging.getLogger("uvicorn.error").addFilter(_QUIET)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self._asgi, log_config=None, log_level="warning",
                                access_log=False, lifespan="off", interface="asgi3",
                                timeout_graceful_shutdown=2)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                                  name=f"datacite-server-{self.port}")
        thread.start()
        self._server, self._thread = server, thread

        def started() -> bool:
            assert thread.is_alive(), "the DataCite test server's thread ended"
            return bool(server.started)

        try:
            wait_until(started, 10, "the DataCite test server to start serving", step=0.005)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop serving and close the port (connection refused); the DOIs are kept."""
        self._generation += 1
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
        self._server = self._thread = None

    def reset(self) -> None:
        """Forget DOIs, calls and failures, undo changes to :attr:`validate_schema`, and
        serve if stopped."""
        with self._lock:
            self.validate_schema = self._validate_schema
            self.records.clear()
            self.calls.clear()
            self._outage = False
            self._faults.clear()
            self._generation += 1
        self.start()

    def outage(self, on: bool = True) -> None:
        """Answer every request with 503 (an HTML page, as a proxy would) until switched off."""
        with self._lock:
            self._outage = on

    def fail_next(self, n: int = 1, status: int = 503, method: str | None = None) -> None:
        """Answer the next ``n`` requests (with that ``method`` only, if given) with
        ``status`` and an HTML page, without processing them."""
        with self._lock:
            self._faults.extend([("fail", method, status)] * n)

    def lose_next(self, n: int = 1, method: str | None = None) -> None:
        """Process the next ``n`` requests (with that ``method`` only, if given), then close
        the connection after the status line: the client gets no answer although the work
        was done."""
        with self._lock:
            self._faults.extend([("lose", method, 0)] * n)

    def hang_next(self, n: int = 1, seconds: float = 5.0, method: str | None = None) -> None:
        """Process the next ``n`` requests (with that ``method`` only, if given) and hold
        each answer back ``seconds``, or until :meth:`stop` / :meth:`reset`: a client with a
        shorter timeout gives up although the work was done."""
        with self._lock:
            self._faults.extend([("hang", method, seconds)] * n)

    def calls_to(self, method: str | None = None, doi: str | None = None) -> list[Call]:
        """The calls with that method and/or DOI (compared lower-cased)."""
        with self._lock:
            return [c for c in self.calls
                    if (method is None or c.method == method)
                    and (doi is None or c.doi == doi.lower())]

    def record(self, doi: str) -> Record | None:
        with self._lock:
            return self.records.get(doi.lower())

    def seed(self, doi: str, attributes: dict[str, Any], state: str = "findable",
             owner: Account | None = None) -> Record:
        """Put a DOI in place directly (no validation), as if written earlier."""
        now = datetime.now(UTC)
        record = Record(doi.lower(), (owner or self.account).username, state,
                        copy.deepcopy(attributes), now, now,
                        None if state == "draft" else now)
        with self._lock:
            self.records[record.doi] = record
        return record

    # -- ASGI: failures injected around the application ------------------------------------

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        kind, value = self._take_fault(scope["method"])
        if kind == "fail":
            fail = int(value)
            self._log_unprocessed(scope, body, fail)
            page = f"<html><body><h1>{fail} {HTTPStatus(fail).phrase}</h1></body></html>"
            response = Response(page, fail, media_type="text/html")
            await response(scope, _replay(body, receive), send)
            return
        if kind is None:
            await self._app(scope, _replay(body, receive), send)
            return
        scope["datacite.lost"] = True
        held: list[Message] = []

        async def keep(message: Message) -> None:
            held.append(message)

        await self._app(scope, _replay(body, receive), keep)
        if kind == "lose":
            await send(held[0])  # the status line and headers, then no body
            raise _Dropped()
        deadline = time.monotonic() + value
        generation = self._generation
        while time.monotonic() < deadline and generation == self._generation:
            await asyncio.sleep(0.01)
        for message in held:
            await send(message)

    def _take_fault(self, method: str) -> tuple[str | None, float]:
        """The failure this request is to meet: (kind, status or seconds), (None, 0) if none."""
        with self._lock:
            if self._outage:
                return "fail", 503
            for i, (kind, only, value) in enumerate(self._faults):
                if only is None or only == method:
                    del self._faults[i]
                    return kind, value
        return None, 0

    def _log_unprocessed(self, scope: Scope, body: bytes, status: int) -> None:
        parsed = _json(body)
        path = scope["path"]
        doi = path[len("/dois/"):] if path.startswith("/dois/") else None
        attributes = _attributes_of(parsed)
        doi = doi or (attributes.get("doi") if isinstance(attributes.get("doi"), str) else None)
        with self._lock:
            self.calls.append(Call(scope["method"], path, doi.lower() if doi else None,
                                   attributes.get("event"), status, None, None, parsed))

    # -- the REST API ----------------------------------------------------------------------

    async def _heartbeat(self, request: Request) -> Response:
        return PlainTextResponse("OK")

    async def _endpoint(self, request: Request) -> Response:
        raw = await request.body()
        body = _json(raw)
        attributes = _attributes_of(body)
        path_doi = request.path_params.get("doi")
        named = path_doi or attributes.get("doi")
        username, _ = _basic(request.headers.get("authorization"))
        headers: dict[str, str] | None = None
        with self._lock:
            try:
                status, payload = self._handle(request, path_doi, raw, body)
            except _Refusal as r:
                status, payload, headers = r.status, {"errors": r.errors}, r.headers
            if status == 201 and payload is not None:
                named = payload["data"]["id"]  # a suffix the server drew
            self.calls.append(Call(
                request.method, request.url.path,
                named.lower() if isinstance(named, str) else None,
                attributes.get("event") if isinstance(attributes.get("event"), str) else None,
                status, username, request.headers.get("content-type"), body,
                dict(request.query_params), bool(request.scope.get("datacite.lost"))))
        if payload is None:
            return Response(status_code=status, headers=headers)
        return Response(json.dumps(payload), status, headers=headers, media_type=JSON_API)

    def _handle(self, request: Request, doi: str | None, raw: bytes,
                body: Any) -> tuple[int, dict[str, Any] | None]:
        account = self._authenticate(request.headers.get("authorization"))
        method = request.method
        params = request.query_params
        if method == "GET":
            assert doi is not None
            record = self.records.get(doi.lower())
            if record is None or (record.state != "findable" and
                                  (account is None or account.username != record.owner)):
                raise _status_error(404, NOT_FOUND)
            return 200, _render(record, params)
        if account is None:
            raise _status_error(401, UNAUTHORIZED)
        if method == "DELETE":
            assert doi is not None
            return self._delete(account, doi)
        attributes = self._write_attributes(raw, body)
        if method == "POST":
            return self._create(account, attributes, params)
        assert doi is not None
        record = self.records.get(doi.lower())
        if record is None:
            if not DOI_RE.match(doi):
                raise _status_error(404, NOT_FOUND)
            return self._create(account, {**attributes, "doi": doi}, params)
        return self._update(account, record, attributes, params)

    def _authenticate(self, header: str | None) -> Account | None:
        """The account of valid Basic credentials, None without any; 401 for wrong ones."""
        if header is None:
            return None
        username, password = _basic(header)
        account = self.accounts.get((username or "").upper())
        if account is None or password != account.password:
            raise _status_error(401, UNAUTHORIZED)
        return account

    @staticmethod
    def _write_attributes(raw: bytes, body: Any) -> dict[str, Any]:
        if body is None and raw:
            raise _status_error(400, "The request body is not JSON.")
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            raise _status_error(400, "You need to provide a payload following the JSONAPI spec")
        attributes = body["data"].get("attributes") or {}
        if not isinstance(attributes, dict):
            raise _status_error(400, "data.attributes must be an object")
        return attributes

    def _create(self, account: Account, attributes: dict[str, Any],
                params: Any) -> tuple[int, dict[str, Any]]:
        doi = attributes.get("doi")
        prefix = attributes.get("prefix")
        if not doi and isinstance(prefix, str) and prefix:
            doi = f"{prefix}/{_random_suffix()}"
        if not isinstance(doi, str) or not doi:
            raise _Refusal(422, [{"source": "doi", "title": "Can't be blank"}])
        uid = doi.lower()
        # Permission comes before validation at DataCite: a foreign prefix is a 403 even
        # when the DOI exists or the metadata are wrong.
        if uid.split("/", 1)[0] not in account.prefixes:
            raise _status_error(403, FORBIDDEN)
        event = attributes.get("event")
        state = _transition("draft", event)
        metadata = _metadata({}, attributes)
        errors: list[tuple[str, str]] = []
        if not DOI_RE.match(doi):
            errors.append(("doi", "Is invalid"))
        if uid in self.records:
            errors.append(("doi", "This DOI has already been taken"))
        errors += self._check(uid, state, metadata)
        _refuse(uid, errors)
        now = datetime.now(UTC)
        record = Record(uid, account.username, state, metadata, now, now,
                        None if state == "draft" else now)
        self.records[uid] = record
        return 201, _render(record, params)

    def _update(self, account: Account, record: Record, attributes: dict[str, Any],
                params: Any) -> tuple[int, dict[str, Any]]:
        if record.owner != account.username:
            raise _status_error(403, FORBIDDEN)
        state = _transition(record.state, attributes.get("event"))
        metadata = _metadata(record.attributes, attributes)
        _refuse(record.doi, self._check(record.doi, state, metadata))
        now = datetime.now(UTC)
        if state != "draft" and record.registered is None:
            record.registered = now
        record.state, record.attributes, record.updated = state, metadata, now
        return 200, _render(record, params)

    def _delete(self, account: Account, doi: str) -> tuple[int, None]:
        record = self.records.get(doi.lower())
        if record is None:
            raise _status_error(404, NOT_FOUND)
        if record.owner != account.username:
            raise _status_error(403, FORBIDDEN)
        if record.state != "draft":
            raise _Refusal(405, [{"status": "405", "title": "Method not allowed"}],
                           {"Allow": "HEAD, GET, POST, PATCH, PUT, OPTIONS"})
        del self.records[record.doi]
        return 204, None

    # -- validation ------------------------------------------------------------------------

    def _check(self, uid: str, state: str, metadata: dict[str, Any]) -> list[tuple[str, str]]:
        """(source, title) of what DataCite refuses in these metadata at this state."""
        errors: list[tuple[str, str]] = []
        url = metadata.get("url")
        if url is not None and not (isinstance(url, str) and URL_RE.match(url)):
            errors.append(("url", "URL is not valid"))
        for name in OBJECT_LISTS:
            value = metadata.get(name)
            if value is not None and (not isinstance(value, list) or
                                      not all(isinstance(v, dict) for v in value)):
                errors.append((_source(name),
                               f"{name} should be a list of objects, not {value!r}."))
        if state == "draft":
            return errors
        if not url:
            errors.append(("url", "Can't be blank"))
        errors += _mandatory(uid, metadata)
        if not errors and self.validate_schema:
            errors += _schema_errors(uid, metadata)
        return errors


def _mandatory(uid: str, md: dict[str, Any]) -> list[tuple[str, str]]:
    """The mandatory properties of DataCite Metadata Schema 4 that ``md`` lacks."""
    errors = []
    prefix = f"DOI {uid}: "
    creators = md.get("creators")
    if not creators or not all(isinstance(c, dict) and isinstance(c.get("name"), str)
                               and c["name"].strip() for c in creators):
        errors.append(("creators", prefix + "at least one creator, each with a name, is "
                       "required."))
    titles = md.get("titles")
    if not titles or not all(isinstance(t, dict) and isinstance(t.get("title"), str)
                             and t["title"].strip() for t in titles):
        errors.append(("titles", prefix + "at least one title is required."))
    publisher = md.get("publisher")
    name = publisher.get("name") if isinstance(publisher, dict) else publisher
    if not (isinstance(name, str) and name.strip()):
        errors.append(("publisher", prefix + "a publisher is required."))
    year = md.get("publicationYear")
    if not re.fullmatch(r"\d{4}", str(year) if isinstance(year, int | str) else ""):
        errors.append(("publication_year", prefix + "a publication year of four digits is "
                       "required."))
    types = md.get("types")
    general = types.get("resourceTypeGeneral") if isinstance(types, dict) else None
    if general not in RESOURCE_TYPES_GENERAL:
        got = "" if general is None else f" ({general!r} is not one)"
        errors.append(("types", prefix + "types.resourceTypeGeneral, one of DataCite's resource "
                       f"types, is required{got}."))
    return errors


def _schema_document(uid: str, md: dict[str, Any]) -> dict[str, Any]:
    """The DOI's metadata in the JSON shape of the ``datacite`` package's schema 4.5."""
    doc = {k: copy.deepcopy(v) for k, v in md.items() if k not in REST_ONLY}
    doc["doi"] = uid
    doc["prefix"], doc["suffix"] = uid.split("/", 1)
    doc["schemaVersion"] = KERNEL_4
    if isinstance(doc.get("publisher"), str):
        doc["publisher"] = {"name": doc["publisher"]}
    if isinstance(doc.get("publicationYear"), int):
        doc["publicationYear"] = str(doc["publicationYear"])
    if isinstance(doc.get("types"), dict):
        doc["types"] = {k: v for k, v in doc["types"].items() if k not in DERIVED_TYPES}
    identifiers = doc.pop("identifiers", None)
    if identifiers is not None and "alternateIdentifiers" not in doc:
        doc["alternateIdentifiers"] = [
            {"alternateIdentifier": i.get("identifier"),
             "alternateIdentifierType": i.get("identifierType")}
            if isinstance(i, dict) else i for i in identifiers]
    return doc


def _schema_errors(uid: str, md: dict[str, Any]) -> list[tuple[str, str]]:
    errors = list(schema45.validator.iter_errors(_schema_document(uid, md)))
    # The deepest error first: it names the cause, its parents only repeat it.
    errors.sort(key=lambda e: -len(e.absolute_path))
    found = []
    for e in errors:
        path = list(e.absolute_path)
        source = _source(str(path[0])) if path else "xml"
        where = "/".join(str(p) for p in path) or "the DOI's metadata"
        found.append((source, f"DOI {uid}: {e.message} (at {where}, DataCite Metadata "
                              f"Schema 4.5)."))
    return found


def _refuse(uid: str, errors: list[tuple[str, str]]) -> None:
    """422 with one entry per source, the first found, as DataCite serializes them."""
    if not errors:
        return
    entries: list[dict[str, Any]] = []
    for source, title in errors:
        if not any(e["source"] == source for e in entries):
            entries.append({"source": source, "title": title, "uid": uid})
    raise _Refusal(422, entries)


def _transition(state: str, event: Any) -> str:
    return TRANSITIONS.get(event, {}).get(state, state) if isinstance(event, str) else state


def _metadata(stored: dict[str, Any], sent: dict[str, Any]) -> dict[str, Any]:
    """``stored`` with the metadata attributes of ``sent`` replacing theirs."""
    merged = copy.deepcopy(stored)
    for key, value in sent.items():
        if key in CONTROL:
            continue
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _render(record: Record, params: Any) -> dict[str, Any]:
    """The JSON:API document DataCite answers with for a DOI."""
    attributes = copy.deepcopy(record.attributes)
    as_object = params.get("publisher") == "true"
    publisher = attributes.get("publisher")
    if as_object and isinstance(publisher, str):
        attributes["publisher"] = {"name": publisher}
    elif not as_object and isinstance(publisher, dict):
        attributes["publisher"] = publisher.get("name")
    if params.get("affiliation") != "true":
        for key in ("creators", "contributors"):
            for person in attributes.get(key) or []:
                if isinstance(person, dict) and "affiliation" in person:
                    person["affiliation"] = [a.get("name") if isinstance(a, dict) else a
                                             for a in person["affiliation"] or []]
    year = attributes.get("publicationYear")
    if isinstance(year, str) and year.isdigit():
        attributes["publicationYear"] = int(year)
    if "identifiers" not in attributes and "alternateIdentifiers" in attributes:
        attributes["identifiers"] = [
            {"identifier": a.get("alternateIdentifier"),
             "identifierType": a.get("alternateIdentifierType")}
            for a in attributes["alternateIdentifiers"] if isinstance(a, dict)]
    prefix, suffix = record.doi.split("/", 1)
    attributes.update({
        "doi": record.doi, "prefix": prefix, "suffix": suffix, "state": record.state,
        "url": record.url, "schemaVersion": KERNEL_4,
        "created": _timestamp(record.created), "updated": _timestamp(record.updated),
        "registered": _timestamp(record.registered)})
    return {"data": {"id": record.doi, "type": "dois", "attributes": attributes,
                     "relationships": {"client": {"data": {"id": record.owner.lower(),
                                                           "type": "clients"}}}}}


def _random_suffix() -> str:
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"  # DataCite's suffixes: base32, no i/l/o/u
    chars = "".join(secrets.choice(alphabet) for _ in range(8))
    return f"{chars[:4]}-{chars[4:]}"


def _basic(header: str | None) -> tuple[str | None, str | None]:
    """User name and password of a Basic Authorization header, (None, None) otherwise."""
    if not header or not header.lower().startswith("basic "):
        return None, None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    username, _, password = decoded.partition(":")
    return username, password


def _json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _attributes_of(body: Any) -> dict[str, Any]:
    data = body.get("data") if isinstance(body, dict) else None
    attributes = data.get("attributes") if isinstance(data, dict) else None
    return attributes if isinstance(attributes, dict) else {}


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` handing the already read body to the application, then passing on."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay



#: The server the fixture hands out, one per test process: starting takes milliseconds but
#: stopping a tenth of a second (uvicorn's shutdown tick), too much to pay per test.
_shared: list[DataCiteServer] = []


@pytest.fixture(name="datacite_server")
def datacite_server_fixture() -> DataCiteServer:
    """``datacite_server``: the test process's DataCite server, reset for this test: no DOIs,
    no calls, no failures, schema validation on, serving (on the same port as before).

    A test module imports ``datacite_server_fixture`` (for pytest to see it) and asks for
    ``datacite_server``."""
    if not _shared:
        _shared.append(DataCiteServer())
        atexit.register(_shared[0].stop)
    server = _shared[0]
    server.reset()
    return server
