"""Everything an object takes with it: the closure over one-to-many relations.

icat.server's database has no ON DELETE CASCADE; every MANY relation is cascade=ALL in the
Java code. Cairn walks the closure itself, one query per relation and batch of ids, so a
delete (or clone) of an investigation with a million datafiles is a few hundred statements,
not a million.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import delete as sql_delete
from sqlalchemy import select

from cairn.authz import Access
from cairn.catalogue.changes import ChangeKind
from cairn.errors import IcatError, no_such_object
from cairn.schema import SCHEMA, Entity

if TYPE_CHECKING:
    from cairn.catalogue.work import Work

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


def delete(work: Work, targets: Sequence[tuple[Entity, int]]) -> None:
    """Delete each target with everything it owns; DELETE is needed on all of it. An error
    carries the index of the target it concerns."""
    for i, (entity, id) in enumerate(targets):
        try:
            if work.load_one(entity, id) is None:
                raise no_such_object(f"{entity.name}[id:{id}] not found.")
            found = closure(work, entity.name, {id})
            # The object itself first, so the message names what was asked for.
            work.check(Access.DELETE, entity.name, id)
            for name, ids in found.items():
                work.check_all(Access.DELETE, name, ids)
            delete_closure(work, found)
        except IcatError as e:
            raise e.at(i) from None


def delete_closure(work: Work, found: Closure) -> None:
    """Delete rows children-first, following the reverse of the dependency (export) order."""
    for name in reversed(SCHEMA.export_order):
        ids = found.get(name)
        if not ids:
            continue
        table = work.db.tables[name]
        ordered = sorted(ids)
        for chunk in work.chunks(ordered):
            work.conn.execute(sql_delete(table).where(table.c.id.in_(chunk)))
        work.changes.add(name, ChangeKind.DELETE, ordered)
