"""MariaDB multi-row INSERT text built a column at a time (cairn.demo.sqltext), checked against
the literals PyMySQL itself writes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import repeat
from typing import Any

import pytest
from pymysql.converters import escape_item

from cairn.demo.sqltext import column_literals, statements, value_rows

SAMPLES: list[list[Any]] = [
    [1, None, -7, 2**62],
    [0.1, 3, None, -2.5e-300, 1e22],
    [True, None, False],
    ["plain", None, ""],
    ["it's", 'say "hi"', "back\\slash", "nul\0", "new\nline\r", "\x1a", "naïve ✓"],
    [datetime(2024, 2, 29, 23, 59, 58, 120), None, datetime(2001, 1, 1)],
    [date(1999, 12, 31)],
    [None, None],
]


def pymysql_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(escape_item(value, "utf8mb4"))


@pytest.mark.parametrize("values", SAMPLES)
def test_literals_are_pymysqls(values: list[Any]) -> None:
    assert column_literals(values) == [pymysql_literal(v) for v in values]


def test_without_backslash_escapes_quotes_are_doubled() -> None:
    assert column_literals(["it's", "a\\b", None], backslashes=False) == [
        "'it''s'", "'a\\b'", "NULL"]


@pytest.mark.parametrize("values", [
    [Decimal("1.5")], [datetime(2024, 1, 1, tzinfo=UTC)], [float("inf")], [float("nan")],
    [True, 1], [b"bytes"], ["text", 1]])
def test_other_values_are_left_to_the_driver(values: list[Any]) -> None:
    assert column_literals(values) is None
    assert value_rows([values], len(values)) is None


def test_rows_and_statements() -> None:
    rows = value_rows([[1, 2, 3], ["a", None, "c"], repeat("db/root")], 3)
    assert rows == ["(1,'a','db/root')", "(2,NULL,'db/root')", "(3,'c','db/root')"]
    head = "INSERT INTO T (A, B, C) VALUES "
    assert list(statements(head, rows, 1000)) == [head + ",".join(rows)]
    # Each statement holds what fits; a row is never split, and none is lost.
    parts = list(statements(head, rows, len(head) + len(rows[0]) + len(rows[1]) + 2))
    assert parts == [head + ",".join(rows[:2]), head + rows[2]]
    assert list(statements(head, rows, 1)) == [head + r for r in rows]
    assert list(statements(head, [], 1000)) == []
