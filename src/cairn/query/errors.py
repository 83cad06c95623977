"""Errors of the query front end, located at the offending token.

Like sqlglot's ``errors.py``: every message names the offending token and shows it between
``<`` and ``>`` with two tokens of context either side, in icat.server's own format
(``Expected token from types [NAME] at token 1 in Datafile , < 1 > [ name ``), and the
``IcatError.offset`` is the character position of that token in the query text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from cairn.errors import IcatError, bad_parameter, validation

#: How icat.server prints token types in "Expected token from types [...]".
TYPE_NAMES = {
    "COMPOP": ">, <, !=, =, <>, >=, <=",
    "OPENPAREN": "(",
    "CLOSEPAREN": ")",
}


class TokenLike(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def pos(self) -> int: ...


def context(tokens: Sequence[TokenLike], i: int) -> str:
    """``a b < X > c d `` around token ``i`` (icat.server's layout, trailing space included)."""
    parts = [t.text for t in tokens[max(0, i - 2):i] if t.kind != "EOF"]
    parts.append("< >" if tokens[i].kind == "EOF" else f"< {tokens[i].text} >")
    parts += [t.text for t in tokens[i + 1:i + 3] if t.kind != "EOF"]
    return " ".join(parts) + " "


def at_token(tokens: Sequence[TokenLike], i: int) -> str:
    """``at token X in …`` or, past the last token, ``at end of query in …``."""
    tok = tokens[i]
    where = "at end of query" if tok.kind == "EOF" else f"at token {tok.text}"
    return f"{where} in {context(tokens, i)}"


def expected(tokens: Sequence[TokenLike], i: int, kinds: Sequence[str]) -> IcatError:
    names = ", ".join(TYPE_NAMES.get(k, k) for k in kinds)
    return bad_parameter(f"Expected token from types [{names}] {at_token(tokens, i)}",
                         tokens[i].pos)


def no_more_input(tokens: Sequence[TokenLike], i: int) -> IcatError:
    return bad_parameter(f"No more input expected {at_token(tokens, i)}", tokens[i].pos)


def error_at(tokens: Sequence[TokenLike], i: int, what: str) -> IcatError:
    """A parse error of our own wording, still pointing at the token: ``what at token X in …``."""
    return bad_parameter(f"{what} {at_token(tokens, i)}", tokens[i].pos)


def semantic(message: str, pos: int) -> IcatError:
    """An icat.server message reproduced verbatim (clients match on it), located at ``pos``."""
    return bad_parameter(message, pos)


def negative_limit(message: str, pos: int) -> IcatError:
    """icat.server hands a negative LIMIT to JPA, which fails; clients (datagateway-api) expect
    VALIDATION or INTERNAL rather than BAD_PARAMETER, so this one is VALIDATION."""
    return validation(message, pos)


def char_context(text: str, i: int, width: int = 15) -> str:
    """``…before < c > after…`` around character ``i`` of the raw text (lexer errors)."""
    before = text[max(0, i - width):i].strip()
    after = text[i + 1:i + 1 + width].strip()
    return f"{before} < {text[i:i + 1]} > {after}".strip()
