"""Fixtures of the browser tests: one demo server (SQLite: these tests are about the pages;
the HTTP tests cover the backends) with the local DataCite server behind its publishing, one
chromium per test session, and a fresh browser context for every test.

The whole folder is skipped, with the reason, when this machine has no chromium executable.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.support import (
    ARTEFACTS,
    CHROMIUM_ARGS,
    DEMO_PASSWORD,
    DESKTOP,
    ROOT,
    Contexts,
    Facts,
    Portal,
    Published,
    Trouble,
    find_chromium,
    sign_in,
)
from tests.integration.datacite_server import DataCiteServer
from tests.integration.portal_support import busiest_scientist, demo_server
from tests.waiting import wait_until

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright

HERE = Path(__file__).parent
CHROMIUM = find_chromium()
#: Why the browser tests cannot run here (None: they can).
WHY_NOT = ("Playwright for Python is not installed (pip install -e '.[test]')"
           if importlib.util.find_spec("playwright") is None else
           "no chromium executable here (apt-get install chromium, or name one in "
           "CAIRN_CHROMIUM)" if CHROMIUM is None else None)

#: How long a page may take to show what a test waits for (the server runs beside other
#: tests on a small machine); not a measure of speed.
WAIT_MS = 15_000


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if WHY_NOT is None:
        return
    skip = pytest.mark.skip(reason=WHY_NOT)
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


# -- the server --------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    datacite = DataCiteServer()
    datacite.start()
    try:
        extra = """
[jobs]
poll_interval_seconds = 0.1

[downloads]
poll_seconds = 0.5

""" + datacite.config()
        for srv in demo_server("sqlite", tmp_path_factory.mktemp("browser"), extra):
            yield Portal(srv, datacite, busiest_scientist(srv))
    finally:
        datacite.stop()


@pytest.fixture(scope="session")
def facts(portal: Portal) -> Facts:
    mine = portal.rows(
        "SELECT i.id, i.title, ii.instrument_id, i.facility_id FROM INVESTIGATION i "
        "JOIN INVESTIGATIONUSER iu ON iu.investigation_id = i.id "
        "JOIN USER_ u ON iu.user_id = u.id "
        "JOIN INVESTIGATIONINSTRUMENT ii ON ii.investigation_id = i.id "
        "WHERE u.name = :user AND iu.role = 'PI' ORDER BY i.id", user=portal.scientist)
    assert len(mine) >= 2, f"{portal.scientist} is PI of fewer than two investigations"
    inv, title, instrument, facility = mine[0]
    cycles = portal.rows("SELECT facilitycycle_id FROM INVESTIGATIONFACILITYCYCLE "
                         "WHERE investigation_id = :inv ORDER BY id", inv=inv)
    [(dataset, dataset_name)] = portal.rows(
        "SELECT ds.id, ds.name FROM DATASET ds JOIN DATAFILE df ON df.dataset_id = ds.id "
        "WHERE ds.investigation_id = :inv GROUP BY ds.id, ds.name HAVING COUNT(*) > 1 "
        "ORDER BY COUNT(*), ds.id LIMIT 1", inv=inv)
    files = [(int(i), str(n), int(z)) for i, n, z in portal.rows(
        "SELECT id, name, fileSize FROM DATAFILE WHERE dataset_id = :ds ORDER BY id",
        ds=dataset)]
    # The word to search for: of a title, and in the most investigations' titles and
    # summaries (so that the search finds several, on more than one instrument).
    every = portal.rows("SELECT title, summary FROM INVESTIGATION")
    texts = [f"{t} {s or ''}".lower() for t, s in every]
    in_titles = {w for t, _ in every for w in re.findall(r"[a-z]{5,}", t.lower())}
    word = max(sorted(in_titles), key=lambda w: sum(w in text for text in texts))
    return Facts(facility=facility, investigation=inv, title=title, instrument=instrument,
                 cycle=cycles[0][0] if cycles else None, dataset=dataset,
                 dataset_name=dataset_name, datafiles=files, to_mint=mine[-1][0],
                 word=word)


@pytest.fixture(scope="session")
def published(portal: Portal, facts: Facts) -> Published:
    """Two investigations (neither the scientist's examples) minted by root through
    /publishing; the second withdrawn (its landing page becomes a tombstone)."""
    others = portal.rows("SELECT id, title FROM INVESTIGATION WHERE id NOT IN (:a, :b) "
                         "ORDER BY id LIMIT 2", a=facts.investigation, b=facts.to_mint)
    root = portal.srv.login("root")
    auth = {"Authorization": f"Bearer {root}"}

    def settle(doi: str, state: str) -> None:
        def now() -> str:
            r = portal.srv.http.get(f"/publishing/dois/{doi}", headers=auth)
            assert r.status_code == 200, r.text
            return str(r.json()["state"])
        wait_until(lambda: now() == state, 60, f"DOI {doi} to become {state}", step=0.1,
                   detail=lambda: portal.srv.log_text()[-3000:])

    dois = []
    for inv, _ in others:
        r = portal.srv.http.post(f"/publishing/investigations/{inv}", headers=auth)
        assert r.status_code == 202, r.text
        dois.append(str(r.json()["doi"]))
        settle(dois[-1], "findable")
    reason = "Recorded twice: see the later visit"
    r = portal.srv.http.post(f"/publishing/dois/{dois[1]}/withdraw", headers=auth,
                             json={"reason": reason})
    assert r.status_code == 202, r.text
    settle(dois[1], "registered")
    return Published(dois[0], others[0][1], dois[1], reason)


# -- the browser -------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    from playwright.sync_api import expect

    assert CHROMIUM is not None
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    expect.set_options(timeout=WAIT_MS)
    yield b
    b.close()


@pytest.fixture
def contexts(request: pytest.FixtureRequest, browser: Browser, portal: Portal
             ) -> Iterator[Contexts]:
    """Makes fresh browser contexts on the portal (``contexts(**options)``: Playwright's
    new_context options, e.g. a phone viewport or ``storage_state``); each page opened in them
    is watched for trouble (:class:`support.Trouble`), checked when the test ends."""
    made: list[tuple[BrowserContext, Trouble]] = []

    def make(**options: Any) -> BrowserContext:
        context = browser.new_context(base_url=portal.url, **{**DESKTOP, **options})
        context.set_default_timeout(WAIT_MS)
        trouble = Trouble()
        context.on("page", trouble.watch)
        context.trouble = trouble  # type: ignore[attr-defined]
        made.append((context, trouble))
        return context

    yield make
    if request.node.stash.get(_FAILED, False):
        folder = ARTEFACTS / "failures"
        folder.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^\w.-]+", "_", request.node.name)
        for n, (context, _) in enumerate(made):
            for m, page in enumerate(context.pages):
                try:
                    page.screenshot(path=str(folder / f"{name}-{n}-{m}.png"), full_page=True)
                except Exception:  # a picture of a failure is a courtesy
                    continue
    troubles = [t for _, t in made]
    for context, _ in made:
        context.close()
    if not request.node.stash.get(_FAILED, False):
        for trouble in troubles:
            trouble.check()


@pytest.fixture
def page(contexts: Contexts) -> Page:
    """A page in a fresh desktop-sized context, signed in as nobody."""
    return contexts().new_page()


@pytest.fixture(scope="session")
def signed_in(browser: Browser, portal: Portal) -> Callable[[str], dict[str, Any]]:
    """``signed_in(user)``: cookies of a session signed in through the sign-in page (once per
    user and test session), for contexts of tests that do not sign out."""
    states: dict[str, dict[str, Any]] = {}

    def state(user: str) -> dict[str, Any]:
        if user not in states:
            context = browser.new_context(base_url=portal.url)
            context.set_default_timeout(WAIT_MS)
            page = context.new_page()
            sign_in(page, user, ROOT[1] if user == ROOT[0] else DEMO_PASSWORD)
            states[user] = dict(context.storage_state())
            context.close()
        return states[user]

    return state
