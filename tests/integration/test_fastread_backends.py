"""Rows by key through the cursor on every backend: short key lists go as padded lists of
parameters, long ones on PostgreSQL as one array (``= ANY``); either way the rows are those
SQLAlchemy reads."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy import Select, insert, select

from cairn.db import migrate
from cairn.db.engine import Database
from cairn.db.fastread import ARRAY_FROM, KEYED_ARRAY_FROM, Match, rows_in, rows_keyed
from tests.conftest import BACKENDS, make_database


@pytest.fixture(scope="module", params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
       ) -> Iterator[Database]:
    url, drop = make_database(str(request.param), tmp_path_factory.mktemp("fastread"))
    db = Database(url)
    migrate.upgrade(db)
    with db.begin() as conn:
        conn.execute(insert(db.tables["Facility"]), [
            {"id": i, "name": f"f{i:03d}", "createId": "me", "modId": "me",
             "createTime": datetime(2024, 1, 1 + i % 28, 8, 30),
             "modTime": datetime(2024, 1, 1, 8, 30)}
            for i in range(1, 101)])
    try:
        yield db
    finally:
        db.dispose()
        drop()  # type: ignore[operator]


@pytest.mark.parametrize("n", [1, 3, ARRAY_FROM - 1, ARRAY_FROM, 40, 100])
def test_rows_by_id_are_sqlalchemy_s_rows(db: Database, n: int) -> None:
    ft = db.tables["Facility"]
    # unsorted, with a repeat and ids that match nothing
    keys = [*range(n, 0, -1), n, 500, 501][:max(n, 1) + 2]
    with db.connect() as conn:
        fast = rows_in(conn, ft, "id", keys)
        slow = conn.execute(select(ft).where(ft.c.id.in_(keys)).order_by(ft.c.id)).all()
    assert [tuple(r) for r in fast] == [tuple(r) for r in slow]
    assert [r[0] for r in fast] == sorted({k for k in keys if k <= 100})


def test_rows_by_string_key(db: Database) -> None:
    ft = db.tables["Facility"]
    names = [f"f{i:03d}" for i in range(20, 60)] + ["nothing"]
    with db.connect() as conn:
        fast = rows_in(conn, ft, "name", names)
    assert [r[0] for r in fast] == list(range(20, 60))


@pytest.mark.parametrize("n", [3, KEYED_ARRAY_FROM - 1, KEYED_ARRAY_FROM, 300])
def test_keyed_rows_meet_the_statement_s_condition(db: Database, n: int) -> None:
    ft = db.tables["Facility"]
    odd = ft.c.id % 2 == 1

    def build(match: Match) -> Select[tuple[int]]:
        return select(ft.c.id).where(match(ft.c.id), odd).order_by(ft.c.id)

    keys = list(range(n, 0, -1))
    with db.connect() as conn:
        got = [r[0] for r in rows_keyed(conn, ("odd",), odd, build, keys)]
    assert got == [i for i in range(1, min(n, 100) + 1) if i % 2]
