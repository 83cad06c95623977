"""The query corpus: queries and their exact expected results on the fixture catalogue
(:mod:`.fixture`), grouped by where they come from.

Expected results are worked out from the fixture rows and the reference (never copied from
what Cairn answers). Conventions they rely on, from the reference and the compiler's
documented choices: without ORDER BY, results come in id order (DISTINCT values in the order
of their first row); ties of an ORDER BY are broken by ids; NULLs sort first ascending and
last descending; JPQL path navigation (``df.datafileFormat.name``) is an inner join; a join
without DISTINCT repeats the entity once per joined row.

Groups: ``ref`` (reference §1.2 examples), ``concise`` (§1.5), ``get`` (§1.6), ``pyicat``
(every shape python-icat 1.7's Query emits), ``dg`` (the 88 datagateway-api queries,
adapted to the fixture), ``op`` (operators and conditions), ``fn`` (functions and
arithmetic), ``agg`` (aggregates, GROUP BY, HAVING, DISTINCT), ``order`` (ORDER BY and
LIMIT), ``lit`` (literals and coercion), ``path`` (joins, paths and result shapes),
``inc`` (INCLUDE), ``err`` (errors), ``typ`` (kinds of values, NULL, database differences).
"""

from __future__ import annotations

from tests.integration.query_corpus.cases import Corpus, E, ents

C = Corpus()
ok, bad, get = C.ok, C.bad, C.get

DS_NAMES = ["dataset 1", "dataset 2", "dataset 3", "dataset 30", "dataset 31", "fred",
            "a fred", "another fred"]
TEST_TITLE = "Test data for Python ICAT on DataGateway API"
INV_ALL = "datasets, investigationUsers, keywords, parameters.type, type"


def inv_names(*ids: int) -> list[str]:
    return [f"INVESTIGATION {i}" for i in ids]


def ds_names(*ids: int) -> list[str]:
    return [DS_NAMES[i - 1] for i in ids]


# == ref: every example of reference §1.2 =====================================================
G = "ref"
ok(G, "SELECT ds FROM Dataset ds INCLUDE ds.datafiles.parameters, ds.parameters",
   ents("Dataset", *range(1, 9), inc="datafiles.parameters, parameters"))
ok(G, "SELECT ds.name FROM Dataset ds WHERE ds.type.name = 'GS' ORDER BY ds.name LIMIT 0, 10",
   ["another fred", "dataset 1", "dataset 3", "dataset 31"])
ok(G, "SELECT ds.id FROM Dataset ds, ds.parameters dp1, ds.parameters dp2 WHERE "
      "dp1.type.name = 'A1' AND dp1.numericValue > 50 AND dp2.type.name = 'A2' AND "
      "dp2.numericValue > 20", [1])
ok(G, "SELECT i FROM Investigation i, i.investigationUsers ius WHERE ius.user.name = :user",
   ents("Investigation", 1, 3))
ok(G, "SELECT i FROM Investigation i WHERE i.createTime > {ts 2011-01-15 00:00:00}",
   ents("Investigation", 2, 3, 6))
ok(G, "SELECT pt FROM ParameterType pt WHERE pt.valueType = "
      "org.icatproject.ParameterValueType.DATE_AND_TIME", ents("ParameterType", 7))
ok(G, "SELECT u FROM User u JOIN u.userGroups ug JOIN ug.grouping g "
      "WHERE g.name = 'FacilityAdmins'", ents("User", 4, 5))
ok(G, "SELECT df.dataset.name, AVG(df.fileSize) FROM Datafile df GROUP BY df.dataset "
      "HAVING AVG(df.fileSize) > 4 ORDER BY AVG(df.fileSize)",
   [["another fred", 8.0], ["fred", 15.0], ["dataset 3", 50.0], ["dataset 2", 200.0],
    ["dataset 31", 600.0], ["dataset 30", 4000.0], ["dataset 1", 510136782 / 7]])
ok(G, "SELECT ds FROM Dataset ds WHERE (SELECT COUNT(df) FROM ds.datafiles df) = 2",
   ents("Dataset", 2, 3, 6))
ok(G, "SELECT f.name FROM Facility f WHERE f.name LIKE 'Test$_$_Facility' ESCAPE '$'",
   ["Test__Facility"])
ok(G, "SELECT COUNT(DISTINCT i.facility) FROM Investigation i", [2])
ok(G, "SELECT null, MAX(i.id) FROM Investigation i", [[None, 6]])
ok(G, "select investigation from Investigation investigation, "
      "investigation.investigationUsers as investigationUser, investigationUser.user as user "
      "where user.name = :user ORDER BY investigation.startDate desc limit 0, 50 "
      "include investigation.investigationInstruments.instrument",
   ents("Investigation", 3, 1, inc="investigationInstruments.instrument"))
# python-icat's two examples in §1.2: as written, and with values the fixture has
ok(G, "SELECT o FROM Investigation o JOIN o.investigationUsers AS iu JOIN iu.user AS s1 "
      "WHERE o.name = 'x' AND s1.name = 'db/jdoe' ORDER BY o.name "
      "INCLUDE o.facility, o.investigationUsers AS iu, iu.user LIMIT 0, 10", [])
ok(G, "SELECT o FROM Investigation o JOIN o.investigationUsers AS iu JOIN iu.user AS s1 "
      "WHERE o.name = 'INVESTIGATION 5' AND s1.name = 'db/jdoe' ORDER BY o.name "
      "INCLUDE o.facility, o.investigationUsers AS iu, iu.user LIMIT 0, 10",
   ents("Investigation", 5, inc="facility, investigationUsers.user"))
ok(G, "SELECT COUNT(DISTINCT(o)) FROM Dataset o JOIN o.investigation AS i WHERE i.id = 42", [0])
ok(G, "SELECT COUNT(DISTINCT(o)) FROM Dataset o JOIN o.investigation AS i WHERE i.id = 1", [2])

# == concise: §1.5 ============================================================================
G = "concise"
ok(G, "Dataset", ents("Dataset", *range(1, 9)))
ok(G, "Dataset.name", DS_NAMES)
ok(G, "DISTINCT Dataset.name", DS_NAMES)
ok(G, "DISTINCT DatasetType.name", ["GS", "GQ", "RAW"])
ok(G, "COUNT(Dataset)", [8])
ok(G, "MAX(Dataset.id) [id > 0]", [8])
ok(G, "Dataset.id ORDER BY id", list(range(1, 9)))
ok(G, "3,5 Dataset.id ORDER BY id", [4, 5, 6, 7, 8])
ok(G, ",1 Datafile.name ORDER BY name", ["Datafile 10060"])
ok(G, "2, Dataset.id ORDER BY id DESC", [6, 5, 4, 3, 2, 1])
ok(G, "Dataset.id [type.name IN ('GS','GQ')]", [1, 2, 3, 5, 6, 8])
ok(G, "Investigation <-> InvestigationUser <-> User [name = :user]",
   ents("Investigation", 1, 3))
ok(G, "Dataset.id ORDER BY id [type.name IN ('GS','GQ')] <-> Investigation [id BETWEEN 1 AND 9]",
   [1, 2, 3, 5, 6, 8])
ok(G, "Dataset.id ORDER BY id [type.name IN ('GS','GQ')] <-> Investigation [id BETWEEN 1 AND 2]",
   [1, 2, 3])
ok(G, "Investigation [createTime > {ts 2011-01-15 00:00:00}]", ents("Investigation", 2, 3, 6))
ok(G, "Dataset [complete = TRUE]", ents("Dataset", 1, 3, 6, 8))
ok(G, "Facility.id [name = 'Test port facility']", [2])
ok(G, "Rule [bean='Investigation'] <-> Grouping [name='root']", ents("Rule", 1))
ok(G, "Dataset.id [name like 'fred%'] <-> DatasetParameter[type.name = 'TIMESTAMP']", [])
ok(G, "Dataset.id [name like 'dataset%'] <-> DatasetParameter[type.name = 'TIMESTAMP']", [5])
ok(G, "Dataset INCLUDE Datafile, DatasetParameter, Investigation",
   ents("Dataset", *range(1, 9), inc="datafiles, parameters, investigation"))
bad(G, "Dataset INCLUDE Investigation, Facility, Instrument", "BAD_PARAMETER",
    "Unable to reach Instrument in list of INCLUDES.")
bad(G, "Dataset INCLUDE 1, Datafile [name = 'Wibble']", "BAD_PARAMETER",
    "Expected token from types [ENTSEP] at token , in INCLUDE 1 < , > Datafile [ ")
ok(G, "Dataset INCLUDE 1 [name = 'dataset 2']",
   ents("Dataset", 2, inc="investigation, sample, type"))
ok(G, "Dataset INCLUDE Investigation, Facility [id = 8]",
   ents("Dataset", 8, inc="investigation.facility"))
ok(G, "Dataset ORDER BY name DESC INCLUDE Datafile [investigation.id = 4]",
   ents("Dataset", 6, 7, inc="datafiles"))
ok(G, "COUNT(Dataset.name) [type.name = 'GS'] <-> Datafile[name = 'Datafile 1071']", [1])
ok(G, "ParameterType.name [valueType = DATE_AND_TIME]", ["TIMESTAMP"])
ok(G, "Investigation.name [startDate BETWEEN {ts 2019-01-01 00:00:00} AND "
      "{ts 2019-12-31 23:59:59}]", inv_names(1, 2))
ok(G, "Dataset.name [NOT (complete = TRUE) AND (id < 3 OR id > 6)]", ["dataset 2", "a fred"])
ok(G, "AVG(Datafile.fileSize) [dataset.name = 'dataset 2']", [200.0])
ok(G, "SUM(Datafile.fileSize) <-> Dataset [name = 'dataset 31']", [1800])
ok(G, "MIN(Investigation.startDate)", ["2007-06-30T08:30:58.000Z"])
ok(G, "Investigation.name [id = 3] <-> Dataset <-> Datafile [name = 'Datafile 5b']",
   inv_names(3))
ok(G, "Datafile.name ['Datafile 9' = name]", ["Datafile 9"])
ok(G, "Investigation.title [visitId IN ('2')]", [TEST_TITLE])
bad(G, "Dataset <-> Shift", "BAD_PARAMETER", "Unable to reach Shift")
bad(G, "Dataset [name = name]", "BAD_PARAMETER")
bad(G, "Dataset [bogus = 1]", "BAD_PARAMETER", "bogus")

# == get: §1.6 (REST GET with id) =============================================================
G = "get"
get(G, "Dataset", 1, E("Dataset", 1))
get(G, "Dataset INCLUDE 1", 2, E("Dataset", 2, "investigation, sample, type"))
get(G, "Dataset INCLUDE 1", 1, E("Dataset", 1, "investigation, sample, type"))
get(G, "Investigation INCLUDE 1", 1, E("Investigation", 1, "facility, type"))
get(G, "Dataset ds INCLUDE ds.datafiles df, df.datafileFormat", 3,
    E("Dataset", 3, "datafiles.datafileFormat"))
get(G, "Facility INCLUDE InvestigationType", 1, E("Facility", 1, "investigationTypes"))
get(G, "Dataset AS ds INCLUDE ds.investigation", 6, E("Dataset", 6, "investigation"))
get(G, "Investigation i INCLUDE i.investigationUsers iu, iu.user", 2,
    E("Investigation", 2, "investigationUsers.user"))
get(G, "Dataset INCLUDE Datafile, DatasetParameter", 5,
    E("Dataset", 5, "datafiles, parameters"))
get(G, "Dataset ds", 4, E("Dataset", 4))
get(G, "Dataset ds INCLUDE ds.datafiles df, df.dataset", 2, E("Dataset", 2, "datafiles.dataset"))
get(G, "Dataset", 75, error="NO_SUCH_OBJECT_FOUND", message="Dataset[id:75] not found.")
get(G, "Dataset ds INCLUDE ds.datafiles extra more", 1, error="BAD_PARAMETER")
get(G, "Dataset ds extra", 1, error="BAD_PARAMETER")
get(G, "Nonsense", 1, error="BAD_PARAMETER", message="Nonsense is not an ICAT entity")
get(G, "Dataset ds INCLUDE ds.bogus", 1, error="BAD_PARAMETER",
    message="Problem with INCLUDE clause: bogus is not a field of Dataset")

# == pyicat: the shapes python-icat 1.7's Query emits =========================================
G = "pyicat"
ok(G, "SELECT o FROM Investigation o", ents("Investigation", *range(1, 7)))
ok(G, "SELECT o.name FROM Facility o", ["LILS", "Test port facility", "Test__Facility"])
ok(G, "SELECT i.name FROM Dataset o JOIN o.investigation AS i WHERE o.name = 'dataset 30'",
   inv_names(2))
ok(G, "SELECT o.name, i.name FROM Dataset o JOIN o.investigation AS i WHERE i.id = 2",
   [["dataset 3", "INVESTIGATION 2"], ["dataset 30", "INVESTIGATION 2"]])
ok(G, "SELECT DISTINCT(o.name) FROM DatasetType o", ["GS", "GQ", "RAW"])
ok(G, "SELECT COUNT(o) FROM Datafile o", [18])
ok(G, "SELECT COUNT(o) FROM Investigation o JOIN o.investigationUsers AS iu "
      "JOIN iu.user AS s1 WHERE s1.name LIKE 'simple/%'", [5])
ok(G, "SELECT COUNT(DISTINCT(o)) FROM Investigation o JOIN o.investigationUsers AS iu "
      "JOIN iu.user AS s1 WHERE s1.name LIKE 'simple/%'", [3])
ok(G, "SELECT MIN(o.fileSize) FROM Datafile o", [8])
ok(G, "SELECT MAX(o.fileSize) FROM Datafile o", [200000000])
ok(G, "SELECT AVG(o.fileSize) FROM Datafile o", [510143070 / 17])
ok(G, "SELECT SUM(o.fileSize) FROM Datafile o", [510143070])
ok(G, "SELECT AVG(DISTINCT(o.numericValue)) FROM DatasetParameter o", [59.75])
ok(G, "SELECT SUM(DISTINCT(o.numericValue)) FROM DatasetParameter o", [597.5])
ok(G, "SELECT SUM(o.numericValue) FROM DatasetParameter o", [622.5])
ok(G, "SELECT MAX(o.startDate) FROM Investigation o", ["2020-01-10T00:00:00.000Z"])
ok(G, "SELECT COUNT(o.name) FROM Investigation o", [6])
ok(G, "SELECT COUNT(DISTINCT(o.visitId)) FROM Investigation o", [2])
ok(G, "SELECT DISTINCT(o) FROM Investigation o JOIN o.investigationUsers AS iu "
      "WHERE iu.role = 'CI'", ents("Investigation", 1, 2, 3))
ok(G, "SELECT DISTINCT o.name, o.visitId FROM Investigation o JOIN o.facility AS f "
      "WHERE f.id = 1",
   [["INVESTIGATION 1", "1"], ["INVESTIGATION 2", "1"], ["INVESTIGATION 3", "2"],
    ["INVESTIGATION 4", "1"]])
ok(G, "SELECT o FROM Dataset o JOIN o.investigation AS i JOIN i.facility AS s1 "
      "WHERE o.complete = True AND s1.name = 'LILS' AND i.name = 'INVESTIGATION 2'",
   ents("Dataset", 3))
ok(G, "SELECT o FROM Dataset o JOIN o.investigation AS i JOIN i.facility AS s1 "
      "ORDER BY s1.name, i.name, i.visitId, o.name", ents("Dataset", 1, 2, 3, 4, 5, 7, 6, 8))
ok(G, "SELECT o.name FROM Investigation o LEFT OUTER JOIN o.investigationInstruments AS ii "
      "WHERE ii.id IS NULL", inv_names(6))
ok(G, "SELECT o.name FROM Instrument o INNER JOIN o.investigationInstruments AS ii "
      "INNER JOIN ii.investigation AS s1 WHERE s1.name = 'INVESTIGATION 2'",
   ["INSTRUMENT 1", "INSTRUMENT 2"])
ok(G, "SELECT o.name FROM Investigation o LEFT JOIN o.investigationInstruments AS ii "
      "LEFT JOIN ii.instrument AS s1 WHERE s1.name = 'INSTRUMENT 10'", inv_names(3, 4))
ok(G, "SELECT o FROM Datafile o WHERE o.fileSize >= 500 AND o.fileSize <= 1000",
   ents("Datafile", 3, 5, 13, 14, 15))
ok(G, "SELECT o.name FROM Investigation o WHERE o.id IN (1, 3)", inv_names(1, 3))
ok(G, "SELECT o FROM Datafile o JOIN o.dataset AS ds JOIN ds.investigation AS i "
      "WHERE ds.name = 'dataset 3' AND i.name = 'INVESTIGATION 2'", ents("Datafile", 10, 11))
ok(G, "SELECT o FROM Investigation o WHERE UPPER(o.title) like UPPER('%WATER%')",
   ents("Investigation", 1))
ok(G, "SELECT o.name FROM User o WHERE LOWER(o.fullName) = 'joe bloggs'", ["simple/jbloggs"])
ok(G, "SELECT o.name FROM Dataset o ORDER BY LENGTH(o.name) DESC",
   ["another fred", "dataset 30", "dataset 31", "dataset 1", "dataset 2", "dataset 3",
    "a fred", "fred"])
ok(G, "SELECT o FROM Dataset o WHERE o.id = 2 "
      "INCLUDE o.datafiles AS s1, s1.parameters, o.investigation AS i, i.facility",
   ents("Dataset", 2, inc="datafiles.parameters, investigation.facility"))
ok(G, "SELECT o FROM Dataset o WHERE o.id = 1 INCLUDE o.investigation, o.sample, o.type",
   ents("Dataset", 1, inc="investigation, sample, type"))
ok(G, "SELECT o FROM Investigation o WHERE o.id = 1 "
      "INCLUDE o.facility, o.investigationUsers AS iu, iu.user",
   ents("Investigation", 1, inc="facility, investigationUsers.user"))
ok(G, "SELECT o FROM Dataset o ORDER BY o.name LIMIT 2, 3", ents("Dataset", 1, 2, 3))
ok(G, "SELECT o FROM Rule o JOIN o.grouping AS g WHERE g IS NOT NULL", ents("Rule", 1, 2, 3))
ok(G, "SELECT o FROM Rule o LEFT JOIN o.grouping AS g WHERE g IS NULL", ents("Rule", 4))
ok(G, "SELECT g.name FROM Rule o JOIN o.grouping AS g WHERE o.what = 'Dataset'", ["root"])
ok(G, "SELECT o FROM Dataset o JOIN o.parameters AS p JOIN p.type AS pt "
      "WHERE p.numericValue > 50.0 AND pt.name = 'A1' INCLUDE o.parameters AS p, p.type",
   ents("Dataset", 1, 2, inc="parameters.type"))
ok(G, "SELECT o.fullName FROM User o JOIN o.investigationUsers AS iu "
      "JOIN iu.investigation AS s1 WHERE iu.role = 'PI' AND s1.id = 2 ORDER BY o.name",
   ["Joe Bloggs"])
ok(G, "SELECT o.name, o.fileSize FROM Datafile o JOIN o.dataset AS ds "
      "WHERE ds.name = 'dataset 31' ORDER BY o.fileSize DESC LIMIT 0, 2",
   [["Datafile 5c", 700], ["Datafile 5b", 600]])
ok(G, "SELECT o FROM Investigation o JOIN o.investigationInstruments AS ii "
      "JOIN ii.instrument AS s1 JOIN s1.instrumentScientists AS s2 JOIN s2.user AS s3 "
      "WHERE s3.name = 'db/sgriffin'", ents("Investigation", 3, 4))

# == dg: the 88 queries datagateway-api sends (reference/data/datagateway-api-queries.jsonl) ===
G = "dg"
JB = "simple/jbloggs"
ok(G, f"SELECT COUNT(o) FROM Investigation o JOIN o.investigationUsers AS iu "
      f"JOIN iu.user AS s1 WHERE s1.name = '{JB}'", [3], dg=1)
ok(G, f"SELECT o FROM Investigation o JOIN o.investigationUsers AS iu JOIN iu.user AS s1 "
      f"WHERE s1.name = '{JB}' ORDER BY o.startDate DESC, o.id ASC "
      f"INCLUDE o.dataCollectionInvestigations AS s1, s1.dataCollection AS s2, "
      f"s2.dataPublications, o.investigationFacilityCycles AS s3, s3.facilityCycle, "
      f"o.investigationInstruments AS ii, ii.instrument LIMIT 0, 50",
   ents("Investigation", 3, 2, 1,
        inc="dataCollectionInvestigations.dataCollection.dataPublications, "
            "investigationFacilityCycles.facilityCycle, investigationInstruments.instrument"),
   dg=2)
ok(G, f"SELECT DISTINCT(o.id) FROM Investigation o JOIN o.investigationUsers AS iu "
      f"JOIN iu.user AS s1 WHERE s1.name = '{JB}'", [1, 2, 3], dg=3)
ok(G, "SELECT o FROM Investigation o WHERE o.startDate >= '2019-01-01 00:00:00' AND "
      "o.startDate <= '2019-12-31 23:59:59' AND UPPER(o.title) like UPPER('%neutron%') "
      "ORDER BY o.title ASC, o.id ASC LIMIT 0, 50", ents("Investigation", 1), dg=4)
ok(G, "SELECT o FROM Instrument o ORDER BY o.fullName ASC, o.id ASC LIMIT 0, 50",
   ents("Instrument", 3, 1, 2, 4), dg=5)
FC_ROWS = {2: [2, "2019/2", "2019-07-01T00:00:00.000Z", "2019-12-31T00:00:00.000Z"],
           3: [3, "2020/1", "2020-01-01T00:00:00.000Z", "2020-06-30T00:00:00.000Z"]}
ok(G, "SELECT DISTINCT o.id, o.name, o.startDate, o.endDate FROM FacilityCycle o "
      "JOIN o.investigationFacilityCycles AS s1 JOIN s1.investigation AS s2 "
      "JOIN s2.investigationInstruments AS s3 JOIN s3.instrument AS s4 WHERE s4.id = '3' "
      "ORDER BY o.startDate DESC, o.id ASC LIMIT 0, 50", [FC_ROWS[3], FC_ROWS[2]], dg=6)
ok(G, "SELECT DISTINCT o.id, o.name, o.startDate, o.endDate FROM FacilityCycle o "
      "JOIN o.investigationFacilityCycles AS s1 JOIN s1.investigation AS s2 "
      "JOIN s2.investigationInstruments AS s3 JOIN s3.instrument AS s4 WHERE s4.id = '3'",
   [FC_ROWS[2], FC_ROWS[3]], dg=7)
ok(G, "SELECT COUNT(o) FROM Investigation o JOIN o.investigationFacilityCycles AS s1 "
      "JOIN s1.facilityCycle AS s2 JOIN o.investigationInstruments AS ii "
      "JOIN ii.instrument AS s3 WHERE s2.id = '1' AND s3.id = '1'", [1],
   dg=8, subst=(("'7'", "'1'"), ("'3'", "'1'")))
ok(G, "SELECT o FROM Investigation o JOIN o.investigationFacilityCycles AS s1 "
      "JOIN s1.facilityCycle AS s2 JOIN o.investigationInstruments AS ii "
      "JOIN ii.instrument AS s3 WHERE s2.id = '1' AND s3.id = '1' "
      "ORDER BY o.title ASC, o.id ASC INCLUDE o.dataCollectionInvestigations AS s1, "
      "s1.dataCollection AS s2, s2.dataPublications AS s3, s3.type, "
      "o.investigationInstruments AS ii, ii.instrument, o.investigationUsers AS iu, "
      "iu.user LIMIT 0, 50",
   ents("Investigation", 1,
        inc="dataCollectionInvestigations.dataCollection.dataPublications.type, "
            "investigationInstruments.instrument, investigationUsers.user"),
   dg=9, subst=(("'7'", "'1'"), ("'3'", "'1'")))
ok(G, "SELECT COUNT(o) FROM Dataset o JOIN o.investigation AS i WHERE i.id = '1'", [2],
   dg=10, subst=(("'42'", "'1'"),))
ok(G, "SELECT o FROM Dataset o JOIN o.investigation AS i WHERE i.id = '1' "
      "ORDER BY o.createTime DESC, o.id ASC LIMIT 0, 50", ents("Dataset", 2, 1),
   dg=11, subst=(("'42'", "'1'"),))
ok(G, "SELECT o FROM Datafile o JOIN o.dataset AS ds WHERE ds.id = '1' "
      "ORDER BY o.name ASC, o.id ASC LIMIT 5, 5", ents("Datafile", 5, 6),
   dg=12, subst=(("'101'", "'1'"), ("LIMIT 50, 50", "LIMIT 5, 5")))
ok(G, "SELECT COUNT(o) FROM Datafile o JOIN o.dataset AS ds WHERE ds.id = '1'", [7],
   dg=13, subst=(("'101'", "'1'"),))
ok(G, "SELECT DISTINCT(o.id) FROM Datafile o JOIN o.dataset AS ds WHERE ds.id = '1'",
   list(range(1, 8)), dg=14, subst=(("'101'", "'1'"),))
ok(G, "SELECT o FROM Investigation o WHERE o.id = '1' INCLUDE o.datasets, "
      "o.investigationInstruments AS ii, ii.instrument, o.investigationUsers AS iu, iu.user, "
      "o.publications, o.samples",
   ents("Investigation", 1, inc="datasets, investigationInstruments.instrument, "
                                 "investigationUsers.user, publications, samples"),
   dg=15, subst=(("'42'", "'1'"),))
ok(G, "SELECT o FROM Dataset o WHERE o.id = '3' INCLUDE o.type LIMIT 0, 1",
   ents("Dataset", 3, inc="type"), dg=16, subst=(("'101'", "'3'"),))
ok(G, f"SELECT DISTINCT(o.role) FROM InvestigationUser o JOIN o.user AS u "
      f"WHERE u.name = '{JB}'", ["CI", "PI"], dg=17)
DLS = [["INVESTIGATION 1", "Neutron scattering of water"], ["INVESTIGATION 2", TEST_TITLE],
       ["INVESTIGATION 3", TEST_TITLE], ["INVESTIGATION 4", "X-ray study of nature"],
       ["INVESTIGATION 5", "Muon work"], ["INVESTIGATION 6", "Empty"]]
ok(G, "SELECT DISTINCT o.name, o.title FROM Investigation o "
      "ORDER BY o.title ASC, o.name ASC LIMIT 0, 50",
   [DLS[5], DLS[4], DLS[0], DLS[1], DLS[2], DLS[3]], dg=18)
ok(G, "SELECT DISTINCT o.name, o.title FROM Investigation o", DLS, dg=19)
ok(G, "SELECT o FROM Investigation o WHERE o.id = '1'", ents("Investigation", 1),
   dg=20, subst=(("'42'", "'1'"),))
ok(G, "SELECT o FROM Datafile o JOIN o.datafileFormat AS dff WHERE dff.name in "
      "('nexus', 'raw') AND o.doi IS NULL AND o.name not like '%tmp%' LIMIT 0, 10",
   ents("Datafile", 2, 3, 4, 6, 8, 9, 12, 13, 14, 15), dg=21)
ok(G, "SELECT o FROM Investigation o LEFT JOIN o.investigationInstruments AS ii "
      "LEFT JOIN ii.instrument AS s1 ORDER BY s1.fullName ASC, o.id ASC LIMIT 0, 50",
   ents("Investigation", 3, 4, 6, 1, 2, 2, 5), dg=22)
ok(G, "SELECT o FROM Dataset o LIMIT 0, 2", ents("Dataset", 1, 2), dg=23)
ok(G, "SELECT o FROM Investigation o WHERE o.name like '%INVESTIGATION%' "
      "INCLUDE o.datasets, o.keywords, o.type LIMIT 0, 5",
   ents("Investigation", 1, 2, 3, 4, 5, inc="datasets, keywords, type"), dg=24)
ok(G, "SELECT COUNT(o) FROM Investigation o WHERE o.name like '%INVESTIGATION%'", [6], dg=25)
DOI = "0-449-78690-0"
DF_OF_DOI = f"SELECT o FROM Datafile o JOIN o.dataset AS ds WHERE ds.doi = '{DOI}'"
COUNT_OF_DOI = f"SELECT COUNT(o) FROM Datafile o JOIN o.dataset AS ds WHERE ds.doi = '{DOI}'"
ok(G, f"{DF_OF_DOI} LIMIT 0, 3", ents("Datafile", 1, 2, 3), dg=26)
ok(G, f"SELECT o FROM Dataset o WHERE o.doi = '{DOI}'", ents("Dataset", 1), dg=27)
ok(G, "SELECT o FROM Investigation o JOIN o.parameters AS p JOIN p.type AS pt WHERE "
      "(o.name like '%INV%' or o.summary like '%light%') INCLUDE o.keywords, "
      "o.parameters AS p, p.type, o.type LIMIT 0, 5",
   ents("Investigation", 1, 2, 3, inc="keywords, parameters.type, type"), dg=28)
LIKE_TEST = f"o.title like '%{TEST_TITLE}%'"
ok(G, f"SELECT COUNT(o) FROM Investigation o WHERE {LIKE_TEST}", [2], dg=29)
ok(G, f"SELECT DISTINCT(o.startDate) FROM Investigation o WHERE {LIKE_TEST}",
   ["2019-07-15T08:30:58.000Z", "2020-01-10T00:00:00.000Z"], dg=30)
ok(G, "SELECT COUNT(o) FROM Investigation o WHERE o.title like '%This filter should cause 0 "
      "results to be found for testing purposes...%'", [0], dg=31)
ok(G, "SELECT o FROM Investigation o WHERE o.name like "
      "'%Test Data for API Testing, Data Creation%'", [], dg=32)
ok(G, "SELECT o FROM Investigation o WHERE o.title = 'My New Investigation with Title'", [],
   dg=33)
ok(G, "SELECT o FROM Investigation o ORDER BY o.id DESC LIMIT 0, 1", ents("Investigation", 6),
   dg=34)
ok(G, f"SELECT o FROM Investigation o WHERE {LIKE_TEST} LIMIT 0, 1", ents("Investigation", 2),
   dg=35)
NOT_FOUND_TITLE = "o.title = 'This filter should cause a 404 for testing purposes...'"
ok(G, f"SELECT o FROM Investigation o WHERE {NOT_FOUND_TITLE} LIMIT 0, 1", [], dg=36)
ok(G, f"SELECT o FROM Investigation o WHERE {LIKE_TEST}", ents("Investigation", 2, 3), dg=37)
ok(G, f"SELECT o FROM Investigation o WHERE {NOT_FOUND_TITLE}", [], dg=38)
ok(G, f"SELECT DISTINCT(o.title) FROM Investigation o WHERE {LIKE_TEST} ORDER BY o.title ASC",
   [TEST_TITLE], dg=39)
ok(G, f"SELECT o FROM Investigation o WHERE {LIKE_TEST} ORDER BY o.id ASC LIMIT 1, 2",
   ents("Investigation", 3), dg=40)
ok(G, f"SELECT o FROM Investigation o WHERE {LIKE_TEST} INCLUDE o.facility",
   ents("Investigation", 2, 3, inc="facility"), dg=41)
ok(G, f"SELECT DISTINCT(o.title) FROM Investigation o WHERE {LIKE_TEST}", [TEST_TITLE], dg=42)
ok(G, f"SELECT DISTINCT o.title, o.name FROM Investigation o WHERE {LIKE_TEST}",
   [[TEST_TITLE, "INVESTIGATION 2"], [TEST_TITLE, "INVESTIGATION 3"]], dg=43)
ok(G, "SELECT DISTINCT o.title, o.name FROM Investigation o WHERE o.title like "
      "'%Unknown testing data for DG API%'", [], dg=44)
bad(G, "SELECT o FROM Investigation o LIMIT -1, 10000", "VALIDATION", dg=45)
ok(G, "SELECT d.investigation.id FROM Dataset d WHERE d.id=-1", [], dg=46)
ok(G, f"{COUNT_OF_DOI} AND o.name = 'Datafile 1071'", [1], dg=47)
ok(G, f"{COUNT_OF_DOI} AND o.name not like '%Datafile 9%'", [5], dg=48)
ok(G, f"{COUNT_OF_DOI} AND o.fileSize > '155061161'", [2], dg=49)
ok(G, f"{COUNT_OF_DOI} AND o.name = 'Unknown Datafile'", [0], dg=50)
ok(G, "SELECT COUNT(o) FROM Dataset o WHERE o.name = 'dataset 30'", [1],
   dg=51, subst=(("DATASET 30", "dataset 30"),))
ok(G, "SELECT COUNT(o) FROM Investigation o WHERE o.name = 'INVESTIGATION 2'", [1], dg=52)
ok(G, "SELECT COUNT(o) FROM Instrument o WHERE o.name = 'INSTRUMENT 12'", [1], dg=53)
ok(G, "SELECT COUNT(o) FROM Dataset o WHERE o.name like '%dataset 3%'", [3],
   dg=54, subst=(("DATASET 3", "dataset 3"),))
ok(G, "SELECT COUNT(o) FROM Investigation o WHERE UPPER(o.summary) like UPPER('%nature%')",
   [2], dg=55)
ok(G, "SELECT COUNT(o) FROM Instrument o WHERE UPPER(o.name) not like UPPER('%INSTRUMENT 5%')",
   [4], dg=56)
ok(G, "SELECT COUNT(o) FROM Instrument o JOIN o.facility AS f WHERE f.name like '%LILS%'",
   [3], dg=57)
ok(G, "SELECT COUNT(o) FROM Dataset o", [8], dg=58)
ok(G, "SELECT COUNT(o) FROM Investigation o", [6], dg=59)
ok(G, f"{DF_OF_DOI} LIMIT 0, 2", ents("Datafile", 1, 2), dg=60)
ok(G, f"{DF_OF_DOI} LIMIT 5, 1", ents("Datafile", 6), dg=61)
ok(G, f"{DF_OF_DOI} AND o.name = 'Datafile 1547' LIMIT 0, 1", ents("Datafile", 2), dg=62)
ok(G, f"{DF_OF_DOI} AND UPPER(o.name) not like UPPER('%Datafile 10060%') LIMIT 0, 1",
   ents("Datafile", 1), dg=63)
ok(G, f"{DF_OF_DOI} AND o.fileSize > '155061161' LIMIT 0, 1", ents("Datafile", 2), dg=64)
ok(G, f"{DF_OF_DOI} AND o.fileSize > '50000000000' LIMIT 0, 1", [], dg=65)
ok(G, f"{DF_OF_DOI} INCLUDE o.dataset LIMIT 0, 1", ents("Datafile", 1, inc="dataset"), dg=66)
IDOI = "o.doi = '0-417-77631-4'"
ok(G, f"SELECT o FROM Investigation o WHERE {IDOI} INCLUDE o.keywords, o.type",
   ents("Investigation", 1, inc="keywords, type"), dg=67)
ok(G, "SELECT o FROM Instrument o WHERE o.id = '2' INCLUDE o.facility",
   ents("Instrument", 2, inc="facility"), dg=68)
ok(G, f"SELECT o FROM Dataset o WHERE o.doi = '{DOI}' "
      "INCLUDE o.investigation AS i, i.keywords, i.type",
   ents("Dataset", 1, inc="investigation.keywords, investigation.type"), dg=69)
ok(G, f"SELECT o FROM Investigation o WHERE {IDOI} INCLUDE o.datasets, o.keywords, o.type",
   ents("Investigation", 1, inc="datasets, keywords, type"), dg=70)
ok(G, f"SELECT o FROM Dataset o WHERE o.doi = '{DOI}' INCLUDE o.datafiles, "
      "o.investigation AS i, i.keywords, i.type, o.parameters AS p, p.type, o.sample AS s1, "
      "s1.parameters AS s2, s2.type",
   ents("Dataset", 1, inc="datafiles, investigation.keywords, investigation.type, "
                          "parameters.type, sample.parameters.type"), dg=71)
ok(G, f"SELECT o FROM Investigation o WHERE {IDOI} INCLUDE o.datasets, o.investigationUsers, "
      "o.keywords, o.parameters AS p, p.type, o.type",
   ents("Investigation", 1, inc=INV_ALL), dg=72)
ok(G, "SELECT o FROM Dataset o WHERE o.doi = 'my 404 test pid'", [], dg=73)
ok(G, "SELECT o FROM Investigation o INCLUDE o.keywords, o.type LIMIT 0, 1",
   ents("Investigation", 1, inc="keywords, type"), dg=74)
ok(G, "SELECT o FROM Instrument o INCLUDE o.facility LIMIT 0, 2",
   ents("Instrument", 1, 2, inc="facility"), dg=75)
ok(G, "SELECT o FROM Dataset o LIMIT 5, 1", ents("Dataset", 6), dg=76)
ok(G, "SELECT o FROM Instrument o WHERE o.name = 'INSTRUMENT 10' INCLUDE o.facility "
      "LIMIT 0, 2", ents("Instrument", 3, inc="facility"), dg=77)
ok(G, "SELECT o FROM Dataset o WHERE o.createTime > '2007 06 30 08:30:58 00:00' LIMIT 0, 1",
   ents("Dataset", 1), dg=78)
ok(G, "SELECT o FROM Investigation o INCLUDE o.datasets, o.investigationUsers, o.keywords, "
      "o.parameters AS p, p.type, o.type LIMIT 0, 1",
   ents("Investigation", 1, inc=INV_ALL), dg=79)
ok(G, "SELECT o FROM Dataset o LIMIT 0, 1", ents("Dataset", 1), dg=80)
ok(G, "SELECT o FROM Dataset o LIMIT 1, 0", [], dg=81)
DS_PARAMS = "SELECT o FROM Dataset o JOIN o.parameters AS p JOIN p.type AS pt WHERE "
ok(G, DS_PARAMS + "(pt.name = 'PARAMETERTYPE 1' and p.numericValue between '0' and '20' and "
                  "pt.units = 'unit 1') INCLUDE o.parameters AS p, p.type",
   ents("Dataset", 1, inc="parameters.type"), dg=82)
ok(G, DS_PARAMS + "(pt.name = 'PARAMETERTYPE 39' and p.numericValue < '800000' and "
                  "pt.units = 'unit 39') INCLUDE o.parameters AS p, p.type",
   ents("Dataset", 2, inc="parameters.type"), dg=83)
ok(G, DS_PARAMS + "((pt.name = 'sample_state' and p.stringValue = 'solid') or "
                  "(pt.name = 'PARAMETERTYPE 39' and p.numericValue = '44')) "
                  "INCLUDE o.parameters AS p, p.type",
   ents("Dataset", 2, 4, inc="parameters.type"), dg=84)
ok(G, "SELECT o FROM Dataset o JOIN o.datafiles AS s1 WHERE (s1.name like '%Datafile 25%') "
      "INCLUDE o.datafiles LIMIT 0, 1", ents("Dataset", 1, inc="datafiles"), dg=85)
ok(G, "SELECT o FROM Investigation o JOIN o.investigationUsers AS iu JOIN iu.user AS s1 "
      "JOIN o.type AS t WHERE iu.role = 'PI' AND s1.fullName = 'Sarah Griffin' AND "
      "t.name = 'INVESTIGATIONTYPE 2' INCLUDE o.investigationUsers AS iu, iu.user, "
      "o.keywords, o.type",
   ents("Investigation", 4, inc="investigationUsers.user, keywords, type"), dg=86)
ok(G, "SELECT o FROM Investigation o JOIN o.parameters AS p JOIN p.type AS pt WHERE "
      "(pt.name = 'PARAMETERTYPE 2' and p.numericValue between '23' and '55' and "
      "pt.units = 'unit 2') INCLUDE o.keywords, o.parameters AS p, p.type, o.type",
   ents("Investigation", 1, 2, inc="keywords, parameters.type, type"), dg=87)
ok(G, "SELECT o FROM Investigation o JOIN o.datasets AS s1 JOIN s1.parameters AS s2 "
      "JOIN s2.type AS s3 WHERE (s3.name = 'PARAMETERTYPE 2' and s2.numericValue between "
      "'15' and '22' and s3.units = 'unit 2') INCLUDE o.datasets AS s1, s1.parameters AS s2, "
      "s2.type, o.keywords, o.type",
   ents("Investigation", 3, inc="datasets.parameters.type, keywords, type"), dg=88)
# datagateway-api shapes from reference §3 that the capture file does not hold
ok(G, "SELECT o FROM Investigation o WHERE o.fileSize > '1000' AND o.title between 'S' and 'U'",
   ents("Investigation", 2))
ok(G, "SELECT d.investigation.id FROM Dataset d WHERE d.id=3", [2])
ok(G, "SELECT iu.user.name FROM InvestigationUser iu WHERE iu.investigation.id=2",
   ["simple/jbloggs", "db/sgriffin"])
ok(G, "SELECT s.user.name FROM InstrumentScientist s LEFT JOIN "
      "s.instrument.investigationInstruments ii WHERE ii.investigation.id=3", ["db/sgriffin"])
ok(G, "SELECT dp.publicationDate FROM DataPublication dp JOIN dp.content c "
      "JOIN c.dataCollectionDatasets dcd WHERE dcd.dataset.id=1", ["2020-01-01T00:00:00.000Z"])
ok(G, "SELECT DISTINCT(o) FROM FacilityCycle o JOIN o.facility AS f JOIN f.instruments AS s1 "
      "JOIN f.investigations AS s2 JOIN s2.investigationInstruments AS s3 "
      "JOIN s3.instrument AS s4 WHERE s1.id = '3' AND s4.id = '3' AND "
      "s2.startDate >= o.startDate AND s2.startDate <= o.endDate "
      "ORDER BY o.startDate DESC LIMIT 0, 50", ents("FacilityCycle", 3))
ok(G, "SELECT COUNT(DISTINCT(o)) FROM FacilityCycle o JOIN o.facility AS f "
      "JOIN f.instruments AS s1 JOIN f.investigations AS s2 "
      "JOIN s2.investigationInstruments AS s3 JOIN s3.instrument AS s4 WHERE s1.id = '1' "
      "AND s4.id = '1' AND s2.startDate >= o.startDate AND s2.startDate <= o.endDate", [2])
ok(G, "SELECT DISTINCT(o) FROM Investigation o JOIN o.facility AS f "
      "JOIN f.facilityCycles AS s1 JOIN f.instruments AS s2 "
      "JOIN o.investigationInstruments AS ii JOIN ii.instrument AS s3 "
      "WHERE s1.endDate >= o.startDate AND s1.id = '2' AND s1.startDate <= o.startDate "
      "AND s2.id = '1' AND s3.id = '1' ORDER BY o.title ASC LIMIT 0, 50",
   ents("Investigation", 2))
ok(G, "SELECT o FROM Investigation o WHERE o.id = '5' INCLUDE o.facility, o.type",
   ents("Investigation", 5, inc="facility, type"))

# == op: operators and conditions =============================================================
G = "op"
DF_IDS = "SELECT df.id FROM Datafile df WHERE "
ok(G, DF_IDS + "df.fileSize = 1000", [3])
ok(G, DF_IDS + "df.fileSize <> 1000", [1, 2, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17, 18])
ok(G, "SELECT i.name FROM Investigation i WHERE i.visitId != '1'", inv_names(3))
ok(G, DF_IDS + "df.fileSize < 100", [10, 16, 17, 18])
ok(G, DF_IDS + "df.fileSize <= 100", [8, 10, 16, 17, 18])
ok(G, DF_IDS + "df.fileSize > 10000", [1, 2, 6, 7])
ok(G, DF_IDS + "df.fileSize >= 10060", [1, 2, 6, 7])
ok(G, DF_IDS + "100 > df.fileSize", [10, 16, 17, 18])
ok(G, "SELECT i.name FROM Investigation i WHERE i.endDate > i.startDate", inv_names(1, 2))
ok(G, "SELECT df.name FROM Datafile df WHERE df.name LIKE 'Datafile 2_'",
   ["Datafile 25", "Datafile 2a", "Datafile 2b"])
ok(G, "SELECT df.name FROM Datafile df WHERE df.name LIKE 'Datafile _a'",
   ["Datafile 2a", "Datafile 4a", "Datafile 5a", "Datafile 8a"])
ok(G, "SELECT ds.name FROM Dataset ds WHERE ds.name NOT LIKE 'dataset%'",
   ["fred", "a fred", "another fred"])
ok(G, "SELECT df.name FROM Datafile df WHERE df.name LIKE '%6!_%' ESCAPE '!'",
   ["Datafile 6_a", "Datafile 6_b"])
ok(G, "SELECT df.name FROM Datafile df WHERE df.name NOT LIKE 'Datafile %' ESCAPE '!'", [])
ok(G, "SELECT ds.id FROM Dataset ds WHERE ds.name IN ('fred', 'a fred')", [6, 7])
ok(G, "SELECT ds.id FROM Dataset ds WHERE ds.type.name NOT IN ('GS', 'GQ')", [4, 7])
ok(G, "SELECT i.name FROM Investigation i WHERE i.id IN (2, 4, 99)", inv_names(2, 4))
ok(G, "SELECT i.name FROM Investigation i WHERE i.fileSize IN (NULL)", [])
ok(G, "SELECT i.name FROM Investigation i WHERE i.fileSize NOT IN (NULL)", [])
ok(G, "SELECT i.name FROM Investigation i WHERE i.id IN (SELECT ds.investigation.id FROM "
      "Dataset ds WHERE ds.complete = TRUE)", inv_names(1, 2, 4, 5))
ok(G, "SELECT i.name FROM Investigation i WHERE i.id NOT IN "
      "(SELECT ds.investigation.id FROM Dataset ds)", inv_names(6))
ok(G, "SELECT u.name FROM User u WHERE u IN "
      "(SELECT iu.user FROM InvestigationUser iu WHERE iu.role = 'PI')",
   ["simple/root", "simple/jbloggs", "db/jdoe", "db/sgriffin"])
ok(G, DF_IDS + "df.fileSize BETWEEN 500 AND 1000", [3, 5, 13, 14, 15])
ok(G, DF_IDS + "df.dataset.id = 1 AND df.fileSize NOT BETWEEN 1000 AND 200000000", [5])
ok(G, "SELECT i.name FROM Investigation i WHERE i.title BETWEEN 'M' AND 'O'", inv_names(1, 5))
ok(G, "SELECT i.name FROM Investigation i WHERE i.startDate IS NULL", inv_names(5, 6))
ok(G, "SELECT i.name FROM Investigation i WHERE i.endDate IS NOT NULL", inv_names(1, 2))
ok(G, "SELECT ds.name FROM Dataset ds WHERE ds.sample IS NULL", ds_names(2, 3, 4, 5, 6, 7, 8))
ok(G, "SELECT ds.name FROM Dataset ds WHERE ds.sample IS NOT NULL", ds_names(1))
ok(G, "SELECT df.name FROM Datafile df WHERE df.datafileFormat IS NULL",
   ["Datafile 3b", "Datafile 8a"])
ok(G, "SELECT ds.name FROM Dataset ds WHERE ds.datafiles IS EMPTY", ["a fred"])
ok(G, "SELECT i.name FROM Investigation i WHERE i.keywords IS NOT EMPTY", inv_names(1, 2, 4))
ok(G, "SELECT i.name FROM Investigation i, Keyword k WHERE k.name = 'xray' AND "
      "k MEMBER OF i.keywords", inv_names(4))
ok(G, "SELECT i.name FROM Investigation i, Keyword k WHERE k.name = 'water' AND "
      "k MEMBER i.keywords", inv_names(1))
ok(G, "SELECT ds.name FROM Dataset ds, Datafile df WHERE df.name = 'Datafile 3b' AND "
      "df NOT MEMBER OF ds.datafiles", ds_names(1, 2, 4, 5, 6, 7, 8))
ok(G, "SELECT i.name FROM Investigation i WHERE EXISTS (SELECT ds FROM Dataset ds WHERE "
      "ds.investigation = i AND ds.complete = FALSE)", inv_names(1, 2, 3, 4))
ok(G, "SELECT i.name FROM Investigation i WHERE NOT EXISTS (SELECT ds FROM Dataset ds "
      "WHERE ds.investigation = i)", inv_names(6))
ok(G, "SELECT i.name FROM Investigation i WHERE (SELECT COUNT(ds) FROM i.datasets ds) > 1",
   inv_names(1, 2, 4))
ok(G, "SELECT df.name FROM Datafile df WHERE df.fileSize = "
      "(SELECT MAX(f.fileSize) FROM Datafile f)", ["Datafile 1547"])
ok(G, "SELECT df.name FROM Datafile df WHERE df.fileSize > (SELECT AVG(f.fileSize) FROM "
      "Datafile f WHERE f.dataset = df.dataset) AND df.dataset.id = 5", ["Datafile 5c"])
ok(G, "SELECT ds.id FROM Dataset ds WHERE ds.complete = TRUE OR ds.type.name = 'RAW' AND "
      "ds.investigation.id = 2", [1, 3, 4, 6, 8])
ok(G, "SELECT ds.id FROM Dataset ds WHERE (ds.complete = TRUE OR ds.type.name = 'RAW') AND "
      "ds.investigation.id = 2", [3, 4])
ok(G, "SELECT ds.id FROM Dataset ds WHERE NOT ds.complete = TRUE", [2, 4, 5, 7])
ok(G, "SELECT ds.id FROM Dataset ds WHERE NOT (ds.complete = TRUE OR ds.id > 4)", [2, 4])
ok(G, "SELECT COUNT(ds) FROM Dataset ds WHERE ds.complete = FALSE", [4])
ok(G, "SELECT ds.id FROM Dataset ds WHERE ds.complete <> TRUE AND ds.id < 5", [2, 4])
ok(G, "SELECT ds.name FROM Dataset ds, Investigation i WHERE ds.investigation = i AND "
      "i.name = 'INVESTIGATION 4'", ["fred", "a fred"])
ok(G, "SELECT ds.name FROM Dataset ds WHERE ds.investigation.facility.name = "
      "'Test port facility'", ["another fred"])
ok(G, "SELECT p.id FROM DatasetParameter p WHERE p.numericValue BETWEEN p.dataset.id * 10 "
      "AND 100", [1, 2, 3, 5, 7, 9])
ok(G, "SELECT i.name FROM Investigation i WHERE i.startDate BETWEEN "
      "{ts 2019-01-01 00:00:00} AND {ts 2019-12-31 23:59:59}", inv_names(1, 2))
ok(G, "SELECT i.name FROM Investigation i WHERE i.startDate NOT BETWEEN "
      "{ts 2019-01-01 00:00:00} AND {ts 2019-12-31 23:59:59}", inv_names(3, 4))
ok(G, "SELECT ds.id FROM Dataset ds WHERE ds.investigation IN "
      "(SELECT i FROM Investigation i WHERE i.visitId = '2')", [5])
ok(G, "SELECT ds.id FROM Dataset ds WHERE ds.investigation.keywords IS EMPTY", [5, 8])
ok(G, "SELECT ds.id FROM Dataset ds WHERE NOT NOT (ds.id = 3)", [3])
ok(G, "SELECT ds.id FROM Dataset ds WHERE ds.name LIKE '%!%%' ESCAPE '!'", [])

# == fn: functions and arithmetic =============================================================
G = "fn"
ok(G, "SELECT df.name FROM Datafile df WHERE df.fileSize * 2 + 1 = 201", ["Datafile 2a"])
ok(G, DF_IDS + "df.fileSize - 10 < 0", [18])
ok(G, "SELECT df.fileSize / 8 FROM Datafile df WHERE df.id = 17", [2.5])
ok(G, "SELECT -df.fileSize FROM Datafile df WHERE df.id = 16", [-10])
ok(G, "SELECT p.numericValue * 2 FROM DatasetParameter p WHERE p.id = 7", [31.0])
ok(G, DF_IDS + "df.fileSize = 2 + 3 * 6", [17])
ok(G, DF_IDS + "df.fileSize = (2 + 3) * 4", [17])
ok(G, "SELECT df.fileSize + df.id FROM Datafile df WHERE df.dataset.id = 6", [26, 37])
ok(G, "SELECT CONCAT(i.name, '/', i.visitId) FROM Investigation i WHERE i.id = 3",
   ["INVESTIGATION 3/2"])
ok(G, "SELECT u.name FROM User u WHERE CONCAT(u.givenName, u.familyName) = 'JoeBloggs'",
   ["simple/jbloggs"])
ok(G, "SELECT SUBSTRING(ds.name, 1, 4) FROM Dataset ds WHERE ds.id = 7", ["a fr"])
ok(G, "SELECT SUBSTRING(ds.name, 9) FROM Dataset ds WHERE ds.id = 4", ["30"])
ok(G, "SELECT ds.name FROM Dataset ds WHERE SUBSTRING(ds.name, 3, 2) = 'ed'", ["fred"])
ok(G, "SELECT TRIM(BOTH 'd' FROM ds.name) FROM Dataset ds WHERE ds.id = 6", ["fre"])
ok(G, "SELECT TRIM(LEADING 'a' FROM ds.name) FROM Dataset ds WHERE ds.id = 7", [" fred"])
ok(G, "SELECT TRIM(TRAILING 'd' FROM ds.name) FROM Dataset ds WHERE ds.id = 7", ["a fre"])
ok(G, "SELECT TRIM(CONCAT('  ', ds.name)) FROM Dataset ds WHERE ds.id = 6", ["fred"])
ok(G, "SELECT TRIM(TRAILING FROM CONCAT(ds.name, '  ')) FROM Dataset ds WHERE ds.id = 6",
   ["fred"])
ok(G, "SELECT UPPER(ds.name) FROM Dataset ds WHERE ds.id = 7", ["A FRED"])
ok(G, "SELECT LOWER(f.name) FROM Facility f WHERE f.id = 1", ["lils"])
ok(G, "SELECT LENGTH(i.title) FROM Investigation i WHERE i.id = 5", [9])
ok(G, "SELECT ds.name FROM Dataset ds WHERE LENGTH(ds.name) < 7", ["fred", "a fred"])
ok(G, "SELECT LOCATE('fred', ds.name) FROM Dataset ds WHERE ds.id > 5", [1, 3, 9])
ok(G, "SELECT LOCATE('a', ds.name, 3) FROM Dataset ds WHERE ds.id = 1", [4])
ok(G, "SELECT LOCATE('z', ds.name) FROM Dataset ds WHERE ds.id = 1", [0])
ok(G, "SELECT ABS(p.numericValue - 50) FROM DatasetParameter p WHERE p.id = 4", [40.0])
ok(G, "SELECT ABS(-df.fileSize) FROM Datafile df WHERE df.id = 18", [8])
ok(G, "SELECT SQRT(df.fileSize) FROM Datafile df WHERE df.id = 5", [30.0])
ok(G, "SELECT MOD(df.fileSize, 7) FROM Datafile df WHERE df.id = 17", [6])
ok(G, DF_IDS + "MOD(df.fileSize, 3) = 1", [1, 3, 4, 7, 8, 12, 15, 16])
ok(G, "SELECT ds.name, SIZE(ds.datafiles) FROM Dataset ds WHERE ds.investigation.id = 4",
   [["fred", 2], ["a fred", 0]])
ok(G, "SELECT ds.id FROM Dataset ds WHERE SIZE(ds.parameters) >= 3", [1, 2, 3])
ok(G, "SELECT ds.id, SIZE(ds.investigation.datasets) FROM Dataset ds WHERE ds.id IN (1, 5)",
   [[1, 2], [5, 1]])
ok(G, "SELECT i.name FROM Investigation i WHERE i.releaseDate < CURRENT_TIMESTAMP",
   inv_names(1))
ok(G, "SELECT COUNT(i) FROM Investigation i WHERE i.startDate < CURRENT_DATE", [4])
ok(G, "SELECT COUNT(i) FROM Investigation i WHERE i.startDate > CURRENT_TIMESTAMP", [0])

# == agg: aggregates, GROUP BY, HAVING, DISTINCT ==============================================
G = "agg"
ok(G, "SELECT COUNT(DISTINCT df.datafileFormat) FROM Datafile df", [3])
ok(G, "SELECT MIN(ds.name), MAX(ds.name) FROM Dataset ds", [["a fred", "fred"]])
ok(G, "SELECT MIN(i.startDate) FROM Investigation i", ["2007-06-30T08:30:58.000Z"])
ok(G, "SELECT SUM(p.numericValue) FROM DatasetParameter p WHERE p.type.name = 'A1'", [155.0])
ok(G, "SELECT AVG(i.fileSize) FROM Investigation i", [1562.5])
ok(G, "SELECT MAX(p.numericValue) FROM DatasetParameter p", [300.0])
ok(G, "SELECT COUNT(i) FROM Investigation i WHERE i.id > 99", [0])
ok(G, "SELECT MAX(i.id) FROM Investigation i WHERE i.id > 99", [None])
ok(G, "SELECT SUM(i.fileSize) FROM Investigation i WHERE i.id > 99", [None])
ok(G, "SELECT COUNT(ds.sample) FROM Dataset ds", [1])
ok(G, "SELECT ds.type.name, COUNT(ds) FROM Dataset ds GROUP BY ds.type.name "
      "ORDER BY ds.type.name", [["GQ", 2], ["GS", 4], ["RAW", 2]])
ok(G, "SELECT ds.investigation.name, COUNT(df) FROM Datafile df JOIN df.dataset ds "
      "GROUP BY ds.investigation ORDER BY COUNT(df) DESC, ds.investigation.name",
   [["INVESTIGATION 1", 9], ["INVESTIGATION 2", 3], ["INVESTIGATION 3", 3],
    ["INVESTIGATION 4", 2], ["INVESTIGATION 5", 1]])
ok(G, "SELECT ds.investigation.id, COUNT(ds) FROM Dataset ds GROUP BY ds.investigation "
      "HAVING COUNT(ds) > 1 ORDER BY ds.investigation.id", [[1, 2], [2, 2], [4, 2]])
ok(G, "SELECT df.datafileFormat.name, SUM(df.fileSize) FROM Datafile df "
      "GROUP BY df.datafileFormat.name ORDER BY df.datafileFormat.name",
   [["nexus", 510127022], ["raw", 5000], ["text", 11040]])
ok(G, "SELECT i.visitId, COUNT(i) FROM Investigation i GROUP BY i.visitId "
      "HAVING COUNT(i) < 3 ORDER BY i.visitId", [["2", 1]])
ok(G, "SELECT i.facility.name, MAX(i.startDate), MIN(i.fileSize) FROM Investigation i "
      "GROUP BY i.facility.name ORDER BY i.facility.name",
   [["LILS", "2020-01-10T00:00:00.000Z", 250], ["Test port facility", None, 0]])
ok(G, "SELECT iu.role, COUNT(DISTINCT iu.user) FROM InvestigationUser iu GROUP BY iu.role "
      "ORDER BY iu.role", [["CI", 3], ["PI", 4]])
ok(G, "SELECT DISTINCT i FROM Investigation i JOIN i.datasets ds WHERE ds.complete = FALSE",
   ents("Investigation", 1, 2, 3, 4))
ok(G, "SELECT COUNT(DISTINCT(o)) FROM Investigation o JOIN o.investigationUsers AS iu "
      "WHERE iu.role = 'CI'", [3])
ok(G, "SELECT COUNT(o) FROM Investigation o JOIN o.investigationUsers AS iu "
      "WHERE iu.role = 'CI'", [4])
ok(G, "SELECT DISTINCT ds.investigation.name FROM Dataset ds "
      "ORDER BY ds.investigation.name DESC", inv_names(5, 4, 3, 2, 1))
ok(G, "SELECT DISTINCT df.datafileFormat.name FROM Datafile df", ["nexus", "raw", "text"])
ok(G, "SELECT DISTINCT ds.complete, ds.type.name FROM Dataset ds "
      "ORDER BY ds.type.name, ds.complete DESC",
   [[True, "GQ"], [False, "GQ"], [True, "GS"], [False, "GS"], [False, "RAW"]])
ok(G, "SELECT DISTINCT iu.role FROM InvestigationUser iu ORDER BY iu.role DESC", ["PI", "CI"])
ok(G, "SELECT COUNT(ds) FROM Dataset ds HAVING COUNT(ds) > 1", [8])
ok(G, "SELECT p.type.name, COUNT(p) FROM DatasetParameter p GROUP BY p.type.name "
      "HAVING COUNT(p) >= 2 ORDER BY COUNT(p) DESC, p.type.name",
   [["A1", 3], ["A2", 3], ["PARAMETERTYPE 1", 2]])
ok(G, "SELECT DISTINCT ds.type FROM Dataset ds", ents("DatasetType", 1, 2, 3, 4))
ok(G, "SELECT COUNT(ds) FROM Dataset ds HAVING COUNT(ds) > 10", [])
ok(G, "SELECT COUNT(ds) FROM Dataset ds GROUP BY ds.investigation ORDER BY ds.investigation",
   [2, 2, 1, 2, 1])
ok(G, "SELECT DISTINCT(o.name) FROM Investigation o JOIN o.datasets ds "
      "ORDER BY ds.name DESC", inv_names(4, 3, 2, 1, 5))
# An aggregated query shows only what is one per group (grouping.py): grouped values, columns
# of a grouped entity, aggregates and constants; the rest is refused on every backend.
ok(G, "SELECT i.name, COUNT(ds) FROM Investigation i JOIN i.datasets ds GROUP BY i "
      "ORDER BY i.id", [["INVESTIGATION 1", 2], ["INVESTIGATION 2", 2],
                        ["INVESTIGATION 3", 1], ["INVESTIGATION 4", 2], ["INVESTIGATION 5", 1]])
ok(G, "SELECT ds.investigation.name, COUNT(ds) FROM Dataset ds GROUP BY ds.investigation "
      "HAVING ds.investigation.name LIKE '%1'", [["INVESTIGATION 1", 2]])
ok(G, "SELECT COUNT(ds), 'x', 2 + 3 FROM Dataset ds", [[8, "x", 5]])
ok(G, "SELECT COUNT(ds) FROM Dataset ds HAVING MAX(ds.id) > 7", [8])
bad(G, "SELECT f FROM Facility f HAVING COUNT(f) > 1", "BAD_PARAMETER",
    "HAVING needs a GROUP BY clause, or an aggregate function")
bad(G, "SELECT 1 FROM Dataset ds HAVING 1 = 1", "BAD_PARAMETER", "HAVING needs a GROUP BY")
bad(G, "SELECT ds.name FROM Dataset ds GROUP BY ds.investigation", "BAD_PARAMETER",
    "ds.name in the SELECT clause must be in the GROUP BY clause")
bad(G, "SELECT ds.investigation.id, COUNT(ds) FROM Dataset ds GROUP BY ds.investigation "
       "ORDER BY ds.name", "BAD_PARAMETER", "ds.name in the ORDER BY clause")
bad(G, "SELECT ds.investigation.id FROM Dataset ds GROUP BY ds.investigation "
       "HAVING ds.name = 'x'", "BAD_PARAMETER", "in the HAVING clause")
bad(G, "SELECT ds FROM Dataset ds ORDER BY COUNT(ds)", "BAD_PARAMETER",
    "ds in the SELECT clause")
bad(G, "SELECT COUNT(ds), ds.name FROM Dataset ds", "BAD_PARAMETER",
    "ds.name in the SELECT clause")
bad(G, "SELECT i.id FROM Investigation i WHERE i.id IN (SELECT ds.investigation.id "
       "FROM Dataset ds GROUP BY ds.type HAVING COUNT(ds) > 1)", "BAD_PARAMETER",
    "ds.investigation.id in the SELECT clause")
bad(G, "SELECT i.id FROM Investigation i WHERE EXISTS (SELECT COUNT(ds) FROM i.datasets ds "
       "HAVING ds.name = 'x')", "BAD_PARAMETER", "in the HAVING clause")

# == order: ORDER BY and LIMIT ================================================================
G = "order"
ok(G, "SELECT ds.name FROM Dataset ds WHERE ds.investigation.id < 3 ORDER BY ds.name DESC",
   ["dataset 30", "dataset 3", "dataset 2", "dataset 1"])
ok(G, "SELECT df.id FROM Datafile df WHERE df.dataset.id IN (2, 5) "
      "ORDER BY df.dataset.id DESC, df.fileSize ASC", [13, 14, 15, 8, 9])
ok(G, "SELECT df.id FROM Datafile df WHERE df.dataset.id = 3 ORDER BY df.fileSize", [11, 10])
ok(G, "SELECT df.id FROM Datafile df WHERE df.dataset.id = 3 ORDER BY df.fileSize DESC",
   [10, 11])
ok(G, "SELECT ds.name FROM Dataset ds ORDER BY ds.investigation DESC, ds.id",
   ds_names(8, 6, 7, 5, 3, 4, 1, 2))
ok(G, "SELECT pt.name FROM ParameterType pt WHERE pt.facility.id = 1 "
      "ORDER BY pt.valueType, pt.id",
   ["TIMESTAMP", "PARAMETERTYPE 1", "PARAMETERTYPE 2", "PARAMETERTYPE 39", "A1", "A2",
    "sample_state"])
ok(G, "SELECT i.name FROM Investigation i ORDER BY i.startDate DESC",
   inv_names(3, 2, 1, 4, 5, 6))
ok(G, "SELECT i.name FROM Investigation i ORDER BY i.startDate", inv_names(5, 6, 4, 1, 2, 3))
ok(G, "SELECT i.name FROM Investigation i ORDER BY i.facility.name DESC, i.title",
   inv_names(6, 5, 1, 2, 3, 4))
ok(G, "SELECT ds.name FROM Dataset ds ORDER BY ds.complete, ds.name",
   ["a fred", "dataset 2", "dataset 30", "dataset 31", "another fred", "dataset 1",
    "dataset 3", "fred"])
LEFT_INSTRUMENTS = ("SELECT i.name, s.name FROM Investigation i LEFT JOIN "
                    "i.investigationInstruments ii LEFT JOIN ii.instrument s ")
ok(G, LEFT_INSTRUMENTS + "ORDER BY s.name, i.id",
   [["INVESTIGATION 6", None], ["INVESTIGATION 1", "INSTRUMENT 1"],
    ["INVESTIGATION 2", "INSTRUMENT 1"], ["INVESTIGATION 3", "INSTRUMENT 10"],
    ["INVESTIGATION 4", "INSTRUMENT 10"], ["INVESTIGATION 5", "INSTRUMENT 12"],
    ["INVESTIGATION 2", "INSTRUMENT 2"]])
ok(G, LEFT_INSTRUMENTS + "ORDER BY s.name DESC, i.id",
   [["INVESTIGATION 2", "INSTRUMENT 2"], ["INVESTIGATION 5", "INSTRUMENT 12"],
    ["INVESTIGATION 3", "INSTRUMENT 10"], ["INVESTIGATION 4", "INSTRUMENT 10"],
    ["INVESTIGATION 1", "INSTRUMENT 1"], ["INVESTIGATION 2", "INSTRUMENT 1"],
    ["INVESTIGATION 6", None]])
ok(G, "SELECT ii.id FROM Investigation i LEFT JOIN i.investigationInstruments ii "
      "ORDER BY ii.id DESC", [6, 5, 4, 3, 2, 1, None])
ok(G, "SELECT df.id FROM Datafile df WHERE df.dataset.id = 5 ORDER BY df.fileSize * -1",
   [15, 14, 13])
ok(G, "SELECT o FROM Investigation o JOIN o.investigationUsers iu WHERE iu.user.name LIKE "
      "'simple/%' INCLUDE o.facility LIMIT 1, 3", ents("Investigation", 1, 2, 3, inc="facility"))
ok(G, "SELECT ds.id FROM Dataset ds ORDER BY SIZE(ds.datafiles) DESC, ds.id DESC",
   [1, 5, 6, 3, 2, 8, 4, 7])
ok(G, "SELECT ds.id FROM Dataset ds LIMIT 0, 3", [1, 2, 3])
ok(G, "SELECT ds.id FROM Dataset ds LIMIT 6, *", [7, 8])
ok(G, "SELECT ds.id FROM Dataset ds LIMIT 100, 5", [])
ok(G, "SELECT ds.id FROM Dataset ds LIMIT 0, 0", [])
ok(G, "SELECT ds.id FROM Dataset ds WHERE ds.id = 2 LIMIT 1, 10", [])
ok(G, "SELECT ds FROM Dataset ds WHERE ds.id = 6 LIMIT 0, 5 INCLUDE ds.datafiles",
   ents("Dataset", 6, inc="datafiles"))
ok(G, "SELECT df FROM Datafile df", ents("Datafile", 1, 2, 3), total=18)
bad(G, "SELECT ds.id FROM Dataset ds LIMIT 0, -1", "VALIDATION")
bad(G, "SELECT ds.id FROM Dataset ds LIMIT -5, *", "VALIDATION")

# == lit: literals and their coercion =========================================================
G = "lit"
ok(G, "select DS.name FROM Dataset ds where Ds.id = 2", ["dataset 2"])
ok(G, "SeLeCt CoUnT(x) fRoM Datafile X wHeRe x.fileSize > 10000", [4])
ok(G, "SELECT u.fullName FROM User u WHERE u.name = :user", ["Root"])
ok(G, "SELECT s.name FROM Study s WHERE s.status = org.icatproject.StudyStatus.COMPLETE",
   ["study-1"])
ok(G, "SELECT s.name FROM Study s WHERE s.status <> org.icatproject.StudyStatus.COMPLETE",
   ["study-2"])
ok(G, "SELECT s.name FROM Study s WHERE s.status = 'NEW'", ["study-2"])
ok(G, "SELECT s.name FROM Study s WHERE s.status IS NULL", ["study-3"])
ok(G, "SELECT s.status FROM Study s", ["COMPLETE", "NEW", None])
ok(G, "SELECT pt.valueType FROM ParameterType pt WHERE pt.id IN (1, 4, 7)",
   ["NUMERIC", "STRING", "DATE_AND_TIME"])
ok(G, "SELECT pt.name FROM ParameterType pt WHERE pt.valueType IN "
      "(org.icatproject.ParameterValueType.STRING, "
      "org.icatproject.ParameterValueType.DATE_AND_TIME)", ["sample_state", "TIMESTAMP"])
ok(G, "SELECT p.id FROM DatasetParameter p WHERE p.numericValue = '15.5'", [7])
ok(G, "SELECT p.id FROM DatasetParameter p WHERE p.numericValue = 15.5", [7])
ok(G, "SELECT p.id FROM DatasetParameter p WHERE p.numericValue > 1.5E2", [13])
ok(G, "SELECT p.id FROM DatasetParameter p WHERE p.numericValue = 44", [9])
ok(G, "SELECT p.id FROM DatasetParameter p WHERE p.numericValue BETWEEN '10' AND '15.5'",
   [4, 7])
ok(G, "SELECT i.name FROM Investigation i WHERE i.id IN ('2', '4')", inv_names(2, 4))
ok(G, "SELECT i.name FROM Investigation i WHERE i.visitId = 2", inv_names(3))
ok(G, "SELECT o.id FROM Dataset o WHERE o.complete = 'True'", [1, 3, 6, 8])
ok(G, "SELECT i.name FROM Investigation i WHERE i.startDate = '2019-03-01 10:00:00'",
   inv_names(1))
ok(G, "SELECT i.name FROM Investigation i WHERE i.startDate = '2019-03-01T10:00:00.000Z'",
   inv_names(1))
ok(G, "SELECT i.name FROM Investigation i WHERE i.startDate = '2019-03-01T11:00:00+01:00'",
   inv_names(1))
ok(G, "SELECT i.name FROM Investigation i WHERE i.startDate >= '2019-07-15'", inv_names(2, 3))
ok(G, "SELECT o.id FROM Dataset o WHERE o.createTime > '2007 07 01 00:00:00 00:00'",
   [1, 2, 3, 4, 5, 7, 8])
ok(G, "SELECT i.name FROM Investigation i WHERE i.startDate BETWEEN '2019-01-01 00:00:00' "
      "AND '2019-12-31 23:59:59'", inv_names(1, 2))
ok(G, "SELECT i.name FROM Investigation i WHERE i.startDate < {ts 2019-03-01 10:00:01} AND "
      "i.startDate > {ts 2019-03-01 09:59:59}", inv_names(1))
ok(G, "SELECT p.id FROM DatasetParameter p WHERE p.dateTimeValue = "
      "{ts 2019-05-05 12:00:00}", [11])
ok(G, "SELECT ds.name FROM Dataset ds WHERE ds.name = 'it''s'", [])
ok(G, "SELECT CONCAT(ds.name, '''') FROM Dataset ds WHERE ds.id = 6", ["fred'"])
ok(G, "SELECT ds.id FROM Dataset ds WHERE ds.complete = TRUE AND TRUE = TRUE", [1, 3, 6, 8])
ok(G, "SELECT ds.id FROM Dataset ds WHERE ds.id = -1", [])
ok(G, "SELECT p.numericValue FROM DatasetParameter p WHERE p.numericValue > -1.5 AND "
      "p.dataset.id = 3", [40.0, 25.0, 25.0])
ok(G, "SELECT\tds.name\nFROM Dataset ds\r\nWHERE ds.id = 7", ["a fred"])
bad(G, "SELECT o FROM Investigation o WHERE o.id = 'abc'", "BAD_PARAMETER", "'abc'")
bad(G, "SELECT o FROM Investigation o WHERE o.startDate > 'someday'", "BAD_PARAMETER",
    "'someday'")
bad(G, "SELECT o FROM Investigation o WHERE o.startDate > 2019", "BAD_PARAMETER")
bad(G, "SELECT i FROM Investigation i WHERE i.createTime > {ts 2011-01-15}", "BAD_PARAMETER",
    "is not of form {ts yyyy-mm-dd hh:mm:ss}.")
bad(G, "SELECT pt FROM ParameterType pt WHERE pt.valueType = "
       "org.icatproject.StudyStatus.NEW", "BAD_PARAMETER")
bad(G, "SELECT pt FROM ParameterType pt WHERE pt.valueType = "
       "org.icatproject.ParameterValueType.NOPE", "BAD_PARAMETER", "NOPE")
bad(G, "SELECT ds FROM Dataset ds WHERE ds.id = :other", "BAD_PARAMETER")
bad(G, "SELECT ds FROM Dataset ds WHERE ds.complete = 'maybe'", "BAD_PARAMETER", "'maybe'")

# == path: joins, paths and result shapes =====================================================
G = "path"
ok(G, "SELECT f.investigations FROM Facility f WHERE f.id = 2", ents("Investigation", 5, 6))
ok(G, "SELECT ds.datafiles.name FROM Dataset ds WHERE ds.id = 2",
   ["Datafile 2a", "Datafile 2b"])
ok(G, "SELECT ds.investigation FROM Dataset ds WHERE ds.type.name = 'RAW'",
   ents("Investigation", 2, 4))
ok(G, "SELECT DISTINCT ds.investigation FROM Dataset ds WHERE ds.complete = FALSE",
   ents("Investigation", 1, 2, 3, 4))
ok(G, "SELECT df.datafileFormat.name FROM Datafile df WHERE df.dataset.id = 3", ["text"])
ok(G, "SELECT df.name, f.name FROM Datafile df LEFT JOIN df.datafileFormat f "
      "WHERE df.dataset.id = 3", [["Datafile 3a.tmp", "text"], ["Datafile 3b", None]])
ok(G, "SELECT df.name, f.name FROM Datafile df LEFT OUTER JOIN df.datafileFormat AS f "
      "WHERE df.dataset.id = 8", [["Datafile 8a", None]])
ok(G, "SELECT df.name, f.name FROM Datafile df INNER JOIN df.datafileFormat f "
      "WHERE df.dataset.id = 8", [])
ok(G, "SELECT i.name FROM Investigation i, IN(i.keywords) k WHERE k.name = 'water'",
   inv_names(1))
ok(G, "SELECT COUNT(f) FROM Facility f, DatasetType t WHERE t.facility = f", [4])
ok(G, "SELECT COUNT(f) FROM Facility f, DatasetType t", [12])
ok(G, "SELECT ds.name, ds.investigation FROM Dataset ds WHERE ds.id = 8",
   [["another fred", E("Investigation", 5)]])
ok(G, "SELECT i.name, i.fileSize FROM Investigation i WHERE i.id > 4",
   [["INVESTIGATION 5", 0], ["INVESTIGATION 6", None]])
ok(G, "SELECT ds.complete FROM Dataset ds WHERE ds.investigation.id = 1", [True, False])
ok(G, "SELECT p.numericValue FROM DatasetParameter p WHERE p.dataset.id = 3",
   [40.0, 25.0, 25.0])
ok(G, "SELECT p.dateTimeValue FROM DatasetParameter p WHERE p.type.name = 'TIMESTAMP'",
   ["2019-05-05T12:00:00.000Z"])
ok(G, "SELECT f.daysUntilRelease FROM Facility f", [30, 10, None])
# icat.server fails with INTERNAL when the first of several scalars is null (a quirk not copied)
ok(G, "SELECT i.fileSize FROM Investigation i ORDER BY i.fileSize",
   [None, None, 0, 250, 1000, 5000])
ok(G, "SELECT ii FROM Investigation i LEFT JOIN i.investigationInstruments ii WHERE i.id > 4",
   [None, E("InvestigationInstrument", 5)])
ok(G, "SELECT p.error, p.numericValue FROM DatasetParameter p WHERE p.dataset.id = 8",
   [[0.5, 300.0]])
ok(G, "SELECT i.id, i.name, i.startDate, i.fileSize, i.doi FROM Investigation i WHERE i.id = 1",
   [[1, "INVESTIGATION 1", "2019-03-01T10:00:00.000Z", 1000, "0-417-77631-4"]])
ok(G, "SELECT ds.investigation.facility.name FROM Dataset ds WHERE ds.id > 6",
   ["LILS", "Test port facility"])
ok(G, "SELECT ug.user.name, ug.grouping.name FROM UserGroup ug",
   [["db/sgriffin", "FacilityAdmins"], ["db/lib", "FacilityAdmins"], ["simple/root", "root"]])
ok(G, "SELECT r.what, r.crudFlags FROM Rule r WHERE r.grouping.name = 'root'",
   [["Investigation", "R"], ["Dataset", "CRUD"]])
ok(G, "SELECT sp.stringValue, sp.sample.investigation.name FROM SampleParameter sp",
   [["solid", "INVESTIGATION 1"]])
ok(G, "SELECT si.study.name FROM StudyInvestigation si WHERE si.investigation.id = 2",
   ["study-1"])
ok(G, "SELECT dfp.datafile.dataset.name FROM DatafileParameter dfp "
      "WHERE dfp.type.valueType = org.icatproject.ParameterValueType.NUMERIC",
   ["dataset 1", "dataset 2"])
ok(G, "SELECT u FROM User u WHERE u.name = 'db/lib'", ents("User", 5))
ok(G, "SELECT ds FROM Dataset ds JOIN ds.investigation inv JOIN inv.investigationUsers iu "
      "JOIN iu.user u WHERE u.name = 'db/sgriffin' AND iu.role = 'CI'", ents("Dataset", 3, 4))
ok(G, "SELECT dc FROM DataCollection dc", ents("DataCollection", 1, 2))
ok(G, "SELECT dp FROM DataPublication dp INCLUDE dp.content, dp.type, dp.facility",
   ents("DataPublication", 1, inc="content, type, facility"))
ok(G, "SELECT st FROM Study st WHERE st.id = 1 INCLUDE st.user, st.studyInvestigations",
   ents("Study", 1, inc="user, studyInvestigations"))

# == inc: INCLUDE =============================================================================
G = "inc"
ok(G, "SELECT i FROM Investigation i WHERE i.id = 2 INCLUDE 1",
   ents("Investigation", 2, inc="facility, type"))
ok(G, "SELECT i FROM Investigation i WHERE i.id = 2 INCLUDE i.datasets.datafiles",
   ents("Investigation", 2, inc="datasets.datafiles"))
ok(G, "SELECT ds FROM Dataset ds WHERE ds.id = 3 INCLUDE ds.type t, t.datasets",
   ents("Dataset", 3, inc="type.datasets"))
ok(G, "SELECT ds.id FROM Dataset ds WHERE ds.id = 2 INCLUDE 1", [2])
ok(G, "SELECT DISTINCT o FROM Investigation o JOIN o.datasets ds WHERE ds.complete = TRUE "
      "INCLUDE o.facility LIMIT 0, 2", ents("Investigation", 1, 2, inc="facility"))
ok(G, "SELECT df FROM Datafile df WHERE df.id = 11 INCLUDE df.datafileFormat",
   ents("Datafile", 11, inc="datafileFormat"))
ok(G, "SELECT f FROM Facility f WHERE f.id = 2 INCLUDE f.investigations.investigationUsers.user",
   ents("Facility", 2, inc="investigations.investigationUsers.user"))
ok(G, "SELECT ds FROM Dataset ds WHERE ds.id = 2 INCLUDE ds.datafiles df, df.dataset",
   ents("Dataset", 2, inc="datafiles.dataset"))
ok(G, "SELECT DS FROM Dataset ds WHERE ds.id = 4 INCLUDE ds.parameters",
   ents("Dataset", 4, inc="parameters"))
ok(G, "SELECT ds FROM Dataset ds WHERE ds.investigation.id = 4 INCLUDE ds.investigation AS i, "
      "i.facility", ents("Dataset", 6, 7, inc="investigation.facility"))
ok(G, "SELECT ds FROM Dataset ds WHERE ds.id IN (1, 2) INCLUDE ds.parameters p, p.type t, "
      "t.facility", ents("Dataset", 1, 2, inc="parameters.type.facility"))
ok(G, "SELECT u FROM User u WHERE u.id = 4 INCLUDE u.investigationUsers iu, iu.investigation, "
      "u.instrumentScientists isc, isc.instrument, u.userGroups ug, ug.grouping",
   ents("User", 4, inc="investigationUsers.investigation, instrumentScientists.instrument, "
                       "userGroups.grouping"))
ok(G, "SELECT g FROM Grouping g INCLUDE g.rules, g.userGroups",
   ents("Grouping", 1, 2, inc="rules, userGroups"))
ok(G, "SELECT i FROM Investigation i WHERE i.id = 1 INCLUDE i.investigationUsers AS iu, "
      "iu.user AS u, u.studies", ents("Investigation", 1, inc="investigationUsers.user.studies"))
ok(G, "SELECT ds.investigation FROM Dataset ds WHERE ds.id = 5 INCLUDE 1",
   ents("Investigation", 3, inc="facility, type"))
bad(G, "SELECT i FROM Investigation i INCLUDE i.datasets, i.datasets.datafiles",
    "BAD_PARAMETER", "INCLUDE clause contains redundant path to datasets")
bad(G, "SELECT i FROM Investigation i INCLUDE i.bogus", "BAD_PARAMETER",
    "Problem with INCLUDE clause: bogus is not a field of Investigation")
bad(G, "SELECT i FROM Investigation i JOIN i.datasets ds INCLUDE ds.datafiles",
    "BAD_PARAMETER", "variable DS mentioned in INCLUDE clause is not defined")
bad(G, "SELECT i FROM Investigation i INCLUDE 1, i.datasets", "BAD_PARAMETER",
    '"INCLUDE 1" must not be followed by other things to include.')
bad(G, "SELECT i.name, i.title FROM Investigation i INCLUDE i.facility", "BAD_PARAMETER",
    "INCLUDE is only valid for one quantity in the SELECT clause")
bad(G, "SELECT i FROM Investigation i INCLUDE i.name", "BAD_PARAMETER")
bad(G, "SELECT i FROM Investigation i INCLUDE i.datasets d.x", "BAD_PARAMETER")

# == err: errors ==============================================================================
G = "err"
bad(G, "SELECT x FROM Nothing x", "BAD_PARAMETER",
    "No information to determine type of Nothing in the FROM clause")
bad(G, "SELECT ds FROM Dataset ds, Datafile ds", "BAD_PARAMETER",
    "has already been defined in the FROM clause")
bad(G, "SELECT ds FROM Dataset ds JOIN FETCH ds.datafiles df", "BAD_PARAMETER",
    "The FETCH keyword is not permitted")
bad(G, "SELECT x FROM Dataset ds", "BAD_PARAMETER",
    "referenced in the SELECT clause is not defined in the FROM clause.")
bad(G, "SELECT ds.nonsense FROM Dataset ds", "BAD_PARAMETER", "Dataset has no field nonsense")
bad(G, "SELECT ds FROM Dataset ds JOIN ds.name n", "BAD_PARAMETER",
    "Dataset has no relationship field name")
bad(G, "SELECT ds FROM Dataset ds JOIN ds.bogus.datafiles df", "BAD_PARAMETER", "bogus")
bad(G, "SELECT ds FROM Dataset ds WHERE", "BAD_PARAMETER")
bad(G, "SELECT ds FROM Dataset ds LIMIT 0, 1 LIMIT 0, 2", "BAD_PARAMETER",
    "No more input expected at token")
bad(G, "SELECT ds FROM Dataset ds WHERE ds.id ! 3", "BAD_PARAMETER")
bad(G, 'SELECT ds FROM Dataset ds WHERE ds.name = "fred"', "BAD_PARAMETER")
bad(G, "SELECT COALESCE(ds.name, 'x') FROM Dataset ds", "BAD_PARAMETER", "COALESCE")
bad(G, "SELECT ds FROM Dataset ds WHERE ds.name = 'fred", "BAD_PARAMETER")
bad(G, "SELECT ds FROM Dataset ds WHERE COUNT(ds) > 1", "BAD_PARAMETER")
bad(G, "SELECT ds FROM Dataset ds ORDER BY", "BAD_PARAMETER")
bad(G, "SELECT ds FROM Dataset ds LIMIT 0", "BAD_PARAMETER")
bad(G, "SELECT ds FROM Dataset ds LIMIT a, 1", "BAD_PARAMETER")
bad(G, "SELECT FROM Dataset ds", "BAD_PARAMETER")
bad(G, "SELECT ds FROM", "BAD_PARAMETER")
bad(G, "SELECT ds FROM Dataset ds WHERE ds.name LIKE 'x' ESCAPE 'ab'", "BAD_PARAMETER")
bad(G, "SELECT ds FROM Dataset ds WHERE ds.name + 1 = 2", "BAD_PARAMETER")
bad(G, "SELECT SUBSTRING(ds.name) FROM Dataset ds", "BAD_PARAMETER")
bad(G, "SELECT ds FROM Dataset ds WHERE ds.datafiles.name = 'x' AND", "BAD_PARAMETER")
bad(G, "SELECT ds FROM Dataset ds WHERE ds.name IN ()", "BAD_PARAMETER")
bad(G, "SELECT ds.name, (SELECT COUNT(df) FROM ds.datafiles df) FROM Dataset ds",
    "BAD_PARAMETER")
bad(G, " ", "BAD_PARAMETER")
bad(G, "Nonsense [id = 1]", "BAD_PARAMETER")

# == typ: values of different kinds, NULL, and what each database would do its own way =======
# JPQL compares and computes only values of one kind; MySQL converts silently, PostgreSQL
# fails. Cairn refuses (BAD_PARAMETER) what JPQL refuses, converts whole numbers to text for
# string functions and LIKE, and gives NULL where MySQL does (division by zero, SQRT(-1)).
G = "typ"
ok(G, "SELECT UPPER(df.fileSize) FROM Datafile df WHERE df.id = 1", ["155061160"])
ok(G, "SELECT CONCAT(i.name, i.fileSize) FROM Investigation i WHERE i.id = 1",
   ["INVESTIGATION 11000"])
ok(G, "SELECT LENGTH(df.fileSize) FROM Datafile df WHERE df.id = 1", [9])
ok(G, "SELECT df.id FROM Datafile df WHERE df.fileSize LIKE '15%'", [1, 6])
ok(G, "SELECT i.id FROM Investigation i WHERE i.startDate LIKE '%10:00:00'", [1])
ok(G, "SELECT i.id FROM Investigation i WHERE i.startDate LIKE '2019-07-15 %'", [2])
ok(G, "SELECT df.fileSize / 0 FROM Datafile df WHERE df.id = 1", [None])
ok(G, "SELECT MOD(df.fileSize, 0) FROM Datafile df WHERE df.id = 1", [None])
ok(G, "SELECT SQRT(-df.fileSize) FROM Datafile df WHERE df.id = 1", [None])
ok(G, "SELECT df.id FROM Datafile df WHERE df.fileSize < NULL", [])
ok(G, "SELECT df.id FROM Datafile df WHERE NOT (df.fileSize >= NULL)", [])
ok(G, "SELECT df.id FROM Datafile df WHERE df.name LIKE NULL", [])
ok(G, "SELECT df.id FROM Datafile df WHERE df.fileSize BETWEEN NULL AND 10", [])
ok(G, "SELECT df.id FROM Datafile df WHERE df.fileSize = (NULL + 1) * 4", [])
ok(G, "SELECT SUM(NULL), MAX(NULL), COUNT(NULL) FROM Datafile df", [[None, None, 0]])
ok(G, "SELECT DISTINCT NULL, df.dataset.id FROM Datafile df WHERE df.id < 3", [[None, 1]])
ok(G, "SELECT DISTINCT 1, 'x' FROM Datafile df", [[1, "x"]])
ok(G, "SELECT LOCATE(NULL, df.name, 1), LENGTH(NULL), UPPER(NULL) FROM Datafile df "
      "WHERE df.id = 1", [[None, None, None]])
bad(G, "SELECT ds.id FROM Dataset ds WHERE ds.name = ds.id", "BAD_PARAMETER",
    "A String value cannot be compared with a Long value")
bad(G, "SELECT ds.id FROM Dataset ds WHERE ds.createTime = ds.name", "BAD_PARAMETER",
    "cannot be compared")
bad(G, "SELECT ds.id FROM Dataset ds WHERE ds.complete = ds.name", "BAD_PARAMETER",
    "cannot be compared")
bad(G, "SELECT i.id FROM Investigation i WHERE i.name > {ts 2019-01-01 00:00:00}",
    "BAD_PARAMETER", "cannot be compared")
bad(G, "SELECT ds.id FROM Dataset ds WHERE ds.name IN (SELECT d.id FROM Dataset d)",
    "BAD_PARAMETER", "cannot be compared")
bad(G, "SELECT ds.id FROM Dataset ds WHERE ds.name BETWEEN ds.id AND 'z'", "BAD_PARAMETER",
    "cannot be compared")
bad(G, "SELECT ds.id FROM Dataset ds WHERE ds.id IN (ds.name)", "BAD_PARAMETER",
    "cannot be compared")
bad(G, "SELECT ds.id FROM Dataset ds WHERE ds.name LIKE ds.id", "BAD_PARAMETER",
    "LIKE needs a string pattern")
bad(G, "SELECT ds.id FROM Dataset ds WHERE ds.complete LIKE 'T%'", "BAD_PARAMETER",
    "LIKE needs a string")
bad(G, "SELECT ds.createTime FROM Dataset ds WHERE ds.createTime < CURRENT_TIME",
    "BAD_PARAMETER", "cannot be compared")
bad(G, "SELECT MIN(ds.complete) FROM Dataset ds", "BAD_PARAMETER", "MIN needs")
bad(G, "SELECT SUM(ds.name) FROM Dataset ds", "BAD_PARAMETER", "SUM needs numbers")
bad(G, "SELECT AVG(i.startDate) FROM Investigation i", "BAD_PARAMETER", "AVG needs numbers")
bad(G, "SELECT MOD(p.numericValue, 7) FROM DatasetParameter p", "BAD_PARAMETER",
    "MOD needs a whole number")
bad(G, "SELECT UPPER(i.startDate) FROM Investigation i", "BAD_PARAMETER",
    "UPPER needs a string")
bad(G, "SELECT LENGTH(ds.complete) FROM Dataset ds", "BAD_PARAMETER", "LENGTH needs a string")
bad(G, "SELECT SUBSTRING(ds.name, 1.5) FROM Dataset ds", "BAD_PARAMETER",
    "SUBSTRING needs a whole number")
bad(G, "SELECT TRIM(BOTH 'ab' FROM ds.name) FROM Dataset ds", "BAD_PARAMETER",
    "TRIM needs a single character")
bad(G, "SELECT ds.id FROM Dataset ds WHERE ds.id = 99999999999999999999", "BAD_PARAMETER",
    "out of range")
bad(G, "SELECT ds.id FROM Dataset ds WHERE ds.id = '99999999999999999999'", "BAD_PARAMETER",
    "out of range")
bad(G, "SELECT ds.id FROM Dataset ds ORDER BY 'x'", "BAD_PARAMETER", "ORDER BY needs a path")
bad(G, "SELECT df.fileSize * 99999999999 FROM Datafile df WHERE df.id = 2", "BAD_PARAMETER",
    "out of range")
bad(G, "SELECT i.name, COUNT(ds) FROM Investigation i JOIN i.datasets ds GROUP BY i.visitId",
    "BAD_PARAMETER", "i.name in the SELECT clause must be in the GROUP BY clause")
# Beyond 64 bits: in each row's product, or only in the sum of rows that each fit.
bad(G, "SELECT SUM(df.fileSize * 9223372036854775807) FROM Datafile df", "BAD_PARAMETER",
    "out of range")
bad(G, "SELECT SUM(df.id + 9223372036854775000) FROM Datafile df", "BAD_PARAMETER",
    "out of range")
ok(G, "SELECT SUM(df.id + 9223372036854775000) FROM Datafile df WHERE df.id = 1",
   [9223372036854775001])

CASES = C.cases
