"""Parameter types looked up before a parameter filter runs (cairn.query.lookups), and the
(PARAMETER_TYPE_ID, NUMERIC_VALUE) indexes of migration cairn_0011, on every backend.

The looked-up ids only add a condition the join implies, so every query must answer exactly
what it answers without them, as root and as a user whose rules restrict it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import inspect

from cairn.catalogue.service import Catalogue
from cairn.db.engine import Database
from cairn.db.tables import type_numeric_index
from cairn.query import lookups
from cairn.query.compiler import CompiledQuery
from cairn.query.execute import queries_for
from cairn.schema import SCHEMA
from cairn.startup import catalogue_of
from tests.integration.catalogue_objects import create

#: (query, lookups expected). Types: temperature in K at both facilities, in C at one;
#: pressure in bar; 25 types "t00".."t24" (more than lookups.MAX_IDS share a prefix).
QUERIES = (
    ("SELECT ds.name FROM Dataset ds JOIN ds.parameters p JOIN p.type t "
     "WHERE t.name = 'temperature' AND t.units = 'K' AND p.numericValue BETWEEN 15 AND 22 "
     "ORDER BY ds.name", 1),
    ("SELECT DISTINCT i.name FROM Investigation i JOIN i.datasets ds JOIN ds.parameters p "
     "JOIN p.type t WHERE t.name = 'temperature' AND p.numericValue > 20 ORDER BY i.name", 1),
    ("SELECT ds.name FROM Dataset ds JOIN ds.parameters p "
     "WHERE p.type.name = 'pressure' AND p.numericValue < 2 ORDER BY ds.name", 1),
    ("SELECT ds.name FROM Dataset ds JOIN ds.parameters p JOIN p.type t "
     "WHERE t.name = 'no such type' ORDER BY ds.name", 1),
    ("SELECT ds.name FROM Dataset ds JOIN ds.parameters p JOIN p.type t "
     "WHERE t.name LIKE 't%' AND p.numericValue >= 0 ORDER BY ds.name", 1),  # > MAX_IDS
    ("SELECT ds.name FROM Dataset ds JOIN ds.parameters p JOIN p.type t "
     "WHERE t.name = 'temperature' OR p.numericValue = 1 ORDER BY ds.name", 0),
    ("SELECT ds.name FROM Dataset ds JOIN ds.parameters p LEFT JOIN p.type t "
     "WHERE t.name = 'temperature' ORDER BY ds.name", 0),
    ("SELECT COUNT(p) FROM DatafileParameter p JOIN p.type t WHERE t.units = 'C'", 1),
    ("SELECT s.name FROM Sample s JOIN s.parameters p JOIN p.type t "
     "WHERE t.name = 'temperature' AND (t.units = 'K' OR t.units = 'C') ORDER BY s.name", 1),
)
USER = "db/u"


@pytest.fixture
def catalogue(migrated_url: str) -> Iterator[Catalogue]:
    db = Database(migrated_url)  # at the newest revision already
    db.detect_ids()
    c = catalogue_of(db)
    user = create(c, "User", name=USER)
    types: dict[str, int] = {}
    for fac_name in ("F", "G"):
        f = create(c, "Facility", name=fac_name)
        it = create(c, "InvestigationType", name="t", facility=("Facility", f))
        dt = create(c, "DatasetType", name="t", facility=("Facility", f))
        st = create(c, "SampleType", name="t", molecularFormula="X", facility=("Facility", f))
        kinds = [("temperature", "K"), ("pressure", "bar")] + (
            [("temperature", "C")] + [(f"t{n:02}", "u") for n in range(25)]
            if fac_name == "F" else [])
        for name, units in kinds:
            types[f"{fac_name}:{name}:{units}"] = create(
                c, "ParameterType", name=name, units=units, valueType="NUMERIC",
                facility=("Facility", f), applicableToDataset=True,
                applicableToDatafile=True, applicableToSample=True)
        for n in range(4):
            inv = create(c, "Investigation", name=f"{fac_name}{n}", visitId="1",
                         title="x", facility=("Facility", f), type=("InvestigationType", it))
            if n % 2 == 0:
                create(c, "InvestigationUser", investigation=("Investigation", inv),
                       user=("User", user), role="PI")
            sample = create(c, "Sample", name=f"s-{fac_name}{n}",
                            investigation=("Investigation", inv), type=("SampleType", st))
            for d in range(3):
                ds = create(c, "Dataset", name=f"{fac_name}{n}-{d}",
                            investigation=("Investigation", inv), type=("DatasetType", dt))
                df = create(c, "Datafile", name=f"{fac_name}{n}-{d}.nxs",
                            dataset=("Dataset", ds))
                for i, (key, pt) in enumerate(sorted(types.items())):
                    if not key.startswith(f"{fac_name}:") or (n + d + i) % 3 == 0:
                        continue
                    value = float(10 + (n * 7 + d * 5 + i * 3) % 20)
                    create(c, "DatasetParameter", dataset=("Dataset", ds),
                           type=("ParameterType", pt), numericValue=value)
                    if d == 0:
                        create(c, "DatafileParameter", datafile=("Datafile", df),
                               type=("ParameterType", pt), numericValue=value)
                    if d == 1:
                        create(c, "SampleParameter", sample=("Sample", sample),
                               type=("ParameterType", pt), numericValue=value)
    for rule in ("SELECT ds FROM Dataset ds JOIN ds.investigation i JOIN i.investigationUsers iu "
                 "JOIN iu.user u WHERE u.name = :user",
                 "Investigation <-> InvestigationUser <-> User [name = :user]",
                 "Sample <-> Investigation <-> InvestigationUser <-> User [name = :user]",
                 "DatasetParameter", "DatafileParameter", "SampleParameter", "ParameterType"):
        create(c, "Rule", what=rule, crudFlags="R")
    yield c
    db.dispose()


def _answers(c: Catalogue) -> dict[tuple[str, str], list[object]]:
    out: dict[tuple[str, str], list[object]] = {}
    for who in ("db/root", USER):
        sid = c.sessions.create(who)
        with c.as_user(sid, read_only=True) as work:
            for query, _ in QUERIES:
                out[who, query] = work.search(query)
    return out


def test_queries_answer_the_same_with_and_without_the_lookups(
        catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch) -> None:
    db = catalogue.db
    monkeypatch.setattr(lookups, "DIALECTS", frozenset({db.engine.dialect.name}))
    for query, expected in QUERIES:
        assert len(queries_for(db).search(query).lookups) == expected, query
    looked_up = _answers(catalogue)
    assert looked_up["db/root", QUERIES[0][0]], "the first query finds something"
    assert looked_up["db/root", QUERIES[3][0]] == []

    # A property outranks what the cached property kept on each compiled query.
    monkeypatch.setattr(CompiledQuery, "lookups", property(lambda self: ()))
    for query, _ in QUERIES:
        assert queries_for(db).search(query).lookups == ()
    assert _answers(catalogue) == looked_up


def test_the_statement_names_the_type_ids_found(catalogue: Catalogue) -> None:
    db = catalogue.db
    q = queries_for(db).search(QUERIES[0][0])
    with db.connect() as conn:
        found = lookups.resolve(conn, q.lookups)
    assert len(found) == 1 and found[0] is not None and len(found[0]) == 2  # K at F and at G
    sql = str(q.statement(None, lookups.conditions(q.lookups, found)).compile(db.engine))
    assert f"PARAMETER_TYPE_ID IN ({found[0][0]}, {found[0][1]})" in sql
    q = queries_for(db).search(QUERIES[4][0])
    with db.connect() as conn:
        assert lookups.resolve(conn, q.lookups) == (None,)  # 25 types: left as written
    # made where measured to help (MariaDB, SQLite), not on PostgreSQL
    assert bool(lookups.wanted(q.lookups, db.engine.dialect)) == (db.dialect != "postgresql")


def test_every_parameter_table_has_the_type_and_value_index(migrated_url: str) -> None:
    db = Database(migrated_url)
    try:
        tables = sorted(e.table for e in SCHEMA.entities.values() if e.extends == "Parameter")
        assert len(tables) == 5  # Investigation-, Dataset-, Datafile-, Sample-, DataCollection-
        for table in tables:
            name = table.lower() if db.dialect == "postgresql" else table
            found = {str(ix["name"]).lower(): [str(c).lower() for c in ix["column_names"]]
                     for ix in inspect(db.engine).get_indexes(name)}
            assert found[type_numeric_index(table).lower()] == ["parameter_type_id",
                                                                 "numeric_value"], table
    finally:
        db.dispose()
