"""Every main page of the portal in a real browser: a screenshot of each on a laptop and on
a phone (kept as test artefacts under ``test-artefacts/screenshots``), the phone's page not
scrolling sideways, nothing going wrong inside the page (script errors, CSP refusals,
missing stylesheets), and axe-core's WCAG 2.1 AA check in light and dark colours (with its
rules for headings in order and landmarks, which the project asks of every page).

A page whose route the portal does not serve yet is skipped, saying so; it runs as soon as
its area lands.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")

from playwright.sync_api import expect

from tests.browser.support import (
    PHONE,
    ROOT,
    Contexts,
    Facts,
    Portal,
    Published,
    axe_violations,
    describe_violations,
    find_axe,
    needs,
    screenshot,
    sideways_scroll,
)

SCIENTIST, STAFF = "scientist", "root"


@dataclass(frozen=True)
class Shown:
    """A main page: its artefact name, who looks at it (None: nobody signed in), its
    address, the route that serves it, the HTTP status it answers, and what must be true
    before it is drawn (e.g. something in the cart)."""

    name: str
    who: str | None
    address: Callable[[Facts, Published | None], str]
    route: str
    status: int = 200
    needs_dois: bool = False
    prepare: Callable[[Portal, Facts, str], None] | None = None


def _cart_has_a_dataset(portal: Portal, facts: Facts, sid: str) -> None:
    r = portal.srv.http.post("/topcat/user/cart/LSF/cartItems",
                             data={"sessionId": sid, "items": f"dataset {facts.dataset}"})
    assert r.status_code == 200, r.text


def _a_download_exists(portal: Portal, facts: Facts, sid: str) -> None:
    _cart_has_a_dataset(portal, facts, sid)
    r = portal.srv.http.post("/topcat/user/cart/LSF/submit",
                             data={"sessionId": sid, "fileName": "screenshot-download",
                                   "transport": "https", "zipType": "ZIP_AND_COMPRESS"})
    assert r.status_code == 200, r.text


PAGES = [
    Shown("sign-in", None, lambda f, p: "/login", "GET /login"),
    Shown("home", SCIENTIST, lambda f, p: "/", "GET /"),
    Shown("not-found", SCIENTIST, lambda f, p: "/no/such/page", "GET /", status=404),
    Shown("browse", SCIENTIST, lambda f, p: "/browse", "GET /browse"),
    Shown("browse-mine", SCIENTIST, lambda f, p: "/browse/mine", "GET /browse/mine"),
    Shown("facility", SCIENTIST, lambda f, p: f"/browse/facility/{f.facility}",
          "GET /browse/facility/1"),
    Shown("instrument", SCIENTIST, lambda f, p: f"/browse/instrument/{f.instrument}",
          "GET /browse/instrument/1"),
    Shown("cycle", SCIENTIST,
          lambda f, p: f"/browse/instrument/{f.instrument}/cycle/{f.cycle}",
          "GET /browse/instrument/1/cycle/1"),
    Shown("investigation", SCIENTIST, lambda f, p: f"/browse/investigation/{f.investigation}",
          "GET /browse/investigation/1"),
    Shown("dataset", SCIENTIST, lambda f, p: f"/browse/dataset/{f.dataset}",
          "GET /browse/dataset/1"),
    Shown("datafile", SCIENTIST, lambda f, p: f"/browse/datafile/{f.datafiles[0][0]}",
          "GET /browse/datafile/1"),
    Shown("search", SCIENTIST, lambda f, p: f"/search?text={f.word}", "GET /search"),
    Shown("search-datasets", SCIENTIST, lambda f, p: f"/search?target=Dataset&text={f.word}",
          "GET /search"),
    Shown("cart", SCIENTIST, lambda f, p: "/cart", "GET /cart", prepare=_cart_has_a_dataset),
    Shown("downloads", SCIENTIST, lambda f, p: "/downloads", "GET /downloads",
          prepare=_a_download_exists),
    Shown("publish-investigation", SCIENTIST,
          lambda f, p: f"/publish/investigation/{f.investigation}",
          "GET /publish/investigation/1"),
    Shown("publish-cart", SCIENTIST, lambda f, p: "/publish/cart", "GET /publish/cart",
          prepare=_cart_has_a_dataset),
    Shown("staff", STAFF, lambda f, p: "/staff", "GET /staff"),
    Shown("staff-downloads", STAFF, lambda f, p: "/staff/downloads", "GET /staff/downloads"),
    Shown("staff-data", STAFF, lambda f, p: "/staff/data", "GET /staff/data"),
    Shown("staff-access", STAFF,
          lambda f, p: f"/staff/access/investigation/{f.investigation}",
          "GET /staff/access/investigation/1"),
    # Landing pages are the publishing service's (web/landing.py), served already.
    Shown("doi-landing", None, lambda f, p: f"/doi/{p.findable}" if p else "", "",
          needs_dois=True),
    Shown("doi-tombstone", None, lambda f, p: f"/doi/{p.withdrawn}" if p else "", "",
          needs_dois=True),
]


def _params() -> list[Any]:
    return [pytest.param(shown, id=shown.name, marks=needs(shown.route) if shown.route else ())
            for shown in PAGES]


class Visit:
    """Opens one main page for a test: signs its visitor in (cookies of a session made on
    the sign-in page), prepares what it must show, and knows its address."""

    def __init__(self, shown: Shown, request: pytest.FixtureRequest) -> None:
        self.shown = shown
        self.portal: Portal = request.getfixturevalue("portal")
        self.facts: Facts = request.getfixturevalue("facts")
        self.published = request.getfixturevalue("published") if shown.needs_dois else None
        self.state: dict[str, Any] | None = None
        if shown.who is not None:
            user = ROOT[0] if shown.who == STAFF else self.portal.scientist
            self.state = request.getfixturevalue("signed_in")(user)
        if shown.name == "cycle" and self.facts.cycle is None:
            pytest.skip("the demo put the example investigation in no facility cycle")
        if shown.prepare is not None:
            assert self.state is not None
            [sid] = [c["value"] for c in self.state["cookies"]
                     if c["name"] == "cairn_session"]
            shown.prepare(self.portal, self.facts, sid)

    @property
    def address(self) -> str:
        return self.shown.address(self.facts, self.published)

    def options(self, **more: Any) -> dict[str, Any]:
        return {**({"storage_state": self.state} if self.state else {}), **more}


@pytest.mark.parametrize("shown", _params())
def test_page_on_a_laptop_and_a_phone(shown: Shown, request: pytest.FixtureRequest,
                                      contexts: Contexts) -> None:
    visit = Visit(shown, request)
    for size, options in (("desktop", {}), ("phone", PHONE)):
        page = contexts(**visit.options(**options)).new_page()
        response = page.goto(visit.address)
        assert response is not None and response.status == shown.status, (
            f"{visit.address} answered {response and response.status}")
        expect(page.locator("h1")).to_have_count(1)
        expect(page.get_by_role("main")).to_be_visible()
        screenshot(page, f"{shown.name}-{size}")
        if size == "phone":
            wide = sideways_scroll(page)
            assert wide is None, f"{visit.address} on a phone: {wide}"


@pytest.mark.skipif(find_axe() is None, reason=(
    "axe-core is not installed (npm install --prefix .ci/node axe-core@4, as .ci/run does; "
    "or name axe.min.js in CAIRN_AXE_CORE)"))
@pytest.mark.parametrize("shown", _params())
def test_page_is_accessible(shown: Shown, request: pytest.FixtureRequest,
                            contexts: Contexts) -> None:
    axe = find_axe()
    assert axe is not None
    visit = Visit(shown, request)
    # axe comes in as an inline script, which the pages' CSP rightly refuses.
    page = contexts(**visit.options(bypass_csp=True)).new_page()
    page.goto(visit.address)
    found = []
    for scheme in ("light", "dark"):  # the same page, its colours switched
        page.emulate_media(color_scheme=scheme)
        violations = axe_violations(page, axe, structure=scheme == "light")
        if violations:
            found.append(describe_violations(violations, f"{visit.address} ({scheme})"))
    assert not found, "\n\n".join(found)
