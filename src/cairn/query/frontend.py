"""The entry points of the query language: pick the syntax a text is written in and parse it.

The JPQL-style parser (``parser.py``) and the concise one (``concise.py``) know nothing of
each other; only this module sees both.
"""

from __future__ import annotations

from functools import lru_cache

from cairn.query.ast import Get, Select
from cairn.query.concise import parse_concise, parse_old_get
from cairn.query.errors import semantic
from cairn.query.parser import parse_jpql, parse_jpql_get


@lru_cache(maxsize=1024)
def parse_query(text: str) -> Select:
    """Parse a search query; the concise (old) syntax unless it starts with SELECT.

    Raises ``IcatError`` (BAD_PARAMETER, or VALIDATION for a negative LIMIT) located at the
    offending token. Results are cached: the tree is immutable.
    """
    try:
        if text.strip().upper().startswith("SELECT"):
            return parse_jpql(text)
        return parse_concise(text)
    except RecursionError:  # MAX_DEPTH should prevent it; never let it escape
        raise semantic("Query is nested too deeply", -1) from None


@lru_cache(maxsize=1024)
def parse_get(text: str) -> Get:
    """Parse the query of a get: ``Entity``, ``Entity [AS] v [INCLUDE …]`` or the old style
    ``Entity INCLUDE 1`` / ``Entity INCLUDE Type, Type`` (chosen when word 2 is INCLUDE)."""
    words = text.split()
    if len(words) > 1 and words[1].upper() == "INCLUDE":
        return parse_old_get(text)
    return parse_jpql_get(text)
