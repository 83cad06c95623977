"""cairn.logs: secrets hidden in every shape they are logged in; JSON lines; levels."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from cairn.config import ConfigError, Settings
from cairn.logs import (
    CURRENT_REQUEST,
    JsonFormatter,
    RedactFilter,
    Redactor,
    RequestInfo,
    configured_secrets,
    level_number,
    setup,
)

SID = "4f1c2a9e-77aa-4a41-9a52-1b2c3d4e5f60"
redact = Redactor()


@pytest.mark.parametrize(("text", "hidden"), [
    (f"session {SID} expired", "session … expired"),
    (f"SESSION {SID.upper()}", "SESSION …"),
    ("login with password=hunter2&user=x", "login with password=…&user=x"),
    ('{"plugin": "db", "credentials": [{"username": "x"}, {"password": "a\\"b"}]}',
     '{"plugin": "db", "credentials": [{"username": "x"}, {"password": "…"}]}'),
    ("{'password': 'abc', 'user': 'x'}", "{'password': '…', 'user': 'x'}"),
    ("passwd: abc", "passwd: …"),
    ("json=%7B%22credentials%22%3A%5B%7B%22password%22%3A%22zz%40top%22%7D%5D%7D",
     "json=%7B%22credentials%22%3A%5B%7B%22password%22%3A%22…%22%7D%5D%7D"),
    ("<ns0:credentials><entry><key>username</key><value>jo</value></entry><entry>"
     "<key>password</key><value>s&lt;cret</value></entry></ns0:credentials>",
     "<ns0:credentials><entry><key>username</key><value>jo</value></entry><entry>"
     "<key>password</key><value>…</value></entry></ns0:credentials>"),
    ("<sessionId>abc</sessionId>", "<sessionId>…</sessionId>"),
    ("/ids/getData?preparedId=xyz&outname=a", "/ids/getData?preparedId=…&outname=a"),
    ("postgresql+psycopg://icat:top%40secret@db:5432/icat",
     "postgresql+psycopg://icat:***@db:5432/icat"),
    ("Authorization: Bearer abcdefgh12345", "Authorization: Bearer …"),
])
def test_secret_shapes_are_hidden(text: str, hidden: str) -> None:
    assert redact(text) == hidden


@pytest.mark.parametrize("text", [
    "password is wrong", "no credentials given", "s3_secret_key must go with s3_access_key",
    "GET /icat/version 200", "job 12 (ids.twolevel) failed", "postgresql://db:5432/icat",
])
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_configured_secrets_are_hidden_in_the_forms_they_travel_in() -> None:
    r = Redactor(["p@ss word!", "abc"])  # too short a literal is not hidden
    assert r("p@ss word! p%40ss+word%21 p%40ss%20word%21") == "… … …"
    assert r("abc") == "abc"
    # on word edges only: a password that is a word does not eat longer words
    assert Redactor(["secret"])("secret secretive s3_secret_key") == \
        "… secretive s3_secret_key"


def test_configured_secrets_of_a_configuration() -> None:
    settings = Settings.model_validate({
        "catalogue": {"database": "postgresql://icat:DbPass99@db/icat"},
        "authn": {"simple": {"type": "simple", "users": {"a": "SimplePw"}}},
        "publishing": {"password": "DataCitePw"},
        "metrics": {"token": "ScrapeToken"}})
    assert {"DbPass99", "SimplePw", "DataCitePw", "ScrapeToken"} <= \
        set(configured_secrets(settings))


def record(msg: str, *args: object, name: str = "cairn.test",
           exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise ValueError(f"bad session {SID}")
        except ValueError:
            info = sys.exc_info()
    return logging.LogRecord(name, logging.INFO, __file__, 1, msg, args or None, info)


def test_the_filter_hides_secrets_in_arguments_and_tracebacks() -> None:
    f = RedactFilter(redact)
    r = record("download %s prepared as %s", 7, SID)
    assert f.filter(r)
    assert r.getMessage() == "download 7 prepared as …"
    r = record("failed", exc=True)
    f.filter(r)
    text = logging.Formatter().format(r)
    assert SID not in text and "ValueError: bad session …" in text


def test_an_access_record_keeps_its_fields() -> None:
    r = record('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET",
               f"/icat/session/{SID}", "1.1", 200, name="uvicorn.access")
    RedactFilter(redact).filter(r)
    assert r.args == ("127.0.0.1:5000", "GET", "/icat/session/…", "1.1", 200)
    line = json.loads(JsonFormatter(redact).format(r))
    assert line["path"] == "/icat/session/…" and line["status"] == 200
    assert line["method"] == "GET" and line["client"] == "127.0.0.1:5000"


def test_json_lines_carry_the_request() -> None:
    token = CURRENT_REQUEST.set(RequestInfo("r1", "GET", f"/ids/getData?sessionId={SID}",
                                            "10.0.0.1:4000"))
    try:
        r = record("went away", exc=True)
        r.job = 12  # an extra field
        RedactFilter(redact).filter(r)
        text = JsonFormatter(redact).format(r)
    finally:
        CURRENT_REQUEST.reset(token)
    assert "\n" not in text and SID not in text
    line = json.loads(text)
    assert line["level"] == "INFO" and line["logger"] == "cairn.test"
    assert line["message"] == "went away" and line["time"].endswith("Z")
    assert line["request_id"] == "r1" and line["method"] == "GET"
    assert line["path"] == "/ids/getData?sessionId=…" and line["client"] == "10.0.0.1:4000"
    assert line["job"] == 12
    assert "ValueError: bad session …" in line["exception"]


def test_levels() -> None:
    assert level_number("debug") == logging.DEBUG
    assert level_number("TRACE") == 5
    with pytest.raises(ConfigError, match="unknown log level 'loud'; choose one of"):
        level_number("loud")


def test_setup_installs_one_handler_and_keeps_info(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    try:
        setup("warning", "json", ["Hunter2Hunter2"])
        setup("warning", "json", ["Hunter2Hunter2"])  # again: replaces, does not add
        assert len(root.handlers) == len(before) + 1
        assert root.level == logging.INFO  # Cairn's INFO lines stay below uvicorn's warning
        logging.getLogger("cairn.x").info("password Hunter2Hunter2 for %s", SID)
    finally:
        for h in root.handlers[len(before):]:
            root.removeHandler(h)
        root.setLevel(level)
    line = json.loads(out.getvalue())
    assert line["message"] == "password … for …"
