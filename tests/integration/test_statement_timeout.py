"""``[catalogue] statement_timeout_seconds``: a user's statement stops at the limit, Cairn's
own work does not, on every backend.

The soak found a user's cross join running for minutes (and once filling PostgreSQL's
temporary space). Statements of a user's units of work now stop after the limit
(PostgreSQL ``statement_timeout``, MariaDB ``max_statement_time``, SQLite a progress
handler) and the client gets BAD_PARAMETER naming the limit and the setting. Here: a cross
join through the REST query endpoint of a real server with a one-second limit, and the
engine's own guarantees (a limited statement stops through SQLAlchemy and through the cursor
path of fastread; the same pooled connection then runs unlimited work to its end).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, literal, select

from cairn.db.engine import Database, StatementTimeout, statement_limit
from cairn.db.fastread import CompiledSelect
from tests.conftest import BACKENDS, make_database
from tests.integration.ids_support import Rest, uniq
from tests.integration.server import Server

LIMIT = 0.3
#: A cross join of four copies of this many datafiles: billions of rows, minutes of work
#: on any backend without the limit.
DATAFILES = 300
CROSS_JOIN = "SELECT COUNT(a) FROM Datafile a, Datafile b, Datafile c, Datafile d"


def sleep_stmt(db: Database, seconds: float) -> Any:
    """A SELECT that takes about ``seconds`` on this backend."""
    if db.dialect == "postgresql":
        return select(func.pg_sleep(seconds))
    if db.dialect == "mysql":
        return select(func.sleep(seconds))
    # SQLite has no sleep: count a recursive sequence, about 2-5 million rows a second.
    r = select(literal(1).label("n")).cte("r", recursive=True)
    r = r.union_all(select(r.c.n + 1).where(r.c.n < int(seconds * 3_000_000)))
    return select(func.count()).select_from(r)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    # One pooled connection: every block below reuses the connection the one before used.
    d = Database(database_url, pool_size=1, max_overflow=0)
    try:
        yield d
    finally:
        d.dispose()


def test_a_limited_statement_stops_and_unlimited_work_runs_on(db: Database) -> None:
    with pytest.raises(StatementTimeout) as e, statement_limit(LIMIT), db.read() as conn:
        conn.execute(sleep_stmt(db, 60)).all()
    assert e.value.type.value == "BAD_PARAMETER"
    assert f"{LIMIT:g} s" in e.value.message
    assert "[catalogue] statement_timeout_seconds" in e.value.message
    # The same connection, for work without a limit, once the limited statement's deadline
    # is long past: it runs to its end, longer than the limit.
    time.sleep(2 * LIMIT)
    with db.read() as conn:
        assert conn.execute(sleep_stmt(db, 3 * LIMIT)).all()
    # And limited again, a quick statement is fine; in a write transaction too.
    with statement_limit(LIMIT), db.begin() as conn:
        assert conn.execute(select(literal(7))).scalar_one() == 7


def test_the_cursor_path_stops_too(db: Database) -> None:
    """fastread runs searches through the DB-API cursor, outside SQLAlchemy's events."""
    dialect = db.engine.dialect
    endless = CompiledSelect.of(sleep_stmt(db, 60), dialect)
    quick = CompiledSelect.of(sleep_stmt(db, LIMIT / 10), dialect)
    slow = CompiledSelect.of(sleep_stmt(db, 3 * LIMIT), dialect)
    assert endless is not None and quick is not None and slow is not None
    with pytest.raises(StatementTimeout), statement_limit(LIMIT), db.read() as conn:
        endless.fetch(conn, {})
    with statement_limit(LIMIT), db.read() as conn:
        assert quick.fetch(conn, {})[0]
    # Without a limit, on the connection a limited statement used: not cut.
    time.sleep(2 * LIMIT)
    with db.read() as conn:
        assert slow.fetch(conn, {})[0]


def test_no_limit_when_set_to_zero(db: Database) -> None:
    with statement_limit(0), db.read() as conn:
        assert conn.execute(sleep_stmt(db, 3 * LIMIT)).all()


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp(f"timeout-{request.param}")
    url, drop = make_database(str(request.param), tmp, migrated=True)
    srv = Server(tmp, url, env={"CAIRN_CATALOGUE__STATEMENT_TIMEOUT_SECONDS": "1"})
    try:
        rest = Rest(srv)
        fac = rest.create("Facility", name=uniq("T"))
        it = rest.create("InvestigationType", name="t", facility={"id": fac})
        inv = rest.create("Investigation", name=uniq("i"), visitId="1", title="t",
                          facility={"id": fac}, type={"id": it})
        dst = rest.create("DatasetType", name="t", facility={"id": fac})
        ds = rest.create("Dataset", name="d", investigation={"id": inv}, type={"id": dst})
        rest.write([{"Datafile": {"name": f"f{i}", "dataset": {"id": ds}}}
                    for i in range(DATAFILES)])
        yield srv
    finally:
        srv.stop()
        drop()  # type: ignore[operator]


def test_a_users_cross_join_stops_with_a_message_naming_the_setting(server: Server) -> None:
    sid = server.login()
    # Without the limit the cross join would run for minutes: the client would time out.
    r = server.http.get("/icat/entityManager", params={"sessionId": sid,
                                                       "query": CROSS_JOIN}, timeout=60)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == "BAD_PARAMETER"
    assert "longer than 1 s" in body["message"]
    assert "[catalogue] statement_timeout_seconds" in body["message"]
    # The server, and its pooled connections, go on answering.
    for _ in range(5):
        ok = server.http.get("/icat/entityManager", params={
            "sessionId": sid, "query": "SELECT COUNT(df) FROM Datafile df"})
        assert ok.status_code == 200 and ok.json() == [DATAFILES]
    # A user's query with a WHERE clause is stopped the same way.
    again = server.http.get("/icat/entityManager", params={
        "sessionId": sid, "query": CROSS_JOIN + " WHERE a.id > 0"}, timeout=60)
    assert again.status_code == 400 and again.json()["code"] == "BAD_PARAMETER"


def test_the_setting_is_checked() -> None:
    from pydantic import ValidationError

    from cairn.config import CatalogueSettings

    assert CatalogueSettings().statement_timeout_seconds == 300
    assert CatalogueSettings(statement_timeout_seconds=0).statement_timeout_seconds == 0
    with pytest.raises(ValidationError):
        CatalogueSettings(statement_timeout_seconds=-1)
