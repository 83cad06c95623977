"""What a scientist does with the portal, end to end in a real browser: browse from the
catalogue's front page down to a file, search with a facet, fill and submit a cart and follow
the download to delivered, download a file directly, mint a DOI (against the local DataCite
server) and open a withdrawn DOI's tombstone.

Each flow is skipped, saying which route is missing, until the pages it goes through exist.
The flows find their way by what a person sees: roles, labels, and the links of the portal's
URL contract (``/browse/dataset/{id}`` ...).
"""

from __future__ import annotations

import io
import re
import uuid
import zipfile
from typing import Any

import pytest

pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")

from playwright.sync_api import Page, expect

from cairn.publishing.reading import human_size
from tests.browser.support import (
    DEMO_PASSWORD,
    ROOT,
    Contexts,
    Facts,
    Portal,
    Published,
    needs,
    sign_in,
)
from tests.integration.datacite_server import Record
from tests.waiting import wait_until

#: How long a download may take to be prepared on the demo's small dataset.
PREPARE_MS = 60_000


def session_of(page: Page) -> str:
    """The catalogue session behind the page's cookie (the portal's session is ICAT's)."""
    [sid] = [c["value"] for c in page.context.cookies() if c["name"] == "cairn_session"]
    return sid


def follow(page: Page, href: str) -> None:
    """Click the page's link to ``href`` (in the page's main part), as a person would."""
    link = page.get_by_role("main").locator(f"a[href='{href}']").first
    expect(link).to_be_visible()
    link.click()
    expect(page).to_have_url(re.compile(re.escape(href) + r"([?#].*)?$"))


@needs("GET /browse", "GET /browse/facility/1", "GET /browse/instrument/1",
       "GET /browse/instrument/1/cycle/1", "GET /browse/investigation/1",
       "GET /browse/dataset/1", "GET /browse/datafile/1")
def test_browse_from_the_catalogue_down_to_a_file(page: Page, portal: Portal,
                                                  facts: Facts) -> None:
    sign_in(page, portal.scientist, DEMO_PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Browse").click()
    expect(page).to_have_url(re.compile(r"/browse$"))
    # facility -> instrument -> cycle -> investigation -> dataset -> datafile
    follow(page, f"/browse/facility/{facts.facility}")
    follow(page, f"/browse/instrument/{facts.instrument}")
    if facts.cycle is not None:
        follow(page, f"/browse/instrument/{facts.instrument}/cycle/{facts.cycle}")
    follow(page, f"/browse/investigation/{facts.investigation}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(facts.title)
    follow(page, f"/browse/dataset/{facts.dataset}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(facts.dataset_name)
    datafile, name, size = facts.datafiles[0]
    follow(page, f"/browse/datafile/{datafile}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)
    expect(page.get_by_role("main")).to_contain_text(human_size(size))
    # The breadcrumbs lead back up the same way, the file itself marked as here.
    crumbs = page.get_by_role("navigation", name="Breadcrumb")
    expect(crumbs.locator(f"a[href='/browse/dataset/{facts.dataset}']")).to_be_visible()
    expect(crumbs.locator(f"a[href='/browse/investigation/{facts.investigation}']")
           ).to_be_visible()
    expect(crumbs.locator("[aria-current=page]")).to_contain_text(name)
    crumbs.locator(f"a[href='/browse/dataset/{facts.dataset}']").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(facts.dataset_name)


@needs("GET /browse/datafile/1", "GET /download/datafile/1")
def test_download_a_file_directly(page: Page, portal: Portal, facts: Facts) -> None:
    sign_in(page, portal.scientist, DEMO_PASSWORD)
    datafile, name, size = facts.datafiles[0]
    page.goto(f"/browse/datafile/{datafile}")
    with page.expect_download() as waiting:
        page.get_by_role("main").get_by_role("link", name="Download").first.click()
    download = waiting.value
    assert download.failure() is None, download.failure()
    assert download.suggested_filename == name
    body = download.path().read_bytes()
    assert len(body) == size
    # The same bytes the data service gives this user.
    ids = portal.srv.http.get("/ids/getData", params={"sessionId": session_of(page),
                                                      "datafileIds": datafile})
    assert ids.status_code == 200 and ids.content == body


@needs("GET /search")
def test_search_then_narrow_with_a_facet(page: Page, portal: Portal, facts: Facts) -> None:
    sign_in(page, portal.scientist, DEMO_PASSWORD)
    box = page.get_by_role("search").first.get_by_role("searchbox")
    box.fill(facts.word)
    box.press("Enter")
    expect(page).to_have_url(re.compile(r"/search\?.*text=" + facts.word))
    hits = page.get_by_role("main").get_by_role("row").filter(
        has=page.locator("a[href^='/browse/investigation/']"))
    expect(hits.first).to_be_visible()
    before = hits.count()
    # A facet value with its count, fewer than the results: ticking it must leave exactly
    # that many.
    counted = re.compile(r"\((\d[\d,]*)\)")
    # the counts come after the page (search.js puts /search/facets in place)
    expect(page.locator("[data-facets]")).to_have_count(0)
    boxes = page.get_by_role("group").get_by_role("checkbox")
    choice = None
    for i in range(boxes.count()):
        label = boxes.nth(i).evaluate("e => e.labels.length ? e.labels[0].innerText : ''")
        found = counted.search(label)
        if found and 0 < int(found.group(1).replace(",", "")) < before:
            n = int(found.group(1).replace(",", ""))
            if choice is None or n < choice[1]:
                choice = (i, n, label)
    assert choice is not None, (f"no facet value counting fewer than the {before} results "
                                f"for {facts.word!r}")
    index, count, label = choice
    boxes.nth(index).check()
    page.get_by_role("button", name=re.compile(r"apply|filter", re.I)).first.click()
    expect(page).to_have_url(re.compile(r"/search\?"))
    expect(hits).to_have_count(count)
    expect(page.get_by_role("checkbox", name=label.strip(), exact=True)).to_be_checked()


@needs("GET /browse/dataset/1", "POST /cart/add", "GET /cart", "POST /cart/submit",
       "GET /downloads")
def test_fill_and_submit_a_cart_then_follow_the_download_to_delivered(
        page: Page, portal: Portal, facts: Facts) -> None:
    sign_in(page, portal.scientist, DEMO_PASSWORD)
    # Start from an empty cart (other tests of the session may have left things in it).
    r = portal.srv.http.delete("/topcat/user/cart/LSF/cartItems",
                               params={"sessionId": session_of(page), "items": "*"})
    assert r.status_code == 200, r.text

    page.goto(f"/browse/dataset/{facts.dataset}")
    page.get_by_role("button", name=f"Add to cart: dataset {facts.dataset}").first.click()
    # Back on the same page, with a notice saying so.
    expect(page).to_have_url(re.compile(rf"/browse/dataset/{facts.dataset}$"))
    expect(page.get_by_role("status").filter(has_text=re.compile("cart", re.I))
           ).to_be_visible()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Cart").click()
    item = page.get_by_role("row").filter(has_text=facts.dataset_name)
    expect(item).to_have_count(1)
    total = sum(size for _, _, size in facts.datafiles)
    expect(item).to_contain_text(human_size(total))

    name = f"browser-{uuid.uuid4().hex[:8]}"
    page.get_by_label("File name").fill(name)
    page.get_by_role("button", name=re.compile(r"^Submit")).click()
    if not page.url.endswith("/downloads"):
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Downloads").click()
    row = page.get_by_role("row").filter(has_text=name)
    expect(row).to_have_count(1)
    # No reload: the page updates itself until the zip can be fetched.
    fetch = row.get_by_role("link", name=re.compile(r"zip|download|get", re.I)).first
    expect(fetch).to_be_visible(timeout=PREPARE_MS)
    with page.expect_download() as waiting:
        fetch.click()
    download = waiting.value
    assert download.failure() is None, download.failure()
    with zipfile.ZipFile(io.BytesIO(download.path().read_bytes())) as z:
        sizes = sorted(info.file_size for info in z.infolist() if not info.is_dir())
    assert sizes == sorted(size for _, _, size in facts.datafiles)
    # Every byte has gone out: the download is delivered, and the page comes to say so.
    expect(row).to_contain_text(re.compile(r"delivered", re.I), timeout=PREPARE_MS)


@needs("GET /browse/investigation/1", "GET /publish/investigation/1",
       "POST /publish/investigation/1")
def test_mint_a_doi_from_the_investigation_page(page: Page, portal: Portal,
                                                facts: Facts) -> None:
    sign_in(page, portal.scientist, DEMO_PASSWORD)
    page.goto(f"/browse/investigation/{facts.to_mint}")
    page.get_by_role("main").get_by_role("link", name="Publish", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/publish/investigation/{facts.to_mint}$"))
    mint = page.get_by_role("button", name="Mint DOI")
    expect(mint).to_be_enabled()
    mint.click()
    prefix = re.escape(portal.datacite.prefix)
    expect(page.get_by_role("main")).to_contain_text(re.compile(prefix + r"/\S+"))
    doi = re.search(prefix + r"/[^\s<>\"]+", page.get_by_role("main").inner_text())
    assert doi is not None
    minted = doi.group(0).rstrip(".,;)")
    # DataCite got it, with this investigation's title.
    [title] = [r[0] for r in portal.rows("SELECT title FROM INVESTIGATION WHERE id = :i",
                                         i=facts.to_mint)]

    def findable() -> Record | None:
        record = portal.datacite.record(minted)
        return record if record is not None and record.state == "findable" else None

    record = wait_until(findable, 60, f"the DataCite server to have {minted} findable")
    assert record is not None
    assert title in str(record.attributes.get("titles")), record.attributes
    # Cairn records the state once DataCite has answered: the landing page follows.
    wait_until(lambda: portal.srv.http.get(f"/doi/{minted}").status_code == 200, 60,
               f"the landing page of {minted}")
    page.goto(f"/doi/{minted}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(title)


def test_a_withdrawn_doi_opens_as_a_tombstone(page: Page, published: Published) -> None:
    response = page.goto(f"/doi/{published.withdrawn}")
    assert response is not None and response.status == 200
    main = page.get_by_role("main")
    expect(main).to_contain_text("has been withdrawn")
    expect(main).to_contain_text(published.reason)
    # No data is offered any more.
    expect(page.locator("a[href*='/ids/'], a[href^='/download/']")).to_have_count(0)


def test_a_findable_doi_opens_its_landing_page(page: Page, published: Published) -> None:
    response = page.goto(f"/doi/{published.findable}")
    assert response is not None and response.status == 200
    expect(page.get_by_role("heading", level=1)).to_contain_text(published.findable_title)
    expect(page.get_by_role("main")).not_to_contain_text("has been withdrawn")


@needs("GET /browse/investigation/1", "GET /staff/access/investigation/1")
def test_staff_see_who_can_read_an_investigation(contexts: Contexts, signed_in: Any,
                                                 portal: Portal, facts: Facts) -> None:
    page = contexts(storage_state=signed_in(ROOT[0])).new_page()
    page.goto(f"/browse/investigation/{facts.investigation}")
    page.get_by_role("main").get_by_role("link", name="Who can see this").click()
    expect(page).to_have_url(re.compile(rf"/staff/access/investigation/{facts.investigation}"))
    expect(page.get_by_role("main")).to_contain_text(portal.scientist)
