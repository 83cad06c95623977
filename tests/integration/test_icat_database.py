"""Cairn serving a database that icat.server created and still writes to."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import MetaData, create_engine, text

from cairn.db.tables import build_tables
from cairn.schema import SCHEMA
from tests.conftest import make_database
from tests.integration.server import Server

JAVA_ROWS = [
    "INSERT INTO FACILITY (ID, CREATE_ID, CREATE_TIME, MOD_ID, MOD_TIME, NAME, DAYSUNTILRELEASE)"
    " VALUES (1, 'db/root', '2020-05-01 10:00:00', 'db/root', '2020-05-01 10:00:00', 'ISIS', 1095)",
    "INSERT INTO PARAMETERTYPE (ID, CREATE_ID, CREATE_TIME, MOD_ID, MOD_TIME, NAME, UNITS,"
    " VALUETYPE, FACILITY_ID, APPLICABLETODATASET, APPLICABLETODATAFILE, APPLICABLETOSAMPLE,"
    " APPLICABLETOINVESTIGATION, APPLICABLETODATACOLLECTION, ENFORCED, VERIFIED)"
    " VALUES (2, 'db/root', '2020-05-01 10:00:00', 'db/root', '2020-05-01 10:00:00',"
    " 'temperature', 'K', 1, 1, {t}, {f}, {f}, {f}, {f}, {f}, {t})",
]


@pytest.fixture(params=["postgresql", "mariadb"])
def icat_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An icat.server 6.2 layout whose ids come from SEQ_GEN_SEQUENCE, holding Java's rows."""
    url, drop = make_database(str(request.param), tmp_path)
    engine = create_engine(url)
    build_tables(SCHEMA, MetaData(), generated_ids=False).metadata.create_all(engine)
    t, f = ("TRUE", "FALSE") if request.param == "postgresql" else ("1", "0")
    with engine.begin() as conn:
        # The Java server took NEXTVAL = 50 and so owns ids 1..50.
        conn.execute(text("CREATE SEQUENCE SEQ_GEN_SEQUENCE INCREMENT BY 50 START WITH 50"))
        conn.execute(text("SELECT NEXTVAL(SEQ_GEN_SEQUENCE)" if request.param == "mariadb"
                          else "SELECT nextval('seq_gen_sequence')"))
        for row in JAVA_ROWS:
            conn.execute(text(row.format(t=t, f=f)))
    engine.dispose()
    try:
        yield url
    finally:
        drop()  # type: ignore[operator]


def test_cairn_shares_an_icat_server_database(icat_db: str, tmp_path: Path) -> None:
    server = Server(tmp_path, icat_db)
    try:
        sid = server.login("root")
        got = server.http.get("/icat/entityManager", params={
            "sessionId": sid, "query": "ParameterType INCLUDE 1", "id": 2}).json()
        pt = got["ParameterType"]
        assert pt["valueType"] == "NUMERIC"  # stored as the Java enum's ordinal
        assert pt["applicableToDataset"] is True and pt["enforced"] is False
        assert pt["facility"]["name"] == "ISIS"
        assert pt["createTime"] == "2020-05-01T10:00:00.000Z"
        r = server.http.post("/icat/entityManager", data={"sessionId": sid, "entities": json.dumps(
            [{"Facility": {"name": "Cairn-made", "instruments": [{"name": "LARMOR"}]}},
             {"Facility": {"name": "Cairn-made-2"}}])})
        assert r.status_code == 200, r.text
        # Cairn took the next block from the sequence (51..100), as EclipseLink would.
        assert r.json() == [51, 53]
        assert server.sql("SELECT ID FROM INSTRUMENT").scalar_one() == 52
        clone = server.http.post("/icat/cloner", data={
            "sessionId": sid, "name": "Facility", "id": "51", "keys": '{"name": "copy"}'})
        assert clone.json() == {"id": 54}
        # Alembic recorded the version of the existing schema and added PASSWD, where
        # `cairn serve` put the db/root account.
        version = server.sql("SELECT version_num FROM alembic_version").scalar_one()
        assert version != ""
        assert server.sql("SELECT USERNAME FROM PASSWD").scalar_one() == "root"
    finally:
        server.stop()
