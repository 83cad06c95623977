"""Loading related objects for INCLUDE: one query per step and batch, never one per row."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import select

from cairn.catalogue.objects import Obj
from cairn.catalogue.work import Work
from cairn.errors import validation
from cairn.schema import SCHEMA, Entity


@dataclass
class IncludeTree:
    """Which relationship fields to follow from each object, recursively."""

    steps: dict[str, IncludeTree] = field(default_factory=dict)

    @staticmethod
    def all_ones(entity: Entity) -> IncludeTree:
        """``INCLUDE 1``: every many-to-one relation, one level deep."""
        return IncludeTree({f.name: IncludeTree() for f in entity.ones})

    def __bool__(self) -> bool:
        return bool(self.steps)


def fill(work: Work, entity: Entity, objs: list[Obj], tree: IncludeTree,
         max_entities: int) -> None:
    """Attach included objects to ``objs`` in place, counting every object against the limit."""
    total = len(objs)

    def count(n: int) -> None:
        nonlocal total
        total += n
        if total > max_entities:
            raise validation(f"attempt to return more than {max_entities} entities")

    def walk(entity: Entity, objs: list[Obj], tree: IncludeTree) -> None:
        for fname, sub in tree.steps.items():
            f = entity.fields[fname]
            target = SCHEMA.entities[f.type]
            if f.is_one:
                wanted = {o.refs[fname] for o in objs if o.refs.get(fname) is not None}
                loaded = work.load(target, wanted)  # type: ignore[arg-type]
                count(len(loaded))
                for o in objs:
                    ref = o.refs.get(fname)
                    o.ones[fname] = loaded.get(ref) if ref is not None else None
                walk(target, list(loaded.values()), sub)
            else:
                back = SCHEMA.inverse(f)
                table = work.db.tables[target.name]
                children: dict[int, list[Obj]] = defaultdict(list)
                found: list[Obj] = []
                parent_ids = [o.id for o in objs if o.id is not None]
                for batch in work.chunks(parent_ids):
                    rows = work.conn.execute(select(table)
                                             .where(table.c[back.name].in_(batch))
                                             .order_by(table.c.id))
                    for row in rows:
                        child = work.to_obj(target, row)
                        children[row._mapping[back.name]].append(child)
                        found.append(child)
                count(len(found))
                for o in objs:
                    o.manys[fname] = children.get(o.id or 0, [])
                walk(target, found, sub)

    walk(entity, objs, tree)
