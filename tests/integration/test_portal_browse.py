"""The portal's browse pages over real HTTP, on a catalogue `cairn demo` filled: following links
from /browse down to a datafile, keyset paging compared with the database, sorting, filters,
breadcrumbs, and what the rules hide from a scientist who is not on an investigation.

Tables show 5 rows a page here (``[portal] page_size``), so a dataset's files, a scientist's
investigations and an investigation's datasets all span several pages.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from html import unescape
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import and_, func, select, update

from cairn.db.tables import TABLES
from cairn.publishing.reading import human_size
from tests.conftest import BACKENDS
from tests.integration.portal_support import (
    Browser,
    busiest_scientist,
    demo_server,
    visible_text,
)
from tests.integration.server import Server

PAGE = 5

T = TABLES.entity
INV, IU, USER = T["Investigation"], T["InvestigationUser"], T["User"]
II, INS, FC = T["InvestigationInstrument"], T["Instrument"], T["FacilityCycle"]
DS, DF = T["Dataset"], T["Datafile"]


@pytest.fixture(scope="module", params=BACKENDS)
def srv(request: pytest.FixtureRequest,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from demo_server(str(request.param), tmp_path_factory.mktemp("portal-browse"),
                           extra_config=f"[portal]\npage_size = {PAGE}")


# -- reading pages --------------------------------------------------------------------------


def ids(html: str, kind: str) -> list[int]:
    """The ids of the ``kind`` rows a page links to, in the page's order."""
    return [int(x) for x in re.findall(rf'href="/browse/{kind}/(\d+)"', html)]


#: The word each table's pager names its rows with.
NOUNS = {"investigation": "investigations", "dataset": "datasets", "datafile": "files",
         "instrument": "instruments"}


def link(html: str, rel: str, kind: str) -> str | None:
    """The ``rel`` (next, prev) link of the pager of the table of ``kind`` rows."""
    pager = re.search(rf'<nav class="pager" aria-label="Pages of {NOUNS[kind]}">(.*?)</nav>',
                      html, re.S)
    found = re.search(rf'<a rel="{rel}" href="([^"]+)"', pager.group(1)) if pager else None
    return unescape(found.group(1)) if found else None


def crumbs(html: str) -> list[str]:
    nav = re.search(r'<nav class="crumbs" aria-label="Breadcrumb">(.*?)</nav>', html, re.S)
    assert nav, "the page has no breadcrumbs"
    return [visible_text(li) for li in re.findall(r"<li>(.*?)</li>", nav.group(1), re.S)]


def walk(b: Browser, path: str, kind: str, rel: str = "next") -> list[int]:
    """Every row of a table, page after page, following its ``rel`` links."""
    base = urlsplit(path).path
    seen: list[int] = []
    url: str | None = path
    pages = 0
    while url is not None:
        r = b.get(url)
        assert r.status_code == 200, (url, visible_text(r.text)[:500])
        rows = ids(r.text, kind)
        assert len(rows) <= PAGE and (rows or pages == 0), url
        seen += rows if rel == "next" else list(reversed(rows))
        following = link(r.text, rel, kind)
        url = base + following if following else None
        pages += 1
        assert pages < 500
    return seen if rel == "next" else list(reversed(seen))


def sign_in(browser_factory: Any, srv: Server, user: str | None = None) -> Browser:
    b: Browser = browser_factory(srv)
    if user is None or user.startswith("db/"):
        r = b.sign_in(user or busiest_scientist(srv))
    else:
        r = b.sign_in(user, "secret")
    assert r.status_code == 200
    return b


# -- the database, for comparison -------------------------------------------------------------


def rows(srv: Server, query: Any) -> list[Any]:
    with srv.engine.connect() as conn:
        return list(conn.execute(query))


def investigations_of(srv: Server, user: str) -> list[int]:
    return [r[0] for r in rows(srv, select(IU.c.investigation).join(USER, IU.c.user == USER.c.id)
                                   .where(USER.c.name == user))]


def biggest_dataset(srv: Server, investigations: list[int]) -> int:
    return int(rows(srv, select(DF.c.dataset).join(DS, DF.c.dataset == DS.c.id)
                    .where(DS.c.investigation.in_(investigations)).group_by(DF.c.dataset)
                    .order_by(func.count().desc(), DF.c.dataset).limit(1))[0][0])


def private_not_mine(srv: Server, user: str) -> int:
    """A private investigation (the fixture's ids not divisible by 3) ``user`` is not on."""
    mine = investigations_of(srv, user)
    return int(rows(srv, select(INV.c.id).where(INV.c.id % 3 != 0, INV.c.id.not_in(mine))
                    .order_by(INV.c.id).limit(1))[0][0])


def public_not_mine(srv: Server, user: str) -> int:
    mine = investigations_of(srv, user)
    return int(rows(srv, select(INV.c.id).where(INV.c.id % 3 == 0, INV.c.id.not_in(mine))
                    .order_by(INV.c.id).limit(1))[0][0])


# -- the tests --------------------------------------------------------------------------------


def test_a_scientist_browses_from_browse_to_a_datafile(srv: Server, browser_factory: Any
                                                       ) -> None:
    user = busiest_scientist(srv)
    b = sign_in(browser_factory, srv, user)
    inv_id = investigations_of(srv, user)[0]
    ins_id, ins_name = rows(srv, select(INS.c.id, INS.c.name).join(II, II.c.instrument == INS.c.id)
                            .where(II.c.investigation == inv_id))[0]
    start = rows(srv, select(INV.c.startDate).where(INV.c.id == inv_id))[0][0]
    cycle_id, cycle_name = rows(srv, select(FC.c.id, FC.c.name).where(
        and_(FC.c.startDate <= start, FC.c.endDate >= start)))[0]

    r = b.get("/browse")
    assert r.status_code == 200
    assert 'aria-current="page">Browse' in r.text  # the main menu marks where we are
    facility = re.search(r'href="(/browse/facility/\d+)"', r.text)
    assert facility and f'href="/browse/instrument/{ins_id}"' in r.text
    r = b.get(facility.group(1))
    assert r.status_code == 200 and crumbs(r.text)[0] == "Browse"
    assert ins_id in walk(b, facility.group(1), "instrument")  # its instruments, paged

    r = b.get(f"/browse/instrument/{ins_id}")
    cycle = f"/browse/instrument/{ins_id}/cycle/{cycle_id}"
    assert r.status_code == 200 and f'href="{cycle}"' in r.text
    r = b.get(cycle)
    assert r.status_code == 200
    assert inv_id in ids(r.text, "investigation")
    assert crumbs(r.text)[-2:] == [ins_name, cycle_name]

    r = b.get(f"/browse/investigation/{inv_id}")
    assert r.status_code == 200
    datasets = ids(r.text, "dataset")
    assert datasets
    r = b.get(f"/browse/dataset/{datasets[0]}")
    assert r.status_code == 200
    files = ids(r.text, "datafile")
    assert files
    r = b.get(f"/browse/datafile/{files[0]}")
    assert r.status_code == 200
    name, location, size, checksum = rows(srv, select(
        DF.c.name, DF.c.location, DF.c.fileSize, DF.c.checksum).where(DF.c.id == files[0]))[0]
    text = visible_text(r.text)
    assert name in text and location in text and checksum in text
    assert f"{human_size(size)} ({size:,} bytes)" in text
    # The way back: every parent, the cycle the investigation started in included.
    inv_name, visit = rows(srv, select(INV.c.name, INV.c.visitId).where(INV.c.id == inv_id))[0]
    ds_name = rows(srv, select(DS.c.name).where(DS.c.id == datasets[0]))[0][0]
    assert crumbs(r.text) == ["Browse", "LSF", ins_name, cycle_name, f"{inv_name} visit {visit}",
                              ds_name, name]
    assert f'href="/browse/dataset/{datasets[0]}"' in r.text
    assert f'href="/browse/investigation/{inv_id}"' in r.text
    assert re.search(rf'<span aria-current="page">{re.escape(name)}</span>', r.text)


def test_datafiles_page_by_keyset_exactly_as_the_database_orders_them(
        srv: Server, browser_factory: Any) -> None:
    user = busiest_scientist(srv)
    b = sign_in(browser_factory, srv, user)
    ds = biggest_dataset(srv, investigations_of(srv, user))
    by_name = [r[0] for r in rows(srv, select(DF.c.id).where(DF.c.dataset == ds)
                                  .order_by(DF.c.name, DF.c.id))]
    assert len(by_name) > 3 * PAGE

    first = b.get(f"/browse/dataset/{ds}")
    assert ids(first.text, "datafile") == by_name[:PAGE]
    assert f"{PAGE} files on this page of {len(by_name)}" in visible_text(first.text)
    nxt = link(first.text, "next", "datafile")
    assert nxt is not None and "after=" in nxt and "offset" not in nxt
    second = b.get(f"/browse/dataset/{ds}{nxt}")
    # The second page continues exactly where the first ended.
    assert ids(second.text, "datafile") == by_name[PAGE:2 * PAGE]
    assert link(second.text, "prev", "datafile") is not None

    # All pages: every file once, in order; and back again from the last page.
    assert walk(b, f"/browse/dataset/{ds}", "datafile") == by_name
    last = f"/browse/dataset/{ds}?after={by_name[-2]}&at=" + rows(
        srv, select(DF.c.name).where(DF.c.id == by_name[-2]))[0][0]
    tail = b.get(last)
    assert ids(tail.text, "datafile") == by_name[-1:]
    assert link(tail.text, "next", "datafile") is None
    assert walk(b, last, "datafile", rel="prev") == by_name

    # Largest first, ties by id: as the database sorts them.
    by_size = [r[0] for r in rows(srv, select(DF.c.id).where(DF.c.dataset == ds)
                                  .order_by(DF.c.fileSize.desc(), DF.c.id.desc()))]
    page = b.get(f"/browse/dataset/{ds}?sort=size")
    assert 'aria-sort="descending"' in page.text
    assert walk(b, f"/browse/dataset/{ds}?sort=size", "datafile") == by_size
    assert walk(b, f"/browse/dataset/{ds}?sort=size&order=asc", "datafile") == list(
        reversed(by_size))
    # Sizes are written for people.
    sizes = dict(rows(srv, select(DF.c.id, DF.c.fileSize).where(DF.c.id.in_(by_size[:PAGE]))))
    text = visible_text(page.text)
    assert all(human_size(sizes[i]) in text for i in by_size[:PAGE])


def test_keyset_paging_keeps_nulls_and_ties_in_place(srv: Server, browser_factory: Any
                                                    ) -> None:
    """Sorted by a column with NULLs and equal values (ties broken by id), every row still
    comes exactly once: NULLs first ascending, last descending, as the catalogue orders."""
    user = busiest_scientist(srv)
    b = sign_in(browser_factory, srv, user)
    mine = investigations_of(srv, user)
    ds = rows(srv, select(DF.c.dataset).join(DS, DF.c.dataset == DS.c.id)
              .where(DS.c.investigation.in_(mine)).group_by(DF.c.dataset)
              .having(func.count() > 3 * PAGE).order_by(DF.c.dataset.desc()).limit(1))[0][0]
    files = [r[0] for r in rows(srv, select(DF.c.id).where(DF.c.dataset == ds)
                                .order_by(DF.c.id))]
    with srv.engine.begin() as conn:
        conn.execute(update(DF).where(DF.c.id.in_(files[1:13:2]))
                     .values(datafileCreateTime=None))
        conn.execute(update(DF).where(DF.c.id.in_(files[2:14:2]))
                     .values(datafileCreateTime=datetime(2020, 5, 4, 3, 2, 1, 250000)))
    stored = rows(srv, select(DF.c.id, DF.c.datafileCreateTime).where(DF.c.dataset == ds))
    ascending = [i for _, _, i in sorted((t is not None, t or datetime.min, i)
                                         for i, t in stored)]
    nulls, dated = ([i for i in ascending if i in {x for x, t in stored if t is None}],
                    [i for i in ascending if i not in {x for x, t in stored if t is None}])
    descending = list(reversed(dated)) + list(reversed(nulls))
    assert walk(b, f"/browse/dataset/{ds}?sort=created&order=asc", "datafile") == ascending
    assert walk(b, f"/browse/dataset/{ds}?sort=created", "datafile") == descending
    # Backwards too, from the row after the last one.
    last = descending[-1]
    assert walk(b, f"/browse/dataset/{ds}?sort=created&before={last}", "datafile",
                rel="prev") == descending[:-1]


def test_my_investigations_sort_and_page(srv: Server, browser_factory: Any) -> None:
    user = busiest_scientist(srv)
    b = sign_in(browser_factory, srv, user)
    mine = investigations_of(srv, user)
    assert len(mine) > PAGE
    newest = [r[0] for r in rows(srv, select(INV.c.id).where(INV.c.id.in_(mine))
                                 .order_by(INV.c.startDate.desc(), INV.c.id.desc()))]
    assert walk(b, "/browse/mine", "investigation") == newest
    by_title = [r[0] for r in rows(srv, select(INV.c.id).where(INV.c.id.in_(mine))
                                   .order_by(INV.c.title, INV.c.id))]
    r = b.get("/browse/mine?sort=title")
    assert re.search(r'<th scope="col" aria-sort="ascending"><a href="[^"]*">Title', r.text)
    assert walk(b, "/browse/mine?sort=title", "investigation") == by_title
    # The sort links keep the filter and start again from the first page.
    r = b.get("/browse/mine?q=a&sort=title&after=1&at=A")
    heads = re.findall(r'<th scope="col"[^>]*><a href="([^"]+)"', r.text)
    assert heads and all("q=a" in unescape(h) and "after" not in h for h in heads)


def test_filters_match_names_containing_the_text(srv: Server, browser_factory: Any) -> None:
    user = busiest_scientist(srv)
    b = sign_in(browser_factory, srv, user)
    ds = biggest_dataset(srv, investigations_of(srv, user))
    expected = [r[0] for r in rows(srv, select(DF.c.id).where(
        DF.c.dataset == ds, func.lower(DF.c.name).like("%0001%")).order_by(DF.c.name, DF.c.id))]
    assert expected
    assert walk(b, f"/browse/dataset/{ds}?q=0001", "datafile") == expected
    r = b.get(f"/browse/dataset/{ds}?q=0001")
    assert 'value="0001"' in r.text and "Show all" in r.text
    # Wildcards are text: "%" matches a "%" in a name, and no name has one.
    r = b.get(f"/browse/dataset/{ds}?q=%25")
    assert r.status_code == 200 and ids(r.text, "datafile") == []
    assert "No files match" in visible_text(r.text)
    for hostile in ("%27%20OR%201=1%20--", "%5C", "%00%27"):  # ' OR 1=1 --, \, NUL '
        r = b.get(f"/browse/dataset/{ds}?q={hostile}")
        assert r.status_code == 200 and ids(r.text, "datafile") == [], hostile
    # "_" is an underscore, not any one character.
    named = rows(srv, select(DF.c.id, DF.c.name).where(DF.c.dataset == ds)
                 .order_by(DF.c.name, DF.c.id))
    assert walk(b, f"/browse/dataset/{ds}?q=0_", "datafile") == [
        i for i, n in named if "0_" in n]
    # Investigations by title, any case.
    mine = investigations_of(srv, user)
    title = rows(srv, select(INV.c.title).where(INV.c.id == mine[0]))[0][0]
    word = title.split()[-1].upper()
    shown = walk(b, f"/browse/mine?q={word}", "investigation")
    fields = rows(srv, select(INV.c.id, INV.c.title, INV.c.name, INV.c.visitId)
                  .where(INV.c.id.in_(mine)))
    assert mine[0] in shown
    assert sorted(shown) == sorted(i for i, *texts in fields
                                   if any(word.lower() in (t or "").lower() for t in texts))


def test_a_non_member_gets_no_private_investigation(srv: Server, browser_factory: Any) -> None:
    user = busiest_scientist(srv)
    b = sign_in(browser_factory, srv, user)
    private = private_not_mine(srv, user)
    r = b.get(f"/browse/investigation/{private}")
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
    assert "Not allowed" in visible_text(r.text)
    ds = rows(srv, select(DS.c.id).where(DS.c.investigation == private).limit(1))[0][0]
    assert b.get(f"/browse/dataset/{ds}").status_code == 403
    df = rows(srv, select(DF.c.id).where(DF.c.dataset == ds).limit(1))[0][0]
    assert b.get(f"/browse/datafile/{df}").status_code == 403
    # Nor is it listed on its instrument's page, nor on its cycle's; root sees it there.
    ins = rows(srv, select(II.c.instrument).where(II.c.investigation == private))[0][0]
    assert private not in walk(b, f"/browse/instrument/{ins}", "investigation")
    root = sign_in(browser_factory, srv, "simple/root")
    assert private in walk(root, f"/browse/instrument/{ins}", "investigation")
    assert root.get(f"/browse/investigation/{private}").status_code == 200
    assert private not in walk(b, "/browse/mine", "investigation")


def test_public_investigations_are_visible_to_everyone(srv: Server, browser_factory: Any
                                                       ) -> None:
    user = busiest_scientist(srv)
    public = public_not_mine(srv, user)
    ins = rows(srv, select(II.c.instrument).where(II.c.investigation == public))[0][0]
    title = rows(srv, select(INV.c.title).where(INV.c.id == public))[0][0]
    b = sign_in(browser_factory, srv, user)
    assert public in walk(b, f"/browse/instrument/{ins}", "investigation")
    r = b.get(f"/browse/investigation/{public}")
    assert r.status_code == 200 and title in visible_text(r.text)
    # A guest too, and a guest reads no private one.
    guest: Browser = browser_factory(srv)
    guest.get("/login")
    assert guest.post("/login", {"mechanism": "anon"}).status_code == 200
    assert guest.get(f"/browse/investigation/{public}").status_code == 200
    listed = walk(guest, f"/browse/instrument/{ins}", "investigation")
    assert public in listed and all(i % 3 == 0 for i in listed)
    assert guest.get(f"/browse/investigation/{private_not_mine(srv, user)}").status_code == 403


def test_investigation_page_shows_people_samples_and_parameters(
        srv: Server, browser_factory: Any) -> None:
    user = busiest_scientist(srv)
    b = sign_in(browser_factory, srv, user)
    inv_id = investigations_of(srv, user)[0]
    r = b.get(f"/browse/investigation/{inv_id}")
    text = visible_text(r.text)
    sample, st, ipar, pt = (T[n] for n in ("Sample", "SampleType", "InvestigationParameter",
                                           "ParameterType"))
    samples = rows(srv, select(sample.c.name, st.c.name).join(st, sample.c.type == st.c.id)
                   .where(sample.c.investigation == inv_id))
    assert samples and all(n in text and t in text for n, t in samples)
    params = rows(srv, select(pt.c.name, pt.c.description, ipar.c.numericValue,
                              ipar.c.stringValue, pt.c.units)
                  .join(pt, ipar.c.type == pt.c.id).where(ipar.c.investigation == inv_id))
    assert params
    for name, description, number, string, units in params:
        label = f"{name} {description}" if description else name  # the row's header
        if number is not None:
            shown = str(int(number)) if float(number).is_integer() else str(number)
            assert re.search(rf"{re.escape(label)} {re.escape(shown)}\b", text), name
            assert units in text
        if string is not None:
            assert f"{label} {string}" in text
    people = rows(srv, select(USER.c.fullName, IU.c.role).join(IU, IU.c.user == USER.c.id)
                  .where(IU.c.investigation == inv_id))
    assert all(f"{n} ORCID {role}" in text for n, role in people)
    # Datasets of the investigation, page after page, by name.
    expected = [x[0] for x in rows(srv, select(DS.c.id).where(DS.c.investigation == inv_id)
                                   .order_by(DS.c.name, DS.c.id))]
    assert walk(b, f"/browse/investigation/{inv_id}", "dataset") == expected
    # The data can be fetched and published from here; who may see it is for root only.
    assert 'action="/cart/add"' in r.text and f'href="/download/investigation/{inv_id}"' in r.text
    assert f'href="/publish/investigation/{inv_id}"' in r.text
    assert "/staff/access/investigation/" not in r.text
    root = sign_in(browser_factory, srv, "simple/root")
    assert f'href="/staff/access/investigation/{inv_id}"' in root.get(
        f"/browse/investigation/{inv_id}").text


def test_dataset_and_datafile_pages_show_their_parameters(srv: Server, browser_factory: Any
                                                          ) -> None:
    user = busiest_scientist(srv)
    b = sign_in(browser_factory, srv, user)
    dsp, dfp, pt = T["DatasetParameter"], T["DatafileParameter"], T["ParameterType"]
    mine = investigations_of(srv, user)
    ds, sample = rows(srv, select(DS.c.id, DS.c.sample).where(
        DS.c.investigation.in_(mine), DS.c.sample.is_not(None),
        DS.c.id.in_(select(dsp.c.dataset))).order_by(DS.c.id).limit(1))[0]
    text = visible_text(b.get(f"/browse/dataset/{ds}").text)
    names = [r[0] for r in rows(srv, select(pt.c.name).join(dsp, dsp.c.type == pt.c.id)
                                .where(dsp.c.dataset == ds))]
    assert names and all(n in text for n in names)
    sample_name = rows(srv, select(T["Sample"].c.name).where(T["Sample"].c.id == sample))[0][0]
    assert f"Sample Name {sample_name}" in text
    df = rows(srv, select(dfp.c.datafile).join(DF, dfp.c.datafile == DF.c.id).join(
        DS, DF.c.dataset == DS.c.id).where(DS.c.investigation.in_(mine)).limit(1))[0][0]
    page = b.get(f"/browse/datafile/{df}")
    names = [r[0] for r in rows(srv, select(pt.c.name).join(dfp, dfp.c.type == pt.c.id)
                                .where(dfp.c.datafile == df))]
    assert names and all(n in visible_text(page.text) for n in names)
    assert f'href="/download/datafile/{df}"' in page.text


def test_broken_addresses_are_error_pages(srv: Server, browser_factory: Any) -> None:
    user = busiest_scientist(srv)
    b = sign_in(browser_factory, srv, user)
    ds = biggest_dataset(srv, investigations_of(srv, user))
    for query in ("sort=nope", "after=abc", "sort=size&after=1&at=big", "order=sideways"):
        r = b.get(f"/browse/dataset/{ds}?{query}")
        assert r.status_code == 400 and r.headers["content-type"].startswith("text/html"), query
    assert b.get("/browse/investigation/987654321").status_code == 404
    assert b.get("/browse/dataset/not-a-number").status_code == 404
    # A cycle is only under an instrument of its own facility; an unknown one is not found.
    ins = rows(srv, select(INS.c.id).limit(1))[0][0]
    assert b.get(f"/browse/instrument/{ins}/cycle/987654321").status_code == 404
    # Signed out, a browse address leads to the sign-in page and back.
    anon: Browser = browser_factory(srv)
    r = anon.get(f"/browse/dataset/{ds}?sort=size")
    assert r.url.path == "/login" and r.url.params["next"] == f"/browse/dataset/{ds}?sort=size"


def test_dois_link_to_cairns_landing_page_or_to_the_resolver(srv: Server, browser_factory: Any
                                                            ) -> None:
    root = sign_in(browser_factory, srv, "simple/root")
    ours = {d.lower() for (d,) in rows(srv, select(TABLES.doi.c.doi))}
    recorded = rows(srv, select(INV.c.id, INV.c.doi).where(INV.c.doi.is_not(None)))
    minted = [(i, d) for i, d in recorded if d.lower() in ours]
    elsewhere = [(i, d) for i, d in recorded if d.lower() not in ours]
    assert minted and elsewhere  # the demo publishes some of its DOIs and records others
    i, d = minted[0]
    assert f'href="/doi/{d.lower()}"' in root.get(f"/browse/investigation/{i}").text
    i, d = elsewhere[0]
    assert f'href="https://doi.org/{d}"' in root.get(f"/browse/investigation/{i}").text
