"""Loading related objects for INCLUDE: one query per step and batch, never one per row.

The tree of steps comes from the query compiler (:mod:`cairn.query.includes`), already checked
against the schema. Every object returned, results and included ones alike, counts against
``maxEntities`` (§1.4: "attempt to return more than N entities").

What a row becomes is the :class:`Shape`'s business: :class:`Obj` for the core and SOAP
(:data:`OBJECTS`), or a transport's own form built straight from the row (REST's JSON, see
``cairn.web.json_rows``), so a page of thousands of objects is not built twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sqlalchemy import ColumnElement

from cairn.catalogue.objects import Obj
from cairn.db.fastread import Readers
from cairn.errors import validation
from cairn.query.includes import IncludeTree
from cairn.schema import SCHEMA, Entity, Field

if TYPE_CHECKING:
    from cairn.catalogue.work import Work

__all__ = ["OBJECTS", "IncludeTree", "Readable", "Shape", "fill"]

N = TypeVar("N", contravariant=True)  # the protocol only takes nodes

#: Authorization hook for included objects (§2.6): given the step followed, a condition on the
#: target table's id column that the objects the caller may see meet; None: every object is
#: visible. Loading applies it in the same statement, so unreadable objects never load.
Readable = Callable[[Field], ColumnElement[bool] | None]


class Shape(Protocol[N]):
    """What rows become, and how included objects are attached to them. Every operation
    takes a whole step's objects at once: a page can include thousands."""

    def readers(self, work: Work, tree: IncludeTree) -> Readers:
        """Row readers for objects whose own includes are ``tree``."""
        ...

    def idents(self, nodes: Sequence[N]) -> list[int]:
        """The id of each object."""
        ...

    def refs(self, nodes: Sequence[N], field: str) -> set[int]:
        """The stored ids of a many-to-one relation, without nulls."""
        ...

    def attach_one(self, parents: Sequence[N], field: str, loaded: Sequence[N]) -> None:
        """Set ``field`` of every parent to its object among ``loaded`` (complete by now), or
        to nothing when its object is not there (none, or not readable)."""
        ...

    def attach_many(self, parents: Sequence[N], field: str, children: Sequence[N], back: str
                    ) -> None:
        """Set ``field`` of every parent to its children (those whose ``back`` relation holds
        the parent's id, in the order given), empty if none."""
        ...


class ObjShape:
    """Rows as :class:`Obj`, the core's form."""

    def readers(self, work: Work, tree: IncludeTree) -> Readers:
        return work.reader

    def idents(self, nodes: Sequence[Obj]) -> list[int]:
        return [o.id for o in nodes]  # type: ignore[misc]

    def refs(self, nodes: Sequence[Obj], field: str) -> set[int]:
        return {r for o in nodes if (r := o.refs.get(field)) is not None}

    def attach_one(self, parents: Sequence[Obj], field: str, loaded: Sequence[Obj]) -> None:
        by_id = {o.id: o for o in loaded}
        for o in parents:
            ref = o.refs.get(field)
            o.ones[field] = by_id.get(ref) if ref is not None else None

    def attach_many(self, parents: Sequence[Obj], field: str, children: Sequence[Obj],
                    back: str) -> None:
        groups: dict[int | None, list[Obj]] = defaultdict(list)
        for c in children:
            groups[c.refs.get(back)].append(c)
        for o in parents:
            o.manys[field] = groups.get(o.id, [])


OBJECTS = ObjShape()


def fill(work: Work, entity: Entity, objs: Sequence[Any], tree: IncludeTree,
         max_entities: int, readable: Readable | None = None, shape: Shape[Any] = OBJECTS
         ) -> None:
    """Attach included objects to ``objs`` (of ``shape``) in place, counting every object
    against the limit."""
    total = len(objs)

    def count(n: int) -> None:
        nonlocal total
        total += n
        if total > max_entities:
            raise validation(f"attempt to return more than {max_entities} entities")

    def walk(entity: Entity, objs: Sequence[Any], tree: IncludeTree) -> None:
        for fname, sub in tree.steps.items():
            f = entity.fields[fname]
            target = SCHEMA.entities[f.type]
            where = readable(f) if readable is not None else None
            read = shape.readers(work, sub)
            if f.is_one:
                found = work.rows_where(target, "id", shape.refs(objs, fname), where, read)
                count(len(found))
                walk(target, found, sub)  # first: a shape may seal a finished object
                shape.attach_one(objs, fname, found)
            else:
                back = SCHEMA.inverse(f).name
                found = work.rows_where(target, back, shape.idents(objs), where, read)
                count(len(found))
                shape.attach_many(objs, fname, found, back)
                walk(target, found, sub)

    walk(entity, objs, tree)
