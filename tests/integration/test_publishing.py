"""Publishing on every backend, against a local server speaking DataCite's REST protocol:
minting as durable jobs (drafts first, the DataPublication after, never twice, through
outages), who may mint, updates sent when the catalogue changes, versions with a concept
DOI, withdrawal to a tombstone, drafts of user-defined selections, instruments, automatic
minting of released investigations, and the landing data of each."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from cairn.catalogue.objects import Obj
from cairn.catalogue.service import Catalogue
from cairn.config import PublishingSettings
from cairn.db import migrate
from cairn.db.engine import Database
from cairn.errors import ErrorType, IcatError
from cairn.jobs import Scheduler, State
from cairn.publishing.datacite import DataCite
from cairn.publishing.model import Kind
from cairn.publishing.model import State as DoiState
from cairn.publishing.service import SYNC, PublishingService
from cairn.schema import SCHEMA
from cairn.startup import catalogue_of
from tests.integration.catalogue_objects import create
from tests.integration.datacite_server import DataCiteServer, datacite_server_fixture  # noqa: F401

E = SCHEMA.entities
PUBLIC = ("Facility", "Investigation", "InvestigationUser", "User", "Dataset", "Datafile",
          "DatafileFormat", "Instrument", "InvestigationInstrument", "InstrumentScientist",
          "InvestigationType", "DatasetType", "DataPublication", "DataCollection",
          "DataCollectionInvestigation", "DataCollectionDataset", "DataCollectionDatafile",
          "DataPublicationUser", "DataPublicationDate", "DataPublicationType", "Affiliation",
          "Subject", "RelatedItem", "Keyword", "Technique", "DatasetTechnique",
          "Publication", "FundingReference", "InvestigationFunding", "DataPublicationFunding")


class World:
    """A catalogue with a published-worthy investigation, and Cairn's publishing on it."""

    def __init__(self, db: Database, server: DataCiteServer, **settings: Any) -> None:
        self.db = db
        self.server = server
        self.jobs = Scheduler(db, poll_seconds=0.05, stale_seconds=5)
        self.catalogue = Catalogue(catalogue_of(db).settings, db, {}, jobs=self.jobs)
        self.settings = PublishingSettings(
            datacite_url=server.url, prefix=server.prefix, username=server.username,
            password=server.password, minter_grouping="doiminters", update_delay_seconds=0,
            **settings)
        self.publishing = PublishingService(self.catalogue, self.settings,
                                            "http://cairn.test", self.jobs)
        self.publishing.start()
        self.jobs.register(*self.publishing.job_kinds())
        c = self.catalogue
        for entity in PUBLIC:
            create(c, "Rule", what=entity, crudFlags="R")
        self.facility = create(c, "Facility", name="LSF", fullName="Lightsource Facility")
        self.inv_type = create(c, "InvestigationType", name="experiment",
                               facility=("Facility", self.facility))
        self.ds_type = create(c, "DatasetType", name="raw", facility=("Facility", self.facility))
        self.fmt = create(c, "DatafileFormat", name="NeXus", version="3",
                          facility=("Facility", self.facility))
        self.instrument = create(c, "Instrument", name="I03", fullName="I03 MX beamline",
                                 description="Macromolecular crystallography",
                                 facility=("Facility", self.facility),
                                 startDate=datetime(2010, 4, 1))
        self.users = {name: create(c, "User", name=f"db/{name}", fullName=full,
                                   givenName=full.split()[0], familyName=full.split()[1],
                                   orcidId=orcid)
                      for name, full, orcid in (
                          ("alice", "Alice Archer", "0000-0002-1825-0097"),
                          ("bob", "Bob Brewer", None), ("carol", "Carol Cole", None),
                          ("dana", "Dana Dorn", None))}
        grouping = create(c, "Grouping", name="doiminters")
        create(c, "UserGroup", grouping=("Grouping", grouping),
               user=("User", self.users["dana"]))
        create(c, "InstrumentScientist", instrument=("Instrument", self.instrument),
               user=("User", self.users["carol"]))
        self.investigation = self.make_investigation("AB-1", "Calcite under pressure")
        self.bare = create(c, "Investigation", name="AB-2", visitId="1", title="Untitled",
                           facility=("Facility", self.facility),
                           type=("InvestigationType", self.inv_type))

    def make_investigation(self, name: str, title: str) -> int:
        c = self.catalogue
        inv = create(c, "Investigation", name=name, visitId="1", title=title,
                     summary="How calcite turns into aragonite at 2 GPa.",
                     startDate=datetime(2024, 3, 1, 9), endDate=datetime(2024, 3, 3, 9),
                     releaseDate=datetime(2025, 3, 3),
                     facility=("Facility", self.facility),
                     type=("InvestigationType", self.inv_type))
        create(c, "InvestigationUser", investigation=("Investigation", inv),
               user=("User", self.users["alice"]), role="PI")
        create(c, "InvestigationUser", investigation=("Investigation", inv),
               user=("User", self.users["bob"]), role="CI")
        create(c, "InvestigationInstrument", investigation=("Investigation", inv),
               instrument=("Instrument", self.instrument))
        ds = create(c, "Dataset", name="scan-1", investigation=("Investigation", inv),
                    type=("DatasetType", self.ds_type))
        for i in range(3):
            create(c, "Datafile", name=f"scan-1-{i}.nxs", fileSize=1000 * (i + 1),
                   dataset=("Dataset", ds), datafileFormat=("DatafileFormat", self.fmt))
        return inv

    def session(self, name: str) -> str:
        return self.catalogue.sessions.create(f"db/{name}")

    def run(self, rounds: int = 20) -> None:
        """Run due jobs until none are left due now."""
        for _ in range(rounds):
            if not self.jobs.run_pending():
                return

    def due_now(self) -> None:
        """Make waiting jobs (retries after a back-off) due at once."""
        t = self.db.tables.job
        with self.db.begin() as conn:
            conn.execute(update(t).where(t.c.state == "QUEUED")
                         .values(not_before=datetime(2000, 1, 1)))

    def sync_jobs(self) -> list[Any]:
        return self.jobs.queue.find(kind=SYNC)

    def publication(self, doi: str) -> Obj:
        with self.catalogue.as_system(read_only=True) as work:
            found = work.search(f"SELECT p FROM DataPublication p WHERE p.pid = '{doi}'")
        assert len(found) == 1, found
        return found[0]


@pytest.fixture
def world(migrated_url: str, datacite_server: DataCiteServer) -> Iterator[World]:
    db = Database(migrated_url)
    migrate.upgrade(db)
    db.detect_ids()
    w = World(db, datacite_server)
    yield w
    w.publishing.close()
    db.dispose()


def _posts(server: DataCiteServer, doi: str) -> int:
    return len(server.calls_to("POST", doi=doi))


def test_an_investigation_is_minted_draft_first_then_its_publication(world: World) -> None:
    out = world.publishing.mint_investigation(None, world.investigation)
    doi = out["doi"]
    assert doi == f"{world.server.prefix}/inv-{world.investigation}"
    assert out["state"] == "pending" and out["target"] == "findable"
    assert world.server.records.get(doi) is None  # nothing before the job runs
    world.run()
    record = world.server.record(doi)
    assert record.state == "findable"
    a = record.attributes
    assert a["url"] == f"http://cairn.test/doi/{doi}"
    assert a["titles"][0]["title"].startswith("Calcite under pressure")
    assert [c["name"] for c in a["creators"]][:2] == ["Archer, Alice", "Brewer, Bob"] or \
        [c.get("familyName") for c in a["creators"]][:2] == ["Archer", "Brewer"]
    # created once, as a draft, then published with the DataPublication's metadata
    calls = world.server.calls_to(doi=doi)
    assert [c.method for c in calls if c.method != "GET"] == ["POST", "PUT"]
    assert calls[[c.method for c in calls].index("POST")].event is None
    assert world.server.calls_to("PUT", doi=doi)[-1].event == "publish"
    pub = world.publication(doi)
    assert pub.values["title"].startswith("Calcite under pressure")
    st = world.publishing.state(None, doi)
    assert st["state"] == "findable" and st["dataPublicationId"] == pub.id
    assert "error" not in st
    # asking again gives the same DOI and calls nobody
    again = world.publishing.mint_investigation(None, world.investigation)
    assert again["doi"] == doi
    world.run()
    assert _posts(world.server, doi) == 1


def test_an_outage_is_retried_and_never_mints_twice(world: World) -> None:
    world.server.outage(True)
    doi = world.publishing.mint_investigation(None, world.investigation)["doi"]
    world.run()
    job = world.sync_jobs()[0]
    assert job.state is State.QUEUED and job.attempts == 1  # waiting to try again
    st = world.publishing.state(None, doi)
    assert st["state"] == "pending" and "503" in st["error"]
    world.server.outage(False)
    world.server.lose_next(1, method="POST")  # DataCite made the draft; the answer was lost
    world.due_now()
    world.run()
    world.due_now()
    world.run()
    assert world.server.record(doi).state == "findable"
    assert _posts(world.server, doi) == 1
    assert world.publishing.state(None, doi)["state"] == "findable"
    assert len(world.server.records) == 1


def test_a_stopped_datacite_keeps_the_request(world: World) -> None:
    world.server.stop()
    try:
        doi = world.publishing.mint_investigation(None, world.investigation)["doi"]
        world.run()
        assert world.publishing.state(None, doi)["state"] == "pending"
    finally:
        world.server.start()
    world.due_now()
    world.run()
    assert world.server.record(doi).state == "findable"


def test_minting_refuses_what_datacite_would_refuse(world: World) -> None:
    with pytest.raises(IcatError) as e:
        world.publishing.mint_investigation(None, world.bare)
    assert e.value.type is ErrorType.BAD_PARAMETER
    assert "creator" in e.value.message.lower()
    report = world.publishing.check_investigation(None, world.bare)
    assert not report["mintable"]
    mandatory = {f["property"] for f in report["findings"] if f["level"] == "mandatory"}
    assert any("creator" in p for p in mandatory)
    ok = world.publishing.check_investigation(None, world.investigation)
    assert ok["mintable"], ok["findings"]
    assert world.server.calls == []  # a check calls nobody


def test_who_may_mint(world: World) -> None:
    inv = world.investigation
    for name in ("bob", "carol"):  # a co-investigator; someone not on it
        with pytest.raises(IcatError) as e:
            world.publishing.mint_investigation(world.session(name), inv)
        assert e.value.type is ErrorType.INSUFFICIENT_PRIVILEGES
        assert "PI" in e.value.message
    out = world.publishing.mint_investigation(world.session("alice"), inv, draft=True)
    assert out["createdBy"] == "db/alice" and out["target"] == "draft"
    world.run()
    assert world.server.record(out["doi"]).state == "draft"
    assert world.publishing.landing(out["doi"]) is None  # a draft is not public
    with pytest.raises(IcatError) as e:  # nor is its state, but to whoever may change it
        world.publishing.state(world.session("bob"), out["doi"])
    assert e.value.type is ErrorType.INSUFFICIENT_PRIVILEGES
    with pytest.raises(IcatError) as e:
        world.publishing.mint_investigation(world.session("alice"), 999999)
    assert e.value.type is ErrorType.NO_SUCH_OBJECT_FOUND
    # the grouping may mint anything it can read; an instrument's scientist its instrument
    other = world.make_investigation("AB-3", "Dolomite at depth")
    assert world.publishing.mint_investigation(world.session("dana"), other)["doi"]
    with pytest.raises(IcatError):
        world.publishing.mint_instrument(world.session("alice"), world.instrument)
    assert world.publishing.mint_instrument(world.session("carol"), world.instrument)["doi"]
    # bob can't publish alice's draft; alice can
    with pytest.raises(IcatError):
        world.publishing.publish(world.session("bob"), out["doi"])
    world.publishing.publish(world.session("alice"), out["doi"])
    world.run()
    assert world.server.record(out["doi"]).state == "findable"
    mine = world.publishing.list(world.session("alice"))
    assert [d["doi"] for d in mine] == [out["doi"]]
    assert len(world.publishing.list(None)) == 3


def test_may_mint_says_why_not(world: World) -> None:
    inv = world.investigation
    for name in ("bob", "carol"):
        why = world.publishing.may_mint(world.session(name), [inv])
        assert why is not None and "PI" in why and f"db/{name}" in why
    assert world.publishing.may_mint(world.session("alice"), [inv]) is None
    assert world.publishing.may_mint(world.session("dana"), [inv]) is None  # the grouping
    assert world.publishing.may_mint(None, [inv]) is None  # the command line, as root
    # a collection request: the investigations its datafiles come from
    with world.catalogue.as_system(read_only=True) as work:
        files = [int(o) for o in work.search("SELECT f.id FROM Datafile f")]
    request = {"title": "Frames", "datafileIds": files}
    assert world.publishing.may_mint(world.session("alice"), request=request) is None
    why = world.publishing.may_mint(world.session("bob"), request=request)
    assert why is not None and f"investigation {inv}" in why
    with pytest.raises(IcatError) as e:  # a request nobody could make
        world.publishing.may_mint(world.session("alice"), request={"title": "Nothing"})
    assert e.value.type is ErrorType.BAD_PARAMETER
    assert world.server.calls == []  # asking calls nobody, writes nothing
    with world.db.read() as conn:
        assert not world.publishing.dois.any(conn)


#: Where a DOI's metadata live once its job has written them.
PUBLICATION_TABLES = ("DataPublication", "DataCollection", "DataCollectionInvestigation",
                      "DataCollectionDataset", "DataCollectionDatafile", "DataPublicationUser",
                      "DataPublicationDate", "DataPublicationType", "Affiliation", "Subject",
                      "RelatedItem", "FundingReference", "DataPublicationFunding")


def test_minters_need_not_read_the_data_publication(world: World) -> None:
    """Rules as the demo's: nobody but root reads DataPublications. Whoever may mint still
    publishes, versions and withdraws: the service decides with the caller's roles and reads
    what DataCite gets as itself."""
    with world.catalogue.as_system() as work:
        rules = [int(r.id) for r in work.search(
            "SELECT r FROM Rule r WHERE r.what IN ("
            + ", ".join(f"'{e}'" for e in PUBLICATION_TABLES) + ")")]
        work.delete([(E["Rule"], r) for r in rules])
    assert len(rules) == len(PUBLICATION_TABLES)
    alice = world.session("alice")
    with world.catalogue.as_system(read_only=True) as work:
        files = [int(o) for o in work.search("SELECT f.id FROM Datafile f")]
    request = {"title": "Three frames", "creators": [{"username": "db/alice"}],
               "datafileIds": files}
    mine = world.publishing.draft_collection(alice, request)["doi"]
    theirs = world.publishing.draft_collection(None, {**request, "title": "Root's pick"})["doi"]
    world.run()
    assert world.publishing.state(alice, mine)["dataPublicationId"] > 0
    assert world.catalogue.search(alice, "SELECT p FROM DataPublication p") == []
    # her own draft; a draft root made of her data (she may mint what it names)
    for doi in (mine, theirs):
        assert world.publishing.publish(alice, doi)["target"] == "findable"
    world.run()
    for doi in (mine, theirs):
        assert world.server.record(doi).state == "findable"  # type: ignore[union-attr]
    # a new version of it, and a withdrawal
    v2 = world.publishing.new_version(alice, mine, {"description": "Reprocessed."})
    world.run()
    assert world.server.record(v2["doi"]).state == "draft"  # type: ignore[union-attr]
    world.publishing.withdraw(alice, theirs, "Picked the wrong frames")
    world.run()
    assert world.server.record(theirs).state == "registered"  # type: ignore[union-attr]
    # the decision stays the caller's: bob (not a PI) may do none of it
    bob = world.session("bob")
    for act in (lambda: world.publishing.publish(bob, v2["doi"]),
                lambda: world.publishing.new_version(bob, mine),
                lambda: world.publishing.withdraw(bob, mine, "No reason")):
        with pytest.raises(IcatError) as e:
            act()
        assert e.value.type is ErrorType.INSUFFICIENT_PRIVILEGES


def test_a_change_in_the_catalogue_is_sent_again(world: World) -> None:
    doi = world.publishing.mint_investigation(None, world.investigation)["doi"]
    world.run()
    puts = len(world.server.calls_to("PUT", doi=doi))
    pub = world.publication(doi)
    with world.catalogue.as_system() as work:
        work.update(Obj(E["DataPublication"], id=pub.id,
                        values={"title": "Calcite under pressure, revisited"}))
    world.run()
    record = world.server.record(doi)
    assert record.attributes["titles"][0]["title"] == "Calcite under pressure, revisited"
    assert record.state == "findable"
    sent = world.server.calls_to("PUT", doi=doi)
    assert len(sent) == puts + 1 and sent[-1].event is None
    sizes = list(record.attributes["sizes"])
    # nothing changed: nothing sent
    assert world.publishing.refresh() == 0
    # a new file changes sizes: the periodic refresh sends them
    ds = world.catalogue.as_system
    with ds(read_only=True) as work:
        dataset = work.search("SELECT d.id FROM Dataset d WHERE d.name = 'scan-1'")[0]
    create(world.catalogue, "Datafile", name="late.nxs", fileSize=5000,
           dataset=("Dataset", dataset), datafileFormat=("DatafileFormat", world.fmt))
    assert world.publishing.refresh() == 1
    world.run()
    assert world.server.record(doi).attributes["sizes"] == ["4 files", "11.0 kB"] != sizes


# -- DataCite short of where Cairn has a DOI: brought there, never recorded back ---------------

def _retitle(world: World, doi: str, title: str) -> None:
    """Change what ``doi`` describes (its DataPublication's title): a refresh sends it."""
    pub = world.publication(doi)
    with world.catalogue.as_system() as work:
        work.update(Obj(E["DataPublication"], id=pub.id, values={"title": title}))


def test_a_findable_doi_datacite_lost_is_published_again(world: World) -> None:
    doi = world.publishing.mint_investigation(None, world.investigation)["doi"]
    world.run()
    assert world.server.record(doi).state == "findable"
    world.server.reset()  # DataCite lost it (or never had it: the demo's DOIs)
    _retitle(world, doi, "Calcite under pressure, sent again")
    world.run()
    # Created again as findable, in one call: never a draft at DataCite, nor here.
    record = world.server.record(doi)
    assert record is not None and record.state == "findable"
    assert record.attributes["titles"][0]["title"] == "Calcite under pressure, sent again"
    assert [(c.method, c.event) for c in world.server.calls_to(doi=doi) if c.method != "GET"
            ] == [("POST", "publish")]
    st = world.publishing.state(None, doi)
    assert st["state"] == "findable" and "error" not in st
    landing = world.publishing.landing(doi)
    assert landing is not None and not landing.tombstone


def test_a_doi_datacite_holds_as_a_draft_is_published(world: World) -> None:
    doi = world.publishing.mint_investigation(None, world.investigation)["doi"]
    world.run()
    kept = world.server.record(doi)
    assert kept is not None
    world.server.reset()
    world.server.seed(doi, kept.attributes, state="draft")  # e.g. made by another client
    _retitle(world, doi, "Calcite under pressure, published again")
    world.run()
    assert world.server.record(doi).state == "findable"  # type: ignore[union-attr]
    assert [(c.method, c.event) for c in world.server.calls_to(doi=doi) if c.method != "GET"
            ] == [("PUT", "publish")]
    assert world.publishing.state(None, doi)["state"] == "findable"


def test_a_withdrawn_doi_datacite_lost_is_registered_again(world: World) -> None:
    doi = world.publishing.mint_investigation(None, world.investigation)["doi"]
    world.run()
    world.publishing.withdraw(None, doi, "Wrong sample recorded")
    world.run()
    assert world.server.record(doi).state == "registered"  # type: ignore[union-attr]
    world.server.reset()
    _retitle(world, doi, "Calcite, withdrawn")
    world.run()
    # "hide" applies to a findable DOI only: a lost one is registered again instead.
    assert world.server.record(doi).state == "registered"  # type: ignore[union-attr]
    assert [(c.method, c.event) for c in world.server.calls_to(doi=doi) if c.method != "GET"
            ] == [("POST", "register")]
    st = world.publishing.state(None, doi)
    assert st["state"] == "registered" and st["withdrawn"] and "error" not in st
    landing = world.publishing.landing(doi)
    assert landing is not None and landing.tombstone


def test_a_state_short_of_the_target_is_sent_again_by_the_refresh(world: World) -> None:
    doi = world.publishing.mint_investigation(None, world.investigation, draft=True)["doi"]
    world.run()
    world.publishing.publish(None, doi)
    # Before its job runs, the DOI's row says draft (as a database harmed by the old sync
    # would): the refresh sends it although its metadata did not change.
    with world.db.begin() as conn:
        conn.execute(update(world.db.tables.job).where(world.db.tables.job.c.key == doi)
                     .values(state="FAILED"))
    assert world.publishing.state(None, doi)["state"] == "draft"
    assert world.publishing.refresh() == 1
    world.run()
    assert world.server.record(doi).state == "findable"  # type: ignore[union-attr]
    assert world.publishing.state(None, doi)["state"] == "findable"
    assert world.publishing.refresh() == 0


def _stuck_as_draft(doi: str) -> httpx.MockTransport:
    """A DataCite that answers every call for ``doi`` with it as a draft, whatever it was
    sent (an account that lost its right to publish, a DataCite bug)."""
    calls: list[tuple[str, str | None]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else {}
        calls.append((request.method, body.get("data", {}).get("attributes", {}).get("event")))
        return httpx.Response(200, json={"data": {"id": doi, "type": "dois", "attributes": {
            "doi": doi, "state": "draft"}}})

    transport = httpx.MockTransport(answer)
    transport.calls = calls  # type: ignore[attr-defined]
    return transport


def test_a_downgrade_datacite_answers_is_not_recorded(world: World,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    doi = world.publishing.mint_investigation(None, world.investigation)["doi"]
    world.run()
    assert world.publishing.state(None, doi)["state"] == "findable"
    s = world.settings
    transport = _stuck_as_draft(doi)
    stuck = DataCite(s.datacite_url, s.prefix, s.username, s.password, transport=transport)
    monkeypatch.setattr(world.publishing, "client", lambda: stuck)
    _retitle(world, doi, "Calcite under pressure, not sent")
    world.run()
    # It was asked to publish (DataCite said draft), then Cairn kept its own state and said
    # why; the job failed rather than record a draft nobody asked for.
    assert ("PUT", "publish") in transport.calls  # type: ignore[attr-defined]
    st = world.publishing.state(None, doi)
    assert st["state"] == "findable", st
    assert "as draft although it was sent to be findable" in st["error"]
    assert world.publishing.landing(doi) is not None
    assert next(j.state for j in world.sync_jobs() if j.key == doi) is State.FAILED
    # DataCite right again: the next refresh sends what was not accepted, and all is well.
    monkeypatch.undo()
    assert world.publishing.refresh() == 1
    world.run()
    record = world.server.record(doi)
    assert record is not None and record.state == "findable"
    assert record.attributes["titles"][0]["title"] == "Calcite under pressure, not sent"
    st = world.publishing.state(None, doi)
    assert st["state"] == "findable" and "error" not in st


def test_versions_link_each_other_and_a_concept_doi(world: World) -> None:
    v1 = world.publishing.mint_investigation(None, world.investigation)["doi"]
    world.run()
    v2 = world.publishing.new_version(None, v1, {"description": "Reprocessed."})
    assert v2["version"] == 2 and v2["target"] == "draft"
    concept = v2["concept"]
    world.run()
    world.publishing.publish(None, v2["doi"])
    world.run()

    def relations(doi: str) -> set[tuple[str, str]]:
        return {(r["relationType"], r["relatedIdentifier"])
                for r in world.server.record(doi).attributes.get("relatedIdentifiers", [])}

    assert {("IsVersionOf", concept), ("IsPreviousVersionOf", v2["doi"])} <= relations(v1)
    assert {("IsVersionOf", concept), ("IsNewVersionOf", v1)} <= relations(v2["doi"])
    assert {("HasVersion", v1), ("HasVersion", v2["doi"])} <= relations(concept)
    assert world.server.record(v2["doi"]).attributes["version"] == "2"
    assert world.server.record(concept).state == "findable"
    landing = world.publishing.landing(concept)
    assert landing is not None and [v.doi for v in landing.versions] == [v2["doi"], v1]
    assert landing.metadata.attributes["descriptions"][0]["description"] == "Reprocessed."


def test_withdrawal_hides_the_doi_and_leaves_a_tombstone(world: World) -> None:
    doi = world.publishing.mint_investigation(None, world.investigation)["doi"]
    world.run()
    with pytest.raises(IcatError):
        world.publishing.withdraw(None, doi, "  ")
    out = world.publishing.withdraw(None, doi, "Wrong sample recorded", "10.5555/other")
    assert out["withdrawn"] and out["replacedBy"] == "10.5555/other"
    world.run()
    record = world.server.record(doi)
    assert record.state == "registered"  # hidden, still resolving
    assert world.server.calls_to("PUT", doi=doi)[-1].event == "hide"
    withdrawn = [d for d in record.attributes["dates"] if d["dateType"] == "Withdrawn"]
    assert withdrawn and withdrawn[0]["dateInformation"] == "Wrong sample recorded"
    landing = world.publishing.landing(doi.upper())
    assert landing is not None and landing.tombstone
    assert landing.reason == "Wrong sample recorded"


def test_a_collection_draft_is_published_or_deleted(world: World) -> None:
    alice = world.session("alice")
    with world.catalogue.as_system(read_only=True) as work:
        files = [o.id for o in work.search("SELECT f FROM Datafile f")]
    request = {"title": "Three frames", "description": "The frames of figure 2.",
               "creators": [{"username": "db/alice"}, {"username": "db/bob"}],
               "datafileIds": files}
    out = world.publishing.draft_collection(alice, request)
    assert out["kind"] == "collection" and out["target"] == "draft"
    world.run()
    assert world.server.record(out["doi"]).state == "draft"
    pub = world.publication(out["doi"])
    assert pub.values["title"] == "Three frames"
    world.publishing.publish(alice, out["doi"])
    world.run()
    assert world.server.record(out["doi"]).state == "findable"
    # a second draft, deleted: gone at DataCite and from the catalogue
    other = world.publishing.draft_collection(alice, {**request, "title": "Scrap"})
    world.run()
    world.publishing.delete_draft(alice, other["doi"])
    world.run()
    assert world.server.records.get(other["doi"]) is None
    with world.catalogue.as_system(read_only=True) as work:
        assert not work.search("SELECT p FROM DataPublication p WHERE p.title = 'Scrap'")
    with pytest.raises(IcatError) as e:
        world.publishing.state(alice, other["doi"])
    assert e.value.type is ErrorType.NO_SUCH_OBJECT_FOUND
    with pytest.raises(IcatError):  # a findable DOI can't be deleted
        world.publishing.delete_draft(alice, out["doi"])


def test_an_instrument_gets_a_pid_and_a_tombstone_when_decommissioned(world: World) -> None:
    doi = world.publishing.mint_instrument(None, world.instrument)["doi"]
    world.run()
    record = world.server.record(doi)
    assert record.state == "findable"
    assert record.attributes["types"]["resourceTypeGeneral"] == "Instrument"
    with world.catalogue.as_system(read_only=True) as work:
        pid = work.search(f"SELECT i.pid FROM Instrument i WHERE i.id = {world.instrument}")
    assert pid == [f"doi:{doi}"]
    landing = world.publishing.landing(doi)
    assert landing is not None and landing.kind is Kind.INSTRUMENT and not landing.tombstone
    with world.catalogue.as_system() as work:
        work.update(Obj(E["Instrument"], id=world.instrument,
                        values={"endDate": datetime(2025, 1, 31)}))
    landing = world.publishing.landing(doi)
    assert landing is not None and landing.tombstone and landing.withdrawn is None
    world.run()  # the decommissioning date reaches DataCite
    dates = world.server.record(doi).attributes.get("dates", [])
    assert any(d.get("dateInformation") == "DeCommissioned" for d in dates)


def test_released_investigations_are_minted_automatically(migrated_url: str,
                                                          datacite_server: DataCiteServer
                                                          ) -> None:
    db = Database(migrated_url)
    migrate.upgrade(db)
    db.detect_ids()
    w = World(db, datacite_server, auto_mint=True, auto_mint_from=date(2025, 1, 1))
    try:
        later = w.make_investigation("AB-9", "Not yet released")
        elsewhere = w.make_investigation("AB-8", "Released, its DOI minted elsewhere")
        with w.catalogue.as_system() as work:
            work.update(Obj(E["Investigation"], id=later, values={
                "releaseDate": datetime.now() + timedelta(days=30)}))
            work.update(Obj(E["Investigation"], id=elsewhere, values={"doi": "10.9999/ab-8"}))
        assert w.publishing.mint_released() == 1  # AB-1 (released 2025-03-03); AB-2 has none
        w.run()
        dois = {d["subjectId"]: d for d in w.publishing.list(None)}
        assert set(dois) == {w.investigation}
        assert w.publishing.mint_released() == 0  # never twice
    finally:
        w.publishing.close()
        db.dispose()


def test_landing_of_a_pid_recorded_in_the_catalogue(world: World) -> None:
    with world.catalogue.as_system() as work:
        work.update(Obj(E["Instrument"], id=world.instrument,
                        values={"pid": "https://doi.org/10.9999/LSF.I03"}))
    landing = world.publishing.landing("10.9999/lsf.i03")
    assert landing is not None and landing.kind is Kind.INSTRUMENT
    assert landing.state is DoiState.FINDABLE
    with world.catalogue.as_system() as work:
        work.update(Obj(E["Investigation"], id=world.investigation,
                        values={"doi": "10.9999/AB-1"}))
    landing = world.publishing.landing("https://doi.org/10.9999/ab-1")
    assert landing is not None and landing.kind is Kind.INVESTIGATION
    assert landing.metadata.data == {"Investigation": [world.investigation]}
    assert world.publishing.landing("10.9999/nothing") is None


def test_nothing_is_minted_without_datacite(migrated_url: str,
                                            datacite_server: DataCiteServer) -> None:
    db = Database(migrated_url)
    migrate.upgrade(db)
    db.detect_ids()
    w = World(db, datacite_server)
    try:
        w.publishing.settings = PublishingSettings()
        with pytest.raises(IcatError) as e:
            w.publishing.mint_investigation(None, w.investigation)
        assert "datacite_url" in e.value.message
        assert w.publishing.refresh() == 0
        with db.read() as conn:
            assert conn.execute(select(db.tables.doi.c.doi)).first() is None
    finally:
        db.dispose()


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC)


def test_the_demo_has_landing_pages_and_a_tombstone(migrated_url: str) -> None:
    from cairn.demo import load_demo
    from cairn.demo.publications import publish_demo

    db = Database(migrated_url)
    migrate.upgrade(db)
    db.detect_ids()
    try:
        catalogue = catalogue_of(db)
        load_demo(catalogue)
        dois = publish_demo(catalogue, "db/root")
        assert len(dois) == 4 and len(set(dois)) == 4
        service = PublishingService(catalogue, PublishingSettings(),
                                    catalogue.settings.public_url)
        pages = [service.landing(d) for d in dois]
        assert all(p is not None for p in pages)
        *published, retired = [p for p in pages if p is not None]
        for page in published:
            assert page.kind is Kind.INVESTIGATION and not page.tombstone
            assert page.metadata.attributes["creators"] and page.metadata.files
            assert page.metadata.files.datafiles > 0
        assert retired.kind is Kind.INSTRUMENT and retired.tombstone
        # recorded as DataCite would hold them: nothing to send again
        with db.read() as conn:
            rows = service.dois.all(conn)
        assert {r.state for r in rows} == {DoiState.FINDABLE}
        with catalogue.as_system(read_only=True) as work:
            assert all(service.attributes(work, r) == r.sent for r in rows)
    finally:
        db.dispose()
