"""Write operations with the semantics of icat.server's SOAP interface.

They differ from the REST entity manager (:meth:`Catalogue.write`) where icat.server's do:

* ``create``/``createMany`` create whole object trees; objects in ONE fields are references
  (only their id counts, never their values), ids sent on new objects are ignored, and the
  CREATE permission is checked on the top-level object only, after its tree is inserted.
* ``update`` replaces: every attribute and many-to-one field takes the value sent, and what
  was omitted becomes null (0 or false where Java has a primitive default), as a fresh JAXB
  object would have it. MANY lists and system fields are ignored.
* ``isAccessAllowed`` answers a permission question; CREATE is tried and rolled back.

All of them run in one unit of work of :class:`Catalogue`, so any failure rolls back everything.
"""

from __future__ import annotations

from typing import Any

from cairn.authz import Access, Authorizer, Caller
from cairn.catalogue.objects import Obj
from cairn.catalogue.service import Catalogue
from cairn.catalogue.work import Work
from cairn.catalogue.write import ZERO_DEFAULTS, Writer
from cairn.errors import ErrorType, IcatError, no_such_object


class _TopLevelCreateCheck:
    """An authorizer that lets nested creates through, so only the tree's root is checked."""

    def __init__(self, inner: Authorizer) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def check(self, caller: Caller, access: Access, entity: str, id: int | None) -> None:
        if access != Access.CREATE:
            self._inner.check(caller, access, entity, id)


def _references_only(obj: Obj) -> None:
    """Strip values from ONE references throughout a tree: SOAP uses only their ids."""
    for name, ref in obj.ones.items():
        if ref is not None:
            obj.ones[name] = Obj(entity=ref.entity, id=ref.id)
    for children in obj.manys.values():
        for child in children:
            _references_only(child)


def _create(work: Work, authz: Authorizer, obj: Obj) -> int:
    _references_only(obj)
    obj.id = None
    writer = Writer(work, _TopLevelCreateCheck(authz))  # type: ignore[arg-type]
    new_id = writer.create(obj)
    authz.check(work, Access.CREATE, obj.entity.name, new_id)
    return new_id


def create_many(cat: Catalogue, sid: str | None, objs: list[Obj]) -> list[int]:
    """SOAP ``create``/``createMany``: ids of the top-level objects; errors carry the index."""
    with cat.work(sid) as work:
        ids = []
        for i, obj in enumerate(objs):
            try:
                ids.append(_create(work, cat.authz, obj))
            except IcatError as e:
                raise e.at(i) from None
        return ids


def create(cat: Catalogue, sid: str | None, obj: Obj) -> int:
    try:
        return create_many(cat, sid, [obj])[0]
    except IcatError as e:
        e.offset = -1  # a single-object call has no offset (python-icat checks for None)
        raise


def replacement(obj: Obj) -> Obj:
    """The object as JAXB would unmarshal it: every omitted attribute and relation is unset."""
    entity = obj.entity
    out = Obj(entity=entity, id=obj.id)
    for f in entity.attributes:
        if f.system or f.hidden:
            continue
        if f.name in obj.values:
            out.values[f.name] = obj.values[f.name]
        elif (entity.name, f.name) in ZERO_DEFAULTS:
            out.values[f.name] = 0
        elif f.type == "boolean":
            out.values[f.name] = False
        else:
            out.values[f.name] = None
    for f in entity.ones:
        ref = obj.ones.get(f.name)
        out.ones[f.name] = None if ref is None else Obj(entity=ref.entity, id=ref.id)
    return out


def update(cat: Catalogue, sid: str | None, obj: Obj) -> None:
    if obj.id is None:
        raise no_such_object(f"{obj.entity.name} has no id")
    with cat.work(sid) as work:
        full = replacement(obj)
        current = work.load_one(obj.entity, obj.id)
        if current is None:
            raise no_such_object(f"{obj.entity.name}[id:{obj.id}] not found.")
        # Every relation is sent; only those whose target changes are changes. Otherwise an
        # unchanged natural-key relation would count as an identity change (DELETE + CREATE).
        full.ones = {name: ref for name, ref in full.ones.items()
                     if (ref.id if ref is not None else None) != current.refs.get(name)}
        Writer(work, cat.authz).update(full)


def delete_many(cat: Catalogue, sid: str | None, objs: list[Obj]) -> None:
    """SOAP ``delete``/``deleteMany``: by id and type, with the cascade."""
    targets = []
    for i, obj in enumerate(objs):
        if obj.id is None:
            raise no_such_object(f"{obj.entity.name} has no id", i)
        targets.append((obj.entity, obj.id))
    cat.delete(sid, targets)


class _Rollback(Exception):
    def __init__(self, allowed: bool) -> None:
        self.allowed = allowed


def is_access_allowed(cat: Catalogue, sid: str | None, obj: Obj, access: Access) -> bool:
    """Whether ``access`` to ``obj`` would be authorized.

    CREATE inserts the tree and rolls it back, so a natural-key clash is still a fault. READ,
    UPDATE and DELETE of an object that does not exist are simply not allowed. Only
    INSUFFICIENT_PRIVILEGES becomes ``False``; every other error is raised.
    """
    if access == Access.CREATE:
        try:
            with cat.work(sid) as work:
                try:
                    _create(work, cat.authz, obj)
                except IcatError as e:
                    if e.type != ErrorType.INSUFFICIENT_PRIVILEGES:
                        raise
                    raise _Rollback(False) from None
                raise _Rollback(True)
        except _Rollback as r:
            return r.allowed
    with cat.work(sid) as work:
        if obj.id is None or work.load_one(obj.entity, obj.id) is None:
            return False
        return cat.authz.allowed(work, access, obj.entity.name, obj.id)
