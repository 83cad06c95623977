"""The portal's front door over real HTTP: signing in and out with the catalogue's own
sessions, the home page, CSRF and cookie protections, and error pages instead of JSON."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from cairn.db.tables import TABLES
from tests.conftest import BACKENDS
from tests.integration.portal_support import (
    Browser,
    busiest_scientist,
    demo_server,
    visible_text,
)
from tests.integration.server import Server


@pytest.fixture(scope="module", params=BACKENDS)
def srv(request: pytest.FixtureRequest,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from demo_server(str(request.param), tmp_path_factory.mktemp("portal-signin"))


def test_a_visitor_is_sent_to_sign_in_and_back(srv: Server, browser_factory: Any) -> None:
    b: Browser = browser_factory(srv)
    r = b.get("/?sort=name&page=2")
    assert r.url.path == "/login"
    assert r.url.params["next"] == "/?sort=name&page=2"
    text = visible_text(r.text)
    # Every configured authenticator is offered; anon as a guest button.
    assert "Simple" in text and "Continue as a guest" in text
    user = busiest_scientist(srv)
    r = b.post("/login", {"mechanism": "db", "username": user.split("/", 1)[1],
                          "password": "demo", "next": "/?from=login"})
    assert r.status_code == 200 and r.url.path == "/" and r.url.params["from"] == "login"
    assert user in visible_text(r.text)


def test_home_lists_the_visitors_investigations(srv: Server, browser_factory: Any) -> None:
    user = busiest_scientist(srv)
    b: Browser = browser_factory(srv)
    r = b.sign_in(user)
    assert r.status_code == 200
    i, iu, u = (TABLES.entity[n] for n in ("Investigation", "InvestigationUser", "User"))
    with srv.engine.connect() as conn:
        names = list(conn.scalars(
            select(i.c.title).select_from(i.join(iu, iu.c.investigation == i.c.id)
                                          .join(u, iu.c.user == u.c.id))
            .where(u.c.name == user).order_by(i.c.startDate.desc(), i.c.id.desc())))
    assert names
    page = visible_text(r.text)
    shown = [n for n in names[:10] if n in page]
    assert shown == names[:10]
    # Most recent first, as the query orders them.
    assert [page.index(n) for n in shown] == sorted(page.index(n) for n in shown)


def test_wrong_password_stays_on_the_sign_in_page(srv: Server, browser_factory: Any) -> None:
    b: Browser = browser_factory(srv)
    r = b.sign_in(busiest_scientist(srv), password="not-the-password")
    assert r.status_code == 400 and r.url.path == "/login"
    assert 'role="alert"' in r.text
    assert "cairn_session" not in b.http.cookies


def test_session_cookie_is_the_catalogue_session(srv: Server, browser_factory: Any) -> None:
    b: Browser = browser_factory(srv)
    b.get("/login")
    r = b.http.post("/login", data={"mechanism": "simple", "username": "root",
                                    "password": "secret", "csrf": b.csrf},
                    follow_redirects=False)
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "cairn_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    sid = b.http.cookies["cairn_session"]
    # The same session works over REST, as any ICAT session.
    info = srv.http.get(f"/icat/session/{sid}").json()
    assert info["userName"] == "simple/root"
    b.get("/")
    r = b.post("/logout")
    assert r.url.path == "/login" and "You have signed out" in r.text
    assert srv.http.get(f"/icat/session/{sid}").json()["code"] == "SESSION"


def test_forms_need_their_token_and_this_site(srv: Server, browser_factory: Any) -> None:
    b: Browser = browser_factory(srv)
    b.sign_in("simple/root", "secret")
    sid = b.http.cookies["cairn_session"]
    r = b.post("/logout", {"csrf": "forged"})
    assert r.status_code == 400 and "reload the page" in visible_text(r.text)
    r = b.post("/logout", headers={"Origin": "https://evil.example"})
    assert r.status_code == 400
    # Still signed in: neither request ended the session.
    assert srv.http.get(f"/icat/session/{sid}").json()["userName"] == "simple/root"
    # The sign-in form has its own token: a forged one is refused.
    other: Browser = browser_factory(srv)
    other.get("/login")
    r = other.post("/login", {"mechanism": "simple", "username": "root",
                              "password": "secret", "csrf": "0" * 32})
    assert r.status_code == 400 and "cairn_session" not in other.http.cookies


def test_next_never_leaves_the_site(srv: Server, browser_factory: Any) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        b: Browser = browser_factory(srv)
        b.get("/login")
        r = b.http.post("/login", data={"mechanism": "simple", "username": "root",
                                        "password": "secret", "csrf": b.csrf,
                                        "next": target}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/", target


def test_guest_sees_public_data_only(srv: Server, browser_factory: Any) -> None:
    b: Browser = browser_factory(srv)
    b.get("/login")
    r = b.post("/login", {"mechanism": "anon"})
    assert r.status_code == 200 and r.url.path == "/"
    assert "anon/anon" in visible_text(r.text)


def test_unknown_paths_are_pages_and_apis_keep_json(srv: Server, browser_factory: Any
                                                    ) -> None:
    b: Browser = browser_factory(srv)
    r = b.get("/no/such/page")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "There is no page at this address." in visible_text(r.text)
    r = srv.http.get("/icat/no-such-call")
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["code"] == "NOT_IMPLEMENTED"


def test_pages_send_security_headers(srv: Server, browser_factory: Any) -> None:
    b: Browser = browser_factory(srv)
    r = b.get("/login")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"
    css = b.get("/portal/static/cairn.css")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]
