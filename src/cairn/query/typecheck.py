"""The types of query expressions, and the refusal of ill-typed ones.

A type is an ICAT attribute type name (``"String"``, ``"Long"``, ``"Integer"``, ``"Double"``,
``"Date"``, ``"boolean"`` or an enum such as ``"StudyStatus"``), ``"entity"`` (an entity,
compared by its id), ``"Time"`` (CURRENT_TIME) or None (not known: NULL where nothing gives it
a type). JPQL refuses to mix kinds of values; a database would fail (PostgreSQL) or convert
silently, each its own way (MariaDB, SQLite), so the same query must be refused everywhere.

These rules see types and syntax nodes, never SQL: the compiler asks them about each node it
meets and emits SQL only for what they accept (sqlglot likewise keeps annotating types apart
from generating SQL). They run inside the compiler's one walk rather than as a pass before
it because a path's type comes from resolving it in its scope, which the compiler does anyway;
so errors come in the order they are met and a new query is walked once.
"""

from __future__ import annotations

from dataclasses import dataclass

from cairn.query import ast
from cairn.query.coerce import INT64, INTEGRAL, NUMERIC, error, to_boolean, to_datetime, to_number
from cairn.schema import SCHEMA

#: Nodes typed by what they meet: ``x = '5'`` is a number if ``x`` is one.
PENDING = (ast.Literal, ast.EnumConst, ast.Timestamp)

#: The parameters a query may use, and their types (icat.server binds only ``:user``).
PARAMETERS = {"user": "String"}

AGGREGATES = frozenset({"COUNT", "MIN", "MAX", "AVG", "SUM"})


@dataclass(frozen=True, slots=True)
class Signature:
    """A scalar function: ``low`` to ``high`` arguments (no upper bound when None), the type
    each must have (``args``, the last one repeating; empty: not values) and the type of the
    result (None: that of the first argument)."""

    low: int
    high: int | None
    args: tuple[str, ...]
    result: str | None

    def arg(self, i: int) -> str:
        return self.args[min(i, len(self.args) - 1)]


#: Argument types: "String" (a string, or a whole number as its digits), "Integer" (a whole
#: number), "Double" (any number).
SIGNATURES = {
    "CONCAT": Signature(2, None, ("String",), "String"),
    "SUBSTRING": Signature(2, 3, ("String", "Integer"), "String"),
    "LOWER": Signature(1, 1, ("String",), "String"),
    "UPPER": Signature(1, 1, ("String",), "String"),
    "LENGTH": Signature(1, 1, ("String",), "Integer"),
    "LOCATE": Signature(2, 3, ("String", "String", "Integer"), "Integer"),
    "ABS": Signature(1, 1, ("Double",), None),
    "SQRT": Signature(1, 1, ("Double",), "Double"),
    "MOD": Signature(2, 2, ("Integer",), "Integer"),
    "SIZE": Signature(1, 1, (), "Integer"),  # of a collection-valued path
    "CURRENT_TIMESTAMP": Signature(0, None, (), "Date"),
    "CURRENT_DATE": Signature(0, None, (), "Date"),
    "CURRENT_TIME": Signature(0, None, (), "Time"),
}


# -- literals ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Const:
    """A literal once typed: ``value`` converted for what it meets, ``typ`` its type there and
    ``own`` the type of the value itself, which is what it is bound as (None: NULL). TRUE met
    by a Long is the Integer 1 typed Long; a string met by a Date is a ``datetime``, aware if
    the text carried a zone."""

    value: object
    typ: str | None
    own: str | None


def literal(node: ast.Literal, expect: str | None) -> Const:
    """A constant typed by ``expect`` (what it meets): quoted text is converted as MySQL does
    under icat.server (:mod:`.coerce`), and what cannot be converted is refused."""
    value, kind, pos = node.value, node.kind, node.pos
    if kind == "null" or value is None:
        return Const(None, expect, None)
    if kind == "string":
        assert isinstance(value, str)
        if expect in NUMERIC:
            n = to_number(value, "number" if expect == "entity" else expect, pos)
            return Const(n, expect, "Double" if isinstance(n, float) else "Long")
        if expect == "Date":
            return Const(to_datetime(value, pos), "Date", "Date")
        if expect == "boolean":
            return Const(to_boolean(value, pos), "boolean", "boolean")
        if expect is not None and expect in SCHEMA.enums:
            return enum(ast.EnumConst(expect, value.strip(), pos), expect)
        return Const(value, "String", "String")
    if kind == "boolean":
        if expect in NUMERIC:
            return Const(int(bool(value)), expect, "Integer")
        return Const(bool(value), "boolean", "boolean")
    # integer / real
    assert isinstance(value, int | float) and not isinstance(value, bool)
    if expect == "String":
        return Const(str(value), "String", "String")
    if expect == "Date":
        raise error(f"The number {value} cannot be compared with a Date value", pos)
    if expect == "boolean" and value in (0, 1):
        return Const(bool(value), "boolean", "boolean")
    if expect is not None and expect in SCHEMA.enums:
        names = SCHEMA.enums[expect]
        if isinstance(value, int) and 0 <= value < len(names):
            return enum(ast.EnumConst(expect, names[value], pos), expect)
        raise error(f"{value} is not a value of {expect}", pos)
    if kind == "integer":
        if not INT64[0] <= int(value) <= INT64[1]:
            raise error(f"Number {value} is out of range", pos)
        return Const(value, expect if expect in INTEGRAL else "Long",
                     "Long" if abs(int(value)) >= 2**31 else "Integer")
    return Const(value, "Double", "Double")


def enum(node: ast.EnumConst, expect: str | None) -> Const:
    """An enum constant; a bare one (concise syntax) takes its enum from what it meets, and its
    name may be written in lower case."""
    if node.enum and expect in SCHEMA.enums and node.enum != expect:
        raise error(f"A {node.enum} constant cannot be compared with a {expect} value",
                    node.pos)
    typ = node.enum or (expect if expect in SCHEMA.enums else None)
    if typ is None:
        raise error(f"The type of the enum constant {node.name} is not known here", node.pos)
    if typ not in SCHEMA.enums:
        raise error(f"{typ} is not an ICAT enum type", node.pos)
    values = SCHEMA.enums[typ]
    name = node.name
    if name not in values:
        upper = name.upper()
        if upper not in values:
            raise error(f"{name} is not a value of {typ} (one of {', '.join(values)})",
                        node.pos)
        name = upper
    return Const(name, typ, typ)


def param(node: ast.Param) -> str:
    typ = PARAMETERS.get(node.name.lower())
    if typ is None:
        raise error(f"Parameter :{node.name} is not bound; only :user is", node.pos)
    return typ


# -- operators and conditions -----------------------------------------------------------------


def comparable(a: str | None, b: str | None, node: ast.Expr) -> None:
    """Refuse to compare values of different kinds (numbers of any kind compare)."""
    if a is None or b is None or a == b:
        return
    if a in NUMERIC and b in NUMERIC:
        return
    first = _a(a)
    raise error(f"{first[0].upper()}{first[1:]} value cannot be compared with {_a(b)} value",
                node.pos)


def _a(typ: str) -> str:
    """``"a Long"``, ``"an entity"``."""
    return f"an {typ}" if typ[0] in "aeiouAEIOU" else f"a {typ}"


def numeric(typ: str | None, node: ast.Expr) -> None:
    if typ is not None and typ not in NUMERIC:
        raise error(f"Arithmetic needs numbers, not a {typ} value", node.pos)


def arith(op: str, left: str | None, right: str | None, node: ast.Arith) -> str:
    """The type of ``left op right``: Double if either is (or for a division), else Long."""
    numeric(left, node.left)
    numeric(right, node.right)
    return "Double" if op == "/" or "Double" in (left, right) else "Long"


def integer(typ: str | None, node: ast.Expr, what: str) -> None:
    if typ is not None and typ not in INTEGRAL:
        raise error(f"{what} needs a whole number, not a {typ} value", node.pos)


def string(typ: str | None, node: ast.Expr, what: str) -> None:
    """An argument of a string function: a string, or a whole number (as its digits)."""
    if typ not in INTEGRAL and typ not in ("String", None):
        raise error(f"{what} needs a string, not a {typ} value", node.pos)


def text(typ: str | None, node: ast.Expr, what: str) -> None:
    """What LIKE matches: a string, or a number or date as its text."""
    if typ not in ("String", None, "Date") and typ not in NUMERIC:
        raise error(f"{what} needs a string, not a {typ} value", node.pos)


def pattern(typ: str | None, node: ast.Expr) -> None:
    if typ not in ("String", None):
        raise error(f"LIKE needs a string pattern, not a {typ} value", node.pos)


def escape(node: ast.Like) -> str | None:
    """The ESCAPE character written, if any: one character in quotes."""
    e = node.escape
    if e is None:
        return None
    if not (isinstance(e, ast.Literal) and e.kind == "string" and isinstance(e.value, str)
            and len(e.value) == 1):
        raise error("ESCAPE needs a single character in quotes", e.pos)
    return e.value


def trim_char(node: ast.Trim) -> str | None:
    """The character TRIM removes, if written: one character in quotes."""
    c = node.char
    if c is None:
        return None
    if not (isinstance(c, ast.Literal) and c.kind == "string" and isinstance(c.value, str)
            and len(c.value) == 1):
        raise error("TRIM needs a single character in quotes", c.pos)
    return c.value


def check_pattern(node: ast.Like, escape: str) -> None:
    """A literal pattern ending in an unescaped escape character is an error on PostgreSQL,
    never matches on SQLite and matches literally on MariaDB: refuse it everywhere."""
    pat = node.pattern
    if not (isinstance(pat, ast.Literal) and isinstance(pat.value, str)):
        return
    i = 0
    while i < len(pat.value):
        if pat.value[i] == escape:
            if i + 1 == len(pat.value):
                raise error(f"The LIKE pattern ends with its escape character {escape!r}; "
                            f"write it twice to match it", pat.pos)
            i += 1
        i += 1


def condition(typ: str | None, node: ast.Expr) -> None:
    """A value used as a condition must be a boolean."""
    if typ != "boolean":
        raise error("A condition was expected", node.pos)


# -- functions --------------------------------------------------------------------------------


def _arity(name: str, node: ast.Func, low: int, high: int | None) -> None:
    n = len(node.args)
    if high is None:
        if n < low:
            raise error(f"{name} takes at least {low} arguments", node.pos)
    elif not low <= n <= high:
        allowed = " or ".join(map(str, range(low, high + 1)))
        raise error(f"{name} takes {allowed} arguments, not {n}", node.pos)


def aggregate(name: str, node: ast.Func, clause: str) -> None:
    """COUNT, MIN, MAX, AVG, SUM: one argument, never in WHERE or GROUP BY."""
    _arity(name, node, 1, 1)
    if clause in ("WHERE", "GROUP BY"):
        raise error(f"{name} is not allowed in the {clause} clause", node.pos)


def aggregate_type(name: str, typ: str | None, node: ast.Func) -> str | None:
    """The type of an aggregate of values of type ``typ``."""
    if name in ("SUM", "AVG") and typ is not None and typ not in NUMERIC:
        raise error(f"{name} needs numbers, not a {typ} value", node.args[0].pos)
    if name in ("MIN", "MAX") and typ == "boolean":
        raise error(f"{name} needs numbers, strings or dates, not a boolean value",
                    node.args[0].pos)
    if name == "COUNT":
        return "Long"
    if name == "SUM":
        return "Double" if typ == "Double" else "Long"
    if name == "AVG":
        return "Double"
    return typ


def signature(name: str, node: ast.Func) -> Signature:
    """The signature of scalar function ``name``, its number of arguments checked."""
    sig = SIGNATURES.get(name)
    if sig is None:
        raise error(f"Unknown function {name}", node.pos)
    _arity(name, node, sig.low, sig.high)
    return sig


def argument(want: str, typ: str | None, node: ast.Expr, function: str) -> None:
    """An argument of type ``typ`` where the function wants ``want`` (see SIGNATURES)."""
    if want == "String":
        string(typ, node, function)
    elif want == "Integer":
        integer(typ, node, function)
    else:
        numeric(typ, node)


def collection(name: str, node: ast.Func) -> ast.Path:
    """The argument of SIZE: a path (the compiler checks that it ends in a collection)."""
    path = node.args[0]
    if not isinstance(path, ast.Path):
        raise error(f"{name} needs a collection-valued path", node.pos)
    return path
