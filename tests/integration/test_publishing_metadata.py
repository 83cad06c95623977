"""DataCite metadata from the catalogue, on every backend: an investigation's publication
(automatic mode), a user's selection, the round trip through DataPublication rows, an
instrument after PIDINST, and the completeness check before minting.

The metadata are validated against DataCite 4.5 with the ``datacite`` package. Its JSON schema
differs from what DataCite's REST API takes in two ways the test adapts to: it requires
``schemaVersion``, and ``publisher`` must be an object (the REST API also takes a string).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from datacite import schema45
from lxml import etree
from sqlalchemy import func, select

from cairn.catalogue.objects import Obj
from cairn.catalogue.service import Catalogue
from cairn.db import migrate
from cairn.db.engine import Database
from cairn.errors import ErrorType, IcatError
from cairn.publishing import check as checks
from cairn.publishing import data_publication, metadata
from cairn.publishing.content import investigations_of
from cairn.publishing.investigation import PANET_SCHEME, from_investigation
from cairn.publishing.model import Files, Kind, Metadata
from cairn.publishing.publication import Context, Dated, Publication, dump, undump
from cairn.publishing.request import from_request, revise
from cairn.schema import SCHEMA
from cairn.startup import catalogue_of
from tests.conftest import BACKENDS, make_database
from tests.integration.catalogue_objects import create

NOW = datetime(2025, 1, 15, 9, 30, 12, 345678, tzinfo=UTC)
ROR = "https://ror.org/0abcdef12"
CTX = Context(publisher="", publisher_identifier=ROR, rights="CC-BY-4.0", now=NOW)
PANET = "http://purl.org/pan-science/PaNET/"
DOI_OF = "10.1107/S160057672500001X"
REPORT = "Adams A. (2025) LSF annual report, p. 12"


@dataclass
class World:
    db: Database
    catalogue: Catalogue
    ids: dict[str, int]

    def create(self, entity: str, **values: Any) -> int:
        return create(self.catalogue, entity, **values)

    def user_unit(self, user: str) -> Any:
        return self.catalogue.as_user(self.catalogue.sessions.create(user))

    def count(self, entity: str) -> int:
        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(
                self.db.tables[entity])).scalar_one())


@pytest.fixture(scope="module", params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[World]:
    """The facility, built once per backend (the tests only add publications to it)."""
    tmp: Path = tmp_path_factory.mktemp(f"publishing-{request.param}")
    url, drop = make_database(str(request.param), tmp, migrated=True)
    db = Database(url)
    try:
        migrate.upgrade(db)
        w = World(db, catalogue_of(db), {})
        _build(w)
        yield w
    finally:
        db.dispose()
        drop()  # type: ignore[operator]


def _build(w: World) -> None:
    c, ids = w.create, w.ids
    f = ids["facility"] = c("Facility", name="LSF", fullName="Lightsource Facility")
    fac = ("Facility", f)
    it = c("InvestigationType", name="experiment", facility=fac)
    dt = c("DatasetType", name="raw", facility=fac)
    nexus = c("DatafileFormat", name="nexus", version="4.3", facility=fac)
    tiff = c("DatafileFormat", name="tiff", version="6", facility=fac)
    ids["instrument"] = c("Instrument", name="I22", fullName="I22 Small-angle scattering beamline",
                          pid="10.99999/lsf-i22", url="https://lsf.example/i22",
                          description="A beamline for small- and wide-angle scattering.",
                          type="Beamline", startDate=datetime(2007, 1, 15, 9, 0),
                          endDate=datetime(2024, 3, 31, 12, 0), facility=fac)
    users = {
        "zed": c("User", name="db/zed", fullName="Dr Zoe Zed", givenName="Zoe",
                 familyName="Zed", orcidId="0000-0002-1825-0097",
                 affiliation="University of Somewhere"),
        "bob": c("User", name="db/bob", fullName="Bob Brown", givenName="Bob",
                 familyName="Brown", orcidId="https://orcid.org/0000-0001-5109-3700"),
        "amy": c("User", name="db/amy", fullName="Amy Adams", givenName="Amy",
                 familyName="Adams"),
        "sci": c("User", name="db/sci", fullName="Sam Scientist", givenName="Sam",
                 familyName="Scientist", orcidId="0000-0003-0000-000X"),
    }
    ids.update(users)
    c("InstrumentScientist", instrument=("Instrument", ids["instrument"]),
      user=("User", users["sci"]))
    inv = ids["inv"] = c("Investigation", name="AB-123", visitId="1",
                         title="Polymer crystallisation under shear",
                         summary="Crystallisation of polymers watched under shear by SAXS.",
                         startDate=datetime(2024, 3, 1, 8, 0), endDate=datetime(2024, 3, 4, 18),
                         releaseDate=datetime(2027, 3, 4), facility=fac,
                         type=("InvestigationType", it))
    for user, role in (("zed", "PI"), ("bob", "principal_experimenter"), ("bob", "experimenter"),
                       ("amy", "co_investigator")):
        c("InvestigationUser", role=role, user=("User", users[user]),
          investigation=("Investigation", inv))
    c("InvestigationInstrument", investigation=("Investigation", inv),
      instrument=("Instrument", ids["instrument"]))
    for word in ("shear", "polymers"):
        c("Keyword", name=word, investigation=("Investigation", inv))
    fund = ids["funding"] = c("FundingReference", funderName="European Commission",
                              funderIdentifier="https://doi.org/10.13039/501100000780",
                              awardNumber="101004728", awardTitle="LEAPS-INNOV")
    c("InvestigationFunding", investigation=("Investigation", inv),
      funding=("FundingReference", fund))
    c("Publication", fullReference="Zed Z., Brown B. (2025). J. Appl. Cryst. 58, 1-9.",
      doi=DOI_OF, investigation=("Investigation", inv))
    c("Publication", fullReference=REPORT, investigation=("Investigation", inv))
    saxs = c("Technique", name="small-angle X-ray scattering", pid=PANET + "PaNET01188")
    waxs = c("Technique", name="wide-angle X-ray scattering", pid="PaNET01189")
    ds1 = ids["ds1"] = c("Dataset", name="scan-1", investigation=("Investigation", inv),
                         type=("DatasetType", dt))
    ds2 = ids["ds2"] = c("Dataset", name="scan-2", investigation=("Investigation", inv),
                         type=("DatasetType", dt))
    c("DatasetTechnique", dataset=("Dataset", ds1), technique=("Technique", saxs))
    c("DatasetTechnique", dataset=("Dataset", ds2), technique=("Technique", waxs))
    for name, ds, size, fmt in (("a.nxs", ds1, 1000, nexus), ("b.nxs", ds1, 2500, nexus),
                                ("c.tif", ds1, 500, tiff), ("d.nxs", ds2, 4000, nexus),
                                ("e.log", ds2, 100, None)):
        ref = {"datafileFormat": ("DatafileFormat", fmt)} if fmt else {}
        ids[name] = c("Datafile", name=name, fileSize=size, dataset=("Dataset", ds), **ref)
    # Another investigation db/amy may not read, and a bare one.
    other = ids["other"] = c("Investigation", name="CD-9", visitId="2", title="Other",
                             releaseDate=datetime(2026, 1, 1), facility=fac,
                             type=("InvestigationType", it))
    ds3 = ids["ds3"] = c("Dataset", name="scan-3", investigation=("Investigation", other),
                         type=("DatasetType", dt))
    ids["f.nxs"] = c("Datafile", name="f.nxs", fileSize=7, dataset=("Dataset", ds3),
                     datafileFormat=("DatafileFormat", nexus))
    ids["bare"] = c("Investigation", name="EF-1", visitId="1", title="Nothing yet",
                    facility=fac, type=("InvestigationType", it))
    mine = "JOIN i.investigationUsers iu JOIN iu.user u WHERE u.name = :user"
    for what in ("Facility", f"SELECT i FROM Investigation i {mine}",
                 f"SELECT ds FROM Dataset ds JOIN ds.investigation i {mine}",
                 f"SELECT df FROM Datafile df JOIN df.dataset ds JOIN ds.investigation i {mine}"):
        c("Rule", what=what, crudFlags="R")


def _orcid(bare: str) -> list[dict[str, str]]:
    return [{"nameIdentifier": f"https://orcid.org/{bare}", "nameIdentifierScheme": "ORCID",
             "schemeUri": "https://orcid.org"}]


def _valid(attributes: dict[str, Any]) -> None:
    """DataCite 4.5 as the datacite package's JSON schema has it (see the module's note)."""
    data = {**attributes, "schemaVersion": "http://datacite.org/schema/kernel-4"}
    if isinstance(data["publisher"], str):
        data["publisher"] = {"name": data["publisher"]}
    errors = [f"{list(e.path)}: {e.message}" for e in schema45.validator.iter_errors(data)]
    assert errors == []
    assert schema45.validate(data)


def _xml(attributes: dict[str, Any], doi: str) -> Any:
    """The DataCite XML the package writes; the 4.5 XSD is not available offline, so it is
    parsed and its elements looked at."""
    data = {**attributes, "doi": doi, "schemaVersion": "http://datacite.org/schema/kernel-4"}
    if isinstance(data["publisher"], str):
        data["publisher"] = {"name": data["publisher"]}
    return etree.fromstring(schema45.tostring(data).encode())


NS = {"d": "http://datacite.org/schema/kernel-4"}


def _automatic(w: World) -> tuple[Publication, Metadata]:
    with w.catalogue.as_system(read_only=True) as work:
        pub = from_investigation(work, w.ids["inv"], CTX)
        return pub, metadata.metadata(work, pub, CTX)


def test_an_investigation_maps_onto_datacite(world: World) -> None:
    ids = world.ids
    pub, md = _automatic(world)
    a = md.attributes
    assert md.kind is Kind.INVESTIGATION
    # PIs first (a principal_experimenter counts; Bob's second role adds nothing), by name
    assert a["creators"] == [
        {"name": "Brown, Bob", "nameType": "Personal", "givenName": "Bob",
         "familyName": "Brown", "nameIdentifiers": _orcid("0000-0001-5109-3700")},
        {"name": "Zed, Zoe", "nameType": "Personal", "givenName": "Zoe", "familyName": "Zed",
         "nameIdentifiers": _orcid("0000-0002-1825-0097"),
         "affiliation": [{"name": "University of Somewhere"}]},
        {"name": "Adams, Amy", "nameType": "Personal", "givenName": "Amy",
         "familyName": "Adams"}]
    assert [p.user_name for p in pub.users] == ["db/bob", "db/zed", "db/amy"]
    assert "contributors" not in a
    assert a["titles"] == [{"title": "Polymer crystallisation under shear"}]
    assert a["publisher"] == {"name": "Lightsource Facility", "publisherIdentifier": ROR,
                              "publisherIdentifierScheme": "ROR", "schemeUri": "https://ror.org"}
    assert a["publicationYear"] == "2025"
    assert a["types"] == {"resourceTypeGeneral": "Dataset", "resourceType": "Investigation"}
    assert a["dates"] == [{"date": "2024-03-01/2024-03-04", "dateType": "Collected"},
                          {"date": "2027-03-04", "dateType": "Available"},
                          {"date": "2025-01-15", "dateType": "Issued"}]
    assert a["subjects"] == [
        {"subject": "small-angle X-ray scattering", "subjectScheme": "PaNET",
         "schemeUri": PANET_SCHEME, "valueUri": PANET + "PaNET01188",
         "classificationCode": "PaNET01188"},
        {"subject": "wide-angle X-ray scattering", "subjectScheme": "PaNET",
         "schemeUri": PANET_SCHEME, "valueUri": PANET + "PaNET01189",
         "classificationCode": "PaNET01189"},
        {"subject": "polymers"}, {"subject": "shear"}]
    assert a["relatedIdentifiers"] == [
        {"relatedIdentifier": "10.99999/lsf-i22", "relatedIdentifierType": "DOI",
         "relationType": "IsCollectedBy", "resourceTypeGeneral": "Instrument"},
        {"relatedIdentifier": DOI_OF, "relatedIdentifierType": "DOI",
         "relationType": "IsCitedBy", "resourceTypeGeneral": "JournalArticle"}]
    assert a["relatedItems"] == [{"relationType": "IsCitedBy", "relatedItemType": "JournalArticle",
                                  "titles": [{"title": REPORT}]}]
    assert a["alternateIdentifiers"] == [{"alternateIdentifier": "AB-123/1",
                                          "alternateIdentifierType": "LSF investigation"}]
    assert a["descriptions"] == [{"description": "Crystallisation of polymers watched under "
                                                 "shear by SAXS.", "descriptionType": "Abstract"}]
    assert a["fundingReferences"] == [{
        "funderName": "European Commission",
        "funderIdentifier": "https://doi.org/10.13039/501100000780",
        "funderIdentifierType": "Crossref Funder ID", "awardNumber": "101004728",
        "awardTitle": "LEAPS-INNOV"}]
    assert a["rightsList"][0]["rightsIdentifier"] == "CC-BY-4.0"
    assert a["sizes"] == ["5 files", "8.1 kB"]
    assert a["formats"] == ["nexus 4.3", "tiff 6"]  # most used first; e.log has no format
    assert md.files == Files(datafiles=5, datasets=2, investigations=1, size=8100,
                             formats=["nexus 4.3", "tiff 6"])
    assert md.release == datetime(2027, 3, 4, tzinfo=UTC)
    assert md.data == {"Investigation": [ids["inv"]]}
    assert pub.publication_date == NOW.replace(microsecond=0)
    _valid(a)
    root = _xml(a, "10.99999/lsf-ab-123")
    assert root.findtext("d:identifier", namespaces=NS) == "10.99999/lsf-ab-123"
    assert [e.text for e in root.findall("d:creators/d:creator/d:creatorName", NS)] == [
        "Brown, Bob", "Zed, Zoe", "Adams, Amy"]
    assert root.find("d:publisher", NS).get("publisherIdentifier") == ROR
    assert root.find("d:resourceType", NS).get("resourceTypeGeneral") == "Dataset"
    assert len(root.findall("d:subjects/d:subject", NS)) == 4
    assert [e.get("relationType") for e in root.findall(
        "d:relatedIdentifiers/d:relatedIdentifier", NS)] == ["IsCollectedBy", "IsCitedBy"]
    assert [e.text for e in root.findall("d:sizes/d:size", NS)] == ["5 files", "8.1 kB"]
    assert root.find("d:fundingReferences/d:fundingReference/d:awardNumber", NS).text \
        == "101004728"


def test_a_stored_publication_reads_back_the_same(world: World) -> None:
    pub, md = _automatic(world)
    funding_rows = world.count("FundingReference")
    doi = "10.99999/lsf-ab-123"
    with world.catalogue.as_system() as work:
        pid = data_publication.store(work, pub, doi)
    with world.catalogue.as_system(read_only=True) as work:
        loaded = data_publication.load(work, pid)
        again = metadata.metadata(work, loaded, CTX)
        row = work.get("DataPublication p INCLUDE p.type, p.content", pid)
    assert (loaded.id, loaded.doi) == (pid, doi)
    assert replace(loaded, id=None, doi=None) == pub
    assert again == md
    assert world.count("FundingReference") == funding_rows  # the investigation's is reused
    assert row.values["pid"] == doi and row.ones["content"].values["doi"] == doi
    assert "resourceTypeGeneral Dataset" in row.ones["type"].values["description"]
    # facility staff edit the publication in the catalogue: the DOI's metadata follow
    with world.catalogue.as_system() as work:
        work.update(Obj(SCHEMA.entities["DataPublication"], id=pid,
                        values={"title": "Shear crystallisation, edited"}))
        first = work.search(f"SELECT u FROM DataPublicationUser u WHERE u.publication.id = {pid}"
                            " AND u.orderKey = '0001'")[0]
        work.update(Obj(SCHEMA.entities["DataPublicationUser"], id=first.id,
                        values={"contributorType": "datacollector"}))
    with world.catalogue.as_system(read_only=True) as work:
        edited = metadata.metadata(work, data_publication.load(work, pid), CTX).attributes
    assert edited["titles"] == [{"title": "Shear crystallisation, edited"}]
    assert [c["name"] for c in edited["creators"]] == ["Zed, Zoe", "Adams, Amy"]
    assert [(c["name"], c["contributorType"]) for c in edited["contributors"]] == [
        ("Brown, Bob", "DataCollector")]


def test_the_catalogue_zone_decides_days_and_instants(world: World) -> None:
    """Stored timestamps are wall-clock time in the catalogue's zone: the same rows read in
    Paris time are other instants, on the same calendar days."""
    db = Database(world.db.url, zone=ZoneInfo("Europe/Paris"))
    try:
        catalogue = catalogue_of(db)
        with catalogue.as_system(read_only=True) as work:
            pub = from_investigation(work, world.ids["inv"], CTX)
            md = metadata.metadata(work, pub, CTX)
            instrument = metadata.instrument(work, world.ids["instrument"], CTX)
    finally:
        db.dispose()
    assert md.release == datetime(2027, 3, 3, 23, tzinfo=UTC)
    assert md.attributes["dates"][:2] == [
        {"date": "2024-03-01/2024-03-04", "dateType": "Collected"},
        {"date": "2027-03-04", "dateType": "Available"}]
    assert instrument.decommissioned == datetime(2024, 3, 31, 10, tzinfo=UTC)  # summer time


def _request(w: World, **more: Any) -> dict[str, Any]:
    ids = w.ids
    return {
        "title": "Two scans of sheared polymers",
        "description": "The best scans.",
        "creators": [
            {"username": "db/zed"},
            {"fullName": "Erin Extern", "givenName": "Erin", "familyName": "Extern",
             "orcid": "0000-0003-1234-5678",
             "affiliations": [{"name": "Uni X", "pid": ROR, "fullReference": "Uni X, Physics"}]},
            {"username": "db/sci", "contributorType": "contactperson"}],
        "subjects": ["rheology", {"subject": "SAXS", "subjectScheme": "PaNET",
                                  "valueUri": PANET + "PaNET01188"}],
        "relatedItems": [
            {"identifier": "https://doi.org/" + DOI_OF, "relationType": "IsSupplementTo",
             "relatedItemType": "JournalArticle"},
            {"identifier": "Beamtime logbook 7", "relationType": "IsDocumentedBy",
             "title": "Logbook"}],
        "resourceType": "Dataset",
        "datasetIds": [ids["ds1"]],
        "datafileIds": [ids["d.nxs"], ids["a.nxs"]],  # a.nxs is in ds1: counted once
        **more}


def test_a_users_selection_reads_back_the_same(world: World) -> None:
    ids = world.ids
    with world.user_unit("db/amy") as work:
        pub = from_request(work, _request(world), CTX)
        md = metadata.metadata(work, pub, CTX)
        assert investigations_of(work, pub) == [ids["inv"]]
    a = md.attributes
    assert md.kind is Kind.COLLECTION
    assert (pub.type_name, pub.resource_type_general) == ("User-defined dataset", "Dataset")
    assert a["types"] == {"resourceTypeGeneral": "Dataset", "resourceType": "User-defined dataset"}
    assert [c["name"] for c in a["creators"]] == ["Zed, Zoe", "Extern, Erin"]
    assert a["creators"][1]["affiliation"] == [{
        "name": "Uni X, Physics", "affiliationIdentifier": ROR,
        "affiliationIdentifierScheme": "ROR", "schemeUri": "https://ror.org"}]
    assert a["contributors"] == [{
        "name": "Scientist, Sam", "nameType": "Personal", "givenName": "Sam",
        "familyName": "Scientist", "nameIdentifiers": _orcid("0000-0003-0000-000X"),
        "contributorType": "ContactPerson"}]
    assert a["relatedIdentifiers"] == [{
        "relatedIdentifier": DOI_OF, "relatedIdentifierType": "DOI",
        "relationType": "IsSupplementTo", "resourceTypeGeneral": "JournalArticle"}]
    assert a["relatedItems"] == [{"relationType": "IsDocumentedBy", "relatedItemType": "Other",
                                  "titles": [{"title": "Logbook"}]}]
    assert a["dates"] == [{"date": "2025-01-15", "dateType": "Issued"}]
    assert md.files == Files(datafiles=4, datasets=1, investigations=0, size=8000,
                             formats=["nexus 4.3", "tiff 6"])
    assert md.data == {"Dataset": [ids["ds1"]], "Datafile": [ids["d.nxs"]]}
    assert md.release == datetime(2027, 3, 4, tzinfo=UTC)
    assert "alternateIdentifiers" not in a
    _valid(a)

    users = world.count("User")
    with world.catalogue.as_system() as work:
        pid = data_publication.store(work, pub, "10.99999/lsf-dc-1")
    assert world.count("User") == users + 1  # Erin has no ICAT user: one is made for her
    with world.catalogue.as_system(read_only=True) as work:
        loaded = data_publication.load(work, pid)
        assert metadata.metadata(work, loaded, CTX) == md
    assert replace(loaded, id=None, doi=None) == pub
    assert undump(dump(pub)) == pub
    with world.catalogue.as_system() as work:
        data_publication.remove(work, pid)
    assert world.count("User") == users
    with world.catalogue.as_system(read_only=True) as work, pytest.raises(IcatError) as e:
        data_publication.load(work, pid)
    assert e.value.type is ErrorType.NO_SUCH_OBJECT_FOUND


def test_a_new_version_changes_what_it_names(world: World) -> None:
    with world.user_unit("db/amy") as work:
        pub = from_request(work, _request(world), CTX)
        later = replace(CTX, now=datetime(2026, 2, 1, tzinfo=UTC))
        v2 = revise(work, pub, {"title": "Three scans", "datasetIds": [world.ids["ds2"]]},
                 later)
        with pytest.raises(IcatError) as e:
            revise(work, pub, {"datasetIds": [world.ids["ds3"]]}, later)
    assert e.value.type is ErrorType.INSUFFICIENT_PRIVILEGES
    assert (v2.title, v2.dataset_ids, v2.datafile_ids) == (
        "Three scans", [world.ids["ds2"]], pub.datafile_ids)
    assert v2.users == pub.users and v2.description == pub.description
    assert v2.dates == [Dated("Issued", "2026-02-01")]
    assert pub.title == "Two scans of sheared polymers"  # the first version is untouched


def _refused(work: Any, request: Any) -> IcatError:
    with pytest.raises(IcatError) as e:
        from_request(work, request, CTX)
    return e.value


def test_a_request_is_refused_with_a_reason(world: World) -> None:
    ids = world.ids
    good = _request(world)
    with world.user_unit("db/amy") as work:
        e = _refused(work, {**good, "datasetIds": [ids["ds1"], ids["ds3"]]})
        assert e.type is ErrorType.INSUFFICIENT_PRIVILEGES
        assert f"Dataset[id:{ids['ds3']}]" in e.message
        e = _refused(work, {**good, "datafileIds": [987654321]})
        assert (e.type, e.message) == (ErrorType.NO_SUCH_OBJECT_FOUND,
                                       "Datafile[id:987654321] not found.")
        e = _refused(work, {**good, "creators": [{"username": "db/nobody"}]})
        assert e.type is ErrorType.NO_SUCH_OBJECT_FOUND and "'db/nobody'" in e.message
        bad: list[tuple[Any, str]] = [
            ([good], "The request must be a JSON object, not an array"),
            ({**good, "title": 5}, "title must be a string, not a number"),
            ({**good, "title": " "}, "title is empty"),
            ({**good, "titel": "x"}, "unknown key(s) 'titel'"),
            ({**good, "creators": "db/zed"}, "creators must be a JSON array, not a string"),
            ({**good, "creators": [{"givenName": "Zoe"}]}, "needs a username"),
            ({**good, "creators": [{"username": "db/zed"}, {"username": "db/zed"}]},
             "named twice"),
            ({**good, "creators": [{"username": "db/zed", "contributorType": "Boss"}]},
             "contributorType 'Boss' is not one of"),
            ({**good, "datasetIds": "1,2"}, "datasetIds must be a JSON array"),
            ({**good, "datasetIds": [True]}, "datasetIds must hold ids"),
            ({**good, "datasetIds": [], "datafileIds": []}, "Nothing to publish"),
            ({**good, "resourceType": "Book"}, "resourceType 'Book' is not one of"),
            ({**good, "relatedItems": [{"identifier": "x", "relationType": "LooksLike"}]},
             "relationType 'LooksLike' is not one of"),
            ({**good, "subjects": [3]}, "subjects[0] must be a JSON object, not a number"),
            ({**good, "creators": [{"fullName": "X", "orcid": "1234"}]}, "not an ORCID iD"),
        ]
        for request, words in bad:
            e = _refused(work, request)
            assert (e.type, words in e.message) == (ErrorType.BAD_PARAMETER, True), e.message


def test_a_user_counts_only_the_files_they_may_read(world: World) -> None:
    with world.catalogue.as_system(read_only=True) as work:
        pub = from_investigation(work, world.ids["other"], CTX)
        assert metadata.metadata(work, pub, CTX).files == Files(1, 1, 1, 7, ["nexus 4.3"])
    with world.user_unit("db/amy") as work:
        assert metadata.metadata(work, pub, CTX).files == Files(0, 0, 1, 0, [])
        with pytest.raises(IcatError) as e:
            from_investigation(work, world.ids["other"], CTX)
    assert e.value.type is ErrorType.INSUFFICIENT_PRIVILEGES


def test_an_instrument_maps_after_pidinst(world: World) -> None:
    with world.catalogue.as_system(read_only=True) as work:
        md = metadata.instrument(work, world.ids["instrument"], CTX)
    a = md.attributes
    facility = {"name": "Lightsource Facility", "nameType": "Organizational",
                "nameIdentifiers": [{"nameIdentifier": ROR, "nameIdentifierScheme": "ROR",
                                     "schemeUri": "https://ror.org"}]}
    assert md.kind is Kind.INSTRUMENT
    assert a["types"] == {"resourceTypeGeneral": "Instrument", "resourceType": "Beamline"}
    assert a["titles"] == [{"title": "I22 Small-angle scattering beamline"},
                           {"title": "I22", "titleType": "AlternativeTitle"}]
    assert a["creators"] == [facility]  # ICAT has no manufacturer
    assert a["contributors"] == [
        {**facility, "contributorType": "HostingInstitution"},
        {"name": "Scientist, Sam", "nameType": "Personal", "givenName": "Sam",
         "familyName": "Scientist", "nameIdentifiers": _orcid("0000-0003-0000-000X"),
         "contributorType": "ContactPerson"}]
    assert a["dates"] == [
        {"date": "2007-01-15", "dateType": "Other", "dateInformation": "Commissioned"},
        {"date": "2024-03-31", "dateType": "Other", "dateInformation": "DeCommissioned"}]
    assert a["relatedIdentifiers"] == [{"relatedIdentifier": "https://lsf.example/i22",
                                        "relatedIdentifierType": "URL",
                                        "relationType": "IsDescribedBy"}]
    assert a["descriptions"] == [
        {"description": "A beamline for small- and wide-angle scattering.",
         "descriptionType": "Abstract"},
        {"description": "Instrument type: Beamline", "descriptionType": "TechnicalInfo"}]
    assert md.decommissioned == datetime(2024, 3, 31, 12, tzinfo=UTC)
    assert md.release is None and md.files is None and md.data == {}
    _valid(a)
    assert checks.check(md, "instrument 'I22'") == []


def test_the_check_names_what_is_missing_and_where(world: World) -> None:
    with world.catalogue.as_system(read_only=True) as work:
        bare = metadata.metadata(work, from_investigation(work, world.ids["bare"], CTX), CTX)
    subject = f"investigation 'EF-1' (id {world.ids['bare']})"
    findings = checks.check(bare, subject)
    assert [(f.property, f.level) for f in findings] == [
        ("creators", "mandatory"), ("subjects", "recommended"),
        ("contributors", "recommended"), ("relatedIdentifiers", "recommended"),
        ("descriptions (Abstract)", "recommended"), ("fundingReferences", "recommended")]
    creators, abstract = findings[0], findings[4]
    assert creators.message.startswith("No creator: add an InvestigationUser to " + subject)
    assert "InvestigationUser" in creators.source
    assert abstract.message == f"No abstract: write a summary (the abstract) for {subject}"
    assert abstract.source == "Investigation.summary / DataPublication.description"
    assert not checks.mintable(findings)

    _, complete = _automatic(world)
    findings = checks.check(complete, "investigation 'AB-123'")
    assert [(f.property, f.level) for f in findings] == [
        ("contributors", "recommended"), ("creators (ORCID)", "recommended"),
        ("creators (affiliation)", "recommended")]
    assert "'Adams, Amy'" in findings[1].message and "'Zed, Zoe'" not in findings[1].message
    assert "'Brown, Bob', 'Adams, Amy'" in findings[2].message
    assert checks.mintable(findings)


def test_the_check_reports_unusable_mandatory_values() -> None:
    md = Metadata(Kind.COLLECTION, {
        "creators": [{"name": "Zed, Zoe", "nameType": "Personal"}, {"nameType": "Personal"}],
        "titles": [{"title": ""}], "publisher": {"name": " "}, "publicationYear": "25",
        "types": {"resourceTypeGeneral": "Data"}})
    findings = checks.check(md, "this selection")
    mandatory = [(f.property, f.message.split(":")[0]) for f in findings
                 if f.level == "mandatory"]
    assert mandatory == [
        ("creators", "Creator 2 of 2 has no name"), ("titles", "No title"),
        ("publisher", "No publisher"), ("publicationYear", "No publication year"),
        ("types.resourceTypeGeneral", "'Data' is not a DataCite resourceTypeGeneral")]
    assert "give a title to this selection" in findings[1].message
    assert not checks.mintable(findings)
