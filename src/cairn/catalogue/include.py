"""Loading related objects for INCLUDE: one query per step and batch, never one per row.

The tree of steps comes from the query compiler (:mod:`cairn.query.includes`), already checked
against the schema. Every object returned, results and included ones alike, counts against
``maxEntities`` (§1.4: "attempt to return more than N entities").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from sqlalchemy import ColumnElement

from cairn.catalogue.objects import Obj
from cairn.catalogue.work import Work
from cairn.errors import validation
from cairn.query.includes import IncludeTree
from cairn.schema import SCHEMA, Entity, Field

__all__ = ["IncludeTree", "Readable", "fill"]

#: Authorization hook for included objects (§2.6): given the step followed, a condition on the
#: target table's id column that the objects the caller may see meet; None: every object is
#: visible. Loading applies it in the same statement, so unreadable objects never load.
Readable = Callable[[Field], ColumnElement[bool] | None]


def fill(work: Work, entity: Entity, objs: list[Obj], tree: IncludeTree,
         max_entities: int, readable: Readable | None = None) -> None:
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
            where = readable(f) if readable is not None else None
            if f.is_one:
                wanted = {o.refs[fname] for o in objs if o.refs.get(fname) is not None}
                loaded = work.load(target, wanted, where)  # type: ignore[arg-type]
                count(len(loaded))
                for o in objs:
                    ref = o.refs.get(fname)
                    o.ones[fname] = loaded.get(ref) if ref is not None else None
                walk(target, list(loaded.values()), sub)
            else:
                back = SCHEMA.inverse(f).name
                found = work.rows_where(target, back,
                                        (o.id for o in objs if o.id is not None), where)
                count(len(found))
                children: dict[int, list[Obj]] = defaultdict(list)
                for child in found:
                    children[child.refs[back] or 0].append(child)
                for o in objs:
                    o.manys[fname] = children.get(o.id or 0, [])
                walk(target, found, sub)

    walk(entity, objs, tree)
