"""The DataGateway portal against ``/topcat``: every call its plugins were seen to make
(``reference/data/datagateway-portal-requests.jsonl``, replayed with the facility renamed to
one that exists and a real session in place of the mock one), then the rest of the calls of
datagateway-portal.md §1.2 as the portal sends them; each answer has the shape the portal
reads.

The server has no ``[downloads]`` table: every Facility of the catalogue is a facility, the
root users are the admins, the one transport is https.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from tests.conftest import BACKENDS, make_database
from tests.integration.ids_support import Rest
from tests.integration.server import Server
from tests.integration.topcat_support import Catalogue, Topcat, build, ok
from tests.waiting import wait_until

CAPTURED = Path("/work/shared/reference/data/datagateway-portal-requests.jsonl")
FACILITY = "PORTAL"
#: The facility the portal was captured against.
CAPTURED_FACILITY = "LILS"

CART_KEYS = {"id", "facilityName", "userName", "createdAt", "updatedAt", "cartItems"}
CART_ITEM_KEYS = {"id", "entityId", "entityType", "name", "parentEntities"}
TRANSPORT_KEYS = {"idsUrl", "displayName", "description", "disabled", "message"}
DOWNLOAD_KEYS = {"id", "fileName", "fullName", "status", "transport", "preparedId",
                 "isTwoLevel", "isDeleted", "isEmailSent", "size", "createdAt",
                 "downloadItems", "userName", "email"}
STATUSES = {"PREPARING", "RESTORING", "COMPLETE", "EXPIRED", "PAUSED", "QUEUED"}


def captured() -> list[dict[str, Any]]:
    if not CAPTURED.exists():
        return []
    lines = CAPTURED.read_text(encoding="utf-8").splitlines()
    return [r for r in map(json.loads, filter(None, lines)) if r["path"].startswith("/topcat")]


class Portal:
    def __init__(self, server: Server, cat: Catalogue) -> None:
        self.server = server
        self.cat = cat
        self.tc = Topcat(server, FACILITY)
        self.user = server.login("jdoe")
        self.admin = server.login("root")

    def replay(self, request: dict[str, Any]) -> Any:
        """The captured request with the real facility and session; its JSON answer."""
        def real(value: str) -> str:
            value = value.replace(CAPTURED_FACILITY, FACILITY)
            if value.startswith("mock"):  # the mock session ids of the capture
                return self.admin if "/admin/" in request["path"] else self.user
            return value

        path = real(request["path"])
        query: list[tuple[str, str | int | float | bool | None]] = [
            (str(k), real(v)) for k, v in request["query"]]
        form: dict[str, list[str]] = {}
        for k, v in parse_qsl(request["body"] or "", keep_blank_values=True):
            form.setdefault(k, []).append(real(v))
        r = self.server.http.request(request["method"], path, params=query,
                                     data=form or None)
        return ok(r)


@pytest.fixture(scope="module", params=BACKENDS)
def portal(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Portal]:
    tmp = tmp_path_factory.mktemp(f"portal-{request.param}")
    url, drop = make_database(str(request.param), tmp)
    server = Server(tmp, url)
    try:
        p = Portal(server, build(server, FACILITY))
        # Something in the cart and a download, so every answer has content to check.
        p.tc.add(p.user, f"investigation {p.cat.inv['B']}, datafile {p.cat.files['A1'][0]}")
        yield p
    finally:
        server.stop()
        drop()  # type: ignore[operator]


def check_cart(cart: dict[str, Any]) -> None:
    assert set(cart) >= CART_KEYS, cart
    assert cart["facilityName"] == FACILITY and cart["cartItems"]
    for item in cart["cartItems"]:
        assert set(item) >= CART_ITEM_KEYS, item
        assert item["entityType"] in ("investigation", "dataset", "datafile")
        assert isinstance(item["entityId"], int) and isinstance(item["name"], str)
        for parent in item["parentEntities"]:
            assert set(parent) >= {"entityType", "entityId"}, parent


def check_transports(answer: dict[str, Any], ids_url: str) -> None:
    assert answer, "no transport offered"
    for name, t in answer.items():
        assert set(t) >= TRANSPORT_KEYS, (name, t)
        assert isinstance(t["disabled"], bool)
    assert answer["https"]["idsUrl"] == ids_url


def check_downloads(answer: list[dict[str, Any]]) -> None:
    assert isinstance(answer, list)
    for d in answer:
        assert set(d) >= DOWNLOAD_KEYS, d
        assert d["status"] in STATUSES
        assert isinstance(d["isDeleted"], bool) and isinstance(d["size"], int)
        assert "sessionId" not in d
        for item in d["downloadItems"]:
            assert set(item) >= {"entityType", "entityId"}


@pytest.mark.skipif(not captured(), reason=f"{CAPTURED} is not here")
def test_captured_calls_answer_as_the_portal_expects(portal: Portal) -> None:
    requests = captured()
    assert {r["path"] for r in requests} >= {f"/topcat/user/cart/{CAPTURED_FACILITY}",
                                              "/topcat/user/downloadType/status",
                                              "/topcat/admin/downloads"}
    # A download for the admin table to list.
    tc = portal.tc
    tc.submit(portal.user, "captured")
    tc.add(portal.user, f"investigation {portal.cat.inv['B']}")
    for request in requests:
        answer = portal.replay(request)
        path = request["path"]
        if path.startswith("/topcat/user/cart/"):
            check_cart(answer)
        elif path == "/topcat/user/downloadType/status":
            check_transports(answer, portal.server.url + "/ids")
        elif path == "/topcat/admin/downloads":
            check_downloads(answer)
            assert answer, "the admin table lists the submitted download"
            assert {d["facilityName"] for d in answer} == {FACILITY}
        else:
            pytest.fail(f"no check for the captured call {request['method']} {path}")


def test_the_rest_of_the_portals_calls(portal: Portal) -> None:
    """§1.2's other calls, with the portal's parameters: cart changes, submit, the
    downloads table (its default queryOffsets), deletes and status changes, queues."""
    tc, cat, sid, admin = portal.tc, portal.cat, portal.user, portal.admin
    cart_path = f"/user/cart/{FACILITY}/cartItems"
    cart = ok(tc.post(cart_path, sid, items=f"investigation {cat.inv['A']}, "
                                            f"investigation {cat.inv['B']}"))
    check_cart(cart)
    check_cart(ok(tc.post(cart_path, sid, items=f"investigation {cat.inv['A']}",
                          remove="true")))
    assert ok(tc.delete(cart_path, sid, items="*"))["cartItems"] == []
    tc.add(sid, f"dataset {cat.ds['B1']}")
    body = ok(tc.post(f"/user/cart/{FACILITY}/submit", sid, transport="https",
                      email="", fileName=f"{FACILITY}_2024-1-1_1-1-1", zipType="ZIP"))
    assert set(body) == {"facilityName", "userName", "cartItems", "downloadId"}
    download_id = body["downloadId"]
    check_downloads(ok(tc.get("/user/downloads", sid,
                              queryOffset="where download.isDeleted = false")))
    (d,) = ok(tc.get("/user/downloads", sid, queryOffset=f"where download.id = {download_id}"))
    check_downloads([d])
    wait_until(lambda: tc.download(sid, download_id)["status"] == "COMPLETE", 30,
               "the download to be COMPLETE")
    assert ok(tc.put(f"/user/download/{download_id}/isDeleted", sid, value="true")) is None
    assert ok(tc.put(f"/admin/download/{download_id}/isDeleted", admin, value="false")) is None
    assert ok(tc.put(f"/admin/download/{download_id}/status", admin, value="PAUSED")) is None
    assert ok(tc.get("/user/queue/allowed", sid)) is True
    ids = ok(tc.post("/user/queue/visit", sid, transport="https", email="", visitId="V1"))
    assert isinstance(ids, list) and ids and all(isinstance(i, int) for i in ids)
    rest = Rest(portal.server)
    dc = rest.create("DataCollection")
    rest.create("DataCollectionDataset", dataCollection={"id": dc}, dataset={"id": cat.ds["B1"]})
    ids = ok(tc.post("/user/queue/dataCollection", sid, transport="https", email="",
                     dataCollectionId=dc))
    assert isinstance(ids, list) and len(ids) == 1
