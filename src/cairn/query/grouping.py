"""What an aggregated SELECT may show: grouped values, aggregates, and constants.

Once a query groups its rows (GROUP BY, an aggregate such as COUNT, or HAVING), every value
it selects, orders by or tests in HAVING must be the same on all rows of a group: a grouped
expression, a column of a row whose id is grouped (``GROUP BY i`` lets ``i.name`` be
shown), something inside an aggregate, or a constant. PostgreSQL refuses anything else, as
icat.server on MySQL does in its default mode; MariaDB and SQLite would quietly show the
value of some row of the group. So the compiler asks here first, and every backend refuses
the same queries with the same message.

The rule is checked on the SQL expressions the compiler built, where a path has become the
column of one table alias, so ``ds.investigation.name`` and ``GROUP BY ds.investigation``
are seen to meet at the same joined row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy.sql.elements import ClauseElement, ColumnClause, ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.selectable import FromClause

from cairn.query import ast
from cairn.query.coerce import error
from cairn.query.unparse import to_text

#: SQL aggregate functions: what they compute is one value per group whatever they read.
AGGREGATES = frozenset({"count", "min", "max", "sum", "avg"})


def check_having(has_group_by: bool, selects_aggregate: bool, pos: int) -> None:
    """HAVING without GROUP BY tests the one group of all rows, so the SELECT clause must
    aggregate them (SQLite refuses it otherwise; PostgreSQL and MariaDB disagree on it)."""
    if not has_group_by and not selects_aggregate:
        raise error("HAVING needs a GROUP BY clause, or an aggregate function such as COUNT "
                    "in the SELECT clause", pos)


def check_grouped(clause: str, node: ast.Expr, sql: ColumnElement[Any],
                  group_by: Sequence[ColumnElement[Any]], aliases: Iterable[FromClause]
                  ) -> None:
    """BAD_PARAMETER unless ``sql``, compiled from ``node`` of ``clause`` (SELECT, HAVING or
    ORDER BY), has one value per group. ``aliases`` are the tables of the query's own FROM
    clause: columns of enclosing queries are constant within a group."""
    if _ungrouped(sql, group_by, {id(a) for a in aliases}) is not None:
        text = to_text(node)
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise error(f"{shown} in the {clause} clause must be in the GROUP BY clause or inside "
                    "an aggregate function such as COUNT or MAX: the rows of a group may "
                    "differ in it", getattr(node, "pos", -1))


def _ungrouped(expr: ColumnElement[Any], group_by: Sequence[ColumnElement[Any]],
               aliases: set[int]) -> ColumnClause[Any] | None:
    """The first column of ``aliases`` that ``expr`` reads outside an aggregate and that is
    neither grouped nor in a row whose id is grouped; None if there is none."""
    keyed = {id(g.table) for g in group_by
             if isinstance(g, ColumnClause) and g.key == "id" and g.table is not None}
    stack: list[ClauseElement] = [expr]
    while stack:  # no recursion: expressions may be deep
        e = stack.pop()
        if isinstance(e, FromClause):
            continue  # a sub-select's own tables; its columns are met where they are used
        if isinstance(e, FunctionElement) and getattr(e, "name", "").lower() in AGGREGATES:
            continue
        if any(e.compare(g) for g in group_by):
            continue
        if isinstance(e, ColumnClause) and id(e.table) in aliases:
            if id(e.table) not in keyed:
                return e
            continue
        stack.extend(e.get_children())
    return None
