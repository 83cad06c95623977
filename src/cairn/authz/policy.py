"""Who may do what, answered in SQL.

A user may act on an object when they are root, when the object's type is a public table (READ
only), or when one of the rules that apply to them selects the object. A rule applies when its
grouping is empty or the user is a member, and it carries the access's letter (C, R, U, D).

Every rule's ``what`` is compiled by the query compiler into ``SELECT v.id FROM ... WHERE ...``;
"may the user see X" becomes ``X.id IN (rule 1) OR X.id IN (rule 2) ...``. The same predicate
restricts a search (pushed into its WHERE, so LIMIT, ORDER BY and COUNT stay exact), filters
INCLUDEd objects in batches, and checks single objects. An unrestricted rule (no WHERE) needs
no predicate at all.

Rules, public tables, public steps and group memberships are cached per process and reloaded
at most ``refresh_seconds`` after they were read (and at once after this process changed
them), so a revoke made through any process sharing the database holds within that time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, exists, false, literal_column, or_, select
from sqlalchemy.sql.elements import ColumnElement

from cairn.authz.access import Access
from cairn.authz.rules import RuleMeaning, compile_rule, interpret
from cairn.db.engine import Database
from cairn.errors import IcatError, insufficient_privileges
from cairn.query.compiler import USER, CompiledQuery, IdPath, now_values

log = logging.getLogger(__name__)

#: Entities whose change can change somebody's permissions.
AUTHZ_ENTITIES = frozenset({"Rule", "Grouping", "UserGroup", "PublicStep", "User"})


class Caller(Protocol):
    """The part of a unit of work authorization needs: transaction, user and clock."""

    conn: Connection
    user: str
    now: datetime


@dataclass(frozen=True)
class Rule:
    id: int
    flags: str
    grouping: int | None
    meaning: RuleMeaning
    query: CompiledQuery  # SELECT v.id FROM ... WHERE ..., :user and the clock unbound

    def condition(self, caller: Caller, id_column: ColumnElement[Any]) -> ColumnElement[bool]:
        """``EXISTS (SELECT 1 FROM <rule> WHERE v.id = <id_column> AND <rule's WHERE>)``.

        Correlated on the primary key rather than ``id IN (all ids the rule grants)``: the
        database then checks the rows at hand through indexes instead of materialising every
        granted id (a million datafiles for a "released data" rule) for each query.
        """
        q = self.query
        stmt = (select(literal_column("1")).select_from(*q.froms)
                .where(q.columns[0] == id_column, *q.where))
        values: dict[str, Any] = {}
        if USER in q.params:
            values[USER] = caller.user
        if len(q.params) > (USER in q.params):
            values.update({k: v for k, v in now_values(caller.now).items() if k in q.params})
        if values:
            stmt = stmt.params(**values)
        return exists(stmt)


@dataclass
class Snapshot:
    rules: list[Rule]
    public_tables: frozenset[str]
    public_steps: frozenset[tuple[str, str]]
    loaded: float
    memberships: dict[str, tuple[float, frozenset[int]]] = field(default_factory=dict)


class Authorizer:
    def __init__(self, db: Database, root_users: Iterable[str],
                 refresh_seconds: float = 1.0) -> None:
        self.db = db
        self.root_users = frozenset(root_users)
        self.refresh_seconds = refresh_seconds
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()

    # -- cached state -----------------------------------------------------------------------

    def is_root(self, user: str) -> bool:
        return user in self.root_users

    def invalidate(self) -> None:
        """Forget cached rules and memberships (after this process changed them)."""
        with self._lock:
            self._snapshot = None

    def _state(self, conn: Connection) -> Snapshot:
        snap = self._snapshot
        if snap is not None and time.monotonic() - snap.loaded < self.refresh_seconds:
            return snap
        snap = self._load(conn)
        with self._lock:
            self._snapshot = snap
        return snap

    def _load(self, conn: Connection) -> Snapshot:
        t = self.db.tables
        rule, step = t["Rule"], t["PublicStep"]
        rules: list[Rule] = []
        public: set[str] = set()
        for r in conn.execute(select(rule.c.id, rule.c.crudFlags, rule.c.what, rule.c.grouping)
                              .order_by(rule.c.id)):
            flags = (r.crudFlags or "").strip().upper()
            try:
                meaning = interpret(r.what, flags)
                q = compile_rule(self.db, meaning)
            except IcatError as e:  # e.g. written by another server in syntax we reject
                log.warning("ignoring Rule %s (%r): %s", r.id, r.what, e.message)
                continue
            rules.append(Rule(id=r.id, flags=flags, grouping=r.grouping, meaning=meaning,
                              query=q))
            # icat.server's public tables ignore the crud flags (quirk kept: sites rely on it).
            if r.grouping is None and not meaning.restricted:
                public.add(meaning.bean)
        steps = frozenset((s.origin, s.field) for s in
                          conn.execute(select(step.c.origin, step.c.field)))
        return Snapshot(rules=rules, public_tables=frozenset(public), public_steps=steps,
                        loaded=time.monotonic())

    def _groups(self, conn: Connection, snap: Snapshot, user: str) -> frozenset[int]:
        hit = snap.memberships.get(user)
        if hit is not None and time.monotonic() - hit[0] < self.refresh_seconds:
            return hit[1]
        t = self.db.tables
        ug, u = t["UserGroup"], t["User"]
        groups = frozenset(r[0] for r in conn.execute(
            select(ug.c.grouping).join(u, ug.c.user == u.c.id).where(u.c.name == user)))
        snap.memberships[user] = (time.monotonic(), groups)
        return groups

    # -- predicates -------------------------------------------------------------------------

    def applicable(self, conn: Connection, user: str, access: Access, bean: str,
                   attribute: str | None = None) -> list[Rule]:
        """Rules granting ``access`` to ``bean`` for ``user`` (whole-entity rules, or the
        attribute-level UPDATE rules for ``attribute``)."""
        snap = self._state(conn)
        letter = access.value[0]
        groups: frozenset[int] | None = None
        out = []
        for r in snap.rules:
            if r.meaning.bean != bean or letter not in r.flags \
                    or r.meaning.attribute != attribute:
                continue
            if r.grouping is not None:
                if groups is None:
                    groups = self._groups(conn, snap, user)
                if r.grouping not in groups:
                    continue
            out.append(r)
        return out

    def predicate(self, caller: Caller, access: Access, bean: str,
                  id_column: ColumnElement[Any], attribute: str | None = None
                  ) -> ColumnElement[bool] | None:
        """SQL condition on ``id_column`` meaning "user may <access> it"; None = no limit."""
        if self.is_root(caller.user):
            return None
        if access == Access.READ and attribute is None \
                and bean in self._state(caller.conn).public_tables:
            return None
        rules = self.applicable(caller.conn, caller.user, access, bean, attribute)
        if not rules:
            return false()
        if any(not r.meaning.restricted for r in rules):
            return None
        return or_(*(r.condition(caller, id_column) for r in rules))

    def allowed_ids(self, caller: Caller, access: Access, bean: str, ids: Iterable[int],
                    batch: int = 500, attribute: str | None = None) -> set[int]:
        """The subset of ``ids`` the caller may <access> (one query per batch)."""
        ids = sorted(set(ids))
        table = self.db.tables[bean]
        pred = self.predicate(caller, access, bean, table.c.id, attribute)
        if pred is None:
            return set(ids)
        out: set[int] = set()
        for i in range(0, len(ids), batch):
            chunk = ids[i:i + batch]
            out.update(r[0] for r in caller.conn.execute(
                select(table.c.id).where(table.c.id.in_(chunk), pred)))
        return out

    def allowed(self, caller: Caller, access: Access, bean: str, id: int | None,
                attribute: str | None = None) -> bool:
        if self.is_root(caller.user):
            return True
        if id is None:
            return False
        return bool(self.allowed_ids(caller, access, bean, [id], attribute=attribute))

    def check(self, caller: Caller, access: Access, bean: str, id: int | None) -> None:
        if not self.allowed(caller, access, bean, id):
            raise insufficient_privileges(f"{access.value} access to this {bean} is not "
                                          "allowed.")

    def check_all(self, caller: Caller, access: Access, bean: str, ids: Iterable[int],
                  batch: int = 500) -> None:
        """Every one of ``ids`` must be allowed (deletes of whole cascades, clones)."""
        ids = set(ids)
        if self.is_root(caller.user) or not ids:
            return
        if self.allowed_ids(caller, access, bean, ids, batch) != ids:
            raise insufficient_privileges(f"{access.value} access to this {bean} is not "
                                          "allowed.")

    # -- search and INCLUDE -----------------------------------------------------------------

    def search_restriction(self, caller: Caller) -> SearchRestriction:
        return SearchRestriction(self, caller)

    def free_step(self, conn: Connection, origin: str, field_name: str, target: str) -> bool:
        """An INCLUDE step needing no check: into a public table, or a PublicStep."""
        snap = self._state(conn)
        return target in snap.public_tables or (origin, field_name) in snap.public_steps


class SearchRestriction:
    """The compiler's restriction hook for one search: READ predicates per exposed id path.

    ``denied`` tells the executor that some selected entity is unreadable altogether, so the
    answer is icat.server's no-permission result.
    """

    def __init__(self, authz: Authorizer, caller: Caller) -> None:
        self.authz = authz
        self.caller = caller
        self.denied = False

    def __call__(self, path: IdPath) -> ColumnElement[bool] | None:
        pred = self.authz.predicate(self.caller, Access.READ, path.entity, path.column)
        if pred is not None and pred.compare(false()):
            self.denied = True
        return pred
