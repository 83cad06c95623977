"""SQL constructs whose spelling differs between SQLite, PostgreSQL and MariaDB.

Each is a small ClauseElement with one default rendering and per-dialect overrides, so a
compiled query is the same object on every backend and only its SQL text differs.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement, UnaryExpression
from sqlalchemy.sql.functions import FunctionElement

# -- strings ----------------------------------------------------------------------------------


class CharLength(FunctionElement[int]):
    """Length in characters (MariaDB's LENGTH counts bytes)."""

    type = Integer()
    name = "char_length"
    inherit_cache = True


@compiles(CharLength)
def _length(el: CharLength, compiler: SQLCompiler, **kw: Any) -> str:
    return f"length({compiler.process(el.clauses, **kw)})"


@compiles(CharLength, "mysql")
@compiles(CharLength, "mariadb")
def _length_mysql(el: CharLength, compiler: SQLCompiler, **kw: Any) -> str:
    return f"char_length({compiler.process(el.clauses, **kw)})"


class DateText(FunctionElement[str]):
    """A timestamp as ``yyyy-mm-dd hh:mm:ss`` text (SQLite stores microseconds too)."""

    type = String()
    name = "date_text"
    inherit_cache = True


@compiles(DateText)
def _date_text(el: DateText, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({compiler.process(el.clauses, **kw)} AS VARCHAR(19))"


@compiles(DateText, "sqlite")
def _date_text_sqlite(el: DateText, compiler: SQLCompiler, **kw: Any) -> str:
    return f"strftime('%Y-%m-%d %H:%M:%S', {compiler.process(el.clauses, **kw)})"


@compiles(DateText, "mysql")
@compiles(DateText, "mariadb")
def _date_text_mysql(el: DateText, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({compiler.process(el.clauses, **kw)} AS CHAR(19))"


class Locate(FunctionElement[int]):
    """JPQL ``LOCATE(needle, haystack[, start])``: 1-based position, 0 when absent."""

    type = Integer()
    name = "locate"
    inherit_cache = True


def _args(el: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> list[str]:
    return [compiler.process(c, **kw) for c in el.clauses]


@compiles(Locate)
def _locate_sqlite(el: Locate, compiler: SQLCompiler, **kw: Any) -> str:
    args = _args(el, compiler, **kw)
    needle, hay = args[0], args[1]
    if len(args) == 2:
        return f"instr({hay}, {needle})"
    start = args[2]
    found = f"instr(substr({hay}, {start}), {needle})"
    return f"(CASE WHEN {found} > 0 THEN {found} + {start} - 1 WHEN {found} = 0 THEN 0 END)"


@compiles(Locate, "postgresql")
def _locate_pg(el: Locate, compiler: SQLCompiler, **kw: Any) -> str:
    args = _args(el, compiler, **kw)
    needle, hay = args[0], args[1]
    if len(args) == 2:
        return f"strpos({hay}, {needle})"
    start = args[2]
    found = f"strpos(substr({hay}, {start}), {needle})"
    return f"(CASE WHEN {found} > 0 THEN {found} + {start} - 1 WHEN {found} = 0 THEN 0 END)"


@compiles(Locate, "mysql")
@compiles(Locate, "mariadb")
def _locate_mysql(el: Locate, compiler: SQLCompiler, **kw: Any) -> str:
    return f"locate({', '.join(_args(el, compiler, **kw))})"


class Trim(FunctionElement[str]):
    """``TRIM([LEADING|TRAILING|BOTH] [char] FROM s)`` (args: s[, char]); SQLite only has
    trim/ltrim/rtrim. One subclass per side keeps the construct cacheable."""

    type = String()
    name = "trim"
    inherit_cache = True
    spec = "BOTH"


class TrimLeading(Trim):
    inherit_cache = True
    spec = "LEADING"


class TrimTrailing(Trim):
    inherit_cache = True
    spec = "TRAILING"


TRIMS: dict[str, type[Trim]] = {"BOTH": Trim, "LEADING": TrimLeading, "TRAILING": TrimTrailing}


@compiles(Trim)
def _trim(el: Trim, compiler: SQLCompiler, **kw: Any) -> str:
    args = _args(el, compiler, **kw)
    char = f"{args[1]} " if len(args) > 1 else ""
    return f"TRIM({el.spec} {char}FROM {args[0]})"


@compiles(Trim, "sqlite")
def _trim_sqlite(el: Trim, compiler: SQLCompiler, **kw: Any) -> str:
    fn = {"LEADING": "ltrim", "TRAILING": "rtrim", "BOTH": "trim"}[el.spec]
    return f"{fn}({', '.join(_args(el, compiler, **kw))})"


# -- ORDER BY with one NULL ordering everywhere -----------------------------------------------


def order_key(expr: ColumnElement[Any], descending: bool, dialect: str,
              nullable: bool = True) -> UnaryExpression[Any]:
    """NULLs sort first ascending and last descending, as on MariaDB (ICAT's reference) and
    SQLite; PostgreSQL does the opposite unless told. Telling it for a column that is never
    NULL would only stop it from reading the rows in index order (ids, names)."""
    key = expr.desc() if descending else expr.asc()
    if dialect == "postgresql" and nullable:
        key = key.nulls_last() if descending else key.nulls_first()
    return key
