"""How large a query may be: checked on its syntax tree, before any SQL is built.

Each database bounds what one statement may hold, each its own way: SQLite the depth of an
expression (1,000: a chain of 1,000 ORs), the tables of a join (64) and the bound values
(32,766); MariaDB the tables of a join (61); PostgreSQL the columns of a result (1,664) and the
depth of its parser's stack. Before any of those, compiling a long chain of ``+`` would reach
Python's recursion limit. Past them a query failed with an error that told the user nothing
and differed from one backend to the next. The limits below are lower than all of those, far
above any real query, the same on every backend, and each refusal names its limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields

from cairn.errors import IcatError, bad_parameter
from cairn.query import ast

#: Characters of query text (a query of 10,000 ids in an IN list is about 100,000).
MAX_QUERY_LENGTH = 1_000_000
#: Parentheses, NOT, signs, function calls and sub-selects nested inside each other (the
#: parsers count them as they go; Python's recursion limit is never reached).
MAX_NESTING = 50
#: Conditions joined by AND or OR in the whole query (SQLite nests a chain of them one level
#: per operator, up to 1,000 levels with what authorization adds).
MAX_CONDITIONS = 400
#: Arithmetic operators (``+ - * /``, a sign) and CONCAT arguments after the first, in the
#: whole query: each one is a level of the expression for the compiler and the database.
MAX_OPERATORS = 200
#: Tables one SELECT joins: its FROM variables and JOINs, and one per step of its paths.
MAX_TABLES = 40
#: Items of one SELECT, GROUP BY or ORDER BY clause; and columns of a result, where a
#: selected entity counts one column per field.
MAX_COLUMNS = 500
#: Literal values (strings, numbers, dates, enum constants), each one a bound parameter.
MAX_VALUES = 10_000
#: Paths of an INCLUDE clause.
MAX_INCLUDES = 100


def too_large(what: str, found: int, limit: int, pos: int = -1, hint: str = "") -> IcatError:
    """BAD_PARAMETER: ``The query has 20000 conditions joined by AND or OR; at most 400 are
    accepted``, with a hint how to say the same in fewer."""
    return bad_parameter(f"The query has {found} {what}; at most {limit} are accepted"
                         + (f" ({hint})" if hint else ""), pos)


def check_text(text: str) -> None:
    """The length of the text; and its characters, which must all be encodable (a lone
    surrogate, which a JSON escape such as ``\\ud800`` can make, is not a character)."""
    if len(text) > MAX_QUERY_LENGTH:
        raise too_large("characters", len(text), MAX_QUERY_LENGTH)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise bad_parameter(f"The query holds a lone surrogate ({text[e.start]!a}) at "
                                f"character {e.start}, which is not a character", e.start
                                ) from None


class _Count:
    """A total, and where in the text it first went past its limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0
        self.pos = -1

    def add(self, n: int, pos: int) -> None:
        self.total += n
        if self.total > self.limit and self.pos < 0:
            self.pos = pos


def check(select: ast.Select) -> None:
    """Refuse a parsed query beyond the limits above; counted without recursion, so a tree
    of any depth is measured safely."""
    conditions, operators = _Count(MAX_CONDITIONS), _Count(MAX_OPERATORS)
    values = _Count(MAX_VALUES)
    for node in _nodes(select):
        if isinstance(node, ast.Select):
            _check_select(node)
        elif isinstance(node, ast.And | ast.Or):
            conditions.add(len(node.items), node.pos)
        elif isinstance(node, ast.Arith | ast.Neg):
            operators.add(1, node.pos)
        elif isinstance(node, ast.Func) and node.name == "CONCAT":
            operators.add(len(node.args) - 1, node.pos)
        elif isinstance(node, ast.Literal | ast.Timestamp | ast.EnumConst):
            values.add(1, node.pos)
    for what, count, hint in (
            ("conditions joined by AND or OR", conditions,
             "a list of values to match is written x IN (a, b, c)"),
            ("arithmetic operators and CONCAT arguments", operators, ""),
            ("literal values", values, "")):
        if count.total > count.limit:
            raise too_large(what, count.total, count.limit, count.pos, hint)


def _check_select(sel: ast.Select) -> None:
    if len(sel.from_) > MAX_TABLES:
        raise too_large("variables and JOINs in one FROM clause", len(sel.from_), MAX_TABLES,
                        sel.from_[MAX_TABLES].pos)
    for what, items in (("items in its SELECT clause", sel.items),
                        ("items in its GROUP BY clause", sel.group_by),
                        ("items in its ORDER BY clause", sel.order_by)):
        if len(items) > MAX_COLUMNS:
            raise too_large(what, len(items), MAX_COLUMNS)
    check_include(sel.include)


def check_include(include: ast.Include | None) -> None:
    if include is not None and len(include.items) > MAX_INCLUDES:
        raise too_large("paths in its INCLUDE clause", len(include.items), MAX_INCLUDES,
                        include.items[MAX_INCLUDES].path.pos)


def check_tables(count: int) -> None:
    """The tables one compiled SELECT joins, implicit joins of paths included."""
    if count > MAX_TABLES:
        raise too_large("tables joined in one SELECT (its FROM variables and JOINs, and one "
                        "for each step of a path to another entity)", count, MAX_TABLES)


def check_columns(count: int) -> None:
    """The columns of a compiled result (a selected entity has one per field)."""
    if count > MAX_COLUMNS:
        raise too_large("columns in its result (a selected entity has one per field)", count,
                        MAX_COLUMNS)


def _nodes(root: object) -> Iterator[object]:
    """Every node of the tree under ``root`` (sub-selects included), without recursion."""
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        for f in fields(node):  # type: ignore[arg-type]
            child = getattr(node, f.name)
            if isinstance(child, tuple):
                stack.extend(c for c in child if hasattr(c, "__dataclass_fields__"))
            elif hasattr(child, "__dataclass_fields__"):
                stack.append(child)
