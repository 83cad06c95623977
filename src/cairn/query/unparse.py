"""The AST back to canonical JPQL-style text (sqlglot's ``generator.py``, in small).

``parse_query(to_text(q))`` gives ``q`` again (positions aside) for any tree the JPQL parser
produces, which makes it a convenient normal form for tests, logs and messages. Trees from the
concise syntax print as the JPQL icat.server would have derived, except that their bare enum
constants (``EnumConst(None, …)``) print bare and so only re-parse as paths.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from cairn.query.ast import (
    And,
    Arith,
    Between,
    Compare,
    EnumConst,
    Exists,
    FromEntity,
    Func,
    Get,
    Include,
    InList,
    InSubquery,
    IsEmpty,
    IsNull,
    Like,
    Literal,
    MemberOf,
    Neg,
    Not,
    Or,
    Param,
    Path,
    Select,
    Subquery,
    Timestamp,
    Trim,
)

_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


def to_text(node: Any) -> str:
    """Render a ``Select``, a ``Get``, an ``Include`` or any expression."""
    if isinstance(node, Select):
        return _select(node)
    if isinstance(node, Get):
        text = f"{node.entity} {node.var}"
        return f"{text} {_include(node.include)}" if node.include else text
    if isinstance(node, Include):
        return _include(node)
    return _expr(node)


def without_positions(node: Any) -> Any:
    """A copy with every ``pos`` set to -1, to compare trees parsed from different texts."""
    if isinstance(node, tuple):
        return tuple(without_positions(n) for n in node)
    if not dataclasses.is_dataclass(node) or isinstance(node, type):
        return node
    changes = {f.name: -1 if f.name == "pos" else without_positions(getattr(node, f.name))
               for f in dataclasses.fields(node)}
    return dataclasses.replace(node, **changes)


def _select(q: Select) -> str:
    parts = ["SELECT"]
    if q.distinct:
        parts.append("DISTINCT")
    parts.append(", ".join(_expr(i) for i in q.items))
    parts.append("FROM")
    from_: list[str] = []
    for n, item in enumerate(q.from_):
        if isinstance(item, FromEntity):
            from_.append(("" if n == 0 else ", ") + f"{item.entity} {item.var}")
        elif n == 0:  # a correlated sub-select ranging over a path of an outer variable
            from_.append(f"{_expr(item.path)} {item.var}")
        else:
            kind = "LEFT JOIN" if item.kind == "LEFT" else "JOIN"
            from_.append(f" {kind} {_expr(item.path)} {item.var}")
    parts.append("".join(from_))
    if q.where is not None:
        parts += ["WHERE", _expr(q.where)]
    if q.group_by:
        parts += ["GROUP BY", ", ".join(_expr(e) for e in q.group_by)]
    if q.having is not None:
        parts += ["HAVING", _expr(q.having)]
    if q.order_by:
        parts += ["ORDER BY", ", ".join(_expr(o.expr) + (" DESC" if o.descending else "")
                                        for o in q.order_by)]
    if q.include is not None:
        parts.append(_include(q.include))
    if q.limit is not None:
        count = "*" if q.limit.count is None else str(q.limit.count)
        parts.append(f"LIMIT {q.limit.offset}, {count}")
    return " ".join(parts)


def _include(inc: Include) -> str:
    if inc.one:
        return "INCLUDE 1"
    return "INCLUDE " + ", ".join(
        _expr(i.path) + (f" AS {i.alias}" if i.alias else "") for i in inc.items)


def _expr(e: Any) -> str:
    if isinstance(e, Path):
        return ".".join((e.var, *e.fields))
    if isinstance(e, Literal):
        if e.kind == "string":
            return "'" + str(e.value).replace("'", "''") + "'"
        if e.kind == "boolean":
            return "TRUE" if e.value else "FALSE"
        if e.kind == "null":
            return "NULL"
        return repr(e.value)
    if isinstance(e, Timestamp):
        v = e.value  # not strftime: it does not zero-pad years before 1000
        return (f"{{ts {v.year:04d}-{v.month:02d}-{v.day:02d} "
                f"{v.hour:02d}:{v.minute:02d}:{v.second:02d}}}")
    if isinstance(e, EnumConst):
        return e.name if e.enum is None else f"org.icatproject.{e.enum}.{e.name}"
    if isinstance(e, Param):
        return ":" + e.name
    if isinstance(e, Func):
        if not e.args:
            return e.name
        inner = ", ".join(_expr(a) for a in e.args)
        return f"{e.name}({'DISTINCT ' if e.distinct else ''}{inner})"
    if isinstance(e, Trim):
        char = f"{_expr(e.char)} " if e.char is not None else ""
        return f"TRIM({e.spec} {char}FROM {_expr(e.expr)})"
    if isinstance(e, Arith):
        return f"{_operand(e.left, e.op, False)} {e.op} {_operand(e.right, e.op, True)}"
    if isinstance(e, Neg):
        inner = _expr(e.expr)
        return f"-({inner})" if isinstance(e.expr, (Arith, Neg)) else f"-{inner}"
    if isinstance(e, Subquery):
        return f"({_select(e.query)})"
    if isinstance(e, Compare):
        return f"{_expr(e.left)} {e.op} {_expr(e.right)}"
    if isinstance(e, Like):
        text = f"{_expr(e.expr)} {_not(e.negated)}LIKE {_expr(e.pattern)}"
        return text + (f" ESCAPE {_expr(e.escape)}" if e.escape is not None else "")
    if isinstance(e, InList):
        items = ", ".join(_expr(i) for i in e.items)
        return f"{_expr(e.expr)} {_not(e.negated)}IN ({items})"
    if isinstance(e, InSubquery):
        return f"{_expr(e.expr)} {_not(e.negated)}IN ({_select(e.query)})"
    if isinstance(e, Between):
        return (f"{_expr(e.expr)} {_not(e.negated)}BETWEEN {_expr(e.low)} "
                f"AND {_expr(e.high)}")
    if isinstance(e, IsNull):
        return f"{_expr(e.expr)} IS {_not(e.negated)}NULL"
    if isinstance(e, IsEmpty):
        return f"{_expr(e.path)} IS {_not(e.negated)}EMPTY"
    if isinstance(e, MemberOf):
        return f"{_expr(e.expr)} {_not(e.negated)}MEMBER OF {_expr(e.path)}"
    if isinstance(e, Exists):
        return f"{_not(e.negated)}EXISTS ({_select(e.query)})"
    if isinstance(e, And | Or):
        # Nested And/Or are parenthesised so the tree shape survives a round trip.
        sep = " AND " if isinstance(e, And) else " OR "
        return sep.join(f"({_expr(i)})" if isinstance(i, And | Or) else _expr(i)
                        for i in e.items)
    if isinstance(e, Not):
        inner = _expr(e.expr)
        # "NOT EXISTS" would read back as Exists(negated=True)
        return f"NOT ({inner})" if isinstance(e.expr, And | Or | Exists) else f"NOT {inner}"
    raise TypeError(f"not a query node: {e!r}")


def _operand(e: Any, op: str, right: bool) -> str:
    """Parenthesise an arithmetic operand only where precedence requires it."""
    text = _expr(e)
    if isinstance(e, Arith):
        mine, parent = _PRECEDENCE[e.op], _PRECEDENCE[op]
        if mine < parent or (right and mine == parent):
            return f"({text})"
    return text


def _not(negated: bool) -> str:
    return "NOT " if negated else ""
