"""ids.server's HTTP interface (``/ids/...``): parse the request, call the data service in a
worker thread, render the answer or ``{"code": "<IdsException>", "message": ...}``.

The ``/ids`` paths are served by their own small Starlette app, put in front of the catalogue
app by :class:`IdsDispatch`, so downloads and uploads stream straight to the server without
passing through the catalogue's middleware; it adds ids.server's CORS headers instead
(:mod:`cairn.web.cors`). Downloads are answered by the responses of
:mod:`cairn.web.streaming`, uploads stored by :func:`cairn.web.upload_stream.store_body`.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from cairn.errors import ErrorType, IcatError, bad_parameter, internal
from cairn.ids.download import Answer, answer
from cairn.ids.errors import ids_error, not_implemented
from cairn.ids.filespan import FileSpan
from cairn.ids.ranges import stream_offset
from cairn.ids.selection import Selection
from cairn.ids.service import IDS_VERSION, DataService, PutRequest
from cairn.ids.storage import not_found
from cairn.web import cors
from cairn.web.streaming import FileSpanResponse, SentListener, StreamResponse, release
from cairn.web.upload_stream import store_body

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]

PREFIX = "/ids"
#: Longest form body accepted (a list of a million ids fits).
MAX_FORM_BYTES = 16 << 20


# -- rendering ----------------------------------------------------------------------------------


def error_response(e: IcatError, headers: Mapping[str, str] | None = None,
                   status: int | None = None) -> Response:
    code, name = ids_error(e)
    # ASCII-only JSON: python-icat decodes error bodies as ASCII.
    body = json.dumps({"code": name, "message": e.message}, ensure_ascii=True)
    return Response(body, status_code=status or code, media_type="application/json",
                    headers=dict(headers or {}))


def text(value: object) -> Response:
    return Response(str(value), media_type="text/plain")


def json_response(value: object, status: int = 200) -> Response:
    return Response(json.dumps(value, ensure_ascii=True), status_code=status,
                    media_type="application/json")


def no_content() -> Response:
    return Response(status_code=204)


def endpoint(fn: Handler) -> Handler:
    """Every failure as ids.server's error JSON; never a stack trace to the client."""

    async def run(request: Request) -> Response:
        try:
            return await fn(request)
        except IcatError as e:
            if e.type == ErrorType.INTERNAL and ids_error(e)[0] == 500:
                log.error("%s %s: %s", request.method, request.url.path, e.message)
            return error_response(e)
        except ClientDisconnect:
            log.info("%s %s: client went away", request.method, request.url.path)
            return Response(status_code=400)  # nobody is listening
        except Exception as e:
            log.exception("unexpected error on %s %s", request.method, request.url.path)
            return error_response(internal(f"Internal error ({type(e).__name__}); see the "
                                           "server log"))

    return run


# -- parameters ---------------------------------------------------------------------------------


def _service(request: Request) -> DataService:
    service: DataService = request.app.state.ids
    return service


def _first(items: Any) -> dict[str, str]:
    """First value of each name, as JAX-RS ``@QueryParam``/``@FormParam`` take it."""
    out: dict[str, str] = {}
    for k, v in items:
        out.setdefault(k, v)
    return out


async def params(request: Request) -> dict[str, str]:
    """Query parameters, and for POST the url-encoded form (which wins)."""
    out = _first(request.query_params.multi_items())
    if request.method == "POST":
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                raise bad_parameter(f"Form body larger than {MAX_FORM_BYTES} bytes")
        if ctype not in ("", "application/x-www-form-urlencoded"):
            raise bad_parameter(f"Expected an application/x-www-form-urlencoded form, not "
                                f"{ctype}")
        try:
            form = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise bad_parameter("The form is not UTF-8") from None
        out.update(_first(form))
    return out


def _flag(value: str | None) -> bool:
    """JAX-RS booleans: only ``true`` (any case) is true."""
    return value is not None and value.lower() == "true"


def _selection(p: Mapping[str, str]) -> Selection:
    return Selection.parse(p.get("investigationIds"), p.get("datasetIds"),
                           p.get("datafileIds"))


# -- service information ------------------------------------------------------------------------


@endpoint
async def ping(request: Request) -> Response:
    return text("IdsOK")


@endpoint
async def version(request: Request) -> Response:
    return json_response({"version": IDS_VERSION})


@endpoint
async def get_icat_url(request: Request) -> Response:
    return text(_service(request).icat_url)


@endpoint
async def is_read_only(request: Request) -> Response:
    return text(str(_service(request).read_only).lower())


@endpoint
async def is_two_level(request: Request) -> Response:
    return text(str(_service(request).two_level).lower())


@endpoint
async def get_service_status(request: Request) -> Response:
    p = await params(request)
    status = await run_in_threadpool(_service(request).service_status, p.get("sessionId"))
    return json_response(status)


# -- selections ---------------------------------------------------------------------------------


@endpoint
async def prepare_data(request: Request) -> Response:
    p = await params(request)
    pid = await run_in_threadpool(lambda: _service(request).prepare(
        p.get("sessionId"), _selection(p), zip=_flag(p.get("zip")),
        compress=_flag(p.get("compress"))))
    return text(pid)


@endpoint
async def is_prepared(request: Request) -> Response:
    p = await params(request)
    ready = await run_in_threadpool(_service(request).is_prepared, p.get("preparedId"))
    return text(str(ready).lower())


def _by_prepared_or_selection(p: Mapping[str, str]) -> tuple[str | None, Selection]:
    """preparedId wins over a selection, as in ids.server."""
    if "preparedId" in p:
        return p["preparedId"], Selection()
    return None, _selection(p)


@endpoint
async def get_datafile_ids(request: Request) -> Response:
    p = await params(request)
    pid, sel = _by_prepared_or_selection(p)
    ids = await run_in_threadpool(_service(request).datafile_ids, pid, p.get("sessionId"), sel)
    return json_response(ids)


@endpoint
async def get_size(request: Request) -> Response:
    p = await params(request)
    pid, sel = _by_prepared_or_selection(p)
    size = await run_in_threadpool(_service(request).size, pid, p.get("sessionId"), sel)
    return text(size)


@endpoint
async def get_status(request: Request) -> Response:
    p = await params(request)
    pid, sel = _by_prepared_or_selection(p)
    status = await run_in_threadpool(_service(request).status, pid, p.get("sessionId"), sel)
    return text(status)


def _void(op: str) -> Handler:
    @endpoint
    async def run(request: Request) -> Response:
        p = await params(request)
        service = _service(request)
        await run_in_threadpool(getattr(service, op), p.get("sessionId"), _selection(p))
        return no_content()

    return run


@endpoint
async def reset(request: Request) -> Response:
    p = await params(request)
    pid, sel = _by_prepared_or_selection(p)
    await run_in_threadpool(_service(request).reset, pid, p.get("sessionId"), sel)
    return no_content()


@endpoint
async def get_link(request: Request) -> Response:
    raise not_implemented("Sorry getLink is not available on this IDS installation")


# -- getData ------------------------------------------------------------------------------------


@endpoint
async def get_data(request: Request) -> Response:
    p = await params(request)
    pid, sel = _by_prepared_or_selection(p)
    service = _service(request)
    dl = await run_in_threadpool(lambda: service.download(
        pid, p.get("sessionId"), sel, zip=_flag(p.get("zip")),
        compress=_flag(p.get("compress")), outname=p.get("outname")))
    try:
        # answer() may open the file (or an S3 GET) for a single-file body: off the loop.
        ans = await run_in_threadpool(answer, dl.body, dl.filename,
                                      request.headers.get("range"),
                                      request.headers.get("if-range"))
    except BaseException:
        await release(dl.release)
        raise
    if ans.status == 416:
        await release(dl.release)
        length = dl.body.length
        return error_response(bad_parameter(f"The range {request.headers.get('range')!r} "
                                            f"lies outside the {length} bytes of the data"),
                              headers=ans.headers, status=416)
    if request.method == "HEAD":
        await release(dl.release)
        with contextlib.suppress(Exception):
            close = getattr(ans.chunks, "close", None)
            if close is not None:
                close()
        return StreamResponse(ans.status, ans.headers, None)
    on_sent = _delivery(service, pid, ans, dl.body.length, request.headers.get("range"))
    if ans.file is not None:
        try:
            span = await run_in_threadpool(FileSpan.open, *ans.file)
        except FileNotFoundError:
            await release(dl.release)
            location = getattr(getattr(dl.body, "datafile", None), "location", "?")
            raise not_found(location) from None
        except BaseException:
            await release(dl.release)
            raise
        return FileSpanResponse(ans.status, ans.headers, span, on_close=dl.release,
                                on_sent=on_sent)
    return StreamResponse(ans.status, ans.headers, ans.chunks, on_close=dl.release,
                          on_sent=on_sent)


def _delivery(service: DataService, prepared_id: str | None, ans: Answer,
              length: int | None, range_header: str | None) -> SentListener | None:
    """What reports the bytes a getData response of a prepared id sent
    (:meth:`DataService.delivered`): where in the body they start, and the body's length,
    learnt at the end of a stream of unknown length that ran to its end."""
    if prepared_id is None:
        return None
    start = 0
    if ans.status == 206:
        content_range = ans.headers.get("Content-Range")  # "bytes a-b/len"
        start = int(content_range[6:].split("-", 1)[0]) if content_range \
            else stream_offset(range_header)  # a regenerated stream skipping its start

    def report(sent: int, complete: bool) -> None:
        end = start + sent
        total = length
        if total is None and complete and (sent or not start):
            total = end  # (not when an offset past its end made the stream empty)
        service.delivered(prepared_id, start, end, total)

    return report


# -- put ----------------------------------------------------------------------------------------


@endpoint
async def put(request: Request) -> Response:
    q = _first(request.query_params.multi_items())
    req = PutRequest(session_id=q.get("sessionId"), name=q.get("name"),
                     datafile_format_id=q.get("datafileFormatId"),
                     dataset_id=q.get("datasetId"), description=q.get("description"),
                     doi=q.get("doi"), datafile_create_time=q.get("datafileCreateTime"),
                     datafile_mod_time=q.get("datafileModTime"))
    service = _service(request)
    try:
        plan = await run_in_threadpool(service.put_begin, req)
    except IcatError:
        # Read (a bounded part of) the body before answering: a client still sending it
        # would otherwise see the connection closed under it (a broken pipe) instead of
        # the error.
        await _drain(request, DRAIN_LIMIT)
        raise
    try:
        location, result = await store_body(partial(service.put_store, plan),
                                            request.stream())
        body = await run_in_threadpool(service.put_commit, plan, location, result)
    finally:
        await release(plan.release)
    return json_response(body, status=201)


#: How much of a refused upload's body is read before the error is sent.
DRAIN_LIMIT = 1 << 20


async def _drain(request: Request, limit: int) -> None:
    seen = 0
    try:
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > limit:
                return
    except ClientDisconnect:
        return


@endpoint
async def put_multipart(request: Request) -> Response:
    raise not_implemented("put as a multipart POST (deprecated in ids.server 2.1.1, removed "
                          "in 3.0) is not supported: send the bytes with PUT")


# -- the application ----------------------------------------------------------------------------


def routes() -> list[Route]:
    def r(name: str, handler: Handler, method: str) -> Route:
        return Route(f"{PREFIX}/{name}", handler, methods=[method])

    return [
        r("ping", ping, "GET"),
        r("version", version, "GET"),
        r("getIcatUrl", get_icat_url, "GET"),
        r("isReadOnly", is_read_only, "GET"),
        r("isTwoLevel", is_two_level, "GET"),
        r("getServiceStatus", get_service_status, "GET"),
        r("prepareData", prepare_data, "POST"),
        r("isPrepared", is_prepared, "GET"),
        r("getData", get_data, "GET"),  # HEAD too: Starlette adds it to GET routes
        r("getDatafileIds", get_datafile_ids, "GET"),
        r("getSize", get_size, "GET"),
        r("getStatus", get_status, "GET"),
        r("archive", _void("archive"), "POST"),
        r("restore", _void("restore"), "POST"),
        r("write", _void("write"), "POST"),
        r("reset", reset, "POST"),
        r("put", put, "PUT"),
        r("put", put_multipart, "POST"),
        r("delete", _void("delete"), "DELETE"),
        r("getLink", get_link, "POST"),
    ]


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return error_response(
            IcatError(ErrorType.NOT_IMPLEMENTED,
                      f"{request.method} is not allowed on {request.url.path}"),
            headers=exc.headers, status=405)
    # As ids.server: any unknown path is this literal code, which python-icat does not map.
    body = json.dumps({"code": "NOT_IMPLEMENTED",
                       "message": "Operation not implemented by this IDS server."})
    return Response(body, status_code=501, media_type="application/json")


def create_ids_app(service: DataService) -> Starlette:
    app = Starlette(routes=routes(),
                    middleware=[Middleware(cors.Cors, headers=cors.IDS,
                                           preflight_max_age=cors.IDS_MAX_AGE)],
                    exception_handlers={HTTPException: _on_http_error})
    app.state.ids = service
    return app


class IdsDispatch:
    """Sends ``/ids`` requests to the data service's app, everything else on."""

    def __init__(self, app: ASGIApp, service: DataService) -> None:
        self.app = app
        self.ids = create_ids_app(service)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == PREFIX or path.startswith(PREFIX + "/")):
            await self.ids(scope, receive, send)
        else:
            await self.app(scope, receive, send)
