"""Searches take their table aliases from the compiler's pool (``cairn.query.scope.Aliases``):
the same SQL as with fresh aliases, no alias shared within one statement, and no aliases left
as cyclic garbage when a compiled search is dropped."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Column
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.sql.selectable import Alias

from cairn import cache
from cairn.db.engine import Database
from cairn.db.tables import TABLES
from cairn.errors import IcatError
from cairn.query import parse_query
from cairn.query.compiler import Compiler
from cairn.query.execute import Queries
from cairn.query.scope import POOLED_PER_TABLE
from tests.integration.query_corpus.corpus import C

pytestmark = pytest.mark.filterwarnings("ignore:SELECT statement has a cartesian product")

PAGE = ("SELECT ds FROM Dataset ds WHERE ds.investigation.id = {} ORDER BY ds.id "
        "INCLUDE ds.type LIMIT 0, 10")


@pytest.fixture
def db() -> Iterator[Database]:
    d = Database("sqlite://")
    yield d
    d.dispose()


def test_searches_of_one_shape_share_their_aliases(db: Database) -> None:
    queries = Queries(db)
    a, b = queries.search(PAGE.format(1)), queries.search(PAGE.format(2))
    assert a is not b
    # the exposed id column (what authorization predicates are cached by) is one object
    assert a.id_paths[0].column is b.id_paths[0].column
    # rules are nested in other statements: they keep aliases of their own
    rule = "SELECT ds.id FROM Dataset ds WHERE ds.investigation.id = 1"
    assert (queries.compile(parse_query(rule)).columns[0]
            is not queries.compile(parse_query(rule)).columns[0])


def _sql(compiler: Compiler, text: str, standalone: bool, dialect: Any) -> str:
    try:
        q = compiler.compile(parse_query(text), standalone=standalone)
    except IcatError as e:
        return f"error {e.type}: {e.message}"
    return str(q.statement().compile(dialect=dialect))


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect(), mysql.dialect()],
                         ids=["sqlite", "postgresql", "mysql"])
def test_pooled_aliases_give_the_same_sql(dialect: Any) -> None:
    """Every search of the query corpus, with sub-selects, IS EMPTY, MEMBER OF, SIZE and
    several variables of one table: with aliases from the pool (already used by every other
    query) the SQL is the same as with fresh ones; a statement sharing one alias between two
    roles would show one table name where two were written."""
    compiler = Compiler(TABLES, dialect.name, ZoneInfo("UTC"))
    texts = [c.query for c in C.cases if c.get_id is None]
    nested = ("SELECT ds FROM Dataset ds, Dataset d2 WHERE ds.investigation.id = "
              "d2.investigation.id AND ds.id IN (SELECT d3.id FROM Dataset d3 JOIN d3.datafiles "
              "df WHERE df.dataset.id = ds.id AND SIZE(d3.datafiles) > 0) AND ds MEMBER OF "
              "ds.investigation.datasets AND ds.datafiles IS NOT EMPTY")
    many = "SELECT ds FROM " + ", ".join(f"Dataset d{i}" for i in range(POOLED_PER_TABLE + 3)) \
        + " JOIN Dataset ds WHERE ds.id = d0.id"
    texts += [nested, many]
    for text in texts:  # every query's aliases in the pool first
        if _parses(text):
            _sql(compiler, text, True, dialect)
    compared = 0
    for text in texts:
        if not _parses(text):
            continue
        assert _sql(compiler, text, True, dialect) == _sql(compiler, text, False, dialect), text
        compared += 1
    assert compared > 300
    assert "DATASET_3" in _sql(compiler, nested, True, dialect)


def _parses(text: str) -> bool:
    try:
        parse_query(text)
    except IcatError:
        return False
    return True


def test_dropped_searches_leave_no_alias_garbage(db: Database,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Compiled searches evicted from a small cache are freed without the collector's help
    as far as SQLAlchemy's objects go: fresh aliases (~150 objects in reference cycles each)
    would be found by it."""
    monkeypatch.setattr(cache.REAPER, "every", 10**9)  # no collection from evictions
    queries = Queries(db, size=2)
    queries.search(PAGE.format(0))  # fills the pool
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(1, 40):
            queries.search(PAGE.format(i)).statement()
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        found = [o for o in gc.garbage if isinstance(o, Alias | Column)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was_enabled:
            gc.enable()
    assert found == []
