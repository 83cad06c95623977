"""Rows as the text of MariaDB multi-row ``INSERT … VALUES (…), (…)``, built a column at a time.

PyMySQL's ``executemany`` writes the same statement, but escapes every value through Python
calls (``escape_item`` and friends): 15 µs a datafile row, more than the server takes to store
it. Here a column holds one Python type and is converted with one ``map``; strings are escaped
only when the column holds a character that needs it. The literals are PyMySQL's own: strings
with backslash escapes (or doubled quotes under ``NO_BACKSLASH_ESCAPES``), doubles with an
exponent (``1.5e0``, so the server reads a DOUBLE, not a DECIMAL), booleans as 1 and 0.

A column holding another type (``Decimal``, aware datetimes, bytes, NaN…) makes
:func:`value_rows` return None, and the caller leaves those rows to PyMySQL.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from itertools import repeat
from operator import attrgetter
from typing import Any

_NONE = type(None)
#: PyMySQL's escapes (converters.escape_string), in one pass.
_ESCAPES = str.maketrans({"\\": "\\\\", "\0": "\\0", "\n": "\\n", "\r": "\\r", "\032": "\\Z",
                          "'": "\\'", '"': '\\"'})
_SPECIAL = tuple("\\\0\n\r\032'\"")
_BOOLS = {True: "1", False: "0", None: "NULL"}


def _escaped(value: str) -> str:
    return "'" + value.translate(_ESCAPES) + "'"


def _doubled(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class _Memo(dict[Any, str]):
    """A load's datetimes repeat (a file's creation and modification time are often one)."""

    def __missing__(self, key: Any) -> str:
        value = self[key] = f"'{key.isoformat(' ')}'"
        return value


def _double(value: float) -> str:
    text = repr(value)
    return text if "e" in text or type(value) is int else text + "e0"


def column_literals(values: Sequence[Any], backslashes: bool = True,
                    memo: _Memo | None = None) -> list[str] | None:
    """One column's values as SQL literals, or None for a type not handled here."""
    kinds = set(map(type, values))
    nulls = _NONE in kinds
    kinds.discard(_NONE)
    present = [v for v in values if v is not None] if nulls else values
    convert: Any
    if not kinds:
        return ["NULL"] * len(values)
    if kinds == {str}:
        joined = "".join(present)
        if not backslashes:
            convert = _doubled if "'" in joined else "'{}'".format
        elif any(c in joined for c in _SPECIAL):
            convert = _escaped
        else:
            convert = "'{}'".format
    elif kinds == {int}:
        convert = int.__repr__
    elif kinds <= {int, float}:
        if not all(map(math.isfinite, present)):
            return None  # MariaDB has no infinities or NaN: PyMySQL refuses them with its error
        convert = _double if float in kinds else int.__repr__
    elif kinds == {bool}:
        return list(map(_BOOLS.__getitem__, values))
    elif kinds == {datetime}:
        if set(map(attrgetter("tzinfo"), present)) != {None}:
            return None
        convert = (_Memo() if memo is None else memo).__getitem__
    elif kinds == {date}:
        convert = "'{}'".format
    else:
        return None
    if nulls:
        return ["NULL" if v is None else convert(v) for v in values]
    return list(map(convert, values))


def value_rows(columns: Sequence[Sequence[Any] | repeat[Any]], n: int,
               backslashes: bool = True) -> list[str] | None:
    """``n`` rows given column by column (a ``repeat`` for a constant) as ``(v1,v2,…)``
    texts, or None if a column holds a type not handled here."""
    fields: list[Any] = []
    memo = _Memo()
    for col in columns:
        if isinstance(col, repeat):
            one = column_literals([next(col)], backslashes, memo)
            if one is None:
                return None
            fields.append(repeat(one[0], n))
        else:
            if len(col) != n:
                raise ValueError(f"a column of {len(col)} values among rows of {n}")
            texts = column_literals(col, backslashes, memo)
            if texts is None:
                return None
            fields.append(texts)
    return [f"({row})" for row in map(",".join, zip(*fields, strict=True))] if n else []


def statements(head: str, rows: Sequence[str], max_bytes: int) -> Iterator[str]:
    """``head`` (``INSERT INTO t (a, b) VALUES``) followed by as many rows as fit in
    ``max_bytes`` (counted in characters: a margin for multi-byte text), statement by
    statement. A single row longer than that is sent alone (and the server says why not)."""
    start, size = 0, len(head)
    for i, row in enumerate(rows):
        if i > start and size + len(row) + 1 > max_bytes:
            yield head + ",".join(rows[start:i])
            start, size = i, len(head)
        size += len(row) + 1
    if start < len(rows):
        yield head + ",".join(rows[start:])
