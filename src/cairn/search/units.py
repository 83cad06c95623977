"""Conversion between the free-text units of parameter types, for numeric parameter searches.

icat.lucene indexes numeric parameter values in SI so that a range given in one unit matches
values stored in another compatible unit. Cairn instead converts the *query's* bounds into each
parameter type's own units, in SQL, so all it needs is a conversion between two unit strings.

Units strings are written by facilities and are parsed with pint, after:

* the facility's aliases (exact match after ``strip()``), e.g. ``{"C": "degC"}``: a bare "C" is
  coulomb, as pint reads it, unless an alias says otherwise, since guessing Celsius would be
  wrong for charge parameters; an alias to ``""`` marks a spelling as unknown;
* Unicode compatibility normalisation ("℃", "Å" the Ångström sign, "m²");
* a few markers of "no unit" ("", "N/A", "none", ...) that pint would read as dimensionless or,
  worse, as a unit ("N/A" is newton per ampere);
* a few word spellings pint does not know or misreads ("Celsius", "Angstrom", "deg C").

A string pint cannot parse is retried with exponents written as digits ("cm3", "s-1").

Every supported conversion is affine, ``value * scale + offset`` with ``scale > 0``, so it is an
increasing function, and a range converts bound by bound: ``[lo, hi]`` in one unit is
``[convert(lo), convert(hi)]`` in the other. Pairs that are not affine (pint's logarithmic
units: dB, dBm, Np, ...) are not converted.

Dimensionless units are told apart by pint's root units: angles (rad, deg), counts and plain
ratios (%, ppm) are not compatible with one another, nor rad/s with Hz (the factor 2π is a
question of meaning, not of units).
"""

from __future__ import annotations

import math
import re
import threading
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from tokenize import TokenError

import pint
from pint.errors import PintError
from pint.facets.plain import PlainUnit
from pint.util import to_units_container

# What pint raises while parsing or converting arbitrary text, found by fuzzing pint 0.25:
# PintError (undefined units, syntax, offset-unit calculus), ValueError ("cannot have a scaling
# factor"), TypeError ("m^m"), AssertionError ("/", "℃" unnormalised), ZeroDivisionError and
# OverflowError ("1/0", "km^1000"), KeyError ("m**0"), TokenError ("(m"). Only pint calls are
# wrapped, so the same types raised by this module's own mistakes still surface.
_PINT_ERRORS: tuple[type[Exception], ...] = (
    PintError,
    ValueError,
    TypeError,
    AssertionError,
    ArithmeticError,
    LookupError,
    TokenError,
)

# Real units strings are short; longer text is not worth parsing (nor caching).
_MAX_LENGTH = 100

# Markers of "no unit": exact (short ones collide with units, e.g. "nA" nanoampere), and
# case-insensitive. "a.u." would parse as year * atomic mass unit.
_NO_UNITS_EXACT = frozenset({"", "NA", "-", "--", "?"})
_NO_UNITS_WORDS = frozenset(
    {"n/a", "none", "null", "nil", "unknown", "not applicable", "a.u.", "arb. units",
     "arbitrary units"}
)

# Word spellings pint does not know or misreads ("deg C" is degree * coulomb), by lower-case
# text with runs of spaces collapsed.
_SPELLINGS: dict[str, str] = {
    **dict.fromkeys(
        ["celsius", "centigrade", "°c", "° c", "deg c", "deg. c", "degree c", "degrees c",
         "deg celsius", "degree celsius", "degrees celsius", "degree centigrade",
         "degrees centigrade"],
        "degC",
    ),
    **dict.fromkeys(
        ["fahrenheit", "°f", "° f", "deg f", "degree f", "degrees f", "degree fahrenheit",
         "degrees fahrenheit"],
        "degF",
    ),
    **dict.fromkeys(
        ["kelvin", "kelvins", "°k", "deg k", "degree k", "degrees k", "degree kelvin",
         "degrees kelvin"],
        "kelvin",
    ),
    **dict.fromkeys(
        ["angstrom", "angstroms", "ångström", "ångströms", "ångstrom", "ångstroms"], "angstrom"
    ),
}

# An exponent written as digits straight after a unit's letters: "cm3", "m/s2", "s-1".
_DIGIT_EXPONENT = re.compile(r"([^\W\d_])(-?\d+)\b")

_registry: pint.UnitRegistry | None = None
_registry_lock = threading.Lock()


def _ureg() -> pint.UnitRegistry:
    """The one registry, built on first use: building it takes a few hundred milliseconds."""
    global _registry
    if _registry is None:
        with _registry_lock:
            if _registry is None:
                _registry = pint.UnitRegistry()
    return _registry


@dataclass(frozen=True, slots=True)
class _Parsed:
    unit: PlainUnit
    # Pint's root units (gram, kelvin, radian, count, ...) and this unit's factor to them: two
    # units convert only if their roots are equal.
    root: PlainUnit
    root_factor: float
    # SI base units (kilogram, not gram), for to_si.
    base: PlainUnit


@dataclass(frozen=True, slots=True)
class _Affine:
    scale: float
    offset: float


def _normalise(text: str) -> str | None:
    """Text for pint, or None for a marker of "no unit"."""
    # "º" (the ordinal indicator, typed for "°") would become "o" under NFKC.
    text = unicodedata.normalize("NFKC", text.replace("º", "°")).strip()
    if text in _NO_UNITS_EXACT:
        return None
    key = " ".join(text.split()).lower()
    if key in _NO_UNITS_WORDS:
        return None
    return _SPELLINGS.get(key, text)


def _real(number: object) -> float | None:
    """A finite float, else None.

    Pint types magnitudes and exponents broadly (complex, Decimal, ...); this registry makes
    floats or ints (exact, so possibly too large for a float: day ** 70 in seconds), or None as
    the factor of some non-multiplicative units.
    """
    if not isinstance(number, int | float):
        return None
    try:
        result = float(number)
    except OverflowError:
        return None
    return result if math.isfinite(result) else None


def _factor(magnitude: object) -> float | None:
    """A conversion factor as a positive finite float, else None."""
    factor = _real(magnitude)
    return factor if factor is not None and factor > 0 else None


def _pint_parse(text: str) -> _Parsed | None:
    ureg = _ureg()
    try:
        unit = ureg.parse_units(text)
        root_magnitude, root = ureg.get_root_units(unit)
        _, base = ureg.get_base_units(unit)
    except _PINT_ERRORS:
        return None
    root_factor = _factor(root_magnitude)
    exponents = to_units_container(root).values()
    if root_factor is None or any(_real(e) is None for e in exponents):
        return None  # "km^1e999", "m^1e999": nothing a facility means
    return _Parsed(unit, root, root_factor, base)


@lru_cache(maxsize=1024)
def _parse(text: str) -> _Parsed | None:
    normal = _normalise(text)
    if normal is None:
        return None
    parsed = _pint_parse(normal)
    if parsed is None:
        rewritten = _DIGIT_EXPONENT.sub(r"\1**\2", normal)
        if rewritten != normal:
            parsed = _pint_parse(rewritten)
    return parsed


def _affine(source: _Parsed, target: PlainUnit, target_root_factor: float) -> _Affine | None:
    """The conversion from source to target as ``scale * value + offset``, if it is one."""
    scale = source.root_factor / target_root_factor
    quantity = _ureg().Quantity
    try:
        offset = float(quantity(0.0, source.unit).to(target).magnitude)
        # A third point tells a logarithmic conversion (dBm → mW) from an affine one.
        probe = float(quantity(1000.0, source.unit).to(target).magnitude)
    except _PINT_ERRORS:
        return None
    expected = 1000.0 * scale + offset
    if not (
        math.isfinite(scale)
        and scale > 0
        and math.isfinite(offset)
        and math.isclose(probe, expected, rel_tol=1e-9, abs_tol=1e-12 * abs(offset))
    ):
        return None
    return _Affine(scale, offset)


@lru_cache(maxsize=4096)
def _conversion(source: str, target: str) -> _Affine | None:
    a, b = _parse(source), _parse(target)
    if a is None or b is None or a.root != b.root:
        return None
    if source == target:
        return _Affine(1.0, 0.0)  # exactly the identity, whatever the unit
    return _affine(a, b.unit, b.root_factor)


@lru_cache(maxsize=1024)
def _si(source: str) -> tuple[_Affine, str] | None:
    parsed = _parse(source)
    if parsed is None:
        return None
    try:
        base_magnitude, _ = _ureg().get_root_units(parsed.base)
    except _PINT_ERRORS:
        return None
    base_factor = _factor(base_magnitude)
    if base_factor is None:
        return None
    affine = _affine(parsed, parsed.base, base_factor)
    return None if affine is None else (affine, str(parsed.base))


class Units:
    """Conversions between facilities' units strings; never raises for any string.

    Parsing and conversion factors are cached by units string (shared across instances), so a
    conversion after the first costs a dictionary look-up and a multiply-add.
    """

    def __init__(self, aliases: Mapping[str, str] | None = None) -> None:
        # Facility spellings → a pint expression, e.g. {"C": "degC", "counts": "count"}.
        self._aliases = {k.strip(): v for k, v in (aliases or {}).items()}

    def _text(self, units: str | None) -> str | None:
        if units is None:
            return None
        text = units.strip()
        text = self._aliases.get(text, text)
        # Also keeps hostile text out of the caches.
        return text if len(text) <= _MAX_LENGTH else None

    def convert(self, value: float, source: str | None, target: str | None) -> float | None:
        """``value`` in ``source`` units expressed in ``target`` units.

        None when either is unknown or unparseable, or they are not compatible (different
        dimensions, or a logarithmic conversion). Increasing in ``value``, so ranges convert
        bound by bound. Overflow gives ±inf, as float arithmetic does.
        """
        a, b = self._text(source), self._text(target)
        if a is None or b is None:
            return None
        affine = _conversion(a, b)
        if affine is None:
            return None
        return value * affine.scale + affine.offset

    def known(self, units: str | None) -> bool:
        """Whether ``units`` parses to a pint unit (after aliases and spelling variants)."""
        text = self._text(units)
        return text is not None and _parse(text) is not None

    def same_dimension(self, a: str | None, b: str | None) -> bool:
        """Whether both are known and of the same kind (angles, counts and ratios differ)."""
        ta, tb = self._text(a), self._text(b)
        if ta is None or tb is None:
            return False
        pa, pb = _parse(ta), _parse(tb)
        return pa is not None and pb is not None and pa.root == pb.root

    def to_si(self, value: float, units: str | None) -> tuple[float, str] | None:
        """``value`` in SI base units and their text, e.g. ``(298.15, "kelvin")`` for 25 degC.

        Dimensionless ratios give ``"dimensionless"``; angles stay in ``"radian"``.
        """
        text = self._text(units)
        if text is None:
            return None
        si = _si(text)
        if si is None:
            return None
        affine, base = si
        return value * affine.scale + affine.offset, base
