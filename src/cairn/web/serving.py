"""Serving the application over HTTP with uvicorn, with the bounds a public server needs.

uvicorn closes idle keep-alive connections and can cap concurrent connections
(``limit_concurrency``), but holds a connection that never finishes its headers, or stops
sending its body, for ever. :class:`TimedProtocol` adds those two timeouts to uvicorn's
httptools protocol. The listening port is bound before anything else happens at start-up
(:func:`bind`), so a busy port is reported before a database or a data folder is touched.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from cairn.config import ServerSettings

log = logging.getLogger(__name__)


class PortUnavailable(Exception):
    """The address to listen on can't be bound; the message says what to do."""


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (not yet listening: until the server starts,
    connections are refused rather than left waiting)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise PortUnavailable(f"cannot listen on {host}: {e.strerror}; correct --host or "
                              "[server] host") from e
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    # As uvicorn does: a restart may bind while the old process's connections wait out
    # TIME_WAIT.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        if e.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            raise PortUnavailable(f"port {port} on {host} is in use (another Cairn?): "
                                  "choose another with --port or [server] port") from e
        raise PortUnavailable(f"cannot listen on {host}:{port}: {e.strerror}; choose another "
                              "--host/--port ([server] host, port)") from e
    sock.set_inheritable(True)
    return sock


class TimedProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol with a header timeout and a body idle timeout.

    The header clock runs from the connection (or from the first byte of its next request)
    until the headers are complete: a client dribbling a header a byte at a time is cut off
    as one that sends nothing. The body clock measures silence while the request's body is
    expected, and stands still while Cairn itself has paused reading (a slow consumer is not
    the client's fault). Set the two class attributes in a subclass (:func:`protocol`).
    """

    header_timeout: float = 30.0
    body_timeout: float = 60.0

    _header_timer: asyncio.TimerHandle | None = None
    _body_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:
            self._arm_header_timer()  # the next request of a kept-alive connection

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        super().on_headers_complete()
        if self.cycle is not None and self.cycle.more_body:
            self._arm_body_timer()

    def data_received(self, data: bytes) -> None:
        if self._body_timer is not None:
            self._arm_body_timer()  # the client is still sending
        super().data_received(data)

    def on_message_complete(self) -> None:
        self._cancel_body_timer()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        self._cancel_body_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _arm_body_timer(self) -> None:
        self._cancel_body_timer()
        self._body_timer = self.loop.call_later(self.body_timeout, self._body_late)

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        log.info("closed a connection from %s: no complete request headers within %g s",
                 _peer(self.client), self.header_timeout)
        self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n"
                             b"connection: close\r\n\r\n")
        self.transport.close()

    def _body_late(self) -> None:
        self._body_timer = None
        if self.transport.is_closing():
            return
        if self.flow is not None and self.flow.read_paused:
            self._arm_body_timer()  # Cairn is not reading: the client is not late
            return
        log.info("closed a connection from %s: its request body stalled for %g s",
                 _peer(self.client), self.body_timeout)
        self.transport.close()  # the application sees the client disconnect


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "a client"


def protocol(header_timeout: float, body_timeout: float) -> type[TimedProtocol]:
    """:class:`TimedProtocol` with these timeouts."""
    return type("CairnHttpProtocol", (TimedProtocol,),
                {"header_timeout": header_timeout, "body_timeout": body_timeout})


def run(app: Any, sock: socket.socket, server: ServerSettings, **options: Any) -> None:
    """Serve ``app`` on the bound ``sock`` until stopped, within the bounds of ``server``;
    ``options`` go to uvicorn (log level, proxy headers, ...)."""
    config = uvicorn.Config(
        app, host=server.host, port=server.port,
        http=protocol(server.header_timeout_seconds, server.body_timeout_seconds),
        timeout_keep_alive=server.keep_alive_seconds,
        limit_concurrency=server.max_connections,
        forwarded_allow_ips=server.forwarded_allow_ips, **options)
    uvicorn.Server(config).run(sockets=[sock])
