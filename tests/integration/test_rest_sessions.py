"""Sessions, authenticators and service information over real HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from tests.integration.server import Server


def login_body(plugin: str, user: str, password: str) -> dict[str, str]:
    return {"json": json.dumps({"plugin": plugin, "credentials": [{"username": user},
                                                                   {"password": password}]})}


def test_version_and_properties(server: Server) -> None:
    r = server.http.get("/icat/version")
    assert r.status_code == 200
    assert r.json() == {"version": "6.2.0"}
    assert r.headers["access-control-allow-origin"] == "*"
    props = server.http.get("/icat/properties").json()
    assert props["maxEntities"] == 10000
    assert props["lifetimeMinutes"] == 120
    assert props["containerType"] == "Glassfish"
    by_name = {a["mnemonic"]: a for a in props["authenticators"]}
    assert list(by_name) == ["simple", "db", "anon"]
    assert by_name["simple"]["keys"] == [{"name": "username"}, {"name": "password", "hide": True}]
    assert by_name["simple"]["friendly"] == "Simple"
    assert "friendly" not in by_name["db"]
    assert by_name["anon"]["keys"] == []


def test_login_session_info_refresh_logout(server: Server) -> None:
    sid = server.login("jdoe")
    uuid.UUID(sid)  # a random UUID, as icat.server issues
    info = server.http.get(f"/icat/session/{sid}").json()
    assert info["userName"] == "simple/jdoe"
    assert 119 < info["remainingMinutes"] <= 120
    assert server.http.get("/icat/user/simple/jdoe").json() == {"loggedIn": True}
    assert server.http.put(f"/icat/session/{sid}").status_code == 204
    r = server.http.delete(f"/icat/session/{sid}")
    assert r.status_code == 204
    r = server.http.get(f"/icat/session/{sid}")
    assert r.status_code == 403
    assert r.json() == {"code": "SESSION", "message": f"Unable to find user by sessionid: {sid}"}


def test_user_logged_in_without_mnemonic(server: Server) -> None:
    assert server.http.get("/icat/user/nobody-here").json() == {"loggedIn": False}
    assert server.http.get("/icat/user/simple/nobody-here").json() == {"loggedIn": False}


def test_anon_login(server: Server) -> None:
    r = server.http.post("/icat/session",
                         data={"json": json.dumps({"plugin": "anon", "credentials": []})})
    assert r.status_code == 200
    sid = r.json()["sessionId"]
    assert server.http.get(f"/icat/session/{sid}").json()["userName"] == "anon/anon"


@pytest.mark.parametrize(("body", "status", "code", "message"), [
    (login_body("simple", "jdoe", "wrong"), 403, "SESSION",
     "The username and password do not match"),
    (login_body("simple", "ghost", "secret"), 403, "SESSION",
     "The username and password do not match"),
    (login_body("simple", "", "secret"), 403, "SESSION", "username cannot be null or empty."),
    (login_body("nosuch", "jdoe", "secret"), 403, "SESSION",
     "Authenticator mnemonic nosuch not recognised"),
    ({}, 400, "BAD_PARAMETER", "json must not be null"),
])
def test_login_failures(server: Server, body: dict[str, str], status: int, code: str,
                        message: str) -> None:
    before = server.snapshot()
    r = server.http.post("/icat/session", data=body)
    assert r.status_code == status
    assert r.json() == {"code": code, "message": message}
    assert server.snapshot() == before


def test_login_with_malformed_json(server: Server) -> None:
    r = server.http.post("/icat/session", data={"json": "{plugin: simple"})
    assert r.status_code == 400
    assert r.json()["code"] == "BAD_PARAMETER"
    assert "Badly formed JSON" in r.json()["message"]


def test_session_errors(server: Server) -> None:
    r = server.http.get("/icat/entityManager", params={"query": "Facility"})
    assert r.status_code == 403
    assert r.json() == {"code": "SESSION", "message": "Session Id cannot be null or empty."}
    r = server.http.get("/icat/entityManager",
                        params={"sessionId": "not-a-session", "query": "Facility"})
    assert r.json() == {"code": "SESSION",
                        "message": "Unable to find user by sessionid: not-a-session"}


def test_expired_session_refused_but_refreshable(server: Server) -> None:
    sid = server.login("root")
    server.sql("UPDATE SESSION_ SET EXPIREDATETIME = :t WHERE ID = :id",
               t="2000-01-01 00:00:00", id=sid)
    r = server.http.get("/icat/entityManager", params={"sessionId": sid, "query": "Facility"})
    assert r.status_code == 403
    assert r.json() == {"code": "SESSION", "message": f"Session id:{sid} has expired"}
    r = server.http.get(f"/icat/session/{sid}")
    assert r.json()["code"] == "SESSION"
    # As icat.server: an expired session that has not been purged may still be refreshed.
    assert server.http.put(f"/icat/session/{sid}").status_code == 204
    assert server.http.get(f"/icat/session/{sid}").json()["remainingMinutes"] > 119


def test_db_user_managed_with_cli(server: Server) -> None:
    name = f"u{uuid.uuid4().hex[:8]}"
    cli = [sys.executable, "-m", "cairn.cli", "user"]
    out = subprocess.run([*cli, "add", f"db/{name}", "--password", "pw1", "--config",
                          str(server.config)], capture_output=True, text=True, check=True)
    assert "password set" in out.stdout
    r = server.http.post("/icat/session", data=login_body("db", name, "pw1"))
    assert r.status_code == 200
    sid = r.json()["sessionId"]
    assert server.http.get(f"/icat/session/{sid}").json()["userName"] == f"db/{name}"
    assert server.http.post("/icat/session",
                            data=login_body("db", name, "bad")).status_code == 403
    listed = subprocess.run([*cli, "list", "--config", str(server.config)],
                            capture_output=True, text=True, check=True)
    assert f"db/{name}" in listed.stdout.split()  # as `add` and `remove` take it
    subprocess.run([*cli, "remove", f"db/{name}", "--config", str(server.config)], check=True)
    assert server.http.post("/icat/session",
                            data=login_body("db", name, "pw1")).status_code == 403
    bad = subprocess.run([*cli, "add", f"simple/{name}", "--password", "x", "--config",
                          str(server.config)], capture_output=True, text=True)
    assert bad.returncode == 2
    assert "db authenticator" in bad.stderr


def test_unknown_paths_are_not_implemented(server: Server) -> None:
    for method, path in [("GET", "/icat/nothing"), ("POST", "/icat/version"),
                         ("GET", "/icat/gatekeeper/markPublicTablesStale")]:
        r = server.http.request(method, path)
        assert r.status_code == 501
        assert r.json() == {"code": "NOT_IMPLEMENTED",
                            "message": "Operation not implemented by this ICAT server."}
