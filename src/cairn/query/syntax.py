"""Conventions both query syntaxes share: the JPQL-style parser (``parser.py``) and the
concise one (``concise.py``) import them from here, so neither imports the other."""

from __future__ import annotations

from cairn.query.errors import negative_limit, semantic
from cairn.query.tokens import Token

MAX_INT = 2**31 - 1  # LIMIT values are Java ints in icat.server


def get_var(entity: str) -> str:
    """The variable of a get query or a concise query that names none (icat.server: Entity$)."""
    return entity.lower() + "$"


def check_limit(tok: Token, what: str) -> int:
    """The value of a LIMIT ``what`` ("offset" or "count") INTEGER token, refused when outside
    a Java int: negative is VALIDATION (as clients expect), too large BAD_PARAMETER."""
    value = tok.value
    assert isinstance(value, int)
    if value < 0:
        raise negative_limit(f"LIMIT {what} {value} must not be negative", tok.pos)
    if value > MAX_INT:
        raise semantic(f"LIMIT value {value} is too large", tok.pos)
    return value
