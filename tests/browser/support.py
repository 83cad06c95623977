"""What the browser tests share: finding Debian's chromium, probing which portal pages exist
yet, signing in through the page, screenshots kept as artefacts, the axe-core accessibility
check, and a watch on what goes wrong inside a page (script errors, Content-Security-Policy
violations, stylesheets or scripts that fail to load).

Nothing here downloads a browser: Playwright drives the ``chromium`` executable the machine
has (``apt-get install chromium``; ``CAIRN_CHROMIUM`` names another). axe-core comes from npm
at test time (``.ci/run`` installs it under ``.ci/node``; ``CAIRN_AXE_CORE`` names another
``axe.min.js``), never from the repository.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.datacite_server import DataCiteServer
from tests.integration.server import Server

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Request, Response

REPO = Path(__file__).resolve().parents[2]

#: Root of every test server (tests/integration/server.py), and the demo users' password.
ROOT = ("simple/root", "secret")
DEMO_PASSWORD = "demo"

#: Where screenshots (and pictures of failed tests) go; gitignored.
ARTEFACTS = Path(os.environ.get("CAIRN_TEST_ARTEFACTS") or REPO / "test-artefacts")

#: Chromium's switches for a quiet, headless run on a CI machine (no sandbox as root, no
#: calls home, no updates).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

#: The two viewports of every screenshot: a laptop and a phone.
DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 800}}
PHONE: dict[str, Any] = {"viewport": {"width": 390, "height": 844}, "is_mobile": True,
                         "has_touch": True}

#: What the accessibility check holds the pages to: WCAG 2.0 and 2.1, levels A and AA...
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
#: ... and axe's best-practice rules for what the project's own rules ask of every page:
#: headings in order, one h1, one main landmark, landmarks told apart by their names.
STRUCTURE_RULES = ["heading-order", "page-has-heading-one", "landmark-one-main",
                   "landmark-unique", "landmark-no-duplicate-main"]


def find_chromium() -> str | None:
    """The chromium executable to drive, or None when this machine has none."""
    named = os.environ.get("CAIRN_CHROMIUM")
    if named:
        return named if Path(named).is_file() and os.access(named, os.X_OK) else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    fallback = Path("/usr/bin/chromium")
    return str(fallback) if fallback.is_file() else None


def find_axe() -> Path | None:
    """axe-core's browser bundle, where ``.ci/run`` installs it (or ``CAIRN_AXE_CORE``)."""
    named = os.environ.get("CAIRN_AXE_CORE")
    path = Path(named) if named else REPO / ".ci/node/node_modules/axe-core/axe.min.js"
    return path if path.is_file() else None


@dataclass
class Portal:
    """The demo server the browser tests use, and the facts about its catalogue they need."""

    srv: Server
    datacite: DataCiteServer
    #: The demo scientist (``db/<login>``) on the most investigations.
    scientist: str

    @property
    def url(self) -> str:
        return self.srv.url

    def rows(self, sql: str, **params: Any) -> list[Any]:
        return list(self.srv.sql(sql, **params).fetchall())


@dataclass(frozen=True)
class Facts:
    """Entities of the demo catalogue the tests visit (read from its database)."""

    facility: int
    #: The scientist's first investigation as PI (with an instrument): the pages' example.
    investigation: int
    title: str
    instrument: int
    #: A facility cycle holding that investigation, if the demo made one.
    cycle: int | None
    #: The investigation's smallest dataset with more than one file, and its files
    #: (id, name, size) by id.
    dataset: int
    dataset_name: str
    datafiles: list[tuple[int, str, int]]
    #: Another investigation of the scientist as PI: the one they mint a DOI for.
    to_mint: int
    #: A word of the example investigation's title, to search for.
    word: str


@dataclass(frozen=True)
class Published:
    """DOIs root minted through the publishing API: one findable, one withdrawn."""

    findable: str
    findable_title: str
    withdrawn: str
    reason: str


#: ``contexts(**options)``: a fresh browser context on the portal (the fixture of that name).
Contexts = Callable[..., "BrowserContext"]


def trouble_of(context: BrowserContext) -> Trouble:
    """The watcher of a context made by ``contexts`` (to allow an expected console error)."""
    return context.trouble  # type: ignore[attr-defined]


# -- which pages exist yet ------------------------------------------------------------------

@cache
def _portal_routes() -> list[Any]:
    from cairn.web.portal import routes

    return routes()


def route_exists(path: str, method: str = "GET") -> bool:
    """Whether the portal has a route answering ``method path`` (asked of the portal's own
    route table, in-process: no server needed when tests are collected)."""
    from starlette.routing import Match

    scope = {"type": "http", "path": path, "method": method, "root_path": "",
             "headers": [], "query_string": b""}
    return any(route.matches(scope)[0] == Match.FULL for route in _portal_routes())


def needs(*routes: str) -> pytest.MarkDecorator:
    """Skip a test until the portal has every one of ``routes`` (``"GET /browse"``; a
    number stands for an id), naming those still missing."""
    missing = []
    for route in routes:
        method, _, path = route.partition(" ")
        if not route_exists(path, method):
            missing.append(route)
    return pytest.mark.skipif(bool(missing),
                              reason="the portal does not serve " + ", ".join(missing) + " yet")


# -- signing in -----------------------------------------------------------------------------

def sign_in(page: Page, user: str, password: str) -> None:
    """Sign in through the sign-in page as a person would: in the form of the user's
    authenticator (``mnemonic/name``), typing the name and password, pressing its button."""
    from playwright.sync_api import expect

    mnemonic, name = user.split("/", 1)
    page.goto("/login")
    form = page.locator("form").filter(
        has=page.locator(f"input[name=mechanism][value='{mnemonic}']"))
    form.get_by_label("Username").fill(name)
    form.get_by_label("Password").fill(password)
    form.get_by_role("button", name=re.compile(r"^Sign in")).click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


# -- what goes wrong inside a page -----------------------------------------------------------

@dataclass
class Trouble:
    """Everything a page did wrong that a person might not notice but the page's author
    should: uncaught script errors, console errors (a CSP refusal is one), and requests for
    the page's own stylesheets, scripts or images that failed or came back 4xx/5xx."""

    problems: list[str] = field(default_factory=list)
    #: Console messages containing one of these are expected (e.g. a page that is a 404).
    allowed: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.problems.append(f"script error: {e}"))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)

    def allow(self, text: str) -> None:
        self.allowed.append(text)

    def _console(self, message: ConsoleMessage) -> None:
        # Loading failures are the request watchers' (they know a page's own 404 from a
        # missing stylesheet's).
        if message.text.startswith("Failed to load resource"):
            return
        if message.type == "error" and not any(a in message.text for a in self.allowed):
            where = message.page.url if message.page else message.location.get("url")
            self.problems.append(f"console error on {where}: {message.text}")

    def _failed(self, request: Request) -> None:
        if request.resource_type != "document":
            self.problems.append(f"{request.resource_type} {request.url} failed: "
                                 f"{request.failure}")

    def _response(self, response: Response) -> None:
        request = response.request
        # A browser asks for /favicon.ico by itself; the portal names no icon (yet).
        if request.resource_type not in ("document", "fetch", "xhr") \
                and response.status >= 400 and not response.url.endswith("/favicon.ico"):
            self.problems.append(f"{request.resource_type} {response.url} answered "
                                 f"{response.status}")

    def check(self) -> None:
        assert not self.problems, "the page had trouble:\n  " + "\n  ".join(self.problems)


# -- screenshots and layout ------------------------------------------------------------------

def screenshot(page: Page, name: str) -> Path:
    """Keep a full-page picture as ``test-artefacts/screenshots/<name>.png``."""
    folder = ARTEFACTS / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True, animations="disabled")
    return path


_OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [];
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.right <= width + 1) continue;
    let clipped = false;
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const style = getComputedStyle(p);
      if (style.overflowX !== 'visible' && style.overflowX !== 'clip') { clipped = true; break; }
    }
    if (clipped || getComputedStyle(el).position === 'fixed') continue;
    const id = el.id ? '#' + el.id : '';
    const cls = el.classList.length ? '.' + [...el.classList].join('.') : '';
    wide.push(`${el.tagName.toLowerCase()}${id}${cls} reaches ${Math.round(box.right)}px`);
    if (wide.length >= 8) break;
  }
  return {scroll: document.documentElement.scrollWidth, width, wide};
}"""


def sideways_scroll(page: Page) -> str | None:
    """Why the page scrolls sideways (wider than the window), or None when it fits."""
    found = page.evaluate(_OVERFLOW)
    if found["scroll"] <= found["width"] + 1:
        return None
    return (f"the page is {found['scroll']}px wide in a {found['width']}px window; too wide: "
            + "; ".join(found["wide"]))


# -- accessibility ---------------------------------------------------------------------------

def axe_violations(page: Page, axe: Path, structure: bool = True) -> list[dict[str, Any]]:
    """axe-core's violations of WCAG 2.1 A/AA (and of :data:`STRUCTURE_RULES` unless
    ``structure`` is false) on the page as it is now. The context must be made with
    ``bypass_csp=True``: axe comes in as an inline script, which the pages' CSP refuses."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(path=str(axe))
    found = []
    for kind, values in (("tag", WCAG_TAGS), ("rule", STRUCTURE_RULES if structure else [])):
        if not values:
            continue
        result = page.evaluate(
            "([kind, values]) => axe.run(document, {runOnly: {type: kind, values},"
            " resultTypes: ['violations']})", [kind, values])
        found += result["violations"]
    return found


def describe_violations(violations: list[dict[str, Any]], where: str) -> str:
    """axe's findings as a person reads them: rule, impact, what to fix, and each element."""
    lines = [f"{len(violations)} accessibility violation(s) on {where}:"]
    for v in violations:
        wcag = [t for t in v.get("tags", []) if t.startswith("wcag")]
        kind = "WCAG " + ", ".join(wcag) if wcag else "best practice"
        lines.append(f"- {v['id']} ({v.get('impact')}; {kind}): {v['help']}  "
                     f"[{v['helpUrl']}]")
        for node in v["nodes"][:6]:
            target = " ".join(json.dumps(t) if not isinstance(t, str) else t
                              for t in node["target"])
            lines.append(f"    at {target}: {node['html'][:160]}")
            summary = (node.get("failureSummary") or "").replace("\n", " ")
            if summary:
                lines.append(f"      {summary[:300]}")
        if len(v["nodes"]) > 6:
            lines.append(f"    ... and {len(v['nodes']) - 6} more element(s)")
    return "\n".join(lines)
