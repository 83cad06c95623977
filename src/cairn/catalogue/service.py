"""The catalogue operations as plain Python calls: what REST and SOAP adapters call."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy import exc as sa_exc

from cairn.authn.registry import login_user
from cairn.authz import AUTHZ_ENTITIES, Access, Authorizer
from cairn.catalogue.cascade import closure, delete_closure
from cairn.catalogue.clone import clone as clone_tree
from cairn.catalogue.include import OBJECTS, Readable, Shape, fill
from cairn.catalogue.objects import Obj
from cairn.catalogue.sessions import Session, SessionStore
from cairn.catalogue.work import Work
from cairn.catalogue.write import Writer
from cairn.config import Settings
from cairn.db.engine import Database
from cairn.errors import ErrorType, IcatError, bad_parameter, internal, no_such_object, validation
from cairn.query.execute import queries_for, run
from cairn.schema import SCHEMA, Entity, Field

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
        self.sessions = SessionStore(db, settings.catalogue.session_lifetime_minutes,
                                     settings.catalogue.session_reuse_seconds)
        self.authz = Authorizer(db, settings.catalogue.root_users)

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
    def work(self, sid: str | None, read_only: bool = False) -> Iterator[Work]:
        """A transaction for the session's user; any failure rolls all of it back.
        ``read_only`` work writes nothing and may skip the transaction (``Database.read``)."""
        work: Work | None = None
        try:
            with self.db.read() if read_only else self.db.begin() as conn:
                user = self.sessions.get(sid, conn).user
                work = Work(conn=conn, db=self.db, user=user, now=self.db.now(),
                            max_ids=self.settings.catalogue.max_ids_in_query,
                            root=self.authz.is_root(user))
                yield work
        except sa_exc.DBAPIError as e:
            raise db_error(e) from e
        finally:
            if work is not None and work.authz_changed:
                self.authz.invalidate()  # committed or not: reload rules from the database

    def _readable(self, work: Work) -> Readable | None:
        """INCLUDE filter (§2.6): free steps pass, other objects need READ, silently."""
        if work.root:
            return None

        def readable(f: Field) -> ColumnElement[bool] | None:
            if self.authz.free_step(work.conn, f.entity, f.name, f.type):
                return None
            return self.authz.predicate(work, Access.READ, f.type,
                                        self.db.tables[f.type].c.id)

        return readable

    # -- reading ----------------------------------------------------------------------------

    def get(self, sid: str | None, query: str, id: int, shape: Shape[Any] = OBJECTS) -> Any:
        """The object (:class:`Obj`, or what ``shape`` makes of its row) with its includes."""
        with self.work(sid, read_only=True) as work:
            q = queries_for(self.db).get(query)
            found = work.rows_where(q.entity, "id", [id], readers=shape.readers(work, q.include))
            if not found:
                raise no_such_object(f"{q.entity.name}[id:{id}] not found.")
            self.authz.check(work, Access.READ, q.entity.name, id)
            fill(work, q.entity, found, q.include, self.settings.catalogue.max_entities,
                 self._readable(work), shape)
            return found[0]

    def search(self, sid: str | None, query: str, shape: Shape[Any] = OBJECTS) -> list[Any]:
        """Entities (:class:`Obj`, or what ``shape`` makes of rows), scalars, or one list per
        row when several items are selected (§1.4)."""
        limit = self.settings.catalogue.max_entities
        with self.work(sid, read_only=True) as work:
            q = queries_for(self.db).search(query)
            restrict = None
            if not work.root:
                restrict = self.authz.search_restriction(work)
                for ip in q.id_paths:
                    restrict(ip)
                if restrict.denied:  # some selected entity is unreadable altogether
                    return [0] if q.is_count else []
            results = run(work, q, limit, restrict, shape.readers(work, q.include))
            if q.entity is not None and q.include:
                fill(work, q.entity, [o for o in results if o is not None], q.include, limit,
                     self._readable(work), shape)
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
                    # The object itself first, so the message names what was asked for.
                    self.authz.check(work, Access.DELETE, entity.name, id)
                    for name, ids in found.items():
                        self.authz.check_all(work, Access.DELETE, name, ids, work.max_ids)
                        if name in AUTHZ_ENTITIES:
                            work.authz_changed = True
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
