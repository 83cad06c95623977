"""The access log never shows a session id or a prepared id."""

from __future__ import annotations

import logging

from cairn.web.accesslog import HideSecrets, hide_secrets

SID = "4f1c2a9e-77aa-4a41-9a52-1b2c3d4e5f60"


def test_secret_parameters_are_hidden_wherever_they_stand() -> None:
    assert hide_secrets(f"/ids/getData?sessionId={SID}&datafileIds=1") == \
        "/ids/getData?sessionId=…&datafileIds=1"
    assert hide_secrets(f"/topcat/user/cart/F?facilityName=F&SESSIONID={SID}") == \
        "/topcat/user/cart/F?facilityName=F&SESSIONID=…"
    assert hide_secrets(f"/ids/getData?preparedId={SID}&outname=x.zip") == \
        "/ids/getData?preparedId=…&outname=x.zip"
    # a parameter that only ends in "sessionId" is not one
    assert hide_secrets("/x?mysessionId=1") == "/x?mysessionId=1"
    assert hide_secrets("/icat/version") == "/icat/version"
    assert hide_secrets(f"/icat/session/{SID}") == "/icat/session/…"
    assert hide_secrets("/icat/session") == "/icat/session"


def test_the_uvicorn_access_record_is_rewritten() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                               '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", f"/icat/session?sessionId={SID}",
                                "1.1", 200), None)
    assert HideSecrets().filter(record)
    assert SID not in record.getMessage()
    assert "sessionId=…" in record.getMessage()
