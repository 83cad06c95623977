"""Carts: what a user has picked for a download, one per (facility, owner), kept as TopCat
keeps them (an item per investigation, dataset or datafile, with its name and parents).

The owner is the user, except for the anonymous user, whose carts are per session: the owner
is then ``<anon user>/<hash of the session id>``. TopCat stores the session id itself there,
which puts a live credential in every cart and download row and in their JSON; a hash keeps
the carts apart without that.

A cart never holds an item together with one of its parents: adding an entity removes the
items it holds, and an entity whose parent is already in the cart is not added. Names and
parents are read through the core API in the caller's unit of work, so an entity the caller
may not read, or that does not exist, is refused with the catalogue's own error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from cairn.catalogue.work import Work
from cairn.downloads.items import Removal
from cairn.downloads.model import Cart, CartItem
from cairn.downloads.store import Store
from cairn.errors import no_such_object
from cairn.schema import SCHEMA

_ENTITIES = {"investigation": SCHEMA.entities["Investigation"],
             "dataset": SCHEMA.entities["Dataset"],
             "datafile": SCHEMA.entities["Datafile"]}


def owner_of(user: str, session_id: str, anon_user: str) -> str:
    """Who owns the caller's carts and downloads (see the module's docstring)."""
    if user != anon_user:
        return user
    digest = hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{anon_user}/{digest[:32]}"


class Carts:
    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, work: Work, facility: str, owner: str) -> Cart:
        """The cart, or an empty one (not stored) when there is none."""
        return self.store.cart(work.conn, facility, owner) or Cart(facility, owner)

    def add(self, work: Work, facility: str, owner: str, pairs: list[tuple[str, int]]
            ) -> Cart:
        conn = work.conn
        cart = self.store.cart(conn, facility, owner)
        have = {(i.entity_type, i.entity_id) for i in cart.items} if cart else set()
        wanted = [p for p in dict.fromkeys(pairs) if p not in have]
        if not wanted:
            return cart or Cart(facility, owner)
        new = describe(work, wanted)
        # Every investigation and dataset the cart will hold covers what lies inside it.
        holders = have | {(i.entity_type, i.entity_id) for i in new}
        new = [i for i in new if not holders.intersection(i.parents)]
        added = {(i.entity_type, i.entity_id) for i in new}
        if cart is None:
            if not new:
                return Cart(facility, owner)
            cart = self.store.create_cart(conn, facility, owner)
        covered = [i.id for i in cart.items if added.intersection(i.parents)]
        if covered:
            self.store.remove_cart_items(conn, cart.id, covered)  # type: ignore[arg-type]
        self.store.add_cart_items(conn, cart.id, new)  # type: ignore[arg-type]
        return self.get(work, facility, owner)

    def remove(self, work: Work, facility: str, owner: str, removal: Removal) -> Cart:
        conn = work.conn
        cart = self.store.cart(conn, facility, owner)
        if cart is None:
            return Cart(facility, owner)
        assert cart.id is not None
        pairs, ids = set(removal.pairs), set(removal.item_ids)
        gone = [i.id for i in cart.items
                if removal.all or i.id in ids or (i.entity_type, i.entity_id) in pairs]
        if len(gone) == len(cart.items):
            self.store.delete_cart(conn, cart.id)
            return Cart(facility, owner)
        if gone:
            self.store.remove_cart_items(conn, cart.id, gone)
        return self.get(work, facility, owner)

    def take(self, work: Work, facility: str, owner: str) -> Cart | None:
        """The cart, deleted (a submit empties it), or None when there is none."""
        cart = self.store.cart(work.conn, facility, owner)
        if cart is not None:
            assert cart.id is not None
            self.store.delete_cart(work.conn, cart.id)
        return cart


def describe(work: Work, pairs: Iterable[tuple[str, int]]) -> list[CartItem]:
    """Cart items (id 0: not stored yet) for ``pairs``, in their order, with names and
    parents; NO_SUCH_OBJECT_FOUND for an entity that does not exist and
    INSUFFICIENT_PRIVILEGES for one the caller may not read."""
    pairs = list(pairs)
    rows = {}
    for kind, entity in _ENTITIES.items():
        ids = [i for t, i in pairs if t == kind]
        if not ids:
            continue
        found = work.load(entity, ids)
        for i in ids:
            if i not in found:
                raise no_such_object(f"{entity.name}[id:{i}] not found.")
        work.require_readable(entity.name, ids)
        rows.update({(kind, i): o for i, o in found.items()})
    # A datafile's investigation is its dataset's.
    dataset_ids = {o.refs.get("dataset") for (t, _), o in rows.items() if t == "datafile"}
    datasets = work.load(_ENTITIES["dataset"], [i for i in dataset_ids if i is not None])
    out = []
    for kind, i in pairs:
        o = rows[(kind, i)]
        parents: list[tuple[str, int]] = []
        if kind == "dataset" and o.refs.get("investigation") is not None:
            parents = [("investigation", int(o.refs["investigation"]))]  # type: ignore[arg-type]
        elif kind == "datafile" and (ds := o.refs.get("dataset")) is not None:
            inv = datasets[ds].refs.get("investigation") if ds in datasets else None
            parents = ([("investigation", int(inv))] if inv is not None else []) + \
                [("dataset", int(ds))]
        out.append(CartItem(0, kind, i, str(o.values.get("name") or ""), parents))
    return out
