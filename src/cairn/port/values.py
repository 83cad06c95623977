"""One value of a dump's data line, as text: written (:func:`renderer`) and read
(:func:`split`, :func:`converter`), as icat.server writes and reads them.

- strings in double quotes, with ``\\t \\n \\r \\f \\b \\" \\' \\\\`` escapes;
- integers and reals bare (``Infinity``, ``-Infinity`` and ``NaN`` for the reals Java writes
  so); ``true``/``false`` (any case); ``NULL`` (any case);
- enum constants bare (any case on import): ``NUMERIC``;
- timestamps bare, ISO 8601: ``2014-05-16T06:05:26.120Z``; a timestamp without zone is in
  the catalogue's zone. Export writes milliseconds and the offset (``Z`` for UTC), as
  icat.server does.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from cairn.schema import SCHEMA, Field

#: A bare token or a quoted string, then a comma or the end (the exact reader).
_VALUE = re.compile(r'[ \t]*(?:"([^"\\]*(?:\\.[^"\\]*)*)"|([^,"\s]+))[ \t]*(,|$)')
_ESCAPE = re.compile(r"\\(.)")
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f", "b": "\b", '"': '"', "'": "'",
            "\\": "\\"}
_TIMESTAMP = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
                        r"(Z|[+-]\d{2}:\d{2})?")
#: NULL in any case, as icat.server's reader takes it.
_NULLS = frozenset("".join(c) for c in itertools.product(*zip("NULL", "null", strict=True)))

#: A value as split from a line: its text, or None for a bare NULL.
Token = str | None


class BadValue(Exception):
    """A value that does not fit its column; the reader adds where it is."""


def _unescape(m: re.Match[str]) -> str:
    try:
        return _ESCAPES[m.group(1)]
    except KeyError:
        raise BadValue(f"unknown escape \\{m.group(1)} in a string") from None


class Splitter:
    """Splits data lines into values. A line without backslash escapes is cut at its double
    quotes (a string then cannot hold one) and the bare values between them at commas,
    with C's string methods; any other line, and any line that does not fit that shape, is
    read by the exact reader (which also says what is wrong)."""

    def __call__(self, line: str) -> list[Token]:
        if "\\" not in line:
            fast = _fast_split(line)
            if fast is not None:
                return fast
        return split(line)


def _bare(text: str, out: list[Token]) -> bool:
    for token in text.split(","):
        token = token.strip(" \t")
        if not token or '"' in token:
            return False
        out.append(None if token in _NULLS else token)
    return True


def _fast_split(line: str) -> list[Token] | None:
    parts = line.split('"')
    last = len(parts) - 1
    if last % 2:
        return None  # an unterminated string
    out: list[Token] = []
    for i, seg in enumerate(parts):
        if i % 2:
            out.append(seg)  # a quoted string
            continue
        # Outside the strings: before the first "bare,...,bare," (or nothing), between two
        # "," or ",bare,...,bare,", after the last ",bare,...,bare" (or nothing), and the
        # whole line when it has no string.
        if 0 < i < last:
            if seg == ",":
                continue
            if len(seg) < 3 or seg[0] != "," or seg[-1] != ",":
                return None
            seg = seg[1:-1]
        elif i < last:  # before the first string
            if not seg:
                continue
            if seg[-1] != ",":
                return None
            seg = seg[:-1]
        elif i > 0:  # after the last string
            if not seg:
                continue
            if seg[0] != ",":
                return None
            seg = seg[1:]
        if not _bare(seg, out):
            return None
    return out


def split(line: str) -> list[Token]:
    """The values of a data line, strings unescaped (the exact reader)."""
    out: list[Token] = []
    pos, end = 0, len(line)
    while True:
        m = _VALUE.match(line, pos)
        if m is None:
            shown = line[pos:pos + 20]
            raise BadValue(f"cannot read a value at column {pos + 1}: {shown!r}")
        text, bare = m.group(1), m.group(2)
        if bare is not None:
            out.append(None if bare in _NULLS else bare)
        else:
            out.append(_ESCAPE.sub(_unescape, text) if "\\" in text else text)
        pos = m.end()
        if m.group(3) != ",":
            return out
        if pos >= end:
            raise BadValue("a value is missing after the last comma")


# -- reading -----------------------------------------------------------------------------------

Convert = Callable[[Token], Any]


def converter(field: Field, zone: ZoneInfo) -> Convert:
    """Token -> Python value of ``field`` (None for NULL), or :class:`BadValue`. Quoted and
    bare values are taken alike, but for NULL: only a bare NULL is no value."""
    kind = field.type
    if kind == "String":
        return _string
    if kind in ("Integer", "Long"):
        return _integer
    if kind == "Double":
        return _real
    if kind == "boolean":
        return _boolean
    if kind == "Date":
        return _timestamps(zone)
    names = {v.upper(): v for v in SCHEMA.enums[kind]}

    def enum(text: Token) -> Any:
        if text is None:
            return None
        try:
            return names[text.upper()]
        except KeyError:
            raise BadValue(f"{text} is not one of {', '.join(names.values())}") from None

    return enum


def _string(text: Token) -> Any:
    return text


def _integer(text: Token) -> Any:
    if text is None:
        return None
    if not (text[1:] if text[:1] == "-" else text).isdecimal():
        raise BadValue(f"an integer expected, not {text}")
    return int(text)


def _real(text: Token) -> Any:
    if text is None:
        return None
    try:
        if "_" not in text:
            return float(text)  # Infinity, -Infinity and NaN too, as Java writes them
    except ValueError:
        pass
    raise BadValue(f"a number expected, not {text}")


def _boolean(text: Token) -> Any:
    if text is None:
        return None
    low = text.lower()
    if low not in ("true", "false"):
        raise BadValue(f"true or false expected, not {text}")
    return low == "true"


def _timestamps(zone: ZoneInfo) -> Convert:
    """parse_timestamp, remembering recent texts: a row often repeats one (a file's
    creation and modification time), and neighbouring rows share them."""
    seen: dict[str, datetime] = {}

    def timestamp(text: Token) -> Any:
        if text is None:
            return None
        value = seen.get(text)
        if value is None:
            if len(seen) >= 1024:
                seen.clear()
            value = seen[text] = parse_timestamp(text, zone)
        return value

    return timestamp


def parse_timestamp(text: str, zone: ZoneInfo) -> datetime:
    """An ISO 8601 timestamp as the naive wall-clock time in ``zone`` the catalogue stores."""
    value: datetime | None = None
    if len(text) >= 19 and text[10] == "T":
        if text[-1] == "Z" and zone.key == "UTC":  # what exports in UTC write: no zone math
            with contextlib.suppress(ValueError):
                return datetime.fromisoformat(text[:-1])
        with contextlib.suppress(ValueError):
            value = datetime.fromisoformat(text)
    if value is None:
        value = _parse_timestamp(text)
    if value.tzinfo is None:
        return value
    if zone.key == "UTC" and value.utcoffset() == timedelta(0):
        return value.replace(tzinfo=None)
    return value.astimezone(zone).replace(tzinfo=None)


def _parse_timestamp(text: str) -> datetime:
    """What fromisoformat refuses that icat.server takes (more than 6 fraction digits)."""
    m = _TIMESTAMP.fullmatch(text)
    if m is None:
        raise BadValue(f"a timestamp as 2014-05-16T06:05:26.120Z expected, not {text}")
    y, mo, d, h, mi, s, frac, tz = m.groups()
    try:
        value = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s),
                         int((frac or "0")[:6].ljust(6, "0")))
    except ValueError as e:
        raise BadValue(f"{text} is not a valid timestamp ({e})") from None
    if tz is None:
        return value
    offset = UTC if tz == "Z" else timezone(
        (1 if tz[0] == "+" else -1) * timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6])))
    return value.replace(tzinfo=offset)


# -- writing -----------------------------------------------------------------------------------

Render = Callable[[Any], str]

_QUOTE = str.maketrans({"\\": "\\\\", '"': '\\"', "\t": "\\t", "\r": "\\r", "\n": "\\n",
                        "\f": "\\f", "\b": "\\b"})


def quote(value: str) -> str:
    return '"' + value.translate(_QUOTE) + '"'


def _real_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(float(value))


def renderer(field: Field, zone: ZoneInfo) -> Render:
    """Python value of ``field`` (never None: the caller writes NULL) -> its text."""
    kind = field.type
    if kind == "String":
        return quote
    if kind in ("Integer", "Long"):
        return lambda v: str(int(v))
    if kind == "Double":
        return _real_text
    if kind == "boolean":
        return lambda v: "true" if v else "false"
    if kind == "Date":
        return lambda v: timestamp_text(v, zone)
    return str  # enum constants


def timestamp_text(value: datetime, zone: ZoneInfo) -> str:
    """icat.server's ``yyyy-MM-dd'T'HH:mm:ss.SSSXXX`` of a stored (naive, ``zone``) time."""
    aware = value.replace(tzinfo=zone) if value.tzinfo is None else value.astimezone(zone)
    text = aware.isoformat(timespec="milliseconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text
