"""Who may do what, answered in SQL.

A user may act on an object when they are root, when the object's type is a public table (READ
only), or when one of the rules that apply to them selects the object. A rule applies when its
grouping is empty or the user is a member, and it carries the access's letter (C, R, U, D).

Every rule's ``what`` is rewritten as a condition on a row of its entity (``rules.anchor``):
its own variable *is* the row being checked, so the rule's joins are correlated through that
row's foreign keys (``Datafile x JOIN x.dataset ds ...`` becomes ``EXISTS (SELECT 1 FROM
DATASET ds ... WHERE ds.ID = <row>.DATASET_ID ...)``) and a condition on the row alone
(``x.releaseDate < CURRENT_TIMESTAMP``) needs no sub-select at all. Rules reaching the same
related rows along many-to-one fields share one ``EXISTS`` over them, their own conditions
ORed inside it, cheapest first; so "may the user see this datafile" under the three rules of
a typical facility is a handful of primary-key and index lookups. The same predicate restricts
a search (pushed into its WHERE, so LIMIT, ORDER BY and COUNT stay exact), filters INCLUDEd
objects in batches, and checks single objects. An unrestricted rule (no WHERE) needs no
predicate at all. A search reading a whole table (``SELECT COUNT(o) FROM Datafile o``) gets the
same rules as sets of readable related ids instead, computed once rather than per row, where
the backend gains from it (:data:`SET_SHAPE_DIALECTS`).

Predicates are built once per exposed id column and set of rules and shared by every caller;
``:user`` and the clock stay parameters, which whoever runs a statement holding a predicate
passes from its caller (``Caller.params``), not copied into each statement.

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
from typing import Any

from sqlalchemy import Connection, exists, false, literal_column, or_, select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Join

from cairn.authz.access import Access
from cairn.authz.rules import (
    ROW,
    AnchoredRule,
    RuleMeaning,
    anchor,
    as_one_set,
    compile_rule,
    implies,
    interpret,
)
from cairn.cache import Lru
from cairn.db.engine import Database
from cairn.db.fastread import rows_keyed
from cairn.errors import IcatError, insufficient_privileges
from cairn.query.compiler import CompiledQuery, IdPath
from cairn.query.execute import Caller, queries_for
from cairn.schema import SCHEMA

log = logging.getLogger(__name__)

#: Entities whose change can change somebody's permissions.
AUTHZ_ENTITIES = frozenset({"Rule", "Grouping", "UserGroup", "PublicStep", "User"})

#: Backends whose whole-table reads get the rules as sets of readable related ids
#: (``predicate``, :func:`cairn.authz.rules.as_one_set`), measured counting ten million
#: datafiles (docs/performance.md, "Facility scale"): PostgreSQL hashes the set once and
#: scans in parallel (a correlated sub-plan forbids workers), 2.0-2.3 x root instead of
#: 4.8-5.0 x; SQLite probes an index it builds once, 2.6-4.7 x instead of 24-42 x; MariaDB
#: 1.75-1.96 x instead of 2.96-3.09 x on a quiet machine (under load the two came out alike).
SET_SHAPE_DIALECTS = frozenset({"postgresql", "sqlite", "mysql"})  # mysql: MariaDB


def reads_whole_table(q: CompiledQuery) -> bool:
    """An aggregate over every row of one entity (``SELECT COUNT(o) FROM Datafile o``): no
    join, no condition, no grouping, so nothing narrows the rows authorization must check."""
    return (q.aggregate and not q.where and not q.group_by and q.having is None
            and len(q.froms) == 1 and not isinstance(q.froms[0], Join))


@dataclass(frozen=True)
class Rule:
    id: int
    flags: str
    grouping: int | None
    meaning: RuleMeaning
    query: CompiledQuery  # SELECT v.id FROM ... WHERE ..., :user and the clock unbound
    anchored: AnchoredRule | None  # the same as a condition on a row (None: use ``query``)

    def condition(self, id_column: ColumnElement[Any]) -> ColumnElement[bool]:
        """``EXISTS (SELECT 1 FROM <rule> WHERE v.id = <id_column> AND <rule's WHERE>)``, for
        rules that cannot be anchored on the row (:func:`cairn.authz.rules.anchor`)."""
        q = self.query
        return exists(select(literal_column("1")).select_from(*q.froms)
                      .where(q.columns[0] == id_column, *q.where))


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
        # (what, flags) -> compiled rule, kept across reloads (rules rarely change)
        self._compiled: dict[tuple[str, str], tuple[RuleMeaning, CompiledQuery,
                                                    AnchoredRule | None]] = {}
        # (bean, id column, rules) -> predicate with :user and the clock unbound (the id
        # column is kept with it: the key holds its id(), valid while the column lives).
        # One per exposed id column and rule set, ~200 kB each: bounded (docs/security.md).
        # Searches of one shape share it, as their columns are the same pooled alias's.
        self._predicates: Lru[tuple[Any, ...], tuple[ColumnElement[bool],
                                                     ColumnElement[Any]]] = \
            Lru(256, "authz.predicates")
        # (origin, up, entity, down, rules) -> whether the origin's rules imply the entity's
        # (:meth:`implied`); keyed like the predicates, by the compiled rules' ids.
        self._implied: Lru[tuple[Any, ...], bool] = Lru(256, "authz.implied")

    # -- cached state -----------------------------------------------------------------------

    def is_root(self, user: str) -> bool:
        return user in self.root_users

    def invalidate(self) -> None:
        """Forget cached rules and memberships (after this process changed them)."""
        with self._lock:
            self._snapshot = None

    def snapshot(self, conn: Connection) -> Snapshot:
        """The rules as the authorizer holds them (loaded again after ``refresh_seconds``)."""
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
                meaning, q, anchored = self._compile(r.what, flags)
            except IcatError as e:  # e.g. written by another server in syntax we reject
                log.warning("ignoring Rule %s (%r): %s", r.id, r.what, e.message)
                continue
            rules.append(Rule(id=r.id, flags=flags, grouping=r.grouping, meaning=meaning,
                              query=q, anchored=anchored))
            # icat.server's public tables ignore the crud flags (quirk kept: sites rely on it).
            if r.grouping is None and not meaning.restricted:
                public.add(meaning.bean)
        steps = frozenset((s.origin, s.field) for s in
                          conn.execute(select(step.c.origin, step.c.field)))
        return Snapshot(rules=rules, public_tables=frozenset(public), public_steps=steps,
                        loaded=time.monotonic())

    def _compile(self, what: str, flags: str
                 ) -> tuple[RuleMeaning, CompiledQuery, AnchoredRule | None]:
        hit = self._compiled.get((what, flags))
        if hit is None:
            meaning = interpret(what, flags)
            hit = (meaning, compile_rule(self.db, meaning), anchor(meaning))
            with self._lock:
                if len(self._compiled) > 10_000:  # rule texts come and go: start afresh
                    self._compiled.clear()
                    self._predicates.clear()
                    self._implied.clear()
                self._compiled[(what, flags)] = hit
        return hit

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
        snap = self.snapshot(conn)
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
                  id_column: ColumnElement[Any], attribute: str | None = None,
                  whole_table: bool = False) -> ColumnElement[bool] | None:
        """SQL condition on ``id_column`` meaning "user may <access> it"; None = no limit.

        ``whole_table``: the statement reads every row of the table (a count with no other
        condition), so the rules are written as sets of readable related ids where the
        backend gains from it (:data:`SET_SHAPE_DIALECTS`, :func:`cairn.authz.rules.as_one_set`,
        :meth:`cairn.authz.rules.AnchoredRule.as_set`); the rows are the same."""
        if self.is_root(caller.user):
            return None
        if access == Access.READ and attribute is None \
                and bean in self.snapshot(caller.conn).public_tables:
            return None
        rules = self.applicable(caller.conn, caller.user, access, bean, attribute)
        if not rules:
            return false()
        if any(not r.meaning.restricted for r in rules):
            return None
        # Built once per id column and rule set, shared by every caller: binding the caller's
        # values into a copy would cost more than running most portal queries. Instead
        # ``:user`` and the clock stay parameters, given when a statement runs
        # (``caller.params``); a statement run without them fails, never leaks.
        sets = whole_table and self.db.engine.dialect.name in SET_SHAPE_DIALECTS
        key = (bean, id(id_column), sets, *(id(r.query) for r in rules))
        hit = self._predicates.get(key)
        if hit is None:
            hit = (self.rules_condition(bean, id_column, rules, sets), id_column)
            self._predicates.put(key, hit)
        return hit[0]

    def rules_condition(self, bean: str, id_column: ColumnElement[Any], rules: list[Rule],
                        sets: bool = False) -> ColumnElement[bool]:
        """Any of ``rules`` selects the ``bean`` whose id is ``id_column``.

        Each rule becomes a condition on that row (correlated through its foreign keys, no
        second copy of its table matched by id), and rules reaching the same related rows
        (``x.dataset.investigation``) share one ``EXISTS`` over those joins, so a row is
        checked with a few index lookups however many rules there are. The cheapest
        conditions come first (SQLite tries OR terms in order). ``sets``: the rules' own
        joins as sets of the related row's ids, not correlated to it (whole-table reads).
        """
        compiler = queries_for(self.db).compiler
        groups: dict[frozenset[str], list[AnchoredRule]] = {}
        parts: list[ColumnElement[bool]] = []
        for r in rules:
            if r.anchored is None:
                parts.append(r.condition(id_column))
            else:
                groups.setdefault(r.anchored.key, []).append(r.anchored)
        anchored = []
        for members in sorted(groups.values(), key=lambda m: len(m[0].shared)):
            ordered = sorted(members, key=lambda a: len(a.alternative.from_))
            one = as_one_set(ordered) if sets else None
            if one is not None:
                rc = compiler.row_condition(SCHEMA.entities[bean], id_column, ROW, (), [one])
            else:
                alternatives = [a.as_set() if sets else a.alternative for a in ordered]
                rc = compiler.row_condition(SCHEMA.entities[bean], id_column, ROW,
                                            members[0].shared, alternatives)
            anchored.append(rc.sql)
        parts[:0] = anchored
        return or_(*parts) if len(parts) > 1 else parts[0]

    def implied(self, caller: Caller, origin: str, up: tuple[str, ...], entity: str,
                down: tuple[str, ...]) -> bool:
        """Whether every row of ``entity`` that reaches the same related row as a row of
        ``origin`` the caller may read is readable too: ``origin`` reaches it along the
        many-to-one fields ``up``, ``entity`` along ``down`` (a dataset's parameters: no
        step, and ``dataset``). Exact where it says so (:func:`cairn.authz.rules.implies`);
        False where it can't tell. A statement reading such rows from readable ones then
        checks none of them (a user's facet of 4,509 dataset parameters: 9 ms on SQLite)."""
        if self.is_root(caller.user):
            return True
        public = self.snapshot(caller.conn).public_tables
        theirs = self.applicable(caller.conn, caller.user, Access.READ, entity)
        if entity in public or any(not r.meaning.restricted for r in theirs):
            return True
        ours = self.applicable(caller.conn, caller.user, Access.READ, origin)
        if origin in public or any(not r.meaning.restricted for r in ours):
            return False
        key = (origin, up, entity, down, *(id(r.query) for r in ours), None,
               *(id(r.query) for r in theirs))
        hit = self._implied.get(key)
        if hit is None:
            hit = implies([r.anchored for r in ours], up, [r.anchored for r in theirs], down)
            self._implied.put(key, hit)
        return hit

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
            # compiled once per predicate and (padded) batch length: SQLAlchemy would
            # otherwise walk the whole predicate on every check to find its cache key
            out.update(r[0] for r in rows_keyed(
                caller.conn, ("allowed", bean), pred,
                lambda match: select(table.c.id).where(match(table.c.id), pred), chunk,
                caller.params))
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

    def search_restriction(self, caller: Caller, query: CompiledQuery | None = None
                           ) -> SearchRestriction:
        """The restriction of a search for ``caller``; given the ``query``, its predicates
        take the shape that suits it (:func:`reads_whole_table`)."""
        return SearchRestriction(self, caller,
                                 whole_table=query is not None and reads_whole_table(query))

    def free_step(self, conn: Connection, origin: str, field_name: str, target: str) -> bool:
        """An INCLUDE step needing no check: into a public table, or a PublicStep."""
        snap = self.snapshot(conn)
        return target in snap.public_tables or (origin, field_name) in snap.public_steps


class SearchRestriction:
    """The compiler's restriction hook for one search: READ predicates per exposed id path.

    ``denied`` tells the executor that some selected entity is unreadable altogether, so the
    answer is icat.server's no-permission result.
    """

    def __init__(self, authz: Authorizer, caller: Caller, whole_table: bool = False) -> None:
        self.authz = authz
        self.caller = caller
        self.whole_table = whole_table
        self.denied = False

    def __call__(self, path: IdPath) -> ColumnElement[bool] | None:
        pred = self.authz.predicate(self.caller, Access.READ, path.entity, path.column,
                                    whole_table=self.whole_table)
        if pred is not None and pred.compare(false()):
            self.denied = True
        return pred
