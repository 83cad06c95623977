"""CORS headers on every answer (added once, replacing what an application set itself), and
the data service's preflight answer, over a fake ASGI connection."""

from __future__ import annotations

import asyncio
from typing import Any

from cairn.web import cors
from cairn.web.cors import Cors, WithHeaders

Message = dict[str, Any]
CORS = [(b"access-control-allow-origin", b"*")]


def test_headers_are_added_and_replace_the_applications_own() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    out = WithHeaders(send, CORS)
    start = {"type": "http.response.start", "status": 200,
             "headers": [(b"content-type", b"text/plain"),
                         (b"Access-Control-Allow-Origin", b"https://example.org")]}
    asyncio.run(out(start))
    asyncio.run(out({"type": "http.response.body", "body": b"x"}))
    assert sent[0]["headers"] == [(b"content-type", b"text/plain"),
                                  (b"access-control-allow-origin", b"*")]
    assert sent[1] == {"type": "http.response.body", "body": b"x"}  # bodies pass untouched


def test_a_start_without_headers_gets_them() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(WithHeaders(send, CORS)({"type": "http.response.start", "status": 204}))
    assert sent[0]["headers"] == CORS


class App:
    """Answers 200 ``ok`` (with an ``access-control-allow-origin`` of its own), or raises
    ``fail`` before or after starting the answer."""

    def __init__(self, fail: Exception | None = None, after_start: bool = False) -> None:
        self.calls: list[str] = []
        self.fail = fail
        self.after_start = after_start

    async def __call__(self, scope: Message, receive: Any, send: Any) -> None:
        self.calls.append(scope.get("method", scope["type"]))
        if self.fail is not None and not self.after_start:
            raise self.fail
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"),
                                (b"access-control-allow-origin", b"https://example.org")]})
        if self.fail is not None:
            raise self.fail
        await send({"type": "http.response.body", "body": b"ok"})


def call(app: Any, method: str = "GET", type: str = "http") -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": type, "method": method, "path": "/x", "headers": []}
    asyncio.run(app(scope, receive, send))
    return sent


def test_icat_headers_on_every_answer_and_options_left_to_the_application() -> None:
    app = App()
    middleware = Cors(app, cors.ICAT)
    for method in ("GET", "OPTIONS"):
        start, body = call(middleware, method)
        assert start["headers"] == [(b"content-type", b"text/plain"), *cors.ICAT]
        assert body["body"] == b"ok"
    assert app.calls == ["GET", "OPTIONS"]


def test_ids_headers_on_every_answer_and_its_preflight_answered_at_once() -> None:
    app = App()
    middleware = Cors(app, cors.IDS, preflight_max_age=cors.IDS_MAX_AGE)
    start, _ = call(middleware, "PUT")
    assert start["headers"] == [(b"content-type", b"text/plain"), *cors.IDS]
    assert call(middleware, "OPTIONS") == [
        {"type": "http.response.start", "status": 200,
         "headers": [(b"access-control-allow-origin", b"*"),
                     (b"access-control-allow-methods", b"GET, POST, DELETE, PUT"),
                     (b"access-control-allow-headers", b"Content-Type, Range, If-Range"),
                     (b"access-control-expose-headers",
                      b"Content-Disposition, Content-Length, Content-Range, Accept-Ranges, "
                      b"ETag"),
                     (b"content-length", b"0"),
                     (b"access-control-max-age", b"86400")]},
        {"type": "http.response.body", "body": b""}]
    assert app.calls == ["PUT"]  # the preflight never reached the application


def test_other_connections_pass_untouched() -> None:
    app = App()
    assert call(Cors(app, cors.IDS, preflight_max_age=1), type="websocket")[0]["headers"] == [
        (b"content-type", b"text/plain"), (b"access-control-allow-origin", b"https://example.org")]
