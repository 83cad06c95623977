"""Free-text search reads its results' sources with table aliases from a shared pool
(``cairn.query.scope.shared_pool``): the same SQL as with fresh aliases on every dialect,
and no new alias per request."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.sql.selectable import Alias

from cairn.catalogue.work import Work
from cairn.db import migrate
from cairn.db.engine import Database
from cairn.query.scope import POOLED_PER_TABLE, Aliases, shared_pool
from cairn.search import sources as sources_module
from cairn.search.sources import FIELDS, sources

DIALECTS = [sqlite.dialect(), postgresql.dialect(), mysql.dialect()]


class _Rules:
    """An authorizer whose read rule for every entity is a sub-select over an alias of the
    entity's own table (as compiled rules are): nested in the sources' statements."""

    def predicate(self, work: Work, access: Any, entity: str, id_column: Any,
                  whole_table: bool = False) -> Any:
        rule = work.tables[entity].alias()
        return id_column.in_(select(rule.c.id).where(rule.c.id > 0))

    def allowed_ids(self, work: Work, access: Any, entity: str, ids: Any, max_ids: int
                    ) -> set[int]:
        return set(ids)

    def implied(self, work: Work, origin: str, up: Any, entity: str, down: Any) -> bool:
        return False  # every child is checked, with a rule of its own


@pytest.fixture(scope="module")
def db() -> Iterator[Database]:
    d = Database("sqlite://")
    migrate.upgrade(d)
    yield d
    d.dispose()


def _statements(db: Database, target: str, root: bool) -> list[Any]:
    """The statements ``sources`` runs for a page of ``target``."""
    seen: list[Any] = []

    def note(conn: Any, clause: Any, *args: Any) -> None:
        seen.append(clause)

    with db.connect() as conn:
        event.listen(conn, "before_execute", note)
        work = Work(conn=conn, db=db, user="simple/u", now=datetime(2030, 1, 1), max_ids=100,
                    root=root, authz=None if root else _Rules())  # type: ignore[arg-type]
        sources(work, target, [1, 2, 3])
    return seen


def _sql(statements: list[Any], dialect: Any) -> list[str]:
    return [str(s.compile(dialect=dialect)) for s in statements]


@pytest.mark.parametrize("root", [True, False], ids=["root", "rules"])
@pytest.mark.parametrize("target", sorted(FIELDS))
def test_pooled_aliases_give_the_same_sql(db: Database, monkeypatch: pytest.MonkeyPatch,
                                          target: str, root: bool) -> None:
    for t in FIELDS:  # every target's aliases in the pool first
        _statements(db, t, root)
    pooled = _statements(db, target, root)
    monkeypatch.setattr(sources_module, "_aliases", lambda work: Aliases(work.tables))
    fresh = _statements(db, target, root)
    assert len(pooled) == len(fresh) > 1
    for dialect in DIALECTS:
        assert _sql(pooled, dialect) == _sql(fresh, dialect), dialect.name


def test_sources_make_no_new_aliases(db: Database) -> None:
    """After a first page, reading another makes no alias: none is left as cyclic garbage."""
    for t in FIELDS:
        _statements(db, t, True)
    pool = shared_pool(db.tables)
    before = dict(pool)
    assert before and all(k < POOLED_PER_TABLE for _, k in before)
    gc.collect()
    gc.disable()
    try:
        made = len([o for o in gc.get_objects() if isinstance(o, Alias)])
        for t in FIELDS:
            _statements(db, t, True)
        assert len([o for o in gc.get_objects() if isinstance(o, Alias)]) <= made
    finally:
        gc.enable()
    assert pool == before


def test_a_pool_goes_with_its_tables() -> None:
    from cairn.db.tables import build_tables
    from cairn.query import scope

    tables = build_tables()
    key = id(tables)
    shared_pool(tables)[("Dataset", 0)] = tables["Dataset"].alias()
    assert key in scope._SHARED
    del tables
    gc.collect()
    assert key not in scope._SHARED
