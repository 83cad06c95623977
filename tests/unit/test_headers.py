"""CORS headers on every response: added once, replacing what an application set itself."""

from __future__ import annotations

import asyncio
from typing import Any

from cairn.web.headers import WithHeaders

CORS = [(b"access-control-allow-origin", b"*")]


def test_headers_are_added_and_replace_the_applications_own() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    out = WithHeaders(send, CORS)
    assert not out.started
    start = {"type": "http.response.start", "status": 200,
             "headers": [(b"content-type", b"text/plain"),
                         (b"Access-Control-Allow-Origin", b"https://example.org")]}
    asyncio.run(out(start))
    asyncio.run(out({"type": "http.response.body", "body": b"x"}))
    assert out.started
    assert sent[0]["headers"] == [(b"content-type", b"text/plain"),
                                  (b"access-control-allow-origin", b"*")]
    assert sent[1] == {"type": "http.response.body", "body": b"x"}  # bodies pass untouched


def test_a_start_without_headers_gets_them() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(WithHeaders(send, CORS)({"type": "http.response.start", "status": 204}))
    assert sent[0]["headers"] == CORS
