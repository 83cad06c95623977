"""What the download manager keeps: carts and their items, downloads and their statuses."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

#: The kinds of thing a cart or a download holds, as TopCat spells them.
ENTITY_TYPES = ("investigation", "dataset", "datafile")


class Status(StrEnum):
    """TopCat's statuses, and DELIVERED: every byte of the download has gone out."""

    QUEUED = "QUEUED"
    PREPARING = "PREPARING"
    RESTORING = "RESTORING"
    COMPLETE = "COMPLETE"
    EXPIRED = "EXPIRED"
    PAUSED = "PAUSED"
    DELIVERED = "DELIVERED"

    @property
    def legacy(self) -> Status:
        """What clients that know only TopCat's statuses are shown."""
        return Status.COMPLETE if self is Status.DELIVERED else self


@dataclass
class CartItem:
    id: int
    entity_type: str
    entity_id: int
    name: str
    #: What holds it: [("investigation", 1), ("dataset", 2)].
    parents: list[tuple[str, int]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "entityType": self.entity_type, "entityId": self.entity_id,
                "name": self.name,
                "parentEntities": [{"entityType": t, "entityId": i} for t, i in self.parents]}


@dataclass
class Cart:
    facility: str
    user: str
    items: list[CartItem] = field(default_factory=list)
    id: int | None = None
    created: datetime | None = None
    updated: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"facilityName": self.facility, "userName": self.user,
                               "cartItems": [i.to_json() for i in self.items]}
        if self.id is not None:
            out.update(id=self.id, createdAt=iso(self.created), updatedAt=iso(self.updated))
        return out


@dataclass
class Download:
    id: int
    facility: str
    user: str
    full_name: str | None
    transport: str
    file_name: str
    status: Status
    priority: int
    size: int
    is_two_level: bool
    created: datetime
    items: list[tuple[str, int]] = field(default_factory=list)
    prepared_id: str | None = None
    email: str | None = None
    is_email_sent: bool = False
    completed: datetime | None = None
    is_deleted: bool = False
    deleted_at: datetime | None = None
    length: int | None = None
    bytes_sent: int = 0
    delivered: datetime | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """TopCat's Download JSON (never with a session id), plus the delivery fields.
        ``status`` stays one TopCat knows; ``isDelivered`` says the rest."""
        return {
            "id": self.id, "facilityName": self.facility, "userName": self.user,
            "fullName": self.full_name, "transport": self.transport,
            "fileName": self.file_name, "preparedId": self.prepared_id, "email": self.email,
            "isEmailSent": self.is_email_sent, "status": self.status.legacy.value,
            "priority": self.priority, "size": self.size, "isTwoLevel": self.is_two_level,
            "createdAt": iso(self.created), "completedAt": iso(self.completed),
            "isDeleted": self.is_deleted, "deletedAt": iso(self.deleted_at),
            "downloadItems": [{"entityType": t, "entityId": i} for t, i in self.items],
            "isDelivered": self.status is Status.DELIVERED,
            "deliveredAt": iso(self.delivered), "bytesDelivered": self.bytes_sent,
            "length": self.length, "error": self.error}


def iso(t: datetime | None) -> str | None:
    """A stored (naive UTC) time as TopCat's JSON gives dates: ISO 8601 with the offset."""
    if t is None:
        return None
    return t.replace(tzinfo=UTC).isoformat()
