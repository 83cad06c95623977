"""The download manager's ``/topcat`` API over real HTTP against a real server, on every
backend: every endpoint and its errors in TopCat's shape, cart semantics, submit to a zip,
queues, transports, statuses, admin calls, anonymous carts, and no session id in any answer.

The server (one per backend for the module) has ``[downloads]`` with one facility and small
limits, three transports (https; globus for the grouping ``globus-users``; ada, which needs
an e-mail and refuses anonymous users), parts of 3 files, ``max_active = 1`` (a download
waiting for an outside agent holds the one slot, so queued downloads stay QUEUED until it is
done), useroffice as the admin, and a local SMTP server (aiosmtpd) for the ready mails.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from cairn.downloads.service import cairn_version
from tests.conftest import BACKENDS, make_database
from tests.integration.ids_support import Rest
from tests.integration.server import Server, free_port
from tests.integration.topcat_support import (
    Catalogue,
    Topcat,
    assert_error,
    build,
    ok,
    zip_members,
)
from tests.waiting import wait_until

FACILITY = "TOPCAT"


class Inbox:
    """An SMTP server on a free port that keeps what it is sent."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.lock = threading.Lock()
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    @staticmethod
    def text(mail: Message) -> str:
        payload = mail.get_payload(decode=True)
        assert isinstance(payload, bytes)
        return payload.decode()

    def about(self, file_name: str) -> list[Message]:
        with self.lock:
            return [m for m in self.messages if file_name in str(m["Subject"])]


CONFIG = """
[downloads]
poll_seconds = 0.2
part_files = 3
max_files = 4
max_active = 1
admins = ["simple/useroffice"]

[downloads.facilities.TOPCAT]
limit_count = 6
limit_size = 3000

[downloads.transports.https]
display_name = "HTTPS"
description = "Through your browser"

[downloads.transports.globus]
display_name = "Globus"
description = "To your endpoint"
allowed_groupings = ["globus-users"]

[downloads.transports.ada]
display_name = "Ada"
ids_url = "https://ada.example.org/ids"
mail_required = true
disallowed_authn = ["anon"]

[downloads.priorities]
default = 1
user = {{ "simple/nbour" = 0 }}

[downloads.mail]
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
subject = "Ready: ${{fileName}}"
body = "Get it at ${{downloadUrl}} (${{customValue}})"
"""


class Env:
    def __init__(self, server: Server, cat: Catalogue, inbox: Inbox) -> None:
        self.server = server
        self.cat = cat
        self.inbox = inbox
        with inbox.lock:  # the mails of another backend's server
            inbox.messages.clear()
        self.tc = Topcat(server, FACILITY)
        self.sids: list[str] = []

    def login(self, user: str, plugin: str = "simple") -> str:
        sid = self.server.login(user, plugin)
        self.sids.append(sid)
        return sid

    def anon(self) -> str:
        """An anonymous session, got through TopCat's own login call."""
        r = self.tc.http.post("/topcat/user/session", params={"facilityName": FACILITY},
                              data={"plugin": "anon", "username": "", "password": ""})
        sid = str(ok(r)["sessionId"])
        self.sids.append(sid)
        return sid

    def status(self, sid: str, download_id: int) -> str:
        (s,) = ok(self.tc.get("/user/downloads/status", sid, downloadIds=[download_id]))
        return str(s)

    def await_status(self, sid: str, download_id: int, status: str) -> dict[str, Any]:
        wait_until(lambda: self.status(sid, download_id) == status, 30,
                   f"download {download_id} to be {status}",
                   detail=lambda: f"it is {self.status(sid, download_id)}; log tail:\n"
                   f"{self.server.log_text()[-3000:]}")
        return self.tc.download(sid, download_id)

    def fetch(self, d: dict[str, Any]) -> dict[str, bytes]:
        """The download's zip, fetched as the portal links it."""
        r = self.server.http.get("/ids/getData", params={"preparedId": d["preparedId"],
                                                         "outname": d["fileName"]})
        assert r.status_code == 200, r.text[:500]
        assert f'filename="{d["fileName"]}.zip"' in r.headers["content-disposition"]
        return zip_members(r.content)

    def expected(self, *datafiles: int) -> dict[str, bytes]:
        return {self.cat.content[f][0]: self.cat.content[f][1] for f in datafiles}

    def agent_download(self) -> int:
        """A globus download of acord's, left RESTORING for its outside agent: it holds the
        one active slot until :meth:`finish_agent` completes it."""
        acord = self.login("acord")
        self.tc.add(acord, f"dataset {self.cat.ds['A3']}")
        download_id = self.tc.submit(acord, "for-globus", transport="globus")
        self.await_status(acord, download_id, "RESTORING")
        return download_id

    def finish_agent(self, download_id: int) -> None:
        admin = self.login("useroffice")
        ok(self.tc.put(f"/admin/download/{download_id}/status", admin, value="COMPLETE"))

    def no_session_ids(self, text: str) -> None:
        for sid in self.sids:
            assert sid not in text


@pytest.fixture(scope="module")
def inbox() -> Iterator[Inbox]:
    box = Inbox()
    box.controller.start()
    try:
        yield box
    finally:
        box.controller.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
        inbox: Inbox) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp(f"topcat-{request.param}")
    url, drop = make_database(str(request.param), tmp)
    server = Server(tmp, url, extra_config=CONFIG.format(smtp_port=inbox.port))
    try:
        e = Env(server, build(server, FACILITY), inbox)
        yield e
        # Nothing this module did put a session id in the server's log.
        e.no_session_ids(server.log_text())
    finally:
        server.stop()
        drop()  # type: ignore[operator]


# -- general ------------------------------------------------------------------------------------

def test_ping_version_and_conf_vars(env: Env) -> None:
    tc = env.tc
    assert ok(tc.get("/ping", None)) == "ok"
    assert ok(tc.get("/version", None)) == cairn_version()
    assert ok(tc.get("/confVars/motd", None)) == ""
    admin, jdoe = env.login("useroffice"), env.login("jdoe")
    assert ok(tc.put("/admin/confVars/motd", admin, value="Beamtime ahead")) is None
    assert ok(tc.get("/confVars/motd", None)) == "Beamtime ahead"
    assert ok(tc.put("/admin/confVars/motd", admin, value="Changed")) is None
    assert ok(tc.get("/confVars/motd", None)) == "Changed"
    assert_error(tc.put("/admin/confVars/motd", jdoe, value="x"), 403, "ForbiddenException")
    assert ok(tc.get("/confVars/motd", None)) == "Changed"


def test_unknown_calls_and_cors(env: Env) -> None:
    http = env.server.http
    assert_error(http.get("/topcat/user/nothing"), 404, "NotFoundException")
    assert_error(http.post("/topcat/ping"), 405, "NotAllowedException")
    r = http.options("/topcat/user/download/1/isDeleted",
                     headers={"Origin": "https://portal.example.org",
                              "Access-Control-Request-Method": "PUT"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "*"
    assert "PUT" in r.headers["access-control-allow-methods"]
    assert "Content-Type" in r.headers["access-control-allow-headers"]
    r = http.get("/topcat/ping", headers={"Origin": "https://portal.example.org"})
    assert r.headers["access-control-allow-origin"] == "*"


def test_facility_and_session_errors(env: Env) -> None:
    tc, jdoe = env.tc, env.login("jdoe")
    message = assert_error(tc.get("/user/cart/ELSEWHERE", jdoe), 400, "BadRequestException")
    assert "ELSEWHERE" in message and FACILITY in message
    assert_error(tc.get("/user/downloads", jdoe, facilityName="ELSEWHERE"), 400,
                 "BadRequestException", FACILITY)
    bad = "5c3d0a2e-0000-4000-8000-000000000000"
    # TopCat relays ICAT's refusal of a session as 400 BadRequest, for every user call...
    for r in (tc.get(f"/user/cart/{FACILITY}", bad), tc.get("/user/downloads", bad),
              tc.post(f"/user/cart/{FACILITY}/cartItems", bad, items="dataset 1"),
              tc.get("/user/downloadType/status", bad), tc.get("/user/queue/allowed", bad),
              tc.get(f"/user/cart/{FACILITY}", None)):
        message = assert_error(r, 400, "BadRequestException")
        assert bad not in message  # ...but never echoes the session id
    # ... and an admin call as 403, an invalid session being no admin's.
    assert_error(tc.get("/admin/downloads", bad), 403, "ForbiddenException")
    assert ok(tc.get("/admin/isValidSession", bad)) is False
    assert ok(tc.get("/admin/isValidSession", jdoe)) is False
    assert ok(tc.get("/admin/isValidSession", env.login("useroffice"))) is True


@pytest.mark.parametrize("method,path,form", [
    ("GET", "/admin/downloads", {}),
    ("PUT", "/admin/download/1/status", {"value": "COMPLETE"}),
    ("PUT", "/admin/download/1/prepare", {}),
    ("PUT", "/admin/download/1/isDeleted", {"value": "true"}),
    ("PUT", "/admin/downloadType/https/status", {"disabled": "true", "message": "x"}),
    ("DELETE", "/admin/clearSize/dataset/1", {}),
    ("PUT", "/admin/confVars/x", {"value": "y"}),
])
def test_admin_calls_need_an_admin(env: Env, method: str, path: str,
                                   form: dict[str, str]) -> None:
    tc, jdoe = env.tc, env.login("jdoe")
    if method == "GET":
        r = tc.get(path, jdoe, **form)
    elif method == "PUT":
        r = tc.put(path, jdoe, **form)
    else:
        r = tc.delete(path, jdoe, facilityName=FACILITY, **form)
    assert_error(r, 403, "ForbiddenException")


def test_login(env: Env) -> None:
    tc = env.tc
    r = tc.http.post("/topcat/user/session", params={"facilityName": FACILITY},
                     data={"username": "jdoe", "password": "secret", "plugin": "simple"})
    sid = ok(r)["sessionId"]
    assert ok(tc.get(f"/user/cart/{FACILITY}", sid))["userName"] == "simple/jdoe"
    r = tc.http.post("/topcat/user/session", params={"facilityName": FACILITY},
                     data={"username": "jdoe", "password": "wrong", "plugin": "simple"})
    assert_error(r, 403, "ForbiddenException")
    r = tc.http.post("/topcat/user/session", params={"facilityName": "ELSEWHERE"},
                     data={"username": "jdoe", "password": "secret", "plugin": "simple"})
    assert_error(r, 400, "BadRequestException", "ELSEWHERE")


# -- carts --------------------------------------------------------------------------------------

def _cart_items(cart: dict[str, Any]) -> list[tuple[str, int]]:
    return [(i["entityType"], i["entityId"]) for i in cart["cartItems"]]


def test_cart_holds_an_entity_or_its_parent(env: Env) -> None:
    tc, cat, jdoe = env.tc, env.cat, env.login("jdoe")
    tc.remove(jdoe, "*")
    empty = tc.cart(jdoe)
    assert empty == {"facilityName": FACILITY, "userName": "simple/jdoe", "cartItems": []}
    f_a1, f_b1 = cat.files["A1"][0], cat.files["B1"][1]
    cart = tc.add(jdoe, f"datafile {f_a1}, dataset {cat.ds['A2']}, datafile {f_b1}, "
                        f"datafile {f_a1}")
    assert _cart_items(cart) == [("datafile", f_a1), ("dataset", cat.ds["A2"]),
                                 ("datafile", f_b1)]
    assert {"id", "createdAt", "updatedAt"} <= set(cart)
    item = cart["cartItems"][0]
    assert item["name"] == cat.content[f_a1][0]
    assert item["parentEntities"] == [{"entityType": "investigation", "entityId": cat.inv["A"]},
                                      {"entityType": "dataset", "entityId": cat.ds["A1"]}]
    assert cart["cartItems"][1]["parentEntities"] == [
        {"entityType": "investigation", "entityId": cat.inv["A"]}]
    # Its dataset replaces the datafile; then a datafile of a dataset in the cart is ignored.
    cart = tc.add(jdoe, f"dataset {cat.ds['A1']}")
    assert _cart_items(cart) == [("dataset", cat.ds["A2"]), ("datafile", f_b1),
                                 ("dataset", cat.ds["A1"])]
    assert _cart_items(tc.add(jdoe, f"datafile {cat.files['A1'][2]}")) == _cart_items(cart)
    # The investigation replaces everything in it.
    cart = tc.add(jdoe, f"investigation {cat.inv['A']}")
    assert _cart_items(cart) == [("datafile", f_b1), ("investigation", cat.inv["A"])]
    assert cart["cartItems"][1]["name"] == "inv A"
    assert tc.cart(jdoe) == cart
    # Removal: by pair, by cart-item id, through POST remove=true, and everything.
    cart = tc.add(jdoe, f"dataset {cat.ds['B1']}")
    assert _cart_items(cart) == [("investigation", cat.inv["A"]), ("dataset", cat.ds["B1"])]
    cart = tc.remove(jdoe, f"dataset {cat.ds['B1']}")
    assert _cart_items(cart) == [("investigation", cat.inv["A"])]
    cart = tc.add(jdoe, f"dataset {cat.ds['B1']}")
    item_id = cart["cartItems"][1]["id"]
    assert _cart_items(tc.remove(jdoe, str(item_id))) == [("investigation", cat.inv["A"])]
    cart = ok(tc.post(f"/user/cart/{FACILITY}/cartItems", jdoe,
                      items=f"investigation {cat.inv['A']}", remove="true"))
    # Empty: the cart row is gone (no id any more).
    assert cart == {"facilityName": FACILITY, "userName": "simple/jdoe", "cartItems": []}
    assert env.server.sql("SELECT COUNT(*) FROM CAIRN_CART WHERE USER_NAME = 'simple/jdoe'"
                          ).scalar() == 0
    tc.add(jdoe, f"dataset {cat.ds['B1']}, dataset {cat.ds['A3']}")
    assert tc.remove(jdoe, "*")["cartItems"] == []


def test_cart_refusals(env: Env) -> None:
    tc, cat, jdoe = env.tc, env.cat, env.login("jdoe")
    tc.remove(jdoe, "*")
    path = f"/user/cart/{FACILITY}/cartItems"
    for items, where in [("dataset", "item 1"), ("dataset 1 2", "item 1"),
                         (f"dataset {cat.ds['A1']}, folder 3", "item 2"),
                         ("dataset x", "item 1"), ("dataset -4", "item 1")]:
        assert_error(tc.post(path, jdoe, items=items), 400, "BadRequestException", where)
    assert_error(tc.post(path, jdoe), 400, "BadRequestException", "items")
    assert_error(tc.delete(path, jdoe, items="*, dataset 3"), 400, "BadRequestException")
    # Unknown: 404, as ICAT's; unreadable: ICAT's refusal, as TopCat relays it (400).
    assert_error(tc.post(path, jdoe, items="dataset 987654321"), 404, "NotFoundException",
                 "Dataset[id:987654321]")
    assert_error(tc.post(path, jdoe, items=f"dataset {cat.ds['A2']}, dataset {cat.ds['C1']}"),
                 400, "BadRequestException", f"Dataset[id:{cat.ds['C1']}]")
    # A refused request adds nothing.
    assert tc.cart(jdoe)["cartItems"] == []
    assert_error(tc.post(path, jdoe, items="dataset 1", remove="perhaps"), 400,
                 "BadRequestException", "remove")


def test_anonymous_carts_are_per_session(env: Env) -> None:
    tc, cat = env.tc, env.cat
    one, two = env.anon(), env.anon()
    a = tc.add(one, f"dataset {cat.ds['P1']}")
    b = tc.add(two, f"datafile {cat.files['P1'][0]}")
    assert _cart_items(tc.cart(one)) == [("dataset", cat.ds["P1"])]
    assert _cart_items(tc.cart(two)) == [("datafile", cat.files["P1"][0])]
    assert a["userName"] != b["userName"]
    for cart in (a, b):
        assert re.fullmatch(r"anon/anon/[0-9a-f]{32}", cart["userName"]), cart
    assert_error(tc.post(f"/user/cart/{FACILITY}/cartItems", one,
                         items=f"dataset {cat.ds['A1']}"), 400, "BadRequestException")
    download_id = tc.submit(one, "public-data")
    d = env.await_status(one, download_id, "COMPLETE")
    assert d["userName"] == a["userName"]
    assert env.fetch(d) == env.expected(*cat.files["P1"])
    # The other session sees neither the download nor its status.
    assert tc.downloads(two) == []
    assert_error(tc.get("/user/downloads/status", two, downloadIds=[download_id]), 404,
                 "NotFoundException")
    assert_error(tc.put(f"/user/download/{download_id}/isDeleted", two, value="true"), 403,
                 "ForbiddenException")
    # Transports: ada refuses anonymous users; globus is for a grouping.
    assert set(ok(tc.get("/user/downloadType/status", one))) == {"https"}
    assert_error(tc.get("/user/downloadType/ada/status", one), 403, "ForbiddenException")
    env.no_session_ids(str(tc.downloads(one)) + str(tc.cart(two)))


# -- submit and downloads -----------------------------------------------------------------------

def test_submit_to_a_zip(env: Env) -> None:
    tc, cat, jdoe = env.tc, env.cat, env.login("jdoe")
    tc.remove(jdoe, "*")
    f_b1 = cat.files["B1"][1]
    tc.add(jdoe, f"dataset {cat.ds['A2']}, datafile {f_b1}")
    path = f"/user/cart/{FACILITY}/submit"
    assert_error(tc.post(path, jdoe, transport="https"), 400, "BadRequestException",
                 "fileName")
    assert_error(tc.post(path, jdoe, fileName="x", transport="carrier-pigeon"), 400,
                 "BadRequestException", "https")
    assert_error(tc.post(path, jdoe, fileName="x", transport="ada"), 400,
                 "BadRequestException", "email is required for ada")
    assert_error(tc.post(path, jdoe, fileName="x", transport="globus"), 403,
                 "ForbiddenException", "not allowed to use globus")
    assert_error(tc.post(path, jdoe, fileName="x", transport="https", email="not-an-address"),
                 400, "BadRequestException", "not an e-mail address")
    assert len(tc.cart(jdoe)["cartItems"]) == 2  # refused submits keep the cart
    download_id = tc.submit(jdoe, "my data", email="jdoe@example.org")
    assert tc.cart(jdoe)["cartItems"] == []
    d = env.await_status(jdoe, download_id, "COMPLETE")
    assert d["fileName"] == "my data" and d["transport"] == "https"
    assert d["userName"] == "simple/jdoe" and d["fullName"] == "Jdoe"
    assert d["email"] == "jdoe@example.org" and d["isDeleted"] is False
    assert d["downloadItems"] == [{"entityType": "dataset", "entityId": cat.ds["A2"]},
                                  {"entityType": "datafile", "entityId": f_b1}]
    assert d["size"] == cat.size("A2") + len(cat.content[f_b1][1])
    assert d["completedAt"] and d["createdAt"] and d["preparedId"]
    assert "sessionId" not in d
    env.no_session_ids(str(d))
    assert env.fetch(d) == env.expected(*cat.files["A2"], f_b1)
    # The ready mail links the same zip.
    mails = wait_until(lambda: env.inbox.about("my data"), 30, "the ready mail")
    assert f"preparedId={d['preparedId']}&outname=my+data" in env.inbox.text(mails[0])
    # An empty cart submits nothing (TopCat's answer: no downloadId).
    body = ok(tc.post(path, jdoe, transport="https", fileName="nothing"))
    assert body == {"facilityName": FACILITY, "userName": "simple/jdoe", "cartItems": []}


def test_submit_limits(env: Env) -> None:
    tc, cat, jdoe = env.tc, env.cat, env.login("jdoe")
    tc.remove(jdoe, "*")
    path = f"/user/cart/{FACILITY}/submit"
    tc.add(jdoe, f"investigation {cat.inv['A']}, investigation {cat.inv['B']}")  # 8 files
    assert_error(tc.post(path, jdoe, transport="https", fileName="x"), 400,
                 "BadRequestException", "number of files exceeds limit (8 > 6)")
    tc.remove(jdoe, f"investigation {cat.inv['B']}")  # 6 files, 3,280 bytes
    assert cat.size("A1", "A2", "A3") > 3000
    assert_error(tc.post(path, jdoe, transport="https", fileName="x"), 400,
                 "BadRequestException", "size of files exceeds limit")
    assert len(tc.cart(jdoe)["cartItems"]) == 1
    tc.remove(jdoe, "*")


def test_downloads_list_and_query_offset(env: Env) -> None:
    tc, cat = env.tc, env.cat
    jdoe, acord = env.login("jdoe"), env.login("acord")
    tc.add(jdoe, f"dataset {cat.ds['A3']}")
    first = tc.submit(jdoe, "first")
    tc.add(jdoe, f"dataset {cat.ds['A3']}")
    second = tc.submit(jdoe, "second")
    tc.add(acord, f"dataset {cat.ds['A3']}")
    theirs = tc.submit(acord, "theirs")
    mine = tc.downloads(jdoe)
    assert {d["userName"] for d in mine} == {"simple/jdoe"}
    assert {first, second} <= {d["id"] for d in mine} and theirs not in {d["id"] for d in mine}
    assert [d["id"] for d in tc.downloads(jdoe, f"where download.id = {second}")] == [second]
    page = tc.downloads(jdoe, "where download.isDeleted = false ORDER BY download.id DESC "
                              "LIMIT 0, 1")
    assert [d["id"] for d in page] == [max(d["id"] for d in mine)]
    # Someone else's downloads stay out of reach, whatever the text says.
    for text in (f"where download.id = {theirs}", "where 1 = 1 OR download.id > 0",
                 "where download.userName = 'simple/acord' OR download.userName LIKE '%'"):
        assert theirs not in {d["id"] for d in tc.downloads(jdoe, text)}, text
    # Text that is not the little language is refused, never run.
    for text in ("where download.id = 1; DELETE FROM CAIRN_DOWNLOAD",
                 "where download.id = 1) OR (1 = 1",
                 "where download.sessionId = 'x'",
                 "where download.id IN (SELECT d.id FROM Download d)",
                 "where download.fileName = '' UNION SELECT * FROM SESSION_ --'",
                 "LIMIT 0, 99999999999999999999"):
        assert_error(tc.get("/user/downloads", jdoe, queryOffset=text), 400,
                     "BadRequestException")
    # Statuses in the order asked for; another's download is not found.
    statuses = ok(tc.get("/user/downloads/status", jdoe, downloadIds=[second, first, second]))
    assert len(statuses) == 3
    assert_error(tc.get("/user/downloads/status", jdoe, downloadIds=[first, theirs]), 404,
                 "NotFoundException")
    assert_error(tc.get("/user/downloads/status", jdoe), 400, "BadRequestException")
    assert_error(tc.get("/user/downloads/status", jdoe, downloadIds=["x"]), 400,
                 "BadRequestException")
    # An admin sees everyone's, with the portal's admin queryOffset.
    admin = env.login("useroffice")
    everything = ok(tc.get("/admin/downloads", admin, queryOffset=(
        f"WHERE download.facilityName = '{FACILITY}' ORDER BY download.createdAt desc, "
        "download.id ASC LIMIT 0, 50")))
    assert {first, second, theirs} <= {d["id"] for d in everything}
    env.no_session_ids(str(everything))


def test_soft_delete(env: Env) -> None:
    tc, cat, jdoe = env.tc, env.cat, env.login("jdoe")
    tc.add(jdoe, f"dataset {cat.ds['A3']}")
    download_id = tc.submit(jdoe, "to-delete")
    assert ok(tc.put(f"/user/download/{download_id}/isDeleted", jdoe, value="true")) is None
    d = tc.download(jdoe, download_id)
    assert d["isDeleted"] is True and d["deletedAt"]
    live = tc.downloads(jdoe, "where download.isDeleted = false")
    assert download_id not in {x["id"] for x in live}
    ok(tc.put(f"/user/download/{download_id}/isDeleted", jdoe, value="false"))
    assert tc.download(jdoe, download_id)["isDeleted"] is False
    admin = env.login("useroffice")
    ok(tc.put(f"/admin/download/{download_id}/isDeleted", admin, value="true"))
    assert tc.download(jdoe, download_id)["isDeleted"] is True
    acord = env.login("acord")
    assert_error(tc.put(f"/user/download/{download_id}/isDeleted", acord, value="false"), 403,
                 "ForbiddenException")
    assert_error(tc.put("/user/download/987654/isDeleted", jdoe, value="true"), 404,
                 "NotFoundException")
    assert_error(tc.put(f"/user/download/{download_id}/isDeleted", jdoe, value="maybe"), 400,
                 "BadRequestException")
    assert_error(tc.put("/user/download/abc/isDeleted", jdoe, value="true"), 400,
                 "BadRequestException")
    assert_error(tc.put("/admin/download/987654/isDeleted", admin, value="true"), 404,
                 "NotFoundException")


def test_pause_resume_and_status_rules(env: Env) -> None:
    tc, jdoe, acord = env.tc, env.login("jdoe"), env.login("acord")
    agent = env.agent_download()  # globus: RESTORING until the agent says COMPLETE
    path = f"/user/download/{agent}/status"
    assert_error(tc.put(path, jdoe, value="PAUSED"), 403, "ForbiddenException")
    ok(tc.put(path, acord, value="PAUSED"))
    assert env.status(acord, agent) == "PAUSED"
    ok(tc.put(path, acord, value="RESTORING"))
    assert env.status(acord, agent) == "RESTORING"
    # A user may not declare a download complete, nor set made-up statuses.
    assert_error(tc.put(path, acord, value="COMPLETE"), 403, "ForbiddenException")
    assert_error(tc.put(path, acord, value="EXPIRED"), 403, "ForbiddenException")
    assert_error(tc.put(path, acord, value="ONLINE"), 400, "BadRequestException")
    assert_error(tc.put("/user/download/987654/status", acord, value="PAUSED"), 404,
                 "NotFoundException")
    # The agent's call: COMPLETE with a customValue for the mail.
    admin = env.login("useroffice")
    ok(tc.put(f"/admin/download/{agent}/status", admin, value="PAUSED"))
    assert env.status(acord, agent) == "PAUSED"
    ok(tc.put(f"/admin/download/{agent}/status", admin, value="RESTORING"))
    assert env.status(acord, agent) == "RESTORING"
    ok(tc.put(f"/admin/download/{agent}/status", admin, value="COMPLETE",
              customValue="token-42"))
    d = tc.download(acord, agent)
    assert d["status"] == "COMPLETE" and d["completedAt"]
    assert_error(tc.put(f"/admin/download/{agent}/status", admin, value="DONE"), 400,
                 "BadRequestException")
    # A QUEUED download is not the user's to change.
    queued = _stuck_in_queue(env, jdoe)
    assert_error(tc.put(f"/user/download/{queued}/status", jdoe, value="PAUSED"), 403,
                 "ForbiddenException", "QUEUED")


def test_ready_mail_carries_the_custom_value(env: Env) -> None:
    tc, cat = env.tc, env.cat
    acord = env.login("acord")
    tc.add(acord, f"dataset {cat.ds['A2']}")
    download_id = tc.submit(acord, "agent-mail", transport="globus", email="acord@example.org")
    env.await_status(acord, download_id, "RESTORING")
    admin = env.login("useroffice")
    # DELIVERED is measured, never set by hand
    assert_error(tc.put(f"/admin/download/{download_id}/status", admin, value="DELIVERED"),
                 400, "BadRequestException", "every byte")
    ok(tc.put(f"/admin/download/{download_id}/status", admin, value="COMPLETE",
              customValue="token-42"))
    (mail,) = wait_until(lambda: env.inbox.about("agent-mail"), 30, "the ready mail")
    assert mail["To"] == "acord@example.org"
    assert "(token-42)" in env.inbox.text(mail)
    wait_until(lambda: tc.download(acord, download_id)["isEmailSent"], 30,
               "the mail to be recorded as sent")


def _stuck_in_queue(env: Env, sid: str) -> int:
    """A download of ``sid``'s that stays QUEUED (priority 0 is never started)."""
    env.tc.add(sid, f"dataset {env.cat.ds['A3']}")
    download_id = env.tc.submit(sid, "stuck")
    env.await_status(sid, download_id, "COMPLETE")
    env.server.sql("UPDATE CAIRN_DOWNLOAD SET STATUS = 'QUEUED', PRIORITY = 0 WHERE ID = :i",
                   i=download_id)
    return download_id


def test_admin_prepare_makes_a_new_prepared_id(env: Env) -> None:
    tc, cat, jdoe = env.tc, env.cat, env.login("jdoe")
    tc.add(jdoe, f"dataset {cat.ds['A1']}")
    download_id = tc.submit(jdoe, "again")
    old = env.await_status(jdoe, download_id, "COMPLETE")
    ok(tc.put(f"/user/download/{download_id}/isDeleted", jdoe, value="true"))
    admin = env.login("useroffice")
    ok(tc.put(f"/admin/download/{download_id}/prepare", admin))
    new = env.await_status(jdoe, download_id, "COMPLETE")
    assert new["preparedId"] != old["preparedId"] and new["isDeleted"] is False
    assert env.fetch(new) == env.expected(*cat.files["A1"])
    assert_error(tc.put("/admin/download/987654/prepare", admin), 404, "NotFoundException")


# -- sizes --------------------------------------------------------------------------------------

def test_sizes(env: Env) -> None:
    tc, cat, jdoe = env.tc, env.cat, env.login("jdoe")
    assert ok(tc.get("/user/getSize", jdoe, entityType="investigation",
                     entityId=cat.inv["A"])) == cat.size("A1", "A2", "A3")
    assert ok(tc.get("/user/getSize", jdoe, entityType="dataset",
                     entityId=cat.ds["B1"])) == cat.size("B1")
    f = cat.files["A2"][1]
    assert ok(tc.get("/user/getSize", jdoe, entityType="datafile", entityId=f)) == \
        len(cat.content[f][1])
    assert_error(tc.get("/user/getSize", jdoe, entityType="dataset", entityId=cat.ds["C1"]),
                 400, "BadRequestException")
    assert_error(tc.get("/user/getSize", jdoe, entityType="dataset", entityId=987654), 404,
                 "NotFoundException")
    assert_error(tc.get("/user/getSize", jdoe, entityType="folder", entityId=1), 400,
                 "BadRequestException")
    assert_error(tc.get("/user/getSize", jdoe, entityType="dataset"), 400,
                 "BadRequestException")
    assert ok(tc.post("/user/getSize/visit", jdoe, visitId="V1")) == {
        "totalCount": 8, "totalSize": cat.size("A1", "A2", "A3", "B1")}
    acord = env.login("acord")  # reads A only
    assert ok(tc.post("/user/getSize/visit", acord, visitId="V1")) == {
        "totalCount": 6, "totalSize": cat.size("A1", "A2", "A3")}
    assert_error(tc.post("/user/getSize/visit", jdoe, visitId="V2"), 404, "NotFoundException")
    assert_error(tc.post("/user/getSize/visit", jdoe), 400, "BadRequestException")
    loc = cat.locations
    a, b, c = cat.files["A1"][0], cat.files["B1"][1], cat.files["C1"][0]
    body = ok(tc.post("/user/getSize/files", jdoe, files=[loc[a], loc[b], "no/such/file",
                                                          loc[c]]))
    assert body == {"totalCount": 2, "totalSize": len(cat.content[a][1]) +
                    len(cat.content[b][1]), "notFound": ["no/such/file", loc[c]]}
    assert_error(tc.post("/user/getSize/files", jdoe, files=[str(i) for i in range(5)]), 400,
                 "BadRequestException", "Limit of 4 files")


# -- transports ---------------------------------------------------------------------------------

def test_transports(env: Env) -> None:
    tc, admin = env.tc, env.login("useroffice")
    jdoe, acord = env.login("jdoe"), env.login("acord")
    base = env.server.url + "/ids"
    mine = ok(tc.get("/user/downloadType/status", jdoe))
    assert mine == {
        "https": {"idsUrl": base, "displayName": "HTTPS", "description": "Through your browser",
                  "disabled": False, "message": ""},
        "ada": {"idsUrl": "https://ada.example.org/ids", "displayName": "Ada",
                "description": "", "disabled": False, "message": ""}}
    assert set(ok(tc.get("/user/downloadType/status", acord))) == {"https", "globus", "ada"}
    assert_error(tc.get("/user/downloadType/globus/status", jdoe), 403, "ForbiddenException")
    assert ok(tc.get("/user/downloadType/globus/status", acord))["displayName"] == "Globus"
    assert_error(tc.get("/user/downloadType/nope/status", jdoe), 400, "BadRequestException")
    # An admin switches https off with a message, and on again.
    ok(tc.put("/admin/downloadType/https/status", admin, disabled="true",
              message="Maintenance until noon"))
    assert ok(tc.get("/user/downloadType/https/status", jdoe))["disabled"] is True
    assert ok(tc.get("/user/downloadType/status", jdoe))["https"]["message"] == \
        "Maintenance until noon"
    tc.add(jdoe, f"dataset {env.cat.ds['A3']}")
    assert_error(tc.post(f"/user/cart/{FACILITY}/submit", jdoe, transport="https",
                         fileName="x"), 403, "ForbiddenException", "Maintenance until noon")
    ok(tc.put("/admin/downloadType/https/status", admin, disabled="false", message=""))
    assert ok(tc.get("/user/downloadType/https/status", jdoe))["disabled"] is False
    tc.submit(jdoe, "after-maintenance")
    assert_error(tc.put("/admin/downloadType/nope/status", admin, disabled="true"), 400,
                 "BadRequestException")


# -- queues -------------------------------------------------------------------------------------

def test_queue_allowed_and_forbidden(env: Env) -> None:
    tc = env.tc
    assert ok(tc.get("/user/queue/allowed", env.login("jdoe"))) is True
    nbour = env.login("nbour")
    assert ok(tc.get("/user/queue/allowed", nbour)) is False
    assert_error(tc.post("/user/queue/visit", nbour, transport="https", visitId="V1"), 403,
                 "ForbiddenException", "Queuing downloads is forbidden")
    assert_error(tc.post("/user/queue/files", nbour, transport="https",
                         files=[env.cat.locations[env.cat.files["P1"][0]]]), 403,
                 "ForbiddenException", "Queuing downloads is forbidden")


def test_queue_visit(env: Env) -> None:
    tc, cat, jdoe = env.tc, env.cat, env.login("jdoe")
    agent = env.agent_download()
    try:
        ids = ok(tc.post("/user/queue/visit", jdoe, transport="https", visitId="V1",
                         email=""))
        assert len(ids) == 3
        downloads = {d["id"]: d for d in tc.downloads(jdoe) if d["id"] in ids}
        assert [downloads[i]["fileName"] for i in ids] == [
            f"{FACILITY}_V1_part_{k}_of_3" for k in (1, 2, 3)]
        assert [downloads[i]["status"] for i in ids] == ["QUEUED"] * 3
        assert [downloads[i]["downloadItems"] for i in ids] == [
            [{"entityType": "dataset", "entityId": cat.ds[n]} for n in part]
            for part in (["A1"], ["A2", "A3"], ["B1"])]
        assert [downloads[i]["size"] for i in ids] == [
            cat.size("A1"), cat.size("A2", "A3"), cat.size("B1")]
    finally:
        env.finish_agent(agent)  # frees the slot: the queue moves
    for i, part in zip(ids, (["A1"], ["A2", "A3"], ["B1"]), strict=True):
        d = env.await_status(jdoe, i, "COMPLETE")
        assert env.fetch(d) == env.expected(*(f for n in part for f in cat.files[n]))
    named = ok(tc.post("/user/queue/visit", env.login("acord"), transport="https",
                       visitId="V1", fileName="mine"))
    assert len(named) == 2  # acord reads investigation A only: A1 | A2, A3
    assert [tc.download(env.login("acord"), i)["fileName"] for i in named] == [
        "mine_part_1_of_2", "mine_part_2_of_2"]
    assert_error(tc.post("/user/queue/visit", jdoe, transport="https", visitId="V2"), 404,
                 "NotFoundException")
    assert_error(tc.post("/user/queue/visit", jdoe, transport="https"), 400,
                 "BadRequestException", "visitId")
    # No transport named: the first configured (https).
    parts = ok(tc.post("/user/queue/visit", jdoe, visitId="V1", fileName="dflt"))
    assert {tc.download(jdoe, i)["transport"] for i in parts} == {"https"}


def test_queue_files(env: Env) -> None:
    tc, cat, jdoe = env.tc, env.cat, env.login("jdoe")
    loc = cat.locations
    a, b, c = cat.files["A1"][1], cat.files["B1"][0], cat.files["C1"][0]
    body = ok(tc.post("/user/queue/files", jdoe, transport="https",
                      files=[loc[a], "nowhere/x.dat", loc[b], loc[c]]))
    assert body["notFound"] == ["nowhere/x.dat", loc[c]]
    d = env.await_status(jdoe, body["downloadId"], "COMPLETE")
    assert d["fileName"] == f"{FACILITY}_files"
    assert env.fetch(d) == env.expected(a, b)
    assert_error(tc.post("/user/queue/files", jdoe, transport="https", files=["nowhere"]), 404,
                 "NotFoundException")
    assert_error(tc.post("/user/queue/files", jdoe, transport="https"), 400,
                 "BadRequestException")
    assert_error(tc.post("/user/queue/files", jdoe, transport="https",
                         files=[loc[a]] * 5), 400, "BadRequestException", "Limit of 4")


def test_search_files(env: Env) -> None:
    """Free-text search for datafiles, in icat.lucene's answer shape, paged with searchAfter:
    a user finds the files of their own investigations; an admin is not narrowed to theirs,
    but still finds only what the rules let them read."""
    tc, cat, jdoe = env.tc, env.cat, env.login("jdoe")

    def page(sid: str, **form: Any) -> dict[str, Any]:
        r = tc.http.post("/topcat/user/search/files",
                         params={"facilityName": FACILITY, "sessionId": sid,
                                 **({"maxResults": form.pop("maxResults")}
                                    if "maxResults" in form else {})},
                         data=form)
        body = ok(r)
        assert isinstance(body, dict)
        return body

    mine = {f for d in ("A1", "A2", "A3", "B1") for f in cat.files[d]}
    # The index follows the uploads through the job queue.
    wait_until(lambda: len(page(jdoe, query="*.dat", maxResults=10)["results"]) == len(mine),
               30, "the datafiles to be indexed")
    found: dict[int, dict[str, Any]] = {}
    after: str | None = None
    pages = 0
    while True:
        body = page(jdoe, query="*.dat", maxResults=3, **({"searchAfter": after} if after else {}))
        pages += 1
        assert 0 < len(body["results"]) <= 3
        for hit in body["results"]:
            assert hit["_id"] not in found
            found[hit["_id"]] = hit["_source"]
        if "search_after" not in body:
            break
        after = json.dumps(body["search_after"])
    assert pages == 3
    assert set(found) == mine
    for f, source in found.items():
        assert source == {"id": f, "location": cat.locations[f],
                          "fileSize": len(cat.content[f][1])}
    # maxResults unset: at most max_files (4) per page, as TopCat.
    assert len(page(jdoe, query="*.dat")["results"]) == 4
    # A narrower query.
    body = page(jdoe, query="b1_*", maxResults=10)
    assert {h["_id"] for h in body["results"]} == set(cat.files["B1"])
    # The admin is not narrowed to their investigations (they are on none) but reads only
    # the public one.
    admin = env.login("useroffice")
    body = page(admin, query="*.dat", maxResults=10)
    assert {h["_id"] for h in body["results"]} == set(cat.files["P1"])
    r = tc.http.post("/topcat/user/search/files",
                     params={"facilityName": FACILITY, "sessionId": jdoe, "maxResults": 10001},
                     data={"query": "*.dat"})
    assert_error(r, 400, "BadRequestException", "maxResults cannot exceed 10000")
    r = tc.http.post("/topcat/user/search/files",
                     params={"facilityName": FACILITY, "sessionId": jdoe}, data={})
    assert_error(r, 400, "BadRequestException", "query is required")
    r = tc.http.post("/topcat/user/search/files",
                     params={"facilityName": FACILITY, "sessionId": "no-such-session"},
                     data={"query": "*"})
    assert_error(r, 400, "BadRequestException")
    r = tc.http.post("/topcat/user/search/files",
                     params={"facilityName": "NOPE", "sessionId": jdoe}, data={"query": "*"})
    assert_error(r, 400, "BadRequestException", "NOPE")


def test_queue_data_collection(env: Env) -> None:
    tc, cat, jdoe = env.tc, env.cat, env.login("jdoe")
    rest = Rest(env.server)
    dc = rest.create("DataCollection")
    rest.create("DataCollectionDataset", dataCollection={"id": dc}, dataset={"id": cat.ds["A2"]})
    f = cat.files["B1"][1]
    rest.create("DataCollectionDatafile", dataCollection={"id": dc}, datafile={"id": f})
    ids = ok(tc.post("/user/queue/dataCollection", jdoe, transport="https",
                     dataCollectionId=dc))
    (only,) = ids
    d = env.await_status(jdoe, only, "COMPLETE")
    assert d["fileName"] == f"{FACILITY}_DataCollection{dc}_part_1_of_1"
    assert env.fetch(d) == env.expected(*cat.files["A2"], f)
    assert_error(tc.post("/user/queue/dataCollection", jdoe, transport="https",
                         dataCollectionId=0), 400, "BadRequestException")
    assert_error(tc.post("/user/queue/dataCollection", jdoe, transport="https",
                         dataCollectionId=987654), 404, "NotFoundException")


# -- defaults -------------------------------------------------------------------------------------

def test_defaults_and_anonymous_downloads_off(tmp_path: Path) -> None:
    """Every Facility of the catalogue is a facility, root users are the admins, the one
    transport is https; and anonymous downloads can be switched off."""
    url, _ = make_database("sqlite", tmp_path)
    server = Server(tmp_path, url, extra_config="[downloads]\nanon_download_enabled = false\n"
                    "[search]\nenabled = false\n")
    try:
        cat = build(server, "DEFAULTS")
        tc = Topcat(server, "DEFAULTS")
        root, jdoe = server.login("root"), server.login("jdoe")
        assert_error(tc.get("/user/cart/NOPE", jdoe), 400, "BadRequestException", "DEFAULTS")
        assert ok(tc.get("/admin/isValidSession", root)) is True
        assert ok(tc.get("/admin/isValidSession", jdoe)) is False
        assert set(ok(tc.get("/user/downloadType/status", jdoe))) == {"https"}
        r = tc.http.post("/topcat/user/session", data={"plugin": "anon"})
        anon = ok(r)["sessionId"]
        tc.add(anon, f"dataset {cat.ds['P1']}")
        assert_error(tc.post("/user/cart/DEFAULTS/submit", anon, transport="https",
                             fileName="x"), 403, "ForbiddenException", "anonymous")
        assert_error(tc.post("/user/search/files", jdoe, query="*"), 400,
                     "BadRequestException", "Querying not enabled")
        tc.add(jdoe, f"dataset {cat.ds['A1']}")
        download_id = tc.submit(jdoe)
        wait_until(lambda: tc.download(jdoe, download_id)["status"] == "COMPLETE", 30,
                   "the download to be COMPLETE")
    finally:
        server.stop()
