# ruff: noqa: E501  (tables of real queries read better unwrapped)
"""Parser tests: every example of the reference (§1.2, §1.5, §1.6), the 88 datagateway-api
queries, expected trees, canonical re-serialisations and exact error messages and offsets."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from cairn.errors import ErrorType, IcatError
from cairn.query import parse_get, parse_query, to_text
from cairn.query.ast import (
    And,
    Arith,
    Compare,
    EnumConst,
    Exists,
    FromEntity,
    FromJoin,
    Func,
    Get,
    Include,
    IncludeItem,
    InList,
    Like,
    Limit,
    Literal,
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
from cairn.query.tokens import tokenize
from cairn.query.unparse import without_positions
from tests.reference import reference_file


def same(a: object, b: object) -> bool:
    return without_positions(a) == without_positions(b)


# -- lexer ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "values"), [
    # icat.server's TestTokenizer cases (values where it prints them normalised)
    ("<-> investigation investigator facility_user_id = '$user' 1 -12  15 EscapE",
     ["<", "-", ">", "investigation", "investigator", "facility_user_id", "=", "$user", 1, -12,
      15, "ESCAPE"]),
    ("AND and oR nOT() != <> > < 17 15. 17.0E-1",
     ["AND", "AND", "OR", "NOT", "(", ")", "!=", "<>", ">", "<", 17, 15.0, 1.7]),
    ("{ts 1950-01-21 02:00:00} {  ts   1950-01-21   02:00:00      }",
     [datetime(1950, 1, 21, 2), datetime(1950, 1, 21, 2)]),
    ("c='aaa', d='bbb''qqq', e = ' ', f = '', g = ''''''",
     ["c", "=", "aaa", ",", "d", "=", "bbb'qqq", ",", "e", "=", " ", ",", "f", "=", "", ",", "g",
      "=", "''"]),
    ("ds.investigation.facility.name :user x-1 x - 1 like", ["ds.investigation.facility.name",
     "user", "x", -1, "x", "-", 1, "LIKE"]),
    ("a\tb\nc\r\nd", ["a", "b", "c", "d"]),
])
def test_tokens(text: str, values: list[object]) -> None:
    assert [t.value for t in tokenize(text)[:-1]] == values


def test_token_kinds_and_positions() -> None:
    toks = tokenize("SELECT ds.name FROM Dataset ds WHERE ds.id >= -3.5 LIMIT 0, *")
    assert [t.kind for t in toks] == [
        "SELECT", "NAME", "FROM", "NAME", "NAME", "WHERE", "NAME", "COMPOP", "REAL", "LIMIT",
        "INTEGER", "COMMA", "MULT", "EOF"]
    assert [t.pos for t in toks][:4] == [0, 7, 15, 20]
    assert toks[-1].pos == len("SELECT ds.name FROM Dataset ds WHERE ds.id >= -3.5 LIMIT 0, *")


def test_concise_tokens() -> None:
    toks = tokenize("<-> investigation <-> investigator [facility_user_id = '$user'] TRUE -1",
                    concise=True)
    assert [t.kind for t in toks] == ["ENTSEP", "NAME", "ENTSEP", "NAME", "BRA", "NAME",
                                      "COMPOP", "STRING", "KET", "NAME", "INTEGER", "EOF"]


@pytest.mark.parametrize("text", ["!", "! ", "'abcds''qwe ", "{ts 1950-01-21T02:00:00}", "#",
                                  "a [b]", "x ; y", "1e", ":"])
def test_bad_tokens(text: str) -> None:
    with pytest.raises(IcatError) as e:
        tokenize(text)
    assert e.value.type == ErrorType.BAD_PARAMETER


# -- canonical re-serialisations ----------------------------------------------------------------

#: JPQL style: the reference's §1.2 examples, python-icat's and datagateway-api's shapes,
#: icat.server's integration tests, and every construct of the grammar.
JPQL = [
    ("SELECT ds FROM Dataset ds INCLUDE ds.datafiles.parameters, ds.parameters",
     "SELECT ds FROM Dataset ds INCLUDE ds.datafiles.parameters, ds.parameters"),
    ("SELECT ds.name FROM Dataset ds WHERE ds.type.name = 'GS' ORDER BY ds.name LIMIT 0, 10",
     "SELECT ds.name FROM Dataset ds WHERE ds.type.name = 'GS' ORDER BY ds.name LIMIT 0, 10"),
    ("SELECT ds.id FROM Dataset ds, ds.parameters dp1, ds.parameters dp2 WHERE dp1.type.name = 'A1' AND dp1.numericValue > 50 AND dp2.type.name = 'A2' AND dp2.numericValue > 20",
     "SELECT ds.id FROM Dataset ds JOIN ds.parameters dp1 JOIN ds.parameters dp2 WHERE dp1.type.name = 'A1' AND dp1.numericValue > 50 AND dp2.type.name = 'A2' AND dp2.numericValue > 20"),
    ("SELECT i FROM Investigation i, i.investigationUsers ius WHERE ius.user.name = :user",
     "SELECT i FROM Investigation i JOIN i.investigationUsers ius WHERE ius.user.name = :user"),
    ("SELECT i FROM Investigation i WHERE i.createTime > {ts 2011-01-15 00:00:00}",
     "SELECT i FROM Investigation i WHERE i.createTime > {ts 2011-01-15 00:00:00}"),
    ("SELECT pt FROM ParameterType pt WHERE pt.valueType = org.icatproject.ParameterValueType.DATE_AND_TIME",
     "SELECT pt FROM ParameterType pt WHERE pt.valueType = org.icatproject.ParameterValueType.DATE_AND_TIME"),
    ("SELECT u FROM User u JOIN u.userGroups ug JOIN ug.grouping g WHERE g.name = 'FacilityAdmins'",
     "SELECT u FROM User u JOIN u.userGroups ug JOIN ug.grouping g WHERE g.name = 'FacilityAdmins'"),
    ("SELECT df.dataset.name, AVG(df.fileSize) FROM Datafile df GROUP BY df.dataset HAVING AVG(df.fileSize) > 4 ORDER BY AVG(df.fileSize)",
     "SELECT df.dataset.name, AVG(df.fileSize) FROM Datafile df GROUP BY df.dataset HAVING AVG(df.fileSize) > 4 ORDER BY AVG(df.fileSize)"),
    ("SELECT ds FROM Dataset ds WHERE (SELECT COUNT(df) FROM ds.datafiles df) = 2",
     "SELECT ds FROM Dataset ds WHERE (SELECT COUNT(df) FROM ds.datafiles df) = 2"),
    ("SELECT f.name FROM Facility f WHERE f.name LIKE 'Test$_$_Facility' ESCAPE '$'",
     "SELECT f.name FROM Facility f WHERE f.name LIKE 'Test$_$_Facility' ESCAPE '$'"),
    ("SELECT COUNT(DISTINCT i.facility) FROM Investigation i",
     "SELECT COUNT(DISTINCT i.facility) FROM Investigation i"),
    ("SELECT null, MAX(i.id) FROM Investigation i",
     "SELECT NULL, MAX(i.id) FROM Investigation i"),
    ("select investigation from Investigation investigation, investigation.investigationUsers as investigationUser, investigationUser.user as user where user.name = :user ORDER BY investigation.startDate desc limit 0, 50 include investigation.investigationInstruments.instrument",
     "SELECT investigation FROM Investigation investigation JOIN investigation.investigationUsers investigationuser JOIN investigationuser.user user WHERE user.name = :user ORDER BY investigation.startDate DESC INCLUDE investigation.investigationInstruments.instrument LIMIT 0, 50"),
    ("SELECT o FROM Investigation o JOIN o.investigationUsers AS iu JOIN iu.user AS s1 WHERE o.name = 'x' AND s1.name = 'db/jdoe' ORDER BY o.name INCLUDE o.facility, o.investigationUsers AS iu, iu.user LIMIT 0, 10",
     "SELECT o FROM Investigation o JOIN o.investigationUsers iu JOIN iu.user s1 WHERE o.name = 'x' AND s1.name = 'db/jdoe' ORDER BY o.name INCLUDE o.facility, o.investigationUsers AS iu, iu.user LIMIT 0, 10"),
    ("SELECT COUNT(DISTINCT(o)) FROM Dataset o JOIN o.investigation AS i WHERE i.id = 42",
     "SELECT COUNT(DISTINCT o) FROM Dataset o JOIN o.investigation i WHERE i.id = 42"),
    ("SELECT d.investigation.id FROM Dataset d WHERE d.id=1",
     "SELECT d.investigation.id FROM Dataset d WHERE d.id = 1"),
    ("SELECT iu.user.name FROM InvestigationUser iu WHERE iu.investigation.id=1",
     "SELECT iu.user.name FROM InvestigationUser iu WHERE iu.investigation.id = 1"),
    ("SELECT s.user.name FROM InstrumentScientist s LEFT JOIN s.instrument.investigationInstruments ii WHERE ii.investigation.id=1",
     "SELECT s.user.name FROM InstrumentScientist s LEFT JOIN s.instrument.investigationInstruments ii WHERE ii.investigation.id = 1"),
    ("SELECT dp.publicationDate FROM DataPublication dp JOIN dp.content c JOIN c.dataCollectionDatasets dcd WHERE dcd.dataset.id=1",
     "SELECT dp.publicationDate FROM DataPublication dp JOIN dp.content c JOIN c.dataCollectionDatasets dcd WHERE dcd.dataset.id = 1"),
    ("SELECT DISTINCT(o) FROM FacilityCycle o JOIN o.facility AS f JOIN f.instruments AS s1 JOIN f.investigations AS s2 JOIN s2.investigationInstruments AS s3 JOIN s3.instrument AS s4 WHERE s1.id = '3' AND s4.id = '3' AND s2.startDate >= o.startDate AND s2.startDate <= o.endDate ORDER BY o.startDate DESC LIMIT 0, 50",
     "SELECT DISTINCT o FROM FacilityCycle o JOIN o.facility f JOIN f.instruments s1 JOIN f.investigations s2 JOIN s2.investigationInstruments s3 JOIN s3.instrument s4 WHERE s1.id = '3' AND s4.id = '3' AND s2.startDate >= o.startDate AND s2.startDate <= o.endDate ORDER BY o.startDate DESC LIMIT 0, 50"),
    ("SELECT i.id FROM Investigation i JOIN i.samples s JOIN s.type st WHERE i.type.name = 'Data' AND st.id = (SELECT st2.id FROM SampleType st2 JOIN st2.samples s2 JOIN s2.investigation i2 WHERE i2.id=i.id) ORDER BY st.name",
     "SELECT i.id FROM Investigation i JOIN i.samples s JOIN s.type st WHERE i.type.name = 'Data' AND st.id = (SELECT st2.id FROM SampleType st2 JOIN st2.samples s2 JOIN s2.investigation i2 WHERE i2.id = i.id) ORDER BY st.name"),
    ("SELECT pt FROM ParameterType pt WHERE pt.facility.id=1 AND org.icatproject.ParameterValueType.NUMERIC= pt.valueType",
     "SELECT pt FROM ParameterType pt WHERE pt.facility.id = 1 AND org.icatproject.ParameterValueType.NUMERIC = pt.valueType"),
    ("SELECT ds.id FROM Dataset ds JOIN ds.investigation inv WHERE ds.type.name IN ('GS', 'GQ') AND inv.id BETWEEN 1 AND 9 ORDER BY ds.id",
     "SELECT ds.id FROM Dataset ds JOIN ds.investigation inv WHERE ds.type.name IN ('GS', 'GQ') AND inv.id BETWEEN 1 AND 9 ORDER BY ds.id"),
    ("SELECT inv.id FROM Investigation inv WHERE inv.datasets IS NOT EMPTY",
     "SELECT inv.id FROM Investigation inv WHERE inv.datasets IS NOT EMPTY"),
    ("SELECT ds.name from Dataset ds JOIN ds.datafiles df1 JOIN ds.datafiles df2 WHERE LOWER(df1.name) = 'fred' AND df2.name = LOWER('bill')",
     "SELECT ds.name FROM Dataset ds JOIN ds.datafiles df1 JOIN ds.datafiles df2 WHERE LOWER(df1.name) = 'fred' AND df2.name = LOWER('bill')"),
    ("SELECT SUM(DISTINCT df.fileSize) from Datafile df",
     "SELECT SUM(DISTINCT df.fileSize) FROM Datafile df"),
    ("SELECT DISTINCT df FROM Datafile df",
     "SELECT DISTINCT df FROM Datafile df"),
    ("SELECT f.investigations FROM Facility f",
     "SELECT f.investigations FROM Facility f"),
    ("SELECT e, a FROM Dataset e, Datafile a WHERE e.name = a.name",
     "SELECT e, a FROM Dataset e, Datafile a WHERE e.name = a.name"),
    ("SELECT ds FROM Dataset ds, IN(ds.datafiles) df WHERE df.name = 'x'",
     "SELECT ds FROM Dataset ds JOIN ds.datafiles df WHERE df.name = 'x'"),
    ("SELECT ds FROM Dataset ds LEFT OUTER JOIN ds.datafiles df INNER JOIN ds.type t WHERE df.id IS NULL",
     "SELECT ds FROM Dataset ds LEFT JOIN ds.datafiles df JOIN ds.type t WHERE df.id IS NULL"),
    ("SELECT ds FROM Dataset ds WHERE NOT EXISTS (SELECT df FROM ds.datafiles df WHERE df.fileSize > 0)",
     "SELECT ds FROM Dataset ds WHERE NOT EXISTS (SELECT df FROM ds.datafiles df WHERE df.fileSize > 0)"),
    ("SELECT ds FROM Dataset ds WHERE EXISTS (SELECT df FROM Datafile df WHERE df.dataset = ds)",
     "SELECT ds FROM Dataset ds WHERE EXISTS (SELECT df FROM Datafile df WHERE df.dataset = ds)"),
    ("SELECT ds FROM Dataset ds WHERE ds.id NOT IN (SELECT df.dataset.id FROM Datafile df)",
     "SELECT ds FROM Dataset ds WHERE ds.id NOT IN (SELECT df.dataset.id FROM Datafile df)"),
    ("SELECT ds FROM Dataset ds WHERE ds.name NOT LIKE 'a%' AND ds.id NOT BETWEEN 1 AND 2 AND ds.id NOT IN (3, 4)",
     "SELECT ds FROM Dataset ds WHERE ds.name NOT LIKE 'a%' AND ds.id NOT BETWEEN 1 AND 2 AND ds.id NOT IN (3, 4)"),
    ("SELECT u FROM User u, Grouping g WHERE u NOT MEMBER OF g.userGroups",
     "SELECT u FROM User u, Grouping g WHERE u NOT MEMBER OF g.userGroups"),
    ("SELECT u FROM User u, UserGroup ug WHERE ug MEMBER u.userGroups",
     "SELECT u FROM User u, UserGroup ug WHERE ug MEMBER OF u.userGroups"),
    ("SELECT o.id + 2 * 3 - o.id / 4, -o.id, - 5, o.id -1 FROM Dataset o",
     "SELECT o.id + 2 * 3 - o.id / 4, -o.id, -5, o.id - 1 FROM Dataset o"),
    ("SELECT (o.id + 2) * 3 FROM Dataset o",
     "SELECT (o.id + 2) * 3 FROM Dataset o"),
    ("SELECT CONCAT(o.name, '-', o.description), SUBSTRING(o.name, 1, 2), LENGTH(o.name), LOCATE('a', o.name), ABS(o.id), SQRT(o.id), MOD(o.id, 2), SIZE(o.datafiles) FROM Dataset o",
     "SELECT CONCAT(o.name, '-', o.description), SUBSTRING(o.name, 1, 2), LENGTH(o.name), LOCATE('a', o.name), ABS(o.id), SQRT(o.id), MOD(o.id, 2), SIZE(o.datafiles) FROM Dataset o"),
    ("SELECT TRIM(o.name), TRIM(LEADING FROM o.name), TRIM(TRAILING 'x' FROM o.name), TRIM('y' FROM o.name) FROM Dataset o",
     "SELECT TRIM(BOTH FROM o.name), TRIM(LEADING FROM o.name), TRIM(TRAILING 'x' FROM o.name), TRIM(BOTH 'y' FROM o.name) FROM Dataset o"),
    ("SELECT o FROM Dataset o WHERE o.startDate < CURRENT_TIMESTAMP AND o.endDate > CURRENT_DATE AND o.modTime <> CURRENT_TIME",
     "SELECT o FROM Dataset o WHERE o.startDate < CURRENT_TIMESTAMP AND o.endDate > CURRENT_DATE AND o.modTime <> CURRENT_TIME"),
    ("SELECT o FROM Dataset o WHERE o.complete = TRUE OR o.complete = FALSE OR o.doi IS NOT NULL",
     "SELECT o FROM Dataset o WHERE o.complete = TRUE OR o.complete = FALSE OR o.doi IS NOT NULL"),
    ("SELECT o FROM Dataset o WHERE o.name != 'a' AND o.name <> 'b' AND o.id >= 1 AND o.id <= 2",
     "SELECT o FROM Dataset o WHERE o.name <> 'a' AND o.name <> 'b' AND o.id >= 1 AND o.id <= 2"),
    ("SELECT o FROM Dataset o WHERE o.fileSize > 1.5e3 AND o.fileSize < 17.0E-1",
     "SELECT o FROM Dataset o WHERE o.fileSize > 1500.0 AND o.fileSize < 1.7"),
    ("SELECT o FROM Dataset o WHERE o.name = 'it''s'",
     "SELECT o FROM Dataset o WHERE o.name = 'it''s'"),
    ("SELECT OBJECT(o) FROM Dataset o",
     "SELECT o FROM Dataset o"),
    ("SELECT o FROM Dataset o WHERE NOT (o.id = 1 OR o.id = 2)",
     "SELECT o FROM Dataset o WHERE NOT (o.id = 1 OR o.id = 2)"),
    ("SELECT o FROM Dataset o WHERE (o.id = 1 OR o.id = 2) AND o.name = 'x'",
     "SELECT o FROM Dataset o WHERE (o.id = 1 OR o.id = 2) AND o.name = 'x'"),
    ("SELECT o FROM Dataset o LIMIT 10, *",
     "SELECT o FROM Dataset o LIMIT 10, *"),
    ("SELECT o FROM Dataset o LIMIT 1, 0",
     "SELECT o FROM Dataset o LIMIT 1, 0"),
    ("SELECT o FROM Dataset o INCLUDE 1 LIMIT 0, 5",
     "SELECT o FROM Dataset o INCLUDE 1 LIMIT 0, 5"),
    ("SELECT o FROM Dataset o LIMIT 0, 5 INCLUDE 1",
     "SELECT o FROM Dataset o INCLUDE 1 LIMIT 0, 5"),
    ("SELECT DISTINCT o.id, o.name FROM Dataset o",
     "SELECT DISTINCT o.id, o.name FROM Dataset o"),
    ("SELECT\to\nFROM Dataset o\r\nWHERE o.id = 1",
     "SELECT o FROM Dataset o WHERE o.id = 1"),
    ("SELECT O FROM Dataset o WHERE O.ID = 1",
     "SELECT o FROM Dataset o WHERE o.ID = 1"),
    ("SELECT o FROM dataset o",
     "SELECT o FROM Dataset o"),
    ("SELECT o FROM Dataset AS o",
     "SELECT o FROM Dataset o"),
    ("SELECT ds FROM Dataset ds GROUP BY ds.type, ds.name HAVING COUNT(ds) > 1",
     "SELECT ds FROM Dataset ds GROUP BY ds.type, ds.name HAVING COUNT(ds) > 1"),
    ("SELECT ds.name FROM Dataset ds ORDER BY ds.name ASC, ds.id DESC",
     "SELECT ds.name FROM Dataset ds ORDER BY ds.name, ds.id DESC"),
    ("SELECT ds FROM Dataset ds WHERE UPPER(ds.name) LIKE UPPER('%x%') AND ds.name IN (NULL)",
     "SELECT ds FROM Dataset ds WHERE UPPER(ds.name) LIKE UPPER('%x%') AND ds.name IN (NULL)"),
]
#: The concise syntax: every example of §1.5 and of icat.server's integration tests.
CONCISE = [
    ("Dataset",
     "SELECT dataset$ FROM Dataset dataset$"),
    ("Dataset.name",
     "SELECT dataset$.name FROM Dataset dataset$"),
    ("DISTINCT Dataset.name",
     "SELECT DISTINCT dataset$.name FROM Dataset dataset$"),
    ("COUNT(Dataset)",
     "SELECT COUNT(dataset$) FROM Dataset dataset$"),
    ("MAX(Dataset.id) [id > 0]",
     "SELECT MAX(dataset$.id) FROM Dataset dataset$ WHERE dataset$.id > 0"),
    ("Dataset.id ORDER BY id",
     "SELECT dataset$.id FROM Dataset dataset$ ORDER BY dataset$.id"),
    ("3,5 Dataset.id ORDER BY id",
     "SELECT dataset$.id FROM Dataset dataset$ ORDER BY dataset$.id LIMIT 3, 5"),
    (",1 Datafile.name ORDER BY name",
     "SELECT datafile$.name FROM Datafile datafile$ ORDER BY datafile$.name LIMIT 0, 1"),
    ("Dataset.id [type.name IN ('GS','GQ')]",
     "SELECT dataset$.id FROM Dataset dataset$ WHERE dataset$.type.name IN ('GS', 'GQ')"),
    ("Investigation <-> InvestigationUser <-> User [name = :user]",
     "SELECT investigation$ FROM Investigation investigation$ JOIN investigation$.investigationUsers investigationuser$ JOIN investigationuser$.user user$ WHERE user$.name = :user"),
    ("Dataset.id ORDER BY id [type.name IN ('GS','GQ')] <-> Investigation [id BETWEEN 1 AND 9]",
     "SELECT dataset$.id FROM Dataset dataset$ JOIN dataset$.investigation investigation$ WHERE dataset$.type.name IN ('GS', 'GQ') AND investigation$.id BETWEEN 1 AND 9 ORDER BY dataset$.id"),
    ("Investigation [createTime > {ts 2011-01-15 00:00:00}]",
     "SELECT investigation$ FROM Investigation investigation$ WHERE investigation$.createTime > {ts 2011-01-15 00:00:00}"),
    ("Dataset [complete = TRUE]",
     "SELECT dataset$ FROM Dataset dataset$ WHERE dataset$.complete = TRUE"),
    ("Facility.id [name = 'Test port facility']",
     "SELECT facility$.id FROM Facility facility$ WHERE facility$.name = 'Test port facility'"),
    ("Rule [bean='Investigation'] <-> Grouping [name='root']",
     "SELECT rule$ FROM Rule rule$ JOIN rule$.grouping grouping$ WHERE rule$.bean = 'Investigation' AND grouping$.name = 'root'"),
    ("Dataset.id [name like 'fred%'] <-> DatasetParameter[type.name = 'TIMESTAMP']",
     "SELECT dataset$.id FROM Dataset dataset$ JOIN dataset$.parameters datasetparameter$ WHERE dataset$.name LIKE 'fred%' AND datasetparameter$.type.name = 'TIMESTAMP'"),
    ("Dataset INCLUDE Datafile, DatasetParameter, Investigation",
     "SELECT dataset$ FROM Dataset dataset$ INCLUDE dataset$.datafiles AS datafile_$, dataset$.investigation AS investigation_$, dataset$.parameters AS datasetparameter_$"),
    ("Dataset INCLUDE 1",
     "SELECT dataset$ FROM Dataset dataset$ INCLUDE 1"),
    ("Dataset INCLUDE Datafile[name = 'Wibble']",
     "SELECT dataset$ FROM Dataset dataset$ WHERE dataset$.name = 'Wibble' INCLUDE dataset$.datafiles AS datafile_$"),
    ("Dataset INCLUDE 1 [name = 'Wibble']",
     "SELECT dataset$ FROM Dataset dataset$ WHERE dataset$.name = 'Wibble' INCLUDE 1"),
    ("Investigation INCLUDE InvestigationUser, User [name='Frederick']",
     "SELECT investigation$ FROM Investigation investigation$ WHERE investigation$.name = 'Frederick' INCLUDE investigation$.investigationUsers AS investigationuser_$, investigationuser_$.user AS user_$"),
    ("ParameterType [valueType = DATE_AND_TIME]",
     "SELECT parametertype$ FROM ParameterType parametertype$ WHERE parametertype$.valueType = DATE_AND_TIME"),
    ("Dataset [5 < id]",
     "SELECT dataset$ FROM Dataset dataset$ WHERE dataset$.id > 5"),
    ("Dataset ['fred' = name]",
     "SELECT dataset$ FROM Dataset dataset$ WHERE dataset$.name = 'fred'"),
    ("Dataset [NOT (name = 'a' OR name = 'b') AND id > 3]",
     "SELECT dataset$ FROM Dataset dataset$ WHERE NOT (dataset$.name = 'a' OR dataset$.name = 'b') AND dataset$.id > 3"),
    ("Datafile <-> Dataset <-> Investigation <-> InvestigationUser <-> User [name = :user]",
     "SELECT datafile$ FROM Datafile datafile$ JOIN datafile$.dataset dataset$ JOIN dataset$.investigation investigation$ JOIN investigation$.investigationUsers investigationuser$ JOIN investigationuser$.user user$ WHERE user$.name = :user"),
    ("Dataset <-> Investigation <-> InvestigationGroup [role='writer'] <-> Grouping <-> UserGroup <-> User [name=:user]",
     "SELECT dataset$ FROM Dataset dataset$ JOIN dataset$.investigation investigation$ JOIN investigation$.investigationGroups investigationgroup$ JOIN investigationgroup$.grouping grouping$ JOIN grouping$.userGroups usergroup$ JOIN usergroup$.user user$ WHERE investigationgroup$.role = 'writer' AND user$.name = :user"),
    ("COUNT(Dataset.name) [type.name = 'PB'] <-> Datafile[name = 'PB']",
     "SELECT COUNT(dataset$.name) FROM Dataset dataset$ JOIN dataset$.datafiles datafile$ WHERE dataset$.type.name = 'PB' AND datafile$.name = 'PB'"),
    ("Investigation  ORDER BY name<-> InvestigationInstrument <-> Instrument[name='WISH']",
     "SELECT investigation$ FROM Investigation investigation$ JOIN investigation$.investigationInstruments investigationinstrument$ JOIN investigationinstrument$.instrument instrument$ WHERE instrument$.name = 'WISH' ORDER BY investigation$.name"),
    ("3, DISTINCT Dataset ORDER BY name DESC, id INCLUDE Datafile",
     "SELECT DISTINCT dataset$ FROM Dataset dataset$ ORDER BY dataset$.name DESC, dataset$.id INCLUDE dataset$.datafiles AS datafile_$ LIMIT 3, *"),
    ("Dataset [id > -1]",
     "SELECT dataset$ FROM Dataset dataset$ WHERE dataset$.id > -1"),
    ("Dataset [name != 'x']",
     "SELECT dataset$ FROM Dataset dataset$ WHERE dataset$.name <> 'x'"),
    ("User[name='db/notroot']",
     "SELECT user$ FROM User user$ WHERE user$.name = 'db/notroot'"),
    ("Investigation INCLUDE  Sample, SampleParameter",
     "SELECT investigation$ FROM Investigation investigation$ INCLUDE investigation$.samples AS sample_$, sample_$.parameters AS sampleparameter_$"),
]
#: get queries (§1.6).
GET = [
    ("Dataset",
     "Dataset dataset$"),
    ("Dataset INCLUDE 1",
     "Dataset dataset$ INCLUDE 1"),
    ("Investigation INCLUDE 1",
     "Investigation investigation$ INCLUDE 1"),
    ("Dataset ds INCLUDE ds.datafiles df, df.datafileFormat",
     "Dataset ds INCLUDE ds.datafiles AS df, df.datafileFormat"),
    ("Facility INCLUDE InvestigationType",
     "Facility facility$ INCLUDE facility$.investigationTypes AS investigationtype_$"),
    ("Dataset INCLUDE Datafile, DatafileFormat",
     "Dataset dataset$ INCLUDE dataset$.datafiles AS datafile_$, datafile_$.datafileFormat AS datafileformat_$"),
    ("Dataset AS ds",
     "Dataset ds"),
    ("Dataset ds INCLUDE 1",
     "Dataset ds INCLUDE 1"),
    ("Investigation INCLUDE  Sample, SampleParameter",
     "Investigation investigation$ INCLUDE investigation$.samples AS sample_$, sample_$.parameters AS sampleparameter_$"),
    ("dataset d",
     "Dataset d"),
]


@pytest.mark.parametrize(("query", "text"), JPQL + CONCISE)
def test_canonical_text(query: str, text: str) -> None:
    assert to_text(parse_query(query)) == text


@pytest.mark.parametrize(("query", "text"), GET)
def test_get_canonical_text(query: str, text: str) -> None:
    assert to_text(parse_get(query)) == text


@pytest.mark.parametrize(("query", "text"), JPQL + [c for c in CONCISE if "DATE_AND_TIME" not in c[0]])
def test_round_trip(query: str, text: str) -> None:
    """The canonical text parses back to the same tree (positions aside)."""
    assert same(parse_query(text), parse_query(query))


@pytest.mark.parametrize(("query", "text"), GET)
def test_get_round_trip(query: str, text: str) -> None:
    assert same(parse_get(text), parse_get(query))


# -- the 88 queries datagateway-api sends -------------------------------------------------------


def _datagateway() -> list[str]:
    path = reference_file("data/datagateway-api-queries.jsonl")
    return [json.loads(line)["icat_query"] for line in path.read_text().splitlines()
            if line.strip()]


def test_datagateway_queries_parse() -> None:
    queries = _datagateway()
    assert len(queries) == 88
    for query in queries:
        if "LIMIT -1," in query:  # sent on purpose; the API expects VALIDATION (or INTERNAL)
            with pytest.raises(IcatError) as e:
                parse_query(query)
            assert e.value.type == ErrorType.VALIDATION
            continue
        tree = parse_query(query)
        assert same(parse_query(to_text(tree)), tree), query


# -- expected trees -----------------------------------------------------------------------------

VAR_O, ID = Path("o"), Path("o", ("id",))


@pytest.mark.parametrize(("query", "tree"), [
    # DISTINCT(o.id) is SELECT DISTINCT o.id (python-icat writes it that way)
    ("SELECT DISTINCT(o.id) FROM Investigation o",
     Select((ID,), (FromEntity("Investigation", "o"),), distinct=True)),
    ("SELECT COUNT(DISTINCT(o)) FROM Dataset o JOIN o.investigation AS i WHERE i.id = '42'",
     Select((Func("COUNT", (VAR_O,), distinct=True),),
            (FromEntity("Dataset", "o"), FromJoin(Path("o", ("investigation",)), "i")),
            where=Compare("=", Path("i", ("id",)), Literal("42", "string")))),
    ("SELECT DISTINCT o.id, o.name FROM Dataset o",
     Select((ID, Path("o", ("name",))), (FromEntity("Dataset", "o"),), distinct=True)),
    ("SELECT null, MAX(i.id) FROM Investigation i",
     Select((Literal(None, "null"), Func("MAX", (Path("i", ("id",)),))),
            (FromEntity("Investigation", "i"),))),
    # a correlated sub-select ranges over a path of the outer variable
    ("SELECT ds FROM Dataset ds WHERE (SELECT COUNT(df) FROM ds.datafiles df) = 2",
     Select((Path("ds"),), (FromEntity("Dataset", "ds"),),
            where=Compare("=", Subquery(Select((Func("COUNT", (Path("df"),)),),
                                               (FromJoin(Path("ds", ("datafiles",)), "df"),))),
                          Literal(2, "integer")))),
    ("SELECT ds FROM Dataset ds, IN(ds.datafiles) df, ds.parameters AS p LEFT OUTER JOIN p.type t",
     Select((Path("ds"),), (FromEntity("Dataset", "ds"),
                            FromJoin(Path("ds", ("datafiles",)), "df"),
                            FromJoin(Path("ds", ("parameters",)), "p"),
                            FromJoin(Path("p", ("type",)), "t", "LEFT")))),
    ("SELECT o FROM Dataset o WHERE NOT EXISTS (SELECT df FROM o.datafiles df) AND NOT o.id = 1",
     Select((VAR_O,), (FromEntity("Dataset", "o"),), where=And((
         Exists(Select((Path("df"),), (FromJoin(Path("o", ("datafiles",)), "df"),)), True),
         Not(Compare("=", ID, Literal(1, "integer"))))))),
    ("SELECT pt FROM ParameterType pt WHERE pt.valueType = org.icatproject.ParameterValueType.DATE_AND_TIME",
     Select((Path("pt"),), (FromEntity("ParameterType", "pt"),),
            where=Compare("=", Path("pt", ("valueType",)),
                          EnumConst("ParameterValueType", "DATE_AND_TIME")))),
    ("SELECT i FROM Investigation i WHERE i.createTime > {ts 2011-01-15 00:00:00} AND i.name = :user",
     Select((Path("i"),), (FromEntity("Investigation", "i"),), where=And((
         Compare(">", Path("i", ("createTime",)), Timestamp(datetime(2011, 1, 15))),
         Compare("=", Path("i", ("name",)), Param("user")))))),
    # literals keep their kind: coercion is the compiler's
    ("SELECT o FROM Dataset o WHERE o.id IN ('42', 42, 4.2, -1, TRUE, NULL)",
     Select((VAR_O,), (FromEntity("Dataset", "o"),), where=InList(ID, (
         Literal("42", "string"), Literal(42, "integer"), Literal(4.2, "real"),
         Literal(-1, "integer"), Literal(True, "boolean"), Literal(None, "null"))))),
    # precedence, unary minus, and "o.id -1" read as a subtraction (as JPA reads ICAT's text)
    ("SELECT o.id + 2 * -o.id, o.id -1 FROM Dataset o",
     Select((Arith("+", ID, Arith("*", Literal(2, "integer"), Neg(ID))),
             Arith("-", ID, Literal(1, "integer"))), (FromEntity("Dataset", "o"),))),
    ("SELECT TRIM(LEADING 'x' FROM o.name) FROM Dataset o",
     Select((Trim(Path("o", ("name",)), "LEADING", Literal("x", "string")),),
            (FromEntity("Dataset", "o"),))),
    ("SELECT o FROM Dataset o WHERE UPPER(o.name) NOT LIKE UPPER('%a%') ESCAPE '!' ORDER BY o.name DESC LIMIT 5, *",
     Select((VAR_O,), (FromEntity("Dataset", "o"),),
            where=Like(Func("UPPER", (Path("o", ("name",)),)),
                       Func("UPPER", (Literal("%a%", "string"),)), Literal("!", "string"), True),
            order_by=(OrderItem(Path("o", ("name",)), True),), limit=Limit(5, None))),
    ("SELECT ds FROM Dataset ds INCLUDE ds.datafiles AS df, df.parameters, ds.type t LIMIT 1, 0",
     Select((Path("ds"),), (FromEntity("Dataset", "ds"),), limit=Limit(1, 0),
            include=Include(items=(IncludeItem(Path("ds", ("datafiles",)), "df"),
                                   IncludeItem(Path("df", ("parameters",))),
                                   IncludeItem(Path("ds", ("type",)), "t"))))),
    # keywords and variables are case-insensitive; entity names come out canonical
    ("select O from dataset o where o.ID = 1 include 1",
     Select((VAR_O,), (FromEntity("Dataset", "o"),), where=Compare("=", Path("o", ("ID",)),
                                                                Literal(1, "integer")),
            include=Include(one=True))),
    # the concise example of §1.5
    ("Dataset.id [name like 'fred%'] <-> DatasetParameter[type.name = 'TIMESTAMP']",
     Select((Path("dataset$", ("id",)),),
            (FromEntity("Dataset", "dataset$"),
             FromJoin(Path("dataset$", ("parameters",)), "datasetparameter$")),
            where=And((Like(Path("dataset$", ("name",)), Literal("fred%", "string")),
                       Compare("=", Path("datasetparameter$", ("type", "name")),
                               Literal("TIMESTAMP", "string")))))),
    # a bare name on the value side is an enum constant of the attribute's type
    ("ParameterType [valueType = DATE_AND_TIME OR DATE_AND_TIME <> valueType]",
     Select((Path("parametertype$"),), (FromEntity("ParameterType", "parametertype$"),),
            where=Or((Compare("=", Path("parametertype$", ("valueType",)),
                              EnumConst(None, "DATE_AND_TIME")),
                      Compare("<>", Path("parametertype$", ("valueType",)),
                              EnumConst(None, "DATE_AND_TIME")))))),
    ("MAX(Dataset.id) [id > 0]",
     Select((Func("MAX", (Path("dataset$", ("id",)),)),), (FromEntity("Dataset", "dataset$"),),
            where=Compare(">", Path("dataset$", ("id",)), Literal(0, "integer")))),
    ("3, DISTINCT Dataset ORDER BY name DESC INCLUDE 1",
     Select((Path("dataset$"),), (FromEntity("Dataset", "dataset$"),), distinct=True,
            order_by=(OrderItem(Path("dataset$", ("name",)), True),), limit=Limit(3, None),
            include=Include(one=True))),
])
def test_trees(query: str, tree: Select) -> None:
    assert same(parse_query(query), tree)


# -- errors: exact messages, types and offsets -----------------------------------------------

#: (query, type, message, offset of the offending token). Messages in icat.server's wording
#: where it has one (the concise ones below are asserted by its integration tests).
ERRORS = [
    ('SELECT ds FROM Dataset ds WHERE ds.name ! 3',
     'BAD_PARAMETER', "Unexpected character '!' in WHERE ds.name < ! > 3", 40),
    ("SELECT ds FROM Dataset ds WHERE ds.name = 'x",
     'BAD_PARAMETER', 'Unterminated string starting at "\'x"', 42),
    ('SELECT ds FROM Dataset ds WHERE ds.name = "x"',
     'BAD_PARAMETER', 'Unexpected character \'"\' in HERE ds.name = < " > x"', 42),
    ('SELECT ds FROM Dataset ds WHERE ds.fileSize = 1e',
     'BAD_PARAMETER', 'Invalid number 1e in ds.fileSize = < 1 > e', 46),
    ('SELECT i FROM Investigation i WHERE i.createTime > {ts 2011-01-15T00:00:00}',
     'BAD_PARAMETER', 'Timestamp {ts 2011-01-15T00:00:00} is not of form {ts yyyy-mm-dd hh:mm:ss}.', 51),
    ('SELECT i FROM Investigation i WHERE i.createTime > {ts 2011-13-15 00:00:00}',
     'BAD_PARAMETER', 'Timestamp {ts 2011-13-15 00:00:00} is not of form {ts yyyy-mm-dd hh:mm:ss}.', 51),
    ('SELECT i FROM Investigation i WHERE i.createTime > {ts 2011-01-15 00:00:00',
     'BAD_PARAMETER', 'Timestamp {ts 2011-01-15 00:00:00 is not of form {ts yyyy-mm-dd hh:mm:ss}.', 51),
    ('SELECT i FROM Investigation i WHERE i.name = : user',
     'BAD_PARAMETER', "Parameter name expected after ':' in WHERE i.name = < : > user", 45),
    ('SELEC ds FROM Dataset ds',
     'BAD_PARAMETER', 'SELEC is not an ICAT entity', 0),
    ('SELECT ds.name X FROM Dataset ds',
     'BAD_PARAMETER', 'Expected token from types [COMMA, FROM] at token X in SELECT ds.name < X > FROM Dataset ', 15),
    ('SELECT ds FROM Dataset ds JOIN FETCH ds.datafiles df',
     'BAD_PARAMETER', 'The FETCH keyword is not permitted', 31),
    ('SELECT ds FROM Dataset ds LEFT JOIN FETCH ds.datafiles df',
     'BAD_PARAMETER', 'The FETCH keyword is not permitted', 36),
    ('SELECT ds FROM Datasets ds',
     'BAD_PARAMETER', 'No information to determine type of Datasets in the FROM clause', 15),
    ('SELECT ds FROM Dataset ds, df',
     'BAD_PARAMETER', 'No information to determine type of df in the FROM clause', 27),
    ('SELECT ds FROM Dataset ds, Datafile DS',
     'BAD_PARAMETER', 'JPQL indentification variable DS has already been defined in the FROM clause', 36),
    ('SELECT ds FROM Dataset ds WHERE EXISTS (SELECT ds FROM Datafile ds)',
     'BAD_PARAMETER', 'JPQL indentification variable ds has already been defined in the FROM clause', 64),
    ('SELECT x FROM Dataset ds',
     'BAD_PARAMETER', "idVar 'X' referenced in the SELECT clause is not defined in the FROM clause.", 7),
    ('SELECT COUNT(x.id) FROM Dataset ds',
     'BAD_PARAMETER', "idVar 'X' referenced in the SELECT clause is not defined in the FROM clause.", 13),
    ("SELECT ds FROM Dataset ds WHERE dx.name = 'a'",
     'BAD_PARAMETER', "idVar 'DX' referenced in the WHERE clause is not defined in the FROM clause.", 32),
    ('SELECT ds FROM Dataset ds ORDER BY name',
     'BAD_PARAMETER', "idVar 'NAME' referenced in the ORDER BY clause is not defined in the FROM clause.", 35),
    ('SELECT ds FROM Dataset ds JOIN dx.datafiles df',
     'BAD_PARAMETER', "idVar 'DX' referenced in the FROM clause is not defined.", 31),
    ('SELECT ds FROM Dataset ds JOIN ds df',
     'BAD_PARAMETER', 'Expected a path var.field at token ds in ds JOIN < ds > df ', 31),
    ('SELECT ds FROM Dataset ds JOIN ds.datafiles d.f',
     'BAD_PARAMETER', "Identification variable d.f must not contain a '.'", 44),
    ('SELECT ds FROM Dataset ds LIMIT 0, 10 INCLUDE 1 LIMIT 1,2',
     'BAD_PARAMETER', 'No more input expected at token LIMIT in INCLUDE 1 < LIMIT > 1 , ', 48),
    ('SELECT ds FROM Dataset ds WHERE ds.id = 1 foo',
     'BAD_PARAMETER', 'No more input expected at token foo in = 1 < foo > ', 42),
    ('SELECT o FROM Investigation o LIMIT -1, 10000',
     'VALIDATION', 'LIMIT offset -1 must not be negative', 36),
    ('SELECT o FROM Investigation o LIMIT 0, -5',
     'VALIDATION', 'LIMIT count -5 must not be negative', 39),
    ('SELECT o FROM Investigation o LIMIT 0, 99999999999',
     'BAD_PARAMETER', 'LIMIT value 99999999999 is too large', 39),
    ('SELECT o FROM Investigation o LIMIT 0',
     'BAD_PARAMETER', 'Expected token from types [COMMA] at end of query in LIMIT 0 < > ', 37),
    ('SELECT o FROM Investigation o LIMIT 0, 1.5',
     'BAD_PARAMETER', 'Expected token from types [INTEGER, MULT] at token 1.5 in 0 , < 1.5 > ', 39),
    ('SELECT ds FROM Dataset ds INCLUDE 1, ds.datafiles',
     'BAD_PARAMETER', '"INCLUDE 1" must not be followed by other things to include.', 35),
    ('SELECT ds.id, ds.name FROM Dataset ds INCLUDE 1',
     'BAD_PARAMETER', 'INCLUDE is only valid for one quantity in the SELECT clause', 38),
    ('SELECT ds FROM Dataset ds INCLUDE ii.instrument',
     'BAD_PARAMETER', 'variable II mentioned in INCLUDE clause is not defined', 34),
    ('SELECT ds FROM Dataset ds INCLUDE ds.investigation AS ds',
     'BAD_PARAMETER', 'variable DS mentioned in INCLUDE clause is already defined', 54),
    ('SELECT ds FROM Dataset ds INCLUDE ds.investigation AS i.x',
     'BAD_PARAMETER', "Variable i.x must not contain a '.'", 54),
    ('SELECT ds FROM Dataset ds INCLUDE ds',
     'BAD_PARAMETER', "Path ds must contain a '.'", 34),
    ('SELECT ds.name FROM Dataset ds INCLUDE ds.investigation',
     'BAD_PARAMETER', 'variable DS mentioned in INCLUDE clause is not defined', 39),
    ('SELECT pt FROM ParameterType pt WHERE pt.valueType = org.icatproject.DATE_AND_TIME',
     'BAD_PARAMETER', 'Enum literal org.icatproject.DATE_AND_TIME must contain exactly 4 parts', 53),
    ('SELECT pt FROM ParameterType pt WHERE pt.valueType = org.icatproject.ValueType.NUMERIC',
     'BAD_PARAMETER', 'Enum literal org.icatproject.ValueType.NUMERIC: ValueType is not an ICAT enum type', 53),
    ('SELECT pt FROM ParameterType pt WHERE pt.valueType = org.icatproject.ParameterValueType.NUMERICAL',
     'BAD_PARAMETER', 'Enum literal org.icatproject.ParameterValueType.NUMERICAL: NUMERICAL is not a value of ParameterValueType (DATE_AND_TIME, NUMERIC, STRING)', 53),
    ('SELECT ds FROM Dataset ds WHERE ds.id = COALESCE(1, 2)',
     'BAD_PARAMETER', 'Unknown function COALESCE at token COALESCE in ds.id = < COALESCE > ( 1 ', 40),
    ('SELECT UPPER(ds.name, 1) FROM Dataset ds',
     'BAD_PARAMETER', 'UPPER takes 1 argument, not 2, at token UPPER in SELECT < UPPER > ( ds.name ', 7),
    ('SELECT SUBSTRING(ds.name) FROM Dataset ds',
     'BAD_PARAMETER', 'SUBSTRING takes 2 to 3 arguments, not 1, at token SUBSTRING in SELECT < SUBSTRING > ( ds.name ', 7),
    ('SELECT ds FROM Dataset ds WHERE ds.id + 1',
     'BAD_PARAMETER', 'Expected a condition at token ds.id in ds WHERE < ds.id > + 1 ', 32),
    ("SELECT ds FROM Dataset ds WHERE ds.id = 1 AND 'x'",
     'BAD_PARAMETER', "Expected a condition at token 'x' in 1 AND < 'x' > ", 46),
    ('SELECT ds FROM Dataset ds WHERE (ds.id = 1) + 1 = 2',
     'BAD_PARAMETER', 'Expected a value rather than a condition at token ( in ds WHERE < ( > ds.id = ', 32),
    ('SELECT ds FROM Dataset ds WHERE ds.id IN ()',
     'BAD_PARAMETER', 'Expected an expression at token ) in IN ( < ) > ', 42),
    ('SELECT ds FROM Dataset ds WHERE UPPER(ds.name) IS EMPTY',
     'BAD_PARAMETER', 'IS EMPTY needs a path at token UPPER in ds WHERE < UPPER > ( ds.name ', 32),
    ("SELECT ds FROM Dataset ds WHERE ds.name IS 'x'",
     'BAD_PARAMETER', "Expected token from types [NOT, NULL, EMPTY] at token 'x' in ds.name IS < 'x' > ", 43),
    ('SELECT ds FROM Dataset ds WHERE ds.name LIKE',
     'BAD_PARAMETER', 'Expected an expression at end of query in ds.name LIKE < > ', 44),
    ('SELECT (SELECT COUNT(df) FROM Datafile df) FROM Dataset ds',
     'BAD_PARAMETER', 'Sub-selects are not allowed in the SELECT clause at token SELECT in SELECT ( < SELECT > COUNT ( ', 8),
    ('SELECT ds FROM Dataset ds WHERE EXISTS (SELECT df FROM ds.datafiles df ORDER BY df.name)',
     'BAD_PARAMETER', 'Expected token from types [)] at token ORDER in ds.datafiles df < ORDER > BY df.name ', 71),
    ('SELECT ds FROM Dataset ds WHERE ds.name..x = 1',
     'BAD_PARAMETER', 'Invalid path ds.name..x at token ds.name..x in ds WHERE < ds.name..x > = 1 ', 32),
    ('SELECT',
     'BAD_PARAMETER', 'Expected an expression at end of query in SELECT < > ', 6),
    ('SELECT ds FROM Dataset ds WHERE ((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((ds.id = 1))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))',
     'BAD_PARAMETER', 'Query is nested too deeply at token ( in ( ( < ( > ( ( ', 82),
    ('SELECT ds FROM Dataset ds WHERE NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT ds.id = 1',
     'BAD_PARAMETER', 'Query is nested too deeply at token NOT in NOT NOT < NOT > NOT NOT ', 236),
    ('SELECT ds FROM Dataset ds WHERE ds.id = ------------------------------------------------------------1',
     'BAD_PARAMETER', 'Query is nested too deeply at token - in - - < - > - - ', 90),
    ("Dataset INCLUDE 1, Datafile [name = 'Wibble']",
     'BAD_PARAMETER', 'Expected token from types [ENTSEP] at token , in INCLUDE 1 < , > Datafile [ ', 17),
    ("Dataset INCLUDE Datafile, 1 [name = 'Wibble']",
     'BAD_PARAMETER', 'Expected token from types [NAME] at token 1 in Datafile , < 1 > [ name ', 26),
    ('Dataset INCLUDE 2',
     'BAD_PARAMETER', 'Only integer value allowed in the INCLUDE list is 1', 16),
    ('Datasets',
     'BAD_PARAMETER', 'Datasets is not an ICAT entity', 0),
    ('Dataset.id INCLUDE 1',
     'BAD_PARAMETER', 'Expected token from types [ENTSEP] at token INCLUDE in Dataset.id < INCLUDE > 1 ', 11),
    ('COUNT(Dataset) ORDER BY id',
     'BAD_PARAMETER', 'Expected token from types [ENTSEP] at token ORDER in Dataset ) < ORDER > BY id ', 15),
    ('Dataset INCLUDE Investigation, Facility, Instrument',
     'BAD_PARAMETER', 'Unable to reach Instrument in list of INCLUDES.', 41),
    ('Dataset INCLUDE User',
     'BAD_PARAMETER', 'Unable to reach User in list of INCLUDES.', 16),
    ('Datafile <-> RelatedDatafile',
     'BAD_PARAMETER', "Can't have loop in graph of entities. 'RelatedDatafile' was encountered twice following  -> Datafile -> RelatedDatafile", 13),
    ('Dataset <-> User',
     'BAD_PARAMETER', 'Unable to reach User', 12),
    ("Datafile [datase.investigation.name = 'fred']",
     'BAD_PARAMETER', 'Attribute comparisons require one attribute name and one value: datase.investigation.name = fred', 10),
    ("Dataset ['a' = 'b']",
     'BAD_PARAMETER', 'Attribute comparisons require one attribute name and one value: a = b', 9),
    ("Dataset ['a' IN ('b')]",
     'BAD_PARAMETER', '"IN" comparisons require a name on the LHS rather than STRING', 9),
    ('Dataset [5 BETWEEN 1 AND 9]',
     'BAD_PARAMETER', '"BETWEEN" comparisons require a name on the LHS rather than INTEGER', 9),
    ('Dataset [name IN (foo)]',
     'BAD_PARAMETER', 'Expected token from types [STRING, INTEGER, REAL, PARAMETER, TIMESTAMP] at token foo in IN ( < foo > ) ] ', 18),
    ("Dataset [name = 'x'",
     'BAD_PARAMETER', "Expected token from types [KET] at end of query in = 'x' < > ", 19),
    ("Dataset [name = 'x'] Datafile",
     'BAD_PARAMETER', "Expected token from types [ENTSEP] at token Datafile in 'x' ] < Datafile > ", 21),
    ('-1,5 Dataset',
     'VALIDATION', 'LIMIT offset -1 must not be negative', 0),
    ('Dataset [id - 1]',
     'BAD_PARAMETER', "Unexpected character '-' in Dataset [id < - > 1]", 12),
    ('',
     'BAD_PARAMETER', 'Expected token from types [NAME, DISTINCT, INTEGER, COMMA, COUNT, MAX, MIN, AVG, SUM] at end of query in < > ', 0),
    ('Dataset [((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((id = 1))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))]',
     'BAD_PARAMETER', 'Query is nested too deeply at token ( in ( ( < ( > ( ( ', 60),
]

GET_ERRORS = [
    ('Dataset INCLUDE Investigator',
     'BAD_PARAMETER', 'Investigator is not an ICAT entity', 16),
    ('Dataset INCLUDE User',
     'BAD_PARAMETER', 'Unable to reach User in list of INCLUDES.', 16),
    ('Dataset ds foo',
     'BAD_PARAMETER', 'Trailing tokens at end of query foo...', 11),
    ('Datasets ds',
     'BAD_PARAMETER', 'Datasets is not an ICAT entity', 0),
    ('Dataset AS',
     'BAD_PARAMETER', 'Expected token from types [NAME] at end of query in Dataset AS < > ', 10),
    ('Dataset d.s',
     'BAD_PARAMETER', "Variable d.s must not contain a '.'", 8),
    ('Dataset INCLUDE 1 ds',
     'BAD_PARAMETER', 'Trailing tokens at end of query ds...', 18),
    ('Dataset ds INCLUDE 1, ds.x',
     'BAD_PARAMETER', '"INCLUDE 1" must not be followed by other things to include.', 20),
    ('Dataset ds INCLUDE dd.x',
     'BAD_PARAMETER', 'variable DD mentioned in INCLUDE clause is not defined', 19),
    ('',
     'BAD_PARAMETER', 'Expected token from types [NAME] at end of query in < > ', 0),
]


@pytest.mark.parametrize(("query", "type_", "message", "offset"), ERRORS)
def test_errors(query: str, type_: str, message: str, offset: int) -> None:
    with pytest.raises(IcatError) as e:
        parse_query(query)
    assert (e.value.type.value, e.value.message, e.value.offset) == (type_, message, offset)


@pytest.mark.parametrize(("query", "type_", "message", "offset"), GET_ERRORS)
def test_get_errors(query: str, type_: str, message: str, offset: int) -> None:
    with pytest.raises(IcatError) as e:
        parse_get(query)
    assert (e.value.type.value, e.value.message, e.value.offset) == (type_, message, offset)


def test_absurd_nesting_is_a_bad_parameter() -> None:
    for query in ("SELECT o FROM Dataset o WHERE " + "(" * 5000 + "o.id = 1" + ")" * 5000,
                  "Dataset [" + "NOT " * 5000 + "id = 1]", "SELECT " + "-" * 5000 + "1 FROM Dataset o"):
        with pytest.raises(IcatError) as e:
            parse_query(query)
        assert e.value.type == ErrorType.BAD_PARAMETER


# -- get ----------------------------------------------------------------------------------------


def test_get_trees() -> None:
    assert parse_get("Dataset") == Get("Dataset", "dataset$")
    assert same(parse_get("Dataset ds INCLUDE ds.datafiles df, df.datafileFormat"),
                Get("Dataset", "ds", Include(items=(
                    IncludeItem(Path("ds", ("datafiles",)), "df"),
                    IncludeItem(Path("df", ("datafileFormat",)))))))
    assert parse_get("Investigation INCLUDE 1") == Get("Investigation", "investigation$",
                                                       Include(one=True))
    # old style: entity types resolved to paths from the root (icat.server's OldInclude)
    assert parse_get("Dataset INCLUDE Datafile, DatafileFormat") == Get(
        "Dataset", "dataset$", Include(items=(
            IncludeItem(Path("dataset$", ("datafiles",)), "datafile_$"),
            IncludeItem(Path("datafile_$", ("datafileFormat",)), "datafileformat_$"))))


# -- positions and caching ----------------------------------------------------------------------


def test_positions() -> None:
    q = "SELECT COUNT(o) FROM Dataset o JOIN o.type t WHERE NOT t.name LIKE 'a%' LIMIT 0, 1"
    tree = parse_query(q)
    assert tree.items[0].pos == q.index("COUNT")
    assert tree.items[0].args[0].pos == q.index("o)")
    assert tree.from_[0].pos == q.index("Dataset")
    assert tree.from_[1].pos == q.index("JOIN")
    assert tree.from_[1].path.pos == q.index("o.type")
    assert isinstance(tree.where, Not)
    assert tree.where.pos == q.index("NOT")
    assert tree.where.expr.pos == q.index("t.name")
    assert tree.where.expr.pattern.pos == q.index("'a%'")


def test_parse_is_cached() -> None:
    q = "SELECT o FROM Dataset o WHERE o.name = 'cached'"
    assert parse_query(q) is parse_query(q)
    assert parse_get("Dataset d") is parse_get("Dataset d")
