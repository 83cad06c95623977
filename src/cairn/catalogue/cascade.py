"""Everything an object takes with it: the closure over one-to-many relations.

icat.server's database has no ON DELETE CASCADE; every MANY relation is cascade=ALL in the
Java code. Cairn walks the closure itself, one query per relation and batch of ids, so a
delete (or clone) of an investigation with a million datafiles is a few hundred statements,
not a million.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import delete, select

from cairn.catalogue.work import Work
from cairn.schema import SCHEMA

Closure = dict[str, set[int]]


def closure(work: Work, entity: str, ids: set[int]) -> Closure:
    """All (entity, ids) reachable from the given objects through MANY fields, roots included."""
    found: Closure = defaultdict(set)
    frontier: dict[str, set[int]] = {entity: set(ids)}
    while frontier:
        nxt: dict[str, set[int]] = defaultdict(set)
        for name, batch_ids in frontier.items():
            new = batch_ids - found[name]
            if not new:
                continue
            found[name] |= new
            for many in SCHEMA.entities[name].manys:
                child = SCHEMA.entities[many.type]
                table = work.db.tables[child.name]
                back = table.c[SCHEMA.inverse(many).name]
                for chunk in work.chunks(new):
                    for (cid,) in work.conn.execute(select(table.c.id).where(back.in_(chunk))):
                        nxt[child.name].add(cid)
        frontier = {k: v - found[k] for k, v in nxt.items() if v - found[k]}
    return {k: v for k, v in found.items() if v}


def delete_closure(work: Work, found: Closure) -> None:
    """Delete rows children-first, following the reverse of the dependency (export) order."""
    for name in reversed(SCHEMA.export_order):
        ids = found.get(name)
        if not ids:
            continue
        table = work.db.tables[name]
        for chunk in work.chunks(sorted(ids)):
            work.conn.execute(delete(table).where(table.c.id.in_(chunk)))
