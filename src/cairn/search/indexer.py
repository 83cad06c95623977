"""Keeping the index true to the catalogue: documents written in the transaction of the change
that makes them, and rebuilds that run as durable jobs.

:class:`Indexer` follows the catalogue's change events. Before a unit of work commits, it
rewrites the documents of every indexed row the unit created or updated and removes those of
the rows it deleted, in the same transaction: a document is searchable exactly when the write
that made it is committed, and a crash loses nothing (the index and the catalogue commit or
roll back together). Bulk loads record runs of ids, indexed with one statement per run.

A rebuild (``cairn search reindex``, the ``/icat/lucene/db`` calls, a newly configured
entity) is a job of kind ``search.rebuild`` per entity, keyed by the entity: it walks the
entity's ids in blocks, replacing each block's documents in one transaction, so searches see
a whole index throughout, and it records where it is in its payload, so it resumes after a
restart from the last block it finished.

The sort keys of a target (:class:`cairn.search.index.KeyTable`) are written with its
documents: by the same unit of work, by every rebuild's blocks. They describe the catalogue's
rows, not the documents, so a deleting rebuild leaves them. A key table that is new (an
existing deployment, a new key) is filled by a rebuild of the keys alone (payload
``keys_only``); ``CAIRN_SEARCH_STATE`` notes when a rebuild that began with the table there
has covered every row, and searches read the keys instead of the expressions from then on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    and_,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.schema import CreateIndex, CreateTable, DropIndex, DropTable

from cairn.catalogue.changes import ChangeKind, ChangeListener, Changes, IdRuns
from cairn.catalogue.work import Work
from cairn.db.engine import Database
from cairn.jobs import Again, Cancelled, JobContext, Kind
from cairn.search.index import (
    INDEXED,
    KEYS_VERSION,
    SORT_KEYS,
    Backend,
    DocTable,
    KeyTable,
    backend_for,
    key_table,
    state_table,
)

log = logging.getLogger(__name__)

REBUILD = "search.rebuild"
#: Documents written by one unit of work from which an empty index is filled in bulk.
BULK = 100_000


class SearchIndex:
    """The document tables of the indexed entities of one database."""

    def __init__(self, db: Database, entities: Iterable[str], *, block: int = 20_000,
                 slice_seconds: float = 5.0) -> None:
        self.db = db
        self.backend: Backend = backend_for(db)
        self.docs: dict[str, DocTable] = {
            e: self.backend.doc_table(e, INDEXED[e]) for e in entities}
        self.keys: dict[str, KeyTable] = {
            e: key_table(self.backend.metadata, db, e) for e in self.docs if e in SORT_KEYS}
        self.state = state_table(self.backend.metadata)
        self.block = block
        self.slice_seconds = slice_seconds

    def ensure(self) -> list[str]:
        """Create the missing document tables, and make again those made another way (an
        older version); the entities whose table is new. The key tables are
        :meth:`ensure_keys`'s."""
        created = []
        for entity, doc in self.docs.items():
            with self.db.begin() as conn:
                if self.backend.exists(conn, doc):
                    if not self.backend.outdated(conn, doc):
                        # an index a rebuild dropped to fill the table faster, if it stopped
                        self.backend.bulk_end(conn, doc)
                        self.backend.tune(conn, doc)
                        continue
                    log.info("search: %s's documents were indexed another way; they are "
                             "indexed again", entity)
                    self.backend.drop(conn, doc)
                self.backend.create(conn, doc)
            created.append(entity)
        return created

    def ensure_keys(self) -> list[str]:
        """Create the missing key tables (and those of another version); the entities whose
        keys are not filled yet (their searches read the expressions meanwhile)."""
        with self.db.begin() as conn:
            conn.execute(CreateTable(self.state, if_not_exists=True))
        unfilled = []
        for entity, keys in self.keys.items():
            with self.db.begin() as conn:
                row = conn.execute(select(self.state.c.version, self.state.c.filled).where(
                    self.state.c.entity == entity)).first()
                there = self.backend.has_table(conn, keys.table.name)
                if row is None or row.version != KEYS_VERSION or not there:
                    conn.execute(DropTable(keys.table, if_exists=True))
                    conn.execute(CreateTable(keys.table))
                    self._keys_bulk_end(conn, keys)
                    conn.execute(delete(self.state).where(self.state.c.entity == entity))
                    conn.execute(self.state.insert().values(entity=entity,
                                                            version=KEYS_VERSION, filled=0))
                    filled = False
                else:
                    self._keys_bulk_end(conn, keys)  # indexes a filling dropped, if it stopped
                    filled = bool(row.filled)
                if not filled:
                    if any_row(conn, self.db.tables[entity]):
                        unfilled.append(entity)
                    else:  # nothing to fill: every row from now on comes with its keys
                        self._mark_filled(conn, entity)
        return unfilled

    def keys_filled(self, conn: Connection, entity: str) -> KeyTable | None:
        """The key table of ``entity`` if it holds every row's keys (else None)."""
        keys = self.keys.get(entity)
        if keys is None:
            return None
        filled = conn.execute(select(self.state.c.filled).where(
            self.state.c.entity == entity, self.state.c.version == KEYS_VERSION)).scalar()
        return keys if filled else None

    def _mark_filled(self, conn: Connection, entity: str) -> None:
        conn.execute(update(self.state).where(
            self.state.c.entity == entity, self.state.c.version == KEYS_VERSION)
            .values(filled=1))

    def drop_others(self) -> list[str]:
        """Drop the document tables of entities no longer indexed: nothing keeps them true,
        and indexing an entity again must start from scratch."""
        dropped = []
        for entity, fields in INDEXED.items():
            if entity in self.docs:
                continue
            doc = self.backend.doc_table(entity, fields)
            with self.db.begin() as conn:
                if entity in SORT_KEYS:  # its keys too, and the note that they were filled
                    conn.execute(DropTable(key_table(self.backend.metadata, self.db, entity)
                                           .table, if_exists=True))
                    if self.backend.has_table(conn, self.state.name):
                        conn.execute(delete(self.state).where(
                            self.state.c.entity == entity))
                if self.backend.exists(conn, doc):
                    self.backend.drop(conn, doc)
                    dropped.append(entity)
        return dropped

    # -- sort keys ----------------------------------------------------------------------------

    def _write_keys(self, conn: Connection, entity: str, where: Any, *, removed: bool,
                    low: int | None = None, high: int | None = None,
                    block: bool = False) -> None:
        """The keys of the rows ``where`` (a function of an id column) selects: removed,
        or rewritten; ``block``: those of the rows of (low, high] that are gone removed."""
        keys = self.keys.get(entity)
        if keys is None:
            return
        kt = keys.table
        if removed:
            conn.execute(delete(kt).where(where(kt.c.id)))
            return
        src = self.db.tables[entity]
        if block:
            # found by a plain read, removed by id: a ranged DELETE would lock the gaps of
            # InnoDB's index (to its end, in an empty table), and the blocks written at once
            # would deadlock on each other's inserts
            gone = conn.execute(select(kt.c.id).where(
                _within(kt.c.id, low, high),
                kt.c.id.notin_(select(src.c.id).where(_within(src.c.id, low, high))))
            ).scalars().all()
            for by_id in _id_conditions(gone, 500):
                conn.execute(delete(kt).where(by_id(kt.c.id)))
        self.backend.upsert_keys(conn, keys, where(src.c.id))

    def _keys_bulk_start(self, conn: Connection, keys: KeyTable) -> None:
        for ix in keys.table.indexes:
            conn.execute(DropIndex(ix, if_exists=True))

    def _keys_bulk_end(self, conn: Connection, keys: KeyTable) -> None:
        for ix in keys.table.indexes:
            conn.execute(CreateIndex(ix, if_not_exists=True))

    # -- documents ----------------------------------------------------------------------------

    def refresh(self, conn: Connection, entity: str, ids: Sequence[int] | IdRuns | range,
                *, removed: bool = False, max_ids: int = 500) -> None:
        """Rewrite (or, ``removed``, drop) the documents of ``ids`` of ``entity``."""
        doc = self.docs.get(entity)
        if doc is None:
            return
        keys = self.keys.get(entity)
        if not removed and len(ids) >= BULK and not any_row(conn, doc.table):
            # a bulk load into an empty index: its GIN index is built once, at the end;
            # likewise the key indexes
            self.backend.bulk_start(conn, doc)
            bulk_keys = keys is not None and not any_row(conn, keys.table)
            if keys is not None and bulk_keys:
                self._keys_bulk_start(conn, keys)
            for where in _id_conditions(ids, max_ids):
                self.backend.insert_from(conn, doc, where(self.db.tables[entity].c.id))
                self._write_keys(conn, entity, where, removed=False)
            self.backend.bulk_end(conn, doc)
            if keys is not None and bulk_keys:
                self._keys_bulk_end(conn, keys)
            return
        for where in _id_conditions(ids, max_ids):
            if removed or not self.backend.upserts:
                self.backend.remove(conn, doc, where)
            if not removed:
                self.backend.insert_from(conn, doc, where(self.db.tables[entity].c.id))
            self._write_keys(conn, entity, where, removed=removed)

    def clear(self, conn: Connection, entity: str, low: int | None = None,
              high: int | None = None) -> None:
        doc = self.docs[entity]
        if low is None and high is None:
            self.backend.empty(conn, doc)
            keys = self.keys.get(entity)
            if keys is not None:
                # The sort keys go with their documents: a rebuild writes every row's again,
                # and fills an empty key table in bulk, without its indexes (a million
                # files' documents and keys in 10 s instead of 26 when the keys stayed).
                self._keys_bulk_start(conn, keys)
                conn.execute(delete(keys.table))
                self._keys_bulk_end(conn, keys)
        else:
            self.backend.remove(conn, doc, lambda col: _within(col, low, high))

    def count(self, entity: str) -> int:
        doc = self.docs[entity]
        with self.db.connect() as conn:
            return conn.execute(select(func.count()).select_from(doc.table)).scalar_one()

    # -- rebuilding ---------------------------------------------------------------------------

    def rebuild_kind(self) -> Kind:
        return Kind(REBUILD, self._rebuild, max_attempts=10)

    def _rebuild(self, ctx: JobContext) -> Again | None:
        p: dict[str, Any] = dict(ctx.payload)
        entity = p["entity"]
        if entity not in self.docs:
            log.warning("search: %s is not indexed here; rebuild dropped", entity)
            return None
        doc, src = self.docs[entity], self.db.tables[entity]
        keys = self.keys.get(entity)
        high: int | None = p.get("max_id")
        only_keys = bool(p.get("keys_only"))
        if only_keys and keys is None:
            return None
        if "next" not in p and keys is not None and p.get("min_id") is None and high is None:
            # begun with the key table there: at its end, every row has its keys
            p["keys_version"] = KEYS_VERSION
        if p.get("delete") and not p.get("cleared") and not only_keys:
            with self.db.begin() as conn:
                self.clear(conn, entity, p.get("min_id"), high)
            p["cleared"] = True
        if "bulk" not in p:  # an empty table is filled faster without its index
            with self.db.begin() as conn:
                p["bulk"] = not only_keys and not any_row(conn, doc.table)
                if p["bulk"]:
                    self.backend.bulk_start(conn, doc)
                p["bulk_keys"] = keys is not None and not any_row(conn, keys.table)
                if keys is not None and p["bulk_keys"]:
                    self._keys_bulk_start(conn, keys)
        if p.get("total") is None:
            with self.db.connect() as conn:
                p["total"] = conn.execute(
                    select(func.count()).where(_within(src.c.id, p.get("next", p.get(
                        "min_id")), high))).scalar_one() + p.get("done", 0)
        started = time.monotonic()
        try:
            with ThreadPoolExecutor(self.backend.parallel) as pool:
                while self._slice(ctx, p, pool, high):
                    if time.monotonic() - started > self.slice_seconds:
                        return Again(after=0, payload=p)  # the position is now durable
        except Cancelled:
            with self.db.begin() as conn:
                # what was filled so far stays searchable at the index's speed
                self._bulk_end(conn, p, doc, keys)
            raise
        ctx.progress(p.get("done", 0), p["total"])  # also when this run found nothing left
        with self.db.begin() as conn:
            self._bulk_end(conn, p, doc, keys)
            if not only_keys:
                self.backend.optimize(conn, doc)
            if keys is not None:
                if high is None:  # keys of rows past the last block's are of rows gone
                    last = p.get("next", p.get("min_id"))
                    conn.execute(delete(keys.table).where(
                        _within(keys.table.c.id, last, None)))
                if self.backend.name in ("sqlite", "postgresql"):
                    # the planner's statistics: without them SQLite, seeing the catalogue's
                    # own, builds a Bloom filter of every file before walking the keys
                    conn.execute(text(f"ANALYZE {keys.table.name}"))
                if p.get("keys_version") == KEYS_VERSION:
                    self._mark_filled(conn, entity)
        log.info("search: %s indexed (%d %s)", entity, p.get("done", 0),
                 "rows' sort keys" if only_keys else "documents")
        return None

    def _bulk_end(self, conn: Connection, p: dict[str, Any], doc: DocTable,
                  keys: KeyTable | None) -> None:
        if p.get("bulk"):
            self.backend.bulk_end(conn, doc)
        if p.get("bulk_keys") and keys is not None:
            self._keys_bulk_end(conn, keys)

    def _slice(self, ctx: JobContext, p: dict[str, Any], pool: ThreadPoolExecutor,
               high: int | None) -> bool:
        """Replace the next blocks (as many at once as the backend writes in parallel);
        False when there were none left."""
        ctx.check_cancelled()
        entity = p["entity"]
        src = self.db.tables[entity]
        low: int | None = p.get("next", p.get("min_id"))
        blocks = []
        with self.db.connect() as conn:
            for _ in range(self.backend.parallel):
                q = (select(src.c.id).where(_within(src.c.id, low, high))
                     .order_by(src.c.id).limit(self.block).subquery())
                last, n = conn.execute(select(func.max(q.c.id), func.count())).one()
                if last is None:
                    break
                blocks.append((low, last, n))
                low = last
        if not blocks:
            return False
        only_keys = bool(p.get("keys_only"))
        for future in [pool.submit(self._replace, entity, lo, hi, only_keys)
                       for lo, hi, _ in blocks]:
            future.result()
        p["next"] = blocks[-1][1]
        p["done"] = p.get("done", 0) + sum(n for _, _, n in blocks)
        ctx.progress(p["done"], p["total"])
        return True

    def _replace(self, entity: str, low: int | None, high: int, only_keys: bool = False
                 ) -> None:
        """The documents (and sort keys) of the ids in (low, high], in one transaction."""
        doc, src = self.docs[entity], self.db.tables[entity]
        rows = _within(src.c.id, low, high)
        with self.db.begin() as conn:
            self._write_keys(conn, entity, lambda col: _within(col, low, high),
                             removed=False, low=low, high=high, block=True)
            if only_keys:
                return
            if self.backend.upserts:  # only documents of rows that are gone are removed
                # (by id, for the reason _write_keys gives)
                ids = self.backend.id_column(doc)
                gone = conn.execute(select(ids).where(and_(
                    _within(ids, low, high), ids.notin_(select(src.c.id).where(rows))))
                ).scalars().all()
                for where in _id_conditions(gone, 500):
                    self.backend.remove(conn, doc, where)
            else:
                self.backend.remove(conn, doc, lambda col: _within(col, low, high))
            self.backend.insert_from(conn, doc, rows)


def _within(col: ColumnElement[int], low: int | None, high: int | None
            ) -> ColumnElement[bool]:
    """``col`` in (low, high], open ends where None."""
    cond: ColumnElement[bool] = col.isnot(None)
    if low is not None:
        cond = cond & (col > low)
    if high is not None:
        cond = cond & (col <= high)
    return cond


def any_row(conn: Connection, table: Table) -> bool:
    return conn.execute(select(table.c.id).limit(1)).first() is not None


def _id_conditions(ids: Iterable[int] | range, max_ids: int) -> Iterable[Any]:
    """Conditions on an id column covering ``ids``: one per run of a bulk load, else lists."""
    if isinstance(ids, range):
        runs: Sequence[range] = [ids]
    elif hasattr(ids, "runs"):
        runs = list(ids.runs())
    else:
        runs = [range(i, i + 1) for i in sorted(set(ids))]
    singles: list[int] = []
    for r in runs:
        if len(r) > 2:
            yield lambda col, r=r: col.between(r.start, r.stop - 1)
        else:
            singles.extend(r)
    for i in range(0, len(singles), max_ids):
        chunk = singles[i:i + max_ids]
        yield lambda col, chunk=chunk: col.in_(chunk)


class Indexer(ChangeListener):
    """Rewrites the documents of what a unit of work changed, before it commits."""

    def __init__(self, index: SearchIndex) -> None:
        self.index = index

    def in_transaction(self, work: Work, changes: Changes) -> None:
        for entity, kind, ids in changes.groups():
            if entity in self.index.docs:
                self.index.refresh(work.conn, entity, ids, removed=kind == ChangeKind.DELETE,
                                   max_ids=work.max_ids)

