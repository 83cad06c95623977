"""ids.server's HTTP interface (``/ids/...``): parse the request, call the data service in a
worker thread, render the answer or ``{"code": "<IdsException>", "message": ...}``.

The ``/ids`` paths are served by their own small Starlette app, put in front of the catalogue
app by :class:`IdsDispatch`, so downloads and uploads stream straight to the server without
passing through the catalogue's middleware; it adds ids.server's CORS headers instead.

A single file on local storage is read on the event loop while its pages are in memory, and
by a worker thread only when the disk must be waited for (:class:`FileSpanResponse`,
:mod:`cairn.ids.filespan`). Other downloads (zips, S3) stream from a dedicated thread per
response that reads ahead a few chunks (:class:`StreamResponse`): disk and network overlap.
Either way memory stays at a few MiB per download, and a client that goes away stops the
reading at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from cairn.errors import ErrorType, IcatError, bad_parameter, internal
from cairn.ids.checksum import PutResult
from cairn.ids.download import answer
from cairn.ids.errors import ids_error, not_implemented
from cairn.ids.filespan import FileSpan
from cairn.ids.selection import Selection
from cairn.ids.service import IDS_VERSION, DataService, PutRequest
from cairn.ids.storage import CHUNK_SIZE, Storage, not_found
from cairn.ids.upload import upload
from cairn.web.headers import WithHeaders

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]

PREFIX = "/ids"
#: Longest form body accepted (a list of a million ids fits).
MAX_FORM_BYTES = 16 << 20
#: Chunks a download's reader thread may be ahead of the network.
READ_AHEAD = 4
#: Threads for the chunks of single-file downloads that must wait for the disk: their own,
#: so that slow storage cannot take the shared worker pool that every request needs.
DISK_READERS = 8
_disk_readers: ThreadPoolExecutor | None = None

CORS_HEADERS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"GET, POST, DELETE, PUT"),
    # ids.server allows Content-Type; Range and If-Range let browser code resume downloads.
    (b"access-control-allow-headers", b"Content-Type, Range, If-Range"),
    (b"access-control-expose-headers",
     b"Content-Disposition, Content-Length, Content-Range, Accept-Ranges, ETag"),
]


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
    return request.app.state.ids  # type: ignore[no-any-return]


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
        return FileSpanResponse(ans.status, ans.headers, span, on_close=dl.release)
    return StreamResponse(ans.status, ans.headers, ans.chunks, on_close=dl.release)


async def release(fn: Callable[[], None]) -> None:
    """Run a lock release (database work in two-level storage) off the event loop, even
    while the request is being cancelled."""
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(fn)


class StreamResponse(Response):
    """Headers, then blocking chunks read ahead by a thread of their own.

    A dedicated thread (not the shared worker pool, which long downloads would exhaust) runs
    the iterator and hands at most :data:`READ_AHEAD` chunks to the event loop. The loop sends
    them and listens for the client going away, which stops the thread at its next chunk.
    A failure after the headers aborts the connection, so the client sees a short body
    rather than a complete-looking corrupt one.
    """

    def __init__(self, status: int, headers: Mapping[str, str], chunks: Iterator[bytes] | None,
                 on_close: Callable[[], None] | None = None) -> None:
        # Not Response.__init__: it would add "content-length: 0" to a body of unknown length.
        self.status_code = status
        self.background = None
        self.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1"))
                            for k, v in headers.items()]
        self.chunks = chunks
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": self.raw_headers})
            if self.chunks is None:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await self._pump(self.chunks, receive, send)
        finally:
            if self.on_close is not None:
                await release(self.on_close)

    async def _pump(self, chunks: Iterator[bytes], receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        room = threading.Semaphore(READ_AHEAD)
        stop = threading.Event()
        done = object()

        def produce() -> None:
            try:
                for chunk in chunks:
                    while not room.acquire(timeout=0.5):
                        if stop.is_set():
                            return
                    if stop.is_set():
                        return
                    loop.call_soon_threadsafe(queue.put_nowait, chunk)
                loop.call_soon_threadsafe(queue.put_nowait, done)
            except BaseException as e:  # handed to the loop, which aborts the response
                if not stop.is_set():
                    with contextlib.suppress(RuntimeError):  # loop already closed
                        loop.call_soon_threadsafe(queue.put_nowait, e)
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    with contextlib.suppress(Exception):
                        close()

        reader = threading.Thread(target=produce, name="ids-download", daemon=True)
        reader.start()
        watcher = asyncio.ensure_future(_gone(receive))
        try:
            while True:
                item = queue.get_nowait() if not queue.empty() else None
                if item is None:
                    getter = asyncio.ensure_future(queue.get())
                    finished, _ = await asyncio.wait({getter, watcher},
                                                     return_when=asyncio.FIRST_COMPLETED)
                    if getter not in finished:
                        getter.cancel()
                        log.info("download abandoned by the client")
                        return
                    item = getter.result()
                room.release()
                if item is done:
                    await send({"type": "http.response.body", "body": b"",
                                "more_body": False})
                    return
                if isinstance(item, BaseException):
                    message = item.message if isinstance(item, IcatError) else repr(item)
                    log.error("download aborted after the headers were sent: %s", message)
                    raise _Aborted(message)
                await send({"type": "http.response.body", "body": item, "more_body": True})
        finally:
            stop.set()
            watcher.cancel()


class FileSpanResponse(Response):
    """Headers, then a span of a local file: chunks in the page cache are read and sent on
    the event loop, the others read by a disk thread (:mod:`cairn.ids.filespan`).

    No read-ahead queue is needed: ``send`` waits while the socket's buffer is full, so one
    chunk at a time is in memory. The loop listens for the client going away between chunks.
    A failure after the headers aborts the connection (see :class:`StreamResponse`).
    """

    def __init__(self, status: int, headers: Mapping[str, str], span: FileSpan,
                 on_close: Callable[[], None] | None = None) -> None:
        self.status_code = status
        self.background = None
        self.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1"))
                            for k, v in headers.items()]
        self.span = span
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        span = self.span
        pending: Future[bytes] | None = None
        try:
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": self.raw_headers})
            watcher = asyncio.ensure_future(_gone(receive))
            try:
                while span.remaining > 0:
                    if watcher.done():
                        log.info("download abandoned by the client")
                        return
                    data = span.read_cached()
                    if data is None:
                        pending = _disk_pool().submit(span.read)
                        data = await asyncio.wrap_future(pending)
                        pending = None
                    await send({"type": "http.response.body", "body": data,
                                "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except Exception as e:
                message = e.message if isinstance(e, IcatError) else repr(e)
                log.error("download aborted after the headers were sent: %s", message)
                raise _Aborted(message) from e
            finally:
                watcher.cancel()
        finally:
            if pending is not None:
                # Cancelled while a disk thread reads: the file is closed once it is done
                # (at once if it is already).
                pending.add_done_callback(lambda _: span.close())
            else:
                span.close()
            if self.on_close is not None:
                await release(self.on_close)


def _disk_pool() -> ThreadPoolExecutor:
    global _disk_readers
    if _disk_readers is None:
        _disk_readers = ThreadPoolExecutor(DISK_READERS, thread_name_prefix="ids-disk-read")
    return _disk_readers


async def _gone(receive: Receive) -> None:
    """Returns once the client has gone away."""
    while (await receive())["type"] != "http.disconnect":
        pass


class _Aborted(Exception):
    """Raised to the server after the headers: it then drops the connection."""


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
        location, result = await store_body(service.main, plan.dataset.investigation_id,
                                            plan.dataset.id, request.stream())
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


class _BodyGone(Exception):
    """The request body ended early (client gone, bad framing): abort the storage put."""


async def store_body(storage: Storage, investigation_id: int, dataset_id: int,
                     body: AsyncIterator[bytes]) -> tuple[str, PutResult]:
    """:func:`cairn.ids.upload.upload` of a request body, on a thread of its own.

    Like ``upload_async``, but the blocking put does not occupy a worker of the shared pool
    for the whole upload (forty slow uploads would otherwise stall every other request).
    The loop hands the thread 1 MiB chunks, at most :data:`READ_AHEAD` ahead of the disk.
    If the body fails, the thread's put is aborted and this waits until storage has
    cleaned up, so nothing of the upload remains when the error propagates.
    """
    loop = asyncio.get_running_loop()
    handoff: queue.SimpleQueue[Any] = queue.SimpleQueue()
    room = asyncio.Semaphore(READ_AHEAD)
    done: asyncio.Future[tuple[str, PutResult]] = loop.create_future()

    def settle(fn: Callable[[Any], None], value: Any) -> None:
        if not done.done():
            fn(value)

    def chunks() -> Iterator[bytes]:
        while True:
            item = handoff.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            loop.call_soon_threadsafe(room.release)
            yield item

    def run() -> None:
        try:
            out = upload(storage, investigation_id, dataset_id, chunks())
            loop.call_soon_threadsafe(settle, done.set_result, out)
        except BaseException as e:
            loop.call_soon_threadsafe(settle, done.set_exception, e)

    async def give(item: Any) -> None:
        if item is not None and not isinstance(item, BaseException) and room.locked():
            # Wait for room, unless storage has stopped (failed) and will never make any.
            waiting = asyncio.ensure_future(room.acquire())
            await asyncio.wait({waiting, done}, return_when=asyncio.FIRST_COMPLETED)
            if not waiting.done():
                waiting.cancel()
                return
        elif item is not None and not isinstance(item, BaseException):
            await room.acquire()
        handoff.put(item)

    threading.Thread(target=run, name="ids-upload", daemon=True).start()
    try:
        buf = bytearray()
        async for piece in body:
            if done.done():  # storage gave up early: stop reading
                break
            buf += piece
            if len(buf) >= CHUNK_SIZE:
                await give(bytes(buf))
                buf.clear()
        if buf:
            await give(bytes(buf))
        handoff.put(None)
    except BaseException as e:
        handoff.put(_BodyGone(repr(e)))
        with anyio.CancelScope(shield=True), contextlib.suppress(BaseException):
            await done  # storage removes the partial file before we go on
        raise
    return await done


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


class Cors:
    """ids.server's CORS headers on every answer; OPTIONS preflights answered here."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [*CORS_HEADERS, (b"content-length", b"0"),
                                    (b"access-control-max-age", b"86400")]})
            await send({"type": "http.response.body", "body": b""})
            return
        await self.app(scope, receive, WithHeaders(send, CORS_HEADERS))


def create_ids_app(service: DataService) -> Starlette:
    app = Starlette(routes=routes(), middleware=[Middleware(Cors)],
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


# -- background work ----------------------------------------------------------------------------


async def _purge_prepared(service: DataService, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            n = await run_in_threadpool(service.purge_prepared)
            if n:
                log.info("purged %d expired preparedIds", n)
        except Exception:
            log.exception("purging expired preparedIds failed; will retry")


@contextlib.asynccontextmanager
async def running(service: DataService) -> AsyncIterator[None]:
    """The data service's background work for the app's lifetime: two-level jobs (if any)
    and the purge of expired preparedIds."""
    twolevel = service.twolevel
    start = getattr(twolevel, "start", None)
    if start is not None:
        await run_in_threadpool(start)
    interval = min(3600.0, service.settings.prepared_lifetime_seconds / 4)
    task = asyncio.create_task(_purge_prepared(service, interval))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        stop = getattr(twolevel, "stop", None)
        if stop is not None:
            await run_in_threadpool(stop)
