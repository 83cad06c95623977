"""The catalogue: sessions, units of work, and the operations adapters call, one unit each.

:meth:`Catalogue.as_user` and :meth:`Catalogue.as_system` open a unit of work
(:class:`~cairn.catalogue.work.Work`, whose methods are the core API); every other method is
one operation in a unit of its own, for REST and SOAP. When a unit ends, the change
listeners hear what it changed (:mod:`cairn.catalogue.changes`); the first of them keeps
the rule cache of authorization true to the database.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, ParamSpec, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import Connection
from sqlalchemy import exc as sa_exc

from cairn.authn.registry import login_user
from cairn.authz import AUTHZ_ENTITIES, Access, Authorizer
from cairn.catalogue import read, trees
from cairn.catalogue.changes import ChangeListener, Changes, Listeners
from cairn.catalogue.clone import clone as clone_tree
from cairn.catalogue.include import Shape
from cairn.catalogue.objects import Obj
from cairn.catalogue.sessions import Session, SessionStore
from cairn.catalogue.work import Work
from cairn.config import Settings
from cairn.db.engine import Database, statement_limit
from cairn.errors import (
    ErrorType,
    IcatError,
    bad_parameter,
    insufficient_privileges,
    internal,
    no_such_object,
    validation,
)
from cairn.jobs import Kind, Periodic, Scheduler
from cairn.jobs.model import transient
from cairn.schema import SCHEMA, Entity

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

API_VERSION = "6.2.0"

_UNIQUE_CODES = {"23505", "1062"}  # PostgreSQL SQLSTATE, MariaDB error number


def db_error(e: sa_exc.DBAPIError) -> IcatError:
    """Map a database failure to the ICAT error a client can act on; never leak SQL."""
    orig = e.orig
    args = getattr(orig, "args", None)
    code = str(getattr(orig, "sqlstate", None) or (args[0] if args else ""))
    text = str(orig)
    if isinstance(e, sa_exc.IntegrityError) and (code in _UNIQUE_CODES or "UNIQUE" in text):
        return IcatError(ErrorType.OBJECT_ALREADY_EXISTS,
                         "An object with the same uniqueness constraint values already exists")
    if isinstance(e, sa_exc.DataError):
        return validation("A value does not fit its database column")
    if transient(e):
        log.warning("unit of work stopped by the database: %s", text)
        return ConcurrentChange()
    log.error("database error: %s", text)
    return internal("Unexpected DB response; see the server log for details")


class ConcurrentChange(IcatError):
    """The database stopped a unit to break a deadlock with a concurrent one (or to keep
    them serializable): nothing of it was written, and it may well succeed when run again."""

    def __init__(self) -> None:
        super().__init__(ErrorType.INTERNAL,
                         "The database stopped this change to resolve a conflict with a "
                         "concurrent one (a deadlock or serialization failure); nothing was "
                         "changed: try again")


#: How many times an operation runs when the database keeps stopping its unit.
ATTEMPTS = 5


def retried(operation: Callable[P, T]) -> Callable[P, T]:
    """``operation`` (one unit of work, nothing outside the database) again, after a short
    random pause, when the database stopped its unit for a concurrent one: InnoDB picks a
    victim of every deadlock, and concurrent inserts into one index deadlock there in
    ordinary use (a client's write against a background job's)."""
    @functools.wraps(operation)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        for attempt in range(1, ATTEMPTS):
            try:
                return operation(*args, **kwargs)
            except ConcurrentChange:
                log.info("%s: running it again (attempt %d)", operation.__qualname__,
                         attempt + 1)
                pause(attempt)
        return operation(*args, **kwargs)
    return run


def pause(attempt: int) -> None:
    """A random pause before attempt ``attempt + 1``, longer each time, so that the
    transactions that deadlocked do not meet again in step."""
    time.sleep(random.uniform(0, 0.02 * 2 ** attempt))


class RuleCache(ChangeListener):
    """Authorization caches rules and memberships: a unit that changed any of them (committed
    or not: it may have loaded them inside its transaction) has them read again."""

    def __init__(self, authz: Authorizer) -> None:
        self.authz = authz

    def _changed(self, changes: Changes) -> None:
        if not AUTHZ_ENTITIES.isdisjoint(changes.entities()):
            self.authz.invalidate()

    committed = rolled_back = _changed


class Catalogue:
    """ICAT's catalogue over one database: sessions, units of work, operations."""

    def __init__(self, settings: Settings, db: Database, authenticators: dict[str, Any], *,
                 jobs: Scheduler | None = None,
                 listeners: Sequence[ChangeListener] = ()) -> None:
        self.settings = settings
        self.db = db
        self.authenticators = authenticators
        self.sessions = SessionStore(db, settings.catalogue.session_lifetime_minutes,
                                     settings.catalogue.session_reuse_seconds)
        self.authz = Authorizer(db, settings.catalogue.root_users)
        self.jobs = jobs
        self.listeners = Listeners([RuleCache(self.authz), *listeners])

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

    def purge_sessions(self) -> int:
        n = self.sessions.purge_expired()
        if n:
            log.info("purged %d expired sessions", n)
        return n

    def job_kinds(self) -> list[Kind | Periodic]:
        """The catalogue's own work on the scheduler: the purge of expired sessions."""
        return [Periodic("sessions.purge",
                         float(self.settings.server.session_purge_interval_seconds),
                         self.purge_sessions)]

    def is_root(self, user: str) -> bool:
        return self.authz.is_root(user)

    @property
    def zone(self) -> ZoneInfo:
        """The zone of the catalogue's naive timestamps (how values are written and read)."""
        return self.db.zone

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

    def root_properties(self, sid: str | None) -> dict[str, str]:
        """The server's settings (icat.server's getProperties), for root users only."""
        user = self.session(sid).user
        if not self.is_root(user):
            raise insufficient_privileges("user must be in rootUserNames")
        c = self.settings.catalogue
        return {"authn.list": " ".join(self.authenticators),
                "lifetimeMinutes": str(c.session_lifetime_minutes),
                "maxEntities": str(c.max_entities),
                "maxIdsInQuery": str(c.max_ids_in_query),
                "rootUserNames": " ".join(c.root_users)}

    # -- units of work ----------------------------------------------------------------------

    def as_user(self, sid: str | None, read_only: bool = False
                ) -> AbstractContextManager[Work]:
        """A transaction for the session's user; any failure rolls all of it back.
        ``read_only`` work writes nothing and may skip the transaction (``Database.read``)."""
        def who(conn: Connection) -> tuple[str, bool]:
            user = self.sessions.get(sid, conn).user
            return user, self.authz.is_root(user)

        return self._unit(who, read_only, self.settings.catalogue.statement_timeout_seconds)

    def as_system(self, read_only: bool = False, user: str | None = None
                  ) -> AbstractContextManager[Work]:
        """A transaction of Cairn itself: no session, nothing checked (ids.server's reader,
        bulk loads, background jobs). Its writes carry ``user`` (default: the first root
        user)."""
        name = user if user is not None else next(iter(self.settings.catalogue.root_users), "")
        return self._unit(lambda conn: (name, True), read_only)

    @contextmanager
    def _unit(self, who: Callable[[Connection], tuple[str, bool]], read_only: bool,
              time_limit: float | None = None) -> Iterator[Work]:
        """A unit of work; its statements stop after ``time_limit`` seconds (a user's:
        ``[catalogue] statement_timeout_seconds``; None: the system's, unbounded)."""
        work: Work | None = None
        try:
            with statement_limit(time_limit), \
                    self.db.read() if read_only else self.db.begin() as conn:
                user, root = who(conn)
                c = self.settings.catalogue
                work = Work(conn=conn, db=self.db, user=user, now=self.db.now(),
                            max_ids=c.max_ids_in_query, root=root, authz=self.authz,
                            max_entities=c.max_entities, jobs=self.jobs, read_only=read_only)
                yield work
                if work.changes:
                    self.listeners.in_transaction(work, work.changes)
        except sa_exc.DBAPIError as e:
            self._ended(work, committed=False)
            raise db_error(e) from e
        except BaseException:
            self._ended(work, committed=False)
            raise
        self._ended(work, committed=True)

    def _ended(self, work: Work | None, committed: bool) -> None:
        if work is None:
            return
        if committed:
            if work.changes:
                self.listeners.committed(work.changes)
            if work.enqueued and self.jobs is not None:
                self.jobs.wake()
        elif work.changes:
            self.listeners.rolled_back(work.changes)

    # -- operations, one unit each -------------------------------------------------------------

    def get(self, sid: str | None, query: str, id: int, shape: Shape[Any] | None = None
            ) -> Any:
        """The object (:class:`Obj`, or what ``shape`` makes of its row) with its includes."""
        with self.as_user(sid, read_only=True) as work:
            return read.get(work, query, id, shape)

    def search(self, sid: str | None, query: str, shape: Shape[Any] | None = None
               ) -> list[Any]:
        """Entities (:class:`Obj`, or what ``shape`` makes of rows), scalars, or one list per
        row when several items are selected (§1.4)."""
        with self.as_user(sid, read_only=True) as work:
            return read.search(work, query, shape)

    def write(self, sid: str | None, objs: list[Obj]) -> list[int]:
        return self._write(sid, objs, [o for o in objs if o.id is None])

    @retried
    def _write(self, sid: str | None, objs: list[Obj], new: list[Obj]) -> list[int]:
        for o in new:  # numbered by an attempt the database stopped
            o.id = None
        with self.as_user(sid) as work:
            return work.write(objs)

    @retried
    def delete(self, sid: str | None, targets: list[tuple[Entity, int]]) -> None:
        with self.as_user(sid) as work:
            work.delete(targets)

    @retried
    def clone(self, sid: str | None, name: str, id: int, keys: dict[str, Any]) -> int:
        entity = entity_named(name)
        with self.as_user(sid) as work:
            return clone_tree(work, entity, id, keys)

    @retried
    def create_trees(self, sid: str | None, objs: list[Obj]) -> list[int]:
        """Create object trees (icat.server's createMany): see :mod:`cairn.catalogue.trees`;
        errors carry the index of their object."""
        with self.as_user(sid) as work:
            return trees.create_trees(work, objs)

    def create_tree(self, sid: str | None, obj: Obj) -> int:
        try:
            return self.create_trees(sid, [obj])[0]
        except IcatError as e:
            e.offset = -1  # a single-object call has no offset (python-icat checks for None)
            raise

    @retried
    def replace(self, sid: str | None, obj: Obj) -> None:
        """Replace every field of an object (icat.server's update)."""
        with self.as_user(sid) as work:
            trees.replace(work, obj)

    def delete_objects(self, sid: str | None, objs: list[Obj]) -> None:
        """Delete objects given by type and id, with the cascade."""
        targets = []
        for i, obj in enumerate(objs):
            if obj.id is None:
                raise no_such_object(f"{obj.entity.name} has no id", i)
            targets.append((obj.entity, obj.id))
        self.delete(sid, targets)

    def access_allowed(self, sid: str | None, obj: Obj, access: Access) -> bool:
        """Whether ``access`` to ``obj`` would be authorized (icat.server's
        isAccessAllowed). CREATE inserts the tree and rolls it back."""
        if access == Access.CREATE:
            try:
                with self.as_user(sid) as work:
                    trees.create_allowed(work, obj)
            except trees.Rollback as r:
                return r.allowed
        with self.as_user(sid, read_only=True) as work:
            return trees.allowed(work, obj, access)


def entity_named(name: str) -> Entity:
    entity = SCHEMA.get(name)
    if entity is None:
        raise bad_parameter(f"{name} is not an ICAT entity")
    return entity
