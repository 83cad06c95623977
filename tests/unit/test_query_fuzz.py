"""Fuzzing the query front end: whatever the text, parsing gives a tree or an IcatError of type
BAD_PARAMETER (VALIDATION for a negative LIMIT) located inside the text — never another
exception. Also: every tree that parses prints as text that parses back to the same tree."""

from __future__ import annotations

import os
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cairn.errors import ErrorType, IcatError
from cairn.query import parse_get, parse_query, to_text
from cairn.query.ast import (
    And,
    Arith,
    Between,
    Compare,
    EnumConst,
    Exists,
    Expr,
    FromEntity,
    FromJoin,
    Func,
    Get,
    InList,
    InSubquery,
    IsEmpty,
    IsNull,
    Like,
    Limit,
    Literal,
    MemberOf,
    Neg,
    Not,
    Or,
    OrderItem,
    Param,
    Path,
    Select,
    Subquery,
    Timestamp,
    Trim,
)
from cairn.query.unparse import without_positions
from tests.conftest import FUZZ_RANDOM
from tests.query_mutations import mutate

SEEDS = [
    "SELECT ds FROM Dataset ds INCLUDE ds.datafiles.parameters, ds.parameters",
    "SELECT ds.name FROM Dataset ds WHERE ds.type.name = 'GS' ORDER BY ds.name LIMIT 0, 10",
    "SELECT ds.id FROM Dataset ds, ds.parameters dp1 WHERE dp1.type.name = 'A1' AND "
    "dp1.numericValue > 50",
    "SELECT i FROM Investigation i, IN(i.investigationUsers) ius WHERE ius.user.name = :user",
    "SELECT i FROM Investigation i WHERE i.createTime > {ts 2011-01-15 00:00:00}",
    "SELECT pt FROM ParameterType pt WHERE pt.valueType = "
    "org.icatproject.ParameterValueType.DATE_AND_TIME",
    "SELECT df.dataset.name, AVG(df.fileSize) FROM Datafile df GROUP BY df.dataset "
    "HAVING AVG(df.fileSize) > 4 ORDER BY AVG(df.fileSize)",
    "SELECT ds FROM Dataset ds WHERE (SELECT COUNT(df) FROM ds.datafiles df) = 2",
    "SELECT f.name FROM Facility f WHERE f.name LIKE 'Test$_$_Facility' ESCAPE '$'",
    "SELECT COUNT(DISTINCT(o)) FROM Dataset o LEFT OUTER JOIN o.investigation AS i "
    "WHERE i.id = '42' OR NOT EXISTS (SELECT d FROM o.datafiles d)",
    "SELECT DISTINCT o.id, -o.id * (2 + 3) - 1, TRIM(LEADING 'x' FROM o.name) FROM Dataset o "
    "WHERE o.id NOT BETWEEN 1 AND 2 AND o.parameters IS NOT EMPTY LIMIT 5, *",
    "SELECT o FROM Investigation o JOIN o.investigationUsers AS iu WHERE iu.role IN ('PI', "
    "'CI') ORDER BY o.startDate DESC, o.id ASC INCLUDE o.investigationUsers AS iu, iu.user "
    "LIMIT 0, 50",
    "3,5 Dataset.id ORDER BY id [type.name IN ('GS','GQ')] <-> Investigation "
    "[id BETWEEN 1 AND 9]",
    "Investigation <-> InvestigationUser <-> User [name = :user AND NOT (id > 3 OR "
    "fullName LIKE 'a%')]",
    "Dataset INCLUDE Datafile, DatasetParameter, Investigation [complete = TRUE]",
    "ParameterType [valueType = DATE_AND_TIME]",
    "COUNT(Dataset.name) [type.name = 'PB'] <-> Datafile[name = 'PB']",
]
GET_SEEDS = ["Dataset", "Dataset INCLUDE 1", "Facility INCLUDE InvestigationType",
             "Dataset ds INCLUDE ds.datafiles df, df.datafileFormat", "Dataset AS ds"]

#: ``CAIRN_FUZZ_EXAMPLES=20000 pytest tests/unit/test_query_fuzz.py`` for a longer hunt.
FUZZ = settings(max_examples=int(os.environ.get("CAIRN_FUZZ_EXAMPLES", "300")), deadline=None,
                derandomize=not FUZZ_RANDOM, suppress_health_check=[HealthCheck.too_slow])
PIECES = [*"abcdsxyzABCDS019_.$:'(),*+-/<>=![]{} \t\n", "\u00e9", "\u2028",
          "SELECT ", " FROM ", " WHERE ", " AND ", " OR ", " NOT ", " IN ", " LIKE ", " JOIN ",
          " INCLUDE ", " LIMIT ", " ORDER BY ", "Dataset", "ds.name", " <-> ", " IS ", " NULL ",
          "{ts 2011-01-15 00:00:00}", "COUNT(", "DISTINCT", " BETWEEN ", " EXISTS ",
          " MEMBER OF ", "org.icatproject.ParameterValueType.NUMERIC"]


def pieces(max_size: int, min_size: int = 0) -> st.SearchStrategy[str]:
    """Text made of query-ish fragments, so random input often gets past the lexer."""
    return st.lists(st.sampled_from(PIECES), min_size=min_size, max_size=max_size).map("".join)


def check(parse: Callable[[str], object], text: str) -> None:
    try:
        tree = parse(text)
    except IcatError as e:
        assert e.type in (ErrorType.BAD_PARAMETER, ErrorType.VALIDATION), e
        assert e.message
        assert -1 <= e.offset <= len(text)
        return
    assert isinstance(tree, Select | Get)
    if not _has_bare_enum(tree):  # concise bare enum constants print as (invalid) paths
        again = parse(to_text(tree))
        assert without_positions(again) == without_positions(tree), to_text(tree)


def _has_bare_enum(node: object) -> bool:
    if isinstance(node, EnumConst):
        return node.enum is None
    if isinstance(node, tuple):
        return any(_has_bare_enum(n) for n in node)
    fields = getattr(node, "__dataclass_fields__", None)
    return bool(fields) and any(_has_bare_enum(getattr(node, f)) for f in fields)


def glue(toks: list[str], i: int, data: st.DataObject) -> None:
    """An insertion for :func:`~tests.query_mutations.mutate`: characters stuck onto a token."""
    toks[i] = toks[i] + data.draw(pieces(3))


@FUZZ
@given(pieces(40))
def test_random_text(text: str) -> None:
    check(parse_query, text)
    check(parse_get, text)


@FUZZ
@given(st.text(max_size=40))
def test_random_unicode(text: str) -> None:
    check(parse_query, text)
    check(parse_query, "SELECT " + text)
    check(parse_get, text)


@FUZZ
@given(st.sampled_from(SEEDS), st.data())
def test_mutated_queries(seed: str, data: st.DataObject) -> None:
    check(parse_query, mutate(seed, data, glue))


@FUZZ
@given(st.sampled_from(SEEDS), st.integers(0, 400), pieces(4, min_size=1))
def test_characters_inserted(seed: str, at: int, insert: str) -> None:
    at = min(at, len(seed))
    check(parse_query, seed[:at] + insert + seed[at:])


@FUZZ
@given(st.sampled_from(GET_SEEDS), st.data())
def test_mutated_gets(seed: str, data: st.DataObject) -> None:
    check(parse_get, mutate(seed, data, glue))


def test_seeds_parse() -> None:
    for seed in SEEDS:
        check(parse_query, seed)
        assert isinstance(parse_query(seed), Select)
    for seed in GET_SEEDS:
        assert isinstance(parse_get(seed), Get)


# -- generated trees: to_text then parse gives the tree back ------------------------------------

_PATHS = st.sampled_from([Path("o", ("name",)), Path("o", ("id",)), Path("d", ("fileSize",)),
                          Path("o", ("investigation", "name")), Path("o"), Path("d")])
_LITERALS = st.one_of(
    st.integers(-10**12, 10**12).map(lambda v: Literal(v, "integer")),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda v: Literal(v, "real")),
    st.text(max_size=8).map(lambda v: Literal(v, "string")),
    st.booleans().map(lambda v: Literal(v, "boolean")),
    st.just(Literal(None, "null")), st.just(Param("user")),
    st.just(EnumConst("ParameterValueType", "NUMERIC")),
    st.datetimes().map(lambda v: Timestamp(v.replace(microsecond=0))),
)
_VALUES = st.recursive(
    st.one_of(_PATHS, _LITERALS),
    lambda inner: st.one_of(
        st.builds(Arith, st.sampled_from(["+", "-", "*", "/"]), inner, inner),
        # unary minus on a number is folded into the literal, so only on other values
        inner.filter(lambda v: not (isinstance(v, Literal) and v.kind in ("integer", "real")))
        .map(Neg),
        st.builds(lambda v: Func("UPPER", (v,)), inner),
        st.builds(lambda a, b: Func("CONCAT", (a, b)), inner, inner),
        st.builds(lambda a: Func("COUNT", (a,), True), inner),
        st.builds(Trim, inner, st.sampled_from(["LEADING", "TRAILING", "BOTH"]),
                  st.none() | st.just(Literal("x", "string"))),
    ),
    max_leaves=6,
)
_SUB = Select((Path("s"),), (FromJoin(Path("o", ("datafiles",)), "s"),),
              where=Compare(">", Path("s", ("fileSize",)), Literal(0, "integer")))
_NEG = st.booleans()
_CONDS = st.recursive(
    st.one_of(
        st.builds(Compare, st.sampled_from(["=", "<>", "<", "<=", ">", ">="]), _VALUES, _VALUES),
        st.builds(Like, _VALUES, _VALUES, st.none() | st.just(Literal("!", "string")), _NEG),
        st.builds(InList, _VALUES, st.lists(_VALUES, min_size=1, max_size=3).map(tuple), _NEG),
        st.builds(Between, _VALUES, _VALUES, _VALUES, _NEG),
        st.builds(IsNull, _VALUES, _NEG),
        st.builds(IsEmpty, st.just(Path("o", ("datafiles",))), _NEG),
        st.builds(MemberOf, _PATHS, st.just(Path("o", ("datafiles",))), _NEG),
        st.builds(Exists, st.just(_SUB), _NEG),
        st.builds(InSubquery, _VALUES, st.just(_SUB), _NEG),
        st.builds(Compare, st.just("="), st.just(Subquery(_SUB)), _VALUES),
    ),
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda items: And(tuple(items))),
        st.lists(inner, min_size=2, max_size=3).map(lambda items: Or(tuple(items))),
        inner.map(Not),
    ),
    max_leaves=8,
)


@FUZZ
@given(_CONDS, st.lists(_VALUES, min_size=1, max_size=2), st.booleans())
def test_generated_trees_round_trip(where: Expr, items: list[Expr], distinct: bool) -> None:
    tree = Select(tuple(items), (FromEntity("Dataset", "o"), FromJoin(Path("o", ("datafiles",)),
                                                                       "d", "LEFT")),
                  distinct=distinct, where=where, order_by=(OrderItem(items[0], True),),
                  limit=Limit(0, 10))
    text = to_text(tree)
    assert without_positions(parse_query(text)) == tree, text
