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
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, and_, func, select

from cairn.catalogue.changes import ChangeKind, ChangeListener, Changes, IdRuns
from cairn.catalogue.work import Work
from cairn.db.engine import Database
from cairn.jobs import Again, Cancelled, JobContext, Kind
from cairn.search.index import INDEXED, Backend, DocTable, backend_for

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
        self.block = block
        self.slice_seconds = slice_seconds

    def ensure(self) -> list[str]:
        """Create the missing document tables; the entities whose table is new."""
        created = []
        for entity, doc in self.docs.items():
            with self.db.begin() as conn:
                if self.backend.exists(conn, doc):
                    # an index a rebuild dropped to fill the table faster, if it stopped
                    self.backend.bulk_end(conn, doc)
                    continue
                self.backend.create(conn, doc)
            created.append(entity)
        return created

    def drop_others(self) -> list[str]:
        """Drop the document tables of entities no longer indexed: nothing keeps them true,
        and indexing an entity again must start from scratch."""
        dropped = []
        for entity, fields in INDEXED.items():
            if entity in self.docs:
                continue
            doc = self.backend.doc_table(entity, fields)
            with self.db.begin() as conn:
                if self.backend.exists(conn, doc):
                    self.backend.drop(conn, doc)
                    dropped.append(entity)
        return dropped

    # -- documents ----------------------------------------------------------------------------

    def refresh(self, conn: Connection, entity: str, ids: Sequence[int] | IdRuns | range,
                *, removed: bool = False, max_ids: int = 500) -> None:
        """Rewrite (or, ``removed``, drop) the documents of ``ids`` of ``entity``."""
        doc = self.docs.get(entity)
        if doc is None:
            return
        if not removed and len(ids) >= BULK and not any_row(conn, doc.table):
            # a bulk load into an empty index: its GIN index is built once, at the end
            self.backend.bulk_start(conn, doc)
            for where in _id_conditions(ids, max_ids):
                self.backend.insert_from(conn, doc, where(self.db.tables[entity].c.id))
            self.backend.bulk_end(conn, doc)
            return
        for where in _id_conditions(ids, max_ids):
            if removed or not self.backend.upserts:
                self.backend.remove(conn, doc, where)
            if not removed:
                self.backend.insert_from(conn, doc, where(self.db.tables[entity].c.id))

    def clear(self, conn: Connection, entity: str, low: int | None = None,
              high: int | None = None) -> None:
        doc = self.docs[entity]
        if low is None and high is None:
            self.backend.empty(conn, doc)
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
        high: int | None = p.get("max_id")
        if p.get("delete") and not p.get("cleared"):
            with self.db.begin() as conn:
                self.clear(conn, entity, p.get("min_id"), high)
            p["cleared"] = True
        if "bulk" not in p:  # an empty table is filled faster without its index
            with self.db.begin() as conn:
                p["bulk"] = not any_row(conn, doc.table)
                if p["bulk"]:
                    self.backend.bulk_start(conn, doc)
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
            if p["bulk"]:  # what was filled so far stays searchable at the index's speed
                with self.db.begin() as conn:
                    self.backend.bulk_end(conn, doc)
            raise
        ctx.progress(p.get("done", 0), p["total"])  # also when this run found nothing left
        with self.db.begin() as conn:
            if p["bulk"]:
                self.backend.bulk_end(conn, doc)
            self.backend.optimize(conn, doc)
        log.info("search: %s indexed (%d documents)", entity, p.get("done", 0))
        return None

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
        for future in [pool.submit(self._replace, entity, lo, hi) for lo, hi, _ in blocks]:
            future.result()
        p["next"] = blocks[-1][1]
        p["done"] = p.get("done", 0) + sum(n for _, _, n in blocks)
        ctx.progress(p["done"], p["total"])
        return True

    def _replace(self, entity: str, low: int | None, high: int) -> None:
        """The documents of the ids in (low, high], in one transaction."""
        doc, src = self.docs[entity], self.db.tables[entity]
        rows = _within(src.c.id, low, high)
        with self.db.begin() as conn:
            if self.backend.upserts:  # only documents of rows that are gone are removed
                self.backend.remove(conn, doc, lambda col: and_(
                    _within(col, low, high), col.notin_(select(src.c.id).where(rows))))
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

