"""The type rules of query expressions (``query/typecheck.py``), on their own: no SQL, no
database. The compiler tests check the same rules through whole queries."""

from __future__ import annotations

import ast as pyast
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path as FilePath

import pytest

import cairn.query
from cairn.errors import IcatError
from cairn.query import ast, typecheck
from cairn.query.typecheck import Const


def _message(call: Callable[..., object], *args: object) -> str:
    with pytest.raises(IcatError) as e:
        call(*args)
    return e.value.message


def test_literals_take_the_type_of_what_they_meet() -> None:
    lit = typecheck.literal
    assert lit(ast.Literal("42", "string", 3), "Long") == Const(42, "Long", "Long")
    assert lit(ast.Literal("1.5", "string", 3), "Long") == Const(1.5, "Long", "Double")
    assert lit(ast.Literal(True, "boolean", 3), "Double") == Const(1, "Double", "Integer")
    assert lit(ast.Literal(7, "integer", 3), "Long") == Const(7, "Long", "Integer")
    assert lit(ast.Literal(2**40, "integer", 3), None) == Const(2**40, "Long", "Long")
    assert lit(ast.Literal(7, "integer", 3), "String") == Const("7", "String", "String")
    assert lit(ast.Literal(None, "null", 3), "Date") == Const(None, "Date", None)
    assert lit(ast.Literal("2024-01-02T03:04:05Z", "string", 3), "Date") == Const(
        datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "Date", "Date")
    assert lit(ast.Literal("new", "string", 3), "StudyStatus") == Const(
        "NEW", "StudyStatus", "StudyStatus")
    assert lit(ast.Literal(0, "integer", 3), "StudyStatus") == Const(
        "NEW", "StudyStatus", "StudyStatus")


def test_literals_that_cannot_take_the_type_are_refused_where_written() -> None:
    assert _message(typecheck.literal, ast.Literal(5, "integer", 9), "Date") == (
        "The number 5 cannot be compared with a Date value at position 9")
    assert _message(typecheck.literal, ast.Literal("x", "string", 4), "Integer") == (
        "'x' is not a number and cannot be compared with a Integer value at position 4")
    assert _message(typecheck.enum, ast.EnumConst("StudyStatus", "NEW", 2),
                    "ParameterValueType") == (
        "A StudyStatus constant cannot be compared with a ParameterValueType value at "
        "position 2")


def test_comparisons_and_arithmetic() -> None:
    node = ast.Path("x", ("name",), 12)
    typecheck.comparable("Long", "Double", node)
    typecheck.comparable(None, "Date", node)
    assert _message(typecheck.comparable, "entity", "String", node) == (
        "An entity value cannot be compared with a String value at position 12")
    add = ast.Arith("+", ast.Path("x", ("id",), 0), ast.Literal(1.5, "real", 7), 0)
    assert typecheck.arith("+", "Long", "Double", add) == "Double"
    assert typecheck.arith("/", "Long", "Long", add) == "Double"
    assert typecheck.arith("*", "Integer", None, add) == "Long"
    assert _message(typecheck.arith, "-", "Long", "Date", add) == (
        "Arithmetic needs numbers, not a Date value at position 7")


def test_function_signatures() -> None:
    one = ast.Literal("a", "string", 10)
    assert typecheck.signature("SUBSTRING", ast.Func("SUBSTRING", (one, one), pos=5)).result \
        == "String"
    assert _message(typecheck.signature, "MOD", ast.Func("MOD", (one,), pos=5)) == (
        "MOD takes 2 arguments, not 1 at position 5")
    assert _message(typecheck.signature, "CONCAT", ast.Func("CONCAT", (one,), pos=5)) == (
        "CONCAT takes at least 2 arguments at position 5")
    assert _message(typecheck.signature, "NOPE", ast.Func("NOPE", (), pos=1)) == (
        "Unknown function NOPE at position 1")
    assert _message(typecheck.argument, "Integer", "String", one, "MOD") == (
        "MOD needs a whole number, not a String value at position 10")
    count = ast.Func("COUNT", (one,), pos=3)
    assert typecheck.aggregate_type("COUNT", "Date", count) == "Long"
    assert typecheck.aggregate_type("SUM", "Integer", count) == "Long"
    assert _message(typecheck.aggregate, "COUNT", count, "WHERE") == (
        "COUNT is not allowed in the WHERE clause at position 3")


def test_like_patterns_ending_in_their_escape_character_are_refused() -> None:
    like = ast.Like(ast.Path("x", ("name",)), ast.Literal("50!", "string", 8),
                    ast.Literal("!", "string", 15))
    assert typecheck.escape(like) == "!"
    assert _message(typecheck.check_pattern, like, "!") == (
        "The LIKE pattern ends with its escape character '!'; write it twice to match it "
        "at position 8")
    typecheck.check_pattern(like, "\\")


def _imports(module: str) -> set[str]:
    """The cairn modules ``module`` imports, wherever the import statement is."""
    source = FilePath(cairn.query.__file__).parent / f"{module}.py"
    found: set[str] = set()
    for node in pyast.walk(pyast.parse(source.read_text())):
        if isinstance(node, pyast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, pyast.Import):
            found.update(a.name for a in node.names)
    return found


def test_the_two_syntaxes_do_not_import_each_other() -> None:
    assert "cairn.query.concise" not in _imports("parser")
    assert "cairn.query.parser" not in _imports("concise")


def test_type_rules_know_nothing_of_sql() -> None:
    assert not any(m.startswith("sqlalchemy") for m in _imports("typecheck"))
