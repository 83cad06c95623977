"""A column holding one of many ids (a word's datasets) selects the same rows on every
backend, and PostgreSQL and SQLite get many ids as one parameter (an array; a JSON array):
no placeholder per id for SQLAlchemy to render and the driver to bind on every run."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import BigInteger, Column, MetaData, Table, create_engine, event, select

from cairn.search import targets
from cairn.search.targets import SQLITE_JSON_IDS, one_of


@pytest.mark.parametrize("json_there", [True, False], ids=["json", "no-json"])
@pytest.mark.parametrize("many", [SQLITE_JSON_IDS - 1, SQLITE_JSON_IDS, 143])
def test_one_of_many_ids(database_url: str, backend: str, many: int, json_there: bool,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    """``no-json``: an SQLite without its JSON functions gets the ids as an ``IN`` list."""
    if backend != "sqlite" and not json_there:
        pytest.skip("SQLite's JSON functions")
    monkeypatch.setattr(targets, "SQLITE_JSON", json_there)
    md = MetaData()
    t = Table("ONE_OF", md, Column("id", BigInteger, primary_key=True, autoincrement=False))
    engine = create_engine(database_url)
    sent: list[Any] = []

    def note(conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
        sent.append(params)

    try:
        with engine.begin() as conn:
            md.create_all(conn)
            conn.execute(t.insert(), [{"id": i} for i in range(1000)])
            wanted = list(range(3, 1000, 7))[:many]
            assert len(wanted) == many
            event.listen(engine, "before_cursor_execute", note)
            got = conn.execute(select(t.c.id).where(one_of(t.c.id, wanted, engine.dialect.name))
                               .order_by(t.c.id)).scalars().all()
            event.remove(engine, "before_cursor_execute", note)
        assert got == wanted
        (params,) = sent
        one = backend == "postgresql" or (backend == "sqlite" and json_there
                                          and many >= SQLITE_JSON_IDS)
        assert len(params) == (1 if one else many)
    finally:
        engine.dispose()
