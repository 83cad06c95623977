"""TopCat's ``queryOffset``: a JPQL tail clients send to list downloads, parsed, never pasted.

TopCat appends the text to ``SELECT download FROM Download download WHERE …`` (for users inside
``AND (…)`` with ``)`` forbidden; for admins raw). Here it is lexed and parsed into a small
syntax tree (:func:`parse`), then compiled against the CAIRN_DOWNLOAD table with every value a
bound parameter (:func:`parse_query_offset`). What clients send, all supported:

- DataGateway download plugin (``downloadApi.ts``): ``where download.isDeleted = false``,
  ``where download.id = 12``;
- its admin table (``adminDownloadStatusTable`` / ``buildQueryOffset`` in ``downloadApiHooks``),
  across its versions: ``WHERE download.facilityName = 'F'`` (older: ``UPPER(download.
  facilityName) = 'F'``), ``AND download.createdAt BETWEEN {ts '2024-01-01 00:00:00'} AND
  {ts '9999-12-31 23:59:00'}`` (also without seconds, with year 0000, or with ``UPPER(…)``
  round the date field), ``AND UPPER(download.<col>) LIKE CONCAT('%', 'VALUE', '%')``, ``NOT
  LIKE``, ``AND download.<col> = 'value'`` (``''``-escaped; for ``id`` a quoted number),
  ``ORDER BY download.<col> asc|desc, …, download.id ASC`` (older: ``UPPER(download.id)``),
  ``LIMIT skip, count``; <col> is any column of the table, ``id`` and ``status`` included;
- TopCat's AngularJS admin page: ``1 = 1 and download.x between {ts '…'} and {ts '…'} and
  UPPER(download.x) like concat('%', 'V', '%') order by download.x asc , download.id asc
  limit 0, 10`` (no WHERE);
- pollcat (an external transport agent): ``where download.transport = 'globus' and
  download.isDeleted = false and download.status =
  org.icatproject.topcat.domain.DownloadStatus.RESTORING`` (the JPQL enum constant).

Semantics. Fields are ``download.<camelCase>`` (alias and name case-insensitive). Times are
naive UTC. ``UPPER``/``LOWER`` of a number, flag or time is that value (``UPPER(download.id)``
orders numerically), and LIKE reads a non-text field as text. ``status`` is the status clients
are shown: DELIVERED reads as COMPLETE (so ``status = 'COMPLETE'`` finds delivered downloads
and ``status = 'DELIVERED'`` none; ``download.isDelivered`` tells them apart). ``= NULL`` is
refused (write ``IS NULL``), as are subqueries, other functions, ``;`` and unknown fields.
LIKE follows the database's own rules: whether case matters (SQLite and MariaDB ignore ASCII
case, PostgreSQL does not; clients wrap both sides in UPPER) and whether backslash escapes
(MariaDB, PostgreSQL) unless ``ESCAPE 'c'`` is given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, NamedTuple

from sqlalchemy import (
    Boolean,
    DateTime,
    Integer,
    String,
    Table,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    not_,
    or_,
    true,
)
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeEngine

from cairn.downloads.model import Status
from cairn.errors import IcatError, bad_parameter

#: Refusals that keep a hostile text cheap and within every database's limits: its length,
#: how deep ( and function calls nest (SQLite before 3.46 has a fixed parser stack: 24 levels
#: of NOT (… OR …) overflow it), how many comparisons it makes (SQLite nests an AND chain one
#: level per term, up to 1000), how many values it binds (databases cap bound parameters) and
#: CONCAT's arguments (nested the same way). No client comes near them.
MAX_LENGTH = 65_536
MAX_DEPTH = 16
MAX_CONDITIONS = 256
MAX_VALUES = 1000
MAX_CONCAT = 16
#: Field values are 64-bit; LIMIT numbers are Java ints, as TopCat parses them.
_MAX_INT = 2**63 - 1
_MAX_ROWS = 2**31 - 1

#: camelCase field (as TopCat's JSON names it) -> (column key, kind). Kinds: int, str, bool,
#: time; "status" (text shown as TopCat's status) and "delivered" (status = DELIVERED).
FIELDS: dict[str, tuple[str, str]] = {
    "id": ("id", "int"), "facilityName": ("facility", "str"), "userName": ("user", "str"),
    "fullName": ("full_name", "str"), "transport": ("transport", "str"),
    "fileName": ("file_name", "str"), "preparedId": ("prepared_id", "str"),
    "email": ("email", "str"), "isEmailSent": ("is_email_sent", "bool"),
    "status": ("status", "status"), "priority": ("priority", "int"), "size": ("size", "int"),
    "isTwoLevel": ("is_two_level", "bool"), "createdAt": ("created", "time"),
    "completedAt": ("completed", "time"), "isDeleted": ("is_deleted", "bool"),
    "deletedAt": ("deleted_at", "time"), "isDelivered": ("status", "delivered"),
    "deliveredAt": ("delivered", "time"),
}
_FIELD_NAMES = {name.lower(): name for name in FIELDS}
_KIND_NAMES = {"int": "a whole number", "str": "text", "bool": "true or false",
               "time": "a time", "null": "NULL"}


# -- the syntax tree ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Field:
    name: str  # canonical camelCase, a key of FIELDS
    pos: int


@dataclass(frozen=True)
class Literal:
    value: str | int | bool | datetime | None
    pos: int


@dataclass(frozen=True)
class Call:
    name: str  # UPPER, LOWER or CONCAT
    args: tuple[Operand, ...]
    pos: int


Operand = Field | Literal | Call


@dataclass(frozen=True)
class Compare:
    op: str  # = != < <= > >= (<> is read as !=)
    left: Operand
    right: Operand
    pos: int


@dataclass(frozen=True)
class Like:
    operand: Operand
    pattern: Operand
    escape: str | None
    negated: bool
    pos: int


@dataclass(frozen=True)
class In:
    operand: Operand
    items: tuple[Operand, ...]
    negated: bool
    pos: int


@dataclass(frozen=True)
class Between:
    operand: Operand
    low: Operand
    high: Operand
    negated: bool
    pos: int


@dataclass(frozen=True)
class IsNull:
    operand: Operand
    negated: bool
    pos: int


@dataclass(frozen=True)
class Not:
    condition: Condition


@dataclass(frozen=True)
class And:
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class Or:
    conditions: tuple[Condition, ...]


Condition = Compare | Like | In | Between | IsNull | Not | And | Or


@dataclass(frozen=True)
class OrderItem:
    operand: Operand
    descending: bool
    pos: int


@dataclass(frozen=True)
class Parsed:
    where: Condition | None
    order: tuple[OrderItem, ...]
    offset: int | None
    limit: int | None


@dataclass(frozen=True)
class QueryOffset:
    """A compiled queryOffset. ``order_by`` ends with ``id`` whenever rows are ordered or
    paged (unless the text orders by id itself), so pages never overlap."""

    where: ColumnElement[bool] | None
    order_by: list[ColumnElement[Any]]
    offset: int | None
    limit: int | None


# -- entry points ------------------------------------------------------------------------------

def parse_query_offset(text: str | None, table: Table) -> QueryOffset:
    """Parse ``text`` and compile it over ``table`` (CAIRN_DOWNLOAD); BAD_PARAMETER, located at
    the offending character, for anything else."""
    parsed = parse(text)
    c = _Compiler(text or "", table)
    where = c.condition(parsed.where) if parsed.where is not None else None
    order_by: list[ColumnElement[Any]] = []
    by_id = False
    for item in parsed.order:
        v = c.operand(item.operand)
        if v.expr is None or not _has_field(item.operand):
            raise _error(text or "", item.pos, "ORDER BY takes fields, such as download.id")
        by_id = by_id or (isinstance(item.operand, Field) and item.operand.name == "id")
        order_by.append(v.expr.desc() if item.descending else v.expr.asc())
    if (order_by or parsed.limit is not None) and not by_id:
        order_by.append(table.c.id.asc())
    return QueryOffset(where, order_by, parsed.offset, parsed.limit)


def apply(q: Select[Any], qo: QueryOffset) -> Select[Any]:
    """``q`` narrowed by ``qo``: its condition ANDed to q's own, then its order and page."""
    if qo.where is not None:
        q = q.where(qo.where)
    if qo.order_by:
        q = q.order_by(*qo.order_by)
    if qo.offset:
        q = q.offset(qo.offset)
    if qo.limit is not None:
        q = q.limit(qo.limit)
    return q


def parse(text: str | None) -> Parsed:
    """The syntax tree of ``[WHERE] [condition] [ORDER BY …] [LIMIT offset, count]``."""
    if text is None or not text.strip():
        return Parsed(None, (), None, None)
    if len(text) > MAX_LENGTH:
        raise bad_parameter(f"queryOffset is too long: at most {MAX_LENGTH} characters")
    return _Parser(text).query()


# -- lexer -------------------------------------------------------------------------------------

class _Tok(NamedTuple):
    kind: str  # WORD STRING INT TS OP ( ) , EOF
    value: Any
    pos: int


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*(?:\.[A-Za-z_][A-Za-z0-9_$]*)*", re.ASCII)
_INT = re.compile(r"-?[0-9]+", re.ASCII)
_OPS = ("<>", "!=", "<=", ">=", "=", "<", ">")
_ESCAPE = re.compile(r"\{\s*(ts|d)\s+('(?:[^']|'')*'|[^'}]*?)\s*\}", re.ASCII | re.IGNORECASE)
_TIME = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})"
                   r"(?:[ T](\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,9}))?)?)?"
                   r"\s*(Z|[+-]\d{2}:?\d{2})?", re.ASCII | re.IGNORECASE)


def _lex(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == "'":
            j, parts = i + 1, []
            while True:
                k = text.find("'", j)
                if k < 0:
                    raise _error(text, i, "unterminated string: a ' is missing")
                parts.append(text[j:k])
                if text.startswith("''", k):
                    parts.append("'")
                    j = k + 2
                else:
                    break
            toks.append(_Tok("STRING", "".join(parts), i))
            i = k + 1
        elif m := _INT.match(text, i):
            if text.startswith(".", m.end()) and text[m.end() + 1:m.end() + 2].isdigit():
                raise _error(text, i, "only whole numbers are allowed")
            digits = m.group().lstrip("-")
            if len(digits) > 19 or int(digits) > _MAX_INT:
                raise _error(text, i, f"number out of range (at most {_MAX_INT})")
            toks.append(_Tok("INT", int(m.group()), i))
            i = m.end()
        elif m := _WORD.match(text, i):
            toks.append(_Tok("WORD", m.group(), i))
            i = m.end()
        elif ch == "{":
            m = _ESCAPE.match(text, i)
            if not m:
                raise _error(text, i, "expected a time as {ts 'yyyy-mm-dd hh:mm:ss'}")
            raw = m.group(2)
            if raw.startswith("'"):
                raw = raw[1:-1].replace("''", "'")
            toks.append(_Tok("TS", _time(text, i, raw), i))
            i = m.end()
        elif ch in "(),":
            toks.append(_Tok(ch, ch, i))
            i += 1
        elif op := next((o for o in _OPS if text.startswith(o, i)), None):
            toks.append(_Tok("OP", "!=" if op == "<>" else op, i))
            i += len(op)
        elif ch == ";":
            raise _error(text, i, "';' is not allowed: a queryOffset is one condition")
        elif ch == '"':
            raise _error(text, i, "strings are written in single quotes")
        else:
            raise _error(text, i, f"unexpected character {ch!r}")
    toks.append(_Tok("EOF", None, n))
    return toks


def _time(text: str, pos: int, raw: str) -> datetime:
    """A time as clients write it (seconds, fraction and zone optional) -> naive UTC."""
    m = _TIME.fullmatch(raw.strip())
    if not m:
        raise _error(text, pos, f"{raw!r} is not a time: write 'yyyy-mm-dd hh:mm:ss'")
    year, month, day, hour, minute, second = (int(g or 0) for g in m.groups()[:6])
    fraction = (m.group(7) or "").ljust(6, "0")[:6]
    try:
        # Year 0000 (an open-ended filter of older DataGateway) is the earliest time there is.
        t = datetime(max(year, 1), month, day, hour, minute, second, int(fraction))
    except ValueError as e:
        raise _error(text, pos, f"{raw!r} is not a time: {e}") from None
    zone = m.group(8)
    if zone and zone.upper() != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        if offset >= timedelta(hours=24):
            raise _error(text, pos, f"{raw!r} has an impossible time zone")
        try:
            t = (t.replace(tzinfo=timezone(sign * offset)).astimezone(UTC)
                 .replace(tzinfo=None))
        except OverflowError:
            raise _error(text, pos, f"{raw!r} is out of range") from None
    return t


def _error(text: str, pos: int, what: str) -> IcatError:
    """``queryOffset: what (at character N: 'text there…')``, located at ``pos``."""
    if pos >= len(text):
        return bad_parameter(f"queryOffset: {what} (at the end)", pos)
    excerpt = text[pos:pos + 30] + ("…" if len(text) > pos + 30 else "")
    return bad_parameter(f"queryOffset: {what} (at character {pos + 1}: {excerpt!r})", pos)


# -- parser ------------------------------------------------------------------------------------

_STATUS_CONSTANT = re.compile(
    r"(?:org\.icatproject\.topcat\.domain\.)?DownloadStatus\.([A-Za-z_]+)", re.ASCII)


class _Parser:
    """Recursive descent; AND/OR chains and NOT runs are loops, and only ( and function calls
    nest, counted against MAX_DEPTH, so no input reaches Python's recursion limit."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _lex(text)
        self.i = 0
        self.depth = 0
        self.values = 0
        self.conditions = 0

    def query(self) -> Parsed:
        where: Condition | None = None
        if self._word("WHERE"):
            self.i += 1
            where = self.condition()
        elif not (self._word("ORDER", "LIMIT") or self._peek().kind == "EOF"):
            where = self.condition()
        order: list[OrderItem] = []
        if self._word("ORDER"):
            self.i += 1
            self._expect_word("BY")
            while True:
                pos = self._peek().pos
                operand = self.operand()
                descending = self._word("DESC")
                if descending or self._word("ASC"):
                    self.i += 1
                order.append(OrderItem(operand, descending, pos))
                if self._peek().kind != ",":
                    break
                self.i += 1
        offset = limit = None
        if self._word("LIMIT"):
            self.i += 1
            offset = self._count("offset")
            self._expect(",", "',' between the LIMIT offset and count")
            limit = self._count("count")
        tok = self._peek()
        if tok.kind == ")":
            raise self._fail(tok, "')' without a matching '('")
        if tok.kind != "EOF":
            raise self._fail(tok, "expected AND, OR, ORDER BY, LIMIT or the end")
        return Parsed(where, tuple(order), offset, limit)

    def condition(self) -> Condition:
        parts = [self.conjunction()]
        while self._word("OR"):
            self.i += 1
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def conjunction(self) -> Condition:
        parts = [self.negation()]
        while self._word("AND"):
            self.i += 1
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def negation(self) -> Condition:
        nots = 0
        while self._word("NOT"):
            nots += 1
            self.i += 1
        tok = self._peek()
        if tok.kind == "(":
            self._enter(tok)
            self.i += 1
            inner = self.condition()
            self._expect(")", f"')' to close the '(' at character {tok.pos + 1}")
            self.depth -= 1
        else:
            inner = self.predicate()
        return Not(inner) if nots % 2 else inner

    def predicate(self) -> Condition:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise self._fail(self._peek(), f"too many conditions: at most {MAX_CONDITIONS}")
        left = self.operand()
        tok = self._peek()
        if tok.kind == "OP":
            self.i += 1
            return Compare(tok.value, left, self.operand(), tok.pos)
        if self._word("IS"):
            self.i += 1
            negated = self._word("NOT")
            if negated:
                self.i += 1
            self._expect_word("NULL")
            return IsNull(left, negated, tok.pos)
        negated = self._word("NOT")
        if negated:
            self.i += 1
            tok = self._peek()
        if self._word("LIKE"):
            self.i += 1
            pattern = self.operand()
            escape = None
            if self._word("ESCAPE"):
                self.i += 1
                esc = self._peek()
                if esc.kind != "STRING" or len(esc.value) != 1:
                    raise self._fail(esc, "ESCAPE takes one character in quotes, as '\\'")
                escape = esc.value
                self.i += 1
            return Like(left, pattern, escape, negated, tok.pos)
        if self._word("IN"):
            self.i += 1
            self._expect("(", "'(' to start the IN list")
            items = [self.operand()]
            while self._peek().kind == ",":
                self.i += 1
                items.append(self.operand())
            self._expect(")", "')' to end the IN list")
            return In(left, tuple(items), negated, tok.pos)
        if self._word("BETWEEN"):
            self.i += 1
            low = self.operand()
            self._expect_word("AND")
            return Between(left, low, self.operand(), negated, tok.pos)
        raise self._fail(tok, "expected a comparison: = != <> < <= > >=, LIKE, IN, BETWEEN "
                              "or IS [NOT] NULL")

    def operand(self) -> Operand:
        tok = self._peek()
        self.i += 1
        if tok.kind in ("STRING", "INT", "TS"):
            return self._literal(tok.value, tok)
        if tok.kind != "WORD":
            self.i -= 1
            if tok.kind == "EOF":
                raise self._fail(tok, "expected a field or a value")
            raise self._fail(tok, f"expected a field or a value, not {tok.value!r}")
        word: str = tok.value
        upper = word.upper()
        if self._peek().kind == "(":
            if upper not in ("UPPER", "LOWER", "CONCAT"):
                raise self._fail(tok, f"function {word} is not supported "
                                      "(only UPPER, LOWER and CONCAT)")
            return self._call(upper, tok)
        if upper in ("TRUE", "FALSE"):
            return self._literal(upper == "TRUE", tok)
        if upper == "NULL":
            return self._literal(None, tok)
        if upper == "SELECT":
            raise self._fail(tok, "subqueries are not allowed")
        alias, _, name = word.partition(".")
        if alias.lower() == "download" and "." not in name:
            canonical = _FIELD_NAMES.get(name.lower())
            if canonical is None:
                raise self._fail(tok, f"unknown field {word}; the fields are "
                                      + ", ".join(f"download.{f}" for f in FIELDS))
            return Field(canonical, tok.pos)
        if m := _STATUS_CONSTANT.fullmatch(word):
            if m.group(1) not in Status.__members__:
                raise self._fail(tok, f"{m.group(1)} is not a download status; the statuses "
                                      "are " + ", ".join(Status.__members__))
            return self._literal(m.group(1), tok)
        if word.lower() in _FIELD_NAMES:
            raise self._fail(tok, f"write fields as download.{_FIELD_NAMES[word.lower()]}")
        raise self._fail(tok, f"unexpected word {word!r}; fields are written download.<name> "
                              "and text in single quotes")

    def _call(self, name: str, tok: _Tok) -> Call:
        self._enter(tok)
        self.i += 1  # the (
        args = [self.operand()]
        while self._peek().kind == ",":
            self.i += 1
            args.append(self.operand())
        self._expect(")", f"')' to close {name}(")
        self.depth -= 1
        if name == "CONCAT" and not 2 <= len(args) <= MAX_CONCAT:
            raise self._fail(tok, f"CONCAT takes 2 to {MAX_CONCAT} arguments")
        if name != "CONCAT" and len(args) != 1:
            raise self._fail(tok, f"{name} takes one argument")
        return Call(name, tuple(args), tok.pos)

    def _literal(self, value: str | int | bool | datetime | None, tok: _Tok) -> Literal:
        self.values += 1
        if self.values > MAX_VALUES:
            raise self._fail(tok, f"too many values: at most {MAX_VALUES}")
        return Literal(value, tok.pos)

    def _count(self, what: str) -> int:
        tok = self._peek()
        if tok.kind != "INT" or not 0 <= tok.value <= _MAX_ROWS:
            raise self._fail(tok, f"the LIMIT {what} must be a whole number from 0 to "
                                  f"{_MAX_ROWS}")
        self.i += 1
        return int(tok.value)

    def _enter(self, tok: _Tok) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self._fail(tok, f"nested too deeply (at most {MAX_DEPTH} levels of "
                                  "parentheses and functions)")

    def _peek(self) -> _Tok:
        return self.toks[self.i]

    def _word(self, *words: str) -> bool:
        tok = self.toks[self.i]
        return tok.kind == "WORD" and tok.value.upper() in words

    def _expect_word(self, word: str) -> None:
        if not self._word(word):
            raise self._fail(self._peek(), f"expected {word}")
        self.i += 1

    def _expect(self, kind: str, what: str) -> None:
        if self._peek().kind != kind:
            raise self._fail(self._peek(), f"expected {what}")
        self.i += 1

    def _fail(self, tok: _Tok, what: str) -> IcatError:
        return _error(self.text, tok.pos, what)


# -- compiler ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Value:
    """An operand compiled: ``expr`` is None for a literal, bound later with the type of what
    it is compared with (so a time binds as the DateTime column stores it)."""

    expr: ColumnElement[Any] | None
    kind: str
    value: Any
    pos: int
    status: bool = False  # the bare status column: equality may use its index


_NATURAL: dict[str, TypeEngine[Any]] = {"int": Integer(), "str": String(), "bool": Boolean(),
                                        "time": DateTime()}


class _Compiler:
    def __init__(self, text: str, table: Table) -> None:
        self.text = text
        self.t = table

    def condition(self, node: Condition) -> ColumnElement[bool]:
        if isinstance(node, And):
            return and_(*(self.condition(c) for c in node.conditions))
        if isinstance(node, Or):
            return or_(*(self.condition(c) for c in node.conditions))
        if isinstance(node, Not):
            return not_(self.condition(node.condition))
        if isinstance(node, Compare):
            return self.compare(node.op, self.operand(node.left), self.operand(node.right),
                                node.pos)
        if isinstance(node, IsNull):
            v = self.operand(node.operand)
            if v.expr is None:
                raise _error(self.text, v.pos, "IS NULL applies to fields")
            return v.expr.is_not(None) if node.negated else v.expr.is_(None)
        if isinstance(node, Like):
            return self.like(node)
        if isinstance(node, In):
            return self.in_(node)
        v = self.operand(node.operand)
        if v.kind == "bool":
            raise _error(self.text, node.pos, "BETWEEN does not apply to true/false")
        lhs = self._bind(v, v.kind)
        low, high = (self._bind(self._against(v, self.operand(o), node.pos), v.kind, lhs.type)
                     for o in (node.low, node.high))
        between = lhs.between(low, high)
        return not_(between) if node.negated else between

    def operand(self, node: Operand) -> _Value:
        if isinstance(node, Literal):
            kind = ("null" if node.value is None else "bool" if isinstance(node.value, bool)
                    else "int" if isinstance(node.value, int)
                    else "time" if isinstance(node.value, datetime) else "str")
            return _Value(None, kind, node.value, node.pos)
        if isinstance(node, Field):
            key, kind = FIELDS[node.name]
            col = self.t.c[key]
            if kind == "status":
                # What clients are shown (Download.to_json): DELIVERED is COMPLETE to them.
                shown = case((col == Status.DELIVERED.value, Status.COMPLETE.value), else_=col)
                return _Value(shown, "str", None, node.pos, status=True)
            if kind == "delivered":
                return _Value(col == Status.DELIVERED.value, "bool", None, node.pos)
            return _Value(col, kind, None, node.pos)
        args = [self.operand(a) for a in node.args]
        if node.name == "CONCAT":
            for a in args:
                if a.kind != "str":
                    raise _error(self.text, a.pos, "CONCAT joins text")
            joined = self._bind(args[0], "str")
            for a in args[1:]:
                joined = joined + self._bind(a, "str")
            return _Value(joined, "str", None, node.pos)
        (arg,) = args
        if arg.kind != "str":
            return arg  # the case of a number, flag or time is itself
        expr = self._bind(arg, "str")
        return _Value(func.upper(expr) if node.name == "UPPER" else func.lower(expr),
                      "str", None, node.pos)

    def compare(self, op: str, left: _Value, right: _Value, pos: int) -> ColumnElement[bool]:
        if "null" in (left.kind, right.kind):
            raise _error(self.text, pos, "nothing equals NULL: write IS NULL or IS NOT NULL")
        if left.expr is None and right.expr is not None:
            # Keep the field on the left: x < 5 reads 5 > x.
            op = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}.get(op, op)
            left, right = right, left
        right = self._against(left, right, pos)
        if left.kind == "bool" and op not in ("=", "!="):
            raise _error(self.text, pos, f"true/false compare only with = or !=, not {op}")
        if left.status and right.expr is None and op in ("=", "!="):
            return self._status_in([right.value], op == "!=")
        lhs = self._bind(left, left.kind)
        rhs = self._bind(right, left.kind, lhs.type)
        if op == "=":
            return lhs == rhs
        if op == "!=":
            return lhs != rhs
        if op == "<":
            return lhs < rhs
        if op == "<=":
            return lhs <= rhs
        if op == ">":
            return lhs > rhs
        return lhs >= rhs

    def like(self, node: Like) -> ColumnElement[bool]:
        v = self.operand(node.operand)
        pattern = self.operand(node.pattern)
        if v.kind == "null":
            raise _error(self.text, v.pos, "LIKE applies to fields")
        if pattern.kind != "str":
            raise _error(self.text, pattern.pos, "LIKE takes a pattern in quotes, as '%abc%'")
        lhs = self._bind(v, v.kind)
        if v.kind != "str":
            lhs = cast(lhs, String)  # a number, flag or time read as text
        rhs = self._bind(pattern, "str")
        if node.negated:
            return lhs.not_like(rhs, escape=node.escape)
        return lhs.like(rhs, escape=node.escape)

    def in_(self, node: In) -> ColumnElement[bool]:
        v = self.operand(node.operand)
        items = [self._against(v, self.operand(i), node.pos) for i in node.items]
        if v.status and all(i.expr is None for i in items):
            return self._status_in([i.value for i in items], node.negated)
        lhs = self._bind(v, v.kind)
        rhs = [self._bind(i, v.kind, lhs.type) for i in items]
        return lhs.not_in(rhs) if node.negated else lhs.in_(rhs)

    def _status_in(self, values: list[Any], negated: bool) -> ColumnElement[bool]:
        """status [NOT] IN (values) on the stored column (so its index serves): COMPLETE also
        means DELIVERED, and DELIVERED, which clients never see, matches nothing."""
        stored: list[str] = []
        for s in values:
            if s == Status.COMPLETE.value:
                stored += [Status.COMPLETE.value, Status.DELIVERED.value]
            elif s != Status.DELIVERED.value:
                stored.append(s)
        col = self.t.c.status
        if not stored:
            return true() if negated else false()
        stored = list(dict.fromkeys(stored))
        return col.not_in(stored) if negated else col.in_(stored)

    def _against(self, target: _Value, v: _Value, pos: int) -> _Value:
        """``v`` made comparable with ``target``: a literal converted to its kind (a quoted
        number for a number field, a quoted time for a time field), else kinds must match."""
        if "null" in (v.kind, target.kind):
            raise _error(self.text, pos, "nothing equals NULL: write IS NULL or IS NOT NULL")
        if v.kind == target.kind:
            return v
        if v.expr is None and v.kind == "str" and target.kind == "int":
            if re.fullmatch(r"-?[0-9]{1,19}", v.value) and abs(int(v.value)) <= _MAX_INT:
                return _Value(None, "int", int(v.value), v.pos)
        elif v.expr is None and v.kind == "str" and target.kind == "time":
            return _Value(None, "time", _time(self.text, v.pos, v.value), v.pos)
        raise _error(self.text, v.pos, f"expected {_KIND_NAMES[target.kind]} here, "
                                       f"not {_KIND_NAMES[v.kind]}")

    @staticmethod
    def _bind(v: _Value, kind: str, type_: TypeEngine[Any] | None = None) -> ColumnElement[Any]:
        """The SQL of ``v``: its expression, or its literal as a bound parameter typed like
        the other side (so booleans and times are stored-format values)."""
        if v.expr is not None:
            return v.expr
        return literal(v.value, type_ if type_ is not None else _NATURAL[kind])


def _has_field(node: Operand) -> bool:
    if isinstance(node, Field):
        return True
    if isinstance(node, Call):
        return any(_has_field(a) for a in node.args)
    return False
