"""Hostile inputs over real HTTP, on every backend (issue 17): each of them is refused with
BAD_PARAMETER and a message a person can act on, over REST (400) and over SOAP (a fault)
where it has a SOAP form, before any database or Python limit is reached. And queries right
at the limits of :mod:`cairn.query.limits` still answer, on every backend, for root and for
a user whose rules authorization adds to the statement."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from cairn.query import limits
from tests.integration.server import Server
from tests.integration.surfaces import (
    element,
    envelope,
    json_error,
    soap,
    soap_fault,
    soap_search,
)

BIG = 2**70  # beyond a Java long
ID_RANGE = "out of range: ids are integers from -9223372036854775808 to 9223372036854775807"
ID_JSON = "must be an integer between -9223372036854775808 and 9223372036854775807"
LONG_RANGE = "is out of range"


@pytest.fixture(autouse=True)
def nothing_reached_a_limit(server: Server) -> Iterator[None]:
    """After each test the server still answers, and has logged no traceback: no input got
    past the checks to a limit of Python, a driver or the database."""
    yield
    assert server.http.get("/icat/version").status_code == 200
    log = server.log_text()
    for sign in ("Traceback", "RecursionError", "OverflowError", "UnicodeEncodeError"):
        assert sign not in log, log[-3000:]


@pytest.fixture(scope="module")
def root(server: Server) -> str:
    return server.login("root")


@pytest.fixture(scope="module")
def catalogue(server: Server, root: str) -> dict[str, int]:
    """A facility with two investigations of two datasets each (jdoe is on the first), a
    datafile of 2 bytes, and a rule letting investigation users read their datasets."""
    def write(entities: Any) -> list[int]:
        r = server.http.post("/icat/entityManager",
                             data={"sessionId": root, "entities": json.dumps(entities)})
        assert r.status_code == 200, r.text
        return list(r.json())

    (fac,) = write({"Facility": {"name": "hostile"}})
    (it,) = write({"InvestigationType": {"name": "t", "facility": {"id": fac}}})
    (dst,) = write({"DatasetType": {"name": "raw", "facility": {"id": fac}}})
    (user,) = write({"User": {"name": "simple/jdoe"}})
    invs = write([{"Investigation": {
        "name": f"inv{k}", "visitId": "1", "title": "t", "facility": {"id": fac},
        "type": {"id": it}, "datasets": [
            {"name": f"ds{k}{j}", "type": {"id": dst},
             "datafiles": [{"name": "f", "fileSize": 2}] if k == j == 0 else []}
            for j in range(2)]}} for k in range(2)])
    write([{"InvestigationUser": {"investigation": {"id": invs[0]}, "user": {"id": user},
                                  "role": "PI"}},
           {"Rule": {"crudFlags": "R", "what": (
               "SELECT ds FROM Dataset ds JOIN ds.investigation i JOIN i.investigationUsers iu "
               "JOIN iu.user u WHERE u.name = :user")}}])
    return {"facility": fac, "investigation": invs[0]}


def search(server: Server, sid: str, query: str) -> httpx.Response:
    return server.http.get("/icat/entityManager", params={"sessionId": sid, "query": query})


def refused(r: httpx.Response, contains: str) -> None:
    """A REST 400 BAD_PARAMETER whose message holds ``contains``."""
    assert r.status_code == 400, (r.status_code, r.text[:500])
    code, message = json_error(r)
    assert code == "BAD_PARAMETER" and contains in message, (code, message)


def faulted(r: httpx.Response, contains: str) -> None:
    """A SOAP fault of type BAD_PARAMETER whose message holds ``contains``."""
    fault = soap_fault(r)
    assert fault is not None, r.text[:500]
    assert fault[0] == "BAD_PARAMETER" and contains in fault[1], fault


# -- the inputs of issue 17, over REST --------------------------------------------------------

Rest = Callable[[Server, str, dict[str, int]], httpx.Response]


def _post(path: str, **data: Any) -> Rest:
    return lambda s, sid, c: s.http.post(path, data={"sessionId": sid, **{
        k: v(c) if callable(v) else v for k, v in data.items()}})


def _query(text: str, **params: Any) -> Rest:
    return lambda s, sid, c: s.http.get("/icat/entityManager",
                                        params={"sessionId": sid, "query": text, **params})


def _ors(n: int, op: str = "OR") -> str:
    return f" {op} ".join(["f.id = 1"] * n)


REST: dict[str, tuple[Rest, str]] = {
    "get id": (_query("Facility", id=str(BIG)), ID_RANGE),
    "get id, negative": (_query("Facility INCLUDE 1", id=str(-BIG)), ID_RANGE),
    "entity id": (_post("/icat/entityManager",
                        entities=f'[{{"Facility": {{"id": {BIG}, "name": "x"}}}}]'), ID_JSON),
    "reference id": (_post("/icat/entityManager", entities=(
        f'[{{"InvestigationType": {{"name": "x", "facility": {{"id": {BIG}}}}}}}]')), ID_JSON),
    "nested reference id": (_post("/icat/entityManager", entities=lambda c: json.dumps(
        [{"Investigation": {"id": c["investigation"], "datasets": [
            {"name": "n", "type": {"id": 1}, "sample": {"id": -BIG}}]}}])), ID_JSON),
    "delete": (lambda s, sid, c: s.http.request("DELETE", "/icat/entityManager", params={
        "sessionId": sid, "entities": f'[{{"Facility": {{"id": {BIG}}}}}]'}), ID_RANGE),
    "cloner": (_post("/icat/cloner", name="Facility", id=str(BIG)), ID_RANGE),
    "lone surrogate": (_post("/icat/entityManager",
                             entities='[{"Facility": {"name": "\\ud800"}}]'), "lone surrogate"),
    "lone surrogate in a key": (_post("/icat/entityManager",
                                      entities='[{"Facility": {"\\udfff": 1}}]'),
                                "lone surrogate"),
    "lone surrogate in a login": (lambda s, sid, c: s.http.post("/icat/session", data={
        "json": '{"plugin": "simple", "credentials": [{"username": "\\ud800"}, '
                '{"password": "x"}]}'}), "lone surrogate"),
    "HAVING without GROUP BY": (_query("SELECT f FROM Facility f HAVING COUNT(f) > 1"),
                                "HAVING needs a GROUP BY clause"),
    "ORs past the limit": (_query("SELECT f FROM Facility f WHERE " + _ors(401)),
                           "401 conditions joined by AND or OR; at most 400"),
    "ANDs past the limit": (_query("SELECT f FROM Facility f WHERE " + _ors(401, "AND")),
                            "401 conditions joined by AND or OR; at most 400"),
    "1+1+... past the limit": (_query("SELECT f FROM Facility f WHERE f.id = "
                                      + "+".join(["1"] * 202)),
                               "201 arithmetic operators and CONCAT arguments; at most 200"),
    "1,000 JOINs": (_query("SELECT f FROM Facility f " + " ".join(
        f"JOIN f.investigations i{k}" for k in range(1000))),
        "1001 variables and JOINs in one FROM clause; at most 40"),
    "200 FROM variables": (_query("SELECT f0 FROM " + ", ".join(
        f"Facility f{k}" for k in range(200))),
        "200 variables and JOINs in one FROM clause; at most 40"),
    "41 tables through paths": (_query(
        "SELECT ds FROM Dataset ds, " + ", ".join(f"Dataset d{k}" for k in range(20)) + " WHERE "
        + " AND ".join(f"d{k}.investigation.name = 'x'" for k in range(20))),
        "41 tables joined in one SELECT"),
    "SUM beyond 64 bits": (_query("SELECT SUM(df.fileSize * 9223372036854775807) "
                                  "FROM Datafile df"),
                           "A computed number is out of range"),
    "SUM of rows beyond 64 bits": (_query("SELECT SUM(ds.id + 9223372036854775000) "
                                          "FROM Dataset ds"),
                                   "A computed number is out of range"),
    "product beyond 64 bits": (_query("SELECT ds.id * 9223372036854775807 FROM Dataset ds"),
                               "A computed number is out of range"),
}


@pytest.mark.parametrize("name", REST)
def test_rest_refuses(server: Server, root: str, catalogue: dict[str, int], name: str) -> None:
    send, contains = REST[name]
    refused(send(server, root, catalogue), contains)


def test_huge_queries_over_soap(server: Server, root: str) -> None:
    """The sizes of issue 17, too long for a REST URL, through SOAP's search."""
    for query, contains in [
            ("SELECT f FROM Facility f WHERE " + _ors(20_000), "20000 conditions"),
            ("SELECT f FROM Facility f WHERE " + _ors(5_000, "AND"), "5000 conditions"),
            ("SELECT f FROM Facility f WHERE f.id = " + "+".join(["1"] * 20_000),
             "19999 arithmetic operators"),
            ("SELECT CONCAT(" + ", ".join(["f.name"] * 20_000) + ") FROM Facility f",
             "19999 arithmetic operators and CONCAT arguments"),
            ("SELECT f FROM Facility f WHERE f.id IN (" + ", ".join(["1"] * 20_000) + ")",
             "20000 literal values; at most 10000"),
            ("SELECT " + ", ".join(["f.id"] * 3_000) + " FROM Facility f",
             "3000 items in its SELECT clause; at most 500"),
            ("SELECT f FROM Facility f ORDER BY " + ", ".join(["f.name"] * 3_000),
             "3000 items in its ORDER BY clause"),
            ("SELECT f FROM Facility f WHERE f.name = '" + "x" * 1_000_001 + "'",
             "characters; at most 1000000")]:
        faulted(soap_search(server, root, query), contains)


def test_soap_refuses(server: Server, root: str, catalogue: dict[str, int]) -> None:
    """The same inputs in their SOAP forms."""
    sid = element("sessionId", root)
    bean = ('<bean xsi:type="n:facility"><id>{}</id><name>x</name></bean>')
    for body, contains in [
            (envelope("get", sid + element("query", "Facility")
                      + element("primaryKey", BIG)), LONG_RANGE),
            (envelope("update", sid + bean.format(BIG)), LONG_RANGE),
            (envelope("delete", sid + bean.format(BIG)), LONG_RANGE),
            (envelope("create", sid + '<bean xsi:type="n:investigationType"><name>x</name>'
                      f"<facility><id>{BIG}</id></facility></bean>"), LONG_RANGE),
            (envelope("create", sid + '<bean xsi:type="n:facility"><name>&#xD800;</name>'
                      "</bean>"), "Malformed XML"),
            (envelope("create", sid) .replace(b"</n:create>", b'<bean xsi:type="n:facility">'
                                              b"<name>\xed\xa0\x80</name></bean></n:create>"),
             "Malformed XML")]:
        faulted(soap(server, body), contains)
    for query, contains in [
            ("SELECT f FROM Facility f HAVING COUNT(f) > 1", "HAVING needs a GROUP BY"),
            ("SELECT SUM(df.fileSize * 9223372036854775807) FROM Datafile df",
             "out of range")]:
        faulted(soap_search(server, root, query), contains)


# -- at the limits, every backend answers -----------------------------------------------------


def _nest(function: str, depth: int, inner: str) -> str:
    return f"{function}(" * depth + inner + ")" * depth


CHAIN = "+".join(["ds.id"] * (limits.MAX_OPERATORS + 1))
ORS = " OR ".join(["ds.id = 0"] * (limits.MAX_CONDITIONS - 1))
AT_LIMITS = {
    "conditions": f"SELECT ds FROM Dataset ds WHERE {ORS} OR ds.name LIKE 'ds%'",
    "operators": f"SELECT ds FROM Dataset ds WHERE ds.id < {CHAIN}",
    "operators selected": f"SELECT {CHAIN} FROM Dataset ds",
    # the deepest expression: a chain of ORs whose last holds a chain of + in nested calls
    "all at once": f"SELECT ds FROM Dataset ds WHERE {ORS} OR ds.id < "
                   + _nest("ABS", 24, "+".join(["ds.id"] * limits.MAX_OPERATORS)),
    "nesting": "SELECT ds FROM Dataset ds WHERE " + "(" * (limits.MAX_NESTING - 1) + ORS
               + " OR ds.id > 0" + ")" * (limits.MAX_NESTING - 1),
    "values": "SELECT ds FROM Dataset ds WHERE ds.id IN ("
              + ", ".join(map(str, range(limits.MAX_VALUES))) + ")",
    "columns": "SELECT " + ", ".join(["ds.name"] * limits.MAX_COLUMNS) + " FROM Dataset ds",
    "ORDER BY": "SELECT ds FROM Dataset ds ORDER BY "
                + ", ".join(["ds.name"] * limits.MAX_COLUMNS),
    "GROUP BY": "SELECT COUNT(ds) FROM Dataset ds GROUP BY "
                + ", ".join(["ds.name"] * limits.MAX_COLUMNS),
    "tables": "SELECT ds FROM Dataset ds " + " ".join(
        f"JOIN ds.investigation i{k}" for k in range(limits.MAX_TABLES - 1)),
}


@pytest.mark.parametrize("name", AT_LIMITS)
def test_at_the_limits(server: Server, root: str, catalogue: dict[str, int],
                       name: str) -> None:
    query = AT_LIMITS[name]
    jdoe = server.login("jdoe")
    for sid, rows in ((root, 4), (jdoe, 2)):  # jdoe reads the datasets of inv0 only
        r = soap_search(server, sid, query)
        assert soap_fault(r) is None, (name, soap_fault(r))
        assert r.text.count("<return") == rows, r.text[:300]


