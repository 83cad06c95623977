"""Entity instances as the core sees them, independent of JSON or XML.

Adapters parse requests into :class:`Obj` trees and render :class:`Obj` trees back. Attribute
values are Python values: ``str``, ``int``, ``float``, ``bool``, ``datetime`` and enum constant
names (``"NUMERIC"``). A naive ``datetime`` is wall-clock time in the catalogue's zone, as
stored: objects read from the database keep them so (converting each one costs more than the
rest of reading the row); renderers and writers treat naive values that way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cairn.schema import Entity


@dataclass(slots=True)
class Obj:
    """One entity instance: the values a client sent, or a row (and its includes) read back."""

    entity: Entity
    id: int | None = None
    values: dict[str, Any] = field(default_factory=dict)  # attributes, system fields included
    ones: dict[str, Obj | None] = field(default_factory=dict)  # many-to-one; None = no object
    refs: dict[str, int | None] = field(default_factory=dict)  # stored many-to-one ids
    manys: dict[str, list[Obj]] = field(default_factory=dict)  # one-to-many children

    @property
    def name(self) -> str:
        return self.entity.name

    def __repr__(self) -> str:
        return f"{self.entity.name}[id:{self.id}]"
