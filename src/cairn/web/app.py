"""The ASGI application: every interface of Cairn in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cairn.catalogue.service import Catalogue
from cairn.errors import ErrorType, IcatError
from cairn.web import icat_rest, soap

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
    if exc.status_code in (404, 405):
        return error_response(IcatError(ErrorType.NOT_IMPLEMENTED,
                                        "Operation not implemented by this ICAT server."))
    return error_response(IcatError(ErrorType.BAD_PARAMETER, str(exc.detail)))


async def on_unexpected(request: Request, exc: Exception) -> Response:
    # Never leak a stack trace: log it, answer a plain INTERNAL error.
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(IcatError(ErrorType.INTERNAL,
                                    f"Internal error ({type(exc).__name__}); see the server log"))


class IcatHeaders(BaseHTTPMiddleware):
    """CORS headers icat.server puts on every response; IcatErrors from any layer as JSON."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        try:
            response = await call_next(request)
        except IcatError as e:
            response = error_response(e)
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, PUT"
        return response


async def _purge_sessions(catalogue: Catalogue, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            n = await run_in_threadpool(catalogue.sessions.purge_expired)
            if n:
                log.info("purged %d expired sessions", n)
        except Exception:
            log.exception("session purge failed; will retry")


def create_app(catalogue: Catalogue) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        interval = catalogue.settings.server.session_purge_interval_seconds
        task = asyncio.create_task(_purge_sessions(catalogue, interval))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            catalogue.db.dispose()

    app = Starlette(
        routes=icat_rest.routes() + soap.routes(),
        middleware=[Middleware(IcatHeaders)],
        exception_handlers={IcatError: on_icat_error, HTTPException: on_http_error,
                            Exception: on_unexpected},
        lifespan=lifespan,
    )
    app.state.catalogue = catalogue
    return app
