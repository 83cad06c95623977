"""Run compiled queries: LIMIT and maxEntities (§1.4), result shapes, and the query cache.

Results come back as Python values: entities as :class:`Obj` (built by the unit of work, so
they are exactly what get/INCLUDE produce) or what the caller's readers make of their rows;
scalars as ``int``, ``float``, ``str``, ``bool``, aware ``datetime``, enum constant names or
None; several select items give one list per row.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Dialect, Select, exc, literal_column
from sqlalchemy.sql.elements import ColumnElement

from cairn.cache import IdentityCache, Lru
from cairn.db.engine import Database
from cairn.db.fastread import CompiledSelect, Processors, Readers
from cairn.errors import IcatError, bad_parameter, validation
from cairn.query import ast, lookups
from cairn.query.coerce import INT64
from cairn.query.compiler import (
    CompiledGet,
    CompiledQuery,
    Compiler,
    Item,
    Restrict,
)
from cairn.query.frontend import parse_get, parse_query
from cairn.query.lookups import Found
from cairn.schema import SCHEMA, Entity

if TYPE_CHECKING:
    from cairn.catalogue.objects import Obj

# ``FROM Dataset ds, Investigation i WHERE ...`` is a cross join on purpose in JPQL.
warnings.filterwarnings("ignore", message="SELECT statement has a cartesian product",
                        category=exc.SAWarning)


class Caller(Protocol):
    """Who runs a query or a permission check: the catalogue's unit of work
    (``catalogue.work.Work``) as the layers below the catalogue see it: its transaction, user
    and clock, and the values of ``:user`` and the clock as statement parameters."""

    conn: Connection
    db: Database
    user: str
    now: datetime

    @property
    def params(self) -> Mapping[str, Any]:
        """``:user`` and the clock, for the query's and the restriction's parameters."""
        ...

    def reader(self, entity: Entity, keys: tuple[str, ...], processors: Processors = ()
               ) -> Callable[[Any], Obj]: ...


def run(unit: Caller, q: CompiledQuery, max_entities: int, restrict: Restrict | None = None,
        readers: Readers | None = None) -> list[Any]:
    """Execute ``q`` for the unit's user; at most ``max_entities`` rows or VALIDATION.
    Entities are what ``readers`` make of their columns (by default the unit's objects)."""
    offset, count = 0, None
    if q.limit is not None:
        offset, count = q.limit.offset, q.limit.count
        if offset < 0 or (count is not None and count < 0):
            raise validation(f"LIMIT {offset}, {count} is not valid: neither number may be "
                             "negative")
    fetch = count if count is not None and count <= max_entities else max_entities + 1
    params = unit.params if q.params or restrict is not None else {}
    try:
        wanted = lookups.wanted(q.lookups, unit.conn.dialect)
        found = lookups.resolve(unit.conn, wanted) if wanted else ()
        known = lookups.conditions(wanted, found)
        prepared = _prepared(q, fetch, offset, unit.conn.dialect, restrict, known, found)
        rows: Sequence[Any]
        processors: Processors = ()  # the driver's values to convert as the rows are read
        if prepared is not None:
            rows, processors = prepared.fetch(unit.conn, params)
        else:
            rows = unit.conn.execute(_paged(q.statement(restrict, known), fetch, offset),
                                     dict(params)).all()
    except exc.DBAPIError as e:
        refusal = _rejected(e)
        if refusal is None:
            raise
        raise refusal from None
    if len(rows) > max_entities:
        raise validation(f"attempt to process more than {max_entities} entities")
    spans = _spans(q.items)
    convert = [_converter(unit, item, tuple((i - s, p) for i, p in processors if s <= i < e),
                          readers or unit.reader)
               for item, (s, e) in zip(q.items, spans, strict=True)]
    if len(q.items) == 1:
        (conv,), ((start, end),) = convert, spans
        if end - start == 1:
            return [conv(row[start:end]) for row in rows]
        return [conv(row) for row in rows]
    return [[c(row[s:e]) for c, (s, e) in zip(convert, spans, strict=True)] for row in rows]


def _prepared(q: CompiledQuery, fetch: int, offset: int, dialect: Dialect,
              restrict: Restrict | None, known: list[ColumnElement[bool]], found: Found
              ) -> CompiledSelect | None:
    """The query with this limit, offset, restriction and the conditions ``known`` from the
    ids ``found`` (:mod:`cairn.query.lookups`), compiled once to SQL text.

    Authorization predicates are built once per rule set and shared (their ``:user`` and
    clock are read at execution), so the predicates' identities complete the key."""
    preds = () if restrict is None else tuple(restrict(ip) for ip in q.id_paths)

    def make() -> CompiledSelect | None:
        stmt = q.statement(None if restrict is None else _fixed(q, preds), known)
        return CompiledSelect.of(_paged(stmt, fetch, offset), dialect)

    return _PREPARED.fetch((q, dialect, *preds), (fetch, offset, found), make)


def _paged(stmt: Select[Any], fetch: int, offset: int) -> Select[Any]:
    """``stmt`` with LIMIT and OFFSET written as numbers, not parameters. PostgreSQL keeps one
    plan for all runs of a prepared statement only if it is not much costlier than a plan for
    the values at hand; with the LIMIT unknown it looked costlier, so the portal's parameter
    search was planned afresh on every run (0.2 ms of its 0.7). Both are integers (the
    parser's), so nothing from a request reaches the text."""
    stmt = stmt.limit(literal_column(str(int(fetch))))
    return stmt.offset(literal_column(str(int(offset)))) if offset else stmt


def _fixed(q: CompiledQuery, preds: tuple[Any, ...]) -> Restrict:
    """The restriction as already evaluated, path by path."""
    by_path = {id(ip): pred for ip, pred in zip(q.id_paths, preds, strict=True)}
    return lambda ip: by_path[id(ip)]


_OUT_OF_RANGE = "A computed number is out of range (beyond a 64-bit integer)"
_TOO_LARGE = "The query is too large for the database; write it with fewer conditions or joins"

#: PostgreSQL's refusals of query shapes that MariaDB and SQLite run (leniently, MySQL style):
#: the user's query is at fault, so BAD_PARAMETER rather than INTERNAL.
_SHAPE_ERRORS = {
    "42803": "Every selected or ordered item must be in the GROUP BY clause or inside an "
             "aggregate function",
    "42P10": "With SELECT DISTINCT, ORDER BY may only use selected items",
    # arithmetic beyond the range of a Long (SQLite turns to floating point instead)
    "22003": _OUT_OF_RANGE,
    "1690": _OUT_OF_RANGE,
    # a LIKE pattern computed by the query that ends with its escape character (a literal
    # one the compiler refuses on every backend)
    "22025": "A LIKE pattern ends with its escape character; write it twice to match it",
    "22019": "A LIKE escape must be a single character",
    # a statement beyond a limit of the database: cairn.query.limits keeps queries below
    # them all, so these only guard against a database configured tighter than usual
    "54001": _TOO_LARGE, "54011": _TOO_LARGE, "54023": _TOO_LARGE,  # PostgreSQL
    "1116": _TOO_LARGE, "1117": _TOO_LARGE, "1436": _TOO_LARGE,  # MariaDB
}

#: SQLite says what went wrong only in words: the start of its message -> ours.
_SQLITE_ERRORS = {
    "integer overflow": _OUT_OF_RANGE,
    "Expression tree is too large": _TOO_LARGE,
    "at most 64 tables in a join": _TOO_LARGE,
    "too many FROM clause terms": _TOO_LARGE,
    "too many SQL variables": _TOO_LARGE,
    "too many columns": _TOO_LARGE,
    "too many terms": _TOO_LARGE,
}


def _rejected(e: exc.DBAPIError) -> IcatError | None:
    code = getattr(e.orig, "sqlstate", None)
    if code is None and e.orig is not None and getattr(e.orig, "args", None):
        code = e.orig.args[0]  # MariaDB's error number; SQLite's message
    message = _SHAPE_ERRORS.get(str(code))
    if message is None and isinstance(code, str):
        message = next((m for start, m in _SQLITE_ERRORS.items() if code.startswith(start)),
                       None)
    return bad_parameter(message) if message else None


def _spans(items: tuple[Item, ...]) -> list[tuple[int, int]]:
    out, at = [], 0
    for item in items:
        width = len(item.keys) if item.entity is not None else 1
        out.append((at, at + width))
        at += width
    return out


def _converter(unit: Caller, item: Item, processors: Processors, readers: Readers
               ) -> Callable[[Any], Any]:
    """Reads one item's columns of a row (``processors`` indexed from its first column)."""
    if item.entity is not None:
        read = readers(item.entity, tuple(item.keys), processors)

        def to_entity(values: Any) -> Any:
            return None if values[0] is None else read(values)  # None: a LEFT JOIN found nothing

        return to_entity
    typ = item.typ
    db = unit.db
    if processors:
        ((_, proc),) = processors
        return lambda values: scalar(proc(values[0]), typ, db)
    return lambda values: scalar(values[0], typ, db)


def scalar(v: Any, typ: str | None, db: Database) -> Any:
    """A database value as the Python value of its ICAT type."""
    if v is None:
        return None
    match typ:
        case "Long" | "Integer" | "entity":
            # SQLite turns integer arithmetic that overflows into floating point; PostgreSQL
            # and MariaDB sum integers beyond 64 bits as decimals. A Long can hold neither.
            n = int(v) if not isinstance(v, float) else None
            if n is None or not INT64[0] <= n <= INT64[1]:
                raise bad_parameter(_OUT_OF_RANGE)
            return n
        case "Double":
            return float(v)
        case "boolean":
            return bool(v)
        case "Date":
            if isinstance(v, str):
                v = datetime.fromisoformat(v)
            elif isinstance(v, date) and not isinstance(v, datetime):
                v = datetime(v.year, v.month, v.day)
            return db.from_db(v) if isinstance(v, datetime) else v
        case "String":
            return v if isinstance(v, str) else str(v)
        case "Time":
            if isinstance(v, timedelta):
                v = (datetime.min + v).time()
            return v.isoformat() if isinstance(v, time) else str(v)
    if typ is not None and typ in SCHEMA.enums and isinstance(v, int):
        return SCHEMA.enums[typ][v]
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, time):
        return v.isoformat()
    return v


# -- parsing and compiling, cached ------------------------------------------------------------

class Queries:
    """Parsed and compiled queries of one database, keyed by their text.

    A compiled query holds no user data (``:user`` and the clock are bound per execution), so
    every session shares one entry. Failures are not cached.
    """

    # A compiled search is about 6 kB (its table aliases are the compiler's pool's, shared by
    # every search): 256 keep a portal's hot queries in ~2 MB; texts carrying ids rarely
    # repeat anyway.
    def __init__(self, db: Database, size: int = 256) -> None:
        self.compiler = Compiler(db.tables, db.dialect, db.zone)
        self._search: Lru[str, CompiledQuery] = Lru(size, "query.search")
        self._get: Lru[str, CompiledGet] = Lru(size, "query.get")

    def search(self, text: str) -> CompiledQuery:
        # Standalone: a search's statement is run as it is (with predicates built on their own
        # aliases), never nested in another search's.
        return self._search.fetch(
            text, lambda: self.compiler.compile(parse_query(text), standalone=True))

    def get(self, text: str) -> CompiledGet:
        return self._get.fetch(text, lambda: self.compiler.compile_get(parse_get(text)))

    def compile(self, sel: ast.Select) -> CompiledQuery:
        """An already parsed query (not cached)."""
        return self.compiler.compile(sel)


#: (query, dialect, predicates; limit, offset) -> the query compiled to SQL text, for every
#: session. An entry is ~25 kB and pins its compiled query and predicates (those shared by
#: every search of its shape), so the bound is what stops memory (docs/security.md).
_PREPARED: IdentityCache[CompiledSelect | None] = IdentityCache(256, "query.prepared")

_QUERIES: WeakKeyDictionary[Database, Queries] = WeakKeyDictionary()
_QUERIES_LOCK = threading.Lock()


def queries_for(db: Database) -> Queries:
    """The query cache of a database (one per :class:`Database` object)."""
    with _QUERIES_LOCK:
        q = _QUERIES.get(db)
        if q is None:
            q = _QUERIES[db] = Queries(db)
        return q
