"""Nothing secret in a real server's log: session ids, prepared ids and passwords.

A server runs at uvicorn's most talkative level (``trace``: every ASGI scope, query strings and
headers included, and every library's DEBUG lines) in text and in JSON. Users log in over REST
and SOAP, with good and with wrong passwords (passwords the configuration does not know, so
only the shapes they travel in can hide them), upload and download through ``/ids`` with
session ids and prepared ids, get a TopCat download prepared (whose preparation Cairn logs),
and cause errors. Then the whole log is searched for every one of those secrets, plain and
in the encodings they travel in.
"""

from __future__ import annotations

import json
import secrets
import urllib.parse
import uuid
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from cairn.authn import db as db_authn
from cairn.db.engine import Database
from tests.conftest import make_database
from tests.integration.server import Server
from tests.integration.test_soap import call, envelope, fault
from tests.integration.topcat_support import Topcat, build, ok
from tests.waiting import wait_until

FACILITY = "logfac"


def forms(secret: str) -> set[str]:
    """A secret as it may be written: plain, URL-encoded (forms, query strings), JSON, XML."""
    return {secret, urllib.parse.quote_plus(secret), urllib.parse.quote(secret, safe=""),
            json.dumps(secret)[1:-1], escape(secret)}


def rest_login(server: Server, plugin: str, user: str, password: str) -> tuple[int, str]:
    body = {"plugin": plugin, "credentials": [{"username": user}, {"password": password}]}
    r = server.http.post("/icat/session", data={"json": json.dumps(body)})
    return r.status_code, r.json().get("sessionId", "") if r.status_code == 200 else ""


def soap_credentials(user: str, password: str) -> str:
    return (f"<plugin>db</plugin><credentials><entry><key>username</key><value>{user}</value>"
            f"</entry><entry><key>password</key><value>{escape(password)}</value></entry>"
            "</credentials>")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_no_session_id_prepared_id_or_password_reaches_the_log(tmp_path: Path,
                                                                fmt: str) -> None:
    url, drop = make_database("sqlite", tmp_path)  # what is logged does not depend on it
    root_password = f"Root-{secrets.token_hex(6)}"
    # Characters that forms and JSON encode: the encoded forms must not leak either.
    alice_password = f"Al1ce&p@ss+{secrets.token_hex(6)}\"x"
    wrong = [f"Wrong-{secrets.token_hex(6)}" for _ in range(2)]
    passwords = [root_password, alice_password, *wrong]
    sids: list[str] = []
    prepared: list[str] = []
    server = Server(tmp_path, url, extra_config=f'\n[logging]\nformat = "{fmt}"\n',
                    env={"CAIRN_ROOT_PASSWORD": root_password}, log_level="trace")
    try:
        db = Database(url)
        db_authn.set_password(db, "alice", alice_password)
        db.dispose()

        # REST logins: good and wrong passwords; the session read, refreshed, ended, reused.
        for plugin, user, password in (("db", "root", root_password),
                                       ("db", "alice", alice_password)):
            status, sid = rest_login(server, plugin, user, password)
            assert status == 200
            sids.append(sid)
        assert rest_login(server, "db", "alice", wrong[0])[0] == 403
        root, alice = sids
        assert server.http.get(f"/icat/session/{alice}").status_code == 200
        assert server.http.put(f"/icat/session/{alice}").status_code == 204
        assert server.http.delete(f"/icat/session/{alice}").status_code == 204
        assert server.http.get(f"/icat/session/{alice}").status_code == 403
        assert server.http.get("/icat/entityManager", params={
            "sessionId": root, "query": "SELECT x FROM Nothing x"}).status_code == 400

        # SOAP: a login, a call with its session id, a fault, a refused login.
        (ret,) = call(server, "login", soap_credentials("alice", alice_password))
        soap_sid = str(ret.text)
        sids.append(soap_sid)
        (name,) = call(server, "getUserName", f"<sessionId>{soap_sid}</sessionId>")
        assert name.text == "db/alice"
        fault(server, envelope("search", f"<sessionId>{soap_sid}</sessionId>"
                                         "<query>SELECT nonsense</query>"))
        fault(server, envelope("login", soap_credentials("alice", wrong[1])))

        # The data service: puts (in build), getData by session id and by prepared id,
        # errors with a session id and a prepared id nobody has.
        cat = build(server, FACILITY)
        files = [f for fs in cat.files.values() for f in fs]
        r = server.http.get("/ids/getData", params={"sessionId": root,
                                                    "datafileIds": files[0]})
        assert r.status_code == 200 and r.content == cat.content[files[0]][1]
        r = server.http.post("/ids/prepareData", data={"sessionId": root,
                                                       "datafileIds": ",".join(map(str, files))})
        assert r.status_code == 200
        prepared.append(r.text.strip())
        assert server.http.get("/ids/isPrepared",
                               params={"preparedId": prepared[0]}).status_code == 200
        assert server.http.get("/ids/getData", params={"preparedId": prepared[0]}
                               ).status_code == 200
        wrong_ids: list[dict[str, str]] = [
            {"preparedId": str(uuid.uuid4())},
            {"sessionId": str(uuid.uuid4()), "datafileIds": str(files[0])},
            {"sessionId": alice, "datafileIds": str(files[0])}]
        for params in wrong_ids:
            assert server.http.get("/ids/getData", params=params).status_code >= 400
            prepared.extend(v for k, v in params.items() if k == "preparedId")
            sids.extend(v for k, v in params.items() if k == "sessionId")

        # A TopCat download: Cairn prepares it and logs that it did.
        tc = Topcat(server, FACILITY)
        jdoe = server.login("jdoe")
        sids.append(jdoe)
        tc.add(jdoe, f"dataset {cat.ds['A1']}")
        download_id = tc.submit(jdoe, "mine")

        def complete() -> bool:
            (s,) = ok(tc.get("/user/downloads/status", jdoe, downloadIds=[download_id]))
            return bool(s == "COMPLETE")

        wait_until(complete, 30, "the TopCat download to be prepared")
        prepared.append(tc.download(jdoe, download_id)["preparedId"])
        assert server.http.get("/ids/getData", params={"preparedId": prepared[-1]}
                               ).status_code == 200
        server.expect_log_lines("prepared as", 1)
    finally:
        server.stop()  # every line written
        drop()  # type: ignore[operator]

    log = Path(tmp_path / "server.log").read_text(errors="replace")
    # The log did record all this (a quiet log would pass vacuously).
    for evidence in ("/ids/getData?preparedId=…", "/ids/getData?sessionId=…", "ASGI [",
                     "prepared as …", "POST /ICATService/ICAT"):
        assert evidence in log, f"{evidence!r} is missing from the log"
    for secret in sids + prepared:
        assert secret and secret not in log, f"a session or prepared id {secret} is logged"
    for password in passwords:
        for form in forms(password):
            assert form not in log, f"password {password!r} is logged (as {form!r})"
    if fmt == "json":
        lines = [ln for ln in log.splitlines() if ln.startswith("{")]
        assert len(lines) > 50
        records = [json.loads(ln) for ln in lines]
        assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
        served = [r for r in records if r.get("logger") == "uvicorn.access"
                  and r.get("path", "").startswith("/ids/getData")]
        assert served and all(r["request_id"] and r["status"] for r in served)
