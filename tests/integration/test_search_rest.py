"""Free-text search over REST (/icat/search/documents, /icat/facet/documents, /icat/lucene/*)
on a real Cairn process per backend, against the hand-designed catalogue of
search_fixtures.py: every test asserts the exact ids a request must answer.

The behaviour is icat.server 6.x's (with icat.lucene), with Cairn's deliberate differences:
facet counts cover the whole authorized result set, pages are always full, ``search_after`` is
present only when more results exist, tokens are maximal runs of letters and digits, a query of
exclusions only means everything else, numeric parameter ranges convert units, and bad input
is a 400 BAD_PARAMETER, never a 500.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.search_fixtures import (
    Catalogue,
    build,
    create,
    ms,
    remove,
    update,
    write,
)
from tests.integration.server import Server
from tests.waiting import wait_until


@pytest.fixture(scope="module")
def cat(server: Server) -> Catalogue:
    return build(server)


def keys(cat: Catalogue, expected: str) -> list[int]:
    return cat(*expected.split())


def same(found: list[int], expected: list[int]) -> None:
    """The same ids, each once, in any order."""
    assert len(found) == len(set(found)), f"duplicates in {found}"
    assert sorted(found) == sorted(expected), (found, expected)


def error(r: httpx.Response, status: int = 400, code: str = "BAD_PARAMETER",
          message: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == code, body
    assert isinstance(body.get("message"), str) and body["message"], body
    if message is not None:
        assert body["message"] == message, body
    return dict(body)


# -- 1. text semantics ----------------------------------------------------------------------------

TEXT_CASES = [
    # One word, each time from a different default field.
    ("Investigation", "hexham", "inv:A inv:B inv:C inv:D"),  # facility.name
    ("Investigation", "Synchrotron", "inv:A inv:B inv:C inv:D"),
    ("Investigation", "olivine", "inv:A inv:D"),  # title and summary
    ("Investigation", "furnace", "inv:A"),  # summary
    ("Investigation", "bravo", "inv:B"),  # name
    ("Investigation", "v22c", "inv:C"),  # visitId
    ("Investigation", "calibration", "inv:B"),  # type.name
    ("Investigation", "experiment", "inv:A inv:C inv:D"),
    ("Investigation", "magnetite", "inv:C"),  # sample.name (a join)
    ("Investigation", "oxide", "inv:C"),  # sample.type.name
    ("Investigation", "silicate", "inv:A inv:B inv:D"),
    ("Investigation", "nosuchword", ""),
    ("Dataset", "processed", "ds:alpha-processed"),  # name and type.name
    ("Dataset", "raw", "ds:alpha-raw ds:bravo-raw ds:charlie-raw ds:delta-raw"),
    ("Dataset", "ramp", "ds:delta-raw"),  # description
    ("Dataset", "beryl", "ds:bravo-raw"),  # sample.name
    ("Dataset", "silicate", "ds:alpha-raw ds:bravo-raw ds:delta-raw"),  # sample.type.name
    ("Dataset", "v23d", "ds:delta-raw"),  # visitId of the investigation
    ("Dataset", "magnetite", ""),  # a sample no dataset has
    ("Datafile", "nexus", "df:1 df:2 df:5 df:6"),  # datafileFormat.name
    ("Datafile", "ascii", "df:3 df:7"),
    ("Datafile", "nxs", "df:1 df:2 df:5 df:6"),  # name, location file names
    ("Datafile", "charlie", "df:6"),  # a location directory
    ("Datafile", "v20a", "df:1 df:2 df:3"),  # visitId
    ("Datafile", "topaz", "df:7"),  # sample.name
    ("Datafile", "oxide", "df:6"),  # sample.type.name
    ("Datafile", "furnace", "df:1"),  # description
    ("Datafile", "hexham", ""),  # the facility is not a datafile field
    # Case does not matter.
    ("Investigation", "OLIVINE", "inv:A inv:D"),
    ("Datafile", "NeXuS", "df:1 df:2 df:5 df:6"),
    # field:term
    ("Investigation", "title:olivine", "inv:A"),
    ("Investigation", "summary:olivine", "inv:A inv:D"),
    ("Investigation", "name:charlie", "inv:C"),
    ("Investigation", "visitId:V21B", "inv:B"),
    ("Investigation", "type.name:experiment", "inv:A inv:C inv:D"),
    ("Investigation", "facility.name:hexham", "inv:A inv:B inv:C inv:D"),
    ("Investigation", "sample.name:zircon", "inv:C"),
    ("Investigation", "sample.type.name:silicate", "inv:A inv:B inv:D"),
    ("Investigation", "title:furnace", ""),
    ("Dataset", "type.name:raw", "ds:alpha-raw ds:bravo-raw ds:charlie-raw ds:delta-raw"),
    ("Dataset", "description:garnet", "ds:alpha-raw"),
    ("Dataset", "sample.name:garnet", "ds:alpha-raw"),
    ("Dataset", "name:garnet", ""),
    ("Dataset", "investigation.title:hematite", "ds:charlie-raw"),
    ("Dataset", "description:*", "ds:alpha-raw ds:alpha-processed ds:bravo-raw "
     "ds:charlie-raw ds:delta-raw"),
    ("Datafile", "description:*", "df:1"),  # the only one with a description
    ("Datafile", "location.fileName:run", "df:1 df:2 df:5"),
    ("Datafile", "location.fileName:alpha", ""),
    ("Datafile", "location:bravo", "df:4 df:5"),
    ("Datafile", "name:run", "df:1 df:2 df:5"),
    ("Datafile", "datafileFormat.name:ascii", "df:3 df:7"),
    ("Datafile", "name:ascii", ""),
    # AND, OR, NOT, +, -
    ("Investigation", "olivine AND calcite", "inv:D"),
    ("Investigation", "olivine && calcite", "inv:D"),
    ("Investigation", "olivine OR hematite", "inv:A inv:C inv:D"),
    ("Investigation", "olivine hematite", "inv:A inv:C inv:D"),  # OR is the default
    ("Investigation", "olivine || bravo", "inv:A inv:B inv:D"),
    ("Investigation", "olivine NOT calcite", "inv:A"),
    ("Investigation", "olivine AND NOT calcite", "inv:A"),
    ("Investigation", "+olivine -calcite", "inv:A"),
    ("Investigation", "olivine -furnace", "inv:D"),
    ("Investigation", "+hexham +calibration", "inv:B"),
    ("Investigation", "hexham -olivine", "inv:B inv:C"),
    ("Investigation", "(olivine OR hematite) AND experiment", "inv:A inv:C inv:D"),
    ("Investigation", "olivine AND (furnace OR pressure)", "inv:A inv:D"),
    ("Investigation", "+experiment -(olivine OR magnetic)", ""),
    ("Investigation", "title:(olivine OR hematite)", "inv:A inv:C"),
    # Exclusions only: everything except.
    ("Investigation", "-olivine", "inv:B inv:C"),
    ("Investigation", "NOT experiment", "inv:B"),
    ("Investigation", "-olivine -hematite", "inv:B"),
    ("Datafile", "-nxs", "df:3 df:4 df:7"),
    ("Investigation", "-title:olivine", "inv:B inv:C inv:D"),
    ("Investigation", "hexham AND (-olivine)", "inv:B inv:C"),
    # Lower-case and/or/not are words, not operators; a boost is accepted.
    ("Investigation", "olivine and calcite", "inv:A inv:D"),
    ("Investigation", "hematite not", "inv:C"),
    ("Investigation", "olivine^2", "inv:A inv:D"),
    ("Investigation", "2020", "inv:A"),
    # Everything.
    ("Investigation", "*", "inv:A inv:B inv:C inv:D"),
    ("Investigation", "*:*", "inv:A inv:B inv:C inv:D"),
    # Quoted phrases: adjacent, in order, in one field.
    ("Investigation", '"thermal expansion"', "inv:A"),
    ("Investigation", '"expansion thermal"', ""),
    ("Investigation", '"magnetic structure"', "inv:C"),
    ("Investigation", '"hematite magnetic order"', "inv:C"),
    ("Investigation", 'title:"under pressure"', "inv:D"),
    ("Investigation", 'summary:"under pressure"', ""),
    ("Investigation", '"olivine crystals" OR "calcite under"', "inv:A inv:D"),
    ("Datafile", '"run 001"', "df:1 df:5"),
    ("Datafile", '"run_00*"', ""),  # no wildcards inside quotes
    # A phrase does not run from one field into the next.
    ("Investigation", '"pressure high"', ""),
    ("Investigation", '"olivine olivine"', ""),
    ("Investigation", '"order neutron"', ""),
    # Words joined by punctuation are adjacent words.
    ("Datafile", "run_001.nxs", "df:1 df:5"),
    ("Datafile", "RUN_001.NXS", "df:1 df:5"),
    ("Datafile", "run_002.nxs", "df:2"),
    ("Datafile", "001.nxs", "df:1 df:5"),
    ("Datafile", "flat_001", "df:4"),
    ("Datafile", "run_001.tiff", ""),
    ("Datafile", "nxs.run_001", ""),
    ("Datafile", "name:run_001.nxs", "df:1 df:5"),
    ("Investigation", "ALPHA-2020", "inv:A"),
    ("Investigation", "alpha-2021", ""),
    # Prefixes and wildcards, anywhere in a word.
    ("Investigation", "cal*", "inv:B inv:D"),  # calibration, calibrant, calcite
    ("Investigation", "*bration", "inv:B"),
    ("Investigation", "c?lcite", "inv:D"),
    ("Investigation", "c?lcit", ""),
    ("Investigation", "h?mat*", "inv:C"),
    ("Investigation", "*ivin*", "inv:A inv:D"),
    ("Investigation", "title:oliv*", "inv:A"),
    ("Investigation", "CAL*", "inv:B inv:D"),
    ("Dataset", "*ssed", "ds:alpha-processed"),
    ("Datafile", "*.nxs", "df:1 df:2 df:5 df:6"),
    ("Datafile", "*.tiff", "df:4"),
    ("Datafile", "hema*", "df:6"),
    ("Datafile", "r*_00?", "df:1 df:2 df:5"),
    ("Datafile", "run_00?.nxs", "df:1 df:2 df:5"),
    # '/' in paths.
    ("Datafile", 'location:"/data/alpha/raw/run_001.nxs"', "df:1"),
    ("Datafile", "location:/data/alpha/raw/run_001.nxs", "df:1"),
    ("Datafile", "location:/data/alpha/*", "df:1 df:2 df:3"),
    ("Datafile", "/data/bravo/*", "df:4 df:5"),
    ("Datafile", "location:/data/bravo/flat_001.tiff", "df:4"),
    ("Datafile", "location:/data/alpha/run_001.nxs", ""),  # not adjacent: raw between
]


@pytest.mark.parametrize(("target", "text", "expected"), TEXT_CASES,
                         ids=[f"{t}:{q}" for t, q, _ in TEXT_CASES])
def test_text(cat: Catalogue, target: str, text: str, expected: str) -> None:
    same(cat.found(target, text), keys(cat, expected))


def test_text_with_fields_of_the_wrong_target_or_unknown(cat: Catalogue) -> None:
    for target, text in (("Investigation", "nosuchfield:olivine"),
                         ("Investigation", "location:data"),  # a datafile field
                         ("Datafile", "title:olivine"),
                         ("Dataset", "summary:ramp"),
                         ("Investigation", "Title:olivine")):  # field names are exact
        body = error(cat.search({"target": target, "text": text}))
        field = text.split(":")[0]
        assert field in body["message"], body


@pytest.mark.parametrize(("text", "offset"), [
    ("(olivine", 0),
    ("olivine)", 7),
    ("(olivine AND (calcite)", 0),
    ('"olivine', 0),
    ('title:"olivine', 6),
    ("olivine AND", 8),
    ("AND olivine", 0),
    ("title:", 5),
    (":olivine", 0),
    ("olivine~2", 7),
    ("[a TO b]", 0),
])
def test_broken_syntax_is_bad_parameter_with_offset(cat: Catalogue, text: str,
                                                    offset: int) -> None:
    body = error(cat.search({"target": "Investigation", "text": text}))
    assert body.get("offset") == offset, body


def test_text_of_no_words_is_bad_parameter(cat: Catalogue) -> None:
    for text in ("...", "-", "+ -"):
        error(cat.search({"target": "Investigation", "text": text}))


# -- 2. relevance, sorting, paging ---------------------------------------------------------------

def test_more_mentions_score_higher(cat: Catalogue) -> None:
    body = cat.ok({"target": "Investigation", "text": "olivine"})
    res = body["results"]
    assert [x["id"] for x in res] == cat.inv("A", "D")  # A says olivine twice, D once
    assert res[0]["score"] > res[1]["score"] > 0


def test_more_query_words_score_higher(cat: Catalogue) -> None:
    res = cat.ok({"target": "Investigation", "text": "calcite pressure olivine"})["results"]
    assert [x["id"] for x in res] == cat.inv("D", "A")
    assert res[0]["score"] > res[1]["score"]


def test_score_present_without_sort_absent_with_sort(cat: Catalogue) -> None:
    plain = cat.ok({"target": "Datafile", "text": "nxs"})["results"]
    assert len(plain) == 4
    assert all(isinstance(x["score"], int | float) for x in plain), plain
    sorted_ = cat.ok({"target": "Datafile", "text": "nxs"}, sort={"name": "asc"})["results"]
    assert len(sorted_) == 4
    assert all("score" not in x for x in sorted_), sorted_
    # An empty sort is relevance, scored.
    empty = cat.ok({"target": "Datafile", "text": "nxs"}, sort={})["results"]
    assert all("score" in x for x in empty)


def test_a_lone_wildcard_term_scores_every_match_alike(cat: Catalogue) -> None:
    # Lucene rewrites wildcard and prefix queries to a constant score: ties, in id order,
    # however often or in how long a text the pattern matches
    for words in ("oliv*", "o?ivine"):
        res = cat.ok({"target": "Investigation", "text": words})["results"]
        assert [x["id"] for x in res] == sorted(cat.inv("A", "D")), words
        assert len({x["score"] for x in res}) == 1, res
    # with a word beside it, the word ranks: A says olivine twice, D once
    res = cat.ok({"target": "Investigation", "text": "olivine calc*"})["results"]
    assert [x["id"] for x in res][:2] == cat.inv("A", "D")


def test_results_without_text_are_scored_too(cat: Catalogue) -> None:
    res = cat.ok({"target": "Investigation"})["results"]
    assert [x["id"] for x in res] == cat.inv("A", "B", "C", "D")  # equal scores: by id
    assert all("score" in x for x in res)


def test_sort_by_name_asc(cat: Catalogue) -> None:
    assert cat.found("Dataset", sort={"name": "asc"}) == cat.ds(
        "alpha-processed", "alpha-raw", "bravo-raw", "charlie-raw", "delta-raw")
    # Equal names fall back to id.
    assert cat.found("Datafile", "run", sort={"name": "asc"}) == cat.df(1, 5, 2)


def test_sort_by_name_desc(cat: Catalogue) -> None:
    assert cat.found("Dataset", sort={"name": "desc"}) == cat.ds(
        "delta-raw", "charlie-raw", "bravo-raw", "alpha-raw", "alpha-processed")


def test_sort_by_date_desc_and_asc(cat: Catalogue) -> None:
    assert cat.found("Investigation", "hexham", sort={"date": "desc"}) == cat.inv(
        "D", "C", "B", "A")
    assert cat.found("Investigation", "hexham", sort={"date": "asc"}) == cat.inv(
        "A", "B", "C", "D")
    # A datafile's date is its modification time, else its creation time.
    assert cat.found("Datafile", sort={"date": "desc"}) == cat.df(7, 6, 5, 4, 3, 2, 1)
    assert cat.found("Dataset", sort={"date": "desc"}) == cat.ds(
        "delta-raw", "charlie-raw", "bravo-raw", "alpha-processed", "alpha-raw")


def test_sort_by_file_size_with_id_tie_break(cat: Catalogue) -> None:
    # Sizes: 1:1000 2:3000 3:200 4:5000 5:3000 6:8000 7:3000
    assert cat.found("Datafile", sort={"fileSize": "asc"}) == cat.df(3, 1, 2, 5, 7, 4, 6)
    # The id tie-break is ascending whatever the direction of the sort.
    assert cat.found("Datafile", sort={"fileSize": "desc"}) == cat.df(6, 4, 2, 5, 7, 1, 3)


def test_sort_by_two_keys(cat: Catalogue) -> None:
    assert cat.found("Datafile", sort={"fileSize": "desc", "name": "asc"}) == cat.df(
        6, 4, 7, 5, 2, 1, 3)


def test_sort_by_other_fields(cat: Catalogue) -> None:
    assert cat.found("Investigation", sort={"title": "asc"}) == cat.inv("D", "B", "C", "A")
    assert cat.found("Investigation", sort={"endDate": "desc"}) == cat.inv("D", "C", "B", "A")
    assert cat.found("Dataset", sort={"id": "desc"}) == cat.ds(
        "delta-raw", "charlie-raw", "bravo-raw", "alpha-processed", "alpha-raw")


def test_max_count_zero_is_the_default(cat: Catalogue) -> None:
    r = cat.ok({"target": "Datafile"}, maxCount="0")
    assert len(r["results"]) == 7 and "search_after" not in r
    r = cat.ok({"target": "Datafile"})
    assert len(r["results"]) == 7 and "search_after" not in r


def test_sort_with_text_and_filters(cat: Catalogue) -> None:
    assert cat.found("Datafile", "nxs", sort={"fileSize": "desc"}) == cat.df(6, 2, 5, 1)


def pages(cat: Catalogue, query: dict[str, Any], max_count: int,
          sort: dict[str, str] | None = None) -> list[dict[str, Any]]:
    out = []
    after: Any = None
    for _ in range(50):
        params: dict[str, Any] = {"maxCount": str(max_count)}
        if sort is not None:
            params["sort"] = sort
        if after is not None:
            params["search_after"] = after
        body = cat.ok(query, **params)
        out.append(body)
        after = body.get("search_after")
        if after is None:
            return out
    raise AssertionError("paging did not end")


def test_paging_by_relevance_gives_every_id_once_in_order(cat: Catalogue) -> None:
    query = {"target": "Datafile", "text": "data OR nxs"}
    whole = [x["id"] for x in cat.ok(query)["results"]]
    same(whole, cat.df(1, 2, 3, 4, 5, 6, 7))
    got = pages(cat, query, 2)
    assert [len(p["results"]) for p in got] == [2, 2, 2, 1]
    assert [x["id"] for p in got for x in p["results"]] == whole
    assert all("search_after" in p for p in got[:-1])
    assert "search_after" not in got[-1]
    # The .nxs files mention more of the words: they come first.
    assert sorted(whole[:4]) == cat.df(1, 2, 5, 6)


def test_paging_sorted_by_file_size(cat: Catalogue) -> None:
    got = pages(cat, {"target": "Datafile"}, 2, sort={"fileSize": "desc"})
    assert [x["id"] for p in got for x in p["results"]] == cat.df(6, 4, 2, 5, 7, 1, 3)
    assert [len(p["results"]) for p in got] == [2, 2, 2, 1]
    assert all("score" not in x for p in got for x in p["results"])


def test_paging_sorted_by_date_through_equal_pages(cat: Catalogue) -> None:
    got = pages(cat, {"target": "Investigation", "text": "hexham"}, 2,
                sort={"date": "desc"})
    # Four results in pages of two: the second page is the last, without search_after.
    assert [[x["id"] for x in p["results"]] for p in got] == [cat.inv("D", "C"),
                                                              cat.inv("B", "A")]
    assert "search_after" in got[0] and "search_after" not in got[1]


def test_paging_sorted_by_name_with_ties(cat: Catalogue) -> None:
    got = pages(cat, {"target": "Datafile"}, 1, sort={"name": "asc"})
    assert [x["id"] for p in got for x in p["results"]] == cat.df(4, 6, 7, 3, 1, 5, 2)
    assert len(got) == 7


def test_one_full_page_has_no_search_after(cat: Catalogue) -> None:
    body = cat.ok({"target": "Investigation", "text": "olivine"}, maxCount="2")
    assert len(body["results"]) == 2
    assert "search_after" not in body
    body = cat.ok({"target": "Investigation", "text": "olivine"}, maxCount="1")
    assert [x["id"] for x in body["results"]] == cat.inv("A")
    assert "search_after" in body


def test_wrong_length_search_after_is_bad_parameter(cat: Catalogue) -> None:
    first = cat.ok({"target": "Datafile"}, maxCount="2", sort={"fileSize": "desc"})
    after = first["search_after"]
    assert len(after["fields"]) == 2  # fileSize, id
    short = {**after, "fields": after["fields"][:1]}
    error(cat.search({"target": "Datafile"}, maxCount="2", sort={"fileSize": "desc"},
                     search_after=short))
    # A page of another sort: one key more.
    error(cat.search({"target": "Datafile"}, maxCount="2",
                     sort={"fileSize": "desc", "name": "asc"}, search_after=after))
    bad = {**after, "fields": [{"x": 1}, after["fields"][1]]}
    error(cat.search({"target": "Datafile"}, maxCount="2", sort={"fileSize": "desc"},
                     search_after=bad))


@pytest.mark.parametrize("search_after", ["{not json", "[1, 2]", '"x"'])
def test_malformed_search_after_is_bad_parameter(cat: Catalogue, search_after: str) -> None:
    error(cat.search({"target": "Datafile"}, search_after=search_after))


@pytest.mark.parametrize("sort", ['{"name": "up"}', '{"name": 1}', "{bad", '["name"]',
                                  '{"nosuchfield": "asc"}'])
def test_bad_sort_is_bad_parameter(cat: Catalogue, sort: str) -> None:
    error(cat.search({"target": "Datafile"}, sort=sort))


def test_source_of_results(cat: Catalogue) -> None:
    (inv,) = cat.ok({"target": "Investigation", "text": "v20a"})["results"]
    src = inv["source"]
    assert src["id"] == cat.ids["inv:A"]
    assert src["title"] == "Thermal expansion of olivine"
    assert src["visitId"] == "V20A" and src["name"] == "ALPHA-2020"
    assert src["startDate"] == ms("2020-01-10T08:00")
    assert src["endDate"] == ms("2020-01-12T18:00")
    assert src["type.name"] == "experiment"
    assert [i["instrument.name"] for i in src["investigationinstrument"]] == ["I11"]
    (df,) = cat.ok({"target": "Datafile", "text": "flat_001"})["results"]
    src = df["source"]
    assert src["location"] == "/data/bravo/flat_001.tiff"
    assert src["fileSize"] == 5000 and src["fileCount"] == 1
    assert src["date"] == ms("2021-06-02T12:00")
    assert src["dataset.name"] == "bravo-raw"
    assert src["investigation.id"] == cat.ids["inv:B"]
    assert src["datafileFormat.name"] == "tiff"
    assert sorted(i["instrument.name"] for i in src["investigationinstrument"]) == [
        "I11", "I15"]


# -- 3. user, restrict, userFullName, dates ------------------------------------------------------

@pytest.mark.parametrize(("target", "user", "expected"), [
    ("Investigation", "simple/jdoe", "inv:A inv:D"),
    ("Investigation", "simple/acord", "inv:A inv:B"),
    ("Investigation", "simple/rbeck", "inv:B inv:C"),  # instrument scientist of I15
    ("Investigation", "simple/nobody", ""),
    ("Investigation", "jdoe", ""),  # the full user name, exactly
    ("Dataset", "simple/rbeck", "ds:bravo-raw ds:charlie-raw"),
    ("Dataset", "simple/jdoe", "ds:alpha-raw ds:alpha-processed ds:delta-raw"),
    ("Datafile", "simple/nbour", "df:6"),
    ("Datafile", "simple/rbeck", "df:4 df:5 df:6"),
])
def test_user(cat: Catalogue, target: str, user: str, expected: str) -> None:
    same(cat.found(target, user=user), keys(cat, expected))


def test_samples(cat: Catalogue) -> None:
    same(cat.found("Investigation", samples=["zircon"]), cat.inv("C"))
    same(cat.found("Investigation", samples=["silicate"]), cat.inv("A", "B", "D"))
    same(cat.found("Investigation", samples=["silicate", "beryl*"]), cat.inv("B"))
    same(cat.found("Dataset", samples=["oxide"]), cat.ds("charlie-raw"))
    same(cat.found("Investigation", "olivine", samples=["topaz"]), cat.inv("D"))


def test_user_with_text(cat: Catalogue) -> None:
    same(cat.found("Investigation", "olivine", user="simple/acord"), cat.inv("A"))


def test_restrict_adds_the_caller(cat: Catalogue) -> None:
    same(cat.found("Investigation", user="simple/jdoe"), cat.inv("A", "D"))
    r = cat.ok({"target": "Investigation"}, user="jdoe", restrict="true", maxCount="100")
    same([x["id"] for x in r["results"]], cat.inv("A", "D"))
    r = cat.ok({"target": "Investigation", "text": "olivine"}, user="acord", restrict="true")
    same([x["id"] for x in r["results"]], cat.inv("A"))
    r = cat.ok({"target": "Datafile"}, user="rbeck", restrict="true")
    same([x["id"] for x in r["results"]], cat.df(4, 5, 6))
    r = cat.ok({"target": "Investigation"}, user="root", restrict="true")
    assert r["results"] == []
    # Anything but true is false.
    r = cat.ok({"target": "Investigation"}, user="root", restrict="yes")
    same([x["id"] for x in r["results"]], cat.inv("A", "B", "C", "D"))


def test_restrict_keeps_a_user_given(cat: Catalogue) -> None:
    # acord's investigations (A, B) that jdoe may read (A, D).
    r = cat.ok({"target": "Investigation", "user": "simple/acord"}, user="jdoe",
               restrict="true")
    same([x["id"] for x in r["results"]], cat.inv("A"))


def test_restricted_pages_end_with_the_readable_results(cat: Catalogue) -> None:
    # jdoe reads A and D only: two results fill a page of two, and nothing is left.
    r = cat.ok({"target": "Investigation"}, user="jdoe", maxCount="2", sort={"date": "asc"})
    assert [x["id"] for x in r["results"]] == cat.inv("A", "D")
    assert "search_after" not in r
    r = cat.ok({"target": "Investigation"}, user="jdoe", maxCount="1", sort={"date": "asc"})
    assert [x["id"] for x in r["results"]] == cat.inv("A")
    r = cat.ok({"target": "Investigation"}, user="jdoe", maxCount="1", sort={"date": "asc"},
               search_after=r["search_after"])
    assert [x["id"] for x in r["results"]] == cat.inv("D")
    assert "search_after" not in r


def test_results_are_what_the_caller_may_read(cat: Catalogue) -> None:
    r = cat.ok({"target": "Investigation", "text": "hexham"}, user="jdoe")
    same([x["id"] for x in r["results"]], cat.inv("A", "D"))
    r = cat.ok({"target": "Investigation", "text": "hexham"}, user="rbeck")
    same([x["id"] for x in r["results"]], cat.inv("B", "C"))
    r = cat.ok({"target": "Datafile", "text": "nxs"}, user="nbour")
    same([x["id"] for x in r["results"]], cat.df(6))
    # Pages are always full for a restricted caller too.
    r = cat.ok({"target": "Datafile"}, user="acord", maxCount="3")
    assert len(r["results"]) == 3 and "search_after" in r


@pytest.mark.parametrize(("text", "expected"), [
    ("doe", "inv:A inv:D"),
    ("alice", "inv:A inv:B"),
    ("Nora OR Robert", "inv:C"),  # Robert Beck is a scientist, not an investigation user
    ("robert", ""),
    ("bour*", "inv:C"),
    ('"john doe"', "inv:A inv:D"),
    ('"doe john"', ""),
    ("alice -john", "inv:A inv:B"),
])
def test_user_full_name(cat: Catalogue, text: str, expected: str) -> None:
    same(cat.found("Investigation", userFullName=text), keys(cat, expected))


DATE_CASES = [
    # Investigation and Dataset: start and end inside the window, both ends inclusive.
    ("Investigation", "202001100800", "202001121800", "inv:A"),
    ("Investigation", "202001100801", "202001121800", ""),
    ("Investigation", "202001100800", "202001121759", ""),
    ("Investigation", ms("2020-01-10T08:00"), ms("2020-01-12T18:00"), "inv:A"),
    ("Investigation", ms("2020-01-10T08:00"), ms("2020-01-12T18:00") - 1, ""),
    ("Investigation", ms("2021-01-01T00:00"), ms("2022-12-31T23:59"), "inv:B inv:C"),
    ("Investigation", "202203100000", "202203300000", ""),  # C started before
    ("Investigation", "202301010000", "202001010000", ""),  # lower after upper
    ("Investigation", "202201010000", None, "inv:C inv:D"),
    ("Investigation", None, "202112312359", "inv:A inv:B"),
    # DataGateway's sentinels for an open end.
    ("Investigation", "0000001010000", "202012312359", "inv:A"),
    ("Investigation", "202201010000", "9000012312359", "inv:C inv:D"),
    ("Investigation", "0000001010000", "9000012312359", "inv:A inv:B inv:C inv:D"),
    ("Dataset", "202106020000", "202106022359", "ds:bravo-raw"),
    ("Dataset", "202001100000", "202001112359", "ds:alpha-raw"),
    ("Dataset", "202001100000", "202001122359", "ds:alpha-raw ds:alpha-processed"),
    # Datafile: its date.
    ("Datafile", "202106021200", "202106021259", "df:4"),
    ("Datafile", "202106021200", "202106021300", "df:4 df:5"),  # to the end of the minute
    ("Datafile", ms("2021-06-02T13:00"), ms("2021-06-02T13:00"), "df:5"),
    ("Datafile", ms("2021-06-02T12:00") + 1, ms("2021-06-02T13:00") - 1, ""),
    ("Datafile", "202309010000", "202309012359", "df:7"),  # datafileCreateTime
    ("Datafile", "0000001010000", "202001112359", "df:1 df:2"),
    ("Datafile", "202203060600", "9000012312359", "df:6 df:7"),
]


@pytest.mark.parametrize(("target", "lower", "upper", "expected"), DATE_CASES,
                         ids=[f"{t}:{lo}-{hi}" for t, lo, hi, _ in DATE_CASES])
def test_dates(cat: Catalogue, target: str, lower: Any, upper: Any, expected: str) -> None:
    kw = {k: v for k, v in (("lower", lower), ("upper", upper)) if v is not None}
    same(cat.found(target, **kw), keys(cat, expected))


@pytest.mark.parametrize("value", ["yesterday", "202013011200", "2020011", True, [2020],
                                   {"y": 2020}])
def test_bad_dates_are_bad_parameter(cat: Catalogue, value: Any) -> None:
    error(cat.search({"target": "Investigation", "lower": value}))
    error(cat.search({"target": "Datafile", "upper": value}))


# -- 4. parameters and filters -------------------------------------------------------------------

PARAMETER_CASES: list[tuple[str, list[dict[str, Any]], str]] = [
    ("Investigation", [{"name": "colour", "units": "N/A", "stringValue": "red"}],
     "inv:A inv:C"),
    ("Investigation", [{"name": "colour", "units": "N/A", "stringValue": "r?d"}],
     "inv:A inv:C"),
    ("Investigation", [{"name": "colour", "units": "N/A", "stringValue": "*ee*"}], "inv:B"),
    ("Investigation", [{"name": "colour", "units": "N/A", "stringValue": "*"}],
     "inv:A inv:B inv:C inv:D"),
    ("Investigation", [{"name": "col*", "units": "*", "stringValue": "blue"}], "inv:D"),
    ("Investigation", [{"name": "colour", "units": "N/A", "stringValue": "Red"}], ""),
    ("Investigation", [{"name": "colour", "units": "K", "stringValue": "red"}], ""),
    # Numeric ranges compare in each type's units: A 300 K, B 25 degC, C 4.2 K, D 500 degC.
    ("Investigation", [{"name": "temperature", "units": "K", "lowerNumericValue": 290,
                        "upperNumericValue": 310}], "inv:A inv:B"),
    ("Investigation", [{"name": "temperature", "units": "degC", "lowerNumericValue": 20,
                        "upperNumericValue": 30}], "inv:A inv:B"),
    ("Investigation", [{"name": "temperature", "units": "degC", "lowerNumericValue": 26,
                        "upperNumericValue": 26.5}], ""),
    ("Investigation", [{"name": "temperature", "units": "K", "lowerNumericValue": 700,
                        "upperNumericValue": 800}], "inv:D"),
    ("Investigation", [{"name": "temperature", "units": "K", "lowerNumericValue": 0,
                        "upperNumericValue": 10}], "inv:C"),
    ("Investigation", [{"name": "temp*", "units": "K", "lowerNumericValue": 298.1,
                        "upperNumericValue": 298.2}], "inv:B"),
    ("Investigation", [{"name": "energy", "units": "keV", "lowerNumericValue": 11,
                        "upperNumericValue": 13}], "inv:A"),
    ("Investigation", [{"name": "energy", "units": "K", "lowerNumericValue": 0,
                        "upperNumericValue": 1e9}], ""),  # not convertible
    # Units that are a pattern, not a unit: raw values of the types whose units match.
    ("Investigation", [{"name": "temperature", "units": "*", "lowerNumericValue": 0,
                        "upperNumericValue": 30}], "inv:B inv:C"),
    # Dates.
    ("Investigation", [{"name": "start_time", "units": "N/A",
                        "lowerDateValue": "202203050000", "upperDateValue": "202203051000"}],
     "inv:C"),
    ("Investigation", [{"name": "start_time", "units": "N/A",
                        "lowerDateValue": ms("2023-09-01T06:00"),
                        "upperDateValue": ms("2023-09-01T06:00")}], "inv:D"),
    ("Investigation", [{"name": "start_time", "units": "N/A",
                        "lowerDateValue": "202203051001", "upperDateValue": "202309010559"}],
     ""),
    # Several parameters must all match.
    ("Investigation", [{"name": "colour", "units": "N/A", "stringValue": "red"},
                       {"name": "temperature", "units": "K", "lowerNumericValue": 0,
                        "upperNumericValue": 10}], "inv:C"),
    ("Investigation", [{"name": "colour", "units": "N/A", "stringValue": "green"},
                       {"name": "temperature", "units": "K", "lowerNumericValue": 0,
                        "upperNumericValue": 10}], ""),
    ("Dataset", [{"name": "temperature", "units": "K", "lowerNumericValue": 300,
                  "upperNumericValue": 305}], "ds:bravo-raw"),
    ("Dataset", [{"name": "temperature", "units": "K", "lowerNumericValue": 300,
                  "upperNumericValue": 310}], "ds:alpha-raw ds:bravo-raw"),
    ("Dataset", [{"name": "energy", "units": "eV", "lowerNumericValue": 7999,
                  "upperNumericValue": 8001}], "ds:charlie-raw"),
    ("Datafile", [{"name": "temperature", "units": "degC", "lowerNumericValue": -270,
                   "upperNumericValue": -268}], "df:6"),
    ("Datafile", [{"name": "temperature", "units": "K", "lowerNumericValue": 304.9,
                   "upperNumericValue": 305.1}], "df:1"),
    ("Datafile", [{"name": "colour", "units": "N/A", "stringValue": "wh*"}], "df:4"),
]


@pytest.mark.parametrize(("target", "parameters", "expected"), PARAMETER_CASES,
                         ids=[f"{t}:{json.dumps(p)}" for t, p, _ in PARAMETER_CASES])
def test_parameters(cat: Catalogue, target: str, parameters: list[dict[str, Any]],
                    expected: str) -> None:
    same(cat.found(target, parameters=parameters), keys(cat, expected))


def temperature(low: float, high: float, units: str | None = None) -> dict[str, Any]:
    """A DataGateway parameter filter on temperature."""
    rng: dict[str, Any] = {"field": "numericValue", "from": low, "to": high}
    if units is not None:
        rng["units"] = units
    return {"key": "k", "label": "l", "filter": [{"field": "type.name", "value": "temperature"},
                                                 rng]}


def colour(value: str) -> dict[str, Any]:
    return {"key": "c", "label": "c", "filter": [{"field": "stringValue", "value": value},
                                                 {"field": "type.name", "value": "colour"}]}


FILTER_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("Investigation", {"investigation.type.name": ["experiment"]}, "inv:A inv:C inv:D"),
    ("Investigation", {"investigation.type.name": "calibration"}, "inv:B"),
    ("Investigation", {"investigation.type.name": []}, ""),
    ("Investigation", {"investigationInstrument.instrument.name": ["I11"]},
     "inv:A inv:B inv:D"),
    ("Investigation", {"investigationInstrument.instrument.name": ["I15"]}, "inv:B inv:C"),
    ("Investigation", {"sample.sample.type.name": ["oxide"]}, "inv:C"),
    ("Investigation", {"sample.sample.type.name": ["silicate", "oxide"]},
     "inv:A inv:B inv:C inv:D"),
    ("Investigation", {"investigation.type.name": ["experiment"],
                       "investigationInstrument.instrument.name": ["I11"],
                       "sample.sample.type.name": ["silicate"]}, "inv:A inv:D"),
    ("Investigation", {"investigation.type.name": ["experiment"],
                       "investigationInstrument.instrument.name": ["I15"],
                       "sample.sample.type.name": ["silicate"]}, ""),
    ("Investigation", {"investigationParameter": [temperature(10, 30, "degC")]},
     "inv:A inv:B"),
    ("Investigation", {"investigationParameter": [temperature(280, 310, "K")]},
     "inv:A inv:B"),
    ("Investigation", {"investigationParameter": [temperature(770, 780, "K")]}, "inv:D"),
    ("Investigation", {"investigationParameter": [temperature(0, 30)]}, "inv:B inv:C"),
    ("Investigation", {"investigationParameter": [colour("red")]}, "inv:A inv:C"),
    ("Investigation", {"investigationParameter": [temperature(0, 10, "K"), colour("red")]},
     "inv:C"),
    ("Investigation", {"investigationParameter": [temperature(0, 10, "K"), colour("green")]},
     ""),
    ("Investigation", {"investigationParameter": [{"key": "d", "label": "d", "filter": [
        {"field": "type.name", "value": "start_time"},
        {"field": "dateTimeValue", "from": ms("2022-01-01T00:00"),
         "to": ms("2022-12-31T00:00")}]}]}, "inv:C"),
    ("Dataset", {"investigationInstrument.instrument.name": ["I15"]},
     "ds:bravo-raw ds:charlie-raw"),
    ("Dataset", {"dataset.type.name": ["processed"]}, "ds:alpha-processed"),
    ("Dataset", {"sample.type.name": ["oxide"]}, "ds:charlie-raw"),
    ("Dataset", {"datasetParameter": [temperature(300, 305, "K")]}, "ds:bravo-raw"),
    ("Dataset", {"datasetParameter": [temperature(25, 40, "degC")]},
     "ds:alpha-raw ds:bravo-raw"),
    ("Datafile", {"investigationInstrument.instrument.name": ["I15"]}, "df:4 df:5 df:6"),
    ("Datafile", {"datafile.datafileFormat.name": ["tiff", "ascii"]}, "df:3 df:4 df:7"),
    ("Datafile", {"datafileParameter": [temperature(-270, -268, "degC")]}, "df:6"),
]


@pytest.mark.parametrize(("target", "flt", "expected"), FILTER_CASES,
                         ids=[f"{t}:{json.dumps(f)}" for t, f, _ in FILTER_CASES])
def test_filter(cat: Catalogue, target: str, flt: dict[str, Any], expected: str) -> None:
    same(cat.found(target, filter=flt), keys(cat, expected))


def test_filter_exact_numeric_values_with_units(cat: Catalogue) -> None:
    def exact(value: float, units: str) -> dict[str, Any]:
        return {"investigationParameter": [{"filter": [
            {"field": "type.name", "value": "temperature"},
            {"field": "numericValue", "exact": value, "units": units}]}]}
    same(cat.found("Investigation", filter=exact(300, "K")), cat.inv("A"))
    same(cat.found("Investigation", filter=exact(25, "degC")), cat.inv("B"))
    same(cat.found("Investigation", filter=exact(4.2, "K")), cat.inv("C"))
    same(cat.found("Investigation", filter=exact(301, "K")), [])


def test_filter_ranges_on_document_fields(cat: Catalogue) -> None:
    # Numbers, as icat.lucene's long fields: sizes, and dates in epoch milliseconds.
    same(cat.found("Datafile", filter={"datafile.fileSize": {"from": 1000, "to": 3000}}),
         cat.df(1, 2, 5, 7))
    same(cat.found("Investigation", filter={"investigation.startDate": {
        "from": ms("2021-01-01T00:00"), "to": ms("2022-12-31T00:00")}}), cat.inv("B", "C"))


def test_filter_on_an_investigation_s_file_size(cat: Catalogue) -> None:
    # The sums of their datafiles, kept by the database (cairn.db.sizes): A 4200, B and C
    # 8000, D 3000 bytes.
    same(cat.found("Investigation", filter={"investigation.fileSize": {"from": 4000,
                                                                       "to": 8000}}),
         cat.inv("A", "B", "C"))
    same(cat.found("Investigation", filter={"investigation.fileSize": {"from": 0, "to": 0}}),
         [])


def test_huge_numbers(cat: Catalogue) -> None:
    """Numbers beyond 64 bits are open bounds, not server errors."""
    big = 10**30
    same(cat.found("Investigation", filter={"investigationParameter": [{"filter": [
        {"field": "numericValue", "from": 0, "to": big}]}]}), cat.inv("A", "B", "C", "D"))
    same(cat.found("Datafile", filter={"datafile.fileSize": {"from": 0, "to": big}}),
         cat.df(1, 2, 3, 4, 5, 6, 7))
    r = cat.ok({"target": "Datafile"}, sort={"fileSize": "desc"},
               search_after={"doc": 1, "shardIndex": 0, "fields": [big, 1]})
    assert [x["id"] for x in r["results"]] == cat.df(6, 4, 2, 5, 7, 1, 3)


@pytest.mark.parametrize(("sort", "fields"), [
    ({"fileSize": "desc"}, ["abc", 1]),
    (None, ["abc", 1]),  # relevance: a score
    ({"date": "desc"}, ["abc", 1]),
    ({"fileSize": "desc"}, [3000, "abc"]),  # the id
])
def test_search_after_of_the_wrong_type(cat: Catalogue, sort: dict[str, str] | None,
                                        fields: list[Any]) -> None:
    kw: dict[str, Any] = {"search_after": {"doc": 1, "shardIndex": 0, "fields": fields}}
    if sort is not None:
        kw["sort"] = sort
    error(cat.search({"target": "Datafile"}, **kw))


@pytest.mark.parametrize("query", [
    {"target": "Investigation", "user": "simple/jdoe\u0000"},
    {"target": "Investigation", "parameters": [{"name": "colour", "units": "N/A",
                                                "stringValue": "red\u0000"}]},
    {"target": "Investigation", "parameters": [{"name": "col\u0000", "units": "N/A",
                                                "stringValue": "red"}]},
    {"target": "Investigation", "filter": {"investigation.type.name": ["experiment\u0000"]}},
    {"target": "Investigation", "filter": {"investigation.title": {"from": 0, "to": 5}}},
    {"target": "Investigation", "text": "olivine\u0000 x"},
])
def test_odd_values_find_nothing_or_are_bad_parameter(cat: Catalogue,
                                                      query: dict[str, Any]) -> None:
    r = cat.search(query)
    if r.status_code == 400:
        error(r)
    else:
        assert r.status_code == 200, r.text
        ids = [x["id"] for x in r.json()["results"]]
        if "text" in query:
            same(ids, cat.inv("A", "D"))
        else:
            assert ids == []


def test_filter_with_text_user_and_dates(cat: Catalogue) -> None:
    flt = {"investigationInstrument.instrument.name": ["I11"]}
    same(cat.found("Investigation", "olivine", filter=flt), cat.inv("A", "D"))
    same(cat.found("Investigation", "olivine", filter=flt, user="simple/acord"),
         cat.inv("A"))
    same(cat.found("Investigation", filter=flt, lower="202101010000"), cat.inv("B", "D"))


# -- 5. facets -----------------------------------------------------------------------------------

DG_INVESTIGATION_FACETS = [
    {"target": "Investigation"},
    {"target": "InvestigationParameter", "dimensions": [{"dimension": "type.name"}]},
    {"target": "Sample", "dimensions": [{"dimension": "sample.type.name"}]},
    {"target": "InvestigationInstrument", "dimensions": [{"dimension": "instrument.name"}]},
]


def test_datagateway_investigation_facets_count_the_whole_result(cat: Catalogue) -> None:
    body = cat.ok({"target": "Investigation", "text": "hexham",
                   "facets": DG_INVESTIGATION_FACETS}, maxCount="1")
    assert len(body["results"]) == 1 and "search_after" in body
    assert body["dimensions"] == {
        "Investigation.type.name": {"experiment": 3, "calibration": 1},
        # Distinct investigations: C's two oxide samples count once.
        "InvestigationParameter.type.name": {"colour": 4, "temperature": 4, "start_time": 2,
                                             "energy": 1},
        "Sample.sample.type.name": {"silicate": 3, "oxide": 1},
        "InvestigationInstrument.instrument.name": {"I11": 3, "I15": 2},
    }
    # Most frequent first.
    assert list(body["dimensions"]["Investigation.type.name"]) == ["experiment",
                                                                   "calibration"]
    assert list(body["dimensions"]["Sample.sample.type.name"]) == ["silicate", "oxide"]


def test_facets_follow_the_query(cat: Catalogue) -> None:
    body = cat.ok({"target": "Investigation", "text": "olivine",
                   "facets": DG_INVESTIGATION_FACETS}, maxCount="1")
    assert body["dimensions"] == {
        "Investigation.type.name": {"experiment": 2},
        "InvestigationParameter.type.name": {"colour": 2, "temperature": 2, "energy": 1,
                                             "start_time": 1},
        "Sample.sample.type.name": {"silicate": 2},
        "InvestigationInstrument.instrument.name": {"I11": 2},
    }


def test_facets_count_only_what_the_caller_may_read(cat: Catalogue) -> None:
    body = cat.ok({"target": "Investigation", "text": "hexham",
                   "facets": DG_INVESTIGATION_FACETS}, user="jdoe", maxCount="1")
    assert len(body["results"]) == 1
    assert body["dimensions"] == {
        "Investigation.type.name": {"experiment": 2},
        "InvestigationParameter.type.name": {"colour": 2, "temperature": 2, "energy": 1,
                                             "start_time": 1},
        "Sample.sample.type.name": {"silicate": 2},
        "InvestigationInstrument.instrument.name": {"I11": 2},
    }


def test_facets_are_the_same_on_every_page(cat: Catalogue) -> None:
    query = {"target": "Investigation", "text": "hexham", "facets": DG_INVESTIGATION_FACETS}
    first = cat.ok(query, maxCount="1")
    second = cat.ok(query, maxCount="1", search_after=first["search_after"])
    assert second["dimensions"] == first["dimensions"]
    assert first["results"][0]["id"] != second["results"][0]["id"]


def test_facets_count_only_related_rows_the_caller_may_read(cat: Catalogue) -> None:
    # rbeck reads B and C as a scientist of I15, but none of their parameters, samples or
    # instrument links (those rules are for investigation users).
    body = cat.ok({"target": "Investigation", "text": "hexham",
                   "facets": DG_INVESTIGATION_FACETS}, user="rbeck")
    same([x["id"] for x in body["results"]], cat.inv("B", "C"))
    assert body["dimensions"] == {"Investigation.type.name": {"calibration": 1,
                                                              "experiment": 1}}


def test_numeric_range_facets_of_parameters(cat: Catalogue) -> None:
    # Raw values: A 300 and 12000, B 25, C 4.2, D 500; counted once per investigation.
    body = cat.ok({"target": "Investigation", "facets": [
        {"target": "InvestigationParameter", "dimensions": [
            {"dimension": "numericValue", "ranges": [{"key": "low", "from": 0, "to": 100},
                                                     {"key": "high", "from": 100}]}]}]})
    assert body["dimensions"] == {"InvestigationParameter.numericValue": {"low": 2,
                                                                          "high": 2}}


def test_date_range_facets(cat: Catalogue) -> None:
    # Dates are epoch milliseconds, as icat.lucene's long fields.
    y2021, y2023 = ms("2021-01-01T00:00"), ms("2023-01-01T00:00")
    body = cat.ok({"target": "Investigation", "facets": [
        {"target": "Investigation", "dimensions": [
            {"dimension": "startDate", "ranges": [{"key": "old", "to": y2021},
                                                  {"key": "mid", "from": y2021, "to": y2023},
                                                  {"key": "new", "from": y2023}]}]},
        {"target": "InvestigationParameter", "dimensions": [
            {"dimension": "dateTimeValue", "ranges": [{"key": "before", "from": 0,
                                                       "to": y2023},
                                                      {"key": "after", "from": y2023}]}]}]})
    assert body["dimensions"] == {
        "Investigation.startDate": {"old": 1, "mid": 2, "new": 1},
        "InvestigationParameter.dateTimeValue": {"before": 1, "after": 1}}


def test_facets_of_an_empty_result(cat: Catalogue) -> None:
    body = cat.ok({"target": "Investigation", "text": "nosuchword",
                   "facets": DG_INVESTIGATION_FACETS})
    assert body == {"results": []}


def test_datagateway_dataset_facets(cat: Catalogue) -> None:
    body = cat.ok({"target": "Dataset", "facets": [
        {"target": "Dataset"},
        {"target": "DatasetParameter", "dimensions": [{"dimension": "type.name"}]},
        {"target": "InvestigationInstrument", "dimensions": [{"dimension": "instrument.name"}]},
    ]}, maxCount="2")
    assert body["dimensions"] == {
        "Dataset.type.name": {"raw": 4, "processed": 1},
        "Dataset.sample.type.name": {"silicate": 3, "oxide": 1},
        "DatasetParameter.type.name": {"temperature": 2, "energy": 1},
        "InvestigationInstrument.instrument.name": {"I11": 4, "I15": 2},
    }


@pytest.mark.parametrize("text", ["-beryl", "NOT sample.name:beryl", "raw -beryl"])
def test_excluding_a_related_word_keeps_rows_without_that_relation(cat: Catalogue,
                                                                   text: str) -> None:
    """alpha-processed has no sample: it lacks ``beryl`` as Lucene's document does, on the
    page and in the counts (which read every match at once, a path of their own)."""
    expected = keys(cat, "ds:alpha-raw ds:alpha-processed ds:charlie-raw ds:delta-raw")
    if text.startswith("raw"):
        expected = keys(cat, "ds:alpha-raw ds:charlie-raw ds:delta-raw")
    same(cat.found("Dataset", text), expected)
    body = cat.ok({"target": "Dataset", "text": text, "facets": [{"target": "Dataset"}]},
                  maxCount="1000")
    same([int(x["id"]) for x in body["results"]], expected)
    assert sum(body["dimensions"]["Dataset.type.name"].values()) == len(expected)


def test_datagateway_datafile_facets(cat: Catalogue) -> None:
    body = cat.ok({"target": "Datafile", "facets": [
        {"target": "Datafile"},
        {"target": "DatafileParameter", "dimensions": [{"dimension": "type.name"}]},
    ]}, maxCount="1")
    assert body["dimensions"] == {
        "Datafile.datafileFormat.name": {"nexus": 4, "ascii": 2, "tiff": 1},
        "Datafile.sample.type.name": {"silicate": 5, "oxide": 1},
        "DatafileParameter.type.name": {"temperature": 2, "colour": 1},
    }


def test_range_facets(cat: Catalogue) -> None:
    # Sizes 200, 1000, 3000 (three), 5000, 8000; each range is [from, to).
    body = cat.ok({"target": "Datafile", "facets": [{"target": "Datafile", "dimensions": [
        {"dimension": "fileSize", "ranges": [{"from": 0, "to": 1000}, {"from": 1000, "to": 5000},
                                             {"key": "big", "from": 5000},
                                             {"key": "none", "from": 9000, "to": 10000}]}]}]},
        maxCount="1")
    assert body["dimensions"] == {"Datafile.fileSize": {"0-1000": 1, "1000-5000": 4,
                                                        "big": 2, "none": 0}}
    assert list(body["dimensions"]["Datafile.fileSize"]) == ["0-1000", "1000-5000", "big",
                                                             "none"]


@pytest.mark.parametrize(("user", "expected"), [
    ("jdoe", {"old": 2, "mid": 0, "new": 1}),  # A (2020: two datasets), D (2023: one)
    ("rbeck", {"old": 0, "mid": 2, "new": 0}),  # B (2021), C (2022): one dataset each
])
def test_range_facets_of_related_rows_read_through_several_rules(
        cat: Catalogue, user: str, expected: dict[str, int]) -> None:
    # An investigation is readable through either of two rules (jdoe is a user of A and D,
    # rbeck a scientist of B's and C's instrument); each range still counts only the
    # datasets whose investigation started within it.
    y2021, y2023 = ms("2021-01-01T00:00"), ms("2023-01-01T00:00")
    body = cat.ok({"target": "Dataset", "facets": [{"target": "Investigation", "dimensions": [
        {"dimension": "startDate", "ranges": [{"key": "old", "to": y2021},
                                              {"key": "mid", "from": y2021, "to": y2023},
                                              {"key": "new", "from": y2023}]}]}]},
        user=user, maxCount="1")
    assert body["dimensions"] == {"Investigation.startDate": expected}


def test_range_facets_follow_the_query(cat: Catalogue) -> None:
    body = cat.ok({"target": "Datafile", "text": "nxs", "facets": [
        {"target": "Datafile", "dimensions": [
            {"dimension": "fileSize", "ranges": [{"key": "small", "to": 2000},
                                                 {"key": "large", "from": 2000}]}]}]})
    assert body["dimensions"] == {"Datafile.fileSize": {"small": 1, "large": 3}}


def test_facet_documents_for_known_investigations(cat: Catalogue) -> None:
    query = {"target": "Investigation",
             "facets": [{"target": "InvestigationParameter",
                         "dimensions": [{"dimension": "stringValue"}]}],
             "filter": {"investigation.id": cat.inv("A", "B", "C"), "type.name": "colour"}}
    r = cat.facet(query)
    assert r.status_code == 200, r.text
    assert r.json() == {"dimensions": {"InvestigationParameter.stringValue": {"red": 2,
                                                                              "green": 1}}}
    query["filter"] = {"investigation.id": cat.inv("D"), "type.name": "colour"}
    assert cat.facet(query).json() == {
        "dimensions": {"InvestigationParameter.stringValue": {"blue": 1}}}
    query["filter"] = {"investigation.id": [], "type.name": "colour"}
    assert cat.facet(query).json() == {}


def test_facet_documents_without_dimensions(cat: Catalogue) -> None:
    r = cat.facet({"target": "Investigation", "facets": [{"target": "InvestigationParameter"}],
                   "filter": {"investigation.id": cat.inv("A")}})
    assert r.status_code == 200, r.text
    assert r.json() == {"dimensions": {
        "InvestigationParameter.type.name": {"colour": 1, "energy": 1, "temperature": 1},
        "InvestigationParameter.stringValue": {"red": 1}}}


def test_facet_documents_counts_what_the_caller_may_read(cat: Catalogue) -> None:
    query = {"target": "Investigation",
             "facets": [{"target": "InvestigationParameter",
                         "dimensions": [{"dimension": "stringValue"}]}],
             "filter": {"investigation.id": cat.inv("A", "B", "C", "D"),
                        "type.name": "colour"}}
    r = cat.facet(query, user="jdoe")  # reads A and D
    assert r.status_code == 200, r.text
    assert r.json() == {"dimensions": {"InvestigationParameter.stringValue": {"red": 1,
                                                                              "blue": 1}}}


@pytest.mark.parametrize("facets", [
    "not a list",
    [{"dimensions": [{"dimension": "type.name"}]}],  # no target
    [{"target": 5}],
    [{"target": "Investigation", "dimensions": "type.name"}],
    [{"target": "Investigation", "dimensions": [{"ranges": []}]}],
    [{"target": "Investigation", "dimensions": [{"dimension": "nosuchfield"}]}],
    [{"target": "Keyword"}],  # not a Datafile's
    [{"target": "Datafile", "dimensions": [{"dimension": "fileSize", "ranges": [
        {"from": "a", "to": 5}]}]}],
    [{"target": "Datafile", "dimensions": [{"dimension": "fileSize", "ranges": "all"}]}],
    [{"target": "Datafile", "dimensions": [{"dimension": "name", "ranges": [
        {"from": 0, "to": 5}]}]}],  # ranges on text
])
def test_bad_facets_are_bad_parameter(cat: Catalogue, facets: Any) -> None:
    error(cat.search({"target": "Datafile", "facets": facets}))


# -- 6. /icat/lucene/data and /icat/lucene/db --------------------------------------------------

def test_lucene_data(cat: Catalogue) -> None:
    r = cat.server.http.get("/icat/lucene/data", params={
        "sessionId": cat.root, "query": json.dumps({"target": "Investigation",
                                                    "text": "olivine"}),
        "maxCount": "10"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["id"] for x in body] == cat.inv("A", "D")
    assert all(set(x) == {"id", "score"} for x in body), body
    assert body[0]["score"] > body[1]["score"]
    r = cat.server.http.get("/icat/lucene/data", params={
        "sessionId": cat.root, "query": json.dumps({"target": "Investigation",
                                                    "text": "olivine"}),
        "maxCount": "1"})
    assert [x["id"] for x in r.json()] == cat.inv("A")


def test_lucene_data_takes_the_whole_query(cat: Catalogue) -> None:
    r = cat.server.http.get("/icat/lucene/data", params={
        "sessionId": cat.sid("jdoe"), "maxCount": "50", "query": json.dumps({
            "target": "Datafile", "text": "nxs",
            "filter": {"investigationInstrument.instrument.name": ["I11"]}})})
    assert r.status_code == 200, r.text
    same([x["id"] for x in r.json()], cat.df(1, 2))  # jdoe reads A's and D's files


def test_lucene_data_errors(cat: Catalogue) -> None:
    http = cat.server.http
    error(http.get("/icat/lucene/data", params={"sessionId": cat.root}),
          message="query is not set")
    error(http.get("/icat/lucene/data", params={
        "sessionId": cat.root, "query": json.dumps({"target": "Sample"})}),
        message="target:Sample is not expected")
    error(http.get("/icat/lucene/data", params={
        "sessionId": cat.root, "query": json.dumps({"target": "Datafile"}),
        "maxCount": "x"}))


@pytest.mark.parametrize(("method", "path", "form"), [
    ("GET", "/icat/lucene/db", False),
    ("POST", "/icat/lucene/db", True),
    ("DELETE", "/icat/lucene/db", False),
    ("POST", "/icat/lucene/db/Datafile", True),
    ("POST", "/icat/lucene/db/Datafile/0", True),
])
def test_lucene_db_is_root_only(cat: Catalogue, method: str, path: str, form: bool) -> None:
    sid = cat.sid("jdoe")
    if form:
        r = cat.server.http.request(method, path, data={"sessionId": sid})
    else:
        r = cat.server.http.request(method, path, params={"sessionId": sid})
    error(r, 403, "INSUFFICIENT_PRIVILEGES", "user must be in rootUserNames")


def populating(cat: Catalogue) -> list[Any]:
    r = cat.server.http.get("/icat/lucene/db", params={"sessionId": cat.root})
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body, list)
    return body


def test_lucene_db_populate_keeps_answers(cat: Catalogue) -> None:
    http = cat.server.http
    before = {t: cat.found(t, "nxs OR silicate OR hexham")
              for t in ("Investigation", "Dataset", "Datafile")}
    assert before["Datafile"]
    r = http.post("/icat/lucene/db/Datafile", data={"sessionId": cat.root})
    assert r.status_code == 204, r.text
    # Searches answer the same while the rebuild runs and after it.
    assert cat.found("Datafile", "nxs OR silicate OR hexham") == before["Datafile"]
    wait_until(lambda: populating(cat) == [], 60, "the Datafile rebuild to finish")
    for t, ids in before.items():
        assert cat.found(t, "nxs OR silicate OR hexham") == ids
    # A rebuild of a range that deletes first, then everything once more.
    r = http.post("/icat/lucene/db/Investigation", data={
        "sessionId": cat.root, "minId": str(cat.ids["inv:A"] - 1),
        "maxId": str(cat.ids["inv:C"]), "delete": "true"})
    assert r.status_code == 204, r.text
    r = http.post(f"/icat/lucene/db/Dataset/{cat.ids['ds:alpha-raw'] - 1}",
                  data={"sessionId": cat.root})
    assert r.status_code == 204, r.text
    wait_until(lambda: populating(cat) == [], 60, "the rebuilds to finish")
    for t, ids in before.items():
        assert cat.found(t, "nxs OR silicate OR hexham") == ids
    assert cat.found("Investigation", "olivine") == cat.inv("A", "D")


def test_lucene_db_commit_and_stop(cat: Catalogue) -> None:
    http = cat.server.http
    assert http.post("/icat/lucene/db", data={"sessionId": cat.root}).status_code == 204
    assert http.delete("/icat/lucene/db", params={"sessionId": cat.root}).status_code == 204
    same(cat.found("Datafile", "nxs"), cat.df(1, 2, 5, 6))


@pytest.mark.parametrize(("path", "form", "message"), [
    ("/icat/lucene/db/NoSuchEntity", {}, "NoSuchEntity is not an ICAT entity"),
    ("/icat/lucene/db/datafile", {}, "datafile is not an ICAT entity"),
    ("/icat/lucene/db/Rule", {}, None),  # an entity that is not indexed
    ("/icat/lucene/db/Datafile", {"minId": "x"}, None),
    ("/icat/lucene/db/Datafile", {"minId": "10", "maxId": "5"}, None),
    ("/icat/lucene/db/Datafile/x", {}, None),
])
def test_lucene_db_bad_requests(cat: Catalogue, path: str, form: dict[str, str],
                                message: str | None) -> None:
    r = cat.server.http.post(path, data={"sessionId": cat.root, **form})
    error(r, message=message)


# -- 7. change propagation -----------------------------------------------------------------------

@pytest.fixture
def scratch(cat: Catalogue) -> Iterator[dict[str, int]]:
    """A second facility with one investigation, dataset and datafile of its own words;
    deleted afterwards, so the other tests' answers stand."""
    server, root = cat.server, cat.root
    (fac,) = create(server, root, [("Facility", {"name": "Quarry Works"})])
    f = {"id": fac}
    it, dt, dt2, st, fmt, pt = create(server, root, [
        ("InvestigationType", {"name": "survey", "facility": f}),
        ("DatasetType", {"name": "fieldwork", "facility": f}),
        ("DatasetType", {"name": "labwork", "facility": f}),
        ("SampleType", {"name": "feldspar", "molecularFormula": "KAlSi3O8", "facility": f}),
        ("DatafileFormat", {"name": "hdfive", "version": "5", "facility": f}),
        ("ParameterType", {"name": "hardness", "units": "N/A", "valueType": "STRING",
                           "facility": f, "applicableToInvestigation": True}),
    ])
    (user,) = create(server, root, [("User", {"name": "simple/ahau",
                                              "fullName": "Aroha Hau"})])
    (inv,) = create(server, root, [("Investigation", {
        "name": "ECHO-2024", "visitId": "V24E", "title": "Quarry survey",
        "summary": "Études of Ångström-scale grains near Zürich; δέλτα 東京",
        "facility": f, "type": {"id": it},
        "investigationUsers": [{"user": {"id": user}, "role": "PI"}],
        "parameters": [{"type": {"id": pt}, "stringValue": "soft"}]})])
    (sample,) = create(server, root, [("Sample", {
        "name": "moonstone-09", "type": {"id": st}, "investigation": {"id": inv}})])
    (ds,) = create(server, root, [("Dataset", {
        "name": "echo-raw", "complete": False, "investigation": {"id": inv},
        "type": {"id": dt}, "sample": {"id": sample}})])
    (df,) = create(server, root, [("Datafile", {
        "name": "echo_001.h5", "location": "/quarry/echo_001.h5", "dataset": {"id": ds},
        "datafileFormat": {"id": fmt}})])
    ids = {"facility": fac, "it": it, "dt": dt, "dt2": dt2, "st": st, "fmt": fmt, "pt": pt,
           "user": user, "inv": inv, "sample": sample, "ds": ds, "df": df}
    try:
        yield ids
    finally:
        remove(server, root, "Facility", fac)
        remove(server, root, "User", user)


def test_scratch_is_searchable_and_gone_after(cat: Catalogue, scratch: dict[str, int]
                                              ) -> None:
    assert cat.found("Investigation", "quarry") == [scratch["inv"]]
    assert cat.found("Dataset", "feldspar") == [scratch["ds"]]
    assert cat.found("Datafile", "hdfive") == [scratch["df"]]
    assert cat.found("Datafile", "moonstone") == [scratch["df"]]


@pytest.mark.parametrize(("text", "found"), [
    ("études", True), ("ÉTUDES", True), ("etudes", False),  # no diacritics folding
    ("ångström", True), ("scale", True), ('"ångström scale"', True), ("zür*", True),
    ("z?rich", True), ("ΔΈΛΤΑ", True), ("東京", True), ("summary:zürich", True),
])
def test_words_beyond_ascii(cat: Catalogue, scratch: dict[str, int], text: str,
                            found: bool) -> None:
    assert cat.found("Investigation", text) == ([scratch["inv"]] if found else [])


def test_rename_dictionaries(cat: Catalogue, scratch: dict[str, int]) -> None:
    update(cat.server, cat.root, "Facility", id=scratch["facility"], name="Basalt Works")
    update(cat.server, cat.root, "InvestigationType", id=scratch["it"], name="reconnaissance")
    update(cat.server, cat.root, "DatasetType", id=scratch["dt"], name="outcrop")
    assert cat.found("Investigation", "basalt") == [scratch["inv"]]
    assert cat.found("Investigation", "facility.name:works") == [scratch["inv"]]
    assert cat.found("Investigation", "reconnaissance") == [scratch["inv"]]
    assert cat.found("Investigation", "survey") == [scratch["inv"]]  # the title still
    assert cat.found("Investigation", "type.name:survey") == []
    assert cat.found("Dataset", "outcrop") == [scratch["ds"]]
    assert cat.found("Dataset", "fieldwork") == []
    assert cat.found("Investigation", filter={"investigation.type.name": ["reconnaissance"]}
                     ) == [scratch["inv"]]


def test_rename_sample_type(cat: Catalogue, scratch: dict[str, int]) -> None:
    update(cat.server, cat.root, "SampleType", id=scratch["st"], name="plagioclase")
    assert cat.found("Dataset", "plagioclase") == [scratch["ds"]]
    assert cat.found("Datafile", "plagioclase") == [scratch["df"]]
    assert cat.found("Investigation", "plagioclase") == [scratch["inv"]]
    assert cat.found("Dataset", "sample.type.name:plagioclase") == [scratch["ds"]]
    for target in ("Investigation", "Dataset", "Datafile"):
        assert cat.found(target, "feldspar") == []
    assert cat.found("Dataset", filter={"sample.type.name": ["plagioclase"]}) == [
        scratch["ds"]]
    body = cat.ok({"target": "Dataset", "text": "echo", "facets": [{"target": "Dataset"}]})
    assert body["dimensions"]["Dataset.sample.type.name"] == {"plagioclase": 1}


def test_rename_datafile_format(cat: Catalogue, scratch: dict[str, int]) -> None:
    update(cat.server, cat.root, "DatafileFormat", id=scratch["fmt"], name="netcdf")
    assert cat.found("Datafile", "netcdf") == [scratch["df"]]
    assert cat.found("Datafile", "datafileFormat.name:netcdf") == [scratch["df"]]
    assert cat.found("Datafile", "hdfive") == []


def test_rename_sample(cat: Catalogue, scratch: dict[str, int]) -> None:
    update(cat.server, cat.root, "Sample", id=scratch["sample"], name="sunstone-09")
    assert cat.found("Dataset", "sunstone") == [scratch["ds"]]
    assert cat.found("Datafile", "sunstone") == [scratch["df"]]
    assert cat.found("Investigation", "sunstone") == [scratch["inv"]]
    for target in ("Investigation", "Dataset", "Datafile"):
        assert cat.found(target, "moonstone") == []


def test_rename_investigation_shows_in_datasets_and_datafiles(
        cat: Catalogue, scratch: dict[str, int]) -> None:
    update(cat.server, cat.root, "Investigation", id=scratch["inv"], visitId="V99Z",
           title="Granite survey")
    assert cat.found("Dataset", "v99z") == [scratch["ds"]]
    assert cat.found("Datafile", "v99z") == [scratch["df"]]
    assert cat.found("Investigation", "granite") == [scratch["inv"]]
    assert cat.found("Investigation", "title:quarry") == []
    assert cat.found("Investigation", "quarry") == [scratch["inv"]]  # the facility's name
    assert cat.found("Dataset", "v24e") == []


def test_user_full_name_change(cat: Catalogue, scratch: dict[str, int]) -> None:
    assert cat.found("Investigation", userFullName="aroha") == [scratch["inv"]]
    update(cat.server, cat.root, "User", id=scratch["user"], fullName="Wiremu Hau")
    assert cat.found("Investigation", userFullName="wiremu") == [scratch["inv"]]
    assert cat.found("Investigation", userFullName="aroha") == []


def test_parameter_type_rename(cat: Catalogue, scratch: dict[str, int]) -> None:
    p = [{"name": "firmness", "units": "N/A", "stringValue": "soft"}]
    assert cat.found("Investigation", parameters=p) == []
    update(cat.server, cat.root, "ParameterType", id=scratch["pt"], name="firmness")
    assert cat.found("Investigation", parameters=p) == [scratch["inv"]]


def test_repointed_references(cat: Catalogue, scratch: dict[str, int]) -> None:
    assert cat.found("Dataset", "fieldwork") == [scratch["ds"]]
    update(cat.server, cat.root, "Dataset", id=scratch["ds"], type={"id": scratch["dt2"]})
    assert cat.found("Dataset", "labwork") == [scratch["ds"]]
    assert cat.found("Dataset", "fieldwork") == []
    # A dataset that loses its sample loses the sample's words.
    update(cat.server, cat.root, "Dataset", id=scratch["ds"], sample=None)
    assert cat.found("Dataset", "moonstone") == []
    assert cat.found("Datafile", "feldspar") == []
    assert cat.found("Investigation", "moonstone") == [scratch["inv"]]
    # A datafile moved to another investigation's dataset shows that visit.
    update(cat.server, cat.root, "Datafile", id=scratch["df"],
           dataset={"id": cat.ids["ds:delta-raw"]})
    try:
        assert cat.found("Datafile", "v24e") == []
        assert scratch["df"] in cat.found("Datafile", "v23d")
        assert cat.found("Datafile", "hdfive", user="simple/jdoe") == [scratch["df"]]
    finally:
        update(cat.server, cat.root, "Datafile", id=scratch["df"],
               dataset={"id": scratch["ds"]})


def test_new_datafile_searchable_at_once_and_gone_when_deleted(
        cat: Catalogue, scratch: dict[str, int]) -> None:
    (new,) = create(cat.server, cat.root, [("Datafile", {
        "name": "echo_777.h5", "location": "/quarry/deep/echo_777.h5", "fileSize": 42,
        "dataset": {"id": scratch["ds"]}, "datafileFormat": {"id": scratch["fmt"]}})])
    assert cat.found("Datafile", "777") == [new]
    assert cat.found("Datafile", "location:/quarry/deep/*") == [new]
    same(cat.found("Datafile", "hdfive"), [scratch["df"], new])
    update(cat.server, cat.root, "Datafile", id=new, name="echo_778.h5",
           location="/quarry/deep/echo_778.h5")
    assert cat.found("Datafile", "777") == []
    assert cat.found("Datafile", "778") == [new]
    remove(cat.server, cat.root, "Datafile", new)
    assert cat.found("Datafile", "778") == []
    assert cat.found("Datafile", "hdfive") == [scratch["df"]]


def test_deleting_an_investigation_removes_its_documents(
        cat: Catalogue, scratch: dict[str, int]) -> None:
    remove(cat.server, cat.root, "Investigation", scratch["inv"])
    assert cat.found("Investigation", "quarry") == []
    assert cat.found("Dataset", "echo") == []
    assert cat.found("Datafile", "echo") == []


def test_created_in_one_nested_write(cat: Catalogue, scratch: dict[str, int]) -> None:
    r = write(cat.server, cat.root, {"Dataset": {
        "name": "echo-nested", "complete": False, "investigation": {"id": scratch["inv"]},
        "type": {"id": cat.ids["dt:raw"]}, "description": "Obsidian flakes",
        "datafiles": [{"name": "flake_1.h5", "location": "/quarry/obsidian/flake_1.h5"}]}})
    assert r.status_code == 200, r.text
    (ds,) = r.json()
    assert cat.found("Dataset", "obsidian") == [ds]
    (df,) = cat.found("Datafile", "obsidian")
    assert cat.found("Datafile", "flake_1.h5") == [df]


# -- 8. wrong input ------------------------------------------------------------------------------

BAD_QUERIES: list[tuple[Any, str | None]] = [
    ({"text": "olivine"}, None),  # no target
    ({"target": 5}, "target:5 is not expected"),
    ({"target": "investigation"}, "target:investigation is not expected"),
    ({"target": "Sample"}, "target:Sample is not expected"),
    ({"target": "Investigation", "text": 5}, None),
    ({"target": "Investigation", "text": ["olivine"]}, None),
    ({"target": "Investigation", "user": 5}, None),
    ({"target": "Investigation", "userFullName": {"a": 1}}, None),
    ({"target": "Investigation", "parameters": {"name": "colour"}}, None),
    ({"target": "Investigation", "parameters": ["colour"]}, None),
    ({"target": "Investigation", "parameters": [{"units": "K", "stringValue": "x"}]},
     "name not set in one of parameters"),
    ({"target": "Investigation", "parameters": [{"name": 5, "units": "K",
                                                 "stringValue": "x"}]}, None),
    ({"target": "Investigation", "parameters": [{"name": "n", "stringValue": "x"}]},
     "units not set in parameter 'n'"),
    ({"target": "Investigation", "parameters": [{"name": "n", "units": "K"}]},
     "value not set in parameter 'n'"),
    ({"target": "Investigation", "parameters": [{"name": "n", "units": "K",
                                                 "lowerNumericValue": 1}]},
     "value not set in parameter 'n'"),
    ({"target": "Investigation", "parameters": [{"name": "n", "units": "K",
                                                 "lowerNumericValue": "a",
                                                 "upperNumericValue": 2}]}, None),
    ({"target": "Investigation", "parameters": [{"name": "n", "units": "K",
                                                 "lowerDateValue": "soon",
                                                 "upperDateValue": "later"}]}, None),
    ({"target": "Investigation", "parameters": [{"name": "n", "units": "K",
                                                 "stringValue": 5}]}, None),
    ({"target": "Investigation", "filter": ["investigation.type.name"]}, None),
    ({"target": "Investigation", "filter": "experiment"}, None),
    ({"target": "Investigation", "filter": {"investigation.type.name": 5}}, None),
    ({"target": "Investigation", "filter": {"investigation.type.name": True}}, None),
    ({"target": "Investigation", "filter": {"investigation.nosuchfield": ["x"]}}, None),
    ({"target": "Investigation", "filter": {"nosuchentity.name": ["x"]}}, None),
    ({"target": "Investigation", "filter": {"investigationParameter": [
        {"filter": [{"field": "numericValue", "from": "x", "to": 3}]}]}}, None),
    ({"target": "Investigation", "filter": {"investigationParameter": [
        {"filter": "type.name"}]}}, None),
    ({"target": "Investigation", "filter": {"investigationParameter": [
        {"filter": [{"value": "x"}]}]}}, None),
    ({"target": "Investigation", "filter": {"investigationParameter": [
        {"filter": [{"field": "type.name", "value": 5}]}]}}, None),
    ({"target": "Investigation", "filter": {"investigationParameter": [
        {"filter": [{"field": "numericValue", "from": 1, "to": 3, "units": 5}]}]}}, None),
    ({"target": "Investigation", "facets": {"target": "Investigation"}}, None),
    ({"target": "Investigation", "facets": "Investigation"}, None),
    ({"target": "Investigation", "samples": "zircon"}, None),
    ({"target": "Investigation", "lower": "soon"}, None),
    ("[1, 2]", None),
    ('"Investigation"', None),
    ("{not json", None),
    ("", None),
]


@pytest.mark.parametrize(("query", "message"), BAD_QUERIES,
                         ids=[json.dumps(q) for q, _ in BAD_QUERIES])
def test_bad_query_is_bad_parameter(cat: Catalogue, query: Any, message: str | None) -> None:
    error(cat.search(query), message=message)


def test_query_not_set(cat: Catalogue) -> None:
    error(cat.search(None), message="query is not set")
    error(cat.facet(None), message="query is not set")


@pytest.mark.parametrize(("name", "value"), [
    ("minCount", "x"), ("maxCount", "x"), ("maxCount", "-1"), ("minCount", "1.5"),
    ("maxCount", "99999999999999999999"),
])
def test_bad_counts_are_bad_parameter(cat: Catalogue, name: str, value: str) -> None:
    error(cat.search({"target": "Investigation"}, **{name: value}))


@pytest.mark.parametrize(("query", "message"), [
    ({"facets": []}, None),  # no target
    ({"target": "Sample", "facets": []}, "target:Sample is not expected"),
    ({"target": "Investigation", "filter": ["x"], "facets": []}, None),
    ({"target": "Investigation", "facets": "x", "filter": {}}, None),
    ({"target": "Investigation", "facets": [{"target": "NoSuchEntity"}],
      "filter": {"investigation.id": [1]}}, None),
    ({"target": "Investigation", "facets": [{"target": "InvestigationParameter"}],
      "filter": {"type.name": 5}}, None),
    ({"target": "Investigation", "facets": [{"target": "InvestigationParameter"}],
      "filter": {"nosuchfield": "x"}}, None),
    ({"target": "Investigation", "facets": [{"target": "InvestigationParameter"}],
      "filter": {"investigation.id": [True]}}, None),
    ("[]", None),
    ("{bad", None),
])
def test_bad_facet_documents_are_bad_parameter(cat: Catalogue, query: Any,
                                               message: str | None) -> None:
    error(cat.facet(query), message=message)


def test_unknown_session(cat: Catalogue) -> None:
    error(cat.search({"target": "Investigation"}, sid="no-such-session"), 403, "SESSION")
    r = cat.server.http.get("/icat/lucene/data", params={
        "sessionId": "no-such-session", "query": json.dumps({"target": "Investigation"})})
    error(r, 403, "SESSION")
