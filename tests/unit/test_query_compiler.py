"""The query compiler and executor on a small catalogue in SQLite (in memory).

Set ``CAIRN_QUERY_BACKENDS=sqlite,postgresql,mariadb`` to run the same cases on the other
backends too (servers as in ``tests/conftest.py``); the REST tests cover them by default.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import false, insert, literal_column

from cairn.catalogue.include import fill
from cairn.catalogue.objects import Obj
from cairn.catalogue.work import Work
from cairn.db.engine import Database
from cairn.db.tables import TABLES
from cairn.errors import ErrorType, IcatError
from cairn.query import parse_query
from cairn.query.coerce import parse_datetime
from cairn.query.compiler import CompiledQuery, Compiler, IdPath
from cairn.query.execute import Queries, queries_for, run
from tests.conftest import make_database

pytestmark = pytest.mark.filterwarnings("ignore:SELECT statement has a cartesian product")

BACKENDS = os.environ.get("CAIRN_QUERY_BACKENDS", "sqlite").split(",")
T0 = datetime(2024, 1, 1, 12, 0, 0)


def _rows(conn: Any, entity: str, rows: list[dict[str, Any]]) -> None:
    system = {"createId": "db/root", "createTime": T0, "modId": "db/root", "modTime": T0}
    for r in rows:  # one by one: the rows set different columns
        conn.execute(insert(TABLES[entity]), {**system, **r})


def populate(db: Database) -> None:
    TABLES.metadata.create_all(db.engine)
    with db.begin() as c:
        _rows(c, "Facility", [{"id": 1, "name": "F1", "daysUntilRelease": 30},
                              {"id": 2, "name": "F2"}])
        _rows(c, "InvestigationType", [{"id": 1, "name": "experiment", "facility": 1},
                                       {"id": 2, "name": "calibration", "facility": 2}])
        _rows(c, "DatasetType", [{"id": 1, "name": "raw", "facility": 1},
                                 {"id": 2, "name": "processed", "facility": 1}])
        _rows(c, "Investigation", [
            {"id": 1, "name": "alpha", "visitId": "1", "title": "Neutron study", "facility": 1,
             "type": 1, "startDate": datetime(2019, 3, 1, 10, 0), "fileSize": 1000},
            {"id": 2, "name": "beta", "visitId": "1", "title": "X-ray study", "facility": 1,
             "type": 1, "startDate": datetime(2019, 7, 15, 8, 30, 58), "fileSize": 5000},
            {"id": 3, "name": "gamma", "visitId": "2", "title": "Muon work", "facility": 2,
             "type": 2, "startDate": datetime(2020, 1, 10)},
            {"id": 4, "name": "delta", "visitId": "1", "title": "  Empty one  ", "facility": 1,
             "type": 1},
        ])
        _rows(c, "Dataset", [
            {"id": 1, "name": "ds-a", "investigation": 1, "type": 1, "complete": True},
            {"id": 2, "name": "ds-b", "investigation": 1, "type": 2, "complete": False},
            {"id": 3, "name": "ds-c", "investigation": 2, "type": 1, "complete": False},
            {"id": 4, "name": "ds-d", "investigation": 3, "type": 1, "complete": False},
        ])
        _rows(c, "Datafile", [
            {"id": 1, "name": "a1.nxs", "dataset": 1, "fileSize": 100},
            {"id": 2, "name": "a2.nxs", "dataset": 1, "fileSize": 200},
            {"id": 3, "name": "a3.dat", "dataset": 1, "fileSize": 300},
            {"id": 4, "name": "b1.nxs", "dataset": 2, "fileSize": 1500},
            {"id": 5, "name": "c1.nxs", "dataset": 3, "fileSize": 50},
            {"id": 6, "name": "c_2.txt", "dataset": 3},
        ])
        _rows(c, "User", [{"id": 1, "name": "db/alice", "fullName": "Alice"},
                          {"id": 2, "name": "db/bob"},
                          {"id": 3, "name": "simple/root", "fullName": "Root"}])
        _rows(c, "InvestigationUser", [
            {"id": 1, "investigation": 1, "user": 1, "role": "PI"},
            {"id": 2, "investigation": 1, "user": 2, "role": "CI"},
            {"id": 3, "investigation": 2, "user": 1, "role": "CI"},
            {"id": 4, "investigation": 3, "user": 3, "role": "PI"},
        ])
        _rows(c, "ParameterType", [
            {"id": 1, "name": "temp", "units": "K", "valueType": "NUMERIC", "facility": 1},
            {"id": 2, "name": "state", "units": "", "valueType": "STRING", "facility": 1},
            {"id": 3, "name": "when", "units": "", "valueType": "DATE_AND_TIME", "facility": 1},
        ])
        _rows(c, "DatasetParameter", [
            {"id": 1, "dataset": 1, "type": 1, "numericValue": 10.5},
            {"id": 2, "dataset": 2, "type": 1, "numericValue": 25.0},
            {"id": 3, "dataset": 3, "type": 1, "numericValue": 15.0},
            {"id": 4, "dataset": 1, "type": 2, "stringValue": "solid"},
            {"id": 5, "dataset": 3, "type": 3, "dateTimeValue": datetime(2021, 5, 5)},
        ])
        _rows(c, "Study", [{"id": 1, "name": "s1", "status": "COMPLETE", "user": 1},
                           {"id": 2, "name": "s2", "status": "NEW"}])
        _rows(c, "Instrument", [{"id": 1, "name": "LARMOR", "fullName": "Larmor", "facility": 1},
                                {"id": 2, "name": "WISH", "facility": 1}])
        _rows(c, "FacilityCycle", [
            {"id": 1, "name": "2019/1", "facility": 1, "startDate": datetime(2019, 1, 1),
             "endDate": datetime(2019, 6, 30)},
            {"id": 2, "name": "2019/2", "facility": 1, "startDate": datetime(2019, 7, 1),
             "endDate": datetime(2019, 12, 31)},
            {"id": 3, "name": "2020/1", "facility": 1, "startDate": datetime(2020, 1, 1),
             "endDate": datetime(2020, 6, 30)}])
        _rows(c, "InstrumentScientist", [{"id": 1, "instrument": 1, "user": 2}])
        _rows(c, "InvestigationInstrument", [{"id": 1, "investigation": 1, "instrument": 1},
                                             {"id": 2, "investigation": 2, "instrument": 2},
                                             {"id": 3, "investigation": 2, "instrument": 1}])


@dataclass
class Cat:
    db: Database
    queries: Queries

    def work(self, conn: Any, user: str = "simple/root") -> Work:
        return Work(conn=conn, db=self.db, user=user, now=datetime(2030, 1, 1), max_ids=2,
                    root=True)

    def compiled(self, text: str) -> CompiledQuery:
        return self.queries.search(text)

    def run(self, text: str, max_entities: int = 100, user: str = "simple/root",
            restrict: Any = None) -> list[Any]:
        q = self.compiled(text)
        with self.db.connect() as conn:
            w = self.work(conn, user)
            out = run(w, q, max_entities, restrict)
            if q.entity is not None and q.include:
                fill(w, q.entity, [o for o in out if o is not None], q.include, max_entities)
            return out

    def ids(self, text: str, **kw: Any) -> list[int | None]:
        return [None if o is None else o.id for o in self.run(text, **kw)]

    def sql(self, text: str) -> str:
        return str(self.compiled(text).statement().compile(self.db.engine))


@pytest.fixture(scope="module", params=BACKENDS)
def cat(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Cat]:
    backend = str(request.param)
    if backend == "sqlite":
        url, drop = "sqlite://", None
    else:
        url, drop = make_database(backend, tmp_path_factory.mktemp(backend))
    db = Database(url)
    populate(db)
    try:
        yield Cat(db, queries_for(db))
    finally:
        db.dispose()
        if drop is not None:
            drop()  # type: ignore[operator]


def bad(cat: Cat, text: str, kind: ErrorType = ErrorType.BAD_PARAMETER) -> IcatError:
    with pytest.raises(IcatError) as e:
        cat.run(text)
    assert e.value.type == kind, e.value
    return e.value


# -- result shapes ----------------------------------------------------------------------------


def test_entities_come_back_as_objects_in_id_order(cat: Cat) -> None:
    out = cat.run("SELECT ds FROM Dataset ds")
    assert [o.id for o in out] == [1, 2, 3, 4]
    first = out[0]
    assert isinstance(first, Obj) and first.entity.name == "Dataset"
    assert first.values["name"] == "ds-a" and first.values["complete"] is True
    assert first.refs["investigation"] == 1
    # as stored: naive, in the catalogue's zone (renderers add the zone)
    assert first.values["createTime"] == datetime(2024, 1, 1, 12)


def test_concise_syntax_runs_through_the_same_compiler(cat: Cat) -> None:
    assert cat.ids("Dataset") == [1, 2, 3, 4]
    assert cat.run("Dataset.name [investigation.name = 'alpha']") == ["ds-a", "ds-b"]
    assert cat.run("COUNT(Datafile)") == [6]


def test_scalars_and_rows(cat: Cat) -> None:
    assert cat.run("SELECT ds.name FROM Dataset ds") == ["ds-a", "ds-b", "ds-c", "ds-d"]
    rows = cat.run("SELECT ds.id, ds.name, ds.complete FROM Dataset ds WHERE ds.id < 3")
    assert rows == [[1, "ds-a", True], [2, "ds-b", False]]


def test_entities_inside_rows(cat: Cat) -> None:
    rows = cat.run("SELECT ds.name, ds.investigation FROM Dataset ds WHERE ds.id = 3")
    assert len(rows) == 1
    name, inv = rows[0]
    assert name == "ds-c" and isinstance(inv, Obj) and inv.entity.name == "Investigation"
    assert inv.id == 2 and inv.values["title"] == "X-ray study"


def test_scalar_types(cat: Cat) -> None:
    (count,) = cat.run("SELECT COUNT(df) FROM Datafile df")
    assert count == 6 and type(count) is int
    (avg,) = cat.run("SELECT AVG(df.fileSize) FROM Datafile df WHERE df.dataset.id = 1")
    assert avg == 200.0 and type(avg) is float
    (total,) = cat.run("SELECT SUM(df.fileSize) FROM Datafile df")
    assert total == 2150 and type(total) is int
    (latest,) = cat.run("SELECT MAX(i.startDate) FROM Investigation i")
    assert latest == datetime(2020, 1, 10, tzinfo=ZoneInfo("UTC"))
    assert cat.run("SELECT pt.valueType FROM ParameterType pt") == [
        "NUMERIC", "STRING", "DATE_AND_TIME"]
    assert cat.run("SELECT s.status FROM Study s") == ["COMPLETE", "NEW"]
    (n,) = cat.run("SELECT MIN(p.numericValue) FROM DatasetParameter p")
    assert n == 10.5 and type(n) is float


def test_null_items_and_aggregate_of_nothing(cat: Cat) -> None:
    assert cat.run("SELECT null, MAX(i.id) FROM Investigation i") == [[None, 4]]
    assert cat.run("SELECT MAX(i.id) FROM Investigation i WHERE i.id > 99") == [None]
    assert cat.run("SELECT COUNT(i) FROM Investigation i WHERE i.id > 99") == [0]
    assert cat.run("SELECT i.fileSize FROM Investigation i") == [1000, 5000, None, None]


# -- paths and joins --------------------------------------------------------------------------


def test_implicit_join_in_where_is_inner_and_shared(cat: Cat) -> None:
    text = ("SELECT ds FROM Dataset ds WHERE ds.investigation.name = 'alpha' "
            "OR ds.investigation.title = 'X-ray study'")
    assert cat.ids(text) == [1, 2, 3]
    assert cat.sql(text).count("JOIN INVESTIGATION") == 1


def test_paths_in_select(cat: Cat) -> None:
    assert cat.run("SELECT ds.investigation.facility.name FROM Dataset ds") == [
        "F1", "F1", "F1", "F2"]
    assert cat.ids("SELECT ds.investigation FROM Dataset ds") == [1, 1, 2, 3]
    assert cat.ids("SELECT DISTINCT ds.investigation FROM Dataset ds") == [1, 2, 3]


def test_select_of_a_one_to_many_path_returns_the_related_entities(cat: Cat) -> None:
    assert cat.ids("SELECT f.investigations FROM Facility f") == [1, 2, 3, 4]
    assert cat.ids("SELECT f.investigations FROM Facility f WHERE f.name = 'F2'") == [3]
    assert cat.run("SELECT ds.datafiles.name FROM Dataset ds WHERE ds.id = 3") == [
        "c1.nxs", "c_2.txt"]


def test_explicit_joins(cat: Cat) -> None:
    text = ("SELECT u FROM User u JOIN u.investigationUsers iu JOIN iu.investigation i "
            "WHERE i.name = 'alpha'")
    assert cat.ids(text) == [1, 2]
    assert cat.ids("SELECT i FROM Investigation i, i.investigationUsers iu, iu.user u "
                   "WHERE u.name = 'db/alice'") == [1, 2]
    assert cat.ids("SELECT i FROM Investigation i, IN(i.datasets) ds WHERE ds.complete = TRUE"
                   ) == [1]


def test_left_join_keeps_rows_and_sorts_nulls_first(cat: Cat) -> None:
    text = ("SELECT i.name, ins.name FROM Investigation i LEFT JOIN i.investigationInstruments ii "
            "LEFT JOIN ii.instrument ins ORDER BY ins.name, i.id")
    assert cat.run(text) == [["gamma", None], ["delta", None], ["alpha", "LARMOR"],
                             ["beta", "LARMOR"], ["beta", "WISH"]]
    desc = cat.run(text.replace("ORDER BY ins.name", "ORDER BY ins.name DESC"))
    assert desc[-2:] == [["gamma", None], ["delta", None]]
    assert cat.ids("SELECT ii FROM Investigation i LEFT JOIN i.investigationInstruments ii "
                   "WHERE i.id IN (3, 1)") == [None, 1]


def test_cross_join_of_two_ranges(cat: Cat) -> None:
    text = ("SELECT i.name, f.name FROM Investigation i, Facility f "
            "WHERE i.facility = f AND f.name = 'F2'")
    assert cat.run(text) == [["gamma", "F2"]]


def test_entity_comparisons_use_ids(cat: Cat) -> None:
    assert cat.ids("SELECT ds FROM Dataset ds WHERE ds.investigation = 2") == [3]
    assert cat.ids("SELECT ds FROM Dataset ds WHERE ds.investigation = '1'") == [1, 2]
    assert cat.ids("SELECT ds FROM Dataset ds, Investigation i "
                   "WHERE ds.investigation = i AND i.name = 'gamma'") == [4]
    assert cat.ids("SELECT ds FROM Dataset ds WHERE ds.investigation IN (2, 3)") == [3, 4]
    assert cat.ids("SELECT s FROM Study s WHERE s.user IS NULL") == [2]
    assert cat.ids("SELECT s FROM Study s WHERE s.user IS NOT NULL") == [1]


# -- collections and sub-selects --------------------------------------------------------------


def test_is_empty_member_of_and_size(cat: Cat) -> None:
    assert cat.ids("SELECT i FROM Investigation i WHERE i.datasets IS EMPTY") == [4]
    assert cat.ids("SELECT ds FROM Dataset ds WHERE ds.datafiles IS NOT EMPTY") == [1, 2, 3]
    assert cat.ids("SELECT ds FROM Dataset ds WHERE SIZE(ds.datafiles) = 2") == [3]
    assert cat.run("SELECT SIZE(ds.datafiles) FROM Dataset ds") == [3, 1, 2, 0]
    assert cat.ids("SELECT u FROM User u, InvestigationUser iu "
                   "WHERE iu.id = 3 AND iu MEMBER OF u.investigationUsers") == [1]
    assert cat.ids("SELECT u FROM User u, InvestigationUser iu "
                   "WHERE iu.id = 3 AND iu NOT MEMBER OF u.investigationUsers") == [2, 3]


def test_correlated_sub_selects(cat: Cat) -> None:
    assert cat.ids("SELECT ds FROM Dataset ds WHERE (SELECT COUNT(df) FROM ds.datafiles df) = 2"
                   ) == [3]
    assert cat.ids("SELECT ds FROM Dataset ds WHERE (SELECT COUNT(df) FROM Datafile df "
                   "WHERE df.dataset = ds) > '1'") == [1, 3]
    assert cat.ids("SELECT i FROM Investigation i WHERE EXISTS "
                   "(SELECT ds FROM Dataset ds WHERE ds.investigation = i AND ds.complete = TRUE)"
                   ) == [1]
    assert cat.ids("SELECT i FROM Investigation i WHERE NOT EXISTS "
                   "(SELECT df FROM Datafile df WHERE df.dataset.investigation = i)") == [3, 4]
    assert cat.ids("SELECT i FROM Investigation i WHERE i.id IN "
                   "(SELECT ds.investigation.id FROM Dataset ds WHERE ds.type.name = 'processed')"
                   ) == [1]
    assert cat.ids("SELECT i FROM Investigation i WHERE i NOT IN "
                   "(SELECT ds.investigation FROM Dataset ds)") == [4]


def test_sub_select_navigating_from_an_outer_variable(cat: Cat) -> None:
    text = ("SELECT ds FROM Dataset ds WHERE EXISTS (SELECT df FROM Datafile df "
            "WHERE df.fileSize > 1000 AND df.dataset.investigation.name = ds.investigation.name)")
    assert cat.ids(text) == [1, 2]


# -- literal coercion -------------------------------------------------------------------------


def test_quoted_numbers_compare_numerically(cat: Cat) -> None:
    assert cat.ids("SELECT o FROM Dataset o WHERE o.id = '3'") == [3]
    assert cat.ids("SELECT o FROM Investigation o WHERE o.fileSize > '1000'") == [2]
    assert cat.ids("SELECT o FROM Datafile o WHERE o.fileSize > '99.5'") == [1, 2, 3, 4]
    assert cat.ids("SELECT p FROM DatasetParameter p "
                   "WHERE p.numericValue BETWEEN '0' AND '20'") == [1, 3]
    assert cat.ids("SELECT p FROM DatasetParameter p WHERE p.numericValue = '25'") == [2]
    assert cat.ids("SELECT o FROM Dataset o WHERE o.id IN ('1', '4')") == [1, 4]
    assert cat.ids("SELECT o FROM Dataset o WHERE o.id NOT IN ('1', '4')") == [2, 3]


def test_quoted_dates_in_every_client_form(cat: Cat) -> None:
    base = "SELECT o FROM Investigation o WHERE o.startDate "
    assert cat.ids(base + ">= '2019-07-01 00:00:00'") == [2, 3]
    assert cat.ids(base + ">= '2019-07-01'") == [2, 3]
    assert cat.ids(base + "> '2019 07 15 08:30:57 00:00'") == [2, 3]
    assert cat.ids(base + "> '2019 07 15 08:30:58 00:00'") == [3]
    assert cat.ids(base + "= '2019-07-15T08:30:58.000Z'") == [2]
    assert cat.ids(base + "= '2019-07-15T10:30:58+02:00'") == [2]
    assert cat.ids(base + "BETWEEN '2019-01-01 00:00:00' AND '2019-12-31 23:59:59'") == [1, 2]
    assert cat.ids(base + "> {ts 2019-12-31 00:00:00}") == [3]


def test_date_literal_converted_to_the_stored_zone() -> None:
    db = Database("sqlite://", zone=ZoneInfo("Europe/Berlin"))
    q = Compiler(db.tables, db.dialect, db.zone).compile(parse_query(
        "SELECT o FROM Investigation o WHERE o.startDate = '2019-07-15T08:30:58Z'"))
    params = q.statement().compile().params
    assert datetime(2019, 7, 15, 10, 30, 58) in params.values()


def test_lenient_date_parsing() -> None:
    assert parse_datetime("2007 06 30 08:30:58 00:00") == datetime(2007, 6, 30, 8, 30, 58,
                                                                   tzinfo=UTC)
    assert parse_datetime("2007-06-30T08:30:58.123-05:00") == datetime(
        2007, 6, 30, 8, 30, 58, 123000, tzinfo=timezone(-timedelta(hours=5)))
    assert parse_datetime("2019-01-01") == datetime(2019, 1, 1)
    assert parse_datetime("2019/1/2 3:04") == datetime(2019, 1, 2, 3, 4)
    assert parse_datetime("yesterday") is None
    assert parse_datetime("2019-02-30") is None


def test_unparsable_literals_are_bad_parameters(cat: Cat) -> None:
    e = bad(cat, "SELECT o FROM Dataset o WHERE o.id = 'abc'")
    assert "'abc'" in e.message and "position 37" in e.message and e.offset == 37
    e = bad(cat, "SELECT o FROM Investigation o WHERE o.startDate > 'soon'")
    assert "'soon'" in e.message
    bad(cat, "SELECT o FROM Investigation o WHERE o.startDate > 2019")
    bad(cat, "SELECT p FROM DatasetParameter p WHERE p.numericValue BETWEEN 'low' AND '20'")


def test_in_null_matches_nothing(cat: Cat) -> None:
    assert cat.ids("SELECT o FROM Datafile o WHERE o.fileSize IN (NULL)") == []
    assert cat.ids("SELECT o FROM Datafile o WHERE o.name IN ('a1.nxs', NULL)") == [1]


def test_enum_constants(cat: Cat) -> None:
    qualified = ("SELECT pt.name FROM ParameterType pt "
                 "WHERE pt.valueType = org.icatproject.ParameterValueType.DATE_AND_TIME")
    assert cat.run(qualified) == ["when"]
    assert cat.run("ParameterType.name [valueType = STRING]") == ["state"]
    assert cat.run("SELECT pt.name FROM ParameterType pt WHERE pt.valueType = 'NUMERIC'") == [
        "temp"]
    assert cat.run("SELECT s.name FROM Study s WHERE s.status IN "
                   "(org.icatproject.StudyStatus.NEW, org.icatproject.StudyStatus.CANCELLED)"
                   ) == ["s2"]
    bad(cat, "SELECT pt FROM ParameterType pt WHERE pt.valueType = 'FUZZY'")
    bad(cat, "SELECT pt FROM ParameterType pt "
             "WHERE pt.valueType = org.icatproject.StudyStatus.NEW")


def test_booleans(cat: Cat) -> None:
    assert cat.ids("SELECT ds FROM Dataset ds WHERE ds.complete = TRUE") == [1]
    assert cat.ids("SELECT ds FROM Dataset ds WHERE ds.complete = FALSE") == [2, 3, 4]
    assert cat.ids("Dataset [complete = TRUE]") == [1]
    assert cat.ids("SELECT ds FROM Dataset ds WHERE ds.complete = 'true'") == [1]


def test_like(cat: Cat) -> None:
    assert cat.run("SELECT o.name FROM Datafile o WHERE o.name LIKE '%.nxs'") == [
        "a1.nxs", "a2.nxs", "b1.nxs", "c1.nxs"]
    assert cat.run("SELECT o.name FROM Datafile o WHERE o.name NOT LIKE '%.nxs'") == [
        "a3.dat", "c_2.txt"]
    assert cat.run("SELECT o.name FROM Datafile o WHERE o.name LIKE 'c$_%' ESCAPE '$'") == [
        "c_2.txt"]
    assert cat.run("SELECT o.name FROM Datafile o WHERE o.name LIKE 'c\\_%'") == ["c_2.txt"]
    assert cat.run("SELECT o.title FROM Investigation o "
                   "WHERE UPPER(o.title) like UPPER('%neutron%')") == ["Neutron study"]


def test_user_parameter(cat: Cat) -> None:
    text = ("SELECT i.name FROM Investigation i, i.investigationUsers iu "
            "WHERE iu.user.name = :user")
    assert cat.run(text, user="db/alice") == ["alpha", "beta"]
    assert cat.run(text, user="simple/root") == ["gamma"]
    # One compiled statement serves every user: the name is bound at execution.
    assert "alice" not in cat.sql(text)
    bad(cat, "SELECT i FROM Investigation i WHERE i.name = :other")


def test_user_text_never_reaches_the_sql(cat: Cat) -> None:
    text = "SELECT o FROM Dataset o WHERE o.name = 'x''; DROP TABLE DATASET; --'"
    assert cat.run(text) == []
    assert "DROP" not in cat.sql(text)


# -- functions and arithmetic -----------------------------------------------------------------


def test_string_functions(cat: Cat) -> None:
    one = "FROM Investigation i WHERE i.id = 1"
    assert cat.run(f"SELECT CONCAT(i.name, '-', i.visitId) {one}") == ["alpha-1"]
    assert cat.run(f"SELECT SUBSTRING(i.title, 1, 7) {one}") == ["Neutron"]
    assert cat.run(f"SELECT SUBSTRING(i.title, 9) {one}") == ["study"]
    assert cat.run(f"SELECT LOWER(i.title), UPPER(i.name) {one}") == [["neutron study", "ALPHA"]]
    assert cat.run(f"SELECT LENGTH(i.title) {one}") == [13]
    assert cat.run(f"SELECT LOCATE('study', i.title) {one}") == [9]
    assert cat.run(f"SELECT LOCATE('t', i.title, 6) {one}") == [10]
    assert cat.run(f"SELECT LOCATE('zzz', i.title) {one}") == [0]
    four = "FROM Investigation i WHERE i.id = 4"
    assert cat.run(f"SELECT TRIM(i.title) {four}") == ["Empty one"]
    assert cat.run(f"SELECT TRIM(LEADING FROM i.title) {four}") == ["Empty one  "]
    assert cat.run(f"SELECT TRIM(TRAILING FROM i.title) {four}") == ["  Empty one"]
    assert cat.run(f"SELECT TRIM(BOTH 'a' FROM i.name) {one}") == ["lph"]
    assert cat.ids("SELECT i FROM Investigation i WHERE LENGTH(i.name) = 4") == [2]


def test_numeric_functions_and_arithmetic(cat: Cat) -> None:
    one = "FROM Datafile df WHERE df.id = 4"
    assert cat.run(f"SELECT ABS(0 - df.fileSize) {one}") == [1500]
    assert cat.run(f"SELECT SQRT(df.fileSize - 1275) {one}") == [15.0]
    assert cat.run(f"SELECT MOD(df.fileSize, 7) {one}") == [2]
    assert cat.run(f"SELECT df.fileSize * 2 + 1 {one}") == [3001]
    assert cat.run(f"SELECT df.fileSize / 1000 {one}") == [1.5]
    assert cat.run(f"SELECT -df.fileSize {one}") == [-1500]
    assert cat.ids("SELECT df FROM Datafile df WHERE df.fileSize * 2 > 500") == [3, 4]


def test_current_timestamp_is_the_units_clock(cat: Cat) -> None:
    assert cat.ids("SELECT i FROM Investigation i WHERE i.startDate < CURRENT_TIMESTAMP"
                   ) == [1, 2, 3]
    (now,) = cat.run("SELECT CURRENT_TIMESTAMP FROM Facility f WHERE f.id = 1")
    assert now == datetime(2030, 1, 1, tzinfo=UTC)


# -- aggregates, grouping, ordering -----------------------------------------------------------


def test_group_by_entity_path_having_and_order(cat: Cat) -> None:
    text = ("SELECT df.dataset.name, AVG(df.fileSize) FROM Datafile df GROUP BY df.dataset "
            "HAVING AVG(df.fileSize) > 4 ORDER BY AVG(df.fileSize)")
    assert cat.run(text) == [["ds-c", 50.0], ["ds-a", 200.0], ["ds-b", 1500.0]]
    assert cat.run("SELECT ds.investigation.name, COUNT(ds) FROM Dataset ds "
                   "GROUP BY ds.investigation.name") == [["alpha", 2], ["beta", 1], ["gamma", 1]]
    assert cat.run("SELECT df.dataset, COUNT(df) FROM Datafile df GROUP BY df.dataset "
                   "ORDER BY COUNT(df) DESC")[0][1] == 3


def test_count_distinct(cat: Cat) -> None:
    assert cat.run("SELECT COUNT(DISTINCT i.facility) FROM Investigation i") == [2]
    assert cat.run("SELECT COUNT(DISTINCT(o)) FROM Investigation o JOIN o.datasets ds") == [3]
    assert cat.run("SELECT COUNT(o) FROM Investigation o JOIN o.datasets ds") == [4]
    assert cat.run("SELECT COUNT(o) FROM Investigation o JOIN o.investigationUsers AS iu "
                   "JOIN iu.user AS s1 WHERE s1.name = 'db/alice'") == [2]


def test_order_by(cat: Cat) -> None:
    assert cat.run("SELECT i.name FROM Investigation i ORDER BY i.name") == [
        "alpha", "beta", "delta", "gamma"]
    assert cat.run("SELECT i.name FROM Investigation i ORDER BY i.startDate DESC, i.id ASC") == [
        "gamma", "beta", "alpha", "delta"]
    # By an entity path = by its id; ties broken by the selected entity's id.
    assert cat.ids("SELECT ds FROM Dataset ds ORDER BY ds.investigation DESC") == [4, 3, 1, 2]
    assert cat.ids("SELECT ds FROM Dataset ds ORDER BY ds.type.name, ds.name DESC") == [
        2, 4, 3, 1]


def test_distinct(cat: Cat) -> None:
    assert cat.run("SELECT DISTINCT(iu.role) FROM InvestigationUser iu") == ["PI", "CI"]
    assert cat.run("SELECT DISTINCT ds.investigation.name, ds.type.name FROM Dataset ds "
                   "ORDER BY ds.type.name DESC") == [
        ["alpha", "raw"], ["beta", "raw"], ["gamma", "raw"], ["alpha", "processed"]]
    # DISTINCT entities ordered by a column that is not selected (PostgreSQL can't directly).
    assert cat.run("SELECT DISTINCT CONCAT(i.visitId, '-') FROM Investigation i "
                   "ORDER BY CONCAT(i.visitId, '-') DESC") == ["2-", "1-"]
    text = ("SELECT DISTINCT(o) FROM Investigation o JOIN o.investigationInstruments ii "
            "JOIN ii.instrument ins ORDER BY ins.name DESC")
    assert cat.ids(text) == [2, 1]
    assert cat.ids("SELECT DISTINCT i FROM Investigation i JOIN i.datasets ds") == [1, 2, 3]


# -- LIMIT and maxEntities --------------------------------------------------------------------


def test_limit(cat: Cat) -> None:
    base = "SELECT df.id FROM Datafile df ORDER BY df.id "
    assert cat.run(base + "LIMIT 0, 2") == [1, 2]
    assert cat.run(base + "LIMIT 4, 10") == [5, 6]
    assert cat.run(base + "LIMIT 3, *") == [4, 5, 6]
    assert cat.run(base + "LIMIT 1, 0") == []
    assert cat.run("SELECT COUNT(df) FROM Datafile df LIMIT 0, 1") == [6]


def test_max_entities(cat: Cat) -> None:
    assert len(cat.run("SELECT df FROM Datafile df", max_entities=6)) == 6
    with pytest.raises(IcatError) as e:
        cat.run("SELECT df FROM Datafile df", max_entities=5)
    assert e.value.type == ErrorType.VALIDATION
    assert e.value.message == "attempt to process more than 5 entities"
    # A LIMIT within the maximum is fine; beyond it the maximum still applies.
    assert len(cat.run("SELECT df FROM Datafile df LIMIT 0, 5", max_entities=5)) == 5
    with pytest.raises(IcatError):
        cat.run("SELECT df FROM Datafile df LIMIT 0, 50", max_entities=5)
    assert cat.run("SELECT COUNT(df) FROM Datafile df", max_entities=1) == [6]


# -- INCLUDE ----------------------------------------------------------------------------------


def test_include_one(cat: Cat) -> None:
    (ds,) = cat.run("SELECT ds FROM Dataset ds WHERE ds.id = 1 INCLUDE 1")
    assert ds.ones["investigation"].values["name"] == "alpha"
    assert ds.ones["type"].values["name"] == "raw"
    assert ds.ones["sample"] is None
    assert ds.ones["investigation"].ones == {}  # one level only
    assert ds.manys == {}


def test_include_paths_and_aliases(cat: Cat) -> None:
    (inv,) = cat.run("SELECT i FROM Investigation i WHERE i.id = 1 "
                     "INCLUDE i.datasets.datafiles, i.investigationUsers AS iu, iu.user")
    assert [d.values["name"] for d in inv.manys["datasets"]] == ["ds-a", "ds-b"]
    assert [f.id for f in inv.manys["datasets"][0].manys["datafiles"]] == [1, 2, 3]
    assert [iu.ones["user"].values["name"] for iu in inv.manys["investigationUsers"]] == [
        "db/alice", "db/bob"]
    # The same type may be visited twice.
    (ds,) = cat.run("SELECT ds FROM Dataset ds WHERE ds.id = 3 INCLUDE ds.type t, t.datasets")
    assert [d.id for d in ds.ones["type"].manys["datasets"]] == [1, 3, 4]


def test_include_applies_to_every_result_in_batches(cat: Cat) -> None:
    # max_ids is 2 in these units of work, so this takes several batches per step.
    out = cat.run("SELECT ds FROM Dataset ds INCLUDE ds.datafiles, ds.investigation")
    assert [len(d.manys["datafiles"]) for d in out] == [3, 1, 2, 0]
    assert [d.ones["investigation"].id for d in out] == [1, 1, 2, 3]


def test_include_python_icat_style_with_limit(cat: Cat) -> None:
    text = ("SELECT o FROM Investigation o JOIN o.investigationUsers AS iu JOIN iu.user AS s1 "
            "WHERE s1.name = 'db/alice' ORDER BY o.name "
            "INCLUDE o.facility, o.investigationUsers AS iu, iu.user LIMIT 0, 10")
    out = cat.run(text)
    assert [o.values["name"] for o in out] == ["alpha", "beta"]
    assert out[0].ones["facility"].values["name"] == "F1"
    assert len(out[0].manys["investigationUsers"]) == 2


def test_include_errors(cat: Cat) -> None:
    e = bad(cat, "SELECT i FROM Investigation i "
                 "INCLUDE i.investigationInstruments, i.investigationInstruments.instrument")
    assert e.message == "INCLUDE clause contains redundant path to investigationInstruments"
    e = bad(cat, "SELECT i FROM Investigation i INCLUDE i.nonsense")
    assert e.message == "Problem with INCLUDE clause: nonsense is not a field of Investigation"
    e = bad(cat, "SELECT i FROM Investigation i INCLUDE i.name")
    assert e.message == "Problem with INCLUDE clause: name is not a field of Investigation"
    e = bad(cat, "SELECT i FROM Investigation i JOIN i.investigationInstruments ii "
                 "INCLUDE ii.instrument")
    assert e.message == "variable II mentioned in INCLUDE clause is not defined"
    e = bad(cat, "SELECT i FROM Investigation i INCLUDE 1, i.datasets")
    assert e.message == '"INCLUDE 1" must not be followed by other things to include.'
    e = bad(cat, "SELECT i.name, i.title FROM Investigation i INCLUDE 1")
    assert e.message == "INCLUDE is only valid for one quantity in the SELECT clause"


def test_include_is_ignored_for_scalars(cat: Cat) -> None:
    assert cat.run("SELECT ds.id FROM Dataset ds WHERE ds.id < 3 INCLUDE 1") == [1, 2]
    assert cat.run("SELECT COUNT(ds) FROM Dataset ds INCLUDE 1") == [4]


def test_include_counts_against_max_entities(cat: Cat) -> None:
    assert len(cat.run("SELECT ds FROM Dataset ds WHERE ds.id = 1 INCLUDE ds.datafiles",
                       max_entities=4)) == 1
    with pytest.raises(IcatError) as e:
        cat.run("SELECT ds FROM Dataset ds WHERE ds.id = 1 INCLUDE ds.datafiles", max_entities=3)
    assert e.value.type == ErrorType.VALIDATION
    assert e.value.message == "attempt to return more than 3 entities"


def test_get_queries_reuse_the_include_machinery(cat: Cat) -> None:
    q = cat.queries.get("Dataset ds INCLUDE ds.datafiles df, df.dataset")
    assert q.entity.name == "Dataset"
    assert set(q.include.steps) == {"datafiles"}
    assert set(q.include.steps["datafiles"].steps) == {"dataset"}
    one = cat.queries.get("Investigation INCLUDE 1")
    assert set(one.include.steps) == {"facility", "type"}
    old = cat.queries.get("Facility INCLUDE InvestigationType")
    assert set(old.include.steps) == {"investigationTypes"}
    assert not cat.queries.get("Dataset").include


# -- semantic errors --------------------------------------------------------------------------


def test_semantic_errors_point_at_the_token(cat: Cat) -> None:
    e = bad(cat, "SELECT ds.nonsense FROM Dataset ds")
    assert e.message == "Dataset has no field nonsense at position 7" and e.offset == 7
    e = bad(cat, "SELECT ds FROM Dataset ds WHERE ds.investigation.bogus = 1")
    assert e.message.startswith("Investigation has no field bogus") and e.offset == 32
    e = bad(cat, "SELECT ds FROM Dataset ds JOIN ds.name n")
    assert e.message.startswith("Dataset has no relationship field name")
    e = bad(cat, "SELECT ds FROM Dataset ds WHERE ds.datafiles = 1")
    assert "collection" in e.message
    e = bad(cat, "SELECT ds FROM Dataset ds WHERE ds.name.x = 1")
    assert "is not a relationship" in e.message


def test_negative_limit_is_not_a_bad_parameter(cat: Cat) -> None:
    bad(cat, "SELECT ds FROM Dataset ds LIMIT -1, 10000", ErrorType.VALIDATION)


# -- authorization hook and caching -----------------------------------------------------------


def test_id_paths_name_the_exposed_entities(cat: Cat) -> None:
    def exposed(text: str) -> list[str]:
        return [ip.entity for ip in cat.compiled(text).id_paths]

    assert exposed("SELECT ds FROM Dataset ds") == ["Dataset"]
    assert exposed("SELECT ds.name FROM Dataset ds") == ["Dataset"]
    assert exposed("SELECT ds.investigation.name FROM Dataset ds") == ["Investigation"]
    assert exposed("SELECT ds.investigation FROM Dataset ds") == ["Investigation"]
    assert exposed("SELECT f.investigations FROM Facility f") == ["Investigation"]
    assert exposed("SELECT COUNT(ds) FROM Dataset ds") == ["Dataset"]
    assert exposed("SELECT ds.name, df.name FROM Dataset ds JOIN ds.datafiles df") == [
        "Dataset", "Datafile"]
    assert cat.compiled("SELECT COUNT(ds) FROM Dataset ds").is_count
    assert not cat.compiled("SELECT COUNT(ds), MAX(ds.name) FROM Dataset ds").is_count


def test_restrictions_are_pushed_into_the_statement(cat: Cat) -> None:
    def only_odd(ip: IdPath) -> Any:
        if ip.entity == "Dataset":
            return literal_column("1") == ip.column % 2
        return None

    assert cat.ids("SELECT ds FROM Dataset ds", restrict=only_odd) == [1, 3]
    assert cat.run("SELECT COUNT(ds) FROM Dataset ds", restrict=only_odd) == [2]
    assert cat.ids("SELECT ds FROM Dataset ds LIMIT 1, 1", restrict=only_odd) == [3]
    assert cat.run("SELECT COUNT(i) FROM Investigation i",
                   restrict=lambda ip: false()) == [0]
    # The unrestricted statement is unchanged and still cached.
    assert cat.ids("SELECT ds FROM Dataset ds") == [1, 2, 3, 4]


def test_compiled_queries_are_cached_by_text(cat: Cat) -> None:
    text = "SELECT ds FROM Dataset ds WHERE ds.name = 'ds-a'"
    assert cat.queries.search(text) is cat.queries.search(text)
    assert cat.queries.get("Dataset INCLUDE 1") is cat.queries.get("Dataset INCLUDE 1")
    with pytest.raises(IcatError):
        cat.queries.search("SELECT x FROM Nowhere x")


# -- queries real clients send (datagateway-api, python-icat) ---------------------------------


def test_datagateway_queries(cat: Cat) -> None:
    # Legacy ISIS cycles of an instrument: the date-window join shape.
    text = ("SELECT DISTINCT(o) FROM FacilityCycle o JOIN o.facility AS f JOIN f.instruments AS s1 "
            "JOIN f.investigations AS s2 JOIN s2.investigationInstruments AS s3 "
            "JOIN s3.instrument AS s4 WHERE s1.id = '1' AND s4.id = '1' "
            "AND s2.startDate >= o.startDate AND s2.startDate <= o.endDate "
            "ORDER BY o.startDate DESC LIMIT 0, 50")
    assert cat.ids(text) == [2, 1]
    count = text.replace("SELECT DISTINCT(o)", "SELECT COUNT(DISTINCT(o))").split(" ORDER BY")[0]
    assert cat.run(count) == [2]
    # The reader shortcut: path navigation in SELECT and in a JOIN target, no spaces around =.
    assert cat.run("SELECT d.investigation.id FROM Dataset d WHERE d.id=3") == [2]
    assert cat.run("SELECT iu.user.name FROM InvestigationUser iu WHERE iu.investigation.id=1"
                   ) == ["db/alice", "db/bob"]
    assert cat.run("SELECT s.user.name FROM InstrumentScientist s "
                   "LEFT JOIN s.instrument.investigationInstruments ii "
                   "WHERE ii.investigation.id=2") == ["db/bob"]
    assert cat.run("SELECT DISTINCT o.id, o.name, o.startDate, o.endDate FROM FacilityCycle o "
                   "ORDER BY o.startDate DESC, o.id ASC LIMIT 0, 2") == [
        [3, "2020/1", datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 6, 30, tzinfo=UTC)],
        [2, "2019/2", datetime(2019, 7, 1, tzinfo=UTC), datetime(2019, 12, 31, tzinfo=UTC)]]
    # Sorting on a MANY path with LEFT JOINs, as the portal does.
    assert cat.ids("SELECT o FROM Investigation o LEFT JOIN o.investigationInstruments AS ii "
                   "LEFT JOIN ii.instrument AS s1 ORDER BY s1.fullName ASC, o.id ASC "
                   "LIMIT 0, 50") == [2, 3, 4, 1, 2]


def test_rows_multiplied_by_a_collection_path_keep_a_stable_order(cat: Cat) -> None:
    assert cat.run("SELECT ds.name, ds.datafiles.name FROM Dataset ds WHERE ds.id < 3") == [
        ["ds-a", "a1.nxs"], ["ds-a", "a2.nxs"], ["ds-a", "a3.dat"], ["ds-b", "b1.nxs"]]


def test_nested_correlation_and_aggregate_order(cat: Cat) -> None:
    text = ("SELECT i FROM Investigation i WHERE EXISTS (SELECT ds FROM Dataset ds "
            "WHERE ds.investigation = i AND EXISTS (SELECT df FROM Datafile df "
            "WHERE df.dataset = ds AND df.fileSize > 1000 AND df.dataset.investigation = i))")
    assert cat.ids(text) == [1]
    # One row: an ORDER BY of an aggregate query has nothing to do (and PostgreSQL would object).
    assert cat.run("SELECT COUNT(o) FROM Investigation o ORDER BY o.name") == [4]


def test_like_on_numbers_compares_their_text(cat: Cat) -> None:
    assert cat.ids("SELECT df FROM Datafile df WHERE df.fileSize LIKE '1%'") == [1, 4]
