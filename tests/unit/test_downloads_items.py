"""The ``items`` lists of the cart calls: what parses, and how the rest is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.downloads.items import MAX_ITEMS, Removal, parse_items, parse_removal
from cairn.downloads.model import ENTITY_TYPES
from cairn.errors import ErrorType, IcatError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("investigation 2, datafile 1", [("investigation", 2), ("datafile", 1)]),
        # As DataGateway's removeFromCart joins them.
        ("dataset 1, dataset 2, dataset 3", [("dataset", 1), ("dataset", 2), ("dataset", 3)]),
        ("investigation 2,datafile 1", [("investigation", 2), ("datafile", 1)]),
        ("  investigation\t2 ,\n datafile   1  ", [("investigation", 2), ("datafile", 1)]),
        ("Investigation 2, DATAFILE 1", [("investigation", 2), ("datafile", 1)]),
        # Repeats are kept once, where they first appear.
        ("dataset 5, datafile 1, dataset 5, datafile 1", [("dataset", 5), ("datafile", 1)]),
        ("dataset 5, DataSet 5", [("dataset", 5)]),
        ("dataset 5, datafile 5", [("dataset", 5), ("datafile", 5)]),
        # Empty pieces (a trailing comma) are nothing, as in TopCat.
        ("dataset 1,", [("dataset", 1)]),
        ("dataset 1,, ,dataset 2", [("dataset", 1), ("dataset", 2)]),
        ("dataset 007", [("dataset", 7)]),
        ("datafile 9223372036854775807", [("datafile", 2**63 - 1)]),
        ("datafile 0", [("datafile", 0)]),
        ("", []),
        ("  ", []),
        (",", []),
    ],
)
def test_parse_items(text: str, expected: list[tuple[str, int]]) -> None:
    assert parse_items(text) == expected


@pytest.mark.parametrize(
    ("text", "offset", "words"),
    [
        ("investigation", 0, ["item 1", "'investigation'", "entity type and an id"]),
        ("investigation 1 2", 0, ["item 1", "'investigation 1 2'"]),
        ("investigation 1, dataset x", 1, ["item 2", "'dataset x'", "'x' is not an id"]),
        ("dataset 1, sample 3", 1, ["item 2", "unknown entity type 'sample'",
                                    "investigation, dataset, datafile"]),
        ("dataset -1", 0, ["'-1' is not an id"]),
        ("dataset +1", 0, ["'+1' is not an id"]),
        ("dataset 1.5", 0, ["'1.5' is not an id"]),
        ("dataset 1e3", 0, ["'1e3' is not an id"]),
        ("dataset 9223372036854775808", 0, ["is not an id"]),
        ("dataset " + "9" * 5000, 0, ["is not an id"]),
        ("dataset \u0661\u0662", 0, ["is not an id"]),  # Arabic-Indic digits are not ids
        ("12", 0, ["entity type and an id"]),  # cart-item ids only in removals
        ("*", 0, ["entity type and an id"]),
        ("dataset 1;", 0, ["'1;' is not an id"]),
        ("dataset 1; DROP TABLE CAIRN_CART", 0, ["entity type and an id"]),
    ],
)
def test_parse_items_refuses(text: str, offset: int, words: list[str]) -> None:
    with pytest.raises(IcatError) as e:
        parse_items(text)
    assert e.value.type is ErrorType.BAD_PARAMETER
    assert e.value.offset == offset
    for w in words:
        assert w in e.value.message


def test_items_are_required() -> None:
    for parse in (parse_items, parse_removal):
        with pytest.raises(IcatError) as e:
            parse(None)
        assert e.value.type is ErrorType.BAD_PARAMETER
        assert "items is required" in e.value.message


def test_item_limit() -> None:
    text = ", ".join(f"datafile {i}" for i in range(MAX_ITEMS))
    assert len(parse_items(text)) == MAX_ITEMS
    with pytest.raises(IcatError) as e:
        parse_items(text + ", datafile 0")  # the limit counts what is sent, repeats included
    assert e.value.type is ErrorType.BAD_PARAMETER
    assert f"at most {MAX_ITEMS}" in e.value.message
    with pytest.raises(IcatError):
        parse_removal(", ".join(["1"] * (MAX_ITEMS + 1)))
    assert parse_items("dataset 1, dataset 2", limit=2) == [("dataset", 1), ("dataset", 2)]
    with pytest.raises(IcatError):
        parse_items("dataset 1, dataset 2, dataset 3", limit=2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("*", Removal(all=True)),
        ("  *  ", Removal(all=True)),
        ("12, 13", Removal(item_ids=[12, 13])),
        ("13,12,13", Removal(item_ids=[13, 12])),
        ("investigation 2, datafile 1",
         Removal(pairs=[("investigation", 2), ("datafile", 1)])),
        # TopCat reads each piece on its own, so a list may mix both forms.
        ("Dataset 4, 12, dataset 4", Removal(pairs=[("dataset", 4)], item_ids=[12])),
        ("", Removal()),
    ],
)
def test_parse_removal(text: str, expected: Removal) -> None:
    assert parse_removal(text) == expected


@pytest.mark.parametrize(
    ("text", "offset", "words"),
    [
        ("*, 12", 0, ["'*' (the whole cart) must be the only item"]),
        ("12, *", 1, ["item 2", "must be the only item"]),
        ("12, abc", 1, ["item 2", "'abc' is not an id"]),
        ("dataset 1 2", 0, ["cart-item id or an entity type and an id"]),
        ("sample 3", 0, ["unknown entity type 'sample'"]),
        ("-3", 0, ["'-3' is not an id"]),
    ],
)
def test_parse_removal_refuses(text: str, offset: int, words: list[str]) -> None:
    with pytest.raises(IcatError) as e:
        parse_removal(text)
    assert e.value.type is ErrorType.BAD_PARAMETER
    assert e.value.offset == offset
    for w in words:
        assert w in e.value.message


_pairs = st.lists(st.tuples(st.sampled_from(ENTITY_TYPES), st.integers(0, 2**63 - 1)),
                  max_size=20)


@given(_pairs, st.sampled_from([",", ", ", " ,\t", ",\n"]), st.booleans())
def test_items_round_trip(pairs: list[tuple[str, int]], sep: str, upper: bool) -> None:
    text = sep.join(f"{t.upper() if upper else t} {i}" for t, i in pairs)
    assert parse_items(text) == list(dict.fromkeys(pairs))
    assert parse_removal(text or "") == Removal(pairs=list(dict.fromkeys(pairs)))


@given(st.text())
def test_any_text_parses_or_is_bad_parameter(text: str) -> None:
    for parse in (parse_items, parse_removal):
        try:
            parse(text)
        except IcatError as e:
            assert e.type is ErrorType.BAD_PARAMETER
            assert e.message.startswith("items")
