"""Units conversion for numeric parameter searches: facilities' spellings, offset units, kinds
of dimensionless units kept apart, and never an exception whatever the text."""

from __future__ import annotations

import math
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cairn.search.units import Units
from tests.conftest import FUZZ_RANDOM

FUZZ = settings(max_examples=int(os.environ.get("CAIRN_FUZZ_EXAMPLES", "500")), deadline=None,
                derandomize=not FUZZ_RANDOM, suppress_health_check=[HealthCheck.too_slow])

UNITS = Units()


@pytest.mark.parametrize(("value", "source", "target", "expected"), [
    (25.0, "degC", "K", 298.15),
    (298.15, "K", "degC", 25.0),
    (0.0, "°C", "kelvin", 273.15),
    (-40.0, "degF", "degC", -40.0),
    (100.0, "celsius", "degF", 212.0),
    (1.0, "Celsius", "K", 274.15),
    (1.0, "℃", "K", 274.15),  # the one-character degree Celsius sign
    (1.0, "deg C", "K", 274.15),
    (1.0, "Angstrom", "nm", 0.1),
    (10.0, "Å", "angstrom", 10.0),
    (1.0, "Å", "m", 1e-10),  # the Ångström sign, U+212B
    (1.0, "keV", "eV", 1000.0),
    (2.0, "MeV", "keV", 2000.0),
    (1000.0, "mbar", "bar", 1.0),
    (1.0, "mbar", "Pa", 100.0),
    (1.0, "min", "s", 60.0),
    (1.0, "h", "ms", 3.6e6),
    (1.0, "T", "mT", 1000.0),
    (1.0, "kHz", "Hz", 1000.0),
    (250.0, "mA", "A", 0.25),
    (50.0, "%", "1", 0.5),
    (180.0, "deg", "rad", math.pi),
    (90.0, "degrees", "degree", 90.0),
    (1.0, "m^3", "L", 1000.0),
    (1.0, "g/cm3", "kg/m^3", 1000.0),  # exponent as a digit
    (1.0, "m s-1", "km/h", 3.6),
    (1.0, "m²", "cm^2", 1e4),
    (2.0, "mol/L", "mmol/L", 2000.0),
    (1.0, "degC/min", "K/s", 1 / 60),  # a rate: the offset does not apply
])
def test_convert(value: float, source: str, target: str, expected: float) -> None:
    assert UNITS.convert(value, source, target) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_identity_is_exact() -> None:
    for units in ("degC", "K", "MeV", "%", "deg", "dB"):
        assert UNITS.convert(0.1, units, units) == 0.1


@pytest.mark.parametrize(("source", "target"), [
    ("K", "m"), ("degC", "C"), ("eV", "mbar"), ("Hz", "s"), ("T", "W"),
    # Dimensionless in pint, but of different kinds: angles, ratios, counts.
    ("deg", "%"), ("rad", "1"), ("counts", "%"), ("Hz", "rad/s"),
])
def test_incompatible(source: str, target: str) -> None:
    assert UNITS.convert(1.0, source, target) is None
    assert UNITS.convert(1.0, target, source) is None
    assert not UNITS.same_dimension(source, target)
    assert UNITS.known(source) and UNITS.known(target)


@pytest.mark.parametrize(("a", "b"), [
    ("K", "°C"), ("degF", "kelvin"), ("Å", "mm"), ("eV", "J"), ("mbar", "Pa"), ("%", "1"),
    ("deg", "rad"), ("counts", "count"), ("Hz", "1/s"), ("mT", "T"),
])
def test_same_dimension(a: str, b: str) -> None:
    assert UNITS.same_dimension(a, b)
    assert UNITS.same_dimension(b, a)


def test_c_is_coulomb_unless_aliased() -> None:
    assert UNITS.convert(1.0, "C", "mA*s") == pytest.approx(1000.0)
    assert UNITS.convert(1.0, "C", "K") is None
    celsius = Units({"C": "degC"})
    assert celsius.convert(25.0, "C", "K") == pytest.approx(298.15)
    assert celsius.convert(25.0, " C ", "K") == pytest.approx(298.15)  # matched after strip()
    assert celsius.convert(1.0, "mC", "C") is None  # only the exact string is aliased
    assert UNITS.convert(1.0, "C", "mA*s") == pytest.approx(1000.0)  # other instances unaffected


def test_aliases() -> None:
    units = Units({"counts": "count", "cps": "count/s", "a.u.": "", "miles": "mile"})
    assert units.convert(60.0, "cps", "count/min") == pytest.approx(3600.0)
    assert units.same_dimension("counts", "count")
    assert not units.known("a.u.")  # an alias to "" marks a spelling unknown
    assert units.convert(1.0, "miles", "m") == pytest.approx(1609.344)
    assert not Units({"x": "not a unit"}).known("x")


@pytest.mark.parametrize("units", [
    None, "", "   ", "N/A", "n/a", "NA", "none", "None", "null", "unknown", "-", "?",
    "arbitrary units", "a.u.", "no such unit", "Celsius-ish", "1/0", "(m", "m^m", "3", "2 m",
    "km^1000", "m^1e999", "m**0", "A0", "d70", "x" * 10_000,
])
def test_unknown(units: str | None) -> None:
    assert not UNITS.known(units)
    assert UNITS.convert(1.0, units, "K") is None
    assert UNITS.convert(1.0, "K", units) is None
    assert UNITS.convert(1.0, units, units) is None
    assert not UNITS.same_dimension(units, units)
    assert UNITS.to_si(1.0, units) is None


def test_short_markers_do_not_hide_units() -> None:
    assert UNITS.convert(1.0, "nA", "A") == pytest.approx(1e-9)


@pytest.mark.parametrize(("value", "units", "expected"), [
    (25.0, "degC", (298.15, "kelvin")),
    (0.0, "°C", (273.15, "kelvin")),
    (1.0, "K", (1.0, "kelvin")),
    (1.0, "keV", (1.602176634e-16, "kilogram * meter ** 2 / second ** 2")),
    (5.0, "mbar", (500.0, "kilogram / meter / second ** 2")),
    (2.0, "g", (0.002, "kilogram")),
    (50.0, "%", (0.5, "dimensionless")),
    (180.0, "deg", (math.pi, "radian")),
    (3.0, "counts", (3.0, "count")),
])
def test_to_si(value: float, units: str, expected: tuple[float, str]) -> None:
    si = UNITS.to_si(value, units)
    assert si is not None
    assert si[0] == pytest.approx(expected[0], rel=1e-12)
    assert si[1] == expected[1]


def test_logarithmic_units_are_not_converted() -> None:
    # dBm → mW is not affine, so a range would not convert bound by bound as documented.
    assert UNITS.known("dBm")
    assert UNITS.convert(10.0, "dBm", "mW") is None
    assert UNITS.to_si(10.0, "dBm") is None


def test_overflow_is_infinite() -> None:
    assert UNITS.convert(1e308, "km", "m") == math.inf


COMPATIBLE = [
    ["K", "degC", "°C", "degF", "celsius", "mK"],
    ["m", "mm", "nm", "Å", "Angstrom", "inch"],
    ["eV", "keV", "MeV", "J", "meV"],
    ["Pa", "mbar", "bar", "torr", "atm"],
    ["s", "ms", "min", "h", "day"],
    ["%", "1", "ppm"],
    ["deg", "rad", "degrees"],
]

pairs = st.sampled_from(COMPATIBLE).flatmap(
    lambda group: st.tuples(st.sampled_from(group), st.sampled_from(group)))
values = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@FUZZ
@given(pairs, values)
def test_round_trip(pair: tuple[str, str], value: float) -> None:
    source, target = pair
    there = UNITS.convert(value, source, target)
    assert there is not None
    back = UNITS.convert(there, target, source)
    assert back == pytest.approx(value, rel=1e-9, abs=1e-6)
    si, si_there = UNITS.to_si(value, source), UNITS.to_si(there, target)
    assert si is not None and si_there is not None
    assert si_there[0] == pytest.approx(si[0], rel=1e-9, abs=1e-6)
    assert si_there[1] == si[1]


@FUZZ
@given(pairs, values, values)
def test_increasing(pair: tuple[str, str], a: float, b: float) -> None:
    # A range converts bound by bound only because every conversion is increasing.
    lo, hi = min(a, b), max(a, b)
    low, high = UNITS.convert(lo, *pair), UNITS.convert(hi, *pair)
    assert low is not None and high is not None
    assert low <= high


unit_like = st.lists(st.sampled_from(
    ["m", "k", "K", "deg", "C", "°", "Å", "µ", "%", "/", "*", "^", "**", "-", "(", ")", "1", "0",
     "2", "e", "9", ".", " ", "inf", "nan", "dB", "delta_", "[length]", "__class__", "1e999"]),
    max_size=10).map("".join)
hostile = st.one_of(st.text(max_size=30), unit_like, st.none())


@FUZZ
@given(hostile, hostile, st.floats())
def test_never_raises(source: str | None, target: str | None, value: float) -> None:
    result = UNITS.convert(value, source, target)
    assert result is None or isinstance(result, float)
    if UNITS.known(source) and UNITS.known(target) and result is not None:
        assert UNITS.same_dimension(source, target)
    si = UNITS.to_si(value, source)
    assert si is None or (isinstance(si[0], float) and isinstance(si[1], str))


@FUZZ
@given(st.dictionaries(st.text(max_size=5), st.text(max_size=20), max_size=3), hostile)
def test_never_raises_with_aliases(aliases: dict[str, str], units: str | None) -> None:
    checked = Units(aliases)
    for text in [units, *aliases]:
        checked.known(text)
        checked.convert(1.0, text, "K")
        checked.same_dimension(text, "m")
        checked.to_si(1.0, text)
