"""Conditions on a parameter type, looked up before the search that joins it runs.

A parameter filter (``JOIN ds.parameters p JOIN p.type t WHERE t.name = 'temperature' AND
p.numericValue BETWEEN 15 AND 22``) is selective only through the type, and a planner cannot
see that when the type is named through a join: MariaDB walked investigations in id order,
probing 23,000 datasets' parameters for the 50 of a page (90 ms of execution at ten million
datafiles, 431 rows matching). With the type's ids looked up first (an indexed read of a table
of dozens of rows) and ``p.PARAMETER_TYPE_ID IN (<ids>)`` added, it starts from that type's
parameters in the range (migration ``cairn_0011``'s index on (PARAMETER_TYPE_ID,
NUMERIC_VALUE)): 5 ms. The added condition is implied by the join, so the rows are the same;
the look-up runs in the search's own transaction.

Only where measured to help (:data:`DIALECTS`): PostgreSQL, given the type's id, still
assumes type and value independent, expects 2,840 matches where there are 431, and walks
every dataset in parallel (270-330 ms against 88 without the ids); SQLite gains a little.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Dialect, Select, and_, false, literal_column, select
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import (
    BinaryExpression,
    BindParameter,
    BooleanClauseList,
    ColumnClause,
    ColumnElement,
    Grouping,
)
from sqlalchemy.sql.selectable import Join, ScalarSelect
from sqlalchemy.sql.visitors import iterate

#: Tables whose named rows are looked up first: few rows, each naming many in a large table.
LOOKED_UP = frozenset({"PARAMETERTYPE"})
#: Backends whose searches get the looked-up ids (SQLAlchemy's names; "mysql" is MariaDB).
DIALECTS = frozenset({"mysql", "sqlite"})
#: More ids than this, and the condition is left to the planner as written.
MAX_IDS = 20

#: Per look-up, the ids found, or None where there were too many to help.
Found = tuple[tuple[int, ...] | None, ...]


@dataclass(frozen=True)
class Lookup:
    """``key`` (a foreign key of a joined row) takes one of the ids ``ids`` selects."""

    key: ColumnElement[Any]
    ids: Select[Any]


def conjuncts(cond: Any) -> Iterator[ColumnElement[Any]]:
    """The terms of a condition's top-level AND."""
    while isinstance(cond, Grouping):
        cond = cond.element
    if isinstance(cond, BooleanClauseList) and cond.operator is operators.and_:
        for c in cond.clauses:
            yield from conjuncts(c)
    else:
        yield cond


def _table_name(alias: Any) -> str | None:
    element = getattr(alias, "element", alias)
    name = getattr(element, "name", None)
    return name.upper() if isinstance(name, str) else None


def _inner_joins(froms: tuple[Any, ...]) -> Iterator[tuple[Any, Any]]:
    """(joined alias, ON clause) of every inner join in the FROM clause."""
    for f in froms:
        while isinstance(f, Join):
            if not f.isouter:
                yield f.right, f.onclause
            f = f.left


def _only_on(cond: ColumnElement[Any], alias: Any, runtime: frozenset[str]) -> bool:
    """``cond`` reads columns of ``alias`` alone and constants: no sub-select, no parameter
    given at run time (the user, the clock)."""
    seen = False
    for e in iterate(cond):
        if isinstance(e, Select | ScalarSelect):
            return False
        if isinstance(e, BindParameter) and (e.key in runtime or e.value is None):
            return False
        if isinstance(e, ColumnClause) and e.table is not None:
            if e.table is not alias:
                return False
            seen = True
    return seen


def find(froms: tuple[Any, ...], where: tuple[ColumnElement[bool], ...],
         runtime: frozenset[str]) -> tuple[Lookup, ...]:
    """The look-ups a query's FROM and WHERE clauses allow (none for most queries)."""
    terms = [t for w in where for t in conjuncts(w)]
    found = []
    for alias, on in _inner_joins(froms):
        if _table_name(alias) not in LOOKED_UP or not isinstance(on, BinaryExpression) \
                or on.operator is not operators.eq:
            continue
        pk = alias.c.id
        if on.left is pk:
            key = on.right
        elif on.right is pk:
            key = on.left
        else:
            continue
        if not isinstance(key, ColumnClause) or key.table is alias:
            continue
        conds = [t for t in terms if _only_on(t, alias, runtime)]
        if conds:
            found.append(Lookup(key, select(pk).where(and_(*conds)).limit(MAX_IDS + 1)))
    return tuple(found)


def wanted(lookups: tuple[Lookup, ...], dialect: Dialect) -> tuple[Lookup, ...]:
    """The look-ups to make on this backend (:data:`DIALECTS`)."""
    return lookups if dialect.name in DIALECTS else ()


def resolve(conn: Connection, lookups: tuple[Lookup, ...]) -> Found:
    """Per look-up, the ids found (None: too many to help)."""
    out: list[tuple[int, ...] | None] = []
    for lk in lookups:
        ids = tuple(sorted(int(i) for i in conn.execute(lk.ids).scalars()))
        out.append(None if len(ids) > MAX_IDS else ids)
    return tuple(out)


def conditions(lookups: tuple[Lookup, ...], found: Found) -> list[ColumnElement[bool]]:
    """``key IN (ids)`` per look-up, the ids written as numbers: each set of ids is planned
    as such (a parameter would hide them from the planner, which is the point)."""
    out: list[ColumnElement[bool]] = []
    for lk, ids in zip(lookups, found, strict=True):
        if ids is None:
            continue
        out.append(lk.key.in_([literal_column(str(i)) for i in ids]) if ids else false())
    return out
