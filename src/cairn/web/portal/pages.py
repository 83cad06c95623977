"""How a portal page is served: the :func:`page` wrapper, templates and error pages.

Every portal route is a plain function ``(call: Call) -> Response`` wrapped by :func:`page`,
which reads the form (checking its CSRF token), finds the visitor, sends a visitor who must
sign in to the sign-in page, and turns an :class:`IcatError` into an error page. The function
runs in a worker thread, as the catalogue's calls block; it reaches the same services REST
and SOAP do through :attr:`Call.cairn`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from cairn.errors import ErrorType, IcatError
from cairn.publishing.reading import human_size
from cairn.web.forms import read_form
from cairn.web.portal import visitors
from cairn.web.portal.visitors import Visitor

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent.parent / "templates"

#: Sent with every portal page: scripts, styles and forms only from Cairn itself.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                               "base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # pages show what one person may read
}

#: The HTTP status of an error page for each ICAT error type.
STATUS = {ErrorType.BAD_PARAMETER: 400, ErrorType.VALIDATION: 400, ErrorType.SESSION: 403,
          ErrorType.INSUFFICIENT_PRIVILEGES: 403, ErrorType.NO_SUCH_OBJECT_FOUND: 404,
          ErrorType.OBJECT_ALREADY_EXISTS: 409, ErrorType.NOT_IMPLEMENTED: 501}


def when(value: Any, with_time: bool = True) -> str:
    """A date or timestamp as people read it: 2024-03-05 14:02 (no seconds, no zone)."""
    if value is None or value == "":
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def size(value: Any) -> str:
    return "" if value is None else human_size(int(value))


def query_string(base: Mapping[str, Any], **changes: Any) -> str:
    """``?a=1&b=2`` from ``base`` with ``changes`` applied (None drops a key): links that
    keep the page's sorting and filters while changing one of them."""
    merged = {k: v for k, v in {**base, **changes}.items() if v is not None and v != ""}
    return "?" + urlencode(merged) if merged else "?"


@cache
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["size"] = size
    env.filters["when"] = when
    env.filters["day"] = lambda v: when(v, with_time=False)
    env.filters["urlpart"] = lambda v: quote(str(v), safe="")
    env.globals["query_string"] = query_string
    return env


class Redirect(Exception):
    """Leave the page for ``url`` (raised from deep inside a page function)."""

    def __init__(self, url: str, notice: str | None = None) -> None:
        self.url = url
        self.notice = notice


@dataclass
class Call:
    """One request to a portal page: what the page function works with."""

    request: Request
    visitor: Visitor | None
    form: FormData | None
    notice: str | None = None
    #: Set on the response: cookies to write (name -> value, None clears).
    cookies: dict[str, str | None] = field(default_factory=dict)

    @property
    def cairn(self) -> Any:
        """The app's state: ``catalogue``, ``search``, ``downloads``, ``publishing``,
        ``data``, ``readiness`` and ``settings`` (the same services REST and SOAP use)."""
        return self.request.app.state

    @property
    def sid(self) -> str:
        """The visitor's catalogue session (pages that need one are signed in)."""
        assert self.visitor is not None
        return self.visitor.sid

    @property
    def args(self) -> Mapping[str, str]:
        return self.request.query_params

    def arg_int(self, name: str, default: int | None = None) -> int | None:
        """A whole-number query parameter; a malformed one is a BAD_PARAMETER page."""
        raw = self.request.query_params.get(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            raise IcatError(ErrorType.BAD_PARAMETER,
                            f"{name} must be a whole number, not {raw!r}") from None

    def field(self, name: str, default: str = "") -> str:
        """A field of the submitted form."""
        value = self.form.get(name) if self.form is not None else None
        return value if isinstance(value, str) else default

    def fields(self, name: str) -> list[str]:
        if self.form is None:
            return []
        return [v for v in self.form.getlist(name) if isinstance(v, str)]

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        return render(self.request, template, status, visitor=self.visitor,
                      notice=self.notice, **context)

    def redirect(self, url: str, notice: str | None = None) -> Response:
        response = RedirectResponse(url, status_code=303)
        if notice:
            self.cookies[visitors.NOTICE_COOKIE] = notice
        return response


def render(request: Request, template: str, status: int = 200, **context: Any
           ) -> HTMLResponse:
    settings = request.app.state.settings
    html = environment().get_template(template).render(
        site=settings.portal.title, path=request.url.path, request=request, status=status,
        **context)
    response = HTMLResponse(html, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    return response


def sign_in_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/login?" + urlencode({"next": target})


def error_page(request: Request, e: IcatError, visitor: Visitor | None = None) -> Response:
    status = STATUS.get(e.type, 500)
    if e.type == ErrorType.INTERNAL:
        log.error("INTERNAL error on portal page %s: %s", request.url.path, e.message)
    return render(request, "portal/error.html", status, visitor=visitor, error=e)


def not_found(request: Request) -> Response:
    """The page for an address the portal (and no API) knows."""
    e = IcatError(ErrorType.NO_SUCH_OBJECT_FOUND, "There is no page at this address.")
    try:
        who = visitors.visitor(request, request.app.state.catalogue)
    except IcatError:
        who = None  # the database may be what failed: the page still says "not found"
    return error_page(request, e, who)


PageFunction = Callable[[Call], Response]


def page(fn: PageFunction, *, signed_in: bool = True, root: bool = False,
         login_form: bool = False) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint running ``fn``: see the module's docstring. ``signed_in=False``
    pages are open to everyone; ``root=True`` pages only to the catalogue's root users.
    ``login_form`` pages check the sign-in form's token instead of the session's."""
    async def endpoint(request: Request) -> Response:
        form = None
        if request.method == "POST":
            limit = request.app.state.settings.server.max_request_bytes
            try:
                form = await read_form(request, limit)
            except IcatError as e:
                return error_page(request, e)
        return await run_in_threadpool(serve, fn, request, form, signed_in, root, login_form)

    endpoint.__name__ = fn.__name__
    endpoint.__doc__ = fn.__doc__
    return endpoint


def serve(fn: PageFunction, request: Request, form: FormData | None, signed_in: bool,
          root: bool, login_form: bool) -> Response:
    state = request.app.state
    who: Visitor | None = None
    raw_notice = request.cookies.get(visitors.NOTICE_COOKIE)
    notice = unquote(raw_notice) if raw_notice else None
    call = Call(request, None, form, notice=notice)
    try:
        who = visitors.visitor(request, state.catalogue)
        call.visitor = who
        if (signed_in or root) and who is None:
            if request.method == "GET":
                raise Redirect(sign_in_url(request))
            raise IcatError(ErrorType.SESSION, "Your session has ended: sign in again.")
        if root and not (who is not None and who.root):
            raise IcatError(ErrorType.INSUFFICIENT_PRIVILEGES,
                            "This page is for the catalogue's administrators.")
        if form is not None:
            if login_form:
                expected = request.cookies.get(visitors.LOGIN_COOKIE)
            else:
                expected = who.csrf if who is not None else None
            token = form.get("csrf")
            if not visitors.form_allowed(request, token if isinstance(token, str) else None,
                                         expected):
                raise IcatError(ErrorType.BAD_PARAMETER,
                                "This form has expired or came from another site; "
                                "reload the page and try again.")
        response = fn(call)
    except Redirect as r:
        response = call.redirect(r.url, r.notice)
    except IcatError as e:
        if e.type == ErrorType.SESSION and request.method == "GET":
            response = call.redirect(sign_in_url(request))
            call.cookies[visitors.SESSION_COOKIE] = None
        else:
            response = error_page(request, e, who)
    if notice:
        response.delete_cookie(visitors.NOTICE_COOKIE, path="/")
    for name, value in call.cookies.items():
        if name == visitors.SESSION_COOKIE:
            visitors.set_session(response, request, value)
        elif value is None:
            response.delete_cookie(name, path="/")
        else:
            # Percent-encoded: a cookie holds Latin-1 only, a notice any text.
            response.set_cookie(name, quote(value), path="/", httponly=True, samesite="lax",
                                secure=visitors.secure(request), max_age=300)
    return response
