"""What every import format is read into: one :class:`Record` per object to write, whose
many-to-one fields name their objects by field values (:class:`Lookup`) or by a label given
earlier in the same file (:class:`Label`), never by database id.

icat.server's dump (:mod:`cairn.port.dumpfile`) and python-icat's XML and YAML files
(:mod:`cairn.port.icatdump`) differ only in how they spell these; the importer
(:mod:`cairn.port.importer`) writes records whatever they came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cairn.schema import Entity


@dataclass(frozen=True, slots=True)
class Label:
    """An object of ``entity`` written earlier in the same file under ``label`` (a dump's
    ``?:n`` column, python-icat's generic keys such as ``DataCollection_00000001``)."""

    entity: str
    label: str


class Lookup:
    """The one object of ``entity`` whose fields have these values. Values of many-to-one
    fields are themselves references. Hashable (the hash computed once: an import hashes
    each reference of each row), so equal lookups are resolved once."""

    __slots__ = ("_hash", "entity", "fields")

    def __init__(self, entity: str, fields: tuple[tuple[str, Any], ...]) -> None:
        self.entity = entity
        #: (field name, value) sorted by name: an attribute's Python value, or a reference.
        self.fields = fields
        self._hash = hash((entity, fields))

    @staticmethod
    def of(entity: str, values: dict[str, Any]) -> Lookup:
        return Lookup(entity, tuple(sorted(values.items())))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, Lookup) and self._hash == other._hash
                                 and self.entity == other.entity
                                 and self.fields == other.fields)

    def __repr__(self) -> str:
        return f"Lookup({self.entity!r}, {self.fields!r})"

    def describe(self) -> str:
        """As a person would name it: Dataset(investigation=Investigation(...), name='x')."""
        parts = []
        for name, value in self.fields:
            shown = describe(value) if isinstance(value, Lookup | Label) else repr(value)
            parts.append(f"{name}={shown}")
        return f"{self.entity}({', '.join(parts)})"


Ref = Lookup | Label


def describe(ref: Ref) -> str:
    return ref.describe() if isinstance(ref, Lookup) else f"{ref.entity} labelled {ref.label!r}"


@dataclass(slots=True)
class Record:
    """One object to write."""

    entity: Entity
    #: Attribute values by field name (Python values; datetimes naive in the catalogue's
    #: zone). System fields (createId, ...) appear only when the file gives them.
    values: dict[str, Any]
    #: Many-to-one fields the file gives: a reference, or None for no object.
    refs: dict[str, Ref | None]
    #: The file's name for this object, if later records may refer to it by :class:`Label`.
    label: str | None = None
    #: Where it is in the file: a line number (0 when the format has none) ...
    line: int = 0
    #: ... and how to say so in a message (" at line 12", " in Dataset_...").
    where: str = ""

    def at(self) -> str:
        return self.where or (f" at line {self.line}" if self.line else "")
