"""The catalogue operations as plain Python calls: what REST and SOAP adapters call."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import exc as sa_exc

from cairn.authn.registry import login_user
from cairn.authz import Access, Authorizer
from cairn.catalogue.cascade import closure, delete_closure
from cairn.catalogue.clone import clone as clone_tree
from cairn.catalogue.include import fill
from cairn.catalogue.objects import Obj
from cairn.catalogue.sessions import Session, SessionStore
from cairn.catalogue.work import Work
from cairn.catalogue.write import Writer
from cairn.config import Settings
from cairn.db.engine import Database
from cairn.errors import ErrorType, IcatError, bad_parameter, internal, no_such_object, validation
from cairn.query.execute import queries_for, run
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
        with self.work(sid) as work:
            q = queries_for(self.db).get(query)
            obj = work.load_one(q.entity, id)
            if obj is None:
                raise no_such_object(f"{q.entity.name}[id:{id}] not found.")
            self.authz.check(work.user, Access.READ, q.entity.name, id)
            fill(work, q.entity, [obj], q.include, self.settings.catalogue.max_entities)
            return obj

    def search(self, sid: str | None, query: str) -> list[Any]:
        """Entities (:class:`Obj`), scalars, or one list per row when several items are
        selected (§1.4)."""
        limit = self.settings.catalogue.max_entities
        with self.work(sid) as work:
            q = queries_for(self.db).search(query)
            for entity in {ip.entity for ip in q.id_paths} or {q.root_entity}:
                self.authz.check(work.user, Access.READ, entity, None)
            results = run(work, q, limit)
            if q.entity is not None and q.include:
                fill(work, q.entity, [o for o in results if o is not None], q.include, limit)
            return results

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
