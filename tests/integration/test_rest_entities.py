"""The REST entity manager (/icat/entityManager, /icat/cloner) over real HTTP."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from tests.integration.server import Server


def uniq(prefix: str = "x") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def write(server: Server, sid: str, entities: Any) -> httpx.Response:
    text = entities if isinstance(entities, str) else json.dumps(entities)
    return server.http.post("/icat/entityManager", data={"sessionId": sid, "entities": text})


def get(server: Server, sid: str, query: str, id: int | None = None) -> httpx.Response:
    params: dict[str, Any] = {"sessionId": sid, "query": query}
    if id is not None:
        params["id"] = id
    return server.http.get("/icat/entityManager", params=params)


def delete(server: Server, sid: str, entities: Any) -> httpx.Response:
    return server.http.delete("/icat/entityManager",
                              params={"sessionId": sid, "entities": json.dumps(entities)})


@pytest.fixture(scope="module")
def root(server: Server) -> str:
    return server.login("root")


@pytest.fixture
def facility(server: Server, root: str) -> dict[str, Any]:
    """A facility with types, created in one nested write; returns the ids."""
    name = uniq("fac")
    r = write(server, root, {"Facility": {
        "name": name, "daysUntilRelease": 1095,
        "investigationTypes": [{"name": "experiment"}],
        "datasetTypes": [{"name": "raw"}],
        "datafileFormats": [{"name": "nexus", "version": "1"}],
    }})
    assert r.status_code == 200, r.text
    (fid,) = r.json()
    fac = get(server, root, "Facility", fid).json()["Facility"]
    assert fac["name"] == name
    ids = {"facility": fid, "name": name}
    for kind in ("InvestigationType", "DatasetType", "DatafileFormat"):
        rows = server.sql(f"SELECT ID FROM {kind.upper()} WHERE FACILITY_ID = :f", f=fid).all()
        assert len(rows) == 1
        ids[kind] = rows[0][0]
    return ids


def make_investigation(server: Server, sid: str, fac: dict[str, Any], n_datafiles: int = 2
                       ) -> int:
    r = write(server, sid, {"Investigation": {
        "name": uniq("inv"), "visitId": "1", "title": "A study of cairns",
        "startDate": "2024-03-01T09:00:00.000Z",
        "facility": {"id": fac["facility"]}, "type": {"id": fac["InvestigationType"]},
        "datasets": [{"name": "ds1", "type": {"id": fac["DatasetType"]},
                      "datafiles": [{"name": f"f{i}.nxs", "fileSize": 100 + i,
                                     "datafileFormat": {"id": fac["DatafileFormat"]}}
                                    for i in range(n_datafiles)]}],
    }})
    assert r.status_code == 200, r.text
    return int(r.json()[0])


def test_create_nested_and_get_with_include(server: Server, root: str,
                                           facility: dict[str, Any]) -> None:
    inv = make_investigation(server, root, facility)
    r = get(server, root, "Investigation INCLUDE 1", inv)
    assert r.status_code == 200
    body = r.json()
    assert list(body) == ["Investigation"]
    o = body["Investigation"]
    assert list(o)[:5] == ["id", "createId", "createTime", "modId", "modTime"]
    rest = list(o)[5:]
    assert rest == sorted(rest), "fields after the system fields are alphabetical"
    assert o["createId"] == "simple/root" and o["modId"] == "simple/root"
    assert o["startDate"] == "2024-03-01T09:00:00.000Z"
    assert o["facility"]["id"] == facility["facility"]
    assert o["type"]["id"] == facility["InvestigationType"]
    assert o["datasets"] == []  # one-to-many relations are not part of INCLUDE 1
    # The sums of its two datafiles (100 and 101 bytes), kept by the database (cairn.db.sizes).
    assert o["fileSize"] == 201 and o["fileCount"] == 2
    assert "summary" not in o  # null attributes are omitted
    # Without INCLUDE the many-to-one fields are absent.
    plain = get(server, root, "Investigation", inv).json()["Investigation"]
    assert "facility" not in plain and "type" not in plain
    # Nested datafiles were created with their back references.
    rows = server.sql("SELECT d.NAME, d.FILESIZE FROM DATAFILE d JOIN DATASET s "
                      "ON d.DATASET_ID = s.ID WHERE s.INVESTIGATION_ID = :i ORDER BY d.NAME",
                      i=inv).all()
    assert [tuple(r) for r in rows] == [("f0.nxs", 100), ("f1.nxs", 101)]


def test_search_simple_forms(server: Server, root: str, facility: dict[str, Any]) -> None:
    r = get(server, root, "Facility")
    assert r.status_code == 200
    names = [f["Facility"]["name"] for f in r.json()]
    assert facility["name"] in names
    ids = [f["Facility"]["id"] for f in r.json()]
    assert ids == sorted(ids)
    r = get(server, root, "InvestigationType INCLUDE 1")
    mine = [t["InvestigationType"] for t in r.json()
            if t["InvestigationType"]["id"] == facility["InvestigationType"]]
    assert mine[0]["facility"]["name"] == facility["name"]


def test_update_and_reference_update(server: Server, root: str,
                                     facility: dict[str, Any]) -> None:
    inv = make_investigation(server, root, facility)
    before = get(server, root, "Investigation", inv).json()["Investigation"]
    r = write(server, root, [{"Investigation": {
        "id": inv, "title": "Renamed", "summary": "s" * 4000,
        "facility": {"id": facility["facility"], "description": "updated through a reference"},
        "keywords": [{"name": "granite"}, {"name": "scree"}],
    }}])
    assert r.status_code == 200, r.text
    assert r.json() == []  # updates return no ids
    after = get(server, root, "Investigation INCLUDE 1", inv).json()["Investigation"]
    assert after["title"] == "Renamed" and len(after["summary"]) == 4000
    assert after["createTime"] == before["createTime"]
    assert after["createId"] == before["createId"]
    assert after["facility"]["description"] == "updated through a reference"
    kws = server.sql("SELECT NAME FROM KEYWORD WHERE INVESTIGATION_ID = :i ORDER BY NAME",
                     i=inv).all()
    assert [k[0] for k in kws] == ["granite", "scree"]
    # Setting an optional field to null clears it.
    r = write(server, root, {"Investigation": {"id": inv, "summary": None}})
    assert r.status_code == 200
    assert "summary" not in get(server, root, "Investigation", inv).json()["Investigation"]


def test_write_returns_ids_of_created_top_level_in_order(server: Server, root: str) -> None:
    names = [uniq("f"), uniq("f"), uniq("f")]
    r = write(server, root, [{"Facility": {"name": n}} for n in names])
    assert r.status_code == 200
    ids = r.json()
    assert len(ids) == 3 and ids == sorted(ids)
    for i, n in zip(ids, names, strict=True):
        assert get(server, root, "Facility", i).json()["Facility"]["name"] == n


def test_delete_cascades_in_one_transaction(server: Server, root: str,
                                           facility: dict[str, Any]) -> None:
    inv = make_investigation(server, root, facility, n_datafiles=5)
    other = make_investigation(server, root, facility, n_datafiles=1)
    ds = server.sql("SELECT ID FROM DATASET WHERE INVESTIGATION_ID = :i", i=inv).scalar_one()
    df_ids = [r[0] for r in server.sql("SELECT ID FROM DATAFILE WHERE DATASET_ID = :d", d=ds)]
    assert len(df_ids) == 5
    r = delete(server, root, {"Investigation": {"id": inv}})
    assert r.status_code == 204
    assert get(server, root, "Investigation", inv).status_code == 404
    assert server.sql("SELECT COUNT(*) FROM DATASET WHERE ID = :d", d=ds).scalar_one() == 0
    assert server.sql("SELECT COUNT(*) FROM DATAFILE WHERE DATASET_ID = :d",
                      d=ds).scalar_one() == 0
    assert get(server, root, "Investigation", other).status_code == 200
    assert get(server, root, "Facility", facility["facility"]).status_code == 200
    # Deleting the facility takes the types and the other investigation with it.
    assert delete(server, root, [{"Facility": {"id": facility["facility"]}}]).status_code == 204
    assert get(server, root, "Investigation", other).status_code == 404
    assert server.sql("SELECT COUNT(*) FROM DATAFILEFORMAT WHERE ID = :i",
                      i=facility["DatafileFormat"]).scalar_one() == 0


def test_delete_errors_change_nothing(server: Server, root: str,
                                      facility: dict[str, Any]) -> None:
    before = server.snapshot()
    r = delete(server, root, [{"Facility": {"id": facility["facility"]}},
                              {"Facility": {"id": 999999}}])
    assert r.status_code == 404
    assert r.json() == {"code": "NO_SUCH_OBJECT_FOUND",
                        "message": "Facility[id:999999] not found.", "offset": 1}
    assert server.snapshot() == before  # the first delete was rolled back
    r = delete(server, root, {"Facility": {"id": facility["facility"], "name": "x"}})
    assert r.status_code == 400
    assert r.json()["message"].startswith("entity must have only the id value specified")
    r = delete(server, root, {"Facility": {"name": "x"}})
    assert r.json()["message"].startswith("entity must have the id value specified")
    r = delete(server, root, {"Nonsense": {"id": 1}})
    assert r.json() == {"code": "BAD_PARAMETER", "message": "Nonsense is not an ICAT entity",
                        "offset": 0}
    assert server.snapshot() == before


def test_clone_deep_copies_and_redirects_internal_references(
        server: Server, root: str, facility: dict[str, Any]) -> None:
    inv = make_investigation(server, root, facility, n_datafiles=3)
    r = write(server, root, {"Sample": {"name": "rock", "investigation": {"id": inv}}})
    sample = r.json()[0]
    ds = server.sql("SELECT ID FROM DATASET WHERE INVESTIGATION_ID = :i", i=inv).scalar_one()
    assert write(server, root, {"Dataset": {"id": ds, "sample": {"id": sample}}}).status_code \
        == 200
    new_name = uniq("clone")
    r = server.http.post("/icat/cloner", data={"sessionId": root, "name": "Investigation",
                                               "id": str(inv),
                                               "keys": json.dumps({"name": new_name})})
    assert r.status_code == 200, r.text
    new = r.json()["id"]
    assert new != inv
    copy = get(server, root, "Investigation INCLUDE 1", new).json()["Investigation"]
    assert copy["name"] == new_name and copy["visitId"] == "1"
    assert copy["facility"]["id"] == facility["facility"]  # references out of the tree kept
    new_ds = server.sql("SELECT ID, SAMPLE_ID FROM DATASET WHERE INVESTIGATION_ID = :i",
                        i=new).one()
    new_sample = server.sql("SELECT ID FROM SAMPLE WHERE INVESTIGATION_ID = :i",
                            i=new).scalar_one()
    assert new_ds[1] == new_sample != sample  # reference inside the tree follows the copy
    assert server.sql("SELECT COUNT(*) FROM DATAFILE WHERE DATASET_ID = :d",
                      d=new_ds[0]).scalar_one() == 3
    # Cloning without changing the key is a uniqueness violation, and stores nothing.
    before = server.snapshot()
    r = server.http.post("/icat/cloner", data={"sessionId": root, "name": "Investigation",
                                               "id": str(inv), "keys": "{}"})
    assert r.status_code == 412
    assert r.json()["code"] == "OBJECT_ALREADY_EXISTS"
    r = server.http.post("/icat/cloner", data={"sessionId": root, "name": "Investigation",
                                               "id": "987654", "keys": "{}"})
    assert r.status_code == 404
    assert r.json()["message"] == "Investigation:987654"
    r = server.http.post("/icat/cloner", data={"sessionId": root, "name": "Investigation",
                                               "id": str(inv), "keys": '{"facility": "x"}'})
    assert r.status_code == 400
    assert server.snapshot() == before


def test_get_errors(server: Server, root: str) -> None:
    r = get(server, root, "Facility", 424242)
    assert r.status_code == 404
    assert r.json() == {"code": "NO_SUCH_OBJECT_FOUND", "message": "Facility[id:424242] not found."}
    r = get(server, root, "Nonsense", 1)
    body = r.json()  # the query parser also reports where in the query (offset)
    assert (body["code"], body["message"]) == ("BAD_PARAMETER", "Nonsense is not an ICAT entity")
    r = server.http.get("/icat/entityManager", params={"sessionId": root})
    assert r.status_code == 400
    assert r.json() == {"code": "BAD_PARAMETER", "message": "query is not set"}
    r = server.http.get("/icat/entityManager", params={"sessionId": root, "query": "Facility",
                                                       "id": "abc"})
    assert r.status_code == 400


def test_user_without_rules_is_refused_entity_access(server: Server, root: str,
                                           facility: dict[str, Any]) -> None:
    user = server.login("jdoe")
    before = server.snapshot()
    r = get(server, user, "Facility", facility["facility"])
    assert r.status_code == 403
    assert r.json() == {"code": "INSUFFICIENT_PRIVILEGES",
                        "message": "READ access to this Facility is not allowed."}
    assert get(server, user, "Facility").json() == []  # a search shows nothing readable
    r = write(server, user, {"Facility": {"name": uniq()}})
    assert r.status_code == 403
    assert r.json()["message"] == "CREATE access to this Facility is not allowed."
    r = write(server, user, {"Facility": {"id": facility["facility"], "description": "x"}})
    assert r.json()["message"] == "UPDATE access to this Facility is not allowed."
    r = delete(server, user, {"Facility": {"id": facility["facility"]}})
    assert r.json()["message"] == "DELETE access to this Facility is not allowed."
    r = server.http.post("/icat/cloner", data={"sessionId": user, "name": "Facility",
                                               "id": str(facility["facility"]),
                                               "keys": json.dumps({"name": uniq()})})
    assert r.status_code == 403
    assert server.snapshot() == before


HUGE = "x" * 1_000_000


@pytest.mark.parametrize(("entities", "status", "code", "message", "offset"), [
    ("rubbish", 400, "BAD_PARAMETER", None, None),
    ('[{"Facility": {"name": "a"}}', 400, "BAD_PARAMETER", None, None),
    ([{"Facility": {"name": "ok-{u}"}}, {"Facility": {"description": "no name"}}],
     412, "VALIDATION", "Facility: name cannot be null.", 1),
    ({"Facility": {"name": "n-{u}", "fullName": "y" * 256}}, 412, "VALIDATION",
     "Facility: fullName cannot have length > 255", 0),
    ({"Facility": {"name": HUGE}}, 412, "VALIDATION",
     "Facility: name cannot have length > 255", 0),
    ([{"Facility": {"name": "d-{u}"}}, {"Facility": {"name": "d-{u}"}}], 412,
     "OBJECT_ALREADY_EXISTS", "Facility exists with name = 'd-{u}'", 1),
    ({"Nonsense": {"name": "x"}}, 400, "BAD_PARAMETER", "Nonsense is not an ICAT entity", 0),
    ({"Facility": {"name": "x", "colour": "red"}}, 400, "BAD_PARAMETER",
     "Field colour not found in Facility", 0),
    ({"Facility": {"name": 42}}, 400, "BAD_PARAMETER", "Field name of Facility must be a string",
     0),
    ({"Facility": {"name": "x-{u}", "daysUntilRelease": "soon"}}, 400, "BAD_PARAMETER",
     "Field daysUntilRelease of Facility must be an integer between -2147483648 and "
     "2147483647", 0),
    ({"Facility": {"name": "x-{u}", "daysUntilRelease": 1.5}}, 400, "BAD_PARAMETER",
     "Field daysUntilRelease of Facility must be an integer between -2147483648 and "
     "2147483647", 0),
    ({"Facility": {"name": "x-{u}", "createId": "me"}}, 400, "BAD_PARAMETER",
     "Field createId of Facility is set by the server and cannot be written", 0),
    ({"Facility": [{"name": "x"}]}, 400, "BAD_PARAMETER", "The value of Facility must be a JSON "
     'object, not [{"name": "x"}]', 0),
    ({"Facility": {"name": "x"}, "Instrument": {"name": "y"}}, 400, "BAD_PARAMETER", None, 0),
    ([["Facility"]], 400, "BAD_PARAMETER", None, 0),
    ({"Investigation": {"name": "i-{u}", "visitId": "1", "title": "t",
                        "facility": {"id": 987654}, "type": {"id": 987654}}},
     404, "NO_SUCH_OBJECT_FOUND", "Facility[id:987654] not found.", 0),
    ({"Investigation": {"name": "i", "facility": {"name": "no id"}}}, 400, "BAD_PARAMETER",
     None, 0),
    ({"Facility": {"id": 987654, "name": "x"}}, 404, "NO_SUCH_OBJECT_FOUND",
     "Facility[id:987654] not found.", 0),
    ({"Facility": {"name": "x-{u}", "investigations": [{"id": 1}]}}, 400, "BAD_PARAMETER",
     "Objects in one-to-many field investigations of Facility are new and must not have an id",
     0),
    ({"Dataset": {"name": "x", "complete": "yes"}}, 400, "BAD_PARAMETER",
     "Field complete must be true or false in Dataset", 0),
    ({"Investigation": {"name": "x", "startDate": "yesterday"}}, 400, "BAD_PARAMETER",
     "Badly formatted date yesterday", 0),
    ({"ParameterType": {"name": "x", "valueType": "COLOUR"}}, 400, "BAD_PARAMETER",
     "Field valueType of ParameterType must be one of DATE_AND_TIME, NUMERIC, STRING", 0),
])
def test_bad_writes_give_icat_errors_and_store_nothing(
        server: Server, root: str, entities: Any, status: int, code: str,
        message: str | None, offset: int | None) -> None:
    u = uuid.uuid4().hex[:8]
    text = entities if isinstance(entities, str) else json.dumps(entities)
    text = text.replace("{u}", u)
    before = server.snapshot()
    r = write(server, root, text)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == code
    if message is not None:
        assert body["message"] == message.replace("{u}", u)
    assert body.get("offset") == offset
    assert "Traceback" not in r.text
    assert server.snapshot() == before


def test_duplicate_of_stored_object(server: Server, root: str, facility: dict[str, Any]) -> None:
    before = server.snapshot()
    r = write(server, root, {"InvestigationType": {"name": "experiment",
                                                   "facility": {"id": facility["facility"]}}})
    assert r.status_code == 412
    assert r.json() == {"code": "OBJECT_ALREADY_EXISTS", "offset": 0,
                        "message": "InvestigationType exists with name = 'experiment', "
                                   f"facility = 'id:{facility['facility']}'"}
    assert server.snapshot() == before


def test_parameter_type_must_apply(server: Server, root: str, facility: dict[str, Any]) -> None:
    inv = make_investigation(server, root, facility)
    r = write(server, root, {"ParameterType": {
        "name": uniq("temp"), "units": "K", "valueType": "numeric", "applicableToDataset": True,
        "enforced": True, "minimumNumericValue": 0, "facility": {"id": facility["facility"]}}})
    assert r.status_code == 200, r.text
    pt = r.json()[0]
    r = write(server, root, {"InvestigationParameter": {
        "numericValue": 5, "type": {"id": pt}, "investigation": {"id": inv}}})
    assert r.status_code == 412
    assert r.json()["message"].endswith("is not applicable to an Investigation")
    ds = server.sql("SELECT ID FROM DATASET WHERE INVESTIGATION_ID = :i", i=inv).scalar_one()
    r = write(server, root, {"DatasetParameter": {"numericValue": -3, "type": {"id": pt},
                                                  "dataset": {"id": ds}}})
    assert r.status_code == 412
    assert r.json()["message"].endswith("has value -3.0 < 0.0")
    r = write(server, root, {"DatasetParameter": {"numericValue": 4.5, "type": {"id": pt},
                                                  "dataset": {"id": ds}}})
    assert r.status_code == 200
    got = server.sql("SELECT NUMERIC_VALUE FROM DATASETPARAMETER WHERE DATASET_ID = :d",
                     d=ds).scalar_one()
    assert got == 4.5
