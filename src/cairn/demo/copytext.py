"""Rows as PostgreSQL ``COPY … FROM STDIN`` text, built a column at a time.

psycopg's ``Copy.write_row`` adapts each value through its dumpers: about 4 µs a datafile row,
as much as generating the row. A bulk load's columns each hold one Python type, so a column is
converted with one C-level ``map`` (``str``, ``repr``, ``datetime.isoformat``), strings are
escaped only if the column holds a character that needs it, and rows are joined once.

Only the types whose text form is unambiguous are formatted here: ``int``, ``float``, ``bool``,
``str``, naive ``datetime`` and ``date``. A column holding anything else (``Decimal``, aware
datetimes, bytes, a mix of ``bool`` and ``int``) makes :func:`copy_text` return ``None``, and
the caller hands those rows to psycopg's own adaptation instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from itertools import repeat
from operator import attrgetter
from typing import Any

NULL = "\\N"
_NONE = type(None)
#: COPY text format's escapes (backslash first is implied by translate's one pass).
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_SPECIAL = ("\\", "\t", "\n", "\r")
_BOOLS = {True: "t", False: "f", None: NULL}


class _Memo(dict[Any, str]):
    """value -> text, formatting on first sight only: a load's datetimes repeat (a file's
    creation and modification time are often one), and ``isoformat`` costs 0.7 µs a value."""

    def __missing__(self, key: Any) -> str:
        value = self[key] = key.isoformat()
        return value


def _converter(kinds: set[type], values: Sequence[Any], memo: _Memo) -> Any:
    """The function turning this column's non-null values into COPY text, or None."""
    if not kinds or kinds == {str}:
        return str
    if kinds == {int}:
        return int.__repr__
    if kinds <= {int, float}:
        return repr  # float's repr is the shortest text that reads back to the same double
    if kinds == {bool}:
        return _BOOLS.__getitem__
    if kinds == {datetime}:
        zones = set(map(attrgetter("tzinfo"), (v for v in values if v is not None)))
        return memo.__getitem__ if zones == {None} else None  # aware: psycopg converts zones
    if kinds == {date}:
        return date.isoformat
    return None


def column_text(values: Sequence[Any], memo: _Memo | None = None) -> list[str] | None:
    """One column's values as COPY text fields, or None if it holds a type not handled here.
    ``memo`` carries datetimes already formatted (from another column of the same rows)."""
    kinds = set(map(type, values))
    nulls = _NONE in kinds
    kinds.discard(_NONE)
    convert = _converter(kinds, values, _Memo() if memo is None else memo)
    if convert is None:
        return None
    if convert is str:  # strings (or only nulls): escape only when something needs it
        joined = "".join(v for v in values if v is not None) if nulls else "".join(values)
        if any(c in joined for c in _SPECIAL):
            return [NULL if v is None else v.translate(_ESCAPES) for v in values]
        return [NULL if v is None else v for v in values] if nulls else list(values)
    if nulls and convert is not _BOOLS.__getitem__:
        return [NULL if v is None else convert(v) for v in values]
    return list(map(convert, values))


def constant_text(value: Any) -> str | None:
    """The COPY text of a value repeated in every row, or None if not handled here."""
    return None if (fields := column_text([value])) is None else fields[0]


def copy_text(columns: Sequence[Sequence[Any] | repeat[Any]], n: int) -> str | None:
    """``n`` rows given column by column (a ``repeat`` for a constant) as COPY text, or None
    if a column holds a type not handled here."""
    fields: list[Iterable[str]] = []
    memo = _Memo()
    for col in columns:
        if isinstance(col, repeat):
            text = constant_text(next(col))
            if text is None:
                return None
            fields.append(repeat(text, n))
        else:
            if len(col) != n:
                raise ValueError(f"a column of {len(col)} values among rows of {n}")
            converted = column_text(col, memo)
            if converted is None:
                return None
            fields.append(converted)
    if not n:
        return ""
    return "\n".join(map("\t".join, zip(*fields, strict=True))) + "\n"
