"""Whole-object writes: create object trees, replace an object, ask whether access is allowed.

icat.server's original (SOAP) operations differ from the entity manager's
(:meth:`Work.write`) in ways its clients rely on:

* creating a tree: objects in many-to-one fields are references (only their id counts, never
  their values), ids sent on new objects are ignored, and the CREATE permission is checked on
  the top-level object only, after its whole tree is inserted;
* replacing an object: every attribute and many-to-one field takes the value sent, and what
  was omitted becomes null (0 or false where Java has a primitive default), as a freshly
  unmarshalled object would have it; one-to-many lists and system fields are ignored;
* asking whether an access is allowed: CREATE is tried and rolled back.

Each runs in one unit of work, so any failure rolls back everything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cairn.authz import Access
from cairn.catalogue.objects import Obj
from cairn.catalogue.write import ZERO_DEFAULTS, Writer
from cairn.errors import ErrorType, IcatError, no_such_object

if TYPE_CHECKING:
    from cairn.catalogue.work import Work


def _references_only(obj: Obj) -> None:
    """Strip values from many-to-one references throughout a tree: only their ids count."""
    for name, ref in obj.ones.items():
        if ref is not None:
            obj.ones[name] = Obj(entity=ref.entity, id=ref.id)
    for children in obj.manys.values():
        for child in children:
            _references_only(child)


def create_tree(work: Work, obj: Obj) -> int:
    """Insert ``obj`` and its children; CREATE is checked on ``obj`` once all are in."""
    _references_only(obj)
    obj.id = None
    new_id = Writer(work, check_creates=False).create(obj)
    work.check(Access.CREATE, obj.entity.name, new_id)
    return new_id


def create_trees(work: Work, objs: list[Obj]) -> list[int]:
    """Ids of the top-level objects; an error carries the index of its object."""
    ids = []
    for i, obj in enumerate(objs):
        try:
            ids.append(create_tree(work, obj))
        except IcatError as e:
            raise e.at(i) from None
    return ids


def replacement(obj: Obj) -> Obj:
    """The object as a fresh unmarshalled one: every omitted attribute and relation unset."""
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


def replace(work: Work, obj: Obj) -> None:
    if obj.id is None:
        raise no_such_object(f"{obj.entity.name} has no id")
    full = replacement(obj)
    current = work.load_one(obj.entity, obj.id)
    if current is None:
        raise no_such_object(f"{obj.entity.name}[id:{obj.id}] not found.")
    # Every relation is sent; only those whose target changes are changes. Otherwise an
    # unchanged natural-key relation would count as an identity change (DELETE + CREATE).
    full.ones = {name: ref for name, ref in full.ones.items()
                 if (ref.id if ref is not None else None) != current.refs.get(name)}
    Writer(work).update(full)


class Rollback(Exception):
    """Ends the trial create of :func:`create_allowed`, whose unit must roll back."""

    def __init__(self, allowed: bool) -> None:
        self.allowed = allowed


def create_allowed(work: Work, obj: Obj) -> bool:
    """Whether creating ``obj`` would be authorized: it is created and ``Rollback`` raised,
    which the caller's unit must let roll everything back (see
    :meth:`Catalogue.access_allowed`). Only INSUFFICIENT_PRIVILEGES means no; a natural-key
    clash is still an error."""
    try:
        create_tree(work, obj)
    except IcatError as e:
        if e.type != ErrorType.INSUFFICIENT_PRIVILEGES:
            raise
        raise Rollback(False) from None
    raise Rollback(True)


def allowed(work: Work, obj: Obj, access: Access) -> bool:
    """READ, UPDATE or DELETE of an object that does not exist are simply not allowed."""
    if obj.id is None or work.load_one(obj.entity, obj.id) is None:
        return False
    return work.allowed(access, obj.entity.name, obj.id)
