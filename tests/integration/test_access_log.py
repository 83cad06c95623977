"""A real server's access log (uvicorn's, at level info) shows every request but never a
session id or a prepared id."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import make_database
from tests.integration.server import Server


def test_the_access_log_hides_session_ids(tmp_path: Path) -> None:
    url, drop = make_database("sqlite", tmp_path)
    server = Server(tmp_path, url, log_level="info")
    try:
        r = server.http.post("/icat/session", data={"json": '{"plugin": "simple", '
                             '"credentials": [{"username": "root"}, {"password": "secret"}]}'})
        sid = r.json()["sessionId"]
        assert server.http.get("/icat/session/" + sid).status_code == 200
        assert server.http.get("/icat/entityManager",
                               params={"sessionId": sid, "query": "Facility"}).status_code == 200
        server.http.get("/ids/getSize", params={"sessionId": sid, "datafileIds": "1"})
        server.http.get("/topcat/user/downloads", params={"sessionId": sid,
                                                          "facilityName": "x"})
        server.expect_log_lines("/topcat/user/downloads", 1)
        log = server.log_text()
        assert "GET /icat/entityManager?sessionId=…&query=Facility" in log
        assert "/ids/getSize?sessionId=…&datafileIds=1" in log
        assert "GET /icat/session/… HTTP" in log
        assert sid not in log
    finally:
        server.stop()
        drop()
