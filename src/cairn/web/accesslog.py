"""The access log without secrets, and the request every log line is written for.

Session ids (and prepared ids, bearer tokens of a download) travel in query strings, and
uvicorn logs the whole target of every request: :class:`HideSecrets` rewrites that target.
:class:`RequestContext` names the request being served (an id, method, target and client)
for every record logged while serving it, which the JSON log format writes out
(:mod:`cairn.logs`); the id is echoed in ``X-Request-ID`` so that a user can quote it.
"""

from __future__ import annotations

import logging
import re
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cairn.logs import CURRENT_REQUEST, RequestInfo

#: ``sessionId=…`` and ``preparedId=…`` in a request target, any case, up to the next ``&``.
_SECRET = re.compile(r"(?i)((?:^|[?&])(?:sessionid|preparedid)=)[^&#\s]*")
#: ICAT's REST API puts the session id in the path of ``/icat/session/{sessionId}``.
_SESSION_PATH = re.compile(r"(?i)(/icat/session/)[^/?#\s]+")
#: A request id a proxy may hand on (``X-Request-ID``); anything else gets a new one.
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")


def hide_secrets(target: str) -> str:
    """``target`` with the values of its secret parameters replaced by ``…``."""
    return _SESSION_PATH.sub(r"\1…", _SECRET.sub(r"\1…", target))


class HideSecrets(logging.Filter):
    """For ``uvicorn.access``, whose records carry (client, method, target, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], hide_secrets(args[2]), *args[3:])
        return True


def install() -> None:
    logging.getLogger("uvicorn.access").addFilter(HideSecrets())


class RequestContext:
    """Sets :data:`cairn.logs.CURRENT_REQUEST` while a request is served (worker threads
    started through Starlette inherit it), and answers with its ``X-Request-ID``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"")
        rid = given.decode("ascii") if _REQUEST_ID.fullmatch(given) else secrets.token_hex(8)
        query = scope.get("query_string") or b""
        target = scope["path"] + ("?" + query.decode("latin-1") if query else "")
        client = scope.get("client")
        info = RequestInfo(rid, scope["method"], target,
                           f"{client[0]}:{client[1]}" if client else None)

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()),
                                      (b"x-request-id", rid.encode("ascii"))]
            await send(message)

        token = CURRENT_REQUEST.set(info)
        try:
            await self.app(scope, receive, tagged)
        finally:
            CURRENT_REQUEST.reset(token)
