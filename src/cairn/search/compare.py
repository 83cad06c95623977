"""Comparing catalogue values with the values of a search request, the same on every backend.

icat.lucene matches keywords, names and string values exactly (case included), and ranges as
numbers or epoch milliseconds. A request's values are checked against the type of the field
they are compared with, so a mistake is a BAD_PARAMETER, never a database error: a number for
a text field, a date that is not a number, a value no column can hold (a 100-bit integer is an
open bound, a text with NUL matches nothing).
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import Boolean, ColumnElement, String, and_, bindparam, false, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from cairn.errors import bad_parameter
from cairn.search.request import parse_date

LONG_MAX = 2**63 - 1
NUMERIC = ("Long", "Integer", "Double")


class _Exact(FunctionElement[bool]):
    """``a = b`` comparing characters exactly (MariaDB's collations ignore case)."""

    type = Boolean()
    name = "exact"
    inherit_cache = True


@compiles(_Exact)
def _exact(el: _Exact, compiler: SQLCompiler, **kw: Any) -> str:
    a, b = (compiler.process(c, **kw) for c in el.clauses)
    return f"({a} = {b})"


@compiles(_Exact, "mysql")
@compiles(_Exact, "mariadb")
def _exact_my(el: _Exact, compiler: SQLCompiler, **kw: Any) -> str:
    a, b = (compiler.process(c, **kw) for c in el.clauses)
    return f"(CAST({a} AS BINARY) = CAST({b} AS BINARY))"


class _Wild(FunctionElement[bool]):
    """ICAT's wildcards (``*`` any run, ``?`` one character), case included: GLOB on
    SQLite (its LIKE ignores case), LIKE on PostgreSQL, a binary LIKE on MariaDB."""

    type = Boolean()
    name = "wild"
    inherit_cache = True


@compiles(_Wild)
def _wild(el: _Wild, compiler: SQLCompiler, **kw: Any) -> str:
    col, _, like = (compiler.process(c, **kw) for c in el.clauses)
    return f"({col} LIKE {like} ESCAPE '\\')"


@compiles(_Wild, "sqlite")
def _wild_sqlite(el: _Wild, compiler: SQLCompiler, **kw: Any) -> str:
    col, glob, _ = (compiler.process(c, **kw) for c in el.clauses)
    return f"({col} GLOB {glob})"


@compiles(_Wild, "mysql")
@compiles(_Wild, "mariadb")
def _wild_my(el: _Wild, compiler: SQLCompiler, **kw: Any) -> str:
    col, _, like = (compiler.process(c, **kw) for c in el.clauses)
    return f"(CAST({col} AS BINARY) LIKE CAST({like} AS BINARY) ESCAPE '\\\\')"


def equals(col: ColumnElement[Any], value: str) -> ColumnElement[bool]:
    if "\x00" in value:  # no column holds it (PostgreSQL refuses it outright)
        return false()
    return _Exact(col, bindparam(None, value, type_=String()))


def wildcard(col: ColumnElement[Any], pattern: str) -> ColumnElement[bool]:
    """``col`` matches ``pattern`` with ICAT's ``*`` and ``?``."""
    if "\x00" in pattern:
        return false()
    if "*" not in pattern and "?" not in pattern:
        return equals(col, pattern)
    glob = pattern.replace("[", "[[]")
    like = (pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            .replace("*", "%").replace("?", "_"))
    return _Wild(col, bindparam(None, glob, type_=String()),
                 bindparam(None, like, type_=String()))


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def bound(kind: str, value: Any, what: str, db_to: Any) -> Any:
    """A range bound for a field of ``kind``: None (open) when absent or beyond what the
    column can hold; dates from epoch milliseconds (or yyyyMMddHHmm)."""
    if value is None:
        return None
    if kind == "Date":
        d = parse_date(value, what)
        return None if d is None else db_to(d)
    if kind not in NUMERIC:
        raise bad_parameter(f"{what}: a range needs a numeric or date field")
    if not is_number(value):
        raise bad_parameter(f"{what} must be a number, not {value!r}")
    if kind != "Double" and abs(value) > LONG_MAX:
        return None
    return float(value) if kind == "Double" else value


def range_condition(expr: ColumnElement[Any], kind: str, low: Any, high: Any, what: str,
                    db_to: Any, *, high_open: bool = False) -> ColumnElement[bool]:
    return between(expr, bound(kind, low, f"{what} from", db_to),
                   bound(kind, high, f"{what} to", db_to), high_open=high_open)


def between(expr: ColumnElement[Any], low: Any, high: Any, *, high_open: bool = False
            ) -> ColumnElement[bool]:
    """``expr`` from ``low`` to ``high`` (inclusive unless ``high_open``); None: open."""
    conds = []
    if low is not None:
        conds.append(expr >= low)
    if high is not None:
        conds.append(expr < high if high_open else expr <= high)
    return and_(true(), *conds)


def value_condition(expr: ColumnElement[Any], kind: str, value: Any, what: str,
                    db_to: Any) -> ColumnElement[bool]:
    """``expr`` equals ``value`` (a string for text fields, a number for numbers, epoch
    milliseconds for dates)."""
    if kind in NUMERIC:
        if not is_number(value):
            raise bad_parameter(f"{what}: a number is expected, not {value!r}")
        if kind != "Double" and abs(value) > LONG_MAX:
            return false()
        return expr == value
    if kind == "Date":
        d = parse_date(value, what)
        return false() if d is None else expr == db_to(d)
    if not isinstance(value, str):
        raise bad_parameter(f"{what}: filter object values should be STRING or OBJECT, but "
                            f"were {type(value).__name__.upper()}")
    return equals(expr, value)


def sort_value(kind: str, value: Any, what: str, db_to: Any) -> Any:
    """A ``search_after`` value for a key of ``kind``."""
    if kind == "Date":
        if not is_number(value):
            raise bad_parameter(f"{what} must be epoch milliseconds, not {value!r}")
        d = parse_date(value, what)
        assert d is not None
        return db_to(d)
    if kind in NUMERIC:
        if not is_number(value):
            raise bad_parameter(f"{what} must be a number, not {value!r}")
        # beyond 64 bits: compared as a double, which every backend does with an integer
        return float(value) if abs(value) > LONG_MAX else value
    if not isinstance(value, str) or "\x00" in value:
        raise bad_parameter(f"{what} must be a string, not {value!r}")
    return value

