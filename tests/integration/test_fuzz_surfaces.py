"""A property-based fuzzer over every input surface of a real server, on every backend.

Surfaces: query text (REST search and get, SOAP search), JSON entities (REST write, delete,
cloner, login), SOAP envelopes, data-service parameters and headers, and dump files for
``POST /icat/port``. Inputs come from :mod:`tests.integration.fuzz_inputs`. Whatever is
sent, the invariant is the same: no INTERNAL error (no HTTP 5xx; for SOAP, whose faults are
500, no fault of type INTERNAL), no hang (every call has a client timeout), and the server
still answers afterwards.

The ordinary suite draws a fixed sample (``CAIRN_FUZZ_EXAMPLES`` per surface and backend,
default 40, derandomized). ``make fuzz`` hunts: ``CAIRN_FUZZ_RANDOM=1`` draws new inputs, and
``CAIRN_FUZZ_SECONDS`` keeps each surface drawing for that long, in rounds; at the end the
number of inputs tried is printed.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from xml.sax.saxutils import escape

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import FUZZ_RANDOM
from tests.integration import fuzz_inputs as inputs
from tests.integration.server import Server
from tests.integration.surfaces import SOAP_ENDPOINT, envelope, json_error, soap_fault

EXAMPLES = int(os.environ.get("CAIRN_FUZZ_EXAMPLES", "40"))
SECONDS = float(os.environ.get("CAIRN_FUZZ_SECONDS", "0"))
#: A call that takes longer is a hang (the slowest legitimate input here takes well under 5).
TIMEOUT = 60.0
#: The longest query sent in a URL; longer ones go through SOAP (the server refuses a
#: request target over 64 KB before reading it).
URL_QUERY = 30_000

TRIED: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    if TRIED:
        parts = ", ".join(f"{k} {v}" for k, v in sorted(TRIED.items()))
        print(f"\nfuzz: {sum(TRIED.values())} inputs tried ({parts}), no INTERNAL error, "
              "no hang")


@pytest.fixture
def root(server: Server) -> str:
    return server.login("root")


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    """Fresh connections with a deadline: a server that closes one after an error must not
    fail the next input."""
    with httpx.Client(base_url=server.url, timeout=TIMEOUT,
                      limits=httpx.Limits(max_keepalive_connections=0)) as c:
        yield c


def hunt(surface: str, server: Server, body: Callable[[st.DataObject], None]) -> None:
    """``body`` as a property: a fixed sample, or rounds of random ones for SECONDS."""
    def counted(data: st.DataObject) -> None:
        TRIED[surface] += 1
        body(data)
        alive(server)

    deadline = time.monotonic() + SECONDS
    while True:
        settings(max_examples=EXAMPLES, deadline=None, derandomize=not FUZZ_RANDOM,
                 suppress_health_check=list(HealthCheck))(given(st.data())(counted))()
        if time.monotonic() >= deadline:
            return


def alive(server: Server) -> None:
    assert server.proc.poll() is None, f"the server died; its log:\n{server.log_text()[-3000:]}"
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as c:
        assert c.get("/icat/version").status_code == 200


#: Error codes of an internal failure: the catalogue's and the data service's.
INTERNAL = {"INTERNAL", "InternalException"}


def no_internal(r: httpx.Response, sent: object) -> None:
    """REST and data service: no 5xx but 501 (an operation this configuration lacks, such as
    archive on single-level storage); an error answer is an ICAT error, not INTERNAL."""
    shown = str(sent)[:500]
    assert r.status_code < 500 or r.status_code == 501, (shown, r.status_code, r.text[:500])
    if r.status_code >= 400 and r.headers.get("content-type", "").startswith("application/json"):
        code, _ = json_error(r)
        assert code not in INTERNAL, (shown, r.text[:500])


def no_soap_internal(r: httpx.Response, sent: object) -> None:
    if r.status_code == 500 and r.headers.get("content-type", "").startswith("text/xml"):
        fault = soap_fault(r)
        assert fault is not None and fault[0] != "INTERNAL", (str(sent)[:500], fault)
    else:
        assert r.status_code < 500, (str(sent)[:500], r.status_code, r.text[:500])


# -- query text -------------------------------------------------------------------------------


def search(client: httpx.Client, sid: str, query: str, id: int | None = None) -> None:
    if len(query) > URL_QUERY:
        r = client.post(SOAP_ENDPOINT, content=envelope(
            "search", f"<sessionId>{sid}</sessionId><query>{escape(query)}</query>"),
            headers={"Content-Type": "text/xml"})
        no_soap_internal(r, query)
        return
    params: dict[str, object] = {"sessionId": sid, "query": query}
    if id is not None:
        params["id"] = id
    no_internal(client.get("/icat/entityManager", params=params), query)


def test_query_text(server: Server, client: httpx.Client, root: str) -> None:
    jdoe = server.login("jdoe")

    def body(data: st.DataObject) -> None:
        sid = inputs.pick(data, [root, root, jdoe])
        if inputs.chance(data, 0.2):
            search(client, sid, inputs.get_query(data), data.draw(inputs.integer))
        else:
            search(client, sid, inputs.query_text(data))

    hunt("query", server, body)


# -- JSON entities ----------------------------------------------------------------------------


def test_json_entities(server: Server, client: httpx.Client, root: str) -> None:
    def body(data: st.DataObject) -> None:
        sid = inputs.pick(data, [root, root, root, "nope"])
        kind = inputs.pick(data, ["write", "write", "write", "delete", "cloner", "login"])
        if kind in ("write", "delete"):
            sent = {"sessionId": sid, "entities": inputs.entities_json(data)}
            if kind == "delete" and len(sent["entities"]) < URL_QUERY:
                r = client.request("DELETE", "/icat/entityManager", params=sent)
            else:
                r = client.post("/icat/entityManager", data=sent)
        elif kind == "cloner":
            sent = {"sessionId": sid, "name": inputs.pick(data, [*inputs.ENTITIES, "x"]),
                    "id": str(data.draw(inputs.integer)),
                    "keys": inputs.corrupt_json(data, json.dumps(
                        data.draw(st.dictionaries(inputs.text, inputs.json_value,
                                                  max_size=2))))}
            r = client.post("/icat/cloner", data=sent)
        else:
            creds = data.draw(st.lists(st.dictionaries(inputs.text, inputs.json_value,
                                                       max_size=2), max_size=3))
            sent = {"json": inputs.corrupt_json(data, json.dumps(
                {"plugin": inputs.pick(data, ["simple", "db", "anon", 1, None]),
                 "credentials": creds}))}
            r = client.post("/icat/session", data=sent)
        no_internal(r, sent)

    hunt("json", server, body)


# -- SOAP -------------------------------------------------------------------------------------


def test_soap_envelopes(server: Server, client: httpx.Client) -> None:
    def body(data: st.DataObject) -> None:
        # A session of its own: the call may be a logout.
        envelope = inputs.soap_body(data, server.login("root"))
        r = client.post(SOAP_ENDPOINT, content=envelope,
                        headers={"Content-Type": "text/xml; charset=utf-8"})
        no_soap_internal(r, envelope)

    hunt("soap", server, body)


# -- the data service -------------------------------------------------------------------------


def test_data_service(server: Server, client: httpx.Client, root: str) -> None:
    """Parameters and headers, over a dataset with a few real files."""
    def write(entities: object) -> list[int]:
        r = client.post("/icat/entityManager",
                        data={"sessionId": root, "entities": json.dumps(entities)})
        assert r.status_code == 200, r.text
        return list(r.json())

    (fac,) = write({"Facility": {"name": "fuzz-ids"}})
    (fmt,) = write({"DatafileFormat": {"name": "f", "version": "1", "facility": {"id": fac}}})
    (it,) = write({"InvestigationType": {"name": "t", "facility": {"id": fac}}})
    (dst,) = write({"DatasetType": {"name": "raw", "facility": {"id": fac}}})
    (inv,) = write({"Investigation": {
        "name": "fuzz", "visitId": "1", "title": "t", "facility": {"id": fac},
        "type": {"id": it}, "datasets": [{"name": "d", "type": {"id": dst}}]}})
    r = client.get("/icat/entityManager", params={
        "sessionId": root,
        "query": f"SELECT ds.id FROM Dataset ds WHERE ds.investigation.id = {inv}"})
    (ds,) = r.json()
    files = []
    for k in range(3):
        r = client.put("/ids/put", params={"sessionId": root, "name": f"f{k}", "datasetId": ds,
                                           "datafileFormatId": fmt}, content=b"x" * (k * 100))
        assert r.status_code == 201, r.text
        files.append(int(r.json()["id"]))
    real = {"investigationIds": [inv], "datasetIds": [ds], "datafileIds": files}

    def body(data: st.DataObject) -> None:
        method, call, params, headers, content = inputs.ids_request(data, root, real)
        sent = (method, call, params, headers)
        if method in ("POST", "PUT") and call != "put":
            r = client.request(method, f"/ids/{call}", data=params, headers=headers)
        else:
            r = client.request(method, f"/ids/{call}", params=params, headers=headers,
                               content=content or None)
        no_internal(r, sent)

    hunt("ids", server, body)


# -- dump files -------------------------------------------------------------------------------


def test_dump_files(server: Server, client: httpx.Client, root: str) -> None:
    r = client.get("/icat/port", params={"json": json.dumps({
        "sessionId": root, "query": "SELECT f FROM Facility f"})})
    if r.status_code == 501:
        pytest.skip("this server has no /icat/port")
    seed = r.text if r.status_code == 200 else "# ICAT Export file written by Cairn\n"

    def body(data: st.DataObject) -> None:
        dump = inputs.dump_file(data, seed)
        options = {"sessionId": inputs.pick(data, [root, root, "nope"]),
                   "duplicate": inputs.pick(data, ["THROW", "IGNORE", "CHECK", "OVERWRITE",
                                                   "x"]),
                   "attributes": inputs.pick(data, ["USER", "ALL", "x"])}
        r = client.post("/icat/port", data={"json": json.dumps(options)},
                        files={"file": ("icat.export", dump.encode("utf-8", "replace"))})
        no_internal(r, dump)

    hunt("dump", server, body)
