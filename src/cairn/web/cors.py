"""CORS headers, as icat.server and ids.server send them: one ASGI middleware, one header set
per face.

- The catalogue (REST ``/icat`` and SOAP) puts :data:`ICAT` on every answer and answers no
  preflight itself: an ``OPTIONS`` request reaches the routes, which answer 501
  ``NOT_IMPLEMENTED`` as for any method they do not serve (with these headers).
- The data service (``/ids``) puts :data:`IDS` on every answer and answers every ``OPTIONS``
  request at once: 200, an empty body, :data:`IDS` and a ``max-age`` of a day.

The headers replace any of the same names the application set, and go on error answers too.
Plain ASGI rather than Starlette's ``BaseHTTPMiddleware``, which costs a task and a memory
stream per request (about half a millisecond, measured with bench/query_portal.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

Header = tuple[bytes, bytes]

#: icat.server's headers.
ICAT: tuple[Header, ...] = (
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"GET, POST, DELETE, PUT"),
)

#: ids.server's headers.
IDS: tuple[Header, ...] = (
    *ICAT,
    # ids.server allows Content-Type; Range and If-Range let browser code resume downloads.
    (b"access-control-allow-headers", b"Content-Type, Range, If-Range"),
    (b"access-control-expose-headers",
     b"Content-Disposition, Content-Length, Content-Range, Accept-Ranges, ETag"),
)

#: How long a browser may keep ids.server's preflight answer (seconds).
IDS_MAX_AGE = 86400


class Cors:
    """``headers`` on every HTTP answer of ``app``; with ``preflight_max_age``, every
    ``OPTIONS`` request answered here (200, no body) instead of by ``app``."""

    def __init__(self, app: ASGIApp, headers: Sequence[Header],
                 preflight_max_age: int | None = None) -> None:
        self.app = app
        self.headers = tuple(headers)
        self.preflight: list[Header] | None = None
        if preflight_max_age is not None:
            self.preflight = [*self.headers, (b"content-length", b"0"),
                              (b"access-control-max-age", str(preflight_max_age).encode())]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.preflight is not None and scope["method"] == "OPTIONS":
            await send({"type": "http.response.start", "status": 200,
                        "headers": list(self.preflight)})
            await send({"type": "http.response.body", "body": b""})
            return
        await self.app(scope, receive, WithHeaders(send, self.headers))


class WithHeaders:
    """``send`` that puts ``headers`` (lower-case names) on the response, in place of any of
    the same names the application set."""

    __slots__ = ("headers", "names", "send")

    def __init__(self, send: Send, headers: Sequence[Header]) -> None:
        self.send = send
        self.headers = headers
        self.names = {name for name, _ in headers}

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            own = [h for h in message.get("headers", ()) if bytes(h[0]).lower() not in self.names]
            message["headers"] = [*own, *self.headers]
        await self.send(message)
