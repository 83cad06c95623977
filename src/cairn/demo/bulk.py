"""Fast bulk inserts into catalogue tables with ids assigned by the caller.

Why explicit ids: children need their parents' ids before anything is written, and asking the
database for them (``INSERT … RETURNING``) halves the insert rate. The writer therefore reads
``MAX(id)`` once per table inside the loading transaction, numbers new rows itself, and at the
end moves PostgreSQL's identity sequences past the ids it used (MariaDB's AUTO_INCREMENT and
SQLite's rowid follow explicit ids by themselves). This is only safe while nobody else inserts
into the same tables, which is why :func:`cairn.demo.load_demo` insists on an empty
catalogue.

Why not ``conn.execute(table.insert(), dicts)``: SQLAlchemy then builds and type-processes a
parameter dict per row, which costs more than SQLite's own insert. Here each table's INSERT is
compiled once by SQLAlchemy for the connection's dialect (with positional placeholders),
values are converted column by column with the type bind processors SQLAlchemy itself would
use (so the stored encodings are the ones of normal writes), constant columns (createId,
createTime, …) are converted once per batch, and rows go to the driver's ``executemany`` —
or, on PostgreSQL and MariaDB, to a channel of their own (:mod:`cairn.demo.channel`): COPY
text sent from a second thread while the next batch is generated (:mod:`cairn.demo.pgload`),
multi-row INSERT text (:mod:`cairn.demo.mariaload`), both written a column at a time and both
checking the foreign keys of tables that were empty once at the end instead of row by row.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from itertools import repeat
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, DateTime, Dialect, Table, func, select, text

from cairn.db.tables import Tables
from cairn.demo.channel import Batch, Channel, ExecuteMany
from cairn.demo.mariaload import MariaChannel
from cairn.demo.pgload import PgChannel
from cairn.schema import SCHEMA

SYSTEM_CONSTANTS = ("createId", "createTime", "modId", "modTime")


def _positional(dialect: Dialect) -> Dialect:
    """The dialect, compiling ``%s`` placeholders: drivers format tuples faster than dicts."""
    if dialect.positional or dialect.paramstyle != "pyformat":
        return dialect
    d = copy.copy(dialect)  # keeps everything learnt at connect time (server version, quoting)
    d.paramstyle = "format"
    d.positional = True
    return d


def _fast_datetime(proc: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """SQLite's DATETIME processor formats in Python; isoformat() gives the same text in C.

    Used only if it provably produces the same text as SQLAlchemy's processor, so rows stay
    comparable (SQLite compares datetimes as text) with rows SQLAlchemy writes.
    """
    def fast(value: Any) -> Any:
        return value.isoformat(" ", "microseconds") if type(value) is datetime else proc(value)

    probes = (datetime(2024, 2, 29, 23, 59, 58), datetime(1999, 1, 2, 3, 4, 5, 67890),
              datetime(1, 1, 1), None)
    try:
        same = all(fast(p) == proc(p) for p in probes)
    except Exception:
        same = False
    return fast if same else proc


class _Memo(dict[Any, Any]):
    """value -> converted value, converting on first sight only."""

    def __init__(self, convert: Callable[[Any], Any]) -> None:
        super().__init__()
        self.convert = convert

    def __missing__(self, key: Any) -> Any:
        value = self[key] = self.convert(key)
        return value


class Sink:
    """Buffered rows of one table with a fixed column list; ids are handed out here."""

    def __init__(self, writer: BulkWriter, table: Table, entity: str,
                 columns: Sequence[str], first_id: int, was_empty: bool = False) -> None:
        self.entity = entity
        self.table = table
        self.columns = tuple(columns)
        self.first_id = first_id
        self.was_empty = was_empty
        self.next_id = first_id
        self.ids: list[int] = []
        self.rows: list[tuple[Any, ...]] = []
        self.written = 0
        dialect = _positional(writer.conn.dialect)
        keys = ["id", *self.columns, *SYSTEM_CONSTANTS]
        unknown = [k for k in keys if k not in table.c]
        if unknown:
            raise ValueError(f"{entity} has no column {', '.join(unknown)}")
        compiled = table.insert().compile(dialect=dialect, column_keys=keys)
        self.sql = str(compiled)
        # Bind parameter names of an INSERT are the column keys; the order is the dialect's.
        self.bind_order: list[str] = list(compiled.positiontup or [])
        if sorted(self.bind_order) != sorted(keys):
            raise RuntimeError(f"unexpected bind parameters for {entity}: {self.bind_order}")
        self.processors: dict[str, Callable[[Any], Any]] = {}
        self.datetimes: set[str] = set()
        for k in keys:
            typ = table.c[k].type
            proc = typ.dialect_impl(dialect).bind_processor(dialect)
            if proc is not None:
                self.processors[k] = proc
                if isinstance(typ, DateTime):
                    self.datetimes.add(k)
                    self.processors[k] = _fast_datetime(proc)
        self.constants = {k: self._convert(k, v) for k, v in writer.system_values.items()}

    def _convert(self, key: str, value: Any) -> Any:
        proc = self.processors.get(key)
        return proc(value) if proc is not None else value

    def new_id(self) -> int:
        """Reserve an id for a row that will be :meth:`put` later (after its children)."""
        i = self.next_id
        self.next_id = i + 1
        return i

    def put(self, row_id: int, row: tuple[Any, ...]) -> None:
        self.ids.append(row_id)
        self.rows.append(row)

    def add(self, row: tuple[Any, ...]) -> int:
        """Buffer a row (values in :attr:`columns` order); return its id."""
        i = self.next_id
        self.next_id = i + 1
        self.ids.append(i)
        self.rows.append(row)
        return i

    def __len__(self) -> int:
        return len(self.rows)

    def take_batch(self) -> Batch:
        """Empty the buffer into a :class:`Batch` for a channel."""
        n = len(self.rows)
        return Batch(self.table, self.bind_order, self.sql, self.take_columns(), n)

    def take_columns(self) -> list[Sequence[Any] | repeat[Any]]:
        """Empty the buffer into driver values column by column, in :attr:`bind_order`; a
        constant column is a ``repeat``. No columns if the buffer was empty."""
        n = len(self.rows)
        if not n:
            return []
        # Column-wise: conversion becomes one C-level map per column instead of a Python loop.
        data: dict[str, Iterable[Any]] = dict(zip(self.columns, zip(*self.rows, strict=True),
                                                  strict=True))
        data["id"] = self.ids
        # SQLite formats datetimes in Python; rows often repeat one (datafileModTime =
        # datafileCreateTime), so the datetime columns share their conversions.
        memo = _Memo(self.processors[min(self.datetimes)]) if self.datetimes else None
        for k, proc in self.processors.items():
            if k in data:
                convert = memo.__getitem__ if memo is not None and k in self.datetimes else proc
                data[k] = list(map(convert, data[k]))
        cols: list[Sequence[Any] | repeat[Any]] = [
            data[k] if k in data else repeat(self.constants[k])  # type: ignore[misc]
            for k in self.bind_order]
        self.rows = []
        self.ids = []
        self.written += n
        return cols


class BulkWriter:
    """Buffers rows for many tables and writes them parents-first, in one connection.

    The caller owns the transaction, calls :meth:`finish` at the end, and uses the writer as
    a context manager around the load, so that a load failing half-way stops PostgreSQL's
    COPY thread before the transaction is rolled back.
    Sinks are flushed in the schema's export order, which respects every foreign key, so a
    child row never reaches the database before its parent.

    ``defer_foreign_keys`` (PostgreSQL, MariaDB): check the references of tables that were
    empty once, when the load finishes, rather than row by row.
    """

    def __init__(self, conn: Connection, tables: Tables, user: str, now: datetime,
                 batch_rows: int = 50_000, defer_foreign_keys: bool = True) -> None:
        self.conn = conn
        self.tables = tables
        self.system_values = {"createId": user, "modId": user, "createTime": now,
                              "modTime": now}
        self.batch_rows = batch_rows
        self.sinks: dict[str, Sink] = {}
        self._rank = {name: i for i, name in enumerate(SCHEMA.export_order)}
        self._defer_foreign_keys = defer_foreign_keys
        self._channel: Channel | None = None  # from the first flush to finish()

    def _open(self) -> Channel:
        dialect = self.conn.dialect
        if dialect.name == "postgresql" and dialect.driver == "psycopg":
            return PgChannel(self.conn, self._defer_foreign_keys)
        if dialect.name in ("mysql", "mariadb") and dialect.driver == "pymysql":
            return MariaChannel(self.conn, self._defer_foreign_keys)
        return ExecuteMany(self.conn)

    def __enter__(self) -> BulkWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._channel is not None:  # finish() was not reached
            channel, self._channel = self._channel, None
            channel.close(failed=True)

    def sink(self, entity: str, columns: Sequence[str]) -> Sink:
        if entity in self.sinks:
            raise ValueError(f"sink for {entity} already declared")
        table = self.tables[entity]
        top = self.conn.execute(select(func.max(table.c.id))).scalar()
        s = Sink(self, table, entity, columns, int(top or 0) + 1, was_empty=top is None)
        self.sinks[entity] = s
        return s

    @property
    def buffered(self) -> int:
        return sum(len(s) for s in self.sinks.values())

    @property
    def written(self) -> int:
        return sum(s.written for s in self.sinks.values())

    def maybe_flush(self) -> bool:
        if self.buffered >= self.batch_rows:
            self.flush()
            return True
        return False

    def flush(self) -> None:
        ordered = sorted(self.sinks.values(), key=lambda s: self._rank[s.entity])
        if self._channel is None:
            self._channel = self._open()
            self._channel.start([s.table for s in ordered if s.was_empty])
        for s in ordered:
            if len(s):
                self._channel.send(s.take_batch())

    def counts(self) -> dict[str, int]:
        return {name: s.written for name, s in self.sinks.items()}

    def created(self) -> dict[str, range]:
        """The ids written per entity: one run each, as every id handed out is written."""
        out = {}
        for name, s in self.sinks.items():
            if s.written != s.next_id - s.first_id:
                raise RuntimeError(f"{name}: {s.next_id - s.first_id} ids handed out, "
                                   f"{s.written} rows written")
            out[name] = range(s.first_id, s.next_id)
        return out

    def finish(self) -> None:
        """Write what is buffered and let later inserts without an id continue after ours."""
        self.flush()
        if self._channel is not None:
            self._channel.finish()
            channel, self._channel = self._channel, None
            channel.close(failed=False)
        if self.conn.dialect.name == "postgresql":
            self._advance_pg_sequences()

    def _advance_pg_sequences(self) -> None:
        prep = self.conn.dialect.identifier_preparer
        for s in self.sinks.values():
            if not s.written:
                continue
            id_col = s.table.c.id
            # pg_get_serial_sequence parses the table as SQL (folding case), the column literally.
            column = id_col.name if getattr(id_col.name, "quote", False) else id_col.name.lower()
            seq = self.conn.execute(text("SELECT pg_get_serial_sequence(:t, :c)"),
                                    {"t": prep.format_table(s.table), "c": column}).scalar()
            if seq is None:
                continue  # no identity/serial column: ids come from elsewhere
            self.conn.execute(text("SELECT setval(CAST(:seq AS regclass), :v)"),
                              {"seq": seq, "v": s.next_id - 1})
