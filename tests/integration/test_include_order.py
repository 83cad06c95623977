"""INCLUDEd one-to-many lists come back in the order of the child's unique key after the
parent (as InnoDB answers them for icat.server), then by id; by id when the key does not start
with the parent. Over REST (search and get), SOAP (python-icat), as root and as a user whose
rules filter the list, on every backend, with parents split over several batches."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import BACKENDS, make_database
from tests.integration.server import Server

#: Parents per statement: three datasets take two statements, whose order must hold in each.
BATCH = 2
#: Datafile names in creation (id) order; their order by name differs.
FILES = ["f3", "f1", "f4", "f2"]
DATASETS = ["ds-c", "ds-a", "ds-b"]


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp(f"cairn-order-{request.param}")
    url, drop = make_database(str(request.param), tmp, migrated=True)
    srv = Server(tmp, url, env={"CAIRN_CATALOGUE__MAX_IDS_IN_QUERY": str(BATCH)})
    try:
        yield srv
    finally:
        srv.stop()
        drop()  # type: ignore[operator]


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def write(server: Server, sid: str, entities: Any) -> list[int]:
    r = server.http.post("/icat/entityManager",
                         data={"sessionId": sid, "entities": json.dumps(entities)})
    assert r.status_code == 200, r.text
    return [int(i) for i in r.json()]


def search(server: Server, sid: str, query: str, id: int | None = None) -> Any:
    params: dict[str, Any] = {"sessionId": sid, "query": query}
    if id is not None:
        params["id"] = id
    r = server.http.get("/icat/entityManager", params=params)
    assert r.status_code == 200, r.text
    return r.json()


@dataclass
class Fixture:
    root: str
    facility: int
    investigation: int
    investigation_name: str
    types: list[int]  # parameter types, in id order
    users: list[int]  # in id order


@pytest.fixture(scope="module")
def cat(server: Server) -> Fixture:
    root = server.login("root")
    users = [write(server, root, {"User": {"name": uniq(f"simple/u{i}")}})[0] for i in range(3)]
    (fac,) = write(server, root, {"Facility": {
        "name": uniq("fac"),
        "investigationTypes": [{"name": "experiment"}],
        "datasetTypes": [{"name": "raw"}],
        "parameterTypes": [{"name": f"p{i}", "units": "K", "valueType": "NUMERIC",
                            "applicableToDatafile": True} for i in range(3)],
    }})
    tables = {t: server.sql(f"SELECT ID FROM {t.upper()} WHERE FACILITY_ID = :f ORDER BY ID",
                            f=fac).scalars().all()
              for t in ("InvestigationType", "DatasetType", "ParameterType")}
    types = list(tables["ParameterType"])
    name = uniq("inv")
    common = {"title": "t", "facility": {"id": fac},
              "type": {"id": tables["InvestigationType"][0]}}
    # Created out of key order: visit 2 of `name` before visit 1, and another investigation
    # (named after it) before both.
    invs = write(server, root, [
        {"Investigation": {"name": name + "-z", "visitId": "1", **common}},
        {"Investigation": {"name": name, "visitId": "2", **common}},
        {"Investigation": {
            "name": name, "visitId": "1", **common,
            "datasets": [{"name": ds, "type": {"id": tables["DatasetType"][0]},
                          "datafiles": [{
                              "name": f,
                              # each file's parameters by type: 2, 0, 1 (not in id order)
                              "parameters": [{"type": {"id": types[t]}, "numericValue": t}
                                             for t in (2, 0, 1)],
                          } for f in FILES]} for ds in DATASETS],
            # users 2, 0, 1 as their investigation users: by id, the user's order is lost
            "investigationUsers": [{"user": {"id": users[u]}, "role": "member"}
                                   for u in (2, 0, 1)],
        }},
    ])
    # One user several times on the investigation: the user's list by (investigation, role).
    write(server, root, [{"InvestigationUser": {"user": {"id": users[0]}, "role": role,
                                                "investigation": {"id": invs[2]}}}
                         for role in ("zeta", "alpha")])
    return Fixture(root, fac, invs[2], name, types, users)


def names(objs: list[dict[str, Any]]) -> list[str]:
    return [o["name"] for o in objs]


def test_creation_order_is_not_key_order(server: Server, cat: Fixture) -> None:
    """The premise of the other tests: by id, the lists would come back in another order."""
    rows = server.sql("SELECT f.NAME FROM DATAFILE f JOIN DATASET d ON f.DATASET_ID = d.ID "
                      "WHERE d.INVESTIGATION_ID = :i AND d.NAME = 'ds-c' ORDER BY f.ID",
                      i=cat.investigation).scalars().all()
    assert list(rows) == FILES != sorted(FILES)


def test_datafiles_by_name_in_a_search(server: Server, cat: Fixture) -> None:
    found = search(server, cat.root, "SELECT ds FROM Dataset ds WHERE ds.investigation.id = "
                   f"{cat.investigation} ORDER BY ds.id INCLUDE ds.datafiles")
    assert [d["Dataset"]["name"] for d in found] == DATASETS
    for d in found:
        assert names(d["Dataset"]["datafiles"]) == sorted(FILES)


def test_nested_lists_and_get(server: Server, cat: Fixture) -> None:
    inv = search(server, cat.root, "Investigation i INCLUDE i.datasets AS ds, ds.datafiles AS "
                 "df, df.parameters", cat.investigation)["Investigation"]
    assert names(inv["datasets"]) == sorted(DATASETS)
    for ds in inv["datasets"]:
        assert names(ds["datafiles"]) == sorted(FILES)
        for df in ds["datafiles"]:
            # (datafile, type): by the type's id, not the parameter's
            assert [p["numericValue"] for p in df["parameters"]] == [0, 1, 2]


def test_several_key_columns(server: Server, cat: Fixture) -> None:
    fac = search(server, cat.root, "Facility f INCLUDE f.investigations",
                 cat.facility)["Facility"]
    got = [(i["name"], i["visitId"]) for i in fac["investigations"]]
    name = cat.investigation_name
    assert got == [(name, "1"), (name, "2"), (name + "-z", "1")]


def test_by_id_when_the_key_does_not_start_with_the_parent(server: Server, cat: Fixture
                                                           ) -> None:
    inv = search(server, cat.root, "Investigation i INCLUDE i.investigationUsers AS iu, "
                 "iu.user", cat.investigation)["Investigation"]
    ius = inv["investigationUsers"]
    assert [iu["id"] for iu in ius] == sorted(iu["id"] for iu in ius)
    members = [iu["user"]["id"] for iu in ius if iu["role"] == "member"]
    assert members == [cat.users[2], cat.users[0], cat.users[1]]


def test_user_list_by_investigation_then_role(server: Server, cat: Fixture) -> None:
    user = search(server, cat.root, "User u INCLUDE u.investigationUsers",
                  cat.users[0])["User"]
    assert [iu["role"] for iu in user["investigationUsers"]] == ["alpha", "member", "zeta"]


def test_filtered_list_keeps_the_order(server: Server, cat: Fixture) -> None:
    """A user's INCLUDE is authorized in the statement that loads it: the same order."""
    write(server, cat.root, [
        {"Rule": {"crudFlags": "R", "what": "Dataset"}},
        {"Rule": {"crudFlags": "R", "what": "SELECT df FROM Datafile df JOIN df.dataset ds "
                  f"JOIN ds.investigation i WHERE i.id = {cat.investigation} "
                  "AND df.name <> 'f1'"}},
    ])
    sid = server.login("jdoe")
    found = search(server, sid, "SELECT ds FROM Dataset ds WHERE ds.investigation.id = "
                   f"{cat.investigation} ORDER BY ds.id INCLUDE ds.datafiles")
    assert len(found) == len(DATASETS)
    for d in found:
        assert names(d["Dataset"]["datafiles"]) == ["f2", "f3", "f4"]


def test_soap_lists_in_the_same_order(server: Server, cat: Fixture) -> None:
    icat = pytest.importorskip("icat", reason="python-icat (in the test extra) is not installed")
    client = icat.Client(server.url + "/ICATService/ICAT?wsdl", cache=None)
    client.autoLogout = False
    client.login("simple", {"username": "root", "password": "secret"})
    try:
        found = client.search("SELECT ds FROM Dataset ds WHERE ds.investigation.id = "
                              f"{cat.investigation} ORDER BY ds.name INCLUDE ds.datafiles")
        assert [ds.name for ds in found] == sorted(DATASETS)
        for ds in found:
            assert [df.name for df in ds.datafiles] == sorted(FILES)
    finally:
        client.logout()

