"""Writing a dump: the whole catalogue, or what some queries find, as icat.server's dump.

What is written follows icat.server's export:

- without queries, every table in the schema's export order (a header even when it has no
  rows); a user who is not root gets the rows they may READ (the condition is part of the
  statement that reads them, as for a search);
- with queries, the entities they return and those their INCLUDEs bring, authorized as a
  search and its INCLUDEs are; a query must return entities;
- many-to-one fields are written as the values of their object's uniqueness constraint (or
  its label ``"id"`` if it has none), whoever may read that object, as icat.server does:
  the file must say where its rows belong.

Memory stays flat whatever the catalogue's size: each table is read ``BATCH`` rows at a time
in id order (keyset pagination: ``id > last``), the constraint fields of referenced objects
come in the same statement (joins), and each batch is handed on as one chunk of text before
the next is read. The rows come from one consistent snapshot of the database (a
REPEATABLE READ transaction; on SQLite a read transaction), so a dump taken while others
write never holds a row without its parent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Connection,
    FromClause,
    Select,
    bindparam,
    false,
    func,
    select,
)

from cairn.catalogue.objects import Obj
from cairn.errors import bad_parameter
from cairn.port.dumpfile import preamble
from cairn.port.layout import Column, Reference, TableLayout, export_layout
from cairn.port.values import quote, renderer
from cairn.schema import SCHEMA

if TYPE_CHECKING:
    from cairn.catalogue.work import Work
    from cairn.db.engine import Database
    from cairn.db.tables import Tables

#: Rows read per statement (and written per chunk).
BATCH = 2000
_AFTER = "port_after"
_IDS = "port_ids"

#: Told the rows written so far and the table being written.
Progress = Callable[[int, str], None]


@dataclass
class _Table:
    layout: TableLayout
    #: Which of its rows (None: all): the caller's READ condition, or ids a query found.
    condition: ColumnElement[bool] | None = None
    ids: list[int] | None = None


class Export:
    """A dump being written: :meth:`open` plans it in the caller's unit of work (session,
    queries, permissions; every error a client can act on surfaces there), then iterating
    yields the file as UTF-8 chunks from a snapshot of the database. :meth:`close` (called
    at the end of the iteration, or by whoever stops early) releases the snapshot."""

    def __init__(self, unit: AbstractContextManager[Work], queries: Sequence[str] = (),
                 all_attributes: bool = False, progress: Progress | None = None) -> None:
        self.unit = unit
        self.queries = list(queries)
        self.all_attributes = all_attributes
        self.progress = progress
        self.user = ""
        self.tables: list[_Table] = []
        self.rows = 0
        self.params: dict[str, Any] = {}
        self.zone = ZoneInfo("UTC")
        self.db_tables: Tables | None = None
        self._stack = ExitStack()
        self._chunks: Iterator[bytes] | None = None
        self._conn: Connection | None = None

    @property
    def empty(self) -> bool:
        """Queries were given and found nothing (REST answers 204 then)."""
        return bool(self.queries) and not self.tables

    def open(self) -> Export:
        try:
            with self.unit as work:
                self.user = work.user
                self.zone = work.db.zone
                self.db_tables = work.tables
                self.params = dict(work.params)
                if self.queries:
                    self._plan_queries(work)
                else:
                    self._plan_all(work)
                # Opened before the unit ends: nothing written in between is missed.
                self._conn = self._stack.enter_context(_snapshot(work.db))
        except BaseException:
            self.close()
            raise
        return self

    def _plan_all(self, work: Work) -> None:
        for name in SCHEMA.export_order:
            entity = SCHEMA.entities[name]
            cond = work.readable_condition(name, work.tables[name].c.id)
            self.tables.append(_Table(export_layout(entity, self.all_attributes), cond))

    def _plan_queries(self, work: Work) -> None:
        found: dict[str, set[int]] = {}
        for query in self.queries:
            for item in work.search(query):
                if not isinstance(item, Obj):
                    raise bad_parameter(f"An export needs a query that returns entities, "
                                        f"such as SELECT ds FROM Dataset ds; {query!r} "
                                        f"returns {type(item).__name__} values")
                _collect(item, found)
        for name in SCHEMA.export_order:
            if found.get(name):
                layout = export_layout(SCHEMA.entities[name], self.all_attributes)
                self.tables.append(_Table(layout, ids=sorted(found[name])))

    def count(self) -> int:
        """Rows the dump will hold (a COUNT per table), for a progress bar."""
        assert self._conn is not None and self.db_tables is not None, "open() first"
        total = 0
        for t in self.tables:
            if t.ids is not None:
                total += len(t.ids)
                continue
            table = self.db_tables[t.layout.entity.name]
            q = select(func.count()).select_from(table)
            if t.condition is not None:
                q = q.where(t.condition)
            total += int(self._conn.execute(q, self.params).scalar_one())
        return total

    # -- iteration ------------------------------------------------------------------------

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._chunks is None:
            self._chunks = self._write()
        try:
            return next(self._chunks)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._stack.close()

    def _write(self) -> Iterator[bytes]:
        conn, tables = self._conn, self.db_tables
        assert conn is not None and tables is not None, "open() first"
        yield preamble(self.user).encode()
        for t in self.tables:
            entity = t.layout.entity
            rows = _Rows(t.layout, self.zone, tables)
            yield f"\n{t.layout.header()}\n".encode()
            for batch in self._batches(conn, rows, t):
                self.rows += len(batch)
                yield "".join(rows.line(r) for r in batch).encode()
                if self.progress is not None:
                    self.progress(self.rows, entity.name)
        if self.progress is not None:
            self.progress(self.rows, "")

    def _batches(self, conn: Connection, rows: _Rows, t: _Table) -> Iterator[Sequence[Any]]:
        if t.condition is not None and t.condition.compare(false()):
            return
        if t.ids is not None:
            stmt = rows.select.where(rows.id.in_(bindparam(_IDS, expanding=True)))
            for start in range(0, len(t.ids), BATCH):
                yield conn.execute(stmt, {_IDS: t.ids[start:start + BATCH]}).all()
            return
        stmt = rows.select.where(rows.id > bindparam(_AFTER)).limit(BATCH)
        if t.condition is not None:
            stmt = stmt.where(t.condition)
        after = 0
        while True:
            batch = conn.execute(stmt, {**self.params, _AFTER: after}).all()
            if not batch:
                return
            yield batch
            after = batch[-1][0]


def _collect(obj: Obj, found: dict[str, set[int]]) -> None:
    """The object and every object its INCLUDEs brought."""
    if obj.id is not None:
        found.setdefault(obj.entity.name, set()).add(obj.id)
    for one in obj.ones.values():
        if one is not None:
            _collect(one, found)
    for many in obj.manys.values():
        for child in many:
            _collect(child, found)


class _Rows:
    """One table's statement (its columns and, joined, the constraint fields of the objects
    it refers to) and the text of each row it returns."""

    def __init__(self, layout: TableLayout, zone: ZoneInfo, tables: Tables) -> None:
        self.tables = tables
        base = tables[layout.entity.name]
        self.id = base.c.id
        self.columns: list[ColumnElement[Any]] = [base.c.id]
        self.joined: FromClause = base
        self.parts: list[Callable[[Any], str]] = []
        if layout.label is not None:
            self.parts.append(self._label(0))
        for item in layout.items:
            self.parts.append(self._item(item, base, zone))
        self.select: Select[Any] = select(*self.columns).select_from(self.joined) \
            .order_by(base.c.id)

    def _at(self, col: ColumnElement[Any]) -> int:
        self.columns.append(col)
        return len(self.columns) - 1

    @staticmethod
    def _label(i: int) -> Callable[[Any], str]:
        return lambda row: quote(str(row[i]))

    def _item(self, item: Column | Reference, table: FromClause, zone: ZoneInfo
              ) -> Callable[[Any], str]:
        if isinstance(item, Column):
            i = self._at(table.c[item.field.name])
            render = renderer(item.field, zone)
            return lambda row: "NULL" if row[i] is None else render(row[i])
        fk = self._at(table.c[item.field.name])
        width = len(item.indexes())
        null = ",".join(["NULL"] + ["NA"] * (width - 1))  # icat.server's null reference
        if item.label is not None:
            return lambda row: null if row[fk] is None else quote(str(row[fk]))
        target = self.tables[item.target.name].alias()
        self.joined = self.joined.outerjoin(target, target.c.id == table.c[item.field.name])
        parts = [self._item(sub, target, zone) for sub in item.items]

        def reference(row: Any) -> str:
            if row[fk] is None:
                return null
            return ",".join([p(row) for p in parts])

        return reference

    def line(self, row: Any) -> str:
        return ",".join([p(row) for p in self.parts]) + "\n"


@contextmanager
def _snapshot(db: Database) -> Iterator[Connection]:
    """A connection reading one consistent state of the database until it is closed."""
    with db.engine.connect() as conn:
        dialect = conn.dialect.name
        if dialect == "sqlite":
            # The sqlite3 module begins nothing for reads: an explicit read transaction
            # (WAL) keeps what the first statement sees.
            conn.exec_driver_sql("BEGIN")
            try:
                yield conn
            finally:
                conn.rollback()
            return
        # PostgreSQL's default READ COMMITTED takes a snapshot per statement; MariaDB's
        # REPEATABLE READ is its default, set here in case the server says otherwise.
        conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin() as tx:
            yield conn
            tx.rollback()
