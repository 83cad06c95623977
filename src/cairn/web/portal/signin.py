"""Signing in and out, and the home page a signed-in person lands on."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from cairn.errors import ErrorType, IcatError
from cairn.web.portal import pages, visitors
from cairn.web.portal.pages import Call

#: How many of the visitor's investigations and downloads the home page lists.
HOME_ROWS = 10


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site only (never ``//evil`` or a URL)."""
    if not target or not target.startswith("/") or target.startswith("//") \
            or "\\" in target:
        return "/"
    return target


def quoted(text: str) -> str:
    """A string literal of the query language."""
    return "'" + text.replace("'", "''") + "'"


def authenticators(call: Call) -> list[dict[str, Any]]:
    """The sign-in choices: every configured authenticator with its credential fields."""
    shown = []
    for entry in call.cairn.catalogue.properties()["authenticators"]:
        keys = entry["keys"]
        shown.append({"mnemonic": entry["mnemonic"],
                      "label": entry.get("friendly") or entry["mnemonic"],
                      "keys": keys, "anonymous": not keys})
    return shown


def login(call: Call) -> Response:
    """GET: the sign-in page; POST: sign in with one authenticator, then go on."""
    target = safe_next(call.args.get("next") or call.field("next") or None)
    if call.visitor is not None and call.form is None:
        return call.redirect(target)
    error = None
    if call.form is not None:
        mnemonic = call.field("mechanism")
        choices = {a["mnemonic"]: a for a in authenticators(call)}
        chosen = choices.get(mnemonic)
        if chosen is None:
            error = "Choose one of the ways to sign in below."
        else:
            credentials = {k["name"]: call.field(k["name"]) for k in chosen["keys"]}
            try:
                sid = call.cairn.catalogue.login(mnemonic, credentials,
                                                  call.request.client.host
                                                  if call.request.client else None)
            except IcatError as e:
                if e.type not in (ErrorType.SESSION, ErrorType.BAD_PARAMETER):
                    raise
                error = e.message
            else:
                response = call.redirect(target)
                call.cookies[visitors.SESSION_COOKIE] = sid
                call.cookies[visitors.LOGIN_COOKIE] = None
                return response
    token = visitors.login_token(call.request)
    response = call.render("portal/login.html", status=400 if error else 200,
                           choices=authenticators(call), next=target, error=error,
                           login_token=token, chosen=call.field("mechanism"),
                           username=call.field("username"))
    visitors.set_login_token(response, call.request, token)
    return response


def logout(call: Call) -> Response:
    """End the catalogue session (as a logout by any client would) and forget the cookie."""
    try:
        call.cairn.catalogue.logout(call.sid)
    except IcatError as e:
        if e.type != ErrorType.SESSION:
            raise
    response = call.redirect("/login", notice="You have signed out.")
    call.cookies[visitors.SESSION_COOKIE] = None
    return response


def my_investigations(call: Call, limit: int = HOME_ROWS) -> list[Any]:
    """Investigations the visitor is on, most recent first."""
    assert call.visitor is not None
    query = ("SELECT i FROM Investigation i JOIN i.investigationUsers iu JOIN iu.user u "
             f"WHERE u.name = {quoted(call.visitor.user)} "
             f"ORDER BY i.startDate DESC, i.id DESC LIMIT 0, {int(limit)} "
             "INCLUDE i.investigationInstruments.instrument, i.type")
    return list(call.cairn.catalogue.search(call.sid, query))


def home(call: Call) -> Response:
    """My data, recent downloads and the search box."""
    from cairn.web.portal import downloads_pages  # the downloads area lists its own

    return call.render("portal/home.html", investigations=my_investigations(call),
                       downloads=downloads_pages.recent(call, HOME_ROWS))


def routes() -> list[BaseRoute]:
    return [
        Route("/", pages.page(home), methods=["GET"]),
        Route("/login", pages.page(login, signed_in=False, login_form=True),
              methods=["GET", "POST"]),
        Route("/logout", pages.page(logout), methods=["POST"]),
    ]
