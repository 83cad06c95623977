"""Adversarial input against authorization (issue #4), on every backend.

1. Rule text that tries SQL injection, or names unknown entities or fields, is refused with
   BAD_PARAMETER and stores nothing (create and update alike); quotes inside rule literals are
   literals.
2. A user never reads an object its rules do not grant: not through INCLUDE, aggregates,
   COUNT(DISTINCT ...), sub-selects, ordering, LIMIT offsets, multi-item selects, paths ending
   in one-to-many fields or joined variables. (WHERE may *test* unreadable objects, §2.5: that
   is by design and shown once below; what is *selected* is always restricted.)
3. A user cannot grant itself anything: rules, groups, memberships and public steps are
   protected like any other object.

The adversary is ``rbeck``. Catalogue (facility ADV)::

    inv P (readable)  ds open (readable; files open-1 1 B, open-2 2 B, readable; param 1.0)
                      ds secret2 (file s2-1 2000 B)
                      ds it's, ds x' OR '1'='1 (readable through quoted rule literals)
    inv S             ds open2 (readable; file open2-1 4 B, not readable)
                      ds secret1 (file s1-1 1000 B; param 999.0)

No rule at all mentions DatasetParameter: any search selecting one gives the no-permission
result.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.authz_fixtures import (
    ROOT,
    Rest,
    assert_denied,
    assert_error,
    ids_of,
    unwrap,
)
from tests.integration.server import Server

EVE = "rbeck"
QUOTE1 = "it's"
QUOTE2 = "x' OR '1'='1"
READABLE_DS = sorted(["open", "open2", QUOTE1, QUOTE2])
SECRET_DS = ["secret1", "secret2"]

RULES = (
    ("SELECT i FROM Investigation i WHERE i.name = 'P'", "R"),
    ("SELECT ds FROM Dataset ds WHERE ds.name = 'open'", "R"),
    ("Dataset [name = 'open2']", "R"),
    ("SELECT ds FROM Dataset ds WHERE ds.name = 'it''s'", "R"),
    ("SELECT ds FROM Dataset ds WHERE ds.name = 'x'' OR ''1''=''1'", "R"),
    ("SELECT df FROM Datafile df WHERE df.dataset.name = 'open'", "R"),
)


@pytest.fixture(scope="module")
def rest(server: Server) -> Rest:
    return Rest(server)


@pytest.fixture(scope="module")
def ids(rest: Rest) -> dict[str, int]:
    out: dict[str, int] = {}
    out["fac"] = rest.create("Facility", name="ADV")
    fac = {"id": out["fac"]}
    it = rest.create("InvestigationType", name="exp", facility=fac)
    dst = rest.create("DatasetType", name="raw", facility=fac)
    pt = rest.create("ParameterType", name="p", units="u", valueType="NUMERIC",
                     applicableToDataset=True, facility=fac)

    def ds(name: str, files: list[tuple[str, int]], param: float | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "type": {"id": dst},
                                "datafiles": [{"name": f, "fileSize": n} for f, n in files]}
        if param is not None:
            body["parameters"] = [{"type": {"id": pt}, "numericValue": param}]
        return body

    out["inv:P"] = rest.create("Investigation", name="P", visitId="1", title="Public",
                               facility=fac, type={"id": it}, datasets=[
                                   ds("open", [("open-1", 1), ("open-2", 2)], 1.0),
                                   ds("secret2", [("s2-1", 2000)]), ds(QUOTE1, []),
                                   ds(QUOTE2, [])])
    out["inv:S"] = rest.create("Investigation", name="S", visitId="1", title="Secret",
                               facility=fac, type={"id": it}, datasets=[
                                   ds("open2", [("open2-1", 4)]),
                                   ds("secret1", [("s1-1", 1000)], 999.0)])
    for i, name in rest.ok_search(ROOT, "SELECT ds.id, ds.name FROM Dataset ds"):
        out[f"ds:{name}"] = i
    for i, name in rest.ok_search(ROOT, "SELECT df.id, df.name FROM Datafile df"):
        out[f"df:{name}"] = i
    for i, name in rest.ok_search(ROOT, "SELECT p.id, p.dataset.name FROM DatasetParameter p"):
        out[f"dsp:{name}"] = i
    out["user"] = rest.create("User", name=f"simple/{EVE}")
    out["grouping"] = rest.create("Grouping", name="admins")
    for k, (what, flags) in enumerate(RULES):
        out[f"rule:{k}"] = rest.add_rule(what, flags)
    return out


def ok(rest: Rest, query: str) -> Any:
    return rest.ok_search(EVE, query)


def ds_ids(ids: dict[str, int], names: list[str]) -> list[int]:
    return sorted(ids[f"ds:{n}"] for n in names)


# -- 1. hostile rule text ----------------------------------------------------------------------

HOSTILE = (
    "SELECT x FROM Dataset x WHERE x.name = '' OR 1=1 --'",
    "SELECT x FROM Dataset x WHERE x.name = '' OR 1=1 -- ",
    "Dataset; DROP TABLE DATASET",
    "SELECT x FROM Dataset x; DROP TABLE DATASET",
    "SELECT x FROM Dataset x WHERE x.name = 'a'; DELETE FROM DATASET",
    "SELECT x FROM Dataset x WHERE x.name = 'a' /* comment */",
    "SELECT x FROM Dataset x WHERE x.name = 'a' # comment",
    'SELECT x FROM Dataset x WHERE x.name = "a"',
    "SELECT x FROM Dataset x WHERE x.name = 'unterminated",
    "SELECT x FROM Dataset x WHERE x.name = 'a'' OR ''1''=''1",
    "SELECT x FROM Dataset x WHERE 1=1) OR (1=1",
    "SELECT x FROM Dataset x UNION SELECT y FROM Datafile y",
    "SELECT x FROM Dataset x WHERE x.id IN (SELECT ID FROM DATASET)",
    "SELECT x FROM Dataset x WHERE x.id IN (SELECT y.id FROM Nonsense y)",
    "SELECT x FROM Dataset x WHERE pg_sleep(3) IS NULL",
    "SELECT x FROM Dataset x WHERE SLEEP(3) = 0",
    "SELECT x FROM Dataset x JOIN x.investigation i JOIN i.nonsense n",
    "SELECT x FROM Dataset x WHERE x.investigation.nonsense = 'a'",
    "SELECT x FROM Nonsense x",
    "Nonsense",
    "Dataset <-> Nonsense [name = 'a']",
    "Dataset [name = '' OR 1=1]",
    "Dataset [name = 'a'] ; DROP TABLE DATASET",
    "Dataset [nonsense = 'a']",
    "SELECT x FROM Dataset x WHERE x.name = 'a' LIMIT 0, 1",
    "SELECT x.name FROM Dataset x WHERE x.name = 'a'",  # attribute rule not U-only
)


@pytest.fixture
def scratch_rule(rest: Rest, ids: dict[str, int]) -> Iterator[int]:
    rid = rest.add_rule("SELECT x FROM Dataset x WHERE x.name = 'nothing'", "R")
    try:
        yield rid
    finally:
        rest.remove("Rule", rid)


@pytest.mark.parametrize("what", HOSTILE)
def test_hostile_rule_text_is_refused_and_stores_nothing(server: Server, rest: Rest,
                                                         scratch_rule: int, what: str) -> None:
    before = server.snapshot()
    start = time.monotonic()

    def refused(entities: Any, offset: int) -> None:
        r = rest.write(ROOT, entities)
        if r.status_code == 200:  # keep the catalogue sane for the other tests, then fail
            for rid in r.json():
                rest.remove("Rule", rid)
        assert_error(r, 400, "BAD_PARAMETER", offset=offset)

    refused({"Rule": {"crudFlags": "R", "what": what}}, 0)
    refused({"Rule": {"id": scratch_rule, "what": what}}, 0)
    refused([{"Rule": {"crudFlags": "R", "what": "Datafile"}},
             {"Rule": {"crudFlags": "R", "what": what}}], 1)
    assert time.monotonic() - start < 2.5, "nothing in a rule may reach the database as SQL"
    assert server.snapshot() == before
    # The adversary's view is unchanged, the tables are all there.
    assert sorted(ids_of(ok(rest, "SELECT ds FROM Dataset ds"))) == sorted(
        rest.ok_search(ROOT, "SELECT ds.id FROM Dataset ds WHERE ds.name IN "
                             "('open', 'open2', 'it''s', 'x'' OR ''1''=''1')"))


def test_overlong_rule_is_refused(server: Server, rest: Rest, ids: dict[str, int]) -> None:
    before = server.snapshot()
    what = "SELECT x FROM Dataset x WHERE " + " OR ".join(
        f"x.name = 'n{k:04d}'" for k in range(120))
    r = rest.write(ROOT, {"Rule": {"crudFlags": "R", "what": what}})
    assert r.status_code in (400, 412), r.text
    assert r.json()["code"] in ("BAD_PARAMETER", "VALIDATION")
    assert server.snapshot() == before


def test_quoted_literals_in_rules_are_literals(rest: Rest, ids: dict[str, int]) -> None:
    names = ok(rest, "SELECT ds.name FROM Dataset ds ORDER BY ds.name")
    assert names == READABLE_DS
    for name in (QUOTE1, QUOTE2):
        assert rest.get(EVE, "Dataset", ids[f"ds:{name}"]).status_code == 200


# -- 2. reads ----------------------------------------------------------------------------------


def test_baseline(rest: Rest, ids: dict[str, int]) -> None:
    assert sorted(ids_of(ok(rest, "SELECT ds FROM Dataset ds"))) == ds_ids(ids, READABLE_DS)
    assert sorted(ids_of(ok(rest, "Dataset"))) == ds_ids(ids, READABLE_DS)
    assert ids_of(ok(rest, "SELECT i FROM Investigation i")) == [ids["inv:P"]]
    assert sorted(ok(rest, "SELECT df.name FROM Datafile df")) == ["open-1", "open-2"]
    for name in SECRET_DS:
        assert_denied(rest.get(EVE, "Dataset", ids[f"ds:{name}"]), "READ", "Dataset")
    assert_denied(rest.get(EVE, "Investigation", ids["inv:S"]), "READ", "Investigation")
    assert_denied(rest.get(EVE, "Datafile", ids["df:open2-1"]), "READ", "Datafile")
    assert_denied(rest.get(EVE, "DatasetParameter", ids["dsp:open"]), "READ",
                  "DatasetParameter")


def test_include(rest: Rest, ids: dict[str, int]) -> None:
    (item,) = ok(rest, "SELECT i FROM Investigation i INCLUDE i.datasets d, d.datafiles, "
                       "d.parameters")
    inv = unwrap(item, "Investigation")
    assert sorted(d["name"] for d in inv["datasets"]) == sorted(["open", QUOTE1, QUOTE2])
    for d in inv["datasets"]:
        assert d["parameters"] == []
        want = ["open-1", "open-2"] if d["name"] == "open" else []
        assert sorted(f["name"] for f in d["datafiles"]) == want
    for query in ("SELECT ds FROM Dataset ds WHERE ds.name = 'open2' INCLUDE 1",
                  "SELECT ds FROM Dataset ds WHERE ds.name = 'open2' "
                  "INCLUDE ds.investigation i, i.datasets, ds.datafiles, ds.parameters",
                  "Dataset INCLUDE Investigation, Datafile [name = 'open2']"):
        (item,) = ok(rest, query)
        ds = unwrap(item, "Dataset")
        assert "investigation" not in ds, query
        assert ds["datafiles"] == [] and ds["parameters"] == [], query
    r = rest.get(EVE, "Investigation i INCLUDE i.datasets d, d.datafiles", ids["inv:P"])
    assert sorted(d["name"] for d in r.json()["Investigation"]["datasets"]) == sorted(
        ["open", QUOTE1, QUOTE2])
    r = rest.get(EVE, "Dataset INCLUDE 1", ids["ds:open2"])
    assert "investigation" not in r.json()["Dataset"]
    # From a readable datafile up to its dataset and on to the unreadable sibling files.
    (item,) = ok(rest, "SELECT df FROM Datafile df WHERE df.name = 'open-1' "
                       "INCLUDE df.dataset ds, ds.investigation i, i.datasets d2, d2.datafiles")
    inv = unwrap(item, "Datafile")["dataset"]["investigation"]
    assert sorted(d["name"] for d in inv["datasets"]) == sorted(["open", QUOTE1, QUOTE2])


def readable_max_id(ids: dict[str, int]) -> int:
    return max(ds_ids(ids, READABLE_DS))


@pytest.mark.parametrize(("query", "expect"), [
    ("SELECT COUNT(ds) FROM Dataset ds", [4]),
    ("SELECT COUNT(DISTINCT ds) FROM Dataset ds", [4]),
    ("SELECT COUNT(DISTINCT ds.name) FROM Dataset ds", [4]),
    ("SELECT COUNT(ds.id) FROM Dataset ds WHERE ds.name LIKE 's%'", [0]),
    ("SELECT COUNT(DISTINCT ds.investigation) FROM Dataset ds", [1]),
    ("COUNT(Dataset)", [4]),
    ("COUNT(Datafile)", [2]),
    ("SELECT SUM(df.fileSize) FROM Datafile df", [3]),
    ("SELECT MAX(df.fileSize) FROM Datafile df", [2]),
    ("SELECT AVG(df.fileSize) FROM Datafile df", [1.5]),
    ("SUM(Datafile.fileSize)", [3]),
    ("SELECT MAX(df.fileSize) FROM Datafile df WHERE df.fileSize > 2", [None]),
    ("SELECT MAX(d.fileSize) FROM Investigation i JOIN i.datasets ds JOIN ds.datafiles d", [2]),
    # No rule mentions DatasetParameter: the no-permission result.
    ("SELECT COUNT(p) FROM DatasetParameter p", [0]),
    ("SELECT MAX(p.numericValue) FROM DatasetParameter p", []),
    ("SELECT SUM(p.numericValue) FROM DatasetParameter p", []),
    ("SELECT p.numericValue FROM DatasetParameter p", []),
    ("MAX(DatasetParameter.numericValue)", []),
    ("SELECT ds.name, MAX(p.numericValue) FROM Dataset ds JOIN ds.parameters p "
     "GROUP BY ds.name", []),
])
def test_aggregates(rest: Rest, ids: dict[str, int], query: str, expect: list[Any]) -> None:
    assert ok(rest, query) == expect


def test_max_and_min_id(rest: Rest, ids: dict[str, int]) -> None:
    assert ok(rest, "SELECT MAX(ds.id) FROM Dataset ds") == [readable_max_id(ids)]
    assert ok(rest, "MAX(Dataset.id)") == [readable_max_id(ids)]
    assert ok(rest, "SELECT MIN(ds.id) FROM Dataset ds") == [min(ds_ids(ids, READABLE_DS))]
    assert ok(rest, "SELECT MAX(i.id) FROM Investigation i") == [ids["inv:P"]]


@pytest.mark.parametrize(("query", "kind"), [
    ("SELECT (SELECT MAX(s.id) FROM Dataset s) FROM Dataset ds", "max"),
    ("SELECT ds.id, (SELECT MAX(s.id) FROM Dataset s) FROM Dataset ds", "max"),
    ("SELECT (SELECT SUM(df.fileSize) FROM Datafile df) FROM Dataset ds", "sum"),
])
def test_sub_select_in_select(rest: Rest, ids: dict[str, int], query: str, kind: str) -> None:
    """icat.server refuses sub-selects in SELECT (every name there must be a FROM variable).
    If Cairn answers, the sub-select must be restricted like a select of its own."""
    r = rest.search(EVE, query)
    if r.status_code == 400:
        assert r.json()["code"] == "BAD_PARAMETER"
        return
    assert r.status_code == 200, r.text
    rows = r.json()
    assert len(rows) == len(READABLE_DS), rows
    values = {row[-1] if isinstance(row, list) else row for row in rows}
    assert values == ({readable_max_id(ids)} if kind == "max" else {3}), rows


@pytest.mark.parametrize(("query", "expect"), [
    # The selected variable is restricted whatever the sub-select finds.
    ("SELECT ds.name FROM Dataset ds WHERE ds.id IN (SELECT s.id FROM Dataset s "
     "WHERE s.name LIKE 'secret%')", []),
    ("SELECT ds.name FROM Dataset ds WHERE EXISTS (SELECT df FROM Datafile df "
     "WHERE df.dataset = ds AND df.fileSize > 500)", []),
    ("SELECT ds.name FROM Dataset ds WHERE ds.investigation.name = 'S' ORDER BY ds.name",
     ["open2"]),
    ("SELECT ds.name FROM Dataset ds WHERE ds.name = 'zzz' OR 1=1 ORDER BY ds.name",
     READABLE_DS),
    ("SELECT ds.name FROM Dataset ds WHERE ds.name LIKE '%' OR ds.name LIKE 'secret%' "
     "ORDER BY ds.name", READABLE_DS),
    # §2.5: WHERE may test unreadable objects (here the 1000 B file of secret1), so this
    # answers every readable dataset -- and still nothing else.
    ("SELECT ds.name FROM Dataset ds WHERE (SELECT MAX(df.fileSize) FROM Datafile df) > 1000 "
     "ORDER BY ds.name", READABLE_DS),
])
def test_sub_select_in_where(rest: Rest, query: str, expect: list[str]) -> None:
    assert ok(rest, query) == expect


@pytest.mark.parametrize("query", [
    "SELECT ds.name FROM Dataset ds ORDER BY ds.name",
    "SELECT ds.name FROM Dataset ds ORDER BY ds.investigation.name, ds.name",
    "SELECT ds.name FROM Dataset ds JOIN ds.datafiles df ORDER BY df.fileSize DESC, ds.name",
    "SELECT DISTINCT ds.name FROM Dataset ds LEFT JOIN ds.datafiles df ORDER BY ds.name",
    "Dataset.name ORDER BY name",
])
def test_ordering_and_paging(rest: Rest, ids: dict[str, int], query: str) -> None:
    """Every page (LIMIT o, 1 and the concise range) holds readable rows only, and together
    the pages are exactly what the unpaged query answers."""
    full = ok(rest, query)
    assert set(full) <= set(READABLE_DS), full
    pages = []
    for offset in range(len(full) + 2):
        if query.startswith("Dataset.name"):
            page = ok(rest, f"{offset},1 {query}")
        else:
            page = ok(rest, f"{query} LIMIT {offset}, 1")
        assert len(page) <= 1
        pages += page
    assert pages == full
    assert ok(rest, "SELECT ds.id FROM Dataset ds ORDER BY ds.id DESC LIMIT 0, 1") == [
        readable_max_id(ids)]
    assert ok(rest, "SELECT ds.id FROM Dataset ds ORDER BY ds.id LIMIT 4, 10") == []


def _row_ids(row: list[Any]) -> list[Any]:
    return [next(iter(v.values()))["id"] if isinstance(v, dict) else v for v in row]


def test_multi_item_selects(rest: Rest, ids: dict[str, int]) -> None:
    """Every id path of the select list is restricted: a readable dataset of an unreadable
    investigation (open2) drops out."""
    in_p = ds_ids(ids, ["open", QUOTE1, QUOTE2])
    rows = ok(rest, "SELECT ds.id, ds.investigation FROM Dataset ds ORDER BY ds.id")
    assert [_row_ids(r) for r in rows] == [[i, ids["inv:P"]] for i in in_p]
    rows = ok(rest, "SELECT ds.name, ds.investigation.name FROM Dataset ds ORDER BY ds.name")
    assert rows == [[n, "P"] for n in sorted(["open", QUOTE1, QUOTE2])]
    rows = ok(rest, "SELECT ds.name, df.name FROM Dataset ds JOIN ds.datafiles df "
                    "ORDER BY df.name")
    assert rows == [["open", "open-1"], ["open", "open-2"]]
    rows = ok(rest, "SELECT ds.name, p.numericValue FROM Dataset ds JOIN ds.parameters p")
    assert rows == []  # DatasetParameter: no rule, no-permission result
    assert ok(rest, "SELECT DISTINCT ds.investigation.name FROM Dataset ds") == ["P"]


def test_paths_ending_in_one_to_many_fields(rest: Rest, ids: dict[str, int]) -> None:
    got = sorted(ids_of(ok(rest, "SELECT i.datasets FROM Investigation i")))
    assert got == ds_ids(ids, READABLE_DS)  # open2 too: only the datasets are checked
    got = ids_of(ok(rest, "SELECT i.datasets FROM Investigation i WHERE i.name = 'S'"))
    assert got == ds_ids(ids, ["open2"])
    got = sorted(ids_of(ok(rest, "SELECT ds.datafiles FROM Dataset ds")))
    assert got == sorted([ids["df:open-1"], ids["df:open-2"]])
    # Only the Investigation is exposed (Facility, which no rule mentions, is not selected).
    assert ids_of(ok(rest, "SELECT f.investigations FROM Facility f")) == [ids["inv:P"]]
    assert ok(rest, "SELECT ds.parameters FROM Dataset ds") == []
    # icat.server joins the collection here too; refusing it is acceptable, leaking is not.
    r = rest.search(EVE, "SELECT COUNT(i.datasets) FROM Investigation i")
    if r.status_code == 400:
        assert r.json()["code"] == "BAD_PARAMETER"
    else:
        assert r.status_code == 200 and r.json() == [4], r.text


def test_joined_variables(rest: Rest, ids: dict[str, int]) -> None:
    got = sorted(ids_of(ok(rest, "SELECT d2 FROM Dataset ds JOIN ds.investigation i "
                                 "JOIN i.datasets d2 WHERE ds.name = 'open'")))
    assert got == ds_ids(ids, ["open", QUOTE1, QUOTE2])
    got = ok(rest, "SELECT df.name FROM Investigation i JOIN i.datasets ds "
                   "JOIN ds.datafiles df WHERE i.name = 'S'")
    assert got == []
    got = ok(rest, "SELECT df.name FROM Datafile df JOIN df.dataset ds "
                   "WHERE ds.name LIKE 'secret%'")
    assert got == []
    assert sorted(ids_of(ok(rest, "Dataset <-> Investigation [name = 'S']"))) == ds_ids(
        ids, ["open2"])
    assert ok(rest, "Datafile.name <-> Dataset [name = 'secret1']") == []


# -- 3. no self-service ------------------------------------------------------------------------


def test_cannot_grant_itself_anything(server: Server, rest: Rest, ids: dict[str, int]) -> None:
    before = server.snapshot()
    user, grouping = {"id": ids["user"]}, {"id": ids["grouping"]}
    for entity, body, access in (
        ("Rule", {"crudFlags": "CRUD", "what": "Dataset"}, "CREATE"),
        ("Rule", {"crudFlags": "R", "what": "Dataset", "grouping": grouping}, "CREATE"),
        ("Grouping", {"name": "mine"}, "CREATE"),
        ("UserGroup", {"user": user, "grouping": grouping}, "CREATE"),
        ("PublicStep", {"origin": "Dataset", "field": "datafiles"}, "CREATE"),
        ("User", {"name": "simple/root"}, "CREATE"),
        ("Rule", {"id": ids["rule:1"], "what": "Dataset"}, "UPDATE"),
        ("Grouping", {"id": ids["grouping"], "userGroups": [{"user": user}]}, "UPDATE"),
        ("User", {"id": ids["user"], "name": "simple/root"}, "UPDATE"),
    ):
        assert_denied(rest.write(EVE, {entity: body}), access, entity, offset=0)
    assert_denied(rest.delete(EVE, {"Rule": {"id": ids["rule:0"]}}), "DELETE", "Rule", offset=0)
    assert server.snapshot() == before
    assert ok(rest, "SELECT COUNT(r) FROM Rule r") == [0]
    assert ok(rest, "SELECT r.what FROM Rule r") == []
