"""The portal's cart, downloads page and direct downloads over real HTTP, as a person's
browser uses them: forms with their CSRF tokens, the status JSON the page's script polls,
the ready link, and files and zips compared byte for byte with what ``/ids/getData`` gives
the same user.

The server runs the `cairn demo` catalogue with two transports: ``https`` (served by Cairn:
a download becomes ready on its own) and ``globus`` (left RESTORING for an outside agent, so
a download stays under way long enough to be paused and resumed).
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import func, select

from cairn.db.tables import TABLES
from cairn.publishing.reading import human_size
from tests.conftest import BACKENDS, make_database
from tests.integration.ids_support import Ids
from tests.integration.portal_support import (
    Browser,
    busiest_scientist,
    demo_server,
    visible_text,
)
from tests.integration.server import Server
from tests.integration.test_downloads_twolevel_http import _count_files as count_files
from tests.integration.test_downloads_twolevel_http import config as twolevel_config
from tests.integration.topcat_support import Catalogue, build
from tests.waiting import wait_until

CONFIG = """
[downloads]
poll_seconds = 0.5
[downloads.transports.https]
display_name = "HTTPS"
description = "Download through your browser"
[downloads.transports.globus]
display_name = "Globus"
description = "A transfer to your Globus endpoint"
"""

_ROW = re.compile(r'<tr id="cart-item-(\d+)" data-entity="(\w+) (\d+)">(.*?)</tr>', re.S)
_DATA = re.compile(r'<data value="(\d+)">')


@pytest.fixture(scope="module", params=BACKENDS)
def srv(request: pytest.FixtureRequest,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from demo_server(str(request.param), tmp_path_factory.mktemp("portal-downloads"),
                           extra_config=CONFIG)


# -- what the catalogue holds ------------------------------------------------------------------

INV, DS, DF, IU, U = (TABLES.entity[n] for n in ("Investigation", "Dataset", "Datafile",
                                               "InvestigationUser", "User"))


@dataclass
class Picks:
    """A scientist's private data: a whole investigation, a dataset and a datafile of
    another (not overlapping), and the investigation's datafiles."""

    user: str
    investigation: int
    dataset: int
    datafile: int
    #: Every located datafile of each pick.
    files: dict[str, list[File]]


@dataclass(frozen=True)
class File:
    id: int
    name: str
    size: int
    location: str


def located(conn: Any, where: Any) -> list[File]:
    q = (select(DF.c.id, DF.c.name, DF.c.fileSize, DF.c.location)
         .select_from(DF.join(DS, DF.c.dataset == DS.c.id))
         .where(where, DF.c.location.is_not(None)).order_by(DF.c.id))
    return [File(int(r[0]), str(r[1]), int(r[2] or 0), str(r[3])) for r in conn.execute(q)]


def picks(srv: Server) -> Picks:
    """The busiest scientist's two smallest private investigations with data (private:
    released in 2199, see portal_support.demo_server)."""
    user = busiest_scientist(srv)
    with srv.engine.connect() as conn:
        files = (select(func.count(DF.c.id)).select_from(DF.join(DS, DF.c.dataset == DS.c.id))
                 .where(DS.c.investigation == INV.c.id, DF.c.location.is_not(None))
                 .scalar_subquery())
        mine = [int(r[0]) for r in conn.execute(
            select(INV.c.id).select_from(INV.join(IU, IU.c.investigation == INV.c.id)
                                       .join(U, IU.c.user == U.c.id))
            .where(U.c.name == user, INV.c.id % 3 != 0, files > 0)
            .order_by(files, INV.c.id))]
        assert len(mine) >= 2, f"{user} is on fewer than two private investigations with data"
        whole, other = mine[0], mine[1]
        datasets = [int(r[0]) for r in conn.execute(
            select(DS.c.id).where(DS.c.investigation == other).order_by(DS.c.id))
            if located(conn, DF.c.dataset == r[0])]
        assert len(datasets) >= 2, f"investigation {other} has fewer than two datasets"
        dataset, holder = datasets[0], datasets[1]
        datafile = located(conn, DF.c.dataset == holder)[0].id
        return Picks(user, whole, dataset, datafile, {
            "investigation": located(conn, DS.c.investigation == whole),
            "dataset": located(conn, DF.c.dataset == dataset),
            "datafile": located(conn, DF.c.id == datafile)})


# -- a person's browser -------------------------------------------------------------------------


def signed_in(factory: Any, srv: Server, user: str, password: str = "demo") -> Browser:
    b: Browser = factory(srv)
    r = b.sign_in(user, password)
    assert r.status_code == 200 and r.url.path == "/", r.text[:300]
    return b


def add(b: Browser, kind: str, entity_id: int, back: str = "/cart") -> httpx.Response:
    """The add-to-cart button's form (cart_macros.add_to_cart), sent from a page."""
    b.get("/cart")
    return b.post("/cart/add", {"entityType": kind.capitalize(), "entityId": entity_id,
                                "next": back})


def empty_cart(b: Browser) -> None:
    b.get("/cart")
    r = b.post("/cart/remove", {"all": "1"})
    assert r.status_code == 200 and cart_rows(r.text) == {}


def cart_rows(html: str) -> dict[tuple[str, int], dict[str, Any]]:
    """(type, id) -> {"item": cart item id, "size": bytes shown, "text": what one reads}."""
    out = {}
    for item, kind, entity_id, body in _ROW.findall(html):
        sizes = _DATA.findall(body)
        out[(kind, int(entity_id))] = {"item": int(item),
                                       "size": int(sizes[0]) if sizes else None,
                                       "text": visible_text(body)}
    return out


def status(b: Browser, *ids: int) -> dict[str, Any]:
    r = b.get("/downloads/status", params={"ids": ",".join(map(str, ids))})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    answer: dict[str, Any] = r.json()
    return answer


def await_state(b: Browser, download_id: int, *states: str) -> dict[str, Any]:
    def news() -> dict[str, Any] | None:
        d = status(b, download_id)["downloads"].get(str(download_id))
        return d if d is not None and d["state"] in states else None
    found = wait_until(news, 60, f"download {download_id} to be {states}",
                       detail=lambda: status(b, download_id))
    assert found is not None
    return found


def getdata_bytes(srv: Server, sid: str, datafile: int) -> bytes:
    r = srv.http.get("/ids/getData", params={"sessionId": sid, "datafileIds": datafile})
    assert r.status_code == 200, r.text[:300]
    return r.content


def zip_entries(data: bytes) -> list[tuple[str, bytes]]:
    """(base name, bytes) of each entry, sorted (names repeat across datasets)."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.testzip() is None
        return sorted((i.filename.rsplit("/", 1)[-1], z.read(i)) for i in z.infolist())


def expected(srv: Server, sid: str, *files: list[File]) -> list[tuple[str, bytes]]:
    """(name, bytes) of the datafiles, sorted, as main storage holds them (the demo's
    storage is the folder data/main of the server's; its locations are plain paths). The
    first of each list is checked against what /ids/getData gives ``sid``."""
    main = srv.config.parent / "data" / "main"
    out = []
    for batch in files:
        for f in batch:
            out.append((f.name, (main / f.location).read_bytes()))
        assert out[-len(batch)][1] == getdata_bytes(srv, sid, batch[0].id)
    return sorted(out)


# -- the tests ----------------------------------------------------------------------------------


def test_cart_to_download_to_the_exact_bytes(srv: Server, browser_factory: Any) -> None:
    p = picks(srv)
    b = signed_in(browser_factory, srv, p.user)
    sid = b.http.cookies["cairn_session"]
    empty_cart(b)  # a cart of an earlier test of this module
    # Each kind, from the add-to-cart form, back to the page it came from with a notice.
    for kind in ("investigation", "dataset", "datafile"):
        r = add(b, kind, getattr(p, kind), back=f"/cart?from={kind}")
        assert r.status_code == 200 and r.url.path == "/cart", r.text[:500]
        assert r.url.params["from"] == kind
        assert f"Added {kind}" in visible_text(r.text)
    rows = cart_rows(b.get("/cart").text)
    assert set(rows) == {("investigation", p.investigation), ("dataset", p.dataset),
                         ("datafile", p.datafile)}
    # Sizes as the catalogue sums them, in bytes and as people read them.
    for kind, files in p.files.items():
        row = rows[(kind, getattr(p, kind))]
        total = sum(f.size for f in files)
        assert row["size"] == total and human_size(total) in row["text"]
    page = visible_text(b.page)
    count = sum(len(f) for f in p.files.values())
    size = sum(f.size for batch in p.files.values() for f in batch)
    totals = re.search(r'<p class="cart-totals"[^>]*>(.*?)</p>', b.page, re.S)
    assert totals and [int(v) for v in _DATA.findall(totals.group(1))] == [count, size]
    assert f"3 items: {count} files" in page and f"{human_size(size)} in all" in page
    # Something the cart already holds whole is not added twice.
    r = add(b, "datafile", p.files["investigation"][0].id)
    assert "Already in your cart, as part of investigation" in visible_text(r.text)
    assert len(cart_rows(r.text)) == 3
    # Remove one with its own button; put it back.
    r = b.post("/cart/remove", {"item": rows[("datafile", p.datafile)]["item"]})
    assert r.url.path == "/cart" and "Removed 1 item" in visible_text(r.text)
    assert ("datafile", p.datafile) not in cart_rows(r.text)
    add(b, "datafile", p.datafile)
    # A refused submit (no such address) keeps the cart and what was typed.
    b.get("/cart")
    r = b.post("/cart/submit", {"fileName": "portal-zip", "transport": "https",
                                "email": "not-an-address"})
    assert r.status_code == 400 and "is not an e-mail address" in visible_text(r.text)
    assert len(cart_rows(r.text)) == 3 and 'value="portal-zip"' in r.text
    # Submitted: the cart is emptied and the download is on the downloads page.
    # A name beyond Latin-1 travels in the notice (its cookie is percent-encoded).
    r = b.post("/cart/submit", {"fileName": "portal-zip-δ", "transport": "https", "email": ""})
    assert r.status_code == 200 and r.url.path == "/downloads", r.text[:500]
    m = re.search(r'<tr id="download-(\d+)"', r.text)
    assert m, r.text[:2000]
    download_id = int(m.group(1))
    assert '"portal-zip-δ" has been submitted' in visible_text(r.text)
    assert cart_rows(b.get("/cart").text) == {}
    assert "Your cart is empty" in visible_text(b.page)
    # The status JSON moves it on to ready, with the cells the page shows.
    ready = await_state(b, download_id, "ready")
    assert ready["pending"] is False
    link = re.search(r'href="([^"]+)"', ready["cells"]["fetch"])
    assert link, ready["cells"]["fetch"]
    url = unescape(link.group(1))
    # The link is the download manager's resumable one: a prepared id, never the session.
    assert url.startswith("/ids/getData?") and sid not in url
    query = parse_qs(urlsplit(url).query)
    assert query["outname"] == ["portal-zip-δ"] and "sessionId" not in query
    page = b.get("/downloads").text
    assert url in unescape(page) and sid not in page
    want = expected(srv, sid, *p.files.values())
    # Fetched without any cookie: the prepared id is enough, and it resumes.
    got = srv.http.get(url)
    assert got.status_code == 200 and got.headers["accept-ranges"] == "bytes"
    assert zip_entries(got.content) == want
    tail = srv.http.get(url, headers={"Range": "bytes=100-"})
    assert tail.status_code == 206 and tail.content == got.content[100:]
    # Every byte has gone out: delivered, with the progress to show it.
    done = await_state(b, download_id, "delivered")
    assert f"{human_size(len(got.content))} of {human_size(len(got.content))} sent" \
        in visible_text(done["cells"]["progress"])
    # The home page lists it, linking to its row.
    assert f'href="/downloads#download-{download_id}"' in b.get("/").text
    # Removed: gone from the list.
    b.get("/downloads")
    r = b.post("/downloads/remove", {"id": download_id})
    assert r.url.path == "/downloads" and f'id="download-{download_id}"' not in r.text
    assert 'Removed "portal-zip-δ"' in visible_text(r.text)


def test_a_transfer_left_to_an_agent_can_be_paused_and_resumed(
        srv: Server, browser_factory: Any) -> None:
    p = picks(srv)
    b = signed_in(browser_factory, srv, p.user)
    empty_cart(b)
    add(b, "datafile", p.datafile)
    page = b.get("/cart").text
    # Both transports are offered, with their names.
    assert 'value="https"' in page and 'value="globus"' in page and "Globus" in page
    r = b.post("/cart/submit", {"fileName": "by-globus", "transport": "globus"})
    download_id = int(re.search(r'<tr id="download-(\d+)"', r.text).group(1))  # type: ignore[union-attr]
    d = await_state(b, download_id, "restoring")
    assert d["pending"] is True and "Transferring" in d["cells"]["state"]
    row = re.search(rf'<tr id="download-{download_id}"[^>]*>', b.get("/downloads").text)
    assert row and 'data-pending="1"' in row.group(0)
    r = b.post("/downloads/pause", {"id": download_id})
    assert 'Paused "by-globus"' in visible_text(r.text)
    assert status(b, download_id)["downloads"][str(download_id)]["state"] == "paused"
    b.get("/downloads")
    b.post("/downloads/resume", {"id": download_id})
    assert await_state(b, download_id, "restoring")["state"] == "restoring"
    # Someone else neither sees it in the status JSON nor can touch it.
    other = signed_in(browser_factory, srv, "simple/root", "secret")
    assert status(other, download_id)["downloads"] == {}
    other.get("/downloads")
    r = other.post("/downloads/remove", {"id": download_id})
    assert r.status_code == 404
    assert str(download_id) in status(b, download_id)["downloads"]


def test_a_file_downloads_as_itself(srv: Server, browser_factory: Any) -> None:
    p = picks(srv)
    b = signed_in(browser_factory, srv, p.user)
    sid = b.http.cookies["cairn_session"]
    datafile, name = p.files["datafile"][0].id, p.files["datafile"][0].name
    want = getdata_bytes(srv, sid, datafile)
    r = b.get(f"/download/datafile/{datafile}")
    assert r.status_code == 200 and r.content == want
    assert r.headers["content-disposition"] == f'attachment; filename="{name}"'
    assert r.headers["x-content-type-options"] == "nosniff"
    assert int(r.headers["content-length"]) == len(want)
    part = b.get(f"/download/datafile/{datafile}", headers={"Range": "bytes=5-14"})
    assert part.status_code == 206 and part.content == want[5:15]
    assert part.headers["content-range"] == f"bytes 5-14/{len(want)}"
    head = b.http.head(f"/download/datafile/{datafile}")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(want)


def test_a_dataset_and_an_investigation_download_as_zips(srv: Server,
                                                         browser_factory: Any) -> None:
    p = picks(srv)
    b = signed_in(browser_factory, srv, p.user)
    sid = b.http.cookies["cairn_session"]
    for kind in ("dataset", "investigation"):
        with b.http.stream("GET", f"/download/{kind}/{getattr(p, kind)}") as r:
            assert r.status_code == 200
            assert r.headers["content-disposition"].endswith('.zip"')
            body = r.read()
        assert zip_entries(body) == expected(srv, sid, p.files[kind])
        assert int(r.headers["content-length"]) == len(body)
        part = b.get(f"/download/{kind}/{getattr(p, kind)}",
                     headers={"Range": f"bytes={len(body) - 50}-"})
        assert part.status_code == 206 and part.content == body[-50:]


def test_nobody_downloads_or_carts_what_they_may_not_read(srv: Server,
                                                          browser_factory: Any) -> None:
    p = picks(srv)
    guest: Browser = browser_factory(srv)
    guest.get("/login")
    assert guest.post("/login", {"mechanism": "anon"}).url.path == "/"
    for kind in ("investigation", "dataset", "datafile"):
        r = guest.get(f"/download/{kind}/{getattr(p, kind)}")
        assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
        assert "Not allowed" in visible_text(r.text)
        r = add(guest, kind, getattr(p, kind))
        assert r.status_code == 403, r.text[:300]
    assert cart_rows(guest.get("/cart").text) == {}
    # Public data the guest may read, the guest may download.
    with srv.engine.connect() as conn:
        public = located(conn, DS.c.investigation % 3 == 0)[0].id
    assert guest.get(f"/download/datafile/{public}").status_code == 200
    # Signed out: the data is not sent, the sign-in page is.
    stranger: Browser = browser_factory(srv)
    r = stranger.get(f"/download/datafile/{p.datafile}")
    assert r.url.path == "/login"
    assert stranger.get("/downloads/status?ids=1").url.path == "/login"


def test_cart_forms_need_their_token(srv: Server, browser_factory: Any) -> None:
    p = picks(srv)
    b = signed_in(browser_factory, srv, p.user)
    empty_cart(b)
    form = {"entityType": "Dataset", "entityId": p.dataset, "next": "/cart"}
    r = b.post("/cart/add", form, csrf=False)
    assert r.status_code == 400 and "reload the page" in visible_text(r.text)
    r = b.post("/cart/add", {**form, "csrf": "forged"})
    assert r.status_code == 400
    r = b.http.post("/cart/add", data={**form, "csrf": b.csrf},
                    headers={"Origin": "https://evil.example"})
    assert r.status_code == 400
    assert cart_rows(b.get("/cart").text) == {}
    # With the page's token it works; removing and submitting need it too.
    add(b, "dataset", p.dataset)
    assert b.post("/cart/remove", {"all": "1"}, csrf=False).status_code == 400
    assert b.post("/cart/submit", {"fileName": "x"}, csrf=False).status_code == 400
    assert len(cart_rows(b.get("/cart").text)) == 1
    empty_cart(b)


def test_pages_are_labelled_and_the_page_polls_without_the_session(
        srv: Server, browser_factory: Any) -> None:
    p = picks(srv)
    b = signed_in(browser_factory, srv, p.user)
    sid = b.http.cookies["cairn_session"]
    empty_cart(b)
    add(b, "dataset", p.dataset)
    page = b.get("/cart").text
    # Every input has a label (or is hidden); the page's nav marks it current.
    for m in re.finditer(r"<input\b[^>]*>", page):
        tag = m.group(0)
        if 'type="hidden"' in tag:
            continue
        ident = re.search(r'id="([^"]+)"', tag)
        assert (ident and f'for="{ident.group(1)}"' in page) or "aria-label" in tag, tag
    assert '<a href="/cart" aria-current="page">' in page
    assert sid not in page
    r = b.post("/cart/submit", {"fileName": "labelled", "transport": "https"})
    table = re.search(r"<table[^>]*data-poll=\"([^\"]+)\"[^>]*>", r.text)
    assert table and table.group(1) == "/downloads/status"
    assert 'aria-live="polite"' in r.text and "Refresh" in visible_text(r.text)
    assert sid not in r.text
    js = b.get("/portal/static/cairn.js").text
    assert "table[data-poll]" in js and "selectAll" in js
    answer = json.dumps(status(b, *map(int, re.findall(r'<tr id="download-(\d+)"', r.text))))
    assert sid not in answer


# -- data in the archive (two-level storage) ----------------------------------------------------

TWO_LEVEL_FACILITY = "TAPE"


@dataclass
class Archived:
    server: Server
    cat: Catalogue


@pytest.fixture(scope="module", params=BACKENDS)
def archived(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Archived]:
    """The small catalogue of topcat_support on two-level storage, every file archived and
    taken off main storage."""
    tmp = tmp_path_factory.mktemp("portal-tape")
    url, drop = make_database(str(request.param), tmp, migrated=True)
    server = Server(tmp, url, extra_config=twolevel_config(tmp))
    try:
        cat = build(server, TWO_LEVEL_FACILITY)
        n = sum(len(v) for v in cat.files.values())
        wait_until(lambda: count_files(tmp / "archive") >= len(cat.ds), 60,
                   "every dataset to be written to the archive")
        assert count_files(tmp / "main") == n
        r = Ids(server).post("archive", sessionId=server.login("root"),
                             investigationIds=",".join(str(i) for i in cat.inv.values()))
        assert r.status_code == 204, r.text
        wait_until(lambda: count_files(tmp / "main") == 0, 60, "main storage to be emptied")
        yield Archived(server, cat)
    finally:
        server.stop()
        drop()  # type: ignore[operator]


def test_archived_data_is_a_page_offering_the_cart(archived: Archived,
                                                   browser_factory: Any) -> None:
    cat = archived.cat
    b = signed_in(browser_factory, archived.server, "simple/jdoe", "secret")
    sid = b.http.cookies["cairn_session"]
    dataset = cat.ds["A1"]
    r = b.get(f"/download/dataset/{dataset}")
    assert r.status_code == 503 and r.headers["content-type"].startswith("text/html")
    assert "This data is not online yet" in visible_text(r.text)
    # The page's own add-to-cart form, which goes on to the cart.
    form = re.search(r'<form class="inline add-to-cart"[^>]*>(.*?)</form>', r.text, re.S)
    assert form, r.text[:2000]
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">',
                             form.group(1)))
    assert fields["entityType"] == "dataset" and fields["entityId"] == str(dataset)
    assert fields["next"] == "/cart"
    r = b.post("/cart/add", {k: unescape(v) for k, v in fields.items()}, csrf=False)
    assert r.url.path == "/cart" and ("dataset", dataset) in cart_rows(r.text)
    r = b.post("/cart/submit", {"fileName": "from-tape", "transport": "https"})
    m = re.search(r'<tr id="download-(\d+)"', r.text)
    assert m, r.text[:2000]
    d = await_state(b, int(m.group(1)), "ready")
    url = unescape(re.search(r'href="([^"]+)"', d["cells"]["fetch"]).group(1))  # type: ignore[union-attr]
    got = archived.server.http.get(url)
    assert got.status_code == 200
    want = sorted(cat.content[f] for f in cat.files["A1"])
    assert zip_entries(got.content) == want
    # Restored, the data comes directly too.
    first = cat.files["A1"][0]
    r = wait_until(lambda: (x := b.get(f"/download/datafile/{first}")).status_code == 200
                   and x, 60, "the restored file to download directly")
    assert r.content == cat.content[first][1]
    assert sid not in url
