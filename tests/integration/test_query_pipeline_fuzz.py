"""Property-based tests of the whole query pipeline (parse, compile, authorize, execute,
INCLUDE, render) on the corpus fixture catalogue, in process, on every backend.

Whatever the query text, ``Catalogue.search``/``get`` answers a JSON-renderable result or an
``IcatError`` of type BAD_PARAMETER (VALIDATION for LIMIT and maxEntities; get also
NO_SUCH_OBJECT_FOUND) — never INTERNAL, never a database error dressed as VALIDATION, never
another exception. User text never reaches the SQL: string literals and variable names carry a
marker that must not appear in the compiled statement. And the database is unchanged.

Queries come from a schema-aware generator (valid paths, literals of matching and
mismatching types, functions, aggregates, joins, sub-selects, ORDER BY, LIMIT, INCLUDE), from
token-level mutations of the corpus, and from literal swaps in corpus queries.
``CAIRN_FUZZ_EXAMPLES`` scales the number of examples (default 100 per test and backend),
``CAIRN_FUZZ_RANDOM=1`` draws new ones on every run instead of a fixed sample.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from cairn.errors import ErrorType, IcatError
from cairn.query.execute import queries_for
from cairn.schema import SCHEMA
from cairn.web.entity_json import entity_json, results, results_json
from tests.conftest import BACKENDS, FUZZ_RANDOM, make_database
from tests.integration.query_corpus.corpus import CASES
from tests.integration.query_corpus.inprocess import Fixture, open_fixture
from tests.query_mutations import mutate

pytestmark = pytest.mark.filterwarnings("ignore:SELECT statement has a cartesian product")

EXAMPLES = int(os.environ.get("CAIRN_FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not FUZZ_RANDOM,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MARK = "zqx"  # in every generated string literal and variable name; never in SQL text
DB_FAILURE = "A value does not fit its database column"  # a database error seen as VALIDATION


# -- the catalogue ----------------------------------------------------------------------------


class Target:
    """The fixture catalogue on one backend and its content at the start."""

    def __init__(self, fx: Fixture) -> None:
        self.fx = fx
        self.db = fx.catalogue.db
        self.before = self.snapshot()

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        with self.db.engine.connect() as conn:
            return {name: [tuple(r) for r in conn.execute(select(t).order_by(t.c.id))]
                    for name, t in self.db.tables.entity.items()}

    def sql(self, query: str) -> str:
        stmt = queries_for(self.db).search(query).statement()
        return str(stmt.compile(dialect=self.db.engine.dialect))


@pytest.fixture(scope="module", params=BACKENDS)
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Target]:
    tmp = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    url, drop = make_database(str(request.param), tmp)
    fx = open_fixture(url, tmp)
    try:
        yield Target(fx)
    finally:
        fx.dispose()
        drop()  # type: ignore[operator]


def allowed(e: IcatError, get: bool = False) -> bool:
    if e.type == ErrorType.BAD_PARAMETER:
        return True
    if e.type == ErrorType.VALIDATION:
        return e.message != DB_FAILURE
    return get and e.type == ErrorType.NO_SUCH_OBJECT_FOUND


def check_search(t: Target, query: str) -> None:
    zone = t.fx.catalogue.settings.zone
    try:
        found = t.fx.catalogue.search(t.fx.sid, query)
        out = results(found, zone)
    except IcatError as e:
        assert allowed(e), f"{query!r} -> {e.type.name}: {e.message}"
        assert e.offset is None or -1 <= e.offset <= max(len(query), 0), (query, e.offset)
        return
    except Exception as e:  # pragma: no cover - the property under test
        raise AssertionError(f"{query!r} raised {type(e).__name__}: {e}") from e
    json.dumps(out)
    # REST builds its answer straight from the rows: byte for byte the objects' rendering.
    assert t.fx.search_json(query) == results_json(found, zone), query
    if MARK in query:
        sql = t.sql(query)
        assert MARK not in sql, f"user text in SQL for {query!r}:\n{sql}"


def check_get(t: Target, query: str, id: int) -> None:
    try:
        out = t.fx.get(query, id)
    except IcatError as e:
        assert allowed(e, get=True), f"get {query!r} {id} -> {e.type.name}: {e.message}"
        return
    except Exception as e:  # pragma: no cover
        raise AssertionError(f"get {query!r} {id} raised {type(e).__name__}: {e}") from e
    json.dumps(out)


def fuzz(t: Target, body: Callable[[st.DataObject], None]) -> None:
    """Run ``body`` as a hypothesis test, then check the database did not change."""
    run = FUZZ(given(st.data())(body))
    run()
    assert t.snapshot() == t.before, "a query changed the database"


# -- a schema-aware query generator -----------------------------------------------------------

ENTITIES = ["Dataset", "Datafile", "Investigation", "DatasetParameter", "User",
            "InvestigationUser", "ParameterType", "Facility", "Study", "Instrument",
            "FacilityCycle", "Rule", "DataCollection", "Sample"]
COMPOPS = ["=", "<>", "!=", "<", "<=", ">", ">=", "LIKE"]
STRING_FUNCS = ["UPPER", "LOWER", "TRIM", "LENGTH"]
NUMERIC_FUNCS = ["ABS", "SQRT"]
AGGS = ["COUNT", "MIN", "MAX", "AVG", "SUM"]
NUMBERS = frozenset({"Long", "Integer", "Double"})
WHOLE = frozenset({"Long", "Integer"})
STRINGS = frozenset({"String"})


def _fields(entity: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]],
                                  list[tuple[str, str]]]:
    e = SCHEMA.entities[entity]
    attrs = [(f.name, f.type) for f in e.fields.values() if f.is_attribute and not f.hidden]
    ones = [(f.name, f.type) for f in e.fields.values() if f.is_one]
    manys = [(f.name, f.type) for f in e.fields.values() if f.is_many]
    return attrs, ones, manys


class Gen:
    """Draws one query; variables are remembered with their entity types."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data
        self.vars: dict[str, str] = {}
        self.n = 0

    def draw(self, strategy: st.SearchStrategy[Any]) -> Any:
        return self.data.draw(strategy)

    def pick(self, items: list[Any]) -> Any:
        return self.draw(st.sampled_from(items))

    def chance(self, p: float) -> bool:
        return bool(self.draw(st.floats(0, 1)) < p)

    def var(self) -> str:
        self.n += 1
        return f"{MARK}{self.n}" if self.chance(0.5) else f"v{self.n}"

    # values ---------------------------------------------------------------------------------

    def path(self, var: str | None = None, depth: int = 2,
             want: frozenset[str] | None = None) -> tuple[str, str]:
        """A path and its type (an ICAT attribute type, or an entity name); mostly one of
        the ``want`` types when given."""
        var = var or self.pick(sorted(self.vars))
        entity = self.vars[var]
        text = var
        for _ in range(depth + 1):
            attrs, ones, _ = _fields(entity)
            if ones and self.chance(0.3):
                name, entity = self.pick(ones)
                text += "." + name
                continue
            if want is None and self.chance(0.1):
                return text, entity
            wanted = [a for a in attrs if want is None or a[1] in want]
            name, typ = self.pick(wanted if wanted and self.chance(0.9) else attrs)
            return f"{text}.{name}", typ
        return text, entity

    def literal(self, typ: str | None) -> str:
        if typ is None or self.chance(0.1):
            typ = self.pick(["String", "Long", "Double", "Date", "boolean", "ParameterValueType",
                             "StudyStatus", "null", "user"])
        n = self.draw(st.integers(-3, 10**6))
        match typ:
            case "String":
                return self.pick([f"'{MARK}{n}'", f"'%{MARK}%'", "'dataset 1'", "'%a%'",
                                  "'Datafile 9'", "'it''s'", "''", f"'{n}'"])
            case "Long" | "Integer":
                return self.pick([str(n), f"'{n}'", str(-n), "0", "9223372036854775807",
                                  f"{n}.5", f"'{MARK}'", "99999999999999999999"])
            case "Double":
                return self.pick([f"{n}.25", f"'{n}.5'", "1.5E2", "-0.0", str(n), "'nan'",
                                  "1e308"])
            case "Date":
                return self.pick(["'2019-03-01 10:00:00'", "{ts 2019-03-01 10:00:00}",
                                  "'2007 06 30 08:30:58 00:00'", "'2019-03-01'",
                                  "'2019-03-01T10:00:00.000Z'", f"'{MARK}'", "CURRENT_TIMESTAMP",
                                  "CURRENT_DATE", "CURRENT_TIME", "{ts 2019-03-01 23:59:59}"])
            case "boolean":
                return self.pick(["TRUE", "FALSE", "'true'", "1"])
            case "ParameterValueType" | "StudyStatus":
                return self.pick([f"org.icatproject.{typ}.{c}" for c in SCHEMA.enums[typ]]
                                 + ["'NEW'", "'NUMERIC'", "1"])
            case "null":
                return "NULL"
            case "user":
                return ":user"
        return str(n)  # an entity: its id

    def value(self, depth: int = 0, want: frozenset[str] | None = None
              ) -> tuple[str, str | None]:
        r = self.draw(st.integers(0, 9))
        if r < 5 or depth > 1:
            return self.path(want=want)
        if r < 6:
            return self.literal(None), None
        if r < 7:
            if want == NUMBERS or (want is None and self.chance(0.5)):
                f, kind = self.pick(NUMERIC_FUNCS), NUMBERS
            else:
                f, kind = self.pick(STRING_FUNCS), STRINGS
            v, _ = self.value(depth + 1, kind)
            return f"{f}({v})", None
        if r < 8:
            a, _ = self.value(depth + 1, NUMBERS)
            b, _ = self.value(depth + 1, NUMBERS)
            return f"({a} {self.pick(['+', '-', '*', '/'])} {b})", None
        if r < 9:
            v, _ = self.value(depth + 1, STRINGS)
            w, _ = self.value(depth + 1, STRINGS)
            f = self.pick(["CONCAT({v}, {w})", "SUBSTRING({v}, {n})", "LOCATE({w}, {v})",
                           "MOD({i}, {n})", "SUBSTRING({v}, {n}, {n})",
                           "TRIM(LEADING {c} FROM {v})", "TRIM({v})"])
            i, _ = self.value(depth + 1, WHOLE)
            return f.format(v=v, w=w, i=i, c=self.pick(["'a'", "' '", "'x'", "'ab'"]),
                            n=self.draw(st.integers(-1, 5))), None
        var = self.pick(sorted(self.vars))
        _, _, manys = _fields(self.vars[var])
        many = self.pick([m for m, _ in manys] or ["datasets"])
        return f"SIZE({var}.{many})", "Integer"

    def condition(self, depth: int = 0) -> str:
        r = self.draw(st.integers(0, 12 if depth < 2 else 8))
        left, typ = self.value()
        if r <= 2:
            right = self.literal(typ) if self.chance(0.7) else self.value()[0]
            return f"{left} {self.pick(COMPOPS)} {right}"
        if r == 3:
            items = ", ".join(self.literal(typ) for _ in range(self.draw(st.integers(1, 3))))
            return f"{left} {self.pick(['IN', 'NOT IN'])} ({items})"
        if r == 4:
            return f"{left} {self.pick(['BETWEEN', 'NOT BETWEEN'])} " \
                   f"{self.literal(typ)} AND {self.literal(typ)}"
        if r == 5:
            return f"{left} IS {self.pick(['NULL', 'NOT NULL'])}"
        if r == 6:
            pattern = self.literal("String")
            esc = self.pick(["", " ESCAPE '!'", " ESCAPE '$'"])
            return f"{left} {self.pick(['LIKE', 'NOT LIKE'])} {pattern}{esc}"
        if r == 7:
            var = self.pick(sorted(self.vars))
            _, _, manys = _fields(self.vars[var])
            many = self.pick([m for m, _ in manys] or ["datasets"])
            return f"{var}.{many} IS {self.pick(['EMPTY', 'NOT EMPTY'])}"
        if r == 8:
            return f"{left} = {self.literal(typ)}"
        if r == 9:
            return f"({self.condition(depth + 1)} {self.pick(['AND', 'OR'])} " \
                   f"{self.condition(depth + 1)})"
        if r == 10:
            return f"NOT ({self.condition(depth + 1)})"
        if r == 11:
            return f"{self.pick(['EXISTS', 'NOT EXISTS'])} ({self.subquery()})"
        return f"{left} {self.pick(['IN', 'NOT IN'])} ({self.subquery()})"

    def subquery(self) -> str:
        outer = dict(self.vars)
        v, entity = self.var(), self.pick(ENTITIES)
        self.vars[v] = entity
        item = self.pick([v, self.path(v)[0], f"COUNT({v})", f"MAX({self.path(v)[0]})"])
        where = f" WHERE {self.condition(2)}" if self.chance(0.7) else ""
        self.vars = outer
        return f"SELECT {item} FROM {entity} {v}{where}"

    # the query ------------------------------------------------------------------------------

    def query(self) -> str:
        root_entity = self.pick(ENTITIES)
        root = self.var()
        self.vars[root] = root_entity
        froms = [f"{root_entity} {root}"]
        for _ in range(self.draw(st.integers(0, 2))):
            owner = self.pick(sorted(self.vars))
            _, ones, manys = _fields(self.vars[owner])
            rels = ones + manys
            if not rels:
                break
            name, target = self.pick(rels)
            v = self.var()
            self.vars[v] = target
            froms.append(f"{self.pick(['JOIN', 'LEFT JOIN', 'INNER JOIN', 'LEFT OUTER JOIN'])} "
                         f"{owner}.{name} {v}")
        aggregate = self.chance(0.25)
        distinct = "DISTINCT " if self.chance(0.15) else ""
        if aggregate:
            agg = self.pick(AGGS)
            arg = self.value(want=NUMBERS if agg in ("SUM", "AVG") else None)[0]
            items = [f"{agg}({self.pick(['', 'DISTINCT '])}{arg})"]
            if self.chance(0.4):
                group, _ = self.path()
                items.insert(0, group)
        elif self.chance(0.5):
            items = [root]
        else:
            items = [self.value()[0] for _ in range(self.draw(st.integers(1, 3)))]
        text = f"SELECT {distinct}{', '.join(items)} FROM {' '.join(froms)}"
        if self.chance(0.7):
            text += f" WHERE {self.condition()}"
        if aggregate and len(items) > 1:
            text += f" GROUP BY {items[0]}"
            if self.chance(0.3):
                text += f" HAVING COUNT({root}) > {self.draw(st.integers(0, 3))}"
        if self.chance(0.4):
            keys = [f"{self.value()[0]} {self.pick(['', 'ASC', 'DESC'])}".strip()
                    for _ in range(self.draw(st.integers(1, 2)))]
            text += " ORDER BY " + ", ".join(keys)
        if items == [root] and self.chance(0.3):
            _, ones, manys = _fields(root_entity)
            rels = [n for n, _ in ones + manys] or ["x"]
            text += " INCLUDE " + self.pick(["1", f"{root}.{self.pick(rels)}",
                                             f"{root}.{self.pick(rels)}, {root}.{self.pick(rels)}"])
        if self.chance(0.3):
            text += f" LIMIT {self.draw(st.integers(-2, 20))}, " \
                    f"{self.pick(['*', str(self.draw(st.integers(-1, 20)))])}"
        return text


# -- corpus-based inputs ----------------------------------------------------------------------

SEEDS = sorted({c.query for c in CASES if c.get_id is None and c.error is None})
GET_SEEDS = sorted({c.query for c in CASES if c.get_id is not None})
_LITERAL = re.compile(r"'(?:[^']|'')*'|\{ts [^}]*\}|\b\d+(?:\.\d+)?\b|\bTRUE\b|\bFALSE\b|\bNULL\b")
REPLACEMENTS = ["'x'", "'1'", "'2019-03-01 10:00:00'", "{ts 2019-03-01 10:00:00}", "42",
                "-1", "2.5", "TRUE", "NULL", ":user", "org.icatproject.StudyStatus.NEW",
                f"'{MARK}'", "CURRENT_TIMESTAMP", "''", "'%'", "99999999999999999999"]
PIECES = [" ", "(", ")", ",", "'", ".", "=", "<>", " AND ", " OR ", " NOT ", " IN ",
          " LIKE ", " IS NULL", " IS EMPTY", " MEMBER OF ", " BETWEEN ", " EXISTS ", " JOIN ",
          " LEFT JOIN ", " DISTINCT ", " COUNT(", " MAX(", " ORDER BY ", " DESC", " LIMIT ",
          " INCLUDE ", " INCLUDE 1", " WHERE ", " GROUP BY ", " HAVING ", " SELECT ", "*", "-",
          "/", "+", "{ts 2019-01-01 00:00:00}", ":user", "o", "o.id", "o.name", "ds",
          "Dataset", " <-> ", "[", "]"]


def insert_piece(toks: list[str], i: int, data: st.DataObject) -> None:
    """An insertion for :func:`~tests.query_mutations.mutate`: a query fragment as a token."""
    toks.insert(i, data.draw(st.sampled_from(PIECES)))


def swap_literals(text: str, data: st.DataObject) -> str:
    spans = [m.span() for m in _LITERAL.finditer(text)]
    if not spans:
        return text
    for _ in range(data.draw(st.integers(1, 2))):
        if not spans:
            break
        a, b = data.draw(st.sampled_from(spans))
        text = text[:a] + data.draw(st.sampled_from(REPLACEMENTS)) + text[b:]
        spans = [m.span() for m in _LITERAL.finditer(text)]
    return text


# -- the properties ---------------------------------------------------------------------------


def test_generated_queries(target: Target) -> None:
    fuzz(target, lambda data: check_search(target, Gen(data).query()))


def test_mutated_corpus_queries(target: Target) -> None:
    def body(data: st.DataObject) -> None:
        check_search(target, mutate(data.draw(st.sampled_from(SEEDS)), data, insert_piece))

    fuzz(target, body)


def test_corpus_queries_with_other_literals(target: Target) -> None:
    def body(data: st.DataObject) -> None:
        check_search(target, swap_literals(data.draw(st.sampled_from(SEEDS)), data))

    fuzz(target, body)


def test_rest_answers_equal_the_objects_rendering_on_the_whole_corpus(target: Target) -> None:
    zone = target.fx.catalogue.settings.zone
    for query in SEEDS:
        objs = results_json(target.fx.catalogue.search(target.fx.sid, query), zone)
        assert target.fx.search_json(query) == objs, query


def test_rest_gets_equal_the_objects_rendering(target: Target) -> None:
    """The corpus's gets, every entity of the fixture with INCLUDE 1, and deep includes."""
    fx, zone = target.fx, target.fx.catalogue.settings.zone
    gets = {(c.query, c.get_id) for c in CASES if c.get_id is not None and c.error is None}
    for name in SCHEMA.entities:
        (first,) = fx.catalogue.search(fx.sid, f"SELECT MIN(o.id) FROM {name} o")
        if first is not None:
            gets |= {(f"{name} INCLUDE 1", first), (name, first)}
    (inv,) = fx.catalogue.search(fx.sid, "SELECT MIN(o.id) FROM Investigation o")
    gets.add(("Investigation i INCLUDE i.datasets ds, ds.datafiles df, df.parameters p, p.type, "
              "ds.parameters, i.investigationUsers iu, iu.user, i.facility", inv))
    assert len(gets) >= 40
    for query, id in sorted(gets):
        obj = fx.catalogue.get(fx.sid, query, id)
        assert fx.get_json(query, id) == entity_json(obj, zone), query


def test_random_text(target: Target) -> None:
    def body(data: st.DataObject) -> None:
        parts = data.draw(st.lists(st.sampled_from(PIECES), max_size=25))
        check_search(target, "SELECT " + "".join(parts) if data.draw(st.booleans())
                     else "".join(parts) + data.draw(st.text(max_size=8)))

    fuzz(target, body)


def test_gets(target: Target) -> None:
    def body(data: st.DataObject) -> None:
        seed = data.draw(st.sampled_from(GET_SEEDS))
        text = mutate(seed, data, insert_piece) if data.draw(st.booleans()) else seed
        check_get(target, text, data.draw(st.integers(-1, 20)))

    fuzz(target, body)


def test_the_generator_reaches_the_database(target: Target, tmp_path: Path) -> None:
    """Many generated queries must run, or the properties above test little but the parser.
    (Derandomized, yet the sample still depends on what ran before in the process: 6 of 40
    ran after the unit tests against 19-25 alone, so a larger sample and a lower bar.)"""
    ran = 0

    @settings(max_examples=100, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.data())
    def body(data: st.DataObject) -> None:
        nonlocal ran
        try:
            target.fx.search(Gen(data).query())
            ran += 1
        except IcatError:
            pass

    body()
    assert ran >= 20, f"only {ran} of 100 generated queries ran"
