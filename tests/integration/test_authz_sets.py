"""Whole-table reads with the rules as sets of related ids (AnchoredRule.as_set) select exactly
the rows the correlated rules select, for every demo user and every entity below an
investigation, on every backend (the set shape is forced on all of them here, whichever
ones use it in service)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from cairn.authz import Access, policy
from cairn.catalogue.service import Catalogue
from cairn.db import migrate
from cairn.db.engine import Database
from cairn.demo import load_demo
from cairn.demo.rules import BELOW_INVESTIGATION
from cairn.query.execute import queries_for, run
from cairn.startup import catalogue_of


@pytest.fixture
def catalogue(migrated_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Catalogue]:
    monkeypatch.setattr(policy, "SET_SHAPE_DIALECTS",
                        frozenset({"sqlite", "postgresql", "mysql", "mariadb"}))
    db = Database(migrated_url)
    migrate.upgrade(db)
    db.detect_ids()
    c = catalogue_of(db)
    load_demo(c, scale=0.4, password=None)  # 8 investigations, their users and scientists
    yield c
    db.dispose()


def ids(work: Any, entity: str, cond: Any) -> set[int]:
    t = work.tables[entity]
    return {r[0] for r in work.conn.execute(select(t.c.id).where(cond), dict(work.params))}


def test_sets_select_what_the_correlated_rules_select(catalogue: Catalogue) -> None:
    with catalogue.as_system() as work:
        users = [r[0] for r in work.conn.execute(select(work.tables["User"].c.name))]
        everything = {e: ids(work, e, True) for e in BELOW_INVESTIGATION}
    partial = 0
    for user in users:
        sid = catalogue.sessions.create(user)
        with catalogue.as_user(sid, read_only=True) as work:
            for entity in BELOW_INVESTIGATION:
                column = work.tables[entity].c.id
                rows = catalogue.authz.predicate(work, Access.READ, entity, column)
                sets = catalogue.authz.predicate(work, Access.READ, entity, column,
                                                 whole_table=True)
                assert rows is not None and sets is not None
                want = ids(work, entity, rows)
                assert ids(work, entity, sets) == want, (user, entity)
                partial += bool(want) and want != everything[entity]
            # a whole-table count through the search restriction takes the set shape
            q = queries_for(catalogue.db).search("SELECT COUNT(df) FROM Datafile df")
            restrict = catalogue.authz.search_restriction(work, q)
            assert restrict.whole_table
            pred = restrict(q.id_paths[0])
            assert pred is not None and " IN (SELECT" in str(pred)
            own = q.id_paths[0].column  # of the query's own alias of DATAFILE
            found = work.conn.execute(select(own).where(pred), dict(work.params)).all()
            assert run(work, q, 100, restrict) == [len(found)]
            assert {r[0] for r in found} == ids(work, "Datafile", work.readable_condition(
                "Datafile", work.tables["Datafile"].c.id))
    assert partial  # some user reads some but not all rows: the comparison means something


def test_a_narrowed_search_keeps_the_correlated_rules(catalogue: Catalogue) -> None:
    sid = catalogue.sessions.create("db/jbloggs")
    with catalogue.as_user(sid, read_only=True) as work:
        q = queries_for(catalogue.db).search(
            "SELECT COUNT(df) FROM Datafile df WHERE df.name LIKE 'scan%'")
        restrict = catalogue.authz.search_restriction(work, q)
        assert not restrict.whole_table
        pred = restrict(q.id_paths[0])
        assert pred is not None and " IN (SELECT" not in str(pred)
