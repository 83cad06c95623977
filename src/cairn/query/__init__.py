"""The ICAT query language: tokens → parser (JPQL style, concise style, get) → AST → SQL."""

from cairn.query.frontend import parse_get, parse_query
from cairn.query.unparse import to_text

__all__ = ["parse_get", "parse_query", "to_text"]
