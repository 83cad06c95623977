"""Who is looking at a portal page: the catalogue session in a cookie, and CSRF tokens.

The portal keeps no sessions of its own: the cookie holds the catalogue's session id, so a
portal sign-in is an ICAT session like any other (its lifetime, its logout, its purge).
Forms carry a token derived from that id; a page on another site cannot read the cookie, so
it cannot compute the token (the synchronizer-token pattern, with nothing stored). Before
sign-in, the login form uses a random double-submit cookie instead.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from cairn.catalogue.service import Catalogue
from cairn.errors import ErrorType, IcatError

#: The catalogue's session id (HttpOnly: page scripts never see it).
SESSION_COOKIE = "cairn_session"
#: A random token for the sign-in form, compared with the form's copy.
LOGIN_COOKIE = "cairn_login"
#: A one-time notice shown on the next page ("3 items added to your cart").
NOTICE_COOKIE = "cairn_notice"


@dataclass(frozen=True)
class Visitor:
    """A signed-in person: their catalogue session, user name and whether they are root."""

    sid: str
    user: str
    root: bool

    @property
    def csrf(self) -> str:
        return csrf_token(self.sid)

    @property
    def anonymous(self) -> bool:
        return self.user.startswith("anon/")


def csrf_token(sid: str) -> str:
    return hmac.new(sid.encode(), b"cairn-portal-csrf", hashlib.sha256).hexdigest()[:40]


def secure(request: Request) -> bool:
    return request.url.scheme == "https"


def visitor(request: Request, catalogue: Catalogue) -> Visitor | None:
    """The signed-in visitor, or None (no cookie, or a session that ended). Refreshes the
    session once half its lifetime has passed, so a person active in the portal stays in."""
    sid = request.cookies.get(SESSION_COOKIE)
    if not sid:
        return None
    try:
        session = catalogue.session(sid)
        lifetime = catalogue.settings.catalogue.session_lifetime_minutes
        if session.remaining_minutes < lifetime / 2:
            catalogue.refresh(sid)
    except IcatError as e:
        if e.type == ErrorType.SESSION:
            return None
        raise
    return Visitor(sid=sid, user=session.user, root=catalogue.is_root(session.user))


def set_session(response: Response, request: Request, sid: str | None) -> None:
    """Sets (or with None clears) the session cookie: HttpOnly, SameSite=Lax, Secure over
    https. Lax keeps bookmarked and shared links signed in; every form checks its token."""
    if sid is None:
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax",
                               secure=secure(request))
    else:
        response.set_cookie(SESSION_COOKIE, sid, path="/", httponly=True, samesite="lax",
                            secure=secure(request))


def login_token(request: Request) -> str:
    """The sign-in form's token: the one already in the visitor's cookie, or a new one."""
    token = request.cookies.get(LOGIN_COOKIE)
    return token if token and len(token) == 32 else secrets.token_hex(16)


def set_login_token(response: Response, request: Request, token: str) -> None:
    """Keeps the sign-in form's token in its cookie (strict: it never goes cross-site)."""
    if request.cookies.get(LOGIN_COOKIE) != token:
        response.set_cookie(LOGIN_COOKIE, token, path="/", httponly=True, samesite="strict",
                            secure=secure(request), max_age=3600)


def same_origin(request: Request) -> bool:
    """False when the browser says the form came from another site (Origin or Referer)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return source != "null"
    host = request.headers.get("host", "")
    return urlsplit(source).netloc == host


def form_allowed(request: Request, token: str | None, expected: str | None) -> bool:
    return (expected is not None and token is not None and same_origin(request)
            and hmac.compare_digest(token, expected))
