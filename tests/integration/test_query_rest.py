"""Queries over REST (GET /icat/entityManager?query=...) on every backend: result shapes (§4.2),
literal coercion as real clients send it, ordering, LIMIT, maxEntities, INCLUDE and errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.server import Server


@pytest.fixture(scope="module")
def root(server: Server) -> str:
    return server.login("root")


def search(server: Server, sid: str, query: str) -> httpx.Response:
    return server.http.get("/icat/entityManager", params={"sessionId": sid, "query": query})


def ok(server: Server, sid: str, query: str) -> Any:
    r = search(server, sid, query)
    assert r.status_code == 200, (query, r.text)
    return r.json()


def fails(server: Server, sid: str, query: str, status: int = 400) -> dict[str, Any]:
    r = search(server, sid, query)
    assert r.status_code == status, (query, r.text)
    return r.json()  # type: ignore[no-any-return]


def write(server: Server, sid: str, entities: Any) -> list[int]:
    r = server.http.post("/icat/entityManager",
                         data={"sessionId": sid, "entities": json.dumps(entities)})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def data(server: Server, root: str) -> dict[str, int]:
    """A facility with two investigations, their datasets, datafiles and parameters."""
    (fac,) = write(server, root, {"Facility": {
        "name": "QF", "fullName": "Query Facility",
        "investigationTypes": [{"name": "experiment"}],
        "datasetTypes": [{"name": "raw"}, {"name": "processed"}],
        "parameterTypes": [{"name": "temp", "units": "K", "valueType": "NUMERIC",
                            "applicableToDataset": True},
                           {"name": "state", "units": "none", "valueType": "STRING",
                            "applicableToDataset": True}],
        "instruments": [{"name": "LARMOR", "fullName": "Larmor"}, {"name": "WISH"}],
    }})
    ids = {"facility": fac}
    for name in ("InvestigationType", "DatasetType", "ParameterType", "Instrument"):
        rows = ok(server, root, f"SELECT x.id, x.name FROM {name} x WHERE x.facility.id = {fac}")
        for i, n in rows:
            ids[f"{name}:{n}"] = i

    def dataset(name: str, typ: str, files: list[tuple[str, int | None]],
                temp: float | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": name, "type": {"id": ids[f"DatasetType:{typ}"]}, "complete": typ == "raw",
            "datafiles": [{"name": n, **({"fileSize": s, "description": f"{n} file"}
                                         if s is not None else {})}
                          for n, s in files]}
        if temp is not None:
            out["parameters"] = [{"type": {"id": ids["ParameterType:temp"]},
                                  "numericValue": temp}]
        return out

    ids["alpha"], ids["beta"] = write(server, root, [
        {"Investigation": {
            "name": "alpha", "visitId": "1", "title": "Neutron study",
            "startDate": "2019-03-01T10:00:00.000Z", "fileSize": 1000,
            "facility": {"id": fac}, "type": {"id": ids["InvestigationType:experiment"]},
            "investigationInstruments": [{"instrument": {"id": ids["Instrument:LARMOR"]}}],
            "datasets": [dataset("ds-a", "raw", [("a1.nxs", 100), ("a2.nxs", 200)], 10.5),
                         dataset("ds-b", "processed", [("b1.nxs", 1500)], 25.0)]}},
        {"Investigation": {
            "name": "beta", "visitId": "1", "title": "X-ray study",
            "startDate": "2007-06-30T08:30:58.000Z", "fileSize": 5000,
            "facility": {"id": fac}, "type": {"id": ids["InvestigationType:experiment"]},
            "datasets": [dataset("ds-c", "raw", [("c1.nxs", 50), ("c_2.txt", None)], 15.0)]}},
    ])
    ids["gamma"], = write(server, root, {"Investigation": {
        "name": "gamma", "visitId": "2", "title": "Empty", "facility": {"id": fac},
        "type": {"id": ids["InvestigationType:experiment"]}}})
    (uid,) = write(server, root, {"User": {"name": "simple/root", "fullName": "Root"}})
    write(server, root, {"InvestigationUser": {"role": "PI", "user": {"id": uid},
                                               "investigation": {"id": ids["beta"]}}})
    for row in ok(server, root, "SELECT ds.id, ds.name FROM Dataset ds"):
        ids[row[1]] = row[0]
    return ids


# -- shapes -----------------------------------------------------------------------------------


def test_entities_are_wrapped(server: Server, root: str, data: dict[str, int]) -> None:
    out = ok(server, root, "SELECT i FROM Investigation i")
    assert [list(o) for o in out] == [["Investigation"]] * 3
    inv = out[0]["Investigation"]
    assert inv["id"] == data["alpha"] and inv["name"] == "alpha"
    assert inv["startDate"] == "2019-03-01T10:00:00.000Z"
    assert inv["datasets"] == [] and "facility" not in inv
    assert list(inv)[:5] == ["id", "createId", "createTime", "modId", "modTime"]


def test_scalars_counts_and_rows(server: Server, root: str, data: dict[str, int]) -> None:
    assert ok(server, root, "SELECT i.name FROM Investigation i") == ["alpha", "beta", "gamma"]
    assert ok(server, root, "SELECT COUNT(df) FROM Datafile df") == [5]
    assert ok(server, root, "SELECT AVG(df.fileSize) FROM Datafile df "
                            "WHERE df.dataset.name = 'ds-a'") == [150.0]
    assert ok(server, root, "SELECT ds.id, ds.name FROM Dataset ds WHERE ds.name <> 'ds-b'") == [
        [data["ds-a"], "ds-a"], [data["ds-c"], "ds-c"]]
    rows = ok(server, root, "SELECT ds.name, ds.investigation FROM Dataset ds "
                            "WHERE ds.name = 'ds-c'")
    assert rows[0][0] == "ds-c"
    assert rows[0][1]["Investigation"]["name"] == "beta"


def test_scalar_types_render_as_icat_does(server: Server, root: str,
                                          data: dict[str, int]) -> None:
    assert ok(server, root, "SELECT MAX(i.startDate) FROM Investigation i") == [
        "2019-03-01T10:00:00.000Z"]
    assert ok(server, root, "SELECT pt.valueType FROM ParameterType pt ORDER BY pt.name") == [
        "STRING", "NUMERIC"]
    assert ok(server, root, "SELECT ds.complete FROM Dataset ds") == [True, False, True]
    assert ok(server, root, "SELECT p.numericValue FROM DatasetParameter p") == [10.5, 25.0, 15.0]
    assert ok(server, root, "SELECT i.endDate FROM Investigation i WHERE i.name = 'alpha'") == [
        None]
    # beta: the 5000 it was created with, plus its datafile's 50 (cairn.db.sizes).
    assert ok(server, root, "SELECT null, MAX(i.fileSize) FROM Investigation i") == [[None, 5050]]


def test_concise_syntax(server: Server, root: str, data: dict[str, int]) -> None:
    assert ok(server, root, "Investigation.name [fileSize > 3000]") == ["beta"]
    assert ok(server, root, "COUNT(Dataset) <-> Investigation [name = 'alpha']") == [2]
    assert ok(server, root, ",1 Datafile.name ORDER BY name") == ["a1.nxs"]


# -- literal coercion as clients send it ------------------------------------------------------


def test_quoted_numbers(server: Server, root: str, data: dict[str, int]) -> None:
    a = data["alpha"]
    assert [o["Investigation"]["name"] for o in ok(
        server, root, f"SELECT o FROM Investigation o WHERE o.id = '{a}'")] == ["alpha"]
    assert ok(server, root, "SELECT o.name FROM Investigation o WHERE o.fileSize > '3000'") == [
        "beta"]
    assert ok(server, root, "SELECT p.numericValue FROM DatasetParameter p "
                            "WHERE p.numericValue between '0' and '20'") == [10.5, 15.0]
    assert ok(server, root, f"SELECT COUNT(o) FROM Dataset o JOIN o.investigation AS i "
                            f"WHERE i.id = '{a}'") == [2]


def test_quoted_dates(server: Server, root: str, data: dict[str, int]) -> None:
    base = "SELECT o.name FROM Investigation o WHERE o.startDate "
    assert ok(server, root, base + ">= '2019-01-01 00:00:00' AND o.startDate <= "
                                   "'2019-12-31 23:59:59'") == ["alpha"]
    assert ok(server, root, base + "> '2007 06 30 08:30:57 00:00'") == ["alpha", "beta"]
    assert ok(server, root, base + "= '2007-06-30T08:30:58.000Z'") == ["beta"]
    assert ok(server, root, base + "< '2019-01-01'") == ["beta"]
    assert ok(server, root, base + "> {ts 2019-03-01 09:59:59}") == ["alpha"]


def test_strings_in_lists_like_and_null(server: Server, root: str, data: dict[str, int]) -> None:
    ids = f"('{data['ds-a']}', '{data['ds-c']}')"
    assert ok(server, root, f"SELECT ds.name FROM Dataset ds WHERE ds.id IN {ids}") == [
        "ds-a", "ds-c"]
    assert ok(server, root, "SELECT df.name FROM Datafile df WHERE df.fileSize IN (NULL)") == []
    assert ok(server, root, "SELECT o.title FROM Investigation o "
                            "WHERE UPPER(o.title) like UPPER('%neutron%')") == ["Neutron study"]
    assert ok(server, root, "SELECT df.name FROM Datafile df WHERE df.description IS NULL") == [
        "c_2.txt"]
    assert ok(server, root, "SELECT df.fileSize FROM Datafile df WHERE df.name = 'c_2.txt'"
              ) == [0]  # Java's default for Datafile.fileSize
    assert ok(server, root, "SELECT df.name FROM Datafile df "
                            "WHERE df.name LIKE 'c$_%' ESCAPE '$'") == ["c_2.txt"]


def test_like_pattern_ending_with_its_escape(server: Server, root: str,
                                             data: dict[str, int]) -> None:
    # The backends disagree on such a pattern (error, no match, literal match): refused.
    for query in ("SELECT df.name FROM Datafile df WHERE df.name NOT LIKE 'c %' ESCAPE '%'",
                  "SELECT df.name FROM Datafile df WHERE df.name LIKE 'c$$$' ESCAPE '$'",
                  "SELECT df.name FROM Datafile df WHERE df.name LIKE 'c\\'"):
        body = fails(server, root, query)
        assert body["code"] == "BAD_PARAMETER" and "escape character" in body["message"], query
    # Escaped escapes are fine.
    assert ok(server, root, "SELECT df.name FROM Datafile df "
                            "WHERE df.name LIKE 'c_2..txt' ESCAPE '.'") == ["c_2.txt"]
    # A computed pattern is only known to the database; PostgreSQL's refusal is the
    # client's error, not the server's. (PostgreSQL refuses it only on reaching the escape
    # while matching a row: '%' first reaches it with every row, whatever the plan.)
    r = search(server, root, "SELECT df.name FROM Datafile df "
                             "WHERE df.name LIKE CONCAT('%', '!') ESCAPE '!'")
    if r.status_code != 200 or server.db_url.startswith("postgresql"):
        assert r.status_code == 400 and r.json()["code"] == "BAD_PARAMETER", r.text
        assert "escape" in r.json()["message"].lower()


def test_distinct_rows_ordered_by_a_boolean_they_do_not_select(
        server: Server, root: str, data: dict[str, int]) -> None:
    # ordered per row by MIN/MAX of the column, which PostgreSQL has no booleans for
    for direction in ("ASC", "DESC"):
        got = ok(server, root, "SELECT DISTINCT pt.facility.name FROM ParameterType pt WHERE "
                               f"pt.facility.id = {data['facility']} "
                               f"ORDER BY pt.applicableToDataset {direction}")
        assert got == ["QF"]


def test_enums_and_user(server: Server, root: str, data: dict[str, int]) -> None:
    assert ok(server, root, "SELECT pt.name FROM ParameterType pt WHERE pt.valueType = "
                            "org.icatproject.ParameterValueType.NUMERIC") == ["temp"]
    assert ok(server, root, "ParameterType.name [valueType = STRING]") == ["state"]
    assert ok(server, root, "SELECT i.name FROM Investigation i, i.investigationUsers iu "
                            "WHERE iu.user.name = :user") == ["beta"]


def test_bad_literals(server: Server, root: str, data: dict[str, int]) -> None:
    body = fails(server, root, "SELECT o FROM Investigation o WHERE o.id = 'abc'")
    assert body["code"] == "BAD_PARAMETER" and "'abc'" in body["message"]
    assert body["offset"] == 43
    body = fails(server, root, "SELECT o FROM Investigation o WHERE o.startDate > 'someday'")
    assert "'someday'" in body["message"]


# -- joins, collections, sub-selects ----------------------------------------------------------


def test_paths_joins_and_collections(server: Server, root: str, data: dict[str, int]) -> None:
    assert ok(server, root, "SELECT ds.investigation.name FROM Dataset ds") == [
        "alpha", "alpha", "beta"]
    assert [o["Investigation"]["name"] for o in ok(
        server, root, "SELECT f.investigations FROM Facility f")] == ["alpha", "beta", "gamma"]
    assert ok(server, root, "SELECT i.name FROM Investigation i WHERE i.datasets IS EMPTY") == [
        "gamma"]
    assert ok(server, root, "SELECT ds.name FROM Dataset ds "
                            "WHERE (SELECT COUNT(df) FROM ds.datafiles df) = 2") == [
        "ds-a", "ds-c"]
    assert ok(server, root, "SELECT ds.name FROM Dataset ds WHERE SIZE(ds.datafiles) = 1") == [
        "ds-b"]
    assert ok(server, root, "SELECT i.name FROM Investigation i WHERE EXISTS (SELECT df FROM "
                            "Datafile df WHERE df.dataset.investigation = i AND "
                            "df.fileSize > 1000)") == ["alpha"]
    text = ("SELECT i.name, ins.name FROM Investigation i LEFT JOIN i.investigationInstruments "
            "ii LEFT JOIN ii.instrument ins ORDER BY ins.fullName ASC, i.id ASC")
    assert ok(server, root, text) == [["beta", None], ["gamma", None], ["alpha", "LARMOR"]]


def test_grouping_and_distinct(server: Server, root: str, data: dict[str, int]) -> None:
    assert ok(server, root, "SELECT df.dataset.name, AVG(df.fileSize) FROM Datafile df "
                            "GROUP BY df.dataset HAVING AVG(df.fileSize) > 4 "
                            "ORDER BY AVG(df.fileSize)") == [
        ["ds-c", 25.0], ["ds-a", 150.0], ["ds-b", 1500.0]]
    assert ok(server, root, "SELECT COUNT(DISTINCT ds.type) FROM Dataset ds") == [2]
    assert ok(server, root, "SELECT DISTINCT(o.visitId) FROM Investigation o") == ["1", "2"]
    distinct = ok(server, root, "SELECT DISTINCT(o) FROM Investigation o JOIN o.datasets ds "
                                "ORDER BY ds.name DESC")
    assert [o["Investigation"]["name"] for o in distinct] == ["beta", "alpha"]
    assert ok(server, root, "SELECT DISTINCT o.name, o.title FROM Investigation o "
                            "ORDER BY o.title ASC, o.name ASC LIMIT 0, 50") == [
        ["gamma", "Empty"], ["alpha", "Neutron study"], ["beta", "X-ray study"]]


# -- ordering and LIMIT -----------------------------------------------------------------------


def test_order_and_limit(server: Server, root: str, data: dict[str, int]) -> None:
    names = ok(server, root, "SELECT df.name FROM Datafile df")
    assert names == ["a1.nxs", "a2.nxs", "b1.nxs", "c1.nxs", "c_2.txt"]  # id order
    assert ok(server, root, "SELECT df.name FROM Datafile df ORDER BY df.fileSize DESC") == [
        "b1.nxs", "a2.nxs", "a1.nxs", "c1.nxs", "c_2.txt"]
    # NULLs sort first ascending and last descending, on every backend.
    assert ok(server, root, "SELECT df.name FROM Datafile df ORDER BY df.description") == [
        "c_2.txt", "a1.nxs", "a2.nxs", "b1.nxs", "c1.nxs"]
    assert ok(server, root, "SELECT df.name FROM Datafile df ORDER BY df.description DESC"
              ) == ["c1.nxs", "b1.nxs", "a2.nxs", "a1.nxs", "c_2.txt"]
    assert ok(server, root, "SELECT df.name FROM Datafile df ORDER BY df.name "
                            "LIMIT 1, 2") == ["a2.nxs", "b1.nxs"]
    assert ok(server, root, "SELECT df.name FROM Datafile df ORDER BY df.name "
                            "LIMIT 3, *") == ["c1.nxs", "c_2.txt"]
    assert ok(server, root, "SELECT df FROM Datafile df LIMIT 1, 0") == []
    body = fails(server, root, "SELECT o FROM Dataset o LIMIT -1, 10000", 412)
    assert body["code"] == "VALIDATION"


# -- INCLUDE ----------------------------------------------------------------------------------


def test_include_one_and_paths(server: Server, root: str, data: dict[str, int]) -> None:
    (ds,) = ok(server, root, "SELECT ds FROM Dataset ds WHERE ds.name = 'ds-a' INCLUDE 1")
    ds = ds["Dataset"]
    assert ds["investigation"]["name"] == "alpha" and ds["type"]["name"] == "raw"
    assert "facility" not in ds["investigation"] and ds["datafiles"] == []
    (inv,) = ok(server, root, "SELECT i FROM Investigation i WHERE i.name = 'alpha' "
                              "INCLUDE i.datasets.datafiles, i.investigationInstruments AS ii, "
                              "ii.instrument, i.facility")
    inv = inv["Investigation"]
    assert [d["name"] for d in inv["datasets"]] == ["ds-a", "ds-b"]
    assert [f["name"] for f in inv["datasets"][0]["datafiles"]] == ["a1.nxs", "a2.nxs"]
    assert inv["investigationInstruments"][0]["instrument"]["name"] == "LARMOR"
    assert inv["facility"]["name"] == "QF"


def test_datagateway_page_query(server: Server, root: str, data: dict[str, int]) -> None:
    text = ("SELECT o FROM Investigation o JOIN o.investigationUsers AS iu JOIN iu.user AS s1 "
            "WHERE s1.name = 'simple/root' ORDER BY o.startDate DESC, o.id ASC "
            "INCLUDE o.investigationInstruments AS ii, ii.instrument, o.investigationUsers AS iu,"
            " iu.user LIMIT 0, 50")
    (inv,) = ok(server, root, text)
    inv = inv["Investigation"]
    assert inv["name"] == "beta"
    assert inv["investigationUsers"][0]["user"]["name"] == "simple/root"
    assert inv["investigationInstruments"] == []
    text = ("SELECT o FROM Dataset o JOIN o.parameters AS p JOIN p.type AS pt WHERE "
            "((pt.name = 'state' and p.stringValue = 'solid') or "
            "(pt.name = 'temp' and p.numericValue = '25')) INCLUDE o.parameters AS p, p.type")
    (ds,) = ok(server, root, text)
    assert ds["Dataset"]["name"] == "ds-b"
    assert ds["Dataset"]["parameters"][0]["type"]["name"] == "temp"


def test_include_errors(server: Server, root: str, data: dict[str, int]) -> None:
    body = fails(server, root, "SELECT i FROM Investigation i INCLUDE i.datasets, "
                               "i.datasets.datafiles")
    assert body["message"] == "INCLUDE clause contains redundant path to datasets"
    body = fails(server, root, "SELECT i FROM Investigation i INCLUDE i.bogus")
    assert body["message"] == "Problem with INCLUDE clause: bogus is not a field of Investigation"
    body = fails(server, root, "SELECT i FROM Investigation i JOIN i.datasets ds "
                               "INCLUDE ds.datafiles")
    assert body["message"] == "variable DS mentioned in INCLUDE clause is not defined"
    assert ok(server, root, "SELECT i.id FROM Investigation i WHERE i.name = 'gamma' "
                            "INCLUDE 1") == [data["gamma"]]


def test_get_with_include(server: Server, root: str, data: dict[str, int]) -> None:
    r = server.http.get("/icat/entityManager", params={
        "sessionId": root, "query": "Dataset ds INCLUDE ds.datafiles df, df.dataset",
        "id": data["ds-c"]})
    assert r.status_code == 200, r.text
    ds = r.json()["Dataset"]
    assert [f["name"] for f in ds["datafiles"]] == ["c1.nxs", "c_2.txt"]
    assert ds["datafiles"][0]["dataset"]["id"] == data["ds-c"]


# -- errors and permissions -------------------------------------------------------------------


def test_semantic_errors(server: Server, root: str, data: dict[str, int]) -> None:
    body = fails(server, root, "SELECT ds.nonsense FROM Dataset ds")
    assert body == {"code": "BAD_PARAMETER",
                    "message": "Dataset has no field nonsense at position 7", "offset": 7}
    body = fails(server, root, "SELECT ds FROM Dataset ds JOIN ds.name n")
    assert body["message"].startswith("Dataset has no relationship field name")
    body = fails(server, root, "SELECT ds FROM Dataset ds WHERE ds.id = :other")
    assert body["code"] == "BAD_PARAMETER"


def test_users_without_rules_get_the_no_permission_result(server: Server,
                                                         data: dict[str, int]) -> None:
    sid = server.login("jdoe")
    for query, expected in [("SELECT ds.name FROM Dataset ds", []),
                            ("SELECT COUNT(ds) FROM Dataset ds", [0]),
                            ("SELECT SUM(ds.id) FROM Dataset ds", [])]:
        r = search(server, sid, query)
        assert r.status_code == 200, r.text
        assert r.json() == expected, query


# -- maxEntities ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(server: Server, data: dict[str, int], tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Server]:
    """A second Cairn on the same database with maxEntities = 3."""
    tmp: Path = tmp_path_factory.mktemp("small")
    srv = Server(tmp, server.db_url, env={"CAIRN_CATALOGUE__MAX_ENTITIES": "3"})
    try:
        yield srv
    finally:
        srv.stop()


def test_max_entities(small: Server, data: dict[str, int]) -> None:
    sid = small.login("root")
    assert small.http.get("/icat/properties").json()["maxEntities"] == 3
    body = fails(small, sid, "SELECT df FROM Datafile df", 412)
    assert body == {"code": "VALIDATION", "message": "attempt to process more than 3 entities"}
    assert len(ok(small, sid, "SELECT df FROM Datafile df LIMIT 0, 3")) == 3
    fails(small, sid, "SELECT df FROM Datafile df LIMIT 0, 10", 412)
    assert ok(small, sid, "SELECT COUNT(df) FROM Datafile df") == [5]
    assert len(ok(small, sid, "SELECT ds FROM Dataset ds WHERE ds.name = 'ds-a' "
                              "INCLUDE ds.datafiles")) == 1
    body = fails(small, sid, "SELECT ds FROM Dataset ds WHERE ds.name = 'ds-a' "
                             "INCLUDE ds.datafiles, ds.investigation", 412)
    assert body["message"] == "attempt to return more than 3 entities"
