"""The portal's search page over real HTTP: it finds what /icat/search/documents finds for the
same person, counts facets as that endpoint does, narrows by facets, dates, parameters (in
other units) and "my data", pages by keys, and says what is wrong instead of failing.

The page is drawn from its hits; its counts (facet panels, the number found) come from
/search/facets, which the page names and its script loads, or from the page itself with
counts=1 (the "Show counts" link, without the script). The counts here are read from the
fragment the page names, and checked to be those the page draws with counts=1.

The demo catalogue is indexed as `cairn demo` loads it, so nothing here waits for an index.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from html import unescape
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import func, select

from cairn.db.tables import TABLES
from tests.conftest import BACKENDS, make_database
from tests.integration.portal_support import (
    Browser,
    busiest_scientist,
    demo_server,
    visible_text,
)
from tests.integration.server import Server

T = TABLES.entity

_HIT = re.compile(r'<tr id="hit-(\d+)"')
_NEXT = re.compile(r'<a href="([^"]+)" rel="next">')
# the number found: in the page's heading (counted), or in the fragment of its counts
_HEADING = re.compile(r'(?:<h2 id="results-heading"><span id="results-count">|'
                      r'<span data-fill="results-count">)([\d,]+) ')
_COUNTS = re.compile(r'data-facets="([^"]+)"')
_FACET = re.compile(
    r'<input id="f-[^"]+" type="checkbox" name="([^"]+)" value="([^"]*)" form="search"'
    r'( checked)?>\s*<label for="[^"]+">[^<]*(?:<span class="count">\(([\d,]+)\)</span>)?')


@pytest.fixture(scope="module", params=BACKENDS)
def srv(request: pytest.FixtureRequest,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from demo_server(str(request.param), tmp_path_factory.mktemp("portal-search"))


# -- helpers ------------------------------------------------------------------------------------

def signed_in(factory: Any, srv: Server, user: str) -> Browser:
    b: Browser = factory(srv)
    password = "secret" if user == "simple/root" else "demo"
    r = b.sign_in(user, password)
    assert r.status_code == 200 and r.url.path == "/", r.text[:300]
    return b


def rest_session(srv: Server, user: str) -> str:
    mnemonic, name = user.split("/", 1)
    password = "secret" if user == "simple/root" else "demo"
    body = {"plugin": mnemonic, "credentials": [{"username": name}, {"password": password}]}
    r = srv.http.post("/icat/session", data={"json": json.dumps(body)})
    assert r.status_code == 200, r.text
    return str(r.json()["sessionId"])


def rest_search(srv: Server, sid: str, query: dict[str, Any],
                sort: dict[str, str] | None = None) -> tuple[list[int], dict[str, Any]]:
    """Every id /icat/search/documents returns (all pages, in order), and its facets."""
    ids: list[int] = []
    dims: dict[str, Any] = {}
    after = None
    while True:
        params = {"sessionId": sid, "query": json.dumps(query), "maxCount": "40"}
        if sort:
            params["sort"] = json.dumps(sort)
        if after is not None:
            params["search_after"] = json.dumps(after)
        r = srv.http.get("/icat/search/documents", params=params)
        assert r.status_code == 200, r.text
        out = r.json()
        if after is None:
            dims = out.get("dimensions", {})
        ids += [x["id"] for x in out["results"]]
        after = out.get("search_after")
        if after is None:
            return ids, dims


def hits(html: str) -> list[int]:
    return [int(x) for x in _HIT.findall(html)]


def total(html: str) -> int:
    found = _HEADING.search(html)
    assert found, "the page says how many were found"
    return int(found.group(1).replace(",", ""))


def counts(b: Browser, page: httpx.Response) -> str:
    """The counts of a search page: the fragment at the address the page names for its
    script (``/search/facets?…``)."""
    found = _COUNTS.search(page.text)
    assert found, "the page names where its counts are"
    r = b.get(unescape(found.group(1)))
    assert r.status_code == 200, visible_text(r.text)[:300]
    assert "data-facets-fragment" in r.text
    return r.text


def facets(html: str) -> dict[str, dict[str, int | None]]:
    """param -> {label: count} of the page's facet checkboxes."""
    out: dict[str, dict[str, int | None]] = {}
    for param, label, _, count in _FACET.findall(html):
        out.setdefault(param, {})[unescape(label)] = (int(count.replace(",", ""))
                                                      if count else None)
    return out


def ticked(html: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for param, label, checked, _ in _FACET.findall(html):
        if checked:
            out.setdefault(param, []).append(unescape(label))
    return out


def walk(b: Browser, path: str) -> tuple[list[int], list[httpx.Response]]:
    """Every result of a search, following its "Next page" links."""
    ids: list[int] = []
    pages: list[httpx.Response] = []
    while True:
        r = b.get(path)
        assert r.status_code == 200, visible_text(r.text)[:500]
        pages.append(r)
        ids += hits(r.text)
        found = _NEXT.search(r.text)
        if not found:
            return ids, pages
        path = unescape(found.group(1))
        assert len(pages) < 200, "paging does not end"


def search_path(**params: Any) -> str:
    return f"/search?{httpx.QueryParams(params)}"


def private_investigation(srv: Server) -> tuple[int, str, str]:
    """A private investigation (released in 2199) whose name no other investigation has,
    and a demo user who is neither on it nor a scientist of its instruments."""
    inv, iu, u, ii, sci = (T[n] for n in ("Investigation", "InvestigationUser", "User",
                                          "InvestigationInstrument", "InstrumentScientist"))
    with srv.engine.connect() as conn:
        unique = select(inv.c.name).group_by(inv.c.name).having(func.count() == 1)
        rows = conn.execute(select(inv.c.id, inv.c.name)
                            .where(inv.c.id % 3 != 0, inv.c.name.in_(unique))
                            .order_by(inv.c.id)).all()
        for inv_id, name in rows:
            on_it = select(iu.c.user).where(iu.c.investigation == inv_id)
            scientists = select(sci.c.user).where(sci.c.instrument.in_(
                select(ii.c.instrument).where(ii.c.investigation == inv_id)))
            outsider = conn.execute(
                select(u.c.name).where(u.c.name.like("db/%"), u.c.name != "db/root",
                                       u.c.id.not_in(on_it), u.c.id.not_in(scientists))
                .order_by(u.c.name).limit(1)).scalar()
            if outsider:
                return inv_id, name, outsider
    raise AssertionError("the demo has no private investigation with an outsider")


# -- tests --------------------------------------------------------------------------------------

def test_signing_in_comes_first(srv: Server, browser_factory: Any) -> None:
    b: Browser = browser_factory(srv)
    r = b.get("/search?text=calcite")
    assert r.url.path == "/login" and r.url.params["next"] == "/search?text=calcite"


@pytest.mark.parametrize("target,text", [("Investigation", "calcite"),
                                         ("Dataset", "raw"),
                                         ("Datafile", "calcite")])
def test_words_find_what_rest_finds(srv: Server, browser_factory: Any, target: str,
                                    text: str) -> None:
    user = busiest_scientist(srv)
    b = signed_in(browser_factory, srv, user)
    ids, pages = walk(b, search_path(target=target, text=text))
    expected, _ = rest_search(srv, rest_session(srv, user), {"target": target, "text": text})
    assert expected, "the demo uses the word"
    assert ids == expected  # the same documents, in the same (relevance) order
    assert total(counts(b, pages[0])) == len(expected)
    assert "unranked" not in pages[0].text  # a few hundred found: ranked
    # Each result links to its browse page and can go to the cart.
    kind = target.lower()
    page = pages[0].text
    for i in hits(page):
        assert f'href="/browse/{kind}/{i}"' in page
        assert f'name="entityId" value="{i}"' in page
    assert page.count('action="/cart/add"') == len(hits(page))
    assert f'name="entityType" value="{target}"' in page


def test_facet_counts_are_rest_s_and_a_value_narrows(srv: Server, browser_factory: Any
                                                     ) -> None:
    user = busiest_scientist(srv)
    b = signed_in(browser_factory, srv, user)
    sid = rest_session(srv, user)
    r = b.get(search_path(target="Dataset"))
    assert facets(r.text) == {}  # the page comes first; its counts after
    counted = counts(b, r)
    shown = facets(counted)
    _, dims = rest_search(srv, sid, {"target": "Dataset", "facets": [
        {"target": "Dataset", "dimensions": [{"dimension": "type.name"},
                                             {"dimension": "sample.type.name"}]},
        {"target": "InvestigationInstrument", "dimensions": [{"dimension": "instrument.name"}]},
        {"target": "DatasetParameter", "dimensions": [{"dimension": "type.name"}]}]})
    assert shown["datasetType"] == dims["Dataset.type.name"]
    assert shown["sampleType"] == dims["Dataset.sample.type.name"]
    assert shown["instrument"] == dims["InvestigationInstrument.instrument.name"]
    assert shown["datasetParameter"] == dims["DatasetParameter.type.name"]
    everything = total(counted)
    assert everything == sum(dims["Dataset.type.name"].values())

    # Ticking an instrument: exactly its datasets, as many as its count said.
    instrument, count = min(shown["instrument"].items(), key=lambda kv: kv[1] or 0)
    assert count is not None and 0 < count < everything
    ids, pages = walk(b, search_path(target="Dataset", instrument=instrument))
    narrowed_counts = counts(b, pages[0])
    assert len(ids) == count == total(narrowed_counts)
    # the value ticked is in the form before the counts come, and after
    assert ticked(pages[0].text) == {"instrument": [instrument]}
    assert ticked(narrowed_counts) == {"instrument": [instrument]}
    ds, ii, ins = (T[n] for n in ("Dataset", "InvestigationInstrument", "Instrument"))
    with srv.engine.connect() as conn:
        of_instrument = set(conn.scalars(
            select(ds.c.id).join(ii, ii.c.investigation == ds.c.investigation)
            .join(ins, ins.c.id == ii.c.instrument).where(ins.c.name == instrument)))
    assert set(ids) <= of_instrument
    # Facet counts now count the narrowed result.
    assert sum(facets(narrowed_counts)["datasetType"].values()) == count  # type: ignore[arg-type]
    # The ticked value has a link taking it away again.
    assert "Remove" in visible_text(pages[0].text)

    # Two values of one facet are alternatives; two facets both apply.
    types = list(dims["Dataset.type.name"])
    both, _ = walk(b, search_path(target="Dataset", datasetType=types[:2]))
    assert len(both) == dims["Dataset.type.name"][types[0]] + \
        dims["Dataset.type.name"][types[1]]
    narrowed, _ = walk(b, search_path(target="Dataset", datasetType=types[0],
                                      instrument=instrument))
    expected, _ = rest_search(srv, sid, {"target": "Dataset", "filter": {
        "dataset.type.name": [types[0]],
        "investigationinstrument.instrument.name": [instrument]}})
    assert narrowed == expected and set(narrowed) <= set(ids)


def test_investigation_facets_match_the_search_s_own(srv: Server, browser_factory: Any
                                                     ) -> None:
    user = busiest_scientist(srv)
    b = signed_in(browser_factory, srv, user)
    r = b.get(search_path(text="diffraction OR calcite OR insulin"))
    shown = facets(counts(b, r))
    _, dims = rest_search(srv, rest_session(srv, user), {
        "target": "Investigation", "text": "diffraction OR calcite OR insulin",
        "facets": [{"target": "Investigation", "dimensions": [{"dimension": "type.name"}]},
                   {"target": "Sample", "dimensions": [{"dimension": "type.name"}]},
                   {"target": "InvestigationParameter",
                    "dimensions": [{"dimension": "type.name"}]}]})
    assert shown["investigationType"] == dims["Investigation.type.name"]
    assert shown["sampleType"] == dims["Sample.type.name"]
    assert shown["investigationParameter"] == dims["InvestigationParameter.type.name"]


def test_a_non_member_never_sees_a_private_investigation(srv: Server, browser_factory: Any
                                                         ) -> None:
    inv_id, name, outsider = private_investigation(srv)
    ds, df = T["Dataset"], T["Datafile"]
    with srv.engine.connect() as conn:
        datasets = set(conn.scalars(select(ds.c.id).where(ds.c.investigation == inv_id)))
        datafiles = set(conn.scalars(select(df.c.id).where(df.c.dataset.in_(datasets))))
    assert datasets and datafiles
    searches = [("Investigation", f'name:"{name}"'),
                ("Dataset", f'investigation.name:"{name}"'),
                ("Datafile", f'investigation.name:"{name}"')]
    theirs = {"Investigation": {inv_id}, "Dataset": datasets, "Datafile": datafiles}

    # Root sees the investigation's documents and counts them ...
    root = signed_in(browser_factory, srv, "simple/root")
    for target, text in searches:
        r = root.get(search_path(target=target, text=text))
        counted = counts(root, r)
        assert total(counted) == len(theirs[target])
        assert set(hits(r.text)) <= theirs[target] and hits(r.text)
        assert facets(counted), "root's page has facet counts"

    # ... someone neither on it nor at its instruments sees none, and no counts of them.
    b = signed_in(browser_factory, srv, outsider)
    sid = rest_session(srv, outsider)
    for target, text in searches:
        r = b.get(search_path(target=target, text=text))
        assert r.status_code == 200
        # nothing found: the page says so itself, with nothing left to count
        assert hits(r.text) == [] and total(r.text) == 0 and not _COUNTS.search(r.text)
        assert facets(r.text) == {}
        # and counting anyway counts nothing
        f = b.get(search_path(target=target, text=text).replace("/search?",
                                                                "/search/facets?"))
        assert f.status_code == 200 and total(f.text) == 0 and facets(f.text) == {}
        assert rest_search(srv, sid, {"target": target, "text": text})[0] == []
    # A search over everything shows the outsider what REST shows them, never those rows.
    for target in ("Investigation", "Dataset"):
        ids, _ = walk(b, search_path(target=target))
        assert not set(ids) & theirs[target]
        assert ids == rest_search(srv, sid, {"target": target})[0]


def test_my_data_only(srv: Server, browser_factory: Any) -> None:
    user = busiest_scientist(srv)
    b = signed_in(browser_factory, srv, user)
    every, _ = walk(b, search_path(target="Investigation"))
    mine, pages = walk(b, search_path(target="Investigation", mine="1"))
    iu, u, ii, sci = (T[n] for n in ("InvestigationUser", "User", "InvestigationInstrument",
                                     "InstrumentScientist"))
    with srv.engine.connect() as conn:
        me = select(u.c.id).where(u.c.name == user)
        on = set(conn.scalars(select(iu.c.investigation).where(iu.c.user.in_(me))))
        at = set(conn.scalars(select(ii.c.investigation).where(ii.c.instrument.in_(
            select(sci.c.instrument).where(sci.c.user.in_(me))))))
    assert set(mine) == on | at
    assert set(mine) < set(every), "the demo user reads public investigations of others"
    assert 'name="mine" value="1" form="search" checked' in pages[0].text
    assert mine == rest_search(srv, rest_session(srv, user),
                               {"target": "Investigation", "user": user})[0]
    # Datafiles too: only those of the user's investigations.
    files, _ = walk(b, search_path(target="Datafile", text="calcite", mine="1"))
    df, ds = T["Datafile"], T["Dataset"]
    with srv.engine.connect() as conn:
        of_mine = set(conn.scalars(select(df.c.id).join(ds, ds.c.id == df.c.dataset)
                                   .where(ds.c.investigation.in_(on | at))))
    assert files and set(files) <= of_mine


def test_date_range(srv: Server, browser_factory: Any) -> None:
    b = signed_in(browser_factory, srv, "simple/root")
    ids, pages = walk(b, search_path(target="Investigation", **{"from": "2019-01-01",
                                                                "to": "2021-12-31"}))
    inv = T["Investigation"]
    start = func.coalesce(inv.c.startDate, inv.c.createTime)
    end = func.coalesce(inv.c.endDate, inv.c.modTime)
    with srv.engine.connect() as conn:
        expected = set(conn.scalars(select(inv.c.id).where(
            start >= datetime(2019, 1, 1), end < datetime(2022, 1, 1))))
        everything = conn.execute(select(func.count()).select_from(inv)).scalar_one()
    assert expected and set(ids) == expected and len(expected) < everything
    page = pages[0].text
    assert 'name="from" value="2019-01-01"' in page and 'name="to" value="2021-12-31"' in page
    # Datafiles by their own dates: a single day.
    df = T["Datafile"]
    when = func.coalesce(df.c.datafileModTime, df.c.datafileCreateTime, df.c.modTime)
    with srv.engine.connect() as conn:
        day = conn.scalar(select(func.min(when)))
        assert isinstance(day, datetime)
        on_day = set(conn.scalars(select(df.c.id).where(
            when >= day.replace(hour=0, minute=0, second=0, microsecond=0),
            when < day.replace(hour=23, minute=59, second=59, microsecond=999999))))
    files, _ = walk(b, search_path(target="Datafile", **{"from": day.date().isoformat(),
                                                         "to": day.date().isoformat()}))
    assert files and set(files) == on_day
    # A day that is not a date, or a range the wrong way round, is said next to the form.
    r = b.get(search_path(**{"from": "2021-02-30"}))
    assert r.status_code == 400 and "From must be a date" in visible_text(r.text)
    r = b.get(search_path(**{"from": "2022-01-01", "to": "2021-01-01"}))
    assert r.status_code == 400 and "after the To date" in visible_text(r.text)


def test_a_parameter_range_in_other_units(srv: Server, browser_factory: Any) -> None:
    """The demo records temperatures in kelvin: a range in degC finds the same datasets as
    the same range in K, and those are the ones SQL finds."""
    b = signed_in(browser_factory, srv, "simple/root")
    p, pt = T["DatasetParameter"], T["ParameterType"]
    with srv.engine.connect() as conn:
        rows = conn.execute(select(p.c.dataset, p.c.numericValue)
                            .join(pt, pt.c.id == p.c.type)
                            .where(pt.c.name == "temperature", pt.c.units == "K")
                            .order_by(p.c.numericValue)).all()
    assert len(rows) >= 4
    low_k, high_k = rows[1][1] - 0.001, rows[-2][1] + 0.001
    expected = {d for d, v in rows if low_k <= v <= high_k}
    in_k, _ = walk(b, search_path(target="Dataset", pname="temperature", pmin=str(low_k),
                                  pmax=str(high_k), punits="K", pvalue=""))
    in_c, pages = walk(b, search_path(target="Dataset", pname="temperature",
                                      pmin=f"{low_k - 273.15:.6f}",
                                      pmax=f"{high_k - 273.15:.6f}", punits="degC"))
    assert set(in_k) == set(in_c) == expected
    assert len(expected) < len({d for d, _ in rows})
    # The row stays in the form, with a blank one for another parameter.
    page = pages[0].text
    assert 'name="punits" value="degC"' in page and page.count('name="pname"') == 2
    # One value, typed in other units, finds the dataset with that value.
    dataset, kelvin = rows[2]
    one, _ = walk(b, search_path(target="Dataset", pname="temperature",
                                 pvalue=f"{kelvin - 273.15:.6f}".rstrip("0"), punits="degC"))
    same = {d for d, v in rows if abs(v - kelvin) < 1e-6}
    assert dataset in one and set(one) == same
    # An open range: a minimum only.
    above, _ = walk(b, search_path(target="Dataset", pname="temperature",
                                   pmin=f"{rows[-3][1] - 273.15 - 0.001:.6f}", punits="degC"))
    assert set(above) == {d for d, v in rows if v >= rows[-3][1] - 0.001}
    r = b.get(search_path(target="Dataset", pname="temperature", pmin="warm"))
    assert r.status_code == 400 and "must be a number" in visible_text(r.text)
    # Units nobody can convert, and no parameter is recorded in, are said to match nothing.
    r = b.get(search_path(target="Dataset", pname="temperature", pmin="1", punits="wibbles"))
    assert r.status_code == 200 and hits(r.text) == [] and total(r.text) == 0
    assert "can't convert 'wibbles'" in visible_text(r.text)
    assert "can't convert" not in visible_text(pages[0].text)


@pytest.mark.parametrize("target,sort", [("Datafile", "relevance"), ("Datafile", "name-asc"),
                                         ("Datafile", "date-desc"), ("Dataset", "date-desc"),
                                         ("Dataset", "size-asc")])
def test_paging_continues_without_duplicates(srv: Server, browser_factory: Any, target: str,
                                             sort: str) -> None:
    user = busiest_scientist(srv)
    b = signed_in(browser_factory, srv, user)
    text = "calcite OR insulin" if target == "Datafile" else ""
    ids, pages = walk(b, search_path(target=target, text=text, sort=sort))
    assert len(pages) >= 3
    assert len(ids) == len(set(ids)) == total(counts(b, pages[0]))
    rest_sort = {"relevance": None, "name-asc": {"name": "asc"},
                 "date-desc": {"date": "desc"}, "size-asc": {"fileSize": "asc"}}[sort]
    query: dict[str, Any] = {"target": target}
    if text:
        query["text"] = text
    # REST pages the same way, its page and its facets in one answer
    query["facets"] = [{"target": target, "dimensions": [
        {"dimension": "id", "ranges": [{"key": "all"}]}]}]
    expected, dims = rest_search(srv, rest_session(srv, user), query, rest_sort)
    assert ids == expected and dims[f"{target}.id"] == {"all": len(ids)}
    # A later page is a link that works on its own (bookmarked, shared, reloaded).
    link = _NEXT.search(pages[1].text)
    assert link
    again = signed_in(browser_factory, srv, user).get(unescape(link.group(1)))
    assert hits(again.text) == hits(pages[2].text)
    params = parse_qs(urlsplit(unescape(link.group(1))).query)
    assert params["target"] == [target] and "after" in params
    assert f"{len(hits(pages[0].text)) + len(hits(pages[1].text)) + 1}\u2013" in \
        visible_text(pages[2].text)


@pytest.mark.parametrize("target", ["Datafile", "Dataset"])
def test_counts_come_after_the_page_and_are_the_counted_page_s(
        srv: Server, browser_factory: Any, target: str) -> None:
    b = signed_in(browser_factory, srv, busiest_scientist(srv))
    r = b.get(search_path(target=target, sort="name-asc"))
    assert r.status_code == 200 and len(hits(r.text)) == 25
    # The page: hits, no counts, the address of its counts and the script that loads them.
    assert facets(r.text) == {} and not _HEADING.search(r.text)
    assert '<script src="/portal/static/search.js" defer></script>' in r.text
    fragment = counts(b, r)
    found = total(fragment)
    assert found > 25 and facets(fragment)
    # Without the script: "Show counts" draws the same page, counted.
    link = re.search(r'<a href="([^"]+)">Show counts</a>', r.text)
    assert link
    page = b.get(unescape(link.group(1)))
    assert page.status_code == 200 and hits(page.text) == hits(r.text)
    assert not _COUNTS.search(page.text) and "Show counts" not in page.text
    assert total(page.text) == found and facets(page.text) == facets(fragment)
    assert f"of {found:,}" in visible_text(page.text)
    # ... and keeps counting on: the form and the next page carry counts=1.
    assert '<input type="hidden" name="counts" value="1">' in page.text
    following = _NEXT.search(page.text)
    assert following and parse_qs(urlsplit(unescape(following.group(1))).query)["counts"] == ["1"]
    # A value ticked is in the form from the start, counted when the counts come.
    label = next(iter(facets(fragment)["format" if target == "Datafile" else "datasetType"]))
    param = "format" if target == "Datafile" else "datasetType"
    narrowed = b.get(search_path(target=target, **{param: label}))
    assert ticked(narrowed.text) == {param: [label]}
    assert facets(narrowed.text) == {param: {label: None}}
    assert facets(counts(b, narrowed))[param][label] == total(counts(b, narrowed))


def test_counts_need_a_session_and_a_search_that_parses(srv: Server, browser_factory: Any
                                                        ) -> None:
    anonymous: Browser = browser_factory(srv)
    r = anonymous.get("/search/facets?target=Dataset&text=raw")
    assert r.url.path == "/login"
    b = signed_in(browser_factory, srv, busiest_scientist(srv))
    r = b.get("/search/facets?" + str(httpx.QueryParams(target="Dataset", text='(raw AND "x')))
    assert r.status_code == 400 and "could not be parsed" in visible_text(r.text)
    assert "data-fill" not in r.text
    # The script it is loaded by is Cairn's own, served beside the page's styles.
    js = b.get("/portal/static/search.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert "data-facets" in js.text and "replaceChildren" in js.text


def test_tabs_keep_the_search(srv: Server, browser_factory: Any) -> None:
    b = signed_in(browser_factory, srv, busiest_scientist(srv))
    r = b.get(search_path(target="Investigation", text="calcite", mine="1", instrument="I11",
                          investigationType="experiment", sort="name-asc"))
    tabs = {t: unescape(h) for h, t in re.findall(
        r'<li><a href="(/search\?[^"]+)"(?: aria-current="page")?>(\w+)</a>', r.text)}
    assert set(tabs) == {"Investigations", "Datasets", "Files"}
    assert 'aria-current="page">Investigations<' in r.text
    q = parse_qs(urlsplit(tabs["Datasets"]).query)
    assert q["target"] == ["Dataset"] and q["text"] == ["calcite"] and q["mine"] == ["1"]
    assert q["instrument"] == ["I11"] and q["sort"] == ["name-asc"]
    assert "investigationType" not in q  # a dataset has no investigation type facet
    r = b.get(tabs["Datasets"])
    assert r.status_code == 200 and ticked(r.text) == {"instrument": ["I11"]}


def test_broken_syntax_is_shown_next_to_the_box(srv: Server, browser_factory: Any) -> None:
    b = signed_in(browser_factory, srv, busiest_scientist(srv))
    r = b.get(search_path(target="Dataset", text='(calcite AND "powder', datasetType="raw"))
    assert r.status_code == 400
    alert = re.search(r'<p id="search-error" class="error-message" role="alert">([^<]+)</p>',
                      r.text)
    assert alert and "could not be parsed" in unescape(alert.group(1))
    assert 'value="(calcite AND &#34;powder"' in r.text  # what was typed stays in the box
    assert 'aria-invalid="true"' in r.text
    assert ticked(r.text) == {"datasetType": ["raw"]}  # and so do the filters
    assert hits(r.text) == []
    # A field the target does not have is the search's own message too.
    r = b.get(search_path(target="Datafile", text="title:calcite"))
    assert r.status_code == 400 and "not a text field of Datafile" in visible_text(r.text)


def test_every_input_has_a_label(srv: Server, browser_factory: Any) -> None:
    b = signed_in(browser_factory, srv, busiest_scientist(srv))
    r = b.get(search_path(target="Dataset", text="raw", pname="temperature", pmin="1"))
    assert r.status_code == 200
    labels = set(re.findall(r'<label for="([^"]+)"', r.text))
    for tag in re.findall(r"<(?:input|select)\b[^>]*>", r.text):
        if 'type="hidden"' in tag:
            continue
        found = re.search(r'\bid="([^"]+)"', tag)
        assert found and found.group(1) in labels, tag
    assert len(re.findall(r'\bid="([^"]+)"', r.text)) == \
        len(set(re.findall(r'\bid="([^"]+)"', r.text)))
    headings = [int(h) for h in re.findall(r"<h([1-6])\b", r.text)]
    assert headings[0] == 1 and all(b - a <= 1 for a, b in pairwise(headings))


def test_adding_a_result_to_the_cart_comes_back(srv: Server, browser_factory: Any) -> None:
    b = signed_in(browser_factory, srv, busiest_scientist(srv))
    path = search_path(target="Dataset", text="raw")
    r = b.get(path)
    first = hits(r.text)[0]
    r = b.post("/cart/add", {"entityType": "Dataset", "entityId": first, "next": path})
    assert r.status_code == 200 and r.url.path == "/search"
    assert r.url.params["text"] == "raw" and hits(r.text)


def test_the_page_ranks_only_what_it_can_rank_quickly(srv: Server) -> None:
    """Ranking scores every document with the words before the first is known: the portal
    asks the search service to rank at most RANK_LIMIT of them and otherwise shows the hits
    in id order (saying so). REST always ranks. Here the service is called as the page
    calls it, in this process, on the server's database and a session of the server, with
    a limit the demo's file names pass."""
    from cairn.config import SEARCHABLE, Settings
    from cairn.search.service import SearchService
    from cairn.startup import open_catalogue, open_database

    settings = Settings(catalogue={"database": srv.db_url, "migrate": False,
                                   "root_users": ["simple/root"]})
    db = open_database(settings)
    try:
        service = SearchService(open_catalogue(settings, db), db, list(SEARCHABLE))
        user = busiest_scientist(srv)
        sid = rest_session(srv, user)
        # a word, ranked (a lone wildcard term is not: every match scores alike)
        query = json.dumps({"target": "Datafile", "text": "scan"})
        # every file found, in id order (REST sorted by id: no ties to page through)
        found, _ = rest_search(srv, sid, json.loads(query), {"id": "asc"})
        assert len(found) > 100

        def walk_service(limit: int | None) -> tuple[list[int], list[dict[str, Any]]]:
            ids: list[int] = []
            answers: list[dict[str, Any]] = []
            after = None
            while True:
                out = service.search_documents(sid, query, after, None, "40",
                                               rank_limit=limit)
                answers.append(out)
                ids += [x["id"] for x in out["results"]]
                if "search_after" not in out:
                    return ids, answers
                after = json.dumps(out["search_after"])

        # Over the limit: every document found, in id order, each once, and said so.
        ids, answers = walk_service(100)
        assert ids == found and all(a.get("unranked") for a in answers)
        assert {x["score"] for a in answers for x in a["results"]} == {1.0}
        # Within it: what REST answers, ranked (its first page: MariaDB's relevance of
        # thousands of equal documents is not the same from one statement to the next,
        # so walking them by score is not compared here).
        first = service.search_documents(sid, query, None, None, "40", rank_limit=10**9)
        r = srv.http.get("/icat/search/documents",
                         params={"sessionId": sid, "query": query, "maxCount": "40"})
        assert r.status_code == 200, r.text
        assert [x["id"] for x in first["results"]] == [x["id"] for x in r.json()["results"]]
        assert "unranked" not in first
        assert {x["score"] for x in first["results"]} != {1.0}  # relevance
    finally:
        db.dispose()


# -- a catalogue where datafiles are not indexed ------------------------------------------------

@pytest.fixture(scope="module", params=BACKENDS)
def partial(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp: Path = tmp_path_factory.mktemp("portal-search-partial")
    url, drop = make_database(str(request.param), tmp, migrated=True)
    server = Server(tmp, url, '[search]\nentities = ["Investigation", "Dataset", "Sample", '
                              '"SampleType", "Facility", "InvestigationType", "DatasetType"]\n')
    try:
        yield server
    finally:
        server.stop()
        drop()  # type: ignore[operator]


def test_a_target_not_indexed_is_said_so(partial: Server, browser_factory: Any) -> None:
    b: Browser = browser_factory(partial)
    b.sign_in("simple/root", "secret")
    r = b.get(search_path(target="Datafile", text="calcite"))
    assert r.status_code == 200
    text = visible_text(r.text)
    assert "Files are not indexed for free-text search on this catalogue" in text
    assert 'role="status"' in r.text and "BAD_PARAMETER" not in text
    assert 'value="calcite"' in r.text
    # The tab says so too; the other targets search as usual.
    assert re.search(r">Files</a> <span class=\"muted\">\(not indexed\)", r.text)
    r = b.get(search_path(target="Investigation", text="calcite"))
    assert r.status_code == 200 and total(r.text) == 0
    # REST agrees: the target can't be searched there.
    sid = rest_session(partial, "simple/root")
    rest = partial.http.get("/icat/search/documents", params={
        "sessionId": sid, "query": json.dumps({"target": "Datafile", "text": "calcite"})})
    assert rest.status_code == 400 and "not indexed" in rest.json()["message"]

