"""MariaDB's side of a bulk load: multi-row INSERT text, foreign keys checked once.

- **The statement text.** PyMySQL's ``executemany`` already sends multi-row INSERTs, but
  escapes each value through several Python calls; :mod:`cairn.demo.sqltext` writes the same
  literals a column at a time. Statements stay under a quarter of the server's
  ``max_allowed_packet`` (text is counted in characters, which UTF-8 may take four bytes each).
- **Foreign keys.** InnoDB checks each row's references as it is inserted (a lookup and a
  shared lock on the parent row). When every table the load writes was empty and every
  foreign key of those tables points at one of them, every parent is a row of the load
  itself, invisible to everyone else until the load commits: the session's
  ``foreign_key_checks`` is turned off for the load, and :meth:`MariaChannel.finish` looks for
  a child without its parent, key by key, in one join each, and fails the load if it finds
  one (as the row-by-row check would have). The session's setting is put back whatever
  happens, before the connection returns to the pool. Otherwise the checks stay on.

``LOAD DATA LOCAL INFILE`` would be faster still, but needs the client to allow the server
to ask it for local files, a setting Cairn's connections do not take on for everyone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, text

from cairn.demo.channel import Batch
from cairn.demo.sqltext import statements, value_rows

_NO_BACKSLASH_ESCAPES = 512  # SERVER_STATUS_NO_BACKSLASH_ESCAPES


class BrokenReference(ValueError):
    """A bulk load wrote a row whose foreign key names no row."""


@dataclass(frozen=True)
class _Key:
    table: str
    column: str
    parent: str
    parent_column: str
    name: str


def _foreign_keys(conn: Connection, tables: Sequence[Table]) -> list[_Key]:
    names = {t.name.upper(): t.name for t in tables}
    found = conn.execute(text(
        "SELECT TABLE_NAME, COLUMN_NAME, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME, "
        "CONSTRAINT_NAME FROM information_schema.KEY_COLUMN_USAGE "
        "WHERE TABLE_SCHEMA = DATABASE() AND REFERENCED_TABLE_NAME IS NOT NULL "
        "ORDER BY TABLE_NAME, CONSTRAINT_NAME")).all()
    return [_Key(*(str(v) for v in row)) for row in found if str(row[0]).upper() in names]


class MariaChannel:
    """How :class:`cairn.demo.bulk.BulkWriter` writes to MariaDB through PyMySQL."""

    def __init__(self, conn: Connection, defer_foreign_keys: bool) -> None:
        self.conn = conn
        self.defer_foreign_keys = defer_foreign_keys
        raw: Any = conn.connection.driver_connection  # in the loading transaction
        self.raw = raw
        self.backslashes = not raw.server_status & _NO_BACKSLASH_ESCAPES
        packet = conn.exec_driver_sql("SELECT @@max_allowed_packet").scalar()
        self.max_chars = max(64 * 1024, int(packet or 0) // 4)
        self.checks_to_restore: Any = None
        self.deferred: list[_Key] = []

    def start(self, empty: Sequence[Table]) -> None:
        if not self.defer_foreign_keys or not empty:
            return
        keys = _foreign_keys(self.conn, empty)
        loaded = {t.name.upper() for t in empty}
        if any(k.parent.upper() not in loaded for k in keys):
            return  # a parent row may be somebody else's: let InnoDB check and lock it
        before = self.conn.exec_driver_sql("SELECT @@SESSION.foreign_key_checks").scalar()
        self.conn.exec_driver_sql("SET SESSION foreign_key_checks = 0")
        self.checks_to_restore = before
        self.deferred = keys

    def send(self, batch: Batch) -> None:
        rows = value_rows(batch.columns, batch.n, self.backslashes)
        if rows is None:  # a type sqltext leaves to PyMySQL
            self.conn.exec_driver_sql(batch.sql, batch.rows())
            return
        prep = self.conn.dialect.identifier_preparer
        head = (f"INSERT INTO {prep.format_table(batch.table)} "
                f"({', '.join(prep.format_column(batch.table.c[k]) for k in batch.keys)}) "
                "VALUES ")
        with self.raw.cursor() as cur:
            for sql in statements(head, rows, self.max_chars):
                cur.execute(sql)  # no arguments: PyMySQL sends the text as it is

    def finish(self) -> None:
        q = self.conn.dialect.identifier_preparer.quote_identifier
        for k in self.deferred:
            child, parent = f"c.{q(k.column)}", f"p.{q(k.parent_column)}"
            orphan = self.conn.exec_driver_sql(
                f"SELECT {child} FROM {q(k.table)} c LEFT JOIN {q(k.parent)} p "
                f"ON {parent} = {child} WHERE {child} IS NOT NULL AND {parent} IS NULL LIMIT 1"
            ).first()
            if orphan is not None:
                raise BrokenReference(
                    f"bulk load: {k.table}.{k.column} = {orphan[0]} names no row of "
                    f"{k.parent} (foreign key {k.name})")
        self.deferred = []
        self._restore()

    def close(self, failed: bool) -> None:
        if failed:
            try:
                self._restore()
            except Exception:  # the load's own error is the one to raise
                self.conn.invalidate()  # never hand out a session without its checks
        else:
            self._restore()

    def _restore(self) -> None:
        if self.checks_to_restore is not None:
            value, self.checks_to_restore = int(self.checks_to_restore), None
            self.conn.exec_driver_sql(f"SET SESSION foreign_key_checks = {value}")
