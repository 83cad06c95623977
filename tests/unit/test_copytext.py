"""PostgreSQL COPY text built a column at a time (cairn.demo.copytext)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import repeat

import pytest

from cairn.demo.copytext import column_text, copy_text


def test_numbers_booleans_and_nulls() -> None:
    assert column_text([1, None, -7]) == ["1", "\\N", "-7"]
    assert column_text([0.1, 3, None, float("inf")]) == ["0.1", "3", "\\N", "inf"]
    assert column_text([True, None, False]) == ["t", "\\N", "f"]
    assert column_text([None, None]) == ["\\N", "\\N"]


def test_strings_are_escaped_only_where_needed() -> None:
    assert column_text(["plain", None, ""]) == ["plain", "\\N", ""]
    assert column_text(["a\tb", "c\nd", "e\\f", "g\rh", "\\N", None]) == [
        "a\\tb", "c\\nd", "e\\\\f", "g\\rh", "\\\\N", "\\N"]
    assert column_text(["naïve ✓"]) == ["naïve ✓"]


def test_datetimes_and_dates() -> None:
    when = datetime(2024, 2, 29, 23, 59, 58, 120)
    assert column_text([when, None, datetime(2001, 1, 1)]) == [
        "2024-02-29T23:59:58.000120", "\\N", "2001-01-01T00:00:00"]
    assert column_text([date(1999, 12, 31)]) == ["1999-12-31"]


@pytest.mark.parametrize("values", [
    [Decimal("1.5")],  # psycopg adapts these
    [datetime(2024, 1, 1, tzinfo=UTC)],  # a zone to convert
    [True, 1],  # a boolean and an integer: which column type?
    [b"bytes"],
    ["text", 1],
])
def test_other_types_are_left_to_the_driver(values: list[object]) -> None:
    assert column_text(values) is None
    assert copy_text([values], len(values)) is None


def test_rows_joined_with_constants() -> None:
    text = copy_text([[1, 2], ["x", None], repeat("db/root")], 2)
    assert text == "1\tx\tdb/root\n2\t\\N\tdb/root\n"
    assert copy_text([[], repeat(1)], 0) == ""


def test_columns_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="column of 1 values among rows of 2"):
        copy_text([[1, 2], [3]], 2)
