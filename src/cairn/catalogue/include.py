"""Loading related objects for INCLUDE: one query per step and batch, never one per row.

The tree of steps comes from the query compiler (:mod:`cairn.query.includes`), already checked
against the schema. Every object returned, results and included ones alike, counts against
``maxEntities`` (§1.4: "attempt to return more than N entities").

What a row becomes is the :class:`Shape`'s business: :class:`Obj` for the core and SOAP
(:data:`OBJECTS`), or a transport's own form built straight from the row (REST's JSON, see
``cairn.web.json_rows``), so a page of thousands of objects is not built twice.

One-to-many lists come back in the order icat.server's clients have learnt on MariaDB, where
InnoDB answers the lookup from the child's unique index: by the rest of the child's natural key
when that key starts with the relation back to the parent (a dataset's datafiles by name),
then by id; by id otherwise (:func:`list_order`). The database sorts, in the statement that
loads, with its own collation: the order ``ORDER BY`` gives in a query on the same backend.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sqlalchemy import ColumnElement, Select, Table, false, select

from cairn.catalogue.objects import Obj
from cairn.db.fastread import Match, Readers, fetch_in, fetch_keyed
from cairn.errors import validation
from cairn.query.includes import IncludeTree
from cairn.schema import SCHEMA, Entity, Field

if TYPE_CHECKING:
    from cairn.catalogue.work import Work

__all__ = ["OBJECTS", "IncludeTree", "Readable", "Shape", "fill", "list_order"]

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
                order = list_order(f)
                found = (_children(work, target, back, shape.idents(objs), where, read, order)
                         if order else
                         work.rows_where(target, back, shape.idents(objs), where, read))
                count(len(found))
                shape.attach_many(objs, fname, found, back)
                walk(target, found, sub)

    walk(entity, objs, tree)


@cache
def list_order(many: Field) -> tuple[str, ...]:
    """The fields that order a one-to-many list after its parent: the rest of the child's
    natural key when the key starts with the relation back to the parent (``Datafile`` is
    unique by (dataset, name): a dataset's datafiles by name), then ``id``. Empty when the
    list is by id alone (the key does not start there, or the child has none)."""
    back = SCHEMA.inverse(many).name
    key = SCHEMA.entities[many.type].key
    if len(key) < 2 or key[0] != back:
        return ()
    return (*key[1:], "id")


def _children(work: Work, entity: Entity, back: str, parents: Sequence[int],
              where: ColumnElement[bool] | None, readers: Readers,
              order: tuple[str, ...]) -> list[Any]:
    """The objects of ``entity`` whose ``back`` relation holds one of ``parents`` (and that
    meet ``where``), each parent's in ``order``: ``Work.rows_where`` with another ORDER BY.
    Batches are of parents, so a parent's children all come in one statement."""
    out: list[Any] = []
    if where is not None and where.compare(false()):
        return out
    table = work.tables[entity.name]
    keys = _columns(table)
    # The parent first: the unique index (parent, rest of the key) serves the sort.
    by = (back, *order)

    def build(match: Match) -> Select[Any]:  # with ``where``: fetch_in runs the others
        assert where is not None
        q = select(table).where(match(table.c[back]), where)
        return q.order_by(*(table.c[name] for name in by))

    for batch in work.chunks(sorted(set(parents))):
        rows, processors = fetch_in(work.conn, table, back, batch, by) if where is None \
            else fetch_keyed(work.conn, ("list", entity.name, back, by), where, build, batch,
                             work.params)
        out.extend(map(readers(entity, keys, processors), rows))
    return out


@lru_cache(maxsize=256)
def _columns(table: Table) -> tuple[str, ...]:
    """The field name of each column of ``table``, in table order (what readers are for)."""
    return tuple(c.key for c in table.columns)
