"""The DOIs Cairn has minted (CAIRN_DOI): one row each, read and written as :class:`Doi`.

Times are naive UTC in whole seconds, as in the jobs table. DOIs are kept lower-cased
(DataCite treats them case-insensitively and answers them so).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table, func, insert, select, update

from cairn.publishing.model import Kind, State


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def normalize(doi: str) -> str:
    """A DOI as stored: lower case, without a resolver in front (``https://doi.org/``)."""
    d = doi.strip()
    for front in ("https://doi.org/", "http://doi.org/", "https://dx.doi.org/", "doi:"):
        if d.lower().startswith(front):
            d = d[len(front):]
    return d.lower()


@dataclass
class Doi:
    doi: str
    kind: Kind
    state: State
    target: State
    created_by: str
    created: datetime
    updated: datetime
    subject_id: int | None = None
    publication_id: int | None = None
    concept: str | None = None
    version: int | None = None
    request: dict[str, Any] | None = None
    sent: dict[str, Any] | None = None
    error: str | None = None
    withdrawn: datetime | None = None
    reason: str | None = None
    replaced_by: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> Doi:
        m = row._mapping
        values = {f.name: m[f.name] for f in fields(cls)}
        values["kind"] = Kind(values["kind"])
        values["state"] = State(values["state"])
        values["target"] = State(values["target"])
        for k in ("request", "sent"):
            values[k] = json.loads(values[k]) if values[k] else None
        return cls(**values)

    def row(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for k in ("request", "sent"):
            out[k] = None if out[k] is None else _dumps(out[k])
        return out

    def to_json(self, landing: str) -> dict[str, Any]:
        """What the publishing API says of it."""
        out: dict[str, Any] = {
            "doi": self.doi, "kind": self.kind.value, "state": self.state.value,
            "target": self.target.value, "url": landing + self.doi,
            "createdBy": self.created_by, "created": _iso(self.created),
            "updated": _iso(self.updated)}
        if self.kind in (Kind.INVESTIGATION, Kind.INSTRUMENT):
            out["subjectId"] = self.subject_id
        if self.publication_id is not None:
            out["dataPublicationId"] = self.publication_id
        if self.concept:
            out["concept"] = self.concept
        if self.version is not None:
            out["version"] = self.version
        if self.error:
            out["error"] = self.error
        if self.withdrawn is not None:
            out.update(withdrawn=_iso(self.withdrawn), reason=self.reason,
                       replacedBy=self.replaced_by)
        return out


def _iso(t: datetime) -> str:
    return t.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


class Dois:
    """Reads and writes of CAIRN_DOI on a connection the caller holds."""

    def __init__(self, table: Table) -> None:
        self.t = table

    def get(self, conn: Connection, doi: str) -> Doi | None:
        row = conn.execute(select(self.t).where(self.t.c.doi == normalize(doi))).first()
        return None if row is None else Doi.from_row(row)

    def of_subject(self, conn: Connection, kind: Kind, subject_id: int) -> list[Doi]:
        q = (select(self.t).where(self.t.c.kind == kind.value, self.t.c.subject_id == subject_id)
             .order_by(self.t.c.version, self.t.c.doi))
        return [Doi.from_row(r) for r in conn.execute(q)]

    def of_publication(self, conn: Connection, publication_id: int) -> Doi | None:
        row = conn.execute(select(self.t).where(self.t.c.publication_id == publication_id)
                           ).first()
        return None if row is None else Doi.from_row(row)

    def versions(self, conn: Connection, concept: str) -> list[Doi]:
        """The versions named by a concept DOI, oldest first."""
        q = select(self.t).where(self.t.c.concept == concept).order_by(self.t.c.version)
        return [Doi.from_row(r) for r in conn.execute(q)]

    def all(self, conn: Connection, created_by: str | None = None,
            kinds: Iterable[Kind] | None = None) -> list[Doi]:
        q = select(self.t).order_by(self.t.c.created, self.t.c.doi)
        if created_by is not None:
            q = q.where(self.t.c.created_by == created_by)
        if kinds is not None:
            q = q.where(self.t.c.kind.in_([k.value for k in kinds]))
        return [Doi.from_row(r) for r in conn.execute(q)]

    def any(self, conn: Connection) -> bool:
        return conn.execute(select(func.count()).select_from(self.t)).scalar_one() > 0

    def insert(self, conn: Connection, d: Doi) -> None:
        conn.execute(insert(self.t).values(**d.row()))

    def set(self, conn: Connection, doi: str, **values: Any) -> None:
        for k in ("request", "sent"):
            if k in values and values[k] is not None:
                values[k] = _dumps(values[k])
        for k in ("state", "target", "kind"):
            if k in values:
                values[k] = str(values[k])
        conn.execute(update(self.t).where(self.t.c.doi == normalize(doi))
                     .values(updated=utcnow(), **values))

    def delete(self, conn: Connection, doi: str) -> None:
        conn.execute(self.t.delete().where(self.t.c.doi == normalize(doi)))
