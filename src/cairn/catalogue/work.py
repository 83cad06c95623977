"""A unit of work: one transaction, one caller, one clock reading."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, select

from cairn.catalogue.objects import Obj
from cairn.db.engine import Database
from cairn.schema import Entity


@dataclass
class Work:
    conn: Connection
    db: Database
    user: str
    now: datetime  # naive, in the catalogue's zone, as stored
    max_ids: int  # largest IN list sent to the database in one statement
    root: bool = False
    authz_changed: bool = False  # a Rule, Grouping, UserGroup, PublicStep or User was written

    def chunks(self, ids: Iterable[int]) -> Iterator[list[int]]:
        batch: list[int] = []
        for i in ids:
            batch.append(i)
            if len(batch) >= self.max_ids:
                yield batch
                batch = []
        if batch:
            yield batch

    # -- rows <-> objects -------------------------------------------------------------------

    def to_obj(self, entity: Entity, row: Row[Any]) -> Obj:
        m = row._mapping
        obj = Obj(entity=entity, id=m["id"])
        for f in entity.attributes:
            if f.hidden:
                continue
            v = m[f.name]
            if v is not None and f.type == "Date":
                v = self.db.from_db(v)
            elif v is not None and f.type == "boolean":
                v = bool(v)
            obj.values[f.name] = v
        for f in entity.ones:
            obj.refs[f.name] = m[f.name]
        return obj

    def load(self, entity: Entity, ids: Iterable[int]) -> dict[int, Obj]:
        """Rows of one entity by id, batched; missing ids are simply absent."""
        table = self.db.tables[entity.name]
        out: dict[int, Obj] = {}
        for batch in self.chunks(sorted(set(ids))):
            for row in self.conn.execute(select(table).where(table.c.id.in_(batch))):
                out[row.id] = self.to_obj(entity, row)
        return out

    def load_one(self, entity: Entity, id: int) -> Obj | None:
        return self.load(entity, [id]).get(id)
