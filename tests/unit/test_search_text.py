"""The text normalisation shared by the search index and free-text queries."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.search.text import normalize, tokens


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Run_001.NXS", ["run", "001", "nxs"]),
        ("/data/inv1/run-7.nxs", ["data", "inv1", "run", "7", "nxs"]),
        ("  Hello,\tWorld!\n", ["hello", "world"]),
        ("a__b", ["a", "b"]),
        ("x-ray & NMR's", ["x", "ray", "nmr", "s"]),
        ("3.14e-5", ["3", "14e", "5"]),
        ("Ünïcode Straße", ["ünïcode", "straße"]),
        ("ΣΟΦΙΑ", ["σοφια"]),
        ("数据集 42", ["数据集", "42"]),
        ("Ⅻ ²", ["ⅻ", "²"]),  # numeric characters count as digits
        ("a*b?c", ["a", "b", "c"]),  # no wildcards here: those are the query's business
        ("", []),
        ("_-./ \t", []),
        (None, []),
    ],
)
def test_tokens(text: str | None, expected: list[str]) -> None:
    assert tokens(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Run_001.NXS", "run 001 nxs"),
        ("  many   SPACES  ", "many spaces"),
        ("a.b", "a b"),
        ("", ""),
        ("...", ""),
        (None, ""),
    ],
)
def test_normalize(text: str | None, expected: str) -> None:
    assert normalize(text) == expected


@given(st.text())
def test_normalize_joins_tokens(text: str) -> None:
    assert normalize(text) == " ".join(tokens(text))


@given(st.text())
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once
    assert tokens(once) == tokens(text)


@given(st.text())
def test_tokens_are_lower_case_letters_and_digits(text: str) -> None:
    for token in tokens(text):
        assert token
        assert token == token.lower()
        assert all(c.isalnum() for c in token), token
