"""Change events on every backend: what units of work record and when listeners hear of it
(in the transaction, after the commit, after a rollback), the jobs a listener requests, and
the demo's bulk load."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cairn.catalogue.changes import ChangeKind, ChangeListener, Changes
from cairn.catalogue.clone import clone
from cairn.catalogue.objects import Obj
from cairn.catalogue.service import Catalogue
from cairn.catalogue.work import Work
from cairn.db import migrate
from cairn.db.engine import Database
from cairn.demo import DEMO_ENTITIES, load_demo
from cairn.errors import IcatError
from cairn.jobs import Kind, Scheduler, State
from cairn.schema import SCHEMA
from cairn.startup import catalogue_of
from tests.integration.catalogue_objects import create

C, U, D = ChangeKind.CREATE, ChangeKind.UPDATE, ChangeKind.DELETE


class Recorder(ChangeListener):
    """Every event as (phase, entity, kind, ids), and optionally a job per transaction."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, ChangeKind, list[int]]] = []
        self.enqueue = False
        self.fail = False

    def _note(self, phase: str, changes: Changes) -> None:
        self.events += [(phase, e, k, list(ids)) for e, k, ids in changes.groups()]

    def in_transaction(self, work: Work, changes: Changes) -> None:
        self._note("during", changes)
        if self.fail:
            raise RuntimeError("the listener refuses")
        if self.enqueue:
            work.enqueue("t.follow", {"entities": sorted(changes.entities())})

    def committed(self, changes: Changes) -> None:
        self._note("committed", changes)

    def rolled_back(self, changes: Changes) -> None:
        self._note("rolled back", changes)

    def phase(self, phase: str) -> set[tuple[str, ChangeKind, tuple[int, ...]]]:
        return {(e, k, tuple(ids)) for p, e, k, ids in self.events if p == phase}


class World:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.jobs = Scheduler(db, poll_seconds=0.05, stale_seconds=5)
        self.jobs.register(Kind("t.follow", lambda ctx: None))
        self.recorder = Recorder()
        self.catalogue = Catalogue(catalogue_of(db).settings, db, {}, jobs=self.jobs,
                                   listeners=[self.recorder])

    def create(self, entity: str, **values: Any) -> int:
        return create(self.catalogue, entity, **values)


@pytest.fixture
def world(migrated_url: str) -> Iterator[World]:
    db = Database(migrated_url)
    migrate.upgrade(db)
    try:
        yield World(db)
    finally:
        db.dispose()


def test_writes_are_heard_in_the_transaction_and_after_the_commit(world: World) -> None:
    fac = world.create("Facility", name="F")
    itype = world.create("InvestigationType", name="t", facility=("Facility", fac))
    rec = world.recorder
    assert rec.phase("during") == rec.phase("committed") == {
        ("Facility", C, (fac,)), ("InvestigationType", C, (itype,))}
    rec.events.clear()
    e = SCHEMA.entities
    inv = Obj(e["Investigation"], values={"name": "i", "visitId": "1", "title": "T"},
              ones={"facility": Obj(e["Facility"], id=fac),
                    "type": Obj(e["InvestigationType"], id=itype)},
              manys={"keywords": [Obj(e["Keyword"], values={"name": n}) for n in "ab"]})
    with world.catalogue.as_system() as work:
        inv_id = work.create(inv)
        kw = work.search(f"SELECT k.id FROM Keyword k WHERE k.investigation.id = {inv_id}")
        work.update(Obj(e["Investigation"], id=inv_id, values={"title": "New"}))
    assert rec.phase("committed") == {("Investigation", C, (inv_id,)),
                                      ("Keyword", C, tuple(sorted(kw))),
                                      ("Investigation", U, (inv_id,))}
    rec.events.clear()
    with world.catalogue.as_system() as work:  # a delete records its whole cascade
        work.delete([(e["Investigation"], inv_id)])
    assert rec.phase("committed") == {("Investigation", D, (inv_id,)),
                                      ("Keyword", D, tuple(sorted(kw)))}
    assert rec.phase("rolled back") == set()


def test_a_clone_records_every_copy(world: World) -> None:
    fac = world.create("Facility", name="F")
    world.recorder.events.clear()
    with world.catalogue.as_system() as work:
        copy = clone(work, SCHEMA.entities["Facility"], fac, {"name": "F2"})
    assert world.recorder.phase("committed") == {("Facility", C, (copy,))}


def test_a_failed_unit_is_heard_as_rolled_back(world: World) -> None:
    fac = world.create("Facility", name="F")
    world.recorder.events.clear()
    with pytest.raises(IcatError), world.catalogue.as_system() as work:
        work.create(Obj(SCHEMA.entities["Facility"], values={"name": "G"}))
        work.create(Obj(SCHEMA.entities["Facility"], values={"name": "F"}))  # exists
    assert world.recorder.phase("committed") == set()
    (gone,) = world.recorder.phase("rolled back")
    assert gone[:2] == ("Facility", C) and fac not in gone[2]
    with world.catalogue.as_system(read_only=True) as work:
        assert work.search("SELECT f.name FROM Facility f") == ["F"]


def test_a_listener_requests_jobs_only_for_committed_changes(world: World) -> None:
    world.recorder.enqueue = True
    world.create("Facility", name="F")
    with pytest.raises(IcatError), world.catalogue.as_system() as work:
        work.create(Obj(SCHEMA.entities["Facility"], values={"name": "F"}))  # a clash
    (job,) = world.jobs.queue.find(kind="t.follow")
    assert job.payload == {"entities": ["Facility"]} and job.state is State.QUEUED
    assert world.jobs.run_pending() == 1


def test_a_failing_listener_rolls_the_unit_back(world: World) -> None:
    world.recorder.fail = True
    with pytest.raises(RuntimeError, match="refuses"):
        world.create("Facility", name="F")
    with world.catalogue.as_system(read_only=True) as work:
        assert work.search("SELECT COUNT(f) FROM Facility f") == [0]
    assert {p for p, *_ in world.recorder.events} == {"during", "rolled back"}


def test_the_demo_load_is_heard_as_runs_of_ids(world: World) -> None:
    counts = load_demo(world.catalogue, scale=0.05, seed=3)
    committed = {(e, k): ids for p, e, k, ids in world.recorder.events if p == "committed"}
    # Bulk-loaded rows, and the rules and public steps the demo creates like any client.
    assert {e for e, _ in committed} == {*DEMO_ENTITIES, "Rule", "PublicStep"}
    for entity in DEMO_ENTITIES:
        ids = committed[(entity, C)]
        assert len(ids) == counts[entity]
        with world.catalogue.as_system(read_only=True) as work:
            assert work.search(f"SELECT x.id FROM {entity} x ORDER BY x.id") == ids


def test_a_read_only_unit_refuses_to_write(world: World) -> None:
    """A read-only unit may run without a transaction: a write there is refused, not run."""
    with world.catalogue.as_system(read_only=True) as work:
        with pytest.raises(RuntimeError, match="read-only"):
            work.create(Obj(SCHEMA.entities["Facility"], values={"name": "F"}))
        with pytest.raises(RuntimeError, match="read-only"):
            work.enqueue("t.follow", {})
        assert work.search("SELECT COUNT(f) FROM Facility f") == [0]
    assert world.recorder.events == []


# -- every face of a real server ----------------------------------------------------------------


def test_rest_soap_and_the_data_service_are_heard(tmp_path: Any, backend: str) -> None:
    import json

    from tests.integration.ids_support import Ids, Rest, build, start

    log = tmp_path / "changes.log"
    srv, drop = start(tmp_path, backend, 'key = "s3cret"',
                      env={"CAIRN_SERVER__PLUGINS": "tests.integration.changes_plugin",
                           "CAIRN_TEST_CHANGES_LOG": str(log)})

    def heard() -> set[tuple[str, str, int]]:
        lines = log.read_text().splitlines() if log.exists() else []
        return {(e, k, int(i)) for e, k, i in (line.split() for line in lines)}

    try:
        fx = build(srv)  # REST writes as root
        assert ("Investigation", "CREATE", fx.inv_a) in heard()
        assert ("Dataset", "CREATE", fx.ds_a1) in heard()
        rest, ids = Rest(srv), Ids(srv)
        jdoe = srv.login("jdoe")
        df = ids.ok_put(jdoe, fx.ds_a1, "a.dat", b"some bytes", fx.fmt)
        # The data service's own bookkeeping (the location's hash) is an update like others.
        assert {("Datafile", "CREATE", df), ("Datafile", "UPDATE", df)} <= heard()
        r = ids.http.delete("/ids/delete", params={"sessionId": jdoe, "datafileIds": df})
        assert r.status_code == 204, r.text
        assert ("Datafile", "DELETE", df) in heard()
        kw = rest.create("Keyword", name="k", investigation={"id": fx.inv_b})
        rest.write({"Keyword": {"id": kw, "name": "k2"}})
        assert ("Keyword", "UPDATE", kw) in heard()
        r = srv.http.delete("/icat/entityManager", params={
            "sessionId": rest.root, "entities": json.dumps({"Investigation": {"id": fx.inv_b}})})
        assert r.status_code == 204, r.text
        assert {("Investigation", "DELETE", fx.inv_b), ("Dataset", "DELETE", fx.ds_b1),
                ("Keyword", "DELETE", kw)} <= heard()
        icat = pytest.importorskip("icat", reason="python-icat (the test extra) is missing")
        client = icat.Client(srv.url + "/ICATService/ICAT?wsdl", cache=None)
        client.autoLogout = False
        client.login("simple", {"username": "root", "password": "secret"})
        try:
            fac = client.new("Facility", name="soap facility")
            fac.create()
            fac.fullName = "Created over SOAP"
            fac.update()
            assert {("Facility", "CREATE", fac.id), ("Facility", "UPDATE", fac.id)} <= heard()
            client.delete(fac)
            assert ("Facility", "DELETE", fac.id) in heard()
        finally:
            client.logout()
        before = heard()
        r = srv.http.get("/icat/entityManager", params={"sessionId": rest.root,
                                                        "query": "Facility"})
        assert r.status_code == 200 and heard() == before  # reads change nothing
    finally:
        srv.stop()
        drop()

