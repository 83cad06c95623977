"""The entry points of the query language: pick the syntax a text is written in and parse it.

The JPQL-style parser (``parser.py``) and the concise one (``concise.py``) know nothing of
each other; only this module sees both.
"""

from __future__ import annotations

from functools import lru_cache

from cairn.query import limits
from cairn.query.ast import Get, Select
from cairn.query.concise import parse_concise, parse_old_get
from cairn.query.errors import semantic
from cairn.query.parser import parse_jpql, parse_jpql_get


@lru_cache(maxsize=1024)
def parse_query(text: str) -> Select:
    """Parse a search query; the concise (old) syntax unless it starts with SELECT.

    Raises ``IcatError`` (BAD_PARAMETER, or VALIDATION for a negative LIMIT) located at the
    offending token, also for a query beyond the limits of :mod:`.limits`. Results are
    cached: the tree is immutable.
    """
    limits.check_text(text)
    try:
        select = parse_jpql(text) if text.strip().upper().startswith("SELECT") \
            else parse_concise(text)
    except RecursionError:  # MAX_NESTING should prevent it; never let it escape
        raise semantic("Query is nested too deeply", -1) from None
    limits.check(select)
    return select


@lru_cache(maxsize=1024)
def parse_get(text: str) -> Get:
    """Parse the query of a get: ``Entity``, ``Entity [AS] v [INCLUDE …]`` or the old style
    ``Entity INCLUDE 1`` / ``Entity INCLUDE Type, Type`` (chosen when word 2 is INCLUDE)."""
    limits.check_text(text)
    words = text.split()
    get = parse_old_get(text) if len(words) > 1 and words[1].upper() == "INCLUDE" \
        else parse_jpql_get(text)
    limits.check_include(get.include)
    return get
