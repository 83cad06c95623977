"""The search's sort keys kept in tables of their own (``CAIRN_SEARCH_<ENTITY>_KEYS``), on
every backend: pages in date or size order walk them and give exactly the order the
expressions give (ties by id, a NULL size as 0, a datafile's date as the first of its dates
that is set), ``search_after`` included; the keys follow writes, deletes and rebuilds; a
search while they are not filled reads the expressions; rows a user may not read never show;
and SQLite's prefix indexes change no answer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select, text, update

from cairn.catalogue.objects import Obj
from cairn.catalogue.service import Catalogue
from cairn.db import migrate, schema_check
from cairn.db.engine import Database
from cairn.jobs import Scheduler
from cairn.schema import SCHEMA
from cairn.search import execute
from cairn.search.execute import Hit, Search
from cairn.search.index import INDEXED, KEYS_VERSION, SORT_KEYS
from cairn.search.indexer import REBUILD
from cairn.search.request import SearchRequest
from cairn.search.service import SearchService
from cairn.startup import catalogue_of
from tests.integration.catalogue_objects import create

E = SCHEMA.entities
T0 = datetime(2021, 3, 1, 12, 0, 0)
USER = "db/reader"
#: What the reader may read: the files of the dataset named "open" (and that dataset).
RULES = ("SELECT df FROM Datafile df JOIN df.dataset ds WHERE ds.name = 'open'",
         "SELECT ds FROM Dataset ds WHERE ds.name = 'open'")


def _at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


#: (dataset, datafileModTime, datafileCreateTime, fileSize): ties on every key, NULLs on
#: every column the keys read.
FILES: tuple[tuple[str, datetime | None, datetime | None, int | None], ...] = (
    ("open", _at(5), None, 300),
    ("open", _at(5), _at(1), 300),        # same date and size as the one before
    ("open", None, _at(2), None),         # no size: 0
    ("open", None, None, 0),              # no date of its own: its MOD_TIME
    ("closed", _at(7), None, 10_000),     # the latest and largest: never shown to the reader
    ("open", None, _at(5), 300),          # the creation date ties the modification dates
    ("closed", None, None, None),
    ("open", _at(-3), _at(9), 12),        # the modification date wins
    ("open", None, None, 12),
    ("closed", _at(1), None, 0),
)


class World:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.jobs = Scheduler(db, poll_seconds=0.05, stale_seconds=5)
        self.catalogue = Catalogue(catalogue_of(db).settings, db, {}, jobs=self.jobs)
        self.search = self.service()
        self.jobs.register(*self.search.job_kinds())
        self.ids: dict[str, int] = {}

    def service(self) -> SearchService:
        s = SearchService(self.catalogue, self.db, list(INDEXED), jobs=self.jobs)
        s.start()
        self.search = s
        return s

    def run_jobs(self) -> None:
        while self.jobs.run_pending([REBUILD]):
            pass

    def build(self) -> None:
        c = self.catalogue
        f = create(c, "Facility", name="LSF")
        it = create(c, "InvestigationType", name="experiment", facility=("Facility", f))
        dt = create(c, "DatasetType", name="raw", facility=("Facility", f))
        inv = create(c, "Investigation", name="LSF-1", visitId="1", title="scan study",
                     facility=("Facility", f), type=("InvestigationType", it))
        create(c, "Investigation", name="LSF-2", visitId="1", title="scan again",
               startDate=_at(-100), facility=("Facility", f), type=("InvestigationType", it))
        for name, start, end in (("open", _at(3), None), ("closed", None, _at(4)),
                                 ("spare", _at(3), _at(1))):
            self.ids[name] = create(c, "Dataset", name=name, startDate=start, endDate=end,
                                    investigation=("Investigation", inv),
                                    type=("DatasetType", dt))
        for i, (ds, mod, made, size) in enumerate(FILES):
            values: dict[str, Any] = {"name": f"scan_{i:03d}.nxs",
                                      "location": f"LSF-1/{ds}/scan_{i:03d}.nxs"}
            for k, v in (("datafileModTime", mod), ("datafileCreateTime", made),
                         ("fileSize", size)):
                if v is not None:
                    values[k] = v
            self.ids[f"df{i}"] = create(c, "Datafile", dataset=("Dataset", self.ids[ds]),
                                        **values)
        for what in RULES:
            create(c, "Rule", what=what, crudFlags="R")

    # -- reading --------------------------------------------------------------------------

    def expected(self, target: str, field: str, desc: bool, user: str | None) -> list[int]:
        """The order computed here from the rows: the key, then the id ascending."""
        t = self.db.tables[target]
        with self.db.connect() as conn:
            rows = conn.execute(select(t)).all()
        if user is not None:
            with self.catalogue.as_user(self.catalogue.sessions.create(user),
                                        read_only=True) as work:
                readable = work.readable(target, {r.id for r in rows})
            rows = [r for r in rows if r.id in readable]

        def key(r: Any) -> Any:
            if target == "Datafile":
                if field == "fileSize":
                    return r.fileSize if r.fileSize is not None else 0
                return next(d for d in (r.datafileModTime, r.datafileCreateTime, r.modTime)
                            if d is not None)
            if field == "endDate":
                return r.endDate if r.endDate is not None else r.modTime
            return r.startDate if r.startDate is not None else r.createTime

        by_id = sorted(rows, key=lambda r: r.id)
        return [r.id for r in sorted(by_id, key=key, reverse=desc)]  # stable: ties by id

    def pages(self, target: str, field: str, desc: bool, user: str | None, *,
              text: str | None = None, size: int = 3, walked: bool | None = True
              ) -> list[Hit]:
        """Every hit, page by page through search_after; ``walked``: whether the pages
        must (True) or must not (False) walk the key table."""
        sid = self.catalogue.sessions.create(user) if user else None
        out: list[Hit] = []
        after: dict[str, Any] | None = None
        while True:
            unit = (self.catalogue.as_user(sid, read_only=True) if sid
                    else self.catalogue.as_system(read_only=True))
            with unit as work:
                s = Search(work, self.search.index, self.search.units,
                           SearchRequest(target=target, text=text))
                if walked is not None:
                    assert (s._walked_keys([(field, desc)]) is not None) is walked
                hits = s.page([(field, desc)], after, size)
            out.extend(hits)
            if len(hits) < size:
                return out
            after = {"fields": list(hits[-1].keys), "doc": hits[-1].id}

    def key_rows(self, entity: str) -> dict[int, tuple[Any, ...]]:
        kt = self.search.index.keys[entity].table
        with self.db.connect() as conn:
            return {r[0]: tuple(r[1:]) for r in conn.execute(select(kt))}

    def set_filled(self, entity: str, filled: bool) -> None:
        st = self.search.index.state
        with self.db.begin() as conn:
            conn.execute(update(st).where(st.c.entity == entity).values(filled=int(filled)))

    def update(self, entity: str, id: int, **values: Any) -> None:
        with self.catalogue.as_system() as work:
            work.update(Obj(E[entity], id=id, values=values))


@pytest.fixture
def world(migrated_url: str) -> Iterator[World]:
    db = Database(migrated_url)
    migrate.upgrade(db)
    try:
        w = World(db)
        w.build()
        yield w
    finally:
        db.dispose()


SORTS = [(target, field, desc) for target, fields in SORT_KEYS.items() for field in fields
         for desc in (False, True)]


@pytest.mark.parametrize(("target", "field", "desc"), SORTS,
                         ids=[f"{t}-{f}-{'desc' if d else 'asc'}" for t, f, d in SORTS])
def test_pages_walk_the_keys_in_the_order_of_the_expressions(
        world: World, target: str, field: str, desc: bool) -> None:
    for user in (None, USER):
        want = world.expected(target, field, desc, user)
        hits = world.pages(target, field, desc, user)
        assert [h.id for h in hits] == want
        # the same hits and search_after keys (the same JSON) as the expressions give
        world.set_filled(target, False)
        assert world.pages(target, field, desc, user, walked=False) == hits
        world.set_filled(target, True)
    if target == "Datafile":  # the reader never sees a file of the closed dataset
        seen = {h.id for h in world.pages(target, field, desc, USER)}
        closed = {world.ids[f"df{i}"] for i, f in enumerate(FILES) if f[0] == "closed"}
        assert seen and not seen & closed


def test_a_text_search_in_key_order(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    for field, desc in (("date", True), ("fileSize", False)):
        for user in (None, USER):
            every = world.expected("Datafile", field, desc, user)
            # a word in most rows: the keys walked, each row asked for the word
            hits = world.pages("Datafile", field, desc, user, text="scan*", size=2)
            assert [h.id for h in hits] == every  # every file is a scan_*
            world.set_filled("Datafile", False)
            assert world.pages("Datafile", field, desc, user, text="scan*", size=2,
                               walked=False) == hits
            world.set_filled("Datafile", True)
    # a rarer word: sorted as the expressions say, the key table left alone
    monkeypatch.setattr(execute, "DENSE", 2)
    for user in (None, USER):
        want = [i for i in world.expected("Datafile", "date", True, user)
                if i == world.ids["df1"]]
        hits = world.pages("Datafile", "date", True, user, text="001*", walked=False)
        assert [h.id for h in hits] == want
    assert want == [world.ids["df1"]]  # the reader may read it: not vacuous


def test_a_walk_that_would_go_too_deep_sorts_instead(world: World,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(execute, "WALK", 2)  # fewer rows than a page: every walk gives up
    for user in (None, USER):
        for words in (None, "scan*"):
            want = world.expected("Datafile", "date", True, user)
            assert [h.id for h in world.pages("Datafile", "date", True, user, text=words,
                                              walked=None)] == want
    with world.catalogue.as_system(read_only=True) as work:
        s = Search(work, world.search.index, world.search.units,
                   SearchRequest(target="Datafile"))
        assert s._walked_keys([("date", True)]) is not None
        first = s.page([("date", True)], None, 3)
        assert s._no_walk and [h.id for h in first] == world.expected(
            "Datafile", "date", True, None)[:3]


def test_keys_follow_writes_deletes_and_rebuilds(world: World) -> None:
    index = world.search.index
    df = world.ids["df3"]
    world.update("Datafile", df, name="scan_003.nxs", location="LSF-1/open/scan_003.nxs",
                 datafileModTime=datetime(2199, 1, 1), fileSize=77_777)
    assert world.pages("Datafile", "date", True, None)[0].id == df
    assert world.pages("Datafile", "fileSize", True, None)[0].id == df
    assert world.key_rows("Datafile")[df][1] == 77_777
    for field in ("date", "fileSize"):
        for desc in (False, True):
            assert [h.id for h in world.pages("Datafile", field, desc, USER)] == \
                world.expected("Datafile", field, desc, USER)
    world.update("Dataset", world.ids["spare"], name="spare", startDate=_at(-9))
    assert world.pages("Dataset", "date", False, None)[0].id == world.ids["spare"]
    with world.catalogue.as_system() as work:
        work.delete([(E["Datafile"], df)])
    assert df not in world.key_rows("Datafile")
    assert df not in [h.id for h in world.pages("Datafile", "date", True, None)]
    # keys gone wrong (written by hand here) are right again after a rebuild
    kt = index.keys["Datafile"].table
    first = world.ids["df0"]
    with world.db.begin() as conn:
        conn.execute(update(kt).where(kt.c.id == first).values(SORT_SIZE=-5))
        conn.execute(delete(kt).where(kt.c.id == world.ids["df1"]))
        conn.execute(kt.insert().values(id=10**9, SORT_DATE=_at(0), SORT_SIZE=1))
    world.search.reindex(["Datafile"])
    world.run_jobs()
    rows = world.key_rows("Datafile")
    assert rows[first][1] == 300 and world.ids["df1"] in rows and 10**9 not in rows
    t = world.db.tables["Datafile"]
    with world.db.connect() as conn:
        assert set(rows) == {r[0] for r in conn.execute(select(t.c.id))}
    for field in ("date", "fileSize"):
        assert [h.id for h in world.pages("Datafile", field, True, None)] == \
            world.expected("Datafile", field, True, None)


def test_a_missing_or_outdated_key_table_is_filled_and_read_meanwhile(world: World) -> None:
    index = world.search.index
    want = world.expected("Datafile", "date", True, USER)
    # an existing deployment: no key table for datafiles, and another version for datasets
    with world.db.begin() as conn:
        index.keys["Datafile"].table.drop(conn)
        conn.execute(update(index.state).where(index.state.c.entity == "Dataset")
                     .values(version=KEYS_VERSION + 1))
    world.service()
    index = world.search.index
    queued = world.jobs.queue.active(REBUILD, ["Datafile", "Dataset"])
    assert {e: [j.payload for j in jobs] for e, jobs in queued.items()} == {
        "Datafile": [{"entity": "Datafile", "keys_only": True}],
        "Dataset": [{"entity": "Dataset", "keys_only": True}]}
    assert world.key_rows("Datafile") == {}
    # meanwhile: the expressions, the same answer
    assert [h.id for h in world.pages("Datafile", "date", True, USER, walked=False)] == want
    world.service()  # a restart before the job ran queues no second one
    assert len(world.jobs.queue.active(REBUILD, ["Datafile"])["Datafile"]) == 1
    world.run_jobs()
    assert [h.id for h in world.pages("Datafile", "date", True, USER)] == want
    assert [h.id for h in world.pages("Dataset", "endDate", True, USER)] == \
        world.expected("Dataset", "endDate", True, USER)
    world.service()  # filled: nothing more to do
    assert world.jobs.queue.active(REBUILD, None) == {}


def test_only_a_whole_rebuild_declares_the_keys_filled(world: World) -> None:
    index = world.search.index
    world.set_filled("Datafile", False)
    ids = sorted(world.ids[f"df{i}"] for i in range(len(FILES)))
    world.jobs.submit(REBUILD, {"entity": "Datafile", "min_id": ids[0], "max_id": ids[3]},
                      key="Datafile")
    world.run_jobs()
    with world.db.connect() as conn:  # a range covers some rows only
        assert index.keys_filled(conn, "Datafile") is None
    world.search.reindex(["Datafile"], delete=True)
    world.run_jobs()
    with world.db.connect() as conn:
        assert index.keys_filled(conn, "Datafile") is not None
    assert [h.id for h in world.pages("Datafile", "date", True, None)] == \
        world.expected("Datafile", "date", True, None)


def test_the_schema_check_ignores_the_key_tables(world: World) -> None:
    with world.db.connect() as conn:
        assert schema_check.compare(conn) == []
        assert world.search.index.keys_filled(conn, "Datafile") is not None


def test_prefix_indexes_change_no_answer(world: World) -> None:
    """SQLite: a document table made without prefix indexes is made again with them and
    rebuilt at start-up; prefix queries answer as before."""
    if world.db.dialect != "sqlite":
        pytest.skip("FTS5 prefix indexes are SQLite's")
    index = world.search.index
    doc = index.docs["Datafile"]
    with world.db.begin() as conn:  # the table as earlier versions made it
        index.backend.drop(conn, doc)
        conn.execute(text(f"CREATE VIRTUAL TABLE {doc.table.name} USING fts5("
                          f"{', '.join(doc.columns)}, tokenize = 'unicode61 "
                          "remove_diacritics 0')"))
    world.search.reindex(["Datafile"])
    world.run_jobs()
    queries = ("s*", "sc*", "sca*", "scan*", "scan_00*", "scan_001*", "n*", "nx*", "nxs*",
               "l*", "lsf*", "open*", "name:sc*", "location:cl*", "sc?n*", "*can*")

    def answers() -> list[list[int]]:
        with world.catalogue.as_system(read_only=True) as work:
            out = []
            for q in queries:
                s = Search(work, world.search.index, world.search.units,
                           SearchRequest(target="Datafile", text=q))
                out.append([h.id for h in s.page([("id", False)], None, 1000)])
            return out

    before = answers()
    assert len(before[0]) == len(FILES) and before[-2] == before[0]
    world.service()  # outdated: made again, and rebuilt
    with world.db.connect() as conn:
        sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = :n"),
                           {"n": doc.table.name}).scalar()
    assert "prefix" in sql
    assert world.jobs.queue.active(REBUILD, ["Datafile"])
    world.run_jobs()
    assert answers() == before


def test_a_whole_clear_takes_the_keys_along_and_a_rebuild_fills_them_again(
        world: World) -> None:
    index = world.search.index
    want = world.expected("Datafile", "date", True, USER)
    ids = sorted(world.ids[f"df{i}"] for i in range(len(FILES)))
    with world.db.begin() as conn:
        index.clear(conn, "Datafile", ids[0], ids[3])  # a range: the keys stay
    assert set(world.key_rows("Datafile")) >= set(ids)
    with world.db.begin() as conn:
        index.clear(conn, "Datafile")  # everything: the keys go with the documents
    assert world.key_rows("Datafile") == {}
    assert world.pages("Datafile", "date", True, USER) == []
    world.search.reindex(["Datafile"], delete=True)
    world.run_jobs()
    t = world.db.tables["Datafile"]
    with world.db.connect() as conn:
        assert set(world.key_rows("Datafile")) == {r[0] for r in conn.execute(select(t.c.id))}
    assert [h.id for h in world.pages("Datafile", "date", True, USER)] == want
