"""Free-text search takes the tables it joins from a pool of aliases
(``cairn.query.scope.shared_pool``): a user's page, facets and sources run the same SQL as
with aliases made afresh, on every backend, and make no new alias once the pool holds them."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.sql.selectable import Alias

from cairn.catalogue.service import Catalogue
from cairn.db import migrate
from cairn.db.engine import Database
from cairn.jobs import Scheduler
from cairn.query.scope import Aliases, shared_pool
from cairn.search import execute
from cairn.search import sources as sources_module
from cairn.search.execute import Search
from cairn.search.index import INDEXED
from cairn.search.indexer import REBUILD
from cairn.search.request import FacetRequest, SearchRequest
from cairn.search.service import SearchService
from cairn.startup import catalogue_of
from tests.integration.catalogue_objects import create

USER = "db/reader"

#: No text: the facets count every readable datafile, the reader's rule (through the file's
#: dataset) checked once per dataset (``Search._readable_by_key``, a pooled alias).
REQUEST = SearchRequest(target="Datafile", facets=(FacetRequest("Datafile"),))


class World:
    """A facility with a dataset the reader may read ("open", by a rule through each file's
    dataset) and one it may not."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.jobs = Scheduler(db, poll_seconds=0.05, stale_seconds=5)
        self.catalogue = Catalogue(catalogue_of(db).settings, db, {}, jobs=self.jobs)
        self.search = SearchService(self.catalogue, db, list(INDEXED), jobs=self.jobs)
        self.search.start()
        self.jobs.register(*self.search.job_kinds())
        c = self.catalogue
        f = create(c, "Facility", name="LSF")
        it = create(c, "InvestigationType", name="experiment", facility=("Facility", f))
        dt = create(c, "DatasetType", name="raw", facility=("Facility", f))
        inv = create(c, "Investigation", name="LSF-1", visitId="1", title="scan study",
                     facility=("Facility", f), type=("InvestigationType", it))
        for name in ("open", "closed"):
            ds = create(c, "Dataset", name=name, investigation=("Investigation", inv),
                        type=("DatasetType", dt))
            for i in range(3):
                create(c, "Datafile", name=f"{name}_{i}.nxs", dataset=("Dataset", ds))
        create(c, "Rule", what="SELECT df FROM Datafile df JOIN df.dataset ds "
               "WHERE ds.name = 'open'", crudFlags="R")
        while self.jobs.run_pending([REBUILD]):
            pass


@pytest.fixture
def world(migrated_url: str) -> Iterator[World]:
    db = Database(migrated_url)
    migrate.upgrade(db)
    try:
        yield World(db)
    finally:
        db.dispose()


def _search(w: World, req: SearchRequest = REQUEST) -> list[str]:
    """The SQL of every statement one search (page, facets, sources) runs as the reader."""
    seen: list[str] = []

    def note(conn: Any, clause: Any, *args: Any) -> None:
        seen.append(str(clause.compile(dialect=conn.dialect)))

    sid = w.catalogue.sessions.create(USER)
    event.listen(w.db.engine, "before_execute", note)
    try:
        with w.catalogue.as_user(sid, read_only=True) as work:
            s = Search(work, w.search.index, w.search.units, req)
            hits, _ = s.page_and_facets([], None, 10, req.facets)
            assert hits
            sources_module.sources(work, req.target, [h.id for h in hits])
    finally:
        event.remove(w.db.engine, "before_execute", note)
    return seen


def test_pooled_aliases_give_the_same_sql(world: World, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    _search(world)  # the pool filled
    pooled = _search(world)
    assert any("readable_dataset" in sql for sql in pooled)  # the by-key check ran
    monkeypatch.setattr(execute, "shared_pool", lambda tables: None)
    monkeypatch.setattr(sources_module, "_aliases", lambda work: Aliases(work.tables))
    fresh = _search(world)
    assert _searching(pooled) == _searching(fresh)


#: Authorization's cache loads, which a concurrent invalidation may add to either run.
_CACHE_LOADS = ("SELECT RULE_", "SELECT USERGROUP", "SELECT PUBLICSTEP", "SELECT GROUPING")


def _searching(sqls: list[str]) -> list[str]:
    return [q for q in sqls if not q.startswith(_CACHE_LOADS)]


def _new_aliases(w: World) -> int:
    """Aliases one more search leaves alive or as garbage (the collector off meanwhile)."""
    _search(w)
    gc.collect()
    gc.disable()
    try:
        before = sum(isinstance(o, Alias) for o in gc.get_objects())
        _search(w)
        return sum(isinstance(o, Alias) for o in gc.get_objects()) - before
    finally:
        gc.enable()


def test_a_search_takes_its_aliases_from_the_pool(world: World,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _search(world)
    pool = dict(shared_pool(world.db.tables))
    assert ("Dataset", 0) in pool  # the by-key check's
    pooled = _new_aliases(world)
    assert shared_pool(world.db.tables) == pool  # the same aliases again, none added
    monkeypatch.setattr(execute, "shared_pool", lambda tables: None)
    monkeypatch.setattr(sources_module, "_aliases", lambda work: Aliases(work.tables))
    fresh = _new_aliases(world)
    # one per joined table fewer: what is left is the rule's own alias, copied when the
    # by-key check swaps its foreign key (replacement_traverse clones what it rebuilds)
    assert fresh - pooled >= len(pool)
