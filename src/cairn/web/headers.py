"""Headers put on every response of an ASGI application (CORS, as icat.server and ids.server)."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import Message, Send

Header = tuple[bytes, bytes]


class WithHeaders:
    """``send`` that puts ``headers`` (lower-case names) on the response, in place of any of
    the same names the application set, and notes whether the response has started."""

    __slots__ = ("headers", "names", "send", "started")

    def __init__(self, send: Send, headers: Sequence[Header]) -> None:
        self.send = send
        self.headers = headers
        self.names = {name for name, _ in headers}
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            own = [h for h in message.get("headers", ()) if bytes(h[0]).lower() not in self.names]
            message["headers"] = [*own, *self.headers]
        await self.send(message)
