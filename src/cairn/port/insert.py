"""Multi-row INSERTs for an import: new ids first, then one driver ``executemany``.

SQLAlchemy's ``insert().returning(...)`` with many rows builds and type-processes a
parameter dict per row, and on SQLite it runs one statement per row to return their ids in
order. Here ids are chosen before the INSERT, safely while others write too:

- icat.server's sequence (SEQ_GEN_SEQUENCE), where the database uses one: as every writer;
- SQLite: after the table's largest id (the import holds SQLite's only write lock);
- PostgreSQL and MariaDB: none; there SQLAlchemy's multi-row ``INSERT ... VALUES (...),
  (...) RETURNING`` gives them, one statement per batch. On PostgreSQL that matters beyond
  the ids: the driver's ``executemany`` sends a statement per row, and the statement
  triggers that keep Dataset/Investigation sums (:mod:`cairn.db.sizes`) would then run per
  row (measured: 0.7 ms a row).

The INSERT itself is compiled once per table for the connection's dialect with positional
placeholders, and values are converted a column at a time with the bind processors
SQLAlchemy would use, so stored encodings are those of every other write.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, DateTime, Dialect, Table, func, select

if TYPE_CHECKING:
    from cairn.catalogue.work import Work


def positional(dialect: Dialect) -> Dialect:
    """The dialect compiling ``%s`` placeholders: drivers take tuples faster than dicts."""
    if dialect.positional or dialect.paramstyle != "pyformat":
        return dialect
    d = copy.copy(dialect)  # keeps what was learnt at connect time
    d.paramstyle = "format"
    d.positional = True
    return d


def _fast_datetime(proc: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """SQLite's datetime processor formats in Python; isoformat() gives the same text in C.
    Used only where it provably writes the same text as SQLAlchemy's (SQLite compares
    datetimes as text)."""
    def fast(value: Any) -> Any:
        return value.isoformat(" ", "microseconds") if type(value) is datetime else proc(value)

    probes = (datetime(2024, 2, 29, 23, 59, 58), datetime(1999, 1, 2, 3, 4, 5, 67890), None)
    try:
        same = all(fast(p) == proc(p) for p in probes)
    except Exception:
        same = False
    return fast if same else proc


class Inserter:
    """One table's INSERT of rows given as dicts (``keys`` and ``id``)."""

    def __init__(self, conn: Connection, table: Table, keys: list[str]) -> None:
        dialect = positional(conn.dialect)
        compiled = table.insert().compile(dialect=dialect, column_keys=["id", *keys])
        self.sql = str(compiled)
        self.order: list[str] = list(compiled.positiontup or [])
        self.procs: list[Callable[[Any], Any] | None] = []
        for k in self.order:
            typ = table.c[k].type
            proc: Callable[[Any], Any] | None = typ.dialect_impl(dialect).bind_processor(
                dialect)
            if proc is not None and isinstance(typ, DateTime):
                proc = _fast_datetime(proc)
            self.procs.append(proc)

    def run(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        cols = []
        for k, proc in zip(self.order, self.procs, strict=True):
            values = [r[k] for r in rows]
            cols.append(values if proc is None else list(map(proc, values)))
        conn.exec_driver_sql(self.sql, list(zip(*cols, strict=True)))


class Ids:
    """New ids for the rows of a unit of work, per table (see the module's notes)."""

    def __init__(self, work: Work) -> None:
        self.work = work
        self.last: dict[str, int] = {}

    @property
    def reserved(self) -> bool:
        """Whether ids can be chosen before the INSERT here."""
        return not self.work.db.ids.identity or self.work.conn.dialect.name == "sqlite"

    def take(self, table: Table, n: int) -> list[int]:
        work, conn = self.work, self.work.conn
        if not work.db.ids.identity:
            return [int(work.db.ids.next_id(conn) or 0) for _ in range(n)]
        last = self.last.get(table.name)
        if last is None:
            last = int(conn.execute(select(func.max(table.c.id))).scalar() or 0)
        self.last[table.name] = last + n
        return list(range(last + 1, last + n + 1))
