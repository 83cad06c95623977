"""The one typed syntax tree of ICAT queries.

JPQL-style text, the concise (old) syntax and get-queries all parse into these nodes; the
compiler turns them into SQL and authorization adds predicates to them. Nodes are frozen so
parsed queries can be cached and shared between threads.

Conventions:
* identification variables are stored lower-cased (ICAT treats them case-insensitively);
* entity names are stored with their canonical spelling (``Dataset``);
* ``pos`` is the character offset in the query text of the token a node starts at, so later
  stages can point at the offending text; -1 when synthesised.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal as Lit

# -- expressions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Path:
    """``var.f1.f2``: a variable followed by zero or more field names.

    ``Path("ds", ())`` is the variable itself (an entity); ``Path("ds", ("name",))`` an
    attribute; ``Path("ds", ("investigation", "facility"))`` a related entity.
    """

    var: str
    fields: tuple[str, ...] = ()
    pos: int = -1


@dataclass(frozen=True)
class Literal:
    """A constant. ``kind`` keeps how it was written: ``'42'`` is a string that the compiler
    coerces when compared with a numeric or date attribute (as MySQL does under icat.server)."""

    value: str | int | float | bool | None
    kind: Lit["string", "integer", "real", "boolean", "null"]
    pos: int = -1


@dataclass(frozen=True)
class Timestamp:
    """``{ts 2011-01-15 00:00:00}``: a naive time in the server's zone."""

    value: datetime
    pos: int = -1


@dataclass(frozen=True)
class EnumConst:
    """``org.icatproject.ParameterValueType.NUMERIC`` (or a bare constant in concise syntax)."""

    enum: str | None  # None when the enum type is implied by the attribute compared with
    name: str
    pos: int = -1


@dataclass(frozen=True)
class Param:
    """A named parameter; only ``:user`` (the caller's user name) is ever bound."""

    name: str
    pos: int = -1


@dataclass(frozen=True)
class Func:
    """A function call. ``name`` is upper-case: aggregates COUNT MIN MAX AVG SUM; string
    CONCAT SUBSTRING LOWER UPPER LENGTH LOCATE; numeric ABS SQRT MOD SIZE; CURRENT_DATE
    CURRENT_TIME CURRENT_TIMESTAMP (no args)."""

    name: str
    args: tuple[Expr, ...] = ()
    distinct: bool = False
    pos: int = -1


@dataclass(frozen=True)
class Trim:
    """``TRIM([LEADING|TRAILING|BOTH] [char] FROM expr)`` or ``TRIM(expr)``."""

    expr: Expr
    spec: Lit["LEADING", "TRAILING", "BOTH"] = "BOTH"
    char: Expr | None = None
    pos: int = -1


@dataclass(frozen=True)
class Arith:
    op: Lit["+", "-", "*", "/"]
    left: Expr
    right: Expr
    pos: int = -1


@dataclass(frozen=True)
class Neg:
    expr: Expr
    pos: int = -1


@dataclass(frozen=True)
class Subquery:
    """A sub-select used as a value: ``(SELECT COUNT(df) FROM ds.datafiles df) = 2``."""

    query: Select
    pos: int = -1


# -- conditions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Compare:
    op: Lit["=", "<>", "<", "<=", ">", ">="]  # "!=" is parsed as "<>"
    left: Expr
    right: Expr
    pos: int = -1


@dataclass(frozen=True)
class Like:
    expr: Expr
    pattern: Expr
    escape: Expr | None = None
    negated: bool = False
    pos: int = -1


@dataclass(frozen=True)
class InList:
    expr: Expr
    items: tuple[Expr, ...]
    negated: bool = False
    pos: int = -1


@dataclass(frozen=True)
class InSubquery:
    expr: Expr
    query: Select
    negated: bool = False
    pos: int = -1


@dataclass(frozen=True)
class Between:
    expr: Expr
    low: Expr
    high: Expr
    negated: bool = False
    pos: int = -1


@dataclass(frozen=True)
class IsNull:
    expr: Expr
    negated: bool = False
    pos: int = -1


@dataclass(frozen=True)
class IsEmpty:
    """``path IS [NOT] EMPTY`` for a one-to-many path."""

    path: Path
    negated: bool = False
    pos: int = -1


@dataclass(frozen=True)
class MemberOf:
    """``expr [NOT] MEMBER [OF] path`` for a one-to-many path."""

    expr: Expr
    path: Path
    negated: bool = False
    pos: int = -1


@dataclass(frozen=True)
class Exists:
    query: Select
    negated: bool = False
    pos: int = -1


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]
    pos: int = -1


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]
    pos: int = -1


@dataclass(frozen=True)
class Not:
    expr: Expr
    pos: int = -1


Expr = (Path | Literal | Timestamp | EnumConst | Param | Func | Trim | Arith | Neg | Subquery
        | Compare | Like | InList | InSubquery | Between | IsNull | IsEmpty | MemberOf | Exists
        | And | Or | Not)

# -- clauses ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FromEntity:
    """``Dataset ds`` (a range variable over an entity)."""

    entity: str
    var: str
    pos: int = -1


@dataclass(frozen=True)
class FromJoin:
    """``[INNER|LEFT [OUTER]] JOIN path [AS] var``; also ``, path var`` and ``, IN(path) var``
    in the FROM list (those are inner joins)."""

    path: Path
    var: str
    kind: Lit["INNER", "LEFT"] = "INNER"
    pos: int = -1


FromItem = FromEntity | FromJoin


@dataclass(frozen=True)
class OrderItem:
    expr: Expr
    descending: bool = False


@dataclass(frozen=True)
class Limit:
    offset: int
    count: int | None  # None = "*" (no count)


@dataclass(frozen=True)
class IncludeItem:
    """``var.f1.f2 [AS alias]``; ``var`` is the root variable or an earlier alias."""

    path: Path
    alias: str | None = None


@dataclass(frozen=True)
class Include:
    """``INCLUDE 1`` (``one``) or an explicit list of paths.

    The parser resolves the concise syntax's INCLUDE-by-entity-type into explicit paths.
    """

    one: bool = False
    items: tuple[IncludeItem, ...] = ()


@dataclass(frozen=True)
class Select:
    items: tuple[Expr, ...]
    from_: tuple[FromItem, ...]
    distinct: bool = False
    where: Expr | None = None
    group_by: tuple[Expr, ...] = ()
    having: Expr | None = None
    order_by: tuple[OrderItem, ...] = ()
    limit: Limit | None = None
    include: Include | None = None


@dataclass(frozen=True)
class Get:
    """A get-query: which entity type and what to include with the object fetched by id."""

    entity: str
    var: str
    include: Include | None = None
