"""The rest of icat.server's REST table (§4.1, §4.7) over real HTTP: ``/icat/jpql`` and
``/icat/waitMillis`` for root users, ``/icat/sleep/{seconds}``, and the gatekeeper's
``markPublicTablesStale`` / ``markPublicStepsStale``."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.integration.server import Server

ROOT_ONLY = {"code": "INSUFFICIENT_PRIVILEGES", "message": "user must be in rootUserNames"}


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def root(server: Server) -> str:
    return server.login("root")


@pytest.fixture(scope="module")
def user(server: Server) -> str:
    return server.login("jdoe")


def write(server: Server, sid: str, entities: Any) -> list[int]:
    r = server.http.post("/icat/entityManager",
                         data={"sessionId": sid, "entities": json.dumps(entities)})
    assert r.status_code == 200, r.text
    return [int(i) for i in r.json()]


def jpql(server: Server, sid: str | None, query: str | None, **more: str) -> httpx.Response:
    params = {k: v for k, v in {"sessionId": sid, "query": query, **more}.items()
              if v is not None}
    return server.http.get("/icat/jpql", params=params)


def text_of(r: httpx.Response) -> str:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return r.text


@pytest.fixture(scope="module")
def facilities(server: Server, root: str) -> str:
    """Six facilities sharing a prefix, named a0..a5 after it, in id order."""
    prefix = uniq("adm")
    write(server, root, [{"Facility": {"name": f"{prefix}-a{i}", "daysUntilRelease": i}}
                         for i in range(6)])
    return prefix


# -- /icat/jpql ---------------------------------------------------------------------------------


def test_jpql_answers_as_text(server: Server, root: str, facilities: str) -> None:
    where = f"WHERE f.name LIKE '{facilities}%'"
    assert text_of(jpql(server, root, f"SELECT f.name FROM Facility f {where} AND "
                        "f.daysUntilRelease = 2")) == f"Count 1: {facilities}-a2"
    # five at most unless told otherwise, and said so
    names = ", ".join(f"{facilities}-a{i}" for i in range(5))
    assert text_of(jpql(server, root, f"SELECT f.name FROM Facility f {where} "
                        "ORDER BY f.name")) == f"Count at least 5: {names}"
    assert text_of(jpql(server, root, f"SELECT f.name FROM Facility f {where} ORDER BY f.name",
                        max="10")) == "Count 6: " + names + f", {facilities}-a5"
    assert text_of(jpql(server, root, f"SELECT f.name FROM Facility f {where} ORDER BY f.name",
                        max="2")) == f"Count at least 2: {facilities}-a0, {facilities}-a1"
    assert text_of(jpql(server, root, f"SELECT COUNT(f) FROM Facility f {where}")) == "Count 1: 6"
    assert text_of(jpql(server, root, "SELECT f FROM Facility f WHERE f.name = 'none'")) \
        == "Count 0"


def test_jpql_values(server: Server, root: str, facilities: str) -> None:
    fid = int(text_of(jpql(server, root, "SELECT f.id FROM Facility f WHERE f.name = "
                           f"'{facilities}-a3'")).removeprefix("Count 1: "))
    query = f"SELECT f FROM Facility f WHERE f.id = {fid}"
    assert text_of(jpql(server, root, query)) == f"Count 1: Facility:{fid}"
    assert text_of(jpql(server, root, "SELECT f.name, f.daysUntilRelease, f.fullName, f.createTime "
                        f"FROM Facility f WHERE f.id = {fid}")).startswith(
        f"Count 1: [{facilities}-a3, 3, null, 20")
    name = uniq("simple/jpql")
    write(server, root, {"User": {"name": name}})
    assert text_of(jpql(server, root, f"SELECT u FROM User u WHERE u.name = '{name}'")) \
        == f"Count 1: User[name={name}]"


def test_jpql_is_not_restricted_by_rules(server: Server, root: str, user: str,
                                         facilities: str) -> None:
    """As icat.server runs it: the query as it is, whatever the rules (root only)."""
    query = f"SELECT COUNT(f) FROM Facility f WHERE f.name LIKE '{facilities}%'"
    r = server.http.get("/icat/entityManager", params={"sessionId": user, "query": query})
    assert r.json() == [0]  # the user may read none of them
    assert text_of(jpql(server, root, query)) == "Count 1: 6"


def test_jpql_refusals(server: Server, root: str, user: str) -> None:
    r = jpql(server, user, "SELECT f FROM Facility f")
    assert (r.status_code, r.json()) == (403, ROOT_ONLY)
    r = jpql(server, "no-such-session", "SELECT f FROM Facility f")
    assert (r.status_code, r.json()["code"]) == (403, "SESSION")
    r = jpql(server, root, None)
    assert (r.status_code, r.json()) == (400, {"code": "BAD_PARAMETER",
                                               "message": "query is not set"})
    r = jpql(server, user, None)  # privileges first, as icat.server
    assert r.json() == ROOT_ONLY
    for bad in ("SELECT f FROM Nothing f", "Facility", "SELECT FROM"):
        r = jpql(server, root, bad)
        assert (r.status_code, r.json()["code"]) == (400, "BAD_PARAMETER"), bad
    for max_ in ("0", "-1", "many", "10001"):
        r = jpql(server, root, "SELECT f FROM Facility f", max=max_)
        assert (r.status_code, r.json()["code"]) == (400, "BAD_PARAMETER"), max_
        assert "max" in r.json()["message"]


# -- /icat/waitMillis and /icat/sleep -----------------------------------------------------------


def test_wait_millis_for_root_only(server: Server, root: str, user: str) -> None:
    r = server.http.post("/icat/waitMillis", data={"sessionId": root, "ms": "20"})
    assert r.status_code == 204 and r.content == b""
    r = server.http.post("/icat/waitMillis", data={"sessionId": root})  # no ms: no wait
    assert r.status_code == 204
    r = server.http.post("/icat/waitMillis", data={"sessionId": user, "ms": "20"})
    assert (r.status_code, r.json()) == (403, ROOT_ONLY)
    r = server.http.post("/icat/waitMillis", data={"ms": "20"})
    assert (r.status_code, r.json()["code"]) == (403, "SESSION")
    for bad in ("-1", "soon", "86400001"):
        r = server.http.post("/icat/waitMillis", data={"sessionId": root, "ms": bad})
        assert (r.status_code, r.json()["code"]) == (400, "BAD_PARAMETER"), bad
        assert r.json()["message"].startswith("ms must be")


def test_sleep_needs_no_session_and_says_how_long(server: Server) -> None:
    r = server.http.get("/icat/sleep/1")
    assert r.status_code == 200
    slept = r.json()["slept"]
    assert isinstance(slept, int) and slept >= 1000  # milliseconds, at least those asked for
    assert server.http.get("/icat/sleep/0").json()["slept"] >= 0
    for bad in ("-1", "x", "86401"):
        r = server.http.get(f"/icat/sleep/{bad}")
        assert (r.status_code, r.json()["code"]) == (400, "BAD_PARAMETER"), bad
        assert r.json()["message"].startswith("seconds must be")


# -- /icat/gatekeeper ---------------------------------------------------------------------------


#: A rule making Application a public table, as a peer (another ICAT on the same database)
#: writes it behind this server's back.
PEER_RULE = ("INSERT INTO RULE_ (CRUDFLAGS, C, R, U, D, RESTRICTED, WHAT, BEAN, CREATE_ID, "
             "CREATE_TIME, MOD_ID, MOD_TIME) VALUES ('R', :no, :yes, :no, :no, :no, "
             "'Application', 'Application', 'peer', :t, 'peer', :t)")


def test_gatekeeper_marks_rules_stale(server: Server, root: str, user: str) -> None:
    """The cached rules are read again at once, so a peer's change holds from the call on.
    (Without the call they would be read again within a second: Cairn's processes need no
    such message.)"""
    (fac,) = write(server, root, {"Facility": {"name": uniq("gk"), "applications": [
        {"name": "app", "version": "1"}]}})
    query = f"SELECT a.name FROM Application a WHERE a.facility.id = {fac}"

    def seen() -> Any:
        r = server.http.get("/icat/entityManager", params={"sessionId": user, "query": query})
        assert r.status_code == 200, r.text
        return r.json()

    assert seen() == []  # and the rules are cached by the server now
    server.sql(PEER_RULE, yes=True, no=False, t=datetime(2024, 1, 1))
    r = server.http.post("/icat/gatekeeper/markPublicTablesStale")  # no session: a peer's call
    assert r.status_code == 204 and r.content == b""
    assert seen() == ["app"]
    server.sql("DELETE FROM RULE_ WHERE CREATE_ID = 'peer'")
    r = server.http.post("/icat/gatekeeper/markPublicStepsStale")
    assert r.status_code == 204
    assert seen() == []


def test_gatekeeper_only_takes_post(server: Server) -> None:
    for path in ("markPublicTablesStale", "markPublicStepsStale"):
        r = server.http.get(f"/icat/gatekeeper/{path}")
        assert r.status_code == 501
        assert r.json()["code"] == "NOT_IMPLEMENTED"
