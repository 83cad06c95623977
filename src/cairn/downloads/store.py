"""The download tables (cairn_0006) read and written as :mod:`cairn.downloads.model` values,
on a connection the caller holds (so a change and the jobs it requests share one transaction).

Times are naive UTC in whole seconds, as in the jobs table. Every value reaches SQL as a bound
parameter. Changes of a download are compare-and-set (:meth:`Store.update` with ``when``):
the lifecycle's jobs, the delivery tracker and the API's calls may race on one row, and the
loser learns it lost instead of overwriting the winner.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Select, delete, insert, select, update
from sqlalchemy.engine import Row

from cairn.db.tables import DownloadTables
from cairn.downloads.model import Cart, CartItem, Download, Status

#: Ids per IN list (well under every backend's bound-parameter limit).
_CHUNK = 500


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def _chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    batch: list[int] = []
    for i in ids:
        batch.append(i)
        if len(batch) == _CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def _stored(value: Any) -> Any:
    return value.value if isinstance(value, Status) else value


class Store:
    """Carts, downloads, transport switches and configuration values."""

    def __init__(self, tables: DownloadTables) -> None:
        self.t = tables

    # -- carts --------------------------------------------------------------------------------

    def cart(self, conn: Connection, facility: str, user: str) -> Cart | None:
        """The (facility, user) cart with its items in the order they were added."""
        c, i = self.t.cart, self.t.cart_item
        row = conn.execute(select(c).where(c.c.facility == facility, c.c.user == user)).first()
        if row is None:
            return None
        items = [CartItem(r.id, r.entity_type, int(r.entity_id), r.name,
                          [(t, int(n)) for t, n in json.loads(r.parents)])
                 for r in conn.execute(select(i).where(i.c.cart == row.id).order_by(i.c.id))]
        return Cart(row.facility, row.user, items, int(row.id), row.created, row.updated)

    def create_cart(self, conn: Connection, facility: str, user: str) -> Cart:
        now = utcnow()
        result = conn.execute(insert(self.t.cart).values(facility=facility, user=user,
                                                         created=now, updated=now))
        assert result.inserted_primary_key is not None
        return Cart(facility, user, [], int(result.inserted_primary_key[0]), now, now)

    def add_cart_items(self, conn: Connection, cart_id: int, items: Sequence[CartItem]) -> None:
        """Insert ``items`` (their ids are the database's); marks the cart updated."""
        if items:
            conn.execute(insert(self.t.cart_item), [
                {"cart": cart_id, "entity_type": it.entity_type, "entity_id": it.entity_id,
                 "name": it.name[:255], "parents": json.dumps([list(p) for p in it.parents])}
                for it in items])
        self.touch_cart(conn, cart_id)

    def remove_cart_items(self, conn: Connection, cart_id: int, item_ids: Iterable[int]) -> None:
        i = self.t.cart_item
        for batch in _chunks(item_ids):
            conn.execute(delete(i).where(i.c.cart == cart_id, i.c.id.in_(batch)))
        self.touch_cart(conn, cart_id)

    def touch_cart(self, conn: Connection, cart_id: int) -> None:
        c = self.t.cart
        conn.execute(update(c).where(c.c.id == cart_id).values(updated=utcnow()))

    def delete_cart(self, conn: Connection, cart_id: int) -> None:
        # Items first: SQLite enforces no foreign keys, so ON DELETE CASCADE cannot be relied on.
        conn.execute(delete(self.t.cart_item).where(self.t.cart_item.c.cart == cart_id))
        conn.execute(delete(self.t.cart).where(self.t.cart.c.id == cart_id))

    # -- downloads ----------------------------------------------------------------------------

    def insert_download(self, conn: Connection, d: Download) -> int:
        """Insert ``d`` and its items (``d.id`` is ignored); the new id."""
        values = {k: _stored(getattr(d, k)) for k in _MODEL_COLUMNS}
        result = conn.execute(insert(self.t.download).values(**values))
        assert result.inserted_primary_key is not None
        new = int(result.inserted_primary_key[0])
        if d.items:
            conn.execute(insert(self.t.download_item), [
                {"download": new, "entity_type": t, "entity_id": i} for t, i in d.items])
        return new

    def select_downloads(self) -> Select[Any]:
        """Every download row: narrow it (``where``, ``order_by``, ``limit``), then
        :meth:`downloads`."""
        return select(self.t.download)

    def downloads(self, conn: Connection, q: Select[Any]) -> list[Download]:
        """The downloads ``q`` (a narrowed :meth:`select_downloads`) finds, in its order, with
        their items."""
        rows = conn.execute(q).all()
        items = self.items(conn, [int(r.id) for r in rows])
        return [self._download(r, items.get(int(r.id), [])) for r in rows]

    def download(self, conn: Connection, download_id: int) -> Download | None:
        found = self.downloads(conn, self.select_downloads()
                               .where(self.t.download.c.id == download_id))
        return found[0] if found else None

    def custom_value(self, conn: Connection, download_id: int) -> str | None:
        """What an admin gave for the ready mail's ``${customValue}``."""
        d = self.t.download
        return conn.execute(select(d.c.custom_value).where(d.c.id == download_id)).scalar()

    def owners_and_statuses(self, conn: Connection, ids: Iterable[int]
                            ) -> dict[int, tuple[str, str, Status]]:
        """(facility, user, status) of each of ``ids`` that exists."""
        d = self.t.download
        out: dict[int, tuple[str, str, Status]] = {}
        for batch in _chunks(sorted(set(ids))):
            for r in conn.execute(select(d.c.id, d.c.facility, d.c.user, d.c.status)
                                  .where(d.c.id.in_(batch))):
                out[int(r.id)] = (r.facility, r.user, Status(r.status))
        return out

    def items(self, conn: Connection, download_ids: Sequence[int]
              ) -> dict[int, list[tuple[str, int]]]:
        i = self.t.download_item
        out: dict[int, list[tuple[str, int]]] = {}
        for batch in _chunks(download_ids):
            q = (select(i.c.download, i.c.entity_type, i.c.entity_id)
                 .where(i.c.download.in_(batch)).order_by(i.c.id))
            for r in conn.execute(q):
                out.setdefault(int(r.download), []).append((r.entity_type, int(r.entity_id)))
        return out

    def update(self, conn: Connection, download_id: int,
               when: Mapping[str, Any] | None = None, **values: Any) -> bool:
        """Set ``values`` on the download if it still matches ``when`` (column -> a value, or a
        tuple/list/set/frozenset of values any of which will do); whether it did."""
        d = self.t.download
        q = update(d).where(d.c.id == download_id)
        for column, expected in (when or {}).items():
            if isinstance(expected, (tuple, list, set, frozenset)):
                q = q.where(d.c[column].in_([_stored(v) for v in expected]))
            elif expected is None:
                q = q.where(d.c[column].is_(None))
            else:
                q = q.where(d.c[column] == _stored(expected))
        result = conn.execute(q.values({k: _stored(v) for k, v in values.items()}))
        return bool(result.rowcount)

    @staticmethod
    def _download(r: Row[Any], items: list[tuple[str, int]]) -> Download:
        return Download(
            id=int(r.id), facility=r.facility, user=r.user, full_name=r.full_name,
            transport=r.transport, file_name=r.file_name, status=Status(r.status),
            priority=int(r.priority), size=int(r.size), is_two_level=bool(r.is_two_level),
            created=r.created, items=items, prepared_id=r.prepared_id, email=r.email,
            is_email_sent=bool(r.is_email_sent), completed=r.completed,
            is_deleted=bool(r.is_deleted), deleted_at=r.deleted_at,
            length=None if r.length is None else int(r.length),
            bytes_sent=int(r.bytes_sent), delivered=r.delivered, error=r.error)

    # -- transports and configuration values ---------------------------------------------------

    def download_type(self, conn: Connection, facility: str, transport: str
                      ) -> tuple[bool, str] | None:
        """(disabled, message) as an admin last set them, or None."""
        t = self.t.download_type
        row = conn.execute(select(t.c.disabled, t.c.message)
                           .where(t.c.facility == facility, t.c.type == transport)).first()
        return None if row is None else (bool(row.disabled), row.message or "")

    def set_download_type(self, conn: Connection, facility: str, transport: str,
                          disabled: bool, message: str) -> None:
        t = self.t.download_type
        where = (t.c.facility == facility, t.c.type == transport)
        if not conn.execute(update(t).where(*where).values(disabled=disabled, message=message)
                            ).rowcount:
            conn.execute(insert(t).values(facility=facility, type=transport, disabled=disabled,
                                          message=message))

    def conf_var(self, conn: Connection, name: str) -> str | None:
        c = self.t.conf_var
        return conn.execute(select(c.c.value).where(c.c.name == name)).scalar()

    def set_conf_var(self, conn: Connection, name: str, value: str) -> None:
        c = self.t.conf_var
        if not conn.execute(update(c).where(c.c.name == name).values(value=value)).rowcount:
            conn.execute(insert(c).values(name=name, value=value))


#: Columns that are fields of :class:`Download` of the same name (all but id and items).
_MODEL_COLUMNS = ("facility", "user", "full_name", "transport", "file_name", "prepared_id",
                  "email", "is_email_sent", "status", "priority", "size", "is_two_level",
                  "created", "completed", "is_deleted", "deleted_at", "length", "bytes_sent",
                  "delivered", "error")
