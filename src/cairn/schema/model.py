"""Typed view of the entity declaration in ``icat.json``.

The declaration lists, per entity, only what is not implied by icat.server's naming rules:
table = entity name upper-cased, column = field name upper-cased, foreign-key column = field
name upper-cased + ``_ID``, string length 255. ``since``/``before`` record the schema history
so migrations can build any earlier version of the model from the same declaration.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from typing import Any, Literal

ATTRIBUTE = "ATTRIBUTE"
ONE = "ONE"
MANY = "MANY"
RelType = Literal["ATTRIBUTE", "ONE", "MANY"]

#: Fields every entity inherits from icat.server's EntityBaseBean, in rendering order.
SYSTEM_FIELDS = ("id", "createId", "createTime", "modId", "modTime")
SYSTEM_COLUMNS = {"id": "ID", "createId": "CREATE_ID", "createTime": "CREATE_TIME",
                  "modId": "MOD_ID", "modTime": "MOD_TIME"}

ATTRIBUTE_TYPES = ("String", "Date", "Long", "Integer", "Double", "boolean",
                   "ParameterValueType", "StudyStatus")


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


@dataclass(frozen=True)
class Field:
    """One field of an entity: an attribute, a many-to-one (ONE) or a one-to-many (MANY)."""

    entity: str
    name: str
    rel: RelType
    type: str  # attribute type name, or the related entity's name
    required: bool = False
    length: int | None = None  # strings only
    column: str | None = None  # ATTRIBUTE and ONE only
    quoted: bool = False  # the column name is a delimited identifier (Shift."COMMENT")
    mapped_by: str | None = None  # MANY only: the ONE field of the child pointing back
    comment: str | None = None
    hidden: bool = False  # stored but never part of the API (Rule's derived columns)
    system: bool = False
    since: str | None = None

    @property
    def is_attribute(self) -> bool:
        return self.rel == ATTRIBUTE

    @property
    def is_one(self) -> bool:
        return self.rel == ONE

    @property
    def is_many(self) -> bool:
        return self.rel == MANY


@dataclass(frozen=True)
class Entity:
    name: str
    table: str
    fields: dict[str, Field]  # own and inherited, system fields first, then alphabetical
    key: tuple[str, ...] = ()
    comment: str | None = None
    abstract: bool = False
    extends: str | None = None
    since: str | None = None

    @cached_property
    def attributes(self) -> list[Field]:
        """Visible and hidden attributes, system fields included."""
        return [f for f in self.fields.values() if f.is_attribute]

    @cached_property
    def ones(self) -> list[Field]:
        return [f for f in self.fields.values() if f.is_one]

    @cached_property
    def manys(self) -> list[Field]:
        return [f for f in self.fields.values() if f.is_many]

    @cached_property
    def api_fields(self) -> list[Field]:
        """Fields a client sees, in icat.server's JSON order: system fields, then alphabetical."""
        return [f for f in self.fields.values() if not f.hidden]

    def field(self, name: str) -> Field | None:
        f = self.fields.get(name)
        return None if f is None or f.hidden else f


@dataclass
class Schema:
    version: str
    entities: dict[str, Entity]  # concrete entities, alphabetical (getEntityNames order)
    abstract: dict[str, Entity]  # Parameter
    enums: dict[str, list[str]]
    export_order: list[str]
    _ci: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._ci = {n.lower(): n for n in self.entities}

    @property
    def entity_names(self) -> list[str]:
        return list(self.entities)

    def get(self, name: str) -> Entity | None:
        return self.entities.get(name)

    def lookup_ci(self, name: str) -> Entity | None:
        """Find an entity by name ignoring case (the query language allows that)."""
        real = self._ci.get(name.lower())
        return self.entities[real] if real else None

    def inverse(self, many: Field) -> Field:
        """The ONE field on the child that a MANY field is mapped by."""
        assert many.mapped_by is not None
        return self.entities[many.type].fields[many.mapped_by]

    def at_version(self, version: str) -> Schema:
        """The model as it was at an earlier ICAT version (for migrations)."""
        return _build(_RAW, version)


def _field(entity: str, name: str, raw: dict[str, Any]) -> Field:
    if "one" in raw:
        rel: RelType = "ONE"
        typ = raw["one"]
        column = raw.get("column", name.upper() + "_ID")
    elif "many" in raw:
        rel, typ, column = "MANY", raw["many"], None
    else:
        rel, typ = "ATTRIBUTE", raw["type"]
        if typ not in ATTRIBUTE_TYPES:
            raise ValueError(f"{entity}.{name}: unknown type {typ}")
        column = raw.get("column", name.upper())
    length = raw.get("length", 255) if typ == "String" and rel == ATTRIBUTE else None
    return Field(entity=entity, name=name, rel=rel, type=typ, required=raw.get("required", False),
                 length=length, column=column, quoted=raw.get("quoted", False),
                 mapped_by=raw.get("mappedBy"), comment=raw.get("comment"),
                 hidden=raw.get("hidden", False), since=raw.get("since"))


def _system_fields(entity: str) -> dict[str, Field]:
    types = {"id": "Long", "createId": "String", "createTime": "Date", "modId": "String",
             "modTime": "Date"}
    return {n: Field(entity=entity, name=n, rel="ATTRIBUTE", type=types[n],
                     required=n != "id", length=255 if types[n] == "String" else None,
                     column=SYSTEM_COLUMNS[n], system=True) for n in SYSTEM_FIELDS}


def _exists_at(item: dict[str, Any], version: str | None) -> bool:
    return version is None or "since" not in item or \
        version_key(item["since"]) <= version_key(version)


def _as_of(raw: dict[str, Any], version: str | None) -> dict[str, Any]:
    """Apply the ``before`` overrides that were in force at ``version``."""
    if version is None or "before" not in raw:
        return raw
    out = dict(raw)
    for changed_in, old in sorted(raw["before"].items(), key=lambda kv: version_key(kv[0])):
        if version_key(version) < version_key(changed_in):
            out.update(old)
            break
    return out


def _build(raw: dict[str, Any], version: str | None = None) -> Schema:
    decls = raw["entities"]
    concrete: dict[str, Entity] = {}
    abstract: dict[str, Entity] = {}
    for name in sorted(decls):
        d = decls[name]
        if not _exists_at(d, version):
            continue
        own: dict[str, Any] = {}
        if "extends" in d:
            own.update(decls[d["extends"]]["fields"])
        own.update(d["fields"])
        fields = _system_fields(name)
        for fname in sorted(own):
            fraw = own[fname]
            if not _exists_at(fraw, version):
                continue
            if fraw.get("many") and not _exists_at(decls[fraw["many"]], version):
                continue
            fields[fname] = _field(name, fname, _as_of(fraw, version))
        entity = Entity(name=name, table=d.get("table", name.upper()), fields=fields,
                        key=tuple(d.get("key", ())), comment=d.get("comment"),
                        abstract=d.get("abstract", False), extends=d.get("extends"),
                        since=d.get("since"))
        (abstract if entity.abstract else concrete)[name] = entity
    order = [n for n in raw["exportOrder"] if n in concrete]
    return Schema(version=version or raw["version"], entities=concrete, abstract=abstract,
                  enums=raw["enums"], export_order=order)


_RAW: dict[str, Any] = json.loads(
    resources.files("cairn.schema").joinpath("icat.json").read_text(encoding="utf-8"))


def load_schema() -> Schema:
    return _build(_RAW)
