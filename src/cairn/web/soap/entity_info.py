"""getEntityInfo: the metadata python-icat builds its entity classes from.

python-icat derives class names, natural keys (``Constraint``), attribute/relation lists and
query paths from this answer, so it must match icat.server's exactly: system fields are plain
nullable ATTRIBUTEs without a length, the key is reported only when there is one, and
``Parameter`` and ``EntityBaseBean`` are accepted though neither is an entity name.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from cairn.errors import bad_parameter
from cairn.schema import SCHEMA, SYSTEM_FIELDS


@dataclass(frozen=True)
class FieldInfo:
    name: str
    rel: str  # ATTRIBUTE, ONE or MANY
    type: str  # Java simple name, or the related entity
    not_nullable: bool
    length: int | None
    comment: str | None


@dataclass(frozen=True)
class EntityInfo:
    comment: str | None
    key: tuple[str, ...]
    fields: tuple[FieldInfo, ...]  # alphabetical (icat.server's order is hash order)


_SYSTEM_TYPES = {"id": "Long", "createId": "String", "createTime": "Date", "modId": "String",
                 "modTime": "Date"}


@cache
def entity_info(name: str | None) -> EntityInfo:
    if name == "EntityBaseBean":
        return EntityInfo(None, (), tuple(
            FieldInfo(n, "ATTRIBUTE", _SYSTEM_TYPES[n], False, None, None)
            for n in sorted(SYSTEM_FIELDS)))
    entity = SCHEMA.entities.get(name or "") or SCHEMA.abstract.get(name or "")
    if entity is None:
        raise bad_parameter(f"{name} is not an ICAT entity")
    fields = []
    for f in sorted(entity.api_fields, key=lambda f: f.name):
        if f.system:
            fields.append(FieldInfo(f.name, "ATTRIBUTE", _SYSTEM_TYPES[f.name], False, None,
                                    None))
        else:
            fields.append(FieldInfo(f.name, f.rel, f.type, f.required,
                                    f.length if f.is_attribute else None, f.comment))
    return EntityInfo(entity.comment, entity.key, tuple(fields))
