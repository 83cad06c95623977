"""Creating catalogue objects in tests that work on the core API directly (no server)."""

from __future__ import annotations

from typing import Any

from cairn.catalogue.objects import Obj
from cairn.catalogue.service import Catalogue
from cairn.schema import SCHEMA


def create(catalogue: Catalogue, entity: str, **values: Any) -> int:
    """One ``entity`` as the system; a value ``(Entity, id)`` references an existing row."""
    ones = {k: Obj(SCHEMA.entities[v[0]], id=v[1]) for k, v in values.items()
            if isinstance(v, tuple)}
    plain = {k: v for k, v in values.items() if not isinstance(v, tuple)}
    with catalogue.as_system() as work:
        return work.create(Obj(SCHEMA.entities[entity], values=plain, ones=ones))
