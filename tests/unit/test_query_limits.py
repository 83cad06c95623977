"""The size limits of queries (cairn.query.limits), checked on the parsed text: each refusal
is BAD_PARAMETER naming its limit, a query at a limit parses, and no size of input reaches
Python's recursion limit anywhere on the way."""

from __future__ import annotations

import pytest

from cairn.errors import ErrorType, IcatError
from cairn.query import limits, parse_get, parse_query
from cairn.query.compiler import walk
from cairn.query.parser import collect_paths


def refused(text: str) -> IcatError:
    with pytest.raises(IcatError) as e:
        parse_query(text)
    assert e.value.type == ErrorType.BAD_PARAMETER
    return e.value


def ors(n: int, op: str = "OR") -> str:
    return f" {op} ".join(["ds.id = 1"] * n)


@pytest.mark.parametrize(("text", "message"), [
    ("SELECT ds FROM Dataset ds WHERE " + ors(20_000),
     "The query has 20000 conditions joined by AND or OR; at most 400 are accepted "
     "(a list of values to match is written x IN (a, b, c))"),
    ("SELECT ds FROM Dataset ds WHERE " + ors(5_000, "AND"),
     "The query has 5000 conditions joined by AND or OR"),
    # counted over the whole query, sub-selects included
    ("SELECT ds FROM Dataset ds WHERE " + ors(200) + " OR EXISTS (SELECT d FROM Dataset d "
     "WHERE " + ors(202, "AND") + ")", "The query has 403 conditions"),  # 201 + 202
    ("SELECT ds FROM Dataset ds WHERE ds.id = " + "+".join(["1"] * 20_000),
     "The query has 19999 arithmetic operators and CONCAT arguments; at most 200"),
    ("SELECT ds FROM Dataset ds WHERE ds.id = " + "-".join(["1"] * 150) + " * "
     + "*".join(["2"] * 60), "The query has 209 arithmetic operators"),
    ("SELECT CONCAT(" + ", ".join(["ds.name"] * 202) + ") FROM Dataset ds",
     "The query has 201 arithmetic operators and CONCAT arguments"),
    ("SELECT ds FROM Dataset ds WHERE ds.id IN (" + ", ".join(["7"] * 10_001) + ")",
     "The query has 10001 literal values; at most 10000"),
    ("SELECT ds FROM " + ", ".join(f"Dataset d{k}" if k else "Dataset ds" for k in range(200)),
     "The query has 200 variables and JOINs in one FROM clause; at most 40"),
    ("SELECT ds FROM Dataset ds " + " ".join(f"JOIN ds.datafiles f{k}" for k in range(1000)),
     "The query has 1001 variables and JOINs in one FROM clause"),
    ("SELECT " + ", ".join(["ds.id"] * 501) + " FROM Dataset ds",
     "501 items in its SELECT clause; at most 500"),
    ("SELECT ds FROM Dataset ds ORDER BY " + ", ".join(["ds.id"] * 501),
     "501 items in its ORDER BY clause"),
    ("SELECT COUNT(ds) FROM Dataset ds GROUP BY " + ", ".join(["ds.id"] * 501),
     "501 items in its GROUP BY clause"),
    ("SELECT ds FROM Dataset ds INCLUDE " + ", ".join(["ds.datafiles"] * 101),
     "101 paths in its INCLUDE clause; at most 100"),
    ("SELECT ds FROM Dataset ds WHERE ds.name = '" + "x" * limits.MAX_QUERY_LENGTH + "'",
     f"characters; at most {limits.MAX_QUERY_LENGTH}"),
    ("Dataset [name = 'x'" + " OR name = 'x'" * 400 + "]", "401 conditions"),  # concise
    ("SELECT ds FROM Dataset ds WHERE ds.name = 'a\ud800'",
     "The query holds a lone surrogate ('\\ud800') at character 44"),
])
def test_refused_with_the_limit_named(text: str, message: str) -> None:
    assert message in refused(text).message


def test_the_refusal_points_into_the_text() -> None:
    text = "SELECT ds FROM " + ", ".join(f"Dataset d{k}" if k else "Dataset ds"
                                         for k in range(60))
    e = refused(text)
    assert text[e.offset:].startswith("Dataset d40")


def test_a_get_and_its_include() -> None:
    with pytest.raises(IcatError, match="paths in its INCLUDE clause"):
        parse_get("Dataset ds INCLUDE " + ", ".join(["ds.datafiles"] * 101))
    with pytest.raises(IcatError, match="lone surrogate"):
        parse_get("Dataset\udfff")


def test_at_the_limits_queries_parse() -> None:
    at = {
        "conditions": "SELECT ds FROM Dataset ds WHERE " + ors(limits.MAX_CONDITIONS),
        "operators": "SELECT ds FROM Dataset ds WHERE ds.id = "
                     + "+".join(["1"] * (limits.MAX_OPERATORS + 1)),
        "values": "SELECT ds FROM Dataset ds WHERE ds.id IN ("
                  + ", ".join(["7"] * limits.MAX_VALUES) + ")",
        "tables": "SELECT ds FROM Dataset ds " + " ".join(
            f"JOIN ds.datafiles f{k}" for k in range(limits.MAX_TABLES - 1)),
    }
    for text in at.values():
        parse_query(text)


def test_deep_trees_are_walked_without_recursion() -> None:
    """A chain of 20,000 ``+`` is a tree 20,000 deep: the parser builds it, and the helpers
    that look into trees before the limits refuse it walk it without recursing."""
    from cairn.query.parser import parse_jpql

    tree = parse_jpql("SELECT ds FROM Dataset ds WHERE ds.id = " + "+".join(["ds.id"] * 20_000))
    assert sum(1 for _ in walk(tree.where)) == 2 * 20_000 + 1  # Compare, 19,999 Arith, paths
    paths: list[object] = []
    collect_paths(tree.where, paths)
    assert len(paths) == 20_001
    with pytest.raises(IcatError, match="19999 arithmetic operators"):
        limits.check(tree)
