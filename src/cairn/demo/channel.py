"""How the bulk writer's batches reach a database: one channel per backend.

:class:`cairn.demo.bulk.BulkWriter` generates and converts rows the same way everywhere, then
hands each table's batch, column by column, to a channel:

- :class:`ExecuteMany` (SQLite, and any other driver): the compiled INSERT through the
  driver's ``executemany``; sqlite3 binds rows in C at several hundred thousand a second;
- :class:`cairn.demo.pgload.PgChannel`: COPY text from a second thread, foreign keys checked
  once at the end;
- :class:`cairn.demo.mariaload.MariaChannel`: multi-row INSERT text, foreign keys checked
  once at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any, Protocol

from sqlalchemy import Connection, Table


@dataclass(frozen=True)
class Batch:
    """Rows of one table: ``columns[i]`` holds the values of column ``keys[i]`` (converted
    by SQLAlchemy's bind processors), or is a ``repeat`` of one value for every row."""

    table: Table
    keys: Sequence[str]  # column keys, in the order of ``sql``'s placeholders
    sql: str  # the table's INSERT with positional placeholders, compiled for the connection
    columns: Sequence[Sequence[Any] | repeat[Any]]
    n: int

    def rows(self) -> list[tuple[Any, ...]]:
        return list(zip(*self.columns)) if self.n else []  # noqa: B905 - repeats are endless


class Channel(Protocol):
    def start(self, empty: Sequence[Table]) -> None:
        """Before the first batch; ``empty`` are the tables that held no rows."""

    def send(self, batch: Batch) -> None:
        """Write (or queue) one batch; batches come parents first."""

    def finish(self) -> None:
        """Everything sent is in the database, and checked."""

    def close(self, failed: bool) -> None:
        """Release what the channel holds, after :meth:`finish` or after a failure."""


class ExecuteMany:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def start(self, empty: Sequence[Table]) -> None:
        pass

    def send(self, batch: Batch) -> None:
        self.conn.exec_driver_sql(batch.sql, batch.rows())

    def finish(self) -> None:
        pass

    def close(self, failed: bool) -> None:
        pass
