"""The ``remote`` authenticator against a real authenticator plugin served over HTTP.

The plugin here is a small Starlette app speaking the ICAT authenticator protocol, run by
uvicorn on a free port in a background thread. It serves three mnemonics:

* ``authn.ldap``  - users jdoe/secret, answers with mechanism ``ldap``;
* ``authn.plain`` - the same users, answers without a mechanism;
* ``authn.broken`` - ``authenticate`` fails with 500 and a text body, or, for user
  ``structured``, with 500 and a JSON ``code``/``message``.

It records every request it receives, so the tests can see what was sent.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from cairn.authn import RemoteAuthenticator, login_user
from cairn.config import AuthnSettings
from cairn.errors import ErrorType, IcatError
from tests.waiting import wait_until

USERS = {"jdoe": "secret", "root": "rootpw"}


@dataclass
class Plugin:
    """What the plugin received: (mnemonic, call, parsed json form field or None)."""

    url: str
    received: list[tuple[str, str, Any]] = field(default_factory=list)

    def calls(self, call: str) -> list[tuple[str, Any]]:
        return [(m, body) for m, c, body in self.received if c == call]


def make_app(received: list[tuple[str, str, Any]]) -> Starlette:
    async def description(request: Request) -> Response:
        m = request.path_params["m"]
        received.append((m, "description", None))
        if m == "broken":
            return PlainTextResponse("down for maintenance", status_code=503)
        return JSONResponse({"keys": [{"name": "username"}, {"name": "password", "hide": True}]})

    async def version(request: Request) -> Response:
        received.append((request.path_params["m"], "version", None))
        return JSONResponse({"version": "3.0.1"})

    async def authenticate(request: Request) -> Response:
        m = request.path_params["m"]
        form = await request.form()
        body = json.loads(str(form["json"]))
        received.append((m, "authenticate", body))
        creds: dict[str, str] = {}
        for item in body["credentials"]:
            creds.update(item)
        if m == "broken":
            if creds.get("username") == "structured":
                return JSONResponse({"code": "AuthnException", "message": "LDAP server down"},
                                    status_code=500)
            return PlainTextResponse("Internal Server Error", status_code=500)
        username = creds.get("username", "")
        if not username:
            return JSONResponse({"code": "AuthnException",
                                 "message": "username cannot be null or empty."},
                                status_code=403)
        if USERS.get(username) != creds.get("password"):
            return JSONResponse({"code": "AuthnException",
                                 "message": "The username and password do not match "},
                                status_code=403)
        answer = {"username": username}
        if m == "ldap":
            answer["mechanism"] = "ldap"
        return JSONResponse(answer)

    return Starlette(routes=[
        Route("/authn.{m}/description", description),
        Route("/authn.{m}/version", version),
        Route("/authn.{m}/authenticate", authenticate, methods=["POST"]),
    ])


@pytest.fixture(scope="module")
def plugin() -> Iterator[Plugin]:
    received: list[tuple[str, str, Any]] = []
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(make_app(received), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()

    def started() -> bool:
        assert thread.is_alive(), "the test authenticator plugin's server thread ended"
        return bool(server.started)

    wait_until(started, 10, "the test authenticator plugin to start serving", step=0.01)
    try:
        yield Plugin(url=f"http://127.0.0.1:{port}", received=received)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def fresh(plugin: Plugin) -> Plugin:
    plugin.received.clear()
    return plugin


@pytest.fixture
def closed_url() -> str:
    """A URL nothing listens at (connection refused)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A URL that accepts connections but never answers (a hung server: timeout)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    try:
        yield f"http://127.0.0.1:{s.getsockname()[1]}"
    finally:
        s.close()


@pytest.fixture
def make() -> Iterator[Any]:
    made: list[RemoteAuthenticator] = []

    def _make(mnemonic: str, *urls: str, **kw: Any) -> RemoteAuthenticator:
        a = RemoteAuthenticator(mnemonic, AuthnSettings(type="remote", url=list(urls), **kw))
        made.append(a)
        return a

    yield _make
    for a in made:
        a.close()


def error(excinfo: pytest.ExceptionInfo[IcatError]) -> tuple[ErrorType, str]:
    return excinfo.value.type, excinfo.value.message


def test_success_with_mechanism(fresh: Plugin, make: Any) -> None:
    auth = make("ldap", fresh.url)
    assert auth.authenticate({"username": "jdoe", "password": "secret"}, "10.1.2.3") \
        == "ldap/jdoe"
    assert fresh.calls("authenticate") == [
        ("ldap", {"credentials": [{"username": "jdoe"}, {"password": "secret"}],
                  "ip": "10.1.2.3"})]


def test_success_without_mechanism(fresh: Plugin, make: Any) -> None:
    auth = make("plain", fresh.url)
    assert auth.authenticate({"username": "jdoe", "password": "secret"}, None) == "jdoe"


def test_configured_mechanism_overrides_the_plugins(fresh: Plugin, make: Any) -> None:
    assert make("plain", fresh.url, mechanism="fed").authenticate(
        {"username": "root", "password": "rootpw"}, None) == "fed/root"
    assert make("ldap", fresh.url, mechanism="fed").authenticate(
        {"username": "root", "password": "rootpw"}, None) == "fed/root"


def test_wrong_password_is_a_session_error_with_the_plugins_message(fresh: Plugin,
                                                                    make: Any) -> None:
    auth = make("ldap", fresh.url)
    with pytest.raises(IcatError) as e:
        auth.authenticate({"username": "jdoe", "password": "wrong"}, None)
    assert error(e) == (ErrorType.SESSION, "The username and password do not match ")
    with pytest.raises(IcatError) as e:
        auth.authenticate({"password": "wrong"}, None)
    assert error(e) == (ErrorType.SESSION, "username cannot be null or empty.")


def test_server_error_without_json_is_internal(fresh: Plugin, make: Any) -> None:
    with pytest.raises(IcatError) as e:
        make("broken", fresh.url).authenticate({"username": "jdoe", "password": "x"}, None)
    assert e.value.type is ErrorType.INTERNAL
    assert "500" in e.value.message
    assert len(fresh.calls("authenticate")) == 1


def test_server_error_with_code_and_message_is_a_session_error(fresh: Plugin,
                                                                make: Any) -> None:
    with pytest.raises(IcatError) as e:
        make("broken", fresh.url).authenticate({"username": "structured", "password": "x"},
                                               None)
    assert error(e) == (ErrorType.SESSION, "LDAP server down")


def test_an_http_error_does_not_fail_over(fresh: Plugin, make: Any) -> None:
    # The first HTTP answer wins, even an error: the second URL is not asked.
    auth = make("broken", fresh.url, fresh.url)
    with pytest.raises(IcatError) as e:
        auth.authenticate({"username": "jdoe", "password": "secret"}, None)
    assert e.value.type is ErrorType.INTERNAL
    assert len(fresh.calls("authenticate")) == 1


def test_failover_from_a_closed_port(fresh: Plugin, make: Any, closed_url: str) -> None:
    auth = make("ldap", closed_url, fresh.url)
    assert auth.authenticate({"username": "jdoe", "password": "secret"}, None) == "ldap/jdoe"
    assert auth.keys() == [{"name": "username"}, {"name": "password", "hide": True}]
    assert [c for _, c, _ in fresh.received] == ["authenticate", "description"]


def test_failover_from_a_hung_server(fresh: Plugin, make: Any, silent_url: str) -> None:
    auth = make("ldap", silent_url, fresh.url, timeout_seconds=0.5)
    started = time.monotonic()
    assert auth.authenticate({"username": "jdoe", "password": "secret"}, None) == "ldap/jdoe"
    assert 0.4 < time.monotonic() - started < 5


def test_all_urls_dead(make: Any, closed_url: str, silent_url: str) -> None:
    auth = make("m", closed_url, silent_url, timeout_seconds=0.3)  # construction does not fail
    with pytest.raises(IcatError) as e:
        auth.authenticate({"username": "jdoe", "password": "secret"}, None)
    assert error(e) == (ErrorType.INTERNAL, "No authenticator of type m is working")
    with pytest.raises(IcatError) as e:
        auth.keys()
    assert e.value.type is ErrorType.INTERNAL
    assert e.value.message.startswith("No authenticator of type m is working")
    assert closed_url in e.value.message


def test_credentials_order_and_ip_are_forwarded_as_sent(fresh: Plugin, make: Any) -> None:
    auth = make("ldap", fresh.url)
    creds = {"password": "secret", "otp": "123 456", "username": "jdoe", "empty": ""}
    assert auth.authenticate(creds, "2001:db8::7") == "ldap/jdoe"
    auth.authenticate({"username": "root", "password": "rootpw"}, None)
    sent = fresh.calls("authenticate")
    assert sent[0] == ("ldap", {"credentials": [{"password": "secret"}, {"otp": "123 456"},
                                                {"username": "jdoe"}, {"empty": ""}],
                                "ip": "2001:db8::7"})
    assert sent[1] == ("ldap", {"credentials": [{"username": "root"}, {"password": "rootpw"}]})
    assert "ip" not in sent[1][1]


def test_special_characters_survive_the_form_encoding(fresh: Plugin, make: Any) -> None:
    USERS["o'brien&co"] = 'p@ss w=rd+"€"%20'
    try:
        auth = make("plain", fresh.url)
        assert auth.authenticate({"username": "o'brien&co", "password": 'p@ss w=rd+"€"%20'},
                                 None) == "o'brien&co"
    finally:
        del USERS["o'brien&co"]


def test_keys_are_fetched_once_and_cached(fresh: Plugin, make: Any) -> None:
    auth = make("ldap", fresh.url)
    assert fresh.calls("description") == []  # lazily
    keys = auth.keys()
    assert keys == [{"name": "username"}, {"name": "password", "hide": True}]
    keys[0]["name"] = "mutated"
    assert auth.keys()[0] == {"name": "username"}
    assert fresh.calls("description") == [("ldap", None)]


def test_description_http_error_is_internal_and_not_cached(fresh: Plugin, make: Any) -> None:
    auth = make("broken", fresh.url)
    for _ in range(2):
        with pytest.raises(IcatError) as e:
            auth.keys()
        assert e.value.type is ErrorType.INTERNAL
        assert "503" in e.value.message
    assert len(fresh.calls("description")) == 2


def test_version(fresh: Plugin, make: Any, closed_url: str) -> None:
    assert make("ldap", closed_url, fresh.url + "/").version() == "3.0.1"
    assert fresh.calls("version") == [("ldap", None)]


def test_login_user_through_a_remote_authenticator(fresh: Plugin, make: Any) -> None:
    authenticators = {"ldap": make("ldap", fresh.url)}
    assert login_user(authenticators, "ldap", {"username": "jdoe", "password": "secret"},
                      "127.0.0.1") == "ldap/jdoe"
    with pytest.raises(IcatError) as e:
        login_user(authenticators, "db", {"username": "jdoe", "password": "secret"}, None)
    assert error(e) == (ErrorType.SESSION, "Authenticator mnemonic db not recognised")
