"""Rows whose columns have one of many value tuples: natural keys of new rows, lookups of
the objects they refer to.

MariaDB uses the unique index for ``(A, B) IN ((1, 'x'), (2, 'y'), ...)``, so there a batch
of tuples is one statement per ``max_ids``; PostgreSQL gets the tuples as one array per
column, ``unnest``ed and joined. SQLite scans the table for a
row-value IN list (3.40: ``SCAN ... LIST SUBQUERY``), which grows with the catalogue; in
process, a point query per tuple through the driver costs microseconds, so there each tuple
is looked up on its own, the statement compiled once and values converted as SQLAlchemy
would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Connection,
    Table,
    and_,
    bindparam,
    func,
    select,
    tuple_,
)

from cairn.port.insert import positional

Matches = dict[tuple[Any, ...], list[int]]


def match_rows(conn: Connection, table: Table, names: Sequence[str],
               wanted: Sequence[tuple[Any, ...]], batch: int) -> Matches:
    """value tuple -> ids of the rows with exactly those values in columns ``names``, as the
    database returns them (tuples it matched in its own way, e.g. MariaDB's case-insensitive
    strings, come back as stored: the caller looks those up again on their own)."""
    cols = [table.c[n] for n in names]
    out: Matches = {}
    if len(cols) > 1 and conn.dialect.name == "sqlite":
        point = _point_query(conn, table, cols)
        for values in wanted:
            for row in point(values):
                out.setdefault(tuple(row[1:]), []).append(row[0])
        return out
    key: ColumnElement[Any] = cols[0] if len(cols) == 1 else tuple_(*cols)
    unnest = len(cols) > 1 and conn.dialect.name == "postgresql"
    for start in range(0, len(wanted), batch):
        chunk = wanted[start:start + batch]
        if unnest:
            # A row IN list is planned as an OR of comparisons (150 ms for 500 tuples);
            # unnest()ed arrays, one per column, as a join on the unique index.
            arrays = [bindparam(f"k{i}", [v[i] for v in chunk], type_=ARRAY(c.type))
                      for i, c in enumerate(cols)]
            keys = func.unnest(*arrays).table_valued(
                *[f"c{i}" for i in range(len(cols))]).render_derived()
            cond = key.in_(select(*keys.c))
        else:
            cond = key.in_([v[0] for v in chunk] if len(cols) == 1 else chunk)
        for row in conn.execute(select(table.c.id, *cols).where(cond)):
            out.setdefault(tuple(row[1:]), []).append(row[0])
    return out


_POINT: dict[tuple[int, tuple[str, ...]], tuple[str, list[Any], list[Any]]] = {}


def _point_query(conn: Connection, table: Table, cols: list[Any]
                 ) -> Callable[[tuple[Any, ...]], list[Any]]:
    """A lookup by all of ``cols`` through the driver's cursor; rows as SQLAlchemy would
    return them (id first, then the columns)."""
    dialect = positional(conn.dialect)
    names = tuple(c.key for c in cols)
    cached = _POINT.get((id(table), names))
    if cached is None:
        stmt = select(table.c.id, *cols).where(and_(*[
            c == bindparam(f"p{i}", type_=c.type) for i, c in enumerate(cols)]))
        compiled = stmt.compile(dialect=dialect)
        binds = [c.type.dialect_impl(dialect).bind_processor(dialect) for c in cols]
        results = [c.type.dialect_impl(dialect).result_processor(dialect, None)
                   for c in (table.c.id, *cols)]
        cached = _POINT[(id(table), names)] = (str(compiled), binds, results)
    sql, binds, results = cached
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]

    def point(values: tuple[Any, ...]) -> list[Any]:
        params = [v if b is None else b(v) for v, b in zip(values, binds, strict=True)]
        rows = cursor.execute(sql, params).fetchall()
        return [tuple(v if r is None else r(v) for v, r in zip(row, results, strict=True))
                for row in rows]

    return point
