"""The ASGI application: every interface of Cairn in one process."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from cairn.errors import ErrorType, IcatError
from cairn.startup import Cairn
from cairn.web import (
    accesslog,
    cors,
    icat_rest,
    ids_rest,
    landing,
    metrics,
    openapi,
    ops,
    port_rest,
    portal,
    publishing_rest,
    search_rest,
    soap,
    topcat_rest,
)
from cairn.web.jsonresponse import JSONResponse
from cairn.web.portal import pages as portal_pages

log = logging.getLogger(__name__)


def error_response(e: IcatError) -> JSONResponse:
    body: dict[str, object] = {"code": e.type.value, "message": e.message}
    if e.offset >= 0:
        body["offset"] = e.offset
    return JSONResponse(body, status_code=e.http_status)


async def on_icat_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, IcatError)
    if exc.type == ErrorType.INTERNAL:
        log.error("INTERNAL error on %s %s: %s", request.method, request.url.path, exc.message)
    return error_response(exc)


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404 and request.app.state.settings.portal.enabled \
            and not portal.is_api_path(request.url.path):
        return await run_in_threadpool(portal_pages.not_found, request)
    if exc.status_code in (404, 405):
        return error_response(IcatError(ErrorType.NOT_IMPLEMENTED,
                                        "Operation not implemented by this ICAT server."))
    return error_response(IcatError(ErrorType.BAD_PARAMETER, str(exc.detail)))


async def on_unexpected(request: Request, exc: Exception) -> Response:
    # Never leak a stack trace: log it, answer a plain INTERNAL error.
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(IcatError(ErrorType.INTERNAL,
                                    f"Internal error ({type(exc).__name__}); see the server log"))


class HeaderLimit:
    """Refuses a request whose target and headers together exceed ``limit`` bytes (431).

    uvicorn's fast parser (httptools) sets no such bound itself; this keeps one request from
    making the server hold megabytes of headers.
    """

    def __init__(self, app: ASGIApp, limit: int = 64 * 1024) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
            size += sum(len(k) + len(v) for k, v in scope["headers"])
            if size > self.limit:
                e = IcatError(ErrorType.BAD_PARAMETER,
                              f"The request's target and headers are {size} bytes; at most "
                              f"{self.limit} are accepted")
                path = scope.get("path", "")
                ids = path == ids_rest.PREFIX or path.startswith(ids_rest.PREFIX + "/")
                response = ids_rest.error_response(e) if ids else error_response(e)
                response.status_code = 431
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(cairn: Cairn) -> Starlette:
    """Every face of an assembled Cairn; its lifespan runs the job scheduler."""
    catalogue, data, jobs = cairn.catalogue, cairn.data, cairn.jobs

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(jobs.start)
        try:
            yield
        finally:
            await run_in_threadpool(jobs.stop)  # running jobs finish; queued ones wait
            if cairn.publishing is not None:
                cairn.publishing.close()
            cairn.db.dispose()

    # Operations: /health, /ready, /metrics (docs/operations.md).
    readiness = ops.Readiness(cairn)
    meters = metrics.Metrics(cairn, readiness.db_engine) if cairn.settings.metrics.enabled \
        else None

    app = Starlette(
        routes=icat_rest.routes() + search_rest.routes() + soap.routes()
        + publishing_rest.routes() + landing.routes() + topcat_rest.routes()
        + ops.routes() + metrics.routes(cairn.settings.metrics) + openapi.routes()
        + port_rest.routes()  # /icat/port: export and import
        + (portal.routes() if cairn.settings.portal.enabled else []),
        # /ids goes to the data service's own app (with its own CORS headers), ahead of the
        # catalogue's middleware. Metrics and the log's request context see every request.
        middleware=[*metrics.middleware(meters), Middleware(accesslog.RequestContext),
                    Middleware(HeaderLimit), Middleware(ids_rest.IdsDispatch, service=data),
                    Middleware(cors.Cors, headers=cors.ICAT)],
        exception_handlers={IcatError: on_icat_error, HTTPException: on_http_error,
                            Exception: on_unexpected},
        lifespan=lifespan,
    )
    app.state.settings = cairn.settings
    app.state.catalogue = catalogue
    app.state.data = data
    app.state.search = cairn.search
    app.state.publishing = cairn.publishing
    app.state.downloads = cairn.downloads
    app.state.readiness = readiness
    app.state.metrics = meters
    app.state.metrics_guard = metrics.Guard(cairn.settings.metrics)
    return app
