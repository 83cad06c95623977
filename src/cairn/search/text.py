"""The one text normalisation that the search index and free-text queries share.

A token is a maximal run of Unicode letters and digits, lower-cased: underscore, punctuation,
``/``, ``.``, ``-`` and whitespace all separate tokens. Documents are stored as their tokens
joined by single spaces, and query words are split the same way (``lucene.py``), so what a
query can match is exactly what was indexed. These run for every indexed value, hence the
precompiled pattern and no work beyond it.
"""

from __future__ import annotations

import re

# [^\W_]: a word character that is not the underscore, i.e. a Unicode letter or digit.
_TOKEN = re.compile(r"[^\W_]+")
_findall = _TOKEN.findall


def tokens(text: str | None) -> list[str]:
    """The lower-cased runs of letters and digits in ``text``; ``None`` has none."""
    if not text:
        return []
    return _findall(text.lower())


def normalize(text: str | None) -> str:
    """``text`` as the index stores it: its tokens joined by single spaces."""
    if not text:
        return ""
    return " ".join(_findall(text.lower()))
