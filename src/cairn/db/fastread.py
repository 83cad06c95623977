"""Statements run straight through the DB-API cursor, for the hot read paths.

SQLAlchemy's execution path costs about 0.13 ms per statement before the database does any
work (measured on SQLite: 136 µs against 9 µs for one row by id), and rebuilding a query's
SELECT to add its LIMIT costs as much again: most of a small page's time. Two shapes run on
every request, so they go to the cursor with SQL text SQLAlchemy rendered once:

- :func:`rows_in`: whole rows by a list of keys (sessions, loads by id, INCLUDE steps), by id
  or in another order (INCLUDEd lists);
- :class:`CompiledSelect`: a compiled query with its limit and offset (searches; rows unconverted);
- :func:`rows_keyed`: any statement around a list of keys, compiled once (authorization
  checks of INCLUDEd objects).

SQLAlchemy's own bind and result processors (SQLite's date strings, enum ordinals, booleans)
are applied, in the same transaction: same values, less overhead. The ``fetch`` forms return
the rows unconverted with their converters, for a caller that applies them while building
its own objects (the row readers) instead of copying every row first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Connection,
    Dialect,
    Select,
    Table,
    any_,
    bindparam,
    select,
)
from sqlalchemy import exc as sa_exc

from cairn.cache import IdentityCache
from cairn.db.engine import statement_started, timed_out, unreachable

Processor = Callable[[Any], Any]
#: SQLAlchemy's converters of a statement's result columns: (column index, converter).
Processors = tuple[tuple[int, Processor], ...]
#: Rows as the driver returned them, and what would convert them (see :func:`_convert`):
#: a caller building its own objects applies the converters as it goes, row lists unbuilt.
Fetched = tuple[list[Sequence[Any]], Processors]
#: Builders of row readers: for an entity, a column layout (field names) and the converters
#: of those columns, what turns one row into one object.
Readers = Callable[[Any, tuple[str, ...], Processors], Callable[[Sequence[Any]], Any]]


def _processors(dialect: Dialect, types: Sequence[Any], description: Sequence[Sequence[Any]]
                ) -> Processors:
    """SQLAlchemy's result converters of these column types, by column index. Some depend on
    the type code the cursor reports (PostgreSQL's numerics), so they are learnt from the
    first execution's cursor description."""
    found = []
    for i, (typ, d) in enumerate(zip(types, description, strict=True)):
        proc = typ.dialect_impl(dialect).result_processor(dialect, d[1])
        if proc is not None:
            found.append((i, proc))
    return tuple(found)


def _run(conn: Connection, sql: str, params: Any, describe: bool) -> tuple[list[Any], Any]:
    """Rows, and the cursor description if ``describe`` (psycopg builds it anew on every
    call: a tenth of a small search's time in the driver); driver errors raised as
    SQLAlchemy raises them."""
    statement_started(conn)
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql, params)
        return list(cursor.fetchall()), cursor.description if describe else None
    except conn.dialect.loaded_dbapi.Error as e:
        # The raw cursor bypasses SQLAlchemy's error events: a lost connection is named
        # here as engine._outage names it, and the connection dropped from the pool; a
        # statement stopped by the time limit as engine._timeout names it.
        if conn.dialect.is_disconnect(e, conn.connection.dbapi_connection, cursor):
            conn.invalidate(e)
            raise unreachable(e) from e
        if (stopped := timed_out(e)) is not None:
            raise stopped from e
        raise sa_exc.DBAPIError.instance(sql, params, e, conn.dialect.loaded_dbapi.Error
                                         ) from e
    finally:
        cursor.close()


def _convert(rows: list[Any], processors: Processors) -> list[Any]:
    if not processors:
        return rows
    out = []
    for row in rows:
        row = list(row)
        for i, proc in processors:
            row[i] = proc(row[i])
        out.append(row)
    return out


@dataclass
class _Plan:
    table: Table
    head: str  # SELECT <every column> FROM <table> WHERE <column>
    tail: str  # ORDER BY <id>
    mark: str  # the driver's placeholder
    arrays: bool  # the driver passes a list as an array (psycopg)
    processors: Processors | None = None  # after the first execution


#: From this many keys on, PostgreSQL gets one array parameter instead of a list of them
#: (``= ANY(%s)``). Measured on the demo: 512 dataset ids 6-12 ms against 26-29 ms for the
#: padded list (binding and planning 512 parameters), 50 ids 0.22 against 0.34 ms; below a
#: handful of keys the list is a little faster (0.10 against 0.13 ms for one key).
ARRAY_FROM = 16


_MARKS = {"qmark": "?", "format": "%s", "pyformat": "%s", "numeric": None, "named": None}


@lru_cache(maxsize=1024)
def _plan(dialect: Dialect, table: Table, column: str, order: tuple[str, ...]
          ) -> _Plan | None:
    mark = _MARKS.get(dialect.paramstyle)
    if mark is None:
        return None  # a driver Cairn does not ship: SQLAlchemy's path instead
    quote = dialect.identifier_preparer.quote
    names = ", ".join(quote(c.name) for c in table.columns)
    head = f"SELECT {names} FROM {quote(table.name)} WHERE {quote(table.c[column].name)}"
    tail = " ORDER BY " + ", ".join(quote(table.c[key].name) for key in order)
    return _Plan(table, head, tail, mark, _arrays(dialect))


def _arrays(dialect: Dialect) -> bool:
    """Whether the driver passes a Python list as one array parameter (psycopg)."""
    return dialect.name == "postgresql" and dialect.driver == "psycopg"


def rows_in(conn: Connection, table: Table, column: str, values: Sequence[Any]
            ) -> list[Sequence[Any]]:
    """Rows of ``table`` (every column, in table order) whose ``column`` is in ``values``,
    ordered by id, read in ``conn``'s transaction."""
    return _convert(*fetch_in(conn, table, column, values))


def fetch_in(conn: Connection, table: Table, column: str, values: Sequence[Any],
             order: tuple[str, ...] = ("id",)) -> Fetched:
    """:func:`rows_in`, unconverted; ordered by the columns ``order`` names (their keys)."""
    if not values:
        return [], ()
    plan = _plan(conn.dialect, table, column, order)
    if plan is None:
        stmt = (select(table).where(table.c[column].in_(values))
                .order_by(*(table.c[key] for key in order)))
        return list(conn.execute(stmt)), ()
    if plan.arrays and len(values) >= ARRAY_FROM:
        rows, description = _run(conn, f"{plan.head} = ANY({plan.mark}){plan.tail}",
                                 [list(values)], plan.processors is None)
    else:
        keys = padded(values)
        marks = ", ".join([plan.mark] * len(keys))
        rows, description = _run(conn, f"{plan.head} IN ({marks}){plan.tail}", keys,
                                 plan.processors is None)
    if plan.processors is None:
        plan.processors = _processors(conn.dialect, [c.type for c in table.columns],
                                      description)
    return rows, plan.processors


def padded(values: Sequence[Any]) -> list[Any]:
    """``values`` repeated at the end up to the next power of two.

    A key list's length becomes part of the statement's text; with a few lengths only, the
    texts repeat, so drivers reuse their prepared statements (psycopg after five runs,
    sqlite3's statement cache) and PostgreSQL stops planning them again: planning a statement
    with authorization predicates takes ~3 ms, running it ~0.2. (``= ANY(:array)`` has one
    text for every length, but PostgreSQL then keeps planning each run afresh: worth it only
    for plain statements and long lists, see :data:`ARRAY_FROM`.)
    """
    n = len(values)
    if n < 2:
        return list(values)
    size = 1 << (n - 1).bit_length()
    return [*values, *([values[-1]] * (size - n))]


class CompiledSelect:
    """A SELECT compiled once for one dialect, executed through the cursor.

    Only for statements whose SQL text does not depend on parameter values (no expanding IN
    lists); :meth:`of` says None for the others, which then take SQLAlchemy's path.
    """

    def __init__(self, stmt: Select[Any], dialect: Dialect) -> None:
        self.compiled = stmt.compile(dialect=dialect)
        self.dialect = dialect
        self.sql = self.compiled.string
        by_name = {name: bind for bind, name in self.compiled.bind_names.items()}
        order = self.compiled.positiontup if self.compiled.positional else list(by_name)
        self.binds = [(name, by_name[name].type.dialect_impl(dialect).bind_processor(dialect))
                      for name in order or ()]
        self.types = [c.type for c in stmt.selected_columns]
        self.processors: Processors | None = None

    @classmethod
    def of(cls, stmt: Select[Any], dialect: Dialect) -> CompiledSelect | None:
        if _MARKS.get(dialect.paramstyle) is None:
            return None
        p = cls(stmt, dialect)
        if p.compiled.post_compile_params or p.compiled.literal_execute_params:
            return None
        return p

    def fetch(self, conn: Connection, params: Mapping[str, Any]) -> Fetched:
        """The rows for these parameters, unconverted, and their converters."""
        values = self.compiled.construct_params(params) if params or self.binds else {}
        args = [(proc(values[name]) if proc else values[name]) for name, proc in self.binds]
        bound: Any = args if self.compiled.positional else dict(
            zip((name for name, _ in self.binds), args, strict=True))
        rows, description = _run(conn, self.sql, bound, self.processors is None)
        if self.processors is None:
            self.processors = _processors(self.dialect, self.types, description)
        return rows, self.processors


#: (anchor, dialect; key, length) -> the statement built and compiled. An entry with an
#: authorization predicate is ~35 kB and pins the predicate (~100 kB): bounded to ~140 MB.
_KEYED: IdentityCache[tuple[Select[Any], CompiledSelect | None]] = \
    IdentityCache(1024, "fastread.keyed")


#: A key condition on a column: ``column IN (:k0, :k1, ...)`` or ``column = ANY(:keys)``.
Match = Callable[[ColumnElement[Any]], ColumnElement[bool]]

#: From this many keys on, a keyed statement takes one array on PostgreSQL. Higher than
#: :data:`ARRAY_FROM`: PostgreSQL plans such a statement afresh on every run, and planning
#: one with authorization predicates takes about 3 ms.
KEYED_ARRAY_FROM = 128


def rows_keyed(conn: Connection, key: tuple[Any, ...], anchor: object,
               build: Callable[[Match], Select[Any]], values: Sequence[Any],
               params: Mapping[str, Any] | None = None) -> list[Sequence[Any]]:
    """Rows of the SELECT ``build`` makes from a key condition, for ``values``
    (see :func:`fetch_keyed`)."""
    return _convert(*fetch_keyed(conn, key, anchor, build, values, params))


def fetch_keyed(conn: Connection, key: tuple[Any, ...], anchor: object,
                build: Callable[[Match], Select[Any]], values: Sequence[Any],
                params: Mapping[str, Any] | None = None) -> Fetched:
    """The rows of the SELECT ``build`` makes from a key condition (given the key column, the
    condition that it is one of ``values``), for ``values``, unconverted.

    For statements around a key list that are expensive to build or to execute through
    SQLAlchemy (an authorization predicate is a tree of a hundred nodes): built and compiled
    once per ``anchor`` (the object the statement is built from, such as the predicate), the
    rest of what it depends on (``key``), padded list length (or array) and dialect.
    """
    if len(values) >= KEYED_ARRAY_FROM and _arrays(conn.dialect):
        shape: Any = "array"
        bound = {**(params or {}), "keys": list(values)}

        def match(column: ColumnElement[Any]) -> ColumnElement[bool]:
            return column == any_(bindparam("keys", type_=ARRAY(column.type)))
    else:
        keys = padded(values)
        shape = len(keys)
        bound = {**(params or {}), **{f"k{i}": v for i, v in enumerate(keys)}}

        def match(column: ColumnElement[Any]) -> ColumnElement[bool]:
            return column.in_([bindparam(f"k{i}") for i in range(len(keys))])

    def make() -> tuple[Select[Any], CompiledSelect | None]:
        stmt = build(match)
        return stmt, CompiledSelect.of(stmt, conn.dialect)

    stmt, prepared = _KEYED.fetch((anchor, conn.dialect), (key, shape), make)
    if prepared is None:
        return list(conn.execute(stmt, bound)), ()
    return prepared.fetch(conn, bound)
