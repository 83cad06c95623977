"""PostgreSQL's side of a bulk load: COPY from a second thread, keys and indexes made once.

Three costs decide how fast PostgreSQL takes a load (measured with COPY of one million
datafile rows, and ``bench/bulk_insert.py``; figures in ``docs/performance.md``):

- **Waiting in turns.** Generating and formatting rows is Python work on one core; storing them
  is the server's work on another. Sent from the generating thread, each batch's COPY waits
  for the server to swallow it while nothing new is generated, and the server idles while the
  next batch is made. :class:`CopyThread` sends batches from a second thread (a COPY waits on
  the socket with the GIL released), a bounded queue ahead of it, so both sides work at once
  and memory stays flat.
- **Foreign-key checks row by row.** PostgreSQL checks each inserted row's references with a
  query per row and key (about 3.7 µs each: 7.5 of the 12 s a million datafiles took with
  their two keys). Adding the same constraint to a filled table checks all rows in one join
  (0.3 s). :func:`suspend_foreign_keys` therefore drops the foreign keys of tables that were
  empty when the load began, and :func:`restore_foreign_keys` adds them back, with their
  names and definitions as they were, before the load commits. The drop and the add are in
  the loading transaction: other sessions never see the tables without their keys (they
  wait for the table's lock until the load commits), a failed load rolls the keys back in,
  and a load that broke a reference fails as the row-by-row check would have failed it.
- **Index entries row by row.** Each row also goes into every index of its table, one B-tree
  insert each. :func:`suspend_indexes` drops the plain indexes of the tables that were empty
  (``LOCATION``, the foreign-key indexes; not primary keys, nor unique constraints, which
  refuse a duplicate as before) and :func:`restore_indexes` builds them once, by a sort, in
  the same transaction. With both, the server's CPU for a scale-100 load went from 13.7-14.1
  to 7.7-8.0 s (``docs/performance.md``, "Bulk loading").
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, text

from cairn.demo.channel import Batch
from cairn.demo.copytext import copy_text


@dataclass(frozen=True)
class CopyJob:
    """One COPY: either ready text (``data``) or rows for psycopg to adapt (``rows``)."""

    sql: str
    data: bytes | None = None
    rows: Sequence[tuple[Any, ...]] = ()


class CopyThread:
    """Runs COPY jobs in order on one psycopg connection, from a thread of its own.

    While jobs are queued, the connection belongs to this thread: the owner touches it again
    only after :meth:`close` (psycopg's connection lock would make it wait anyway). An error
    in a job is raised in the owner's thread by the next :meth:`put` or by :meth:`close`;
    the jobs after it are dropped.
    """

    def __init__(self, raw: Any, depth: int = 2) -> None:
        self.raw = raw
        # depth batches waiting plus the one being sent: what bounds the load's memory.
        self.queue: queue.Queue[CopyJob | None] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.aborted = False
        self.thread = threading.Thread(target=self._run, name="cairn-bulk-copy", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (job := self.queue.get()) is not None:
            if self.error is not None or self.aborted:
                continue  # drain, so that a blocked put() returns
            try:
                with self.raw.cursor() as cur, cur.copy(job.sql) as pipe:
                    if job.data is not None:
                        pipe.write(job.data)
                    for row in job.rows:
                        pipe.write_row(row)
            except BaseException as e:  # handed to the owner's thread
                self.error = e

    def _raise(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            self.aborted = True
            raise error

    def put(self, job: CopyJob) -> None:
        self._raise()
        self.queue.put(job)

    def close(self, abort: bool = False) -> None:
        """Wait for the queued jobs (or, with ``abort``, only the one running) and raise
        the error of any that failed (not with ``abort``: the caller has its own)."""
        if abort:
            self.aborted = True
        self.queue.put(None)
        self.thread.join()
        if not abort:
            self._raise()


@dataclass(frozen=True)
class ForeignKey:
    table: str  # as SQL, quoted as needed
    name: str  # as SQL, quoted
    definition: str  # pg_get_constraintdef: FOREIGN KEY (…) REFERENCES …(…) [ON DELETE …]


def suspend_foreign_keys(conn: Connection, tables: Sequence[Table]) -> list[ForeignKey]:
    """Drop the foreign keys of ``tables`` in the caller's transaction; return them for
    :func:`restore_foreign_keys`. Only for tables that are empty, or the restore would check
    their old rows again."""
    prep = conn.dialect.identifier_preparer
    dropped: list[ForeignKey] = []
    for table in tables:
        name = prep.format_table(table)
        found = conn.execute(text(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE contype = 'f' AND conrelid = CAST(:t AS regclass) ORDER BY conname"),
            {"t": name}).all()
        for conname, definition in found:
            key = ForeignKey(name, prep.quote_identifier(conname), definition)
            conn.exec_driver_sql(f"ALTER TABLE {key.table} DROP CONSTRAINT {key.name}")
            dropped.append(key)
    return dropped


@dataclass(frozen=True)
class Index:
    table: str  # as SQL, quoted as needed
    name: str  # as SQL, quoted
    create: str  # the statement that makes it again


def suspend_indexes(conn: Connection, tables: Sequence[Table]) -> list[Index]:
    """Drop the plain indexes of ``tables`` (not the primary key's, nor those of unique
    constraints, which still refuse a duplicate as its row arrives) in the caller's
    transaction; return them for :func:`restore_indexes`. Only for tables that are empty:
    the restore builds each index once over the loaded rows (one sort) instead of one
    B-tree insert per row."""
    prep = conn.dialect.identifier_preparer
    dropped: list[Index] = []
    for table in tables:
        name = prep.format_table(table)
        found = conn.execute(text(
            "SELECT ic.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "JOIN pg_class ic ON ic.oid = i.indexrelid "
            "WHERE i.indrelid = CAST(:t AS regclass) AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) "
            "ORDER BY ic.relname"), {"t": name}).all()
        for index, create in found:
            q = prep.quote_identifier(index)
            conn.exec_driver_sql(f"DROP INDEX {q}")
            dropped.append(Index(name, q, create))
    return dropped


def restore_indexes(conn: Connection, indexes: Sequence[Index]) -> None:
    for index in indexes:
        conn.exec_driver_sql(index.create)


def restore_foreign_keys(conn: Connection, keys: Sequence[ForeignKey]) -> None:
    """Add the keys back; PostgreSQL checks every row of the table against each, in one join
    per key, and fails on the first row without its parent."""
    by_table: dict[str, list[ForeignKey]] = {}
    for key in keys:
        by_table.setdefault(key.table, []).append(key)
    for table, some in by_table.items():
        clauses = ", ".join(f"ADD CONSTRAINT {k.name} {k.definition}" for k in some)
        conn.exec_driver_sql(f"ALTER TABLE {table} {clauses}")


class PgChannel:
    """How :class:`cairn.demo.bulk.BulkWriter` writes to PostgreSQL through psycopg: COPY
    text from :class:`CopyThread`, foreign keys of tables that were empty checked at the
    end (``defer_foreign_keys``)."""

    def __init__(self, conn: Connection, defer_foreign_keys: bool) -> None:
        self.conn = conn
        self.defer_foreign_keys = defer_foreign_keys
        raw: Any = conn.connection.driver_connection  # in the loading transaction
        self.raw = raw
        self.encoding = str(raw.info.encoding)
        self.copier: CopyThread | None = None
        self.suspended: list[ForeignKey] | None = None
        self.indexes: list[Index] = []

    def start(self, empty: Sequence[Table]) -> None:
        self.suspended = suspend_foreign_keys(self.conn, empty) \
            if self.defer_foreign_keys else []
        self.indexes = suspend_indexes(self.conn, empty) if self.defer_foreign_keys else []
        self.copier = CopyThread(self.raw)

    def send(self, batch: Batch) -> None:
        assert self.copier is not None
        prep = self.conn.dialect.identifier_preparer
        sql = (f"COPY {prep.format_table(batch.table)} "
               f"({', '.join(prep.format_column(batch.table.c[k]) for k in batch.keys)})"
               " FROM STDIN")
        data = copy_text(batch.columns, batch.n)
        if data is None:  # a type copytext leaves to psycopg's adaptation
            self.copier.put(CopyJob(sql, rows=batch.rows()))
        else:
            self.copier.put(CopyJob(sql, data=data.encode(self.encoding)))

    def finish(self) -> None:
        if self.copier is not None:
            copier, self.copier = self.copier, None
            copier.close()
        restore_indexes(self.conn, self.indexes)
        self.indexes = []
        if self.suspended:
            restore_foreign_keys(self.conn, self.suspended)
        self.suspended = None

    def close(self, failed: bool) -> None:
        """After :meth:`finish`, or instead of it when the load failed (the caller rolls back,
        which brings the foreign keys back)."""
        if self.copier is not None:
            copier, self.copier = self.copier, None
            copier.close(abort=failed)
