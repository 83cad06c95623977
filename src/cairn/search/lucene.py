"""Lucene classic query syntax, as icat.lucene accepts it, parsed into a small tree.

icat.lucene hands a search's ``text`` to Lucene's ``StandardQueryParser`` with its default
settings except leading wildcards, which it allows, and with every ``/`` escaped first so
that paths are not read as regular expressions. The default operator is therefore Lucene's,
OR: ``a b`` finds either word. How AND, OR, NOT, ``+`` and ``-`` combine is Lucene classic's
(the flexible parser icat.lucene uses flattens its precedence tree to the same result):

- clauses side by side, and clauses joined by OR, are SHOULD;
- ``+x`` is MUST, ``-x``, ``!x`` and ``NOT x`` are MUST_NOT;
- ``x AND y`` makes both MUST, except that a MUST_NOT stays one (``a AND NOT b`` is
  ``+a -b``); so ``a AND b OR c`` is ``+a +b c`` and ``a OR b AND c`` is ``a +b +c``.

A ``Bool`` means what a Lucene BooleanQuery means: every ``must`` and no ``must_not``
matches, and when there is no ``must``, at least one ``should`` does. With a ``must``, the
``should`` clauses only rank. A Bool of only ``must_not`` clauses (``NOT a`` on its own)
matches nothing in Lucene.

Words are split as the index splits text (``text.py``): ``Run_001.NXS`` becomes a ``Leaf``
whose parts ``run 001 nxs`` must appear adjacent and in order, like a phrase. Outside quotes,
``*`` and ``?`` are wildcards within a part; inside quotes, or escaped, they separate words.
Ranges, fuzzy and proximity searches and regular expressions are not supported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeAlias

from cairn.search.text import tokens

MAX_DEPTH = 100
"""Deepest nesting of parentheses accepted: a bound on recursion, far above real queries."""


@dataclass(frozen=True)
class Leaf:
    """Consecutive token patterns that must appear adjacent, in order, in one field value.

    ``field`` is ``None`` for the search target's default fields, else the name as written
    (``sample.type.name``). Each part is lower-case letters and digits, possibly with ``*``
    (any run of token characters, possibly none) and ``?`` (exactly one) wildcards.
    """

    field: str | None
    parts: tuple[str, ...]


@dataclass(frozen=True)
class MatchAll:
    """``*:*``, or a lone ``*``: every document."""


@dataclass(frozen=True)
class Bool:
    """Lucene's BooleanQuery: see the module documentation for what it matches."""

    must: tuple[Node, ...] = ()
    should: tuple[Node, ...] = ()
    must_not: tuple[Node, ...] = ()


Node: TypeAlias = Leaf | MatchAll | Bool


class QuerySyntaxError(ValueError):
    """Free text that is not a query; ``position`` is the 0-based offset of the problem."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


# Token kinds.
_TERM, _PHRASE, _BARE, _LPAREN, _RPAREN, _COLON, _BOOST = range(7)
_AND, _OR, _NOT, _PLUS, _MINUS, _EOF = range(7, 13)
_CLAUSE_START = frozenset({_TERM, _PHRASE, _BARE, _LPAREN})
_KEYWORDS = {"AND": _AND, "&&": _AND, "OR": _OR, "||": _OR, "NOT": _NOT}

# Clause occurrences.
_MUST, _SHOULD, _MUST_NOT = range(3)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: int
    pos: int
    raw: str  # the source text, for messages
    text: str = ""  # a term: the text to split into parts, escaped wildcards blanked
    name: str = ""  # a term: its text unescaped (a field name); a phrase: its words
    wild: bool = False  # a term: has an unescaped * or ?


_SPACE = re.compile(r"\s+")
# The characters that end a term, besides whitespace. '/' is not one: icat.lucene escapes it.
_PLAIN_TERM = re.compile(r'[^\s!():^\[\]"{}~\\]+')
_PLAIN_PHRASE = re.compile(r'[^"\\]+')
_BOOST_NUMBER = re.compile(r"\^[0-9]+(?:\.[0-9]+)?")
_HEX4 = re.compile(r"[0-9A-Fa-f]{4}")
# A part of an unquoted term: letters and digits, as text.tokens, plus the two wildcards.
_PART = re.compile(r"(?:[^\W_]|[*?])+")
_STARS = re.compile(r"\*{2,}")

_RANGES = (
    "range queries are not supported in free text: search dates with 'lower' and 'upper', "
    "and numbers with 'parameters' (escape the character as \\{c} to search for it)"
)


def _escape(text: str, i: int) -> tuple[str, int]:
    """The character escaped by the backslash at ``i``, and the offset after the escape."""
    if i + 1 >= len(text):
        raise QuerySyntaxError(
            f"the backslash at position {i} ends the text and escapes nothing "
            "(write \\\\ to search for a backslash)",
            i,
        )
    if text[i + 1] == "u":  # \uXXXX, as Lucene reads it
        if not _HEX4.match(text, i + 2):
            raise QuerySyntaxError(
                f"'\\u' at position {i} must be followed by four hexadecimal digits", i
            )
        return chr(int(text[i + 2 : i + 6], 16)), i + 6
    return text[i + 1], i + 2


def _lex(text: str) -> list[_Token]:
    out: list[_Token] = []
    n = len(text)
    i = 0
    while i < n:
        c = text[i]
        if c.isspace():
            m = _SPACE.match(text, i)
            i = m.end() if m else i + 1
            continue
        if c == "(":
            out.append(_Token(_LPAREN, i, c))
        elif c == ")":
            out.append(_Token(_RPAREN, i, c))
        elif c == ":":
            out.append(_Token(_COLON, i, c))
        elif c in "+-!":
            # Followed by whitespace, Lucene reads the operator as a word, which has no
            # letters and so is dropped: "a - b" is "a b".
            if i + 1 < n and text[i + 1].isspace():
                out.append(_Token(_BARE, i, c))
            else:
                out.append(_Token(_PLUS if c == "+" else _MINUS if c == "-" else _NOT, i, c))
        elif c == '"':
            i = _lex_phrase(text, i, out)
            continue
        elif c == "^":
            m = _BOOST_NUMBER.match(text, i)
            if not m:
                raise QuerySyntaxError(
                    f"'^' at position {i} must be followed by a number (a boost, as in ^2)", i
                )
            out.append(_Token(_BOOST, i, m.group()))
            i = m.end()
            continue
        elif c == "~":
            raise QuerySyntaxError(
                f"'~' at position {i}: fuzzy and proximity searches are not supported in "
                "free text (escape it as \\~ to search for it)",
                i,
            )
        elif c in "[]{}":
            raise QuerySyntaxError(f"'{c}' at position {i}: " + _RANGES.format(c=c), i)
        else:
            i = _lex_term(text, i, out)
            continue
        i += 1
    out.append(_Token(_EOF, n, ""))
    return out


def _lex_phrase(text: str, start: int, out: list[_Token]) -> int:
    chunks: list[str] = []
    i = start + 1
    while True:
        m = _PLAIN_PHRASE.match(text, i)
        if m:
            chunks.append(m.group())
            i = m.end()
        if i >= len(text):
            raise QuerySyntaxError(
                f"unbalanced quotes: the phrase starting at position {start} is not closed",
                start,
            )
        if text[i] == '"':
            break
        ch, i = _escape(text, i)
        chunks.append(ch)
    out.append(_Token(_PHRASE, start, text[start : i + 1], name="".join(chunks)))
    return i + 1


def _lex_term(text: str, start: int, out: list[_Token]) -> int:
    plain: list[str] = []  # text to split into parts
    literal: list[str] = []  # text unescaped
    i = start
    while i < len(text):
        m = _PLAIN_TERM.match(text, i)
        if m:
            plain.append(m.group())
            literal.append(m.group())
            i = m.end()
        if i >= len(text) or text[i] != "\\":
            break
        ch, i = _escape(text, i)
        literal.append(ch)
        # An escaped wildcard is a literal character, and so separates words.
        plain.append(" " if ch in "*?" else ch)
    raw = text[start:i]
    if raw in _KEYWORDS:
        out.append(_Token(_KEYWORDS[raw], start, raw))
    else:
        joined = "".join(plain)
        wild = "*" in joined or "?" in joined
        out.append(_Token(_TERM, start, raw, joined, "".join(literal), wild))
    return i


def _term_parts(token: _Token) -> tuple[str, ...]:
    if not token.wild:
        return tuple(tokens(token.text))
    return tuple(_STARS.sub("*", p) for p in _PART.findall(token.text.lower()))


def _describe(token: _Token) -> str:
    return "the end of the text" if token.kind == _EOF else f"'{token.raw}' at position {token.pos}"


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _lex(text)
        self.i = 0

    def peek(self) -> _Token:
        return self.toks[self.i]

    def take(self) -> _Token:
        tok = self.toks[self.i]
        if tok.kind != _EOF:
            self.i += 1
        return tok

    def query(self, field: str | None, depth: int, opener: _Token | None) -> Node | None:
        """Clauses up to the closing parenthesis (of ``opener``) or the end of the text."""
        clauses: list[tuple[int, Node]] = []
        first = True
        while True:
            tok = self.peek()
            if tok.kind == _EOF and opener is not None:
                raise QuerySyntaxError(
                    f"unbalanced parentheses: '(' at position {opener.pos} is not closed",
                    opener.pos,
                )
            if tok.kind == _RPAREN and opener is None:
                raise QuerySyntaxError(
                    f"unbalanced parentheses: ')' at position {tok.pos} has no matching '('",
                    tok.pos,
                )
            if tok.kind in (_EOF, _RPAREN):
                if first and opener is not None:
                    raise QuerySyntaxError(
                        f"empty parentheses at position {opener.pos}", opener.pos
                    )
                break
            conj = None
            if tok.kind in (_AND, _OR):
                if first:
                    where = "the text" if opener is None else f"'(' at position {opener.pos}"
                    raise QuerySyntaxError(
                        f"'{tok.raw}' at position {tok.pos} has nothing before it "
                        f"(it starts {where})",
                        tok.pos,
                    )
                conj = self.take()
            mod = self.take() if self.peek().kind in (_NOT, _PLUS, _MINUS) else None
            node = self.clause(field, depth, mod or conj)
            self._add(clauses, conj.kind if conj else None, mod.kind if mod else None, node)
            first = False
        return _combine(clauses)

    @staticmethod
    def _add(
        clauses: list[tuple[int, Node]], conj: int | None, mod: int | None, node: Node | None
    ) -> None:
        # Lucene classic's addClause with OR as the default operator. AND also makes the
        # clause before it required (unless prohibited), even when this one was dropped.
        if conj == _AND and clauses and clauses[-1][0] != _MUST_NOT:
            clauses[-1] = (_MUST, clauses[-1][1])
        if node is None:
            return
        if mod in (_NOT, _MINUS):
            occur = _MUST_NOT
        elif mod == _PLUS or conj == _AND:
            occur = _MUST
        else:
            occur = _SHOULD
        clauses.append((occur, node))

    def clause(self, field: str | None, depth: int, after: _Token | None) -> Node | None:
        tok = self.peek()
        if tok.kind not in _CLAUSE_START:
            raise self._no_clause(tok, after)
        self.take()
        if tok.kind == _TERM and self.peek().kind == _COLON:
            colon = self.take()
            if tok.wild:
                return self._star_field(tok)
            field = tok.name
            value = self.peek()
            if value.kind not in _CLAUSE_START:
                if value.kind in (_NOT, _PLUS, _MINUS):
                    raise QuerySyntaxError(
                        f"'{value.raw}' at position {value.pos} must come before the field: "
                        f"{value.raw}{tok.raw}:…",
                        value.pos,
                    )
                raise QuerySyntaxError(
                    f"the field '{tok.raw}' at position {tok.pos} has nothing to search for "
                    f"after its ':' at position {colon.pos}",
                    colon.pos,
                )
            tok = self.take()
        node: Node | None
        if tok.kind == _LPAREN:
            if depth >= MAX_DEPTH:
                raise QuerySyntaxError(
                    f"parentheses are nested more than {MAX_DEPTH} deep at position {tok.pos}",
                    tok.pos,
                )
            node = self.query(field, depth + 1, tok)
            self.take()  # the ')': query() returns only there
        elif tok.kind == _PHRASE:
            parts = tuple(tokens(tok.name))
            node = Leaf(field, parts) if parts else None
        elif tok.kind == _TERM:
            parts = _term_parts(tok)
            if not parts:
                node = None
            elif field is None and parts == ("*",):
                node = MatchAll()
            else:
                node = Leaf(field, parts)
        else:  # a bare operator, read as a word without letters
            node = None
        if self.peek().kind == _BOOST:  # accepted and ignored: the tree carries no scores
            self.take()
        return node

    def _star_field(self, name: _Token) -> Node:
        value = self.take()
        if name.raw != "*" or value.kind != _TERM or value.raw != "*":
            raise QuerySyntaxError(
                f"'{name.raw}' at position {name.pos}: a field name cannot have wildcards "
                "('*:*' alone matches everything)",
                name.pos,
            )
        if self.peek().kind == _BOOST:
            self.take()
        return MatchAll()

    def _no_clause(self, tok: _Token, after: _Token | None) -> QuerySyntaxError:
        if tok.kind == _COLON:
            prev = self.toks[self.i - 1] if self.i else None
            if prev is not None and prev.kind in (_TERM, _PHRASE, _RPAREN, _BOOST):
                return QuerySyntaxError(
                    f"':' at position {tok.pos} follows a value, not a field name "
                    "(escape it as \\: to search for it)",
                    tok.pos,
                )
            return QuerySyntaxError(
                f"empty field name: ':' at position {tok.pos} has no field name before it",
                tok.pos,
            )
        if tok.kind == _BOOST:
            return QuerySyntaxError(
                f"the boost '{tok.raw}' at position {tok.pos} follows nothing it could apply to",
                tok.pos,
            )
        if after is None:  # not reached: query() reports these with nothing before them
            return QuerySyntaxError(f"unexpected {_describe(tok)}", tok.pos)
        if tok.kind in (_EOF, _RPAREN):
            return QuerySyntaxError(
                f"dangling operator: '{after.raw}' at position {after.pos} has nothing after "
                f"it (found {_describe(tok)})",
                after.pos,
            )
        return QuerySyntaxError(
            f"'{tok.raw}' at position {tok.pos} cannot follow '{after.raw}' at position "
            f"{after.pos}: two operators in a row",
            tok.pos,
        )


def _combine(clauses: list[tuple[int, Node]]) -> Node | None:
    if not clauses:
        return None
    if len(clauses) == 1 and clauses[0][0] != _MUST_NOT:
        return clauses[0][1]  # one SHOULD or one MUST alone means the clause itself
    return Bool(
        must=tuple(n for o, n in clauses if o == _MUST),
        should=tuple(n for o, n in clauses if o == _SHOULD),
        must_not=tuple(n for o, n in clauses if o == _MUST_NOT),
    )


def parse(text: str) -> Node:
    """Parse free text in Lucene classic query syntax; raises QuerySyntaxError only."""
    node = _Parser(text).query(None, 0, None)
    if node is None:
        raise QuerySyntaxError(
            "the search text has no words to search for: it needs a letter or digit "
            "outside operators",
            0,
        )
    return node
