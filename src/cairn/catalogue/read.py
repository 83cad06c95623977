"""Reading: get by id and search, authorized in the statements that fetch (§1.4, §2.6)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement

from cairn.authz import Access
from cairn.catalogue.include import OBJECTS, Readable, Shape, fill
from cairn.errors import no_such_object
from cairn.query.execute import queries_for, run
from cairn.schema import Field

if TYPE_CHECKING:
    from cairn.catalogue.work import Work


def get(work: Work, query: str, id: int, shape: Shape[Any] | None = None) -> Any:
    """The object (:class:`Obj`, or what ``shape`` makes of its row) with its includes."""
    shape = shape or OBJECTS
    q = queries_for(work.db).get(query)
    found = work.rows_where(q.entity, "id", [id], readers=shape.readers(work, q.include))
    if not found:
        raise no_such_object(f"{q.entity.name}[id:{id}] not found.")
    work.check(Access.READ, q.entity.name, id)
    fill(work, q.entity, found, q.include, work.max_entities, _readable(work), shape)
    return found[0]


def search(work: Work, query: str, shape: Shape[Any] | None = None) -> list[Any]:
    """Entities (:class:`Obj`, or what ``shape`` makes of rows), scalars, or one list per row
    when several items are selected (§1.4)."""
    shape = shape or OBJECTS
    limit = work.max_entities
    q = queries_for(work.db).search(query)
    restrict = None
    if not work.root:
        assert work.authz is not None
        restrict = work.authz.search_restriction(work, q)
        for ip in q.id_paths:
            restrict(ip)
        if restrict.denied:  # some selected entity is unreadable altogether
            return [0] if q.is_count else []
    results = run(work, q, limit, restrict, shape.readers(work, q.include))
    if q.entity is not None and q.include:
        fill(work, q.entity, [o for o in results if o is not None], q.include, limit,
             _readable(work), shape)
    return results


def _readable(work: Work) -> Readable | None:
    """INCLUDE filter (§2.6): free steps pass, other objects need READ, silently."""
    if work.root:
        return None
    authz = work.authz
    assert authz is not None

    def readable(f: Field) -> ColumnElement[bool] | None:
        if authz.free_step(work.conn, f.entity, f.name, f.type):
            return None
        return authz.predicate(work, Access.READ, f.type, work.tables[f.type].c.id)

    return readable
