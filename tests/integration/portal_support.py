"""What the portal's tests share: a real server on a catalogue `cairn demo` filled, and a
browser-like HTTP client that signs in through the sign-in page and sends forms with their
CSRF tokens, as a person's browser would.

Demo users sign in with the ``db`` authenticator and the demo password; ``simple/root``
(password ``secret``) is a root user of every test server.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from html import unescape
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select, text, update

from cairn.db.tables import TABLES
from cairn.demo.accounts import DEMO_PASSWORD
from tests.conftest import make_database
from tests.integration.server import Server, free_port, write_config

#: Ten investigations and about 5,000 datafiles with their bytes.
SCALE = 0.5

_TOKEN = re.compile(r'name="csrf" value="([^"]+)"')


def demo_server(backend: str, tmp: Path, extra_config: str = "",
                scale: float = SCALE) -> Iterator[Server]:
    """A server on a catalogue `cairn demo` filled (what it printed in ``demo_output``); one
    investigation out of three public (released in 2001), the others released in 2199,
    whatever today's date."""
    url, drop = make_database(backend, tmp)
    config = write_config(tmp / "cairn.toml", url, free_port(), extra_config)
    done = subprocess.run([sys.executable, "-m", "cairn.cli", "demo", "--config", str(config),
                           "--scale", str(scale)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    srv = Server(tmp, url, extra_config)
    srv.demo_output = done.stdout
    try:
        inv = TABLES.entity["Investigation"]
        with srv.engine.begin() as conn:
            conn.execute(update(inv).where(inv.c.id % 3 != 0)
                         .values(releaseDate=datetime(2199, 1, 1)))
            conn.execute(update(inv).where(inv.c.id % 3 == 0)
                         .values(releaseDate=datetime(2001, 1, 1)))
        yield srv
    finally:
        srv.stop()
        drop()  # type: ignore[operator]


def busiest_scientist(srv: Server) -> str:
    """The demo user (``db/<login>``) on the most investigations."""
    iu, u = TABLES.entity["InvestigationUser"], TABLES.entity["User"]
    with srv.engine.connect() as conn:
        row = conn.execute(
            select(u.c.name).select_from(iu.join(u, iu.c.user == u.c.id))
            .where(u.c.name.like("db/%")).group_by(u.c.name)
            .order_by(text("count(*) desc"), u.c.name).limit(1)).one()
    return str(row[0])


class Browser:
    """An HTTP client keeping cookies, following redirects, and sending each form with the
    CSRF token of the last page it read."""

    def __init__(self, srv: Server) -> None:
        self.srv = srv
        self.http = httpx.Client(base_url=srv.url, timeout=60, follow_redirects=True,
                                 headers={"Origin": srv.url})
        self.page = ""

    def get(self, path: str, **kw: Any) -> httpx.Response:
        r = self.http.get(path, **kw)
        if "text/html" in r.headers.get("content-type", ""):
            self.page = r.text
        return r

    @property
    def csrf(self) -> str:
        found = _TOKEN.search(self.page)
        assert found, "the last page has no form with a CSRF token"
        return unescape(found.group(1))

    def post(self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True,
             **kw: Any) -> httpx.Response:
        form = dict(data or {})
        if csrf:
            form.setdefault("csrf", self.csrf)
        r = self.http.post(path, data=form, **kw)
        if "text/html" in r.headers.get("content-type", ""):
            self.page = r.text
        return r

    def sign_in(self, user: str, password: str = DEMO_PASSWORD) -> httpx.Response:
        """Through the sign-in page, as a person: ``user`` is ``mnemonic/name``."""
        mnemonic, name = user.split("/", 1)
        self.get("/login")
        return self.post("/login", {"mechanism": mnemonic, "username": name,
                                    "password": password})

    def close(self) -> None:
        self.http.close()


def visible_text(html: str) -> str:
    """A page's text without tags, scripts or styles, whitespace collapsed (for asserting
    what a person would read)."""
    html = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", html)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()
