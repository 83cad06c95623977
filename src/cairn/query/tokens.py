"""The lexer of ICAT query text (JPQL style, concise style and get).

Hand-written rather than generated (Lark): icat.server's lexical rules are unusual enough that
a grammar would fight them — a dotted path ``ds.investigation.name`` is ONE token, ``-`` glued
to a digit starts a negative number, ``{ts …}`` is a single literal and ``<->`` only exists in
the concise syntax. A 150-line scanner states those rules directly.

Deliberate difference from icat.server: tabs and newlines are whitespace (it only skips ' ').
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from datetime import datetime
from typing import NamedTuple

from cairn.errors import IcatError
from cairn.query.errors import char_context, error_at, expected, semantic
from cairn.query.limits import MAX_NESTING

#: JPQL-style keywords (icat.server's list); any other word is a NAME.
JPQL_KEYWORDS = frozenset("""
    ABS ALL AND ANY AS ASC AVG BETWEEN BOTH BY CONCAT COUNT CURRENT_DATE CURRENT_TIME
    CURRENT_TIMESTAMP DESC DISTINCT DIV EMPTY ESCAPE FALSE FETCH FROM GROUP HAVING IN INCLUDE
    INNER IS JOIN LEADING LEFT LENGTH LIMIT LOCATE LOWER MAX MEMBER MIN MINUS MOD MULT NOT NULL
    OBJECT OR ORDER OUTER PLUS REAL SELECT SIZE SQRT SUBSTRING SUM TIMESTAMP TRAILING TRIM TRUE
    UPPER WHERE""".split())  # noqa: SIM905 (a word list reads better)

#: Keywords of the concise (old) syntax; TRUE/FALSE stay NAMEs there, as in icat.server.
CONCISE_KEYWORDS = frozenset("""
    AND OR NOT DISTINCT ORDER BY ASC DESC IN BETWEEN INCLUDE MIN MAX AVG COUNT SUM""".split())  # noqa: SIM905

WHITESPACE = " \t\n\r\f\v"

_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?", re.ASCII)
_TIMESTAMP = re.compile(
    r"\{\s*ts\s+(\d{4}-\d{2}-\d{2})\s+(\d{2}:\d{2}:\d{2})\s*\}", re.ASCII)

_SINGLE = {"(": "OPENPAREN", ")": "CLOSEPAREN", ",": "COMMA", "=": "COMPOP"}
_JPQL_SINGLE = {"+": "PLUS", "-": "MINUS", "*": "MULT", "/": "DIV"}
_CONCISE_SINGLE = {"[": "BRA", "]": "KET"}


class Token(NamedTuple):
    """``kind`` is icat.server's token type name (NAME, STRING, INTEGER, REAL, PARAMETER,
    TIMESTAMP, COMPOP, OPENPAREN, CLOSEPAREN, COMMA, PLUS, MINUS, MULT, DIV, BRA, KET, ENTSEP,
    a keyword such as SELECT, or EOF). ``value`` is the meaning (unquoted string, int, float,
    datetime, upper-case keyword, operator with ``!=`` kept); ``text`` the source spelling."""

    kind: str
    value: str | int | float | datetime
    pos: int
    text: str


def tokenize(text: str, concise: bool = False) -> list[Token]:
    """Split ``text`` into tokens, ending with an EOF token at ``len(text)``."""
    keywords = CONCISE_KEYWORDS if concise else JPQL_KEYWORDS
    singles = {**_SINGLE, **(_CONCISE_SINGLE if concise else _JPQL_SINGLE)}
    out: list[Token] = []
    n = len(text)
    i = 0
    while i < n:
        c = text[i]
        if c in WHITESPACE:
            i += 1
        elif c.isalpha() or c in "$_":
            j = i + 1
            while j < n and (text[j].isalnum() or text[j] in "_.$"):
                j += 1
            word = text[i:j]
            up = word.upper()
            if up in keywords:
                out.append(Token(up, up, i, word))
            elif up == "LIKE":
                out.append(Token("COMPOP", "LIKE", i, word))
            else:
                out.append(Token("NAME", word, i, word))
            i = j
        elif "0" <= c <= "9" or (c == "-" and (concise or _digit_at(text, i + 1))):
            i = _number(text, i, out)
        elif c == "'":
            i = _string(text, i, out)
        elif c == ":":
            j = i + 1
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            if j == i + 1:
                raise _lex_error(text, i, "Parameter name expected after ':'")
            out.append(Token("PARAMETER", text[i + 1:j], i, text[i:j]))
            i = j
        elif c == "<":
            nxt = text[i + 1:i + 2]
            if concise and nxt == "-":
                if text[i + 2:i + 3] != ">":
                    raise _unexpected(text, i + 1)
                out.append(Token("ENTSEP", "<->", i, "<->"))
                i += 3
            elif nxt in (">", "="):
                out.append(Token("COMPOP", "<" + nxt, i, "<" + nxt))
                i += 2
            else:
                out.append(Token("COMPOP", "<", i, "<"))
                i += 1
        elif c == ">":
            op = ">=" if text[i + 1:i + 2] == "=" else ">"
            out.append(Token("COMPOP", op, i, op))
            i += len(op)
        elif c == "!":
            if text[i + 1:i + 2] != "=":
                raise _unexpected(text, i)
            out.append(Token("COMPOP", "!=", i, "!="))
            i += 2
        elif c == "{":
            i = _timestamp(text, i, out)
        elif c in singles:
            out.append(Token(singles[c], c, i, c))
            i += 1
        else:
            raise _unexpected(text, i)
    out.append(Token("EOF", "", n, ""))
    return out


def _digit_at(text: str, i: int) -> bool:
    return i < len(text) and "0" <= text[i] <= "9"


def _number(text: str, i: int, out: list[Token]) -> int:
    m = _NUMBER.match(text, i)
    if m is None:  # a lone '-' in the concise syntax, where '-' always starts a number
        raise _unexpected(text, i)
    j = m.end()
    # "1e", "1.5e+", "1.2.3": icat.server's REAL state swallows these and then fails to parse.
    if j < len(text) and text[j] in ".eE":
        raise semantic(f"Invalid number {text[i:j + 1]} in {char_context(text, i)}", i)
    lit = m.group(0)
    if m.group(1) is None and m.group(2) is None:
        out.append(Token("INTEGER", int(lit), i, lit))
    else:
        value = float(lit)
        if not math.isfinite(value):
            raise semantic(f"Number {lit} is out of range", i)
        out.append(Token("REAL", value, i, lit))
    return j


def _string(text: str, i: int, out: list[Token]) -> int:
    parts: list[str] = []
    j = i + 1
    while True:
        k = text.find("'", j)
        if k < 0:
            raise semantic(f"Unterminated string starting at {text[i:i + 20]!r}", i)
        parts.append(text[j:k])
        if text[k + 1:k + 2] == "'":  # '' is one quote
            parts.append("'")
            j = k + 2
        else:
            out.append(Token("STRING", "".join(parts), i, text[i:k + 1]))
            return k + 1


def _timestamp(text: str, i: int, out: list[Token]) -> int:
    k = text.find("}", i)
    raw = text[i:] if k < 0 else text[i:k + 1]
    m = _TIMESTAMP.fullmatch(raw)
    bad = semantic(f"Timestamp {raw} is not of form {{ts yyyy-mm-dd hh:mm:ss}}.", i)
    if m is None:
        raise bad
    try:
        value = datetime.strptime(f"{m.group(1)} {m.group(2)}", "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise bad from None
    out.append(Token("TIMESTAMP", value, i, raw))
    return k + 1


def _unexpected(text: str, i: int) -> IcatError:
    return _lex_error(text, i, f"Unexpected character '{text[i]}'")


def _lex_error(text: str, i: int, what: str) -> IcatError:
    return semantic(f"{what} in {char_context(text, i)}", i)


#: Nesting allowed in one query (parentheses, NOT, unary minus, sub-selects, function calls);
#: far beyond any real query, and low enough that Python's recursion limit is never reached.
MAX_DEPTH = MAX_NESTING


class TokenStream:
    """A cursor over the tokens, shared by the JPQL and the concise parsers."""

    def __init__(self, text: str, tokens: list[Token]) -> None:
        self.text = text
        self.toks = tokens
        self.i = 0
        self.depth = 0

    def peek(self, k: int = 0) -> Token:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def at(self, *kinds: str) -> bool:
        return self.toks[self.i].kind in kinds

    def at_word(self, word: str) -> bool:
        """A NAME that the JPA grammar treats as a keyword but icat.server does not (OF, EXISTS)."""
        tok = self.toks[self.i]
        return tok.kind == "NAME" and str(tok.value).upper() == word

    def next(self) -> Token:
        tok = self.toks[self.i]
        if tok.kind != "EOF":
            self.i += 1
        return tok

    def accept(self, kind: str) -> Token | None:
        return self.next() if self.toks[self.i].kind == kind else None

    def expect(self, *kinds: str) -> Token:
        if self.toks[self.i].kind in kinds:
            return self.next()
        raise expected(self.toks, self.i, kinds)

    def fail(self, what: str, pos: int | None = None) -> IcatError:
        """``what at token X in …`` at the current token, or at the token starting at ``pos``."""
        return error_at(self.toks, self.i if pos is None else self.index_of(pos), what)

    def split(self, tok: Token) -> list[str]:
        """The parts of a dotted NAME (``ds.investigation.name``); an empty part is an error."""
        parts = str(tok.value).split(".")
        if not all(parts):
            raise self.fail(f"Invalid path {tok.value}", tok.pos)
        return parts

    def index_of(self, pos: int) -> int:
        return max(0, bisect_right([t.pos for t in self.toks], pos) - 1)

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail("Query is nested too deeply")

    def leave(self) -> None:
        self.depth -= 1
