"""A rule that tests its own row *and* walks a one-to-many step compiles to nested EXISTS;
the innermost must test the very row being authorized, not any row of its table (it once
listed the table in its own FROM and so let every row through when one matched)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from cairn.catalogue.service import Catalogue
from cairn.db import migrate
from cairn.db.engine import Database
from cairn.startup import catalogue_of
from tests.integration.catalogue_objects import create

RULE = ("SELECT df FROM Datafile df JOIN df.dataset ds JOIN ds.investigation i "
        "JOIN i.investigationUsers iu JOIN iu.user u "
        "WHERE u.name = :user AND df.name NOT LIKE 'secret%'")


@pytest.fixture
def catalogue(migrated_url: str) -> Iterator[Catalogue]:
    db = Database(migrated_url)
    migrate.upgrade(db)
    db.detect_ids()
    c = catalogue_of(db)
    f = create(c, "Facility", name="F")
    it = create(c, "InvestigationType", name="t", facility=("Facility", f))
    dt = create(c, "DatasetType", name="t", facility=("Facility", f))
    user = create(c, "User", name="db/u")
    for name in ("mine", "theirs"):
        inv = create(c, "Investigation", name=name, visitId="1", title=name,
                     facility=("Facility", f), type=("InvestigationType", it))
        if name == "mine":
            create(c, "InvestigationUser", investigation=("Investigation", inv),
                   user=("User", user), role="PI")
        ds = create(c, "Dataset", name=f"{name}-ds", investigation=("Investigation", inv),
                    type=("DatasetType", dt))
        for df in ("open", "secret"):
            create(c, "Datafile", name=f"{df}-{name}.nxs", dataset=("Dataset", ds))
    create(c, "Rule", what=RULE, crudFlags="R")
    yield c
    db.dispose()


def test_a_rule_on_its_own_row_beyond_a_one_to_many_step(catalogue: Catalogue) -> None:
    sid = catalogue.sessions.create("db/u")
    with catalogue.as_user(sid, read_only=True) as work:
        found = sorted(o.values["name"] for o in work.search("SELECT df FROM Datafile df"))
        assert found == ["open-mine.nxs"]
        assert work.search("SELECT COUNT(df) FROM Datafile df") == [1]
        ids = {o.id: o.values["name"] for o in work.search(
            "SELECT df FROM Datafile df WHERE df.name LIKE '%-mine.nxs'")}
        t = work.tables["Datafile"]
        every = [r[0] for r in work.conn.execute(select(t.c.id))]
        assert {i for i in work.readable("Datafile", every)} == set(ids)
        cond = work.readable_condition("Datafile", t.c.id)
        assert cond is not None
        n = work.conn.execute(select(func.count()).select_from(t).where(cond), work.params)
        assert n.scalar_one() == 1
        # the same rule read through an alias of the table (a query's own variable)
        assert work.search("SELECT df.name FROM Datafile df JOIN df.dataset ds "
                           "WHERE ds.name LIKE '%-ds'") == ["open-mine.nxs"]
