"""Parsing free text in Lucene classic query syntax (icat.lucene's settings: OR by default,
leading wildcards allowed, '/' an ordinary character)."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from cairn.search.lucene import MAX_DEPTH, Bool, Leaf, MatchAll, Node, QuerySyntaxError, parse
from cairn.search.text import tokens


def w(*parts: str, field: str | None = None) -> Leaf:
    return Leaf(field, parts)


A, B, C, D = w("a"), w("b"), w("c"), w("d")


# -- terms and their normalisation ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("neutron", w("neutron")),
        ("NeUtRoN", w("neutron")),
        ("Run_001.NXS", w("run", "001", "nxs")),
        ("x-ray", w("x", "ray")),  # '-' inside a word is not an operator
        ("c++", w("c")),
        ("a&b", w("a", "b")),
        ("a&&b", w("a", "b")),  # '&&' is only AND as a word of its own
        ("/data/inv1/run.nxs", w("data", "inv1", "run", "nxs")),
        ("Ünïcode", w("ünïcode")),
        ("数据", w("数据")),
        # wildcards, kept within a part
        ("a?c*", w("a?c*")),
        ("*.nxs", w("*", "nxs")),
        ("/data/inv1/*", w("data", "inv1", "*")),
        ("RUN_0??.*", w("run", "0??", "*")),
        ("a**b", w("a*b")),  # runs of '*' are one '*'
        ("?", w("?")),
        ("*", MatchAll()),
        ("**", MatchAll()),
        ("*:*", MatchAll()),
        ("*:*^3", MatchAll()),
        # lower-case operators are words
        ("and", w("and")),
        ("not", w("not")),
        ("ANDROID", w("android")),
        ("ORBIT", w("orbit")),
    ],
)
def test_terms(text: str, expected: Node) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"neutron beam"', w("neutron", "beam")),
        ('"Run_001.NXS"', w("run", "001", "nxs")),
        ('"a*b?"', w("a", "b")),  # wildcards are literal, so separators, inside quotes
        ('"*"  x', w("x")),  # a phrase of no words is dropped
        ('"a (b) AND c:d -e"', w("a", "b", "and", "c", "d", "e")),  # no syntax inside quotes
        ('"say \\"hi\\""', w("say", "hi")),
        ('a"b c"', Bool(should=(A, w("b", "c")))),  # a quote ends a word
    ],
)
def test_phrases(text: str, expected: Node) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a\\*b", w("a", "b")),  # an escaped wildcard is a literal '*': a separator
        ("a\\?", w("a")),
        ("\\*", None),
        ("a\\:b", w("a", "b")),  # not a field
        ("\\(a\\)", w("a")),
        ("\\-a", w("a")),  # not an operator
        ("\\AND", w("and")),  # not an operator
        ("a\\ b", w("a", "b")),  # one word with a space in it
        ("x\\u0041y", w("xay")),  # \uXXXX, as Lucene reads it
        ("x\\u002Ay", w("x", "y")),  # an escaped '*' written as \u002A is literal too
        ("\\/data\\/x", w("data", "x")),  # icat.lucene's own escaping of '/' is harmless
        ("\\~a \\[b\\]", Bool(should=(A, B))),
    ],
)
def test_escapes(text: str, expected: Node | None) -> None:
    if expected is None:
        with pytest.raises(QuerySyntaxError, match="no words"):
            parse(text)
    else:
        assert parse(text) == expected


# -- fields --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name:x", w("x", field="name")),
        ("sample.type.name:Water", w("water", field="sample.type.name")),
        ("location.fileName:*.NXS", w("*", "nxs", field="location.fileName")),
        ('title:"Neutron Beam"', w("neutron", "beam", field="title")),
        ("name : x", w("x", field="name")),  # Lucene skips whitespace around ':'
        ("name:*", w("*", field="name")),  # not MatchAll: documents with a name
        ("my\\ field:x", w("x", field="my field")),
        (
            "title:(a b)",
            Bool(should=(w("a", field="title"), w("b", field="title"))),
        ),
        (
            'title:(a name:b "c d" *)',
            Bool(
                should=(
                    w("a", field="title"),
                    w("b", field="name"),  # an inner field wins
                    w("c", "d", field="title"),
                    w("*", field="title"),
                )
            ),
        ),
        ("title:(a AND b)", Bool(must=(w("a", field="title"), w("b", field="title")))),
        ("-name:x a", Bool(should=(A,), must_not=(w("x", field="name"),))),
        ("+name:x a", Bool(must=(w("x", field="name"),), should=(A,))),
        ("name:x^2", w("x", field="name")),
        ("name:(x)^2", w("x", field="name")),
        ("name:x a", Bool(should=(w("x", field="name"), A))),  # the field is for one clause
    ],
)
def test_fields(text: str, expected: Node) -> None:
    assert parse(text) == expected


# -- operators: Lucene classic's combination rules, OR as the default operator --------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a b", Bool(should=(A, B))),
        ("a OR b", Bool(should=(A, B))),
        ("a || b", Bool(should=(A, B))),
        ("a AND b", Bool(must=(A, B))),
        ("a && b", Bool(must=(A, B))),
        ("a AND b OR c", Bool(must=(A, B), should=(C,))),
        ("a OR b AND c", Bool(must=(B, C), should=(A,))),
        ("a AND b c", Bool(must=(A, B), should=(C,))),
        ("a OR b c AND d", Bool(must=(C, D), should=(A, B))),
        ("a AND b AND c", Bool(must=(A, B, C))),
        ("a b -c", Bool(should=(A, B), must_not=(C,))),
        ("+a b", Bool(must=(A,), should=(B,))),
        ("+a +b", Bool(must=(A, B))),
        ("+a OR b", Bool(must=(A,), should=(B,))),  # OR does not undo '+'
        ("NOT a", Bool(must_not=(A,))),  # kept as written: matches nothing in Lucene
        ("-a", Bool(must_not=(A,))),
        ("!a", Bool(must_not=(A,))),
        ("a !b", Bool(should=(A,), must_not=(B,))),
        ("a!b", Bool(should=(A,), must_not=(B,))),  # '!' always ends a word
        ("a NOT b", Bool(should=(A,), must_not=(B,))),
        ("a OR NOT b", Bool(should=(A,), must_not=(B,))),
        ("a AND NOT b", Bool(must=(A,), must_not=(B,))),
        ("a AND -b", Bool(must=(A,), must_not=(B,))),
        ("-a AND b", Bool(must=(B,), must_not=(A,))),  # AND leaves a prohibited clause be
        ("NOT a AND b", Bool(must=(B,), must_not=(A,))),
        ("(a OR b) AND c", Bool(must=(Bool(should=(A, B)), C))),
        ("(a b) -(c d)", Bool(should=(Bool(should=(A, B)),), must_not=(Bool(should=(C, D)),))),
        ("a AND (b OR c)", Bool(must=(A, Bool(should=(B, C))))),
        ("((a))", A),
        ("(a)^2 AND b^0.5", Bool(must=(A, B))),
        ("+a", A),  # one required clause alone is that clause
        ("* -a", Bool(should=(MatchAll(),), must_not=(A,))),
    ],
)
def test_operators(text: str, expected: Node) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a - b", Bool(should=(A, B))),  # an operator before whitespace is a word, and dropped
        ("a + b", Bool(should=(A, B))),
        ("a ! b", Bool(should=(A, B))),
        ("a AND - b", Bool(must=(A,), should=(B,))),
        ("a AND ___ b", Bool(must=(A,), should=(B,))),  # AND still binds what comes before
        ("___ AND b", B),
        ('a AND ""', A),
        ("a (...) b", Bool(should=(A, B))),  # a group of no words
        ("a & b", Bool(should=(A, B))),
    ],
)
def test_dropped_clauses(text: str, expected: Node) -> None:
    assert parse(text) == expected


def test_boolean_nodes_are_hashable_values() -> None:
    assert parse("a AND (b OR c)") == parse("a && (b || c)")
    assert len({parse("a b"), parse("a OR b"), parse("a AND b")}) == 2


def test_nesting_up_to_the_limit() -> None:
    deep = "(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH
    assert parse(deep) == A
    with pytest.raises(QuerySyntaxError, match=f"more than {MAX_DEPTH} deep") as caught:
        parse("(" + deep + ")")
    assert caught.value.position == MAX_DEPTH


def test_huge_inputs_are_errors_not_crashes() -> None:
    with pytest.raises(QuerySyntaxError, match="deep"):
        parse("(" * 200_000)
    with pytest.raises(QuerySyntaxError, match="not closed"):
        parse("a " * 50_000 + '"')
    node = parse("x AND " * 20_000 + "y")
    assert isinstance(node, Bool) and len(node.must) == 20_001


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ("", 0, "has no words to search for"),
        ("  \t ", 0, "has no words to search for"),
        ("... -- _", 0, "has no words to search for"),
        ("__ AND ..", 0, "has no words to search for"),
        ('neutron "beam', 8, "unbalanced quotes: the phrase starting at position 8 is not closed"),
        ('"a \\"', 0, "the phrase starting at position 0 is not closed"),
        ("(a OR b", 0, "unbalanced parentheses: '(' at position 0 is not closed"),
        ("a (b (c)", 2, "'(' at position 2 is not closed"),
        ("a OR b)", 6, "unbalanced parentheses: ')' at position 6 has no matching '('"),
        ("()", 0, "empty parentheses at position 0"),
        ("a ( ) b", 2, "empty parentheses"),
        ("a AND", 2, "dangling operator: 'AND' at position 2 has nothing after it"),
        ("a OR", 2, "dangling operator: 'OR'"),
        ("a -", 2, "dangling operator: '-'"),
        ("a NOT", 2, "dangling operator: 'NOT'"),
        ("(a AND)", 3, "'AND' at position 3 has nothing after it (found ')' at position 6)"),
        ("AND a", 0, "'AND' at position 0 has nothing before it"),
        ("a (OR b)", 3, "'OR' at position 3 has nothing before it"),
        ("a AND OR b", 6, "'OR' at position 6 cannot follow 'AND' at position 2"),
        ("a AND AND b", 6, "two operators in a row"),
        ("--a", 1, "'-' at position 1 cannot follow '-' at position 0"),
        ("NOT -a", 4, "two operators in a row"),
        (":x", 0, "empty field name: ':' at position 0 has no field name before it"),
        ("a AND :x", 6, "empty field name"),
        ("a:b:c", 3, "':' at position 3 follows a value, not a field name"),
        ("name:", 4, "the field 'name' at position 0 has nothing to search for after its ':'"),
        ("name: ", 4, "the field 'name'"),
        ("(name:)", 5, "the field 'name' at position 1 has nothing to search for"),
        ("name:AND x", 4, "the field 'name'"),
        ("name:-x", 5, "'-' at position 5 must come before the field: -name:"),
        ("na*e:x", 0, "a field name cannot have wildcards"),
        ("*:x", 0, "a field name cannot have wildcards"),
        ("a~", 1, "fuzzy and proximity searches are not supported in free text"),
        ("a~2", 1, "not supported"),
        ('"a b"~3', 5, "'~' at position 5"),
        ("[1 TO 5]", 0, "range queries are not supported in free text"),
        ("date:{2020 TO 2021}", 5, "'lower' and 'upper'"),
        ("x:[1 TO 5]", 2, "'parameters'"),
        ("a]", 1, "range queries are not supported"),
        ("a^", 1, "'^' at position 1 must be followed by a number"),
        ("a^x", 1, "a boost"),
        ("^2 a", 0, "the boost '^2' at position 0 follows nothing it could apply to"),
        ("a\\", 1, "the backslash at position 1 ends the text"),
        ("a\\u12", 1, "'\\u' at position 1 must be followed by four hexadecimal digits"),
        ("x \\u12G4", 2, "four hexadecimal digits"),
    ],
)
def test_errors(text: str, position: int, message: str) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse(text)
    assert message in str(caught.value)
    assert caught.value.position == position
    assert caught.value.message == str(caught.value)
    assert isinstance(caught.value, ValueError)


# -- properties ----------------------------------------------------------------------------

_SYNTAX = st.lists(
    st.sampled_from(
        [*'ab_.*?/\\"():^~+-!&|[]{} \t', "AND", "OR", "NOT", "x:", "2", "é", "\\u0041"]
    ),
    max_size=30,
).map("".join)


def _check_node(node: Node) -> None:
    # Every Bool that survives has something to say and a Leaf has parts of token text.
    if isinstance(node, Bool):
        children = node.must + node.should + node.must_not
        assert children
        assert not (len(node.should) == 1 and not node.must and not node.must_not)
        for child in children:
            _check_node(child)
    elif isinstance(node, Leaf):
        assert node.parts
        for part in node.parts:
            assert part and "**" not in part
            assert tokens(part.replace("*", "x").replace("?", "x")) == [
                part.replace("*", "x").replace("?", "x")
            ]
            assert part == part.lower()
    else:
        assert isinstance(node, MatchAll)


@given(st.one_of(st.text(max_size=60), _SYNTAX))
def test_parse_returns_a_node_or_raises_a_syntax_error(text: str) -> None:
    try:
        node = parse(text)
    except QuerySyntaxError as e:
        assert 0 <= e.position <= len(text)
        assert str(e)
    else:
        _check_node(node)


_PLAIN = st.text(alphabet=st.sampled_from(list("aZ09é数_.,;/@#$%=<>'&|")), min_size=1)


@given(_PLAIN)
def test_a_word_without_syntax_is_split_like_the_index(text: str) -> None:
    expected = tokens(text)
    assume(expected)
    assert parse(text) == Leaf(None, tuple(expected))


@given(st.text(min_size=1))
def test_a_quoted_phrase_is_split_like_the_index(text: str) -> None:
    inner = text.replace("\\", "").replace('"', "")
    expected = tokens(inner)
    assume(expected)
    assert parse(f'"{inner}"') == Leaf(None, tuple(expected))


@given(st.text(min_size=1))
def test_escaping_every_non_word_character_makes_text_literal(text: str) -> None:
    assume(text not in ("AND", "OR", "NOT"))
    expected = tokens(text)
    assume(expected)
    escaped = "".join(c if c.isalnum() else "\\" + c for c in text)
    assert parse(escaped) == Leaf(None, tuple(expected))


_WORD = st.from_regex(r"[a-zA-Z0-9][a-zA-Z0-9_.*?/]{0,6}", fullmatch=True).filter(
    lambda s: s not in ("AND", "OR", "NOT")
)
_CLAUSE = st.one_of(
    _WORD,
    _WORD.map(lambda s: f'"{s} {s}"'),
    _WORD.map(lambda s: f"name:{s}"),
    _WORD.map(lambda s: f"{s}^2"),
)
_PREFIX = st.sampled_from(["", "-", "+", "!", "NOT "])
# Prefix operators only before parentheses: two of them in a row are an error.
_QUERY = st.recursive(
    _CLAUSE,
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from([" ", " AND ", " OR ", " && ", " || "]), inner).map(
            "".join
        ),
        st.tuples(_PREFIX, inner).map(lambda t: f"{t[0]}({t[1]})"),
        inner.map(lambda q: f"title:({q})^0.5"),
    ),
    max_leaves=12,
)


@given(_QUERY)
def test_queries_built_from_the_grammar_parse(text: str) -> None:
    _check_node(parse(text))
