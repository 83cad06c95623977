"""Literal coercion: what a quoted string means when compared with a number, date or enum.

Real clients (python-icat, datagateway-api) quote every value: ``o.id = '42'``,
``p.numericValue BETWEEN '0' AND '20'``, ``o.createTime > '2007 06 30 08:30:58 00:00'``.
icat.server on MySQL gets away with it because MySQL converts implicitly and parses
datetimes leniently; PostgreSQL would not, so the compiler converts such literals to the
attribute's type before binding them, and rejects what cannot be converted.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

from cairn.errors import IcatError, bad_parameter

#: ICAT attribute types that compare numerically ("entity" = an entity compared by its id).
INTEGRAL = frozenset({"Long", "Integer", "entity"})
NUMERIC = INTEGRAL | {"Double"}
#: The range of a Long (and of every integer column).
INT64 = (-(2**63), 2**63 - 1)


def at(pos: int) -> str:
    """The suffix locating an error in the query text."""
    return f" at position {pos}" if pos >= 0 else ""


def error(message: str, pos: int) -> IcatError:
    return bad_parameter(message + at(pos), pos)


def to_number(text: str, typ: str, pos: int) -> int | float:
    """``'42'`` -> 42 for an integral attribute, ``'1.5'`` -> 1.5 for a Double one."""
    try:
        d = Decimal(text.strip())
    except InvalidOperation:
        raise error(f"'{text}' is not a number and cannot be compared with a {typ} value",
                    pos) from None
    if not d.is_finite():
        raise error(f"'{text}' is not a number and cannot be compared with a {typ} value", pos)
    if typ == "Double" or d != d.to_integral_value():
        f = float(d)
        if math.isinf(f):
            raise error(f"'{text}' is out of range for a {typ} value", pos)
        return f
    n = int(d)
    if not INT64[0] <= n <= INT64[1]:
        raise error(f"'{text}' is out of range for a {typ} value", pos)
    return n


_BOOLEANS = {"true": True, "t": True, "1": True, "y": True, "yes": True,
             "false": False, "f": False, "0": False, "n": False, "no": False}


def to_boolean(text: str, pos: int) -> bool:
    try:
        return _BOOLEANS[text.strip().lower()]
    except KeyError:
        raise error(f"'{text}' is not a boolean value", pos) from None


# MySQL-style leniency: any punctuation or spaces between the parts, optional time, optional
# fraction, then an optional zone: Z, +hh:mm, -hh:mm or (a "+" lost to URL decoding) " hh:mm".
_LENIENT = re.compile(
    r"""^\s*(\d{4})[-/. ]+(\d{1,2})[-/. ]+(\d{1,2})
        (?:(?:[T ]+|\s*)(\d{1,2})[:. ]+(\d{1,2})(?:[:. ]+(\d{1,2})(?:\.(\d{1,9}))?)?)?
        \s*(?:(Z)|([+\- ])\s*(\d{1,2}):?(\d{2}))?\s*$""",
    re.VERBOSE | re.IGNORECASE)


def parse_datetime(text: str) -> datetime | None:
    """A datetime from the forms clients send; aware if the text carries a zone, else naive
    (meaning the server's zone). None if it is not a date at all."""
    m = _LENIENT.match(text)
    if not m:
        return None
    year, month, day, hour, minute, second, frac, z, sign, oh, om = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    try:
        value = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                         int(second or 0), micro)
    except ValueError:
        return None
    if z:
        return value.replace(tzinfo=UTC)
    if sign is not None:
        offset = timedelta(hours=int(oh), minutes=int(om))
        if offset >= timedelta(hours=24):
            return None
        return value.replace(tzinfo=timezone(-offset if sign == "-" else offset))
    return value


def to_datetime(text: str, pos: int) -> datetime:
    value = parse_datetime(text)
    if value is None:
        raise error(f"'{text}' is not a date and cannot be compared with a Date value", pos)
    return value
