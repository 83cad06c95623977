"""The download manager's API as TopCat serves it (``/topcat``, datagateway-download-api):
what the DataGateway portal's download, dataview and search plugins call (ids-download.md
§4.3, datagateway-portal.md §1.2).

Parameters come as TopCat takes them: in the query on GET and DELETE, as form fields
(``application/x-www-form-urlencoded``) on POST and PUT; repeated names (``downloadIds``,
``files``) are lists. Errors are TopCat's ``{"status", "code", "message"}`` with its exception
names (:class:`~cairn.downloads.service.TopcatError`; catalogue errors are mapped by
:func:`~cairn.downloads.service.icat_error`). A session id is never echoed in an error.

CORS: the catalogue's headers, as on every face, plus an answer to preflight requests (the
portal's PUTs need one when it is served from another origin).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MultiDict
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from cairn.downloads.service import DownloadService, TopcatError, bad_request, icat_error
from cairn.errors import IcatError
from cairn.web import cors
from cairn.web.jsonresponse import JSONResponse

log = logging.getLogger(__name__)

PREFIX = "/topcat"

#: The catalogue's CORS headers, and the one request header TopCat's clients send.
HEADERS: tuple[cors.Header, ...] = (*cors.ICAT, (b"access-control-allow-headers",
                                                 b"Content-Type"))
PREFLIGHT_MAX_AGE = 86400

#: The largest form body read (a queue/files call naming 10,000 long locations fits).
MAX_BODY = 32 * 1024 * 1024


class Params:
    """A request's parameters: the query, and on POST and PUT the form fields too."""

    def __init__(self, request: Request, form: MultiDict) -> None:
        self.request = request
        self.path = request.path_params
        self.values = MultiDict([*request.query_params.multi_items(), *form.multi_items()])

    def get(self, name: str) -> str | None:
        value = self.values.get(name)
        return value if isinstance(value, str) else None

    def getlist(self, name: str) -> list[str]:
        return [v for v in self.values.getlist(name) if isinstance(v, str)]

    @property
    def sid(self) -> str | None:
        return self.get("sessionId")

    @property
    def facility(self) -> str | None:
        return self.get("facilityName")

    def flag(self, name: str, default: bool | None = None) -> bool:
        value = self.get(name)
        if value is None or not value.strip():
            if default is None:
                raise bad_request(f"{name} is required: true or false")
            return default
        if value.strip().lower() not in ("true", "false"):
            raise bad_request(f"{name} must be true or false, not {value!r}")
        return value.strip().lower() == "true"

    def integer(self, name: str, value: str | None = None, *, required: bool = True
                ) -> int | None:
        text = self.get(name) if value is None else value
        if text is None or not text.strip():
            if required:
                raise bad_request(f"{name} is required")
            return None
        text = text.strip()
        if not (text.isascii() and text.lstrip("-").isdigit()) or len(text) > 20 \
                or not -(2**63) <= int(text) < 2**63:
            raise bad_request(f"{name} must be a whole number, not {text!r}")
        return int(text)

    def download_id(self) -> int:
        n = self.integer("id", str(self.path["id"]))
        assert n is not None
        return n


async def _form(request: Request) -> MultiDict:
    if request.method not in ("POST", "PUT"):
        return MultiDict()
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        form = await request.form()
        return MultiDict([(k, v) for k, v in form.multi_items() if isinstance(v, str)])
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise bad_request(f"The request body is larger than {MAX_BODY} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("The request body is not UTF-8 form data") from None
    return MultiDict(parse_qsl(text, keep_blank_values=True))


def error_response(e: TopcatError) -> Response:
    return JSONResponse({"status": e.status, "code": e.code, "message": e.message},
                        status_code=e.status)


Operation = Callable[[DownloadService, Params], Any]


def endpoint(op: Operation) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint that reads the parameters, runs ``op`` in a worker thread and renders its
    answer as JSON (None: an empty 200, as TopCat's PUTs answer) or its error as TopCat's."""
    async def handle(request: Request) -> Response:
        sid = request.query_params.get("sessionId")
        try:
            service: DownloadService | None = request.app.state.downloads
            if service is None:
                raise TopcatError(404, "NotFoundException", "The download manager is switched "
                                  "off here ([downloads] enabled = false)")
            params = Params(request, await _form(request))
            sid = params.sid
            result = await run_in_threadpool(op, service, params)
        except TopcatError as e:
            return error_response(e)
        except IcatError as e:
            return error_response(icat_error(e, sid))
        except Exception as e:
            # Never a stack trace to the client; the path (never the query: it may carry a
            # session id) to the log.
            log.exception("unexpected error on %s %s", request.method, request.url.path)
            return error_response(TopcatError(500, "InternalException",
                                              f"Internal error ({type(e).__name__}); see the "
                                              "server log"))
        if result is None:
            return Response(status_code=200)
        return JSONResponse(result)
    return handle


# -- general ------------------------------------------------------------------------------------

def ping(s: DownloadService, p: Params) -> str:
    return "ok"


def version(s: DownloadService, p: Params) -> str:
    return s.version()


def get_conf_var(s: DownloadService, p: Params) -> str:
    return s.conf_var(str(p.path["name"]))


# -- user ---------------------------------------------------------------------------------------

def login(s: DownloadService, p: Params) -> dict[str, str]:
    client = p.request.client
    return s.login(p.facility, p.get("username"), p.get("password"), p.get("plugin"),
                   client.host if client else None)


def get_cart(s: DownloadService, p: Params) -> Any:
    return s.cart(str(p.path["facility"]), p.sid)


def add_cart_items(s: DownloadService, p: Params) -> Any:
    facility = str(p.path["facility"])
    if p.flag("remove", default=False):
        return s.remove_from_cart(facility, p.sid, p.get("items"))
    return s.add_to_cart(facility, p.sid, p.get("items"))


def delete_cart_items(s: DownloadService, p: Params) -> Any:
    return s.remove_from_cart(str(p.path["facility"]), p.sid, p.get("items"))


def submit_cart(s: DownloadService, p: Params) -> Any:
    return s.submit(str(p.path["facility"]), p.sid, p.get("transport"), p.get("fileName"),
                    p.get("email"))


def get_downloads(s: DownloadService, p: Params) -> Any:
    return s.downloads(p.facility or "", p.sid, p.get("queryOffset"))


def get_statuses(s: DownloadService, p: Params) -> Any:
    ids = [p.integer("downloadIds", piece) for value in p.getlist("downloadIds")
           for piece in value.split(",") if piece.strip()]
    return s.statuses(p.facility or "", p.sid, [i for i in ids if i is not None])


def set_deleted(s: DownloadService, p: Params) -> None:
    s.set_deleted(p.download_id(), p.facility, p.sid, p.flag("value"))


def set_status(s: DownloadService, p: Params) -> None:
    s.set_status(p.download_id(), p.facility, p.sid, p.get("value"))


def get_size(s: DownloadService, p: Params) -> int:
    entity_id = p.integer("entityId")
    assert entity_id is not None
    return s.size(p.facility, p.sid, p.get("entityType"), entity_id)


def size_of_visit(s: DownloadService, p: Params) -> Any:
    return s.size_of_visit(p.facility, p.sid, p.get("visitId"))


def size_of_files(s: DownloadService, p: Params) -> Any:
    return s.size_of_files(p.facility, p.sid, p.getlist("files"))


def transports(s: DownloadService, p: Params) -> Any:
    return s.transports(p.facility, p.sid)


def transport(s: DownloadService, p: Params) -> Any:
    return s.transport(str(p.path["type"]), p.facility, p.sid)


def queue_visit(s: DownloadService, p: Params) -> Any:
    return s.queue_visit(p.facility, p.sid, p.get("transport"), p.get("fileName"),
                         p.get("email"), p.get("visitId"))


def queue_collection(s: DownloadService, p: Params) -> Any:
    return s.queue_collection(p.facility, p.sid, p.get("transport"), p.get("fileName"),
                              p.get("email"), p.integer("dataCollectionId", required=False))


def queue_files(s: DownloadService, p: Params) -> Any:
    return s.queue_files(p.facility, p.sid, p.get("transport"), p.get("fileName"),
                         p.get("email"), p.getlist("files"))


def queue_allowed(s: DownloadService, p: Params) -> bool:
    return s.queue_allowed(p.facility, p.sid)


def search_files(s: DownloadService, p: Params) -> Any:
    return s.search_files(p.facility, p.sid, p.integer("maxResults", required=False),
                          p.get("query"), p.get("searchAfter"))


# -- admin --------------------------------------------------------------------------------------

def is_valid_session(s: DownloadService, p: Params) -> bool:
    return s.is_admin(p.facility, p.sid)


def admin_downloads(s: DownloadService, p: Params) -> Any:
    return s.admin_downloads(p.facility, p.sid, p.get("queryOffset"))


def admin_set_status(s: DownloadService, p: Params) -> None:
    s.admin_set_status(p.download_id(), p.facility, p.sid, p.get("value"),
                       p.get("customValue"))


def admin_prepare(s: DownloadService, p: Params) -> None:
    s.admin_prepare(p.download_id(), p.facility, p.sid)


def admin_set_deleted(s: DownloadService, p: Params) -> None:
    s.admin_set_deleted(p.download_id(), p.facility, p.sid, p.flag("value"))


def admin_set_transport(s: DownloadService, p: Params) -> None:
    s.admin_set_transport(str(p.path["type"]), p.facility, p.sid, p.flag("disabled"),
                          p.get("message"))


def admin_clear_size(s: DownloadService, p: Params) -> None:
    s.admin_clear_size(p.facility, p.sid)


def admin_set_conf_var(s: DownloadService, p: Params) -> None:
    s.admin_set_conf_var(str(p.path["name"]), p.facility, p.sid, p.get("value"))


def _route(path: str, op: Operation, method: str) -> Route:
    return Route(path, endpoint(op), methods=[method])


ROUTES: list[BaseRoute] = [
    _route("/ping", ping, "GET"),
    _route("/version", version, "GET"),
    _route("/confVars/{name}", get_conf_var, "GET"),
    _route("/user/session", login, "POST"),
    _route("/user/cart/{facility}", get_cart, "GET"),
    _route("/user/cart/{facility}/cartItems", add_cart_items, "POST"),
    _route("/user/cart/{facility}/cartItems", delete_cart_items, "DELETE"),
    _route("/user/cart/{facility}/submit", submit_cart, "POST"),
    _route("/user/downloads", get_downloads, "GET"),
    _route("/user/downloads/status", get_statuses, "GET"),
    _route("/user/download/{id}/isDeleted", set_deleted, "PUT"),
    _route("/user/download/{id}/status", set_status, "PUT"),
    _route("/user/getSize", get_size, "GET"),
    _route("/user/getSize/visit", size_of_visit, "POST"),
    _route("/user/getSize/files", size_of_files, "POST"),
    _route("/user/downloadType/status", transports, "GET"),
    _route("/user/downloadType/{type}/status", transport, "GET"),
    _route("/user/queue/visit", queue_visit, "POST"),
    _route("/user/queue/dataCollection", queue_collection, "POST"),
    _route("/user/queue/files", queue_files, "POST"),
    _route("/user/queue/allowed", queue_allowed, "GET"),
    _route("/user/search/files", search_files, "POST"),
    _route("/admin/isValidSession", is_valid_session, "GET"),
    _route("/admin/downloads", admin_downloads, "GET"),
    _route("/admin/download/{id}/status", admin_set_status, "PUT"),
    _route("/admin/download/{id}/prepare", admin_prepare, "PUT"),
    _route("/admin/download/{id}/isDeleted", admin_set_deleted, "PUT"),
    _route("/admin/downloadType/{type}/status", admin_set_transport, "PUT"),
    _route("/admin/clearSize/{entityType}/{id}", admin_clear_size, "DELETE"),
    _route("/admin/confVars/{name}", admin_set_conf_var, "PUT"),
]


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    await error_response(TopcatError(404, "NotFoundException",
                                     f"No such call: {scope['method']} {scope['path']}")
                         )(scope, receive, send)


class _Face:
    """The routes behind TopCat's CORS answer and error shape for calls that match none
    (404) or not with that method (405)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = cors.Cors(app, HEADERS, preflight_max_age=PREFLIGHT_MAX_AGE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except HTTPException as e:
            code = "NotAllowedException" if e.status_code == 405 else "BadRequestException"
            await cors.Cors(error_response(TopcatError(e.status_code, code, str(e.detail))),
                            HEADERS)(scope, receive, send)


def routes() -> list[BaseRoute]:
    return [Mount(PREFIX, app=_Face(Router(ROUTES, default=_not_found)))]
