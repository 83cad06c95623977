"""The catalogue operations as plain Python calls: what REST and SOAP adapters call."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import select

from cairn.authn.registry import login_user
from cairn.authz import Access, Authorizer
from cairn.catalogue.cascade import closure, delete_closure
from cairn.catalogue.clone import clone as clone_tree
from cairn.catalogue.include import IncludeTree, fill
from cairn.catalogue.objects import Obj
from cairn.catalogue.sessions import Session, SessionStore
from cairn.catalogue.work import Work
from cairn.catalogue.write import Writer
from cairn.config import Settings
from cairn.db.engine import Database
from cairn.errors import ErrorType, IcatError, bad_parameter, internal, no_such_object, validation
from cairn.schema import SCHEMA, Entity

log = logging.getLogger(__name__)

API_VERSION = "6.2.0"

_UNIQUE_CODES = {"23505", "1062"}  # PostgreSQL SQLSTATE, MariaDB error number


def db_error(e: sa_exc.DBAPIError) -> IcatError:
    """Map a database failure to the ICAT error a client can act on; never leak SQL."""
    orig = e.orig
    code = str(getattr(orig, "sqlstate", None) or (orig.args[0] if getattr(orig, "args", None)
                                                   else ""))
    text = str(orig)
    if isinstance(e, sa_exc.IntegrityError) and (code in _UNIQUE_CODES or "UNIQUE" in text):
        return IcatError(ErrorType.OBJECT_ALREADY_EXISTS,
                         "An object with the same uniqueness constraint values already exists")
    if isinstance(e, sa_exc.DataError):
        return validation("A value does not fit its database column")
    log.error("database error: %s", text)
    return internal("Unexpected DB response; see the server log for details")


class Catalogue:
    """ICAT's catalogue: sessions, get/search, write, delete, clone over one database."""

    def __init__(self, settings: Settings, db: Database, authenticators: dict[str, Any]) -> None:
        self.settings = settings
        self.db = db
        self.authenticators = authenticators
        self.sessions = SessionStore(db, settings.catalogue.session_lifetime_minutes)
        self.authz = Authorizer(settings.catalogue.root_users)

    # -- sessions ---------------------------------------------------------------------------

    def login(self, mnemonic: str | None, credentials: dict[str, str], ip: str | None) -> str:
        user = login_user(self.authenticators, mnemonic, credentials, ip)
        return self.sessions.create(user)

    def session(self, sid: str | None) -> Session:
        return self.sessions.get(sid)

    def refresh(self, sid: str | None) -> None:
        self.sessions.refresh(sid)

    def logout(self, sid: str | None) -> None:
        self.sessions.logout(sid)

    def is_logged_in(self, user: str) -> bool:
        return self.sessions.is_logged_in(user)

    def properties(self) -> dict[str, Any]:
        authn = []
        for mnemonic, a in self.authenticators.items():
            entry: dict[str, Any] = {"mnemonic": mnemonic, "keys": a.keys()}
            if a.friendly:
                entry["friendly"] = a.friendly
            if a.admin:
                entry["admin"] = True
            authn.append(entry)
        return {"maxEntities": self.settings.catalogue.max_entities,
                "lifetimeMinutes": self.settings.catalogue.session_lifetime_minutes,
                "authenticators": authn, "containerType": "Glassfish"}

    # -- units of work ----------------------------------------------------------------------

    @contextmanager
    def work(self, sid: str | None) -> Iterator[Work]:
        """A transaction for the session's user; any failure rolls all of it back."""
        user = self.sessions.get(sid).user
        try:
            with self.db.begin() as conn:
                yield Work(conn=conn, db=self.db, user=user, now=self.db.now(),
                           max_ids=self.settings.catalogue.max_ids_in_query,
                           root=self.authz.is_root(user))
        except sa_exc.DBAPIError as e:
            raise db_error(e) from e

    # -- reading ----------------------------------------------------------------------------

    def get(self, sid: str | None, query: str, id: int) -> Obj:
        entity, tree = parse_simple_query(query)
        with self.work(sid) as work:
            obj = work.load_one(entity, id)
            if obj is None:
                raise no_such_object(f"{entity.name}[id:{id}] not found.")
            self.authz.check(work.user, Access.READ, entity.name, id)
            fill(work, entity, [obj], tree, self.settings.catalogue.max_entities)
            return obj

    def search(self, sid: str | None, query: str) -> list[Obj]:
        entity, tree = parse_simple_query(query)
        limit = self.settings.catalogue.max_entities
        with self.work(sid) as work:
            self.authz.check(work.user, Access.READ, entity.name, None)
            table = self.db.tables[entity.name]
            rows = work.conn.execute(select(table).order_by(table.c.id).limit(limit + 1)).all()
            if len(rows) > limit:
                raise validation(f"attempt to process more than {limit} entities")
            objs = [work.to_obj(entity, r) for r in rows]
            fill(work, entity, objs, tree, limit)
            return objs

    # -- writing ----------------------------------------------------------------------------

    def write(self, sid: str | None, objs: list[Obj]) -> list[int]:
        with self.work(sid) as work:
            return Writer(work, self.authz).write(objs)

    def delete(self, sid: str | None, targets: list[tuple[Entity, int]]) -> None:
        with self.work(sid) as work:
            for i, (entity, id) in enumerate(targets):
                try:
                    if work.load_one(entity, id) is None:
                        raise no_such_object(f"{entity.name}[id:{id}] not found.")
                    found = closure(work, entity.name, {id})
                    for name, ids in found.items():
                        for oid in ids:
                            self.authz.check(work.user, Access.DELETE, name, oid)
                    delete_closure(work, found)
                except IcatError as e:
                    raise e.at(i) from None

    def clone(self, sid: str | None, name: str, id: int, keys: dict[str, Any]) -> int:
        entity = entity_named(name)
        with self.work(sid) as work:
            return clone_tree(work, self.authz, entity, id, keys)


def entity_named(name: str) -> Entity:
    entity = SCHEMA.get(name)
    if entity is None:
        raise bad_parameter(f"{name} is not an ICAT entity")
    return entity


_SIMPLE = re.compile(r"^\s*(\w+)(?:\s+(INCLUDE)\s+1)?\s*$", re.IGNORECASE)


def parse_simple_query(query: str) -> tuple[Entity, IncludeTree]:
    """The two query forms served until the query language lands: ``T`` and ``T INCLUDE 1``."""
    m = _SIMPLE.match(query or "")
    if not m:
        raise bad_parameter(f"Only queries of the form 'Entity' or 'Entity INCLUDE 1' are "
                            f"supported by this server yet, not: {query}")
    entity = SCHEMA.lookup_ci(m.group(1))
    if entity is None:
        raise bad_parameter(f"{m.group(1)} is not an ICAT entity")
    return entity, IncludeTree.all_ones(entity) if m.group(2) else IncludeTree()
