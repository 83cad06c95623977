"""Who may read one object, and through which rule: authorization explained for staff.

For one row (an investigation, say) every rule about its entity is evaluated on its own, with
the row fixed, through the very SQL condition the authorizer builds for that rule
(:meth:`Authorizer._condition`), so what is shown is what is enforced:

* a rule whose ``what`` has no ``:user`` either holds for the row or not; when it holds it
  reaches everyone (no grouping) or the members of its grouping;
* a rule with ``:user`` (on the investigation, instrument scientist, ...) is run once with
  ``:user`` replaced by the name of each catalogue user (``USER_`` joined to the row), which
  yields exactly the users whose name makes it hold, narrowed to its grouping's members;
* an unrestricted rule without a grouping makes the whole entity a public table (whatever
  its crud flags, as icat.server reads them); root users may do everything.

Only users with a ``User`` row can be found through a ``:user`` rule; a person who signs in
without one is reached only by rules reaching everyone (and by being root).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, literal_column, select, true
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.sql.visitors import ExternallyTraversible, replacement_traverse

from cairn.authz.access import Access
from cairn.authz.policy import Authorizer, Rule
from cairn.db.engine import Database
from cairn.errors import no_such_object
from cairn.query.compiler import USER

#: At most this many users are listed per rule (a rule reaching a huge grouping says so).
MAX_USERS = 2000


@dataclass(frozen=True)
class Grant:
    """One rule about the entity and whom it lets ``access`` the row."""

    rule_id: int
    what: str
    flags: str
    grouping: str | None  # the grouping's name (None: the rule is for everybody)
    #: The rule makes the entity a public table (no WHERE, no grouping).
    public_table: bool
    #: The rule holds for the row.
    holds: bool
    #: It holds for every user (no ``:user`` in it, no grouping).
    everyone: bool
    #: The users it reaches when not everyone, by name.
    users: tuple[str, ...] = ()
    #: More users than :data:`MAX_USERS` were found; ``users`` are the first of them.
    truncated: bool = False
    #: Its condition depends on who asks (``:user``).
    per_user: bool = False


@dataclass(frozen=True)
class Explanation:
    bean: str
    id: int
    access: Access
    root_users: tuple[str, ...]
    #: Every rule of the entity granting ``access`` (or making it public), in id order.
    rules: tuple[Grant, ...]
    #: The entity's READ steps along which INCLUDEs need no check (PublicStep).
    public_steps: tuple[str, ...] = ()

    @property
    def granting(self) -> list[Grant]:
        return [g for g in self.rules if g.holds]

    @property
    def everyone(self) -> list[Grant]:
        """The rules that let every user at the row (the row is public through them)."""
        return [g for g in self.rules if g.holds and g.everyone]

    def by_user(self) -> dict[str, list[Grant]]:
        """Each user a rule reaches (everyone-rules aside) -> the rules that reach them."""
        out: dict[str, list[Grant]] = {}
        for g in self.rules:
            if g.holds and not g.everyone:
                for name in g.users:
                    out.setdefault(name, []).append(g)
        return dict(sorted(out.items()))


def explain(conn: Connection, db: Database, authz: Authorizer, params: Mapping[str, Any],
            bean: str, row_id: int, access: Access = Access.READ) -> Explanation:
    """Who may ``access`` the ``bean`` whose id is ``row_id``, rule by rule.

    ``params`` are the clock values of a unit of work (``Work.params``); ``:user`` among them
    is ignored. NO_SUCH_OBJECT_FOUND if there is no such row.
    """
    t = db.tables
    table = t[bean]
    if conn.execute(select(table.c.id).where(table.c.id == row_id)).first() is None:
        raise no_such_object(f"{bean}[id:{row_id}] not found")
    snap = authz.snapshot(conn)  # the rules exactly as the authorizer holds them
    letter = access.value[0]
    chosen = [r for r in snap.rules if r.meaning.bean == bean and r.meaning.attribute is None
              and (letter in r.flags or (access == Access.READ and _public(r)))]
    texts, groupings = _rule_texts(conn, db, chosen)
    clock = {k: v for k, v in params.items() if k != USER}
    grants = [_evaluate(conn, db, authz, r, table, row_id, clock, texts.get(r.id, ""),
                        groupings.get(r.grouping) if r.grouping is not None else None)
              for r in chosen]
    steps = tuple(sorted(f for o, f in snap.public_steps if o == bean)) \
        if access == Access.READ else ()
    return Explanation(bean, row_id, access, tuple(sorted(authz.root_users)), tuple(grants),
                       steps)


def _public(r: Rule) -> bool:
    """An unrestricted rule for everybody makes its entity a public table (for READ, and
    icat.server ignores its crud flags there)."""
    return r.grouping is None and not r.meaning.restricted


def _rule_texts(conn: Connection, db: Database, rules: list[Rule]
                ) -> tuple[dict[int, str], dict[int, str]]:
    """Each rule's ``what`` as written, and the names of their groupings."""
    if not rules:
        return {}, {}
    rule, grouping = db.tables["Rule"], db.tables["Grouping"]
    texts = {int(i): str(w) for i, w in conn.execute(
        select(rule.c.id, rule.c.what).where(rule.c.id.in_([r.id for r in rules])))}
    wanted = sorted({r.grouping for r in rules if r.grouping is not None})
    names = {int(i): str(n) for i, n in conn.execute(
        select(grouping.c.id, grouping.c.name).where(grouping.c.id.in_(wanted)))} \
        if wanted else {}
    return texts, names


def _evaluate(conn: Connection, db: Database, authz: Authorizer, r: Rule, table: Any,
              row_id: int, clock: Mapping[str, Any], what: str, grouping: str | None
              ) -> Grant:
    per_user = USER in r.query.params
    grant = Grant(rule_id=r.id, what=what, flags=r.flags, grouping=grouping,
                  public_table=_public(r), holds=False, everyone=False, per_user=per_user)
    if not r.meaning.restricted:
        if r.grouping is None:
            return replace(grant, holds=True, everyone=True)
        users, more = _members(conn, db, r.grouping)
        return replace(grant, holds=True, users=users, truncated=more)
    condition = authz.rules_condition(r.meaning.bean, table.c.id, [r])
    if per_user:
        users, more = _users_for(conn, db, table, row_id, condition, clock, r.grouping)
        return replace(grant, holds=bool(users), users=users, truncated=more)
    holds = conn.execute(select(literal_column("1")).select_from(table)
                         .where(table.c.id == row_id, condition).limit(1),
                         dict(clock)).first() is not None
    if not holds:
        return grant
    if r.grouping is None:
        return replace(grant, holds=True, everyone=True)
    users, more = _members(conn, db, r.grouping)
    return replace(grant, holds=True, users=users, truncated=more)


def _members(conn: Connection, db: Database, grouping: int) -> tuple[tuple[str, ...], bool]:
    ug, u = db.tables["UserGroup"], db.tables["User"]
    names = [str(n) for (n,) in conn.execute(
        select(u.c.name).select_from(ug.join(u, ug.c.user == u.c.id))
        .where(ug.c.grouping == grouping).distinct().order_by(u.c.name)
        .limit(MAX_USERS + 1))]
    return tuple(names[:MAX_USERS]), len(names) > MAX_USERS


def _users_for(conn: Connection, db: Database, table: Any, row_id: int,
               condition: ColumnElement[bool], clock: Mapping[str, Any],
               grouping: int | None) -> tuple[tuple[str, ...], bool]:
    """The users whose name, given as ``:user``, makes ``condition`` hold for the row: the
    condition with its ``:user`` parameter replaced by the name column of a copy of
    ``USER_`` joined (without condition) to the row."""
    u = db.tables["User"].alias("explained_user")

    def by_name(element: ExternallyTraversible, **kw: Any) -> ExternallyTraversible | None:
        if isinstance(element, BindParameter) and element.key == USER:
            return u.c.name
        return None

    for_user = replacement_traverse(condition, {}, by_name)
    q = (select(u.c.name).select_from(table.join(u, true()))  # every user, by design
         .where(table.c.id == row_id, for_user)
         .distinct().order_by(u.c.name).limit(MAX_USERS + 1))
    if grouping is not None:
        ug = db.tables["UserGroup"]
        q = q.where(u.c.id.in_(select(ug.c.user).where(ug.c.grouping == grouping)))
    names = [str(n) for (n,) in conn.execute(q, dict(clock))]
    return tuple(names[:MAX_USERS]), len(names) > MAX_USERS
