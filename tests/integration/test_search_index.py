"""The search index on every backend: documents written in the transaction of the change
(a rollback leaves none), related text matched where it lives (a rename needs no
re-indexing), and rebuilds that resume where they stopped and keep the index whole while
they run."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import event, select, text

from cairn.catalogue.objects import Obj
from cairn.catalogue.service import Catalogue
from cairn.db import migrate
from cairn.db.engine import Database
from cairn.demo import load_demo
from cairn.errors import IcatError
from cairn.jobs import Again, Cancelled, JobContext, Scheduler, State
from cairn.jobs.model import Job
from cairn.schema import SCHEMA
from cairn.search.execute import Search
from cairn.search.index import INDEXED
from cairn.search.indexer import REBUILD
from cairn.search.request import FacetRequest, SearchRequest
from cairn.search.service import SearchService
from cairn.startup import catalogue_of
from tests.integration.catalogue_objects import create

E = SCHEMA.entities


class World:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.jobs = Scheduler(db, poll_seconds=0.05, stale_seconds=5)
        self.catalogue = Catalogue(catalogue_of(db).settings, db, {}, jobs=self.jobs)
        self.search = SearchService(self.catalogue, db, list(_ALL), jobs=self.jobs)
        self.search.start()
        self.jobs.register(*self.search.job_kinds())

    def create(self, entity: str, **values: Any) -> int:
        return create(self.catalogue, entity, **values)

    def update(self, entity: str, id: int, **values: Any) -> None:
        with self.catalogue.as_system() as work:
            work.update(Obj(E[entity], id=id, values=values))

    def ids(self, target: str, text: str, **more: Any) -> list[int]:
        with self.catalogue.as_system(read_only=True) as work:
            s = Search(work, self.search.index, self.search.units,
                       SearchRequest(target=target, text=text, **more))
            return [h.id for h in s.page([("id", False)], None, 10_000)]


_ALL = tuple(INDEXED)


@pytest.fixture
def world(migrated_url: str) -> Iterator[World]:
    db = Database(migrated_url)
    migrate.upgrade(db)
    try:
        yield World(db)
    finally:
        db.dispose()


def _small(world: World) -> dict[str, int]:
    f = world.create("Facility", name="LSF")
    it = world.create("InvestigationType", name="experiment", facility=("Facility", f))
    dt = world.create("DatasetType", name="raw", facility=("Facility", f))
    fmt = world.create("DatafileFormat", name="nexus", version="1", facility=("Facility", f))
    st = world.create("SampleType", name="calcite", molecularFormula="CaCO3",
                      facility=("Facility", f))
    inv = world.create("Investigation", name="LSF-1", visitId="v1", title="Thermal expansion",
                       facility=("Facility", f), type=("InvestigationType", it))
    smp = world.create("Sample", name="crystal-7", investigation=("Investigation", inv),
                       type=("SampleType", st))
    ds = world.create("Dataset", name="scan_0001", investigation=("Investigation", inv),
                      type=("DatasetType", dt), sample=("Sample", smp))
    df = world.create("Datafile", name="scan_0001_00001.nxs", location="LSF-1/scan_0001/a.nxs",
                      dataset=("Dataset", ds), datafileFormat=("DatafileFormat", fmt))
    return {"f": f, "it": it, "dt": dt, "st": st, "fmt": fmt, "inv": inv, "smp": smp, "ds": ds,
            "df": df}


def test_a_document_is_searchable_when_its_write_commits(world: World) -> None:
    o = _small(world)
    assert world.ids("Datafile", "scan_0001_00001.nxs") == [o["df"]]
    assert world.ids("Investigation", "thermal") == [o["inv"]]
    with pytest.raises(IcatError), world.catalogue.as_system() as work:
        work.create(Obj(E["Datafile"], values={"name": "ghost.nxs"},
                        ones={"dataset": Obj(E["Dataset"], id=o["ds"])}))
        work.create(Obj(E["Facility"], values={"name": "LSF"}))  # exists: all rolls back
    assert world.ids("Datafile", "ghost") == []
    with world.catalogue.as_system() as work:
        work.delete([(E["Datafile"], o["df"])])
    assert world.ids("Datafile", "scan_0001_00001.nxs") == []


def test_related_text_follows_a_rename_without_reindexing(world: World) -> None:
    o = _small(world)
    assert world.ids("Datafile", "calcite") == [o["df"]]  # sample.type.name, two steps away
    assert world.ids("Dataset", "crystal") == [o["ds"]]
    assert world.ids("Investigation", "sample.name:crystal") == [o["inv"]]
    world.update("SampleType", o["st"], name="dolomite", molecularFormula="CaMg")
    world.update("Sample", o["smp"], name="grain-3")
    world.update("DatafileFormat", o["fmt"], name="hdf5", version="1")
    assert world.ids("Datafile", "calcite") == []
    assert world.ids("Datafile", "dolomite") == [o["df"]]
    assert world.ids("Datafile", "hdf5") == [o["df"]]
    assert world.ids("Dataset", "grain") == [o["ds"]]
    assert world.ids("Investigation", "sample.name:crystal") == []
    assert world.ids("Investigation", "sample.name:grain") == [o["inv"]]
    world.update("Investigation", o["inv"], name="LSF-1", visitId="v99",
                 title="Thermal expansion")
    assert world.ids("Datafile", "visitId:v99") == [o["df"]]


def _run_slices(world: World, payload: dict[str, Any], slices: int | None) -> dict[str, Any] | None:
    """Drive the rebuild handler; stop after ``slices`` answers of Again (a crash)."""
    kind = world.search.index.rebuild_kind()
    n = 0
    while True:
        job = Job(1, REBUILD, payload["entity"], State.RUNNING, payload, 0, datetime.now(),
                  datetime.now(), None, None, 0, None, None, None, None, False, None, None,
                  None, 0)
        out = kind.handler(JobContext(job))
        if out is None:
            return None
        assert isinstance(out, Again) and out.payload is not None
        payload = out.payload
        n += 1
        if slices is not None and n >= slices:
            return payload


def test_a_rebuild_resumes_where_it_stopped_and_keeps_the_index_whole(world: World) -> None:
    load_demo(world.catalogue, scale=0.1, user="db/root")
    index = world.search.index
    before = sorted(world.ids("Datafile", "*.dat"))
    total = index.count("Datafile")
    assert len(before) > 100 and total > len(before)
    index.block, index.slice_seconds = 50, 0.0  # one slice per run: a durable step each
    payload = _run_slices(world, {"entity": "Datafile"}, slices=3)
    assert payload is not None and payload["done"] == 150 * index.backend.parallel
    # mid-way, every document is still there (blocks are replaced, not emptied first)
    assert sorted(world.ids("Datafile", "*.dat")) == before
    assert index.count("Datafile") == total
    # a new process takes the job over from its payload: it does not start again
    fresh = SearchService(world.catalogue, world.db, list(_ALL), jobs=world.jobs)
    fresh.index.block, fresh.index.slice_seconds = 50, 0.0
    world.search = fresh
    assert _run_slices(world, payload, slices=None) is None
    assert sorted(world.ids("Datafile", "*.dat")) == before
    assert fresh.index.count("Datafile") == total


def test_a_deleting_rebuild_of_a_range_and_the_job_queue(world: World) -> None:
    load_demo(world.catalogue, scale=0.1, user="db/root")
    t = world.db.tables["Datafile"]
    with world.db.connect() as conn:
        ids = [r[0] for r in conn.execute(select(t.c.id).order_by(t.c.id))]
    low, high = ids[10], ids[20]
    with world.db.begin() as conn:  # documents lost outside the range stay lost
        world.search.index.clear(conn, "Datafile", ids[0] - 1, ids[-1])
    job = world.jobs.submit(REBUILD, {"entity": "Datafile", "min_id": low, "max_id": high,
                                      "delete": True}, key="Datafile")
    while world.jobs.run_pending([REBUILD]):
        pass
    done = world.jobs.queue.get(job)
    assert done is not None and done.state is State.DONE
    assert world.search.index.count("Datafile") == 10  # (low, high]
    assert done.progress == 10
    assert sorted(world.ids("Datafile", "name:*")) == ids[11:21]


def test_an_entity_left_out_is_dropped_and_rebuilt_when_indexed_again(world: World) -> None:
    o = _small(world)
    others = [e for e in _ALL if e != "Datafile"]
    narrow = SearchService(world.catalogue, world.db, others, jobs=world.jobs)
    narrow.start()  # Datafile's documents are dropped: nothing would keep them true
    with world.db.begin() as conn:
        doc = world.search.index.docs["Datafile"]
        assert not world.search.index.backend.exists(conn, doc)
    with pytest.raises(IcatError, match="Datafile is not indexed"):
        narrow._indexed("Datafile")
    again = SearchService(world.catalogue, world.db, list(_ALL), jobs=world.jobs)
    again.start()  # a new table where rows exist: a rebuild is queued
    while world.jobs.run_pending([REBUILD]):
        pass
    world.search = again
    assert again.index.count("Datafile") == 1
    assert world.ids("Datafile", "scan_0001_00001.nxs") == [o["df"]]


def test_a_cancelled_rebuild_of_an_empty_table_leaves_its_index(world: World) -> None:
    o = _small(world)
    index = world.search.index
    with world.db.begin() as conn:
        index.clear(conn, "Datafile")
    job = Job(1, REBUILD, "Datafile", State.RUNNING, {"entity": "Datafile"}, 0, datetime.now(),
              datetime.now(), None, None, 0, None, None, None, None, False, None, None, None, 0)
    ctx = JobContext(job)
    ctx._cancel.set()  # `cairn jobs cancel` while it fills the table
    with pytest.raises(Cancelled):
        index.rebuild_kind().handler(ctx)
    if world.db.dialect == "postgresql":  # the GIN index dropped for the bulk is back
        with world.db.connect() as conn:
            assert conn.execute(text(
                "SELECT count(*) FROM pg_indexes WHERE indexname = "
                "'idx_cairn_search_datafile'")).scalar() == 1
    assert _run_slices(world, {"entity": "Datafile"}, slices=None) is None
    assert world.ids("Datafile", "scan_0001_00001.nxs") == [o["df"]]


def test_a_bulk_load_into_an_empty_index(world: World, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    from cairn.search import indexer

    monkeypatch.setattr(indexer, "BULK", 50)  # the demo's 707 datafiles count as a bulk
    load_demo(world.catalogue, scale=0.1, user="db/root")
    t = world.db.tables["Datafile"]
    with world.db.connect() as conn:
        names = {r.id: r.name for r in conn.execute(select(t.c.id, t.c.name))}
    assert world.search.index.count("Datafile") == len(names)
    some_id, some_name = next(iter(names.items()))
    assert some_id in world.ids("Datafile", f'name:"{some_name}"')
    if world.db.dialect == "postgresql":  # built once at the end, in the load's transaction
        with world.db.connect() as conn:
            assert conn.execute(text(
                "SELECT count(*) FROM pg_indexes WHERE indexname = "
                "'idx_cairn_search_datafile'")).scalar() == 1


def test_sqlite_document_tables_keep_a_large_pending_index(world: World) -> None:
    """FTS5 writes a bulk's entries in segments of FTS_HASH_BYTES, not of 1 MiB: set on
    every document table, again on one that lost it, without rebuilding it."""
    if world.db.dialect != "sqlite":
        pytest.skip("an FTS5 setting")
    from cairn.search.index import FTS_HASH_BYTES

    o = _small(world)

    def hashsize(entity: str) -> Any:
        name = world.search.index.docs[entity].table.name
        with world.db.connect() as conn:
            return conn.execute(text(f"SELECT v FROM {name}_config WHERE k = 'hashsize'")
                                ).scalar()

    assert {e: hashsize(e) for e in _ALL} == {e: FTS_HASH_BYTES for e in _ALL}
    name = world.search.index.docs["Datafile"].table.name
    with world.db.begin() as conn:
        conn.execute(text(f"DELETE FROM {name}_config WHERE k = 'hashsize'"))
    assert hashsize("Datafile") is None
    again = SearchService(world.catalogue, world.db, list(_ALL), jobs=world.jobs)
    again.start()
    assert hashsize("Datafile") == FTS_HASH_BYTES
    assert not world.jobs.queue.active(REBUILD, ["Datafile"])  # kept, not rebuilt
    assert world.ids("Datafile", "scan_0001_00001.nxs") == [o["df"]]


def test_paging_by_date_in_a_catalogue_zone_other_than_utc(migrated_url: str) -> None:
    from zoneinfo import ZoneInfo

    db = Database(migrated_url, zone=ZoneInfo("Asia/Tokyo"))
    migrate.upgrade(db)
    try:
        w = World(db)
        o = _small(w)
        ds = ("Dataset", o["ds"])
        made = [w.create("Datafile", name=f"run_{i}.nxs", dataset=ds,
                         datafileModTime=datetime(2024, 5, i + 1, 9, 0)) for i in range(3)]
        with w.catalogue.as_system(read_only=True) as work:
            s = Search(work, w.search.index, w.search.units,
                       SearchRequest(target="Datafile", text="run_*"))
            seen, after = [], None
            while True:
                hits = s.page([("date", True)], after, 1)
                if not hits:
                    break
                seen.append(hits[0].id)
                after = {"fields": list(hits[0].keys)}
        assert seen == made[::-1]
    finally:
        db.dispose()


def test_a_page_with_facets_is_the_page_without(world: World) -> None:
    load_demo(world.catalogue, scale=0.1, user="db/root")
    for target, words in [("Investigation", "calcite"), ("Dataset", "calcite OR raw"),
                          ("Datafile", "nxs OR calib*")]:
        req = SearchRequest(target=target, text=words, facets=(FacetRequest(target),))
        with world.catalogue.as_system(read_only=True) as work:
            alone = Search(work, world.search.index, world.search.units, req).page(
                [], None, 50)
            both, dims = Search(work, world.search.index, world.search.units,
                                req).page_and_facets([], None, 50, req.facets)
        assert [(h.id, h.score) for h in both] == [(h.id, h.score) for h in alone]
        assert all(h.score != 1.0 for h in alone)  # relevance, not "nothing to score"
        assert dims


def test_a_word_only_in_related_rows_is_found_through_them(world: World) -> None:
    """``crystal`` is a sample's name, in no file's own text: the statement that pages and
    counts the files finds them through their datasets alone (no look-up of the files'
    documents for PostgreSQL to OR with the dataset index), and SQLite writes the files it
    found once for its counts, while a search without words counts by the table's indexes."""
    m = _small(world)
    doc = world.search.index.docs["Datafile"].table.name
    seen: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    def page_and_counts(words: str | None) -> tuple[list[int], str]:
        req = SearchRequest(target="Datafile", text=words,
                            facets=(FacetRequest("Datafile"),))
        seen.clear()
        with world.catalogue.as_system(read_only=True) as work:
            hits, dims = Search(work, world.search.index, world.search.units,
                                req).page_and_facets([], None, 10, req.facets)
        assert dims["Datafile.datafileFormat.name"] == {"nexus": 1}
        (main,) = [s for s in seen if "matched" in s]
        return [h.id for h in hits], main

    event.listen(world.db.engine, "before_cursor_execute", note)
    try:
        found, main = page_and_counts("crystal")
        assert found == [m["df"]]
        assert doc.upper() not in main.upper()
        everything, bare = page_and_counts(None)
        assert everything == [m["df"]]
    finally:
        event.remove(world.db.engine, "before_cursor_execute", note)
    if world.db.dialect == "sqlite":
        assert "matched AS MATERIALIZED" in main
        assert "matched AS NOT MATERIALIZED" in bare


def test_a_users_files_found_through_readable_datasets_alone_are_not_checked_again(
        world: World) -> None:
    """Files reached by a word of their datasets' samples alone, under rules that reach a
    file through its dataset: SQLite keeps the datasets to those the user may read and then
    checks no file; elsewhere the files are checked as ever. Either way the user gets the
    files of the released investigation only, in the page and the counts."""
    o = _small(world)  # crystal-7's dataset, in an investigation not released
    released = world.create("Investigation", name="LSF-2", visitId="v1", title="Released",
                            releaseDate=datetime(2001, 1, 1), facility=("Facility", o["f"]),
                            type=("InvestigationType", o["it"]))
    smp = world.create("Sample", name="crystal-8", investigation=("Investigation", released),
                       type=("SampleType", o["st"]))
    ds = world.create("Dataset", name="scan_0002", investigation=("Investigation", released),
                      type=("DatasetType", o["dt"]), sample=("Sample", smp))
    df = world.create("Datafile", name="scan_0002_00001.nxs", dataset=("Dataset", ds),
                      datafileFormat=("DatafileFormat", o["fmt"]))
    world.create("Rule", crudFlags="R", what="SELECT df FROM Datafile df JOIN df.dataset ds "
                 "JOIN ds.investigation i WHERE i.releaseDate < CURRENT_TIMESTAMP")
    world.create("Rule", crudFlags="R", what="DatafileFormat")  # the counts' labels
    world.catalogue.authz.invalidate()
    sid = world.catalogue.sessions.create("simple/jdoe")
    seen: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    req = SearchRequest(target="Datafile", text="crystal", facets=(FacetRequest("Datafile"),))
    event.listen(world.db.engine, "before_cursor_execute", note)
    try:
        with world.catalogue.as_user(sid, read_only=True) as work:
            hits, dims = Search(work, world.search.index, world.search.units,
                                req).page_and_facets([], None, 10, req.facets)
    finally:
        event.remove(world.db.engine, "before_cursor_execute", note)
    assert [h.id for h in hits] == [df]
    assert dims["Datafile.datafileFormat.name"] == {"nexus": 1}
    (main,) = [s for s in seen if "matched" in s]
    checked = "RELEASEDATE" in main.upper()
    assert checked == (world.db.dialect != "sqlite"), main
