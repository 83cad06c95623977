"""Deep copy of an object and everything it owns (REST /icat/cloner)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from cairn.authz import Access
from cairn.catalogue.cascade import closure
from cairn.catalogue.changes import ChangeKind
from cairn.catalogue.validate import check_fields, check_unique
from cairn.db import sizes
from cairn.errors import bad_parameter, no_such_object
from cairn.schema import SCHEMA, Entity

if TYPE_CHECKING:
    from cairn.catalogue.work import Work

#: Sums the database may keep (cairn.db.sizes): then a copy starts at 0 and the copies of
#: its datafiles (always copied with it) add up to the original's; copied, they would count
#: twice. Where nothing keeps them, they are copied as they are.
KEPT_SUMS = {"Dataset": {"fileSize": 0, "fileCount": 0},
             "Investigation": {"fileSize": 0, "fileCount": 0}}


def _apply_keys(entity: Entity, row: dict[str, Any], keys: dict[str, Any]) -> None:
    for name, value in keys.items():
        f = entity.field(name)
        if f is None or name not in entity.key or not f.is_attribute or f.type != "String":
            raise bad_parameter(f"{name} is not a string attribute of the uniqueness "
                                f"constraint of {entity.name} and cannot be set by clone")
        if value is not None and not isinstance(value, str):
            raise bad_parameter(f"The value for {name} must be a string")
        row[name] = value


def clone(work: Work, entity: Entity, id: int, keys: dict[str, Any]) -> int:
    """Copy ``entity[id]`` with ``keys`` applied, then every one-to-many child recursively.

    References between copied objects are redirected to the copies (a dataset's sample in a
    cloned investigation is the cloned sample); references leaving the tree are kept.
    """
    if work.load_one(entity, id) is None:
        raise no_such_object(f"{entity.name}:{id}")
    found = closure(work, entity.name, {id})
    # As icat.server: READ on every original (the source first), then copy, then CREATE on
    # every copy once the whole tree exists.
    work.check(Access.READ, entity.name, id)
    for name in SCHEMA.export_order:
        work.check_all(Access.READ, name, found.get(name, ()))
    mapping: dict[tuple[str, int], int] = {}
    created: dict[str, list[int]] = {}
    kept = KEPT_SUMS if sizes.keeper(work.conn) is not None else {}
    for name in SCHEMA.export_order:  # parents before children
        ids = found.get(name)
        if not ids:
            continue
        ent = SCHEMA.entities[name]
        table = work.db.tables[name]
        cols = [c for c in table.c if c.key != "id"]
        sums = kept.get(name, {})
        for chunk in work.chunks(sorted(ids)):
            rows = work.conn.execute(select(table).where(table.c.id.in_(chunk))
                                     .order_by(table.c.id)).all()
            originals, payload = [], []
            for r in rows:
                row = {c.key: r._mapping[c.key] for c in cols}
                for f in ent.ones:
                    ref = row[f.name]
                    if ref is not None:
                        row[f.name] = mapping.get((f.type, ref), ref)
                row.update(sums, createId=work.user, modId=work.user, createTime=work.now,
                           modTime=work.now)
                if name == entity.name and r.id == id:
                    _apply_keys(ent, row, keys)
                    check_fields(ent, row)
                    check_unique(work, ent, row, None)
                originals.append(r.id)
                payload.append(row)
            if work.db.ids.identity:
                result = work.conn.execute(
                    table.insert().returning(table.c.id, sort_by_parameter_order=True), payload)
                new_ids = [r[0] for r in result.all()]
            else:
                new_ids = [work.db.ids.next_id(work.conn) for _ in payload]
                for row, new_id in zip(payload, new_ids, strict=True):
                    row["id"] = new_id
                work.conn.execute(table.insert(), payload)
            for old, new in zip(originals, new_ids, strict=True):
                mapping[(name, old)] = new
            created.setdefault(name, []).extend(new_ids)
            work.changes.add(name, ChangeKind.CREATE, new_ids)
    for name in SCHEMA.export_order:
        work.check_all(Access.CREATE, name, created.get(name, ()))
    return mapping[(entity.name, id)]
