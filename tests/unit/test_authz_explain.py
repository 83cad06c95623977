"""Who may read an investigation, rule by rule (cairn.authz.explain), checked against the
authorizer's own answer for every user, on every backend."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from cairn.authz import Access
from cairn.authz.explain import Explanation, explain
from cairn.catalogue.service import Catalogue
from cairn.config import Settings
from cairn.db import migrate
from cairn.db.engine import Database
from cairn.errors import ErrorType, IcatError
from tests.conftest import make_database
from tests.integration.catalogue_objects import create

USERS = ("db/alice", "db/bob", "db/carol", "db/dave", "db/erin", "db/sci", "db/zed")
ON_MY = ("SELECT i FROM Investigation i JOIN i.investigationUsers iu JOIN iu.user u "
         "WHERE u.name = :user")


class World:
    def __init__(self, url: str) -> None:
        self.db = Database(url)
        migrate.upgrade(self.db)
        self.db.detect_ids()
        self.catalogue = Catalogue(Settings(catalogue={"root_users": ["simple/root"]}),
                                   self.db, {})
        self.rules: dict[str, int] = {}
        self.inv: dict[str, int] = {}

    def rule(self, key: str, what: str, flags: str = "R", grouping: int | None = None
             ) -> None:
        values: dict[str, Any] = {"what": what, "crudFlags": flags}
        if grouping is not None:
            values["grouping"] = ("Grouping", grouping)
        self.rules[key] = create(self.catalogue, "Rule", **values)

    def explain(self, name: str) -> Explanation:
        with self.catalogue.as_system(read_only=True) as work:
            assert work.authz is not None
            return explain(work.conn, work.db, work.authz, work.params, "Investigation",
                           self.inv[name])

    def allowed(self, user: str, name: str) -> bool:
        with self.catalogue.as_system(read_only=True, user=user) as work:
            assert work.authz is not None
            return work.authz.allowed(work, Access.READ, "Investigation", self.inv[name])


@pytest.fixture
def world(backend: str, tmp_path: Path) -> Iterator[World]:
    url, drop = make_database(backend, tmp_path)
    w = World(url)
    try:
        yield w
    finally:
        w.db.dispose()
        drop()  # type: ignore[operator]


def populate(w: World) -> None:
    c = w.catalogue
    users = {n: create(c, "User", name=n, fullName=n.split("/")[1].title()) for n in USERS}
    fac = create(c, "Facility", name="F")
    itype = create(c, "InvestigationType", name="experiment", facility=("Facility", fac))
    dtype = create(c, "DatasetType", name="raw", facility=("Facility", fac))
    x = create(c, "Instrument", name="X", facility=("Facility", fac))
    create(c, "InstrumentScientist", instrument=("Instrument", x), user=("User", users["db/sci"]))
    groups = {}
    for name, members in (("readers", ["db/carol"]), ("staff", ["db/dave"]),
                          ("pis", ["db/alice", "db/zed"])):
        g = groups[name] = create(c, "Grouping", name=name)
        for m in members:
            create(c, "UserGroup", grouping=("Grouping", g), user=("User", users[m]))
    for name, release, members, instrument in (
            ("A", datetime(2199, 1, 1), {"db/alice": "PI", "db/bob": "PI"}, x),
            ("B", datetime(2001, 1, 1), {"db/erin": "CI"}, None),
            ("C", datetime(2199, 1, 1), {}, None)):
        inv = w.inv[name] = create(c, "Investigation", name=name, visitId="v", title=name,
                                   releaseDate=release, facility=("Facility", fac),
                                   type=("InvestigationType", itype))
        for user, role in members.items():
            create(c, "InvestigationUser", investigation=("Investigation", inv),
                   user=("User", users[user]), role=role)
        if instrument is not None:
            create(c, "InvestigationInstrument", investigation=("Investigation", inv),
                   instrument=("Instrument", instrument))
        create(c, "Dataset", name=f"raw-{name}", investigation=("Investigation", inv),
               type=("DatasetType", dtype))
    w.rule("on", ON_MY)
    w.rule("scientist", "SELECT i FROM Investigation i JOIN i.investigationInstruments ii "
                        "JOIN ii.instrument ins JOIN ins.instrumentScientists s "
                        "JOIN s.user u WHERE u.name = :user")
    w.rule("released", "SELECT i FROM Investigation i WHERE i.releaseDate < CURRENT_TIMESTAMP")
    w.rule("readers-A", "SELECT i FROM Investigation i WHERE i.name = 'A'",
           grouping=groups["readers"])
    w.rule("staff", "Investigation", grouping=groups["staff"])
    w.rule("pi", ON_MY + " AND iu.role = 'PI'", grouping=groups["pis"])
    # Not anchorable on the row (it selects a joined variable): the correlated form.
    w.rule("via-dataset", "SELECT i FROM Dataset ds JOIN ds.investigation i "
                          "WHERE ds.name = 'raw-C'")
    # :user inside a sub-select of the WHERE (correlated two levels down).
    w.rule("ci", "SELECT i FROM Investigation i WHERE i.id IN (SELECT iu.investigation.id "
                 "FROM InvestigationUser iu JOIN iu.user u WHERE u.name = :user "
                 "AND iu.role = 'CI')")
    # Not READ: never a reason to read.
    w.rule("writers", ON_MY, flags="CUD")


def reasons(e: Explanation) -> dict[str, set[int]]:
    return {user: {g.rule_id for g in grants} for user, grants in e.by_user().items()}


def test_every_reader_and_only_readers_with_their_rules(world: World) -> None:
    populate(world)
    r = world.rules
    e = world.explain("A")
    assert e.root_users == ("simple/root",)
    assert not e.everyone
    assert reasons(e) == {
        "db/alice": {r["on"], r["pi"]},  # a PI in the "pis" grouping
        "db/bob": {r["on"]},  # a PI, but not in the grouping
        "db/sci": {r["scientist"]},
        "db/carol": {r["readers-A"]},
        "db/dave": {r["staff"]},
    }
    assert r["writers"] not in {g.rule_id for g in e.rules}
    released = next(g for g in e.rules if g.rule_id == r["released"])
    assert not released.holds and not released.per_user
    staff = next(g for g in e.rules if g.rule_id == r["staff"])
    assert staff.grouping == "staff" and staff.holds and not staff.public_table
    for name in ("A", "B", "C"):
        found = world.explain(name)
        readers = set(found.by_user())
        for user in USERS:
            expected = world.allowed(user, name)
            assert (bool(found.everyone) or user in readers) == expected, (name, user)


def test_a_released_investigation_is_everyones_through_its_rule(world: World) -> None:
    populate(world)
    e = world.explain("B")
    assert [g.rule_id for g in e.everyone] == [world.rules["released"]]
    assert reasons(e) == {"db/erin": {world.rules["on"], world.rules["ci"]},
                          "db/dave": {world.rules["staff"]}}
    c = world.explain("C")  # nobody's, read through a rule on its dataset's name
    assert [g.rule_id for g in c.everyone] == [world.rules["via-dataset"]]


def test_a_public_table_rule_makes_every_row_everyones(world: World) -> None:
    populate(world)
    # An unrestricted rule without a grouping makes Investigation a public table, whatever
    # its crud flags (icat.server's reading, kept).
    world.rule("public", "Investigation", flags="C")
    e = world.explain("A")
    public = next(g for g in e.rules if g.rule_id == world.rules["public"])
    assert public.public_table and public.everyone and public.holds
    assert world.allowed("db/zed", "A") and world.allowed("db/erin", "C")


def test_an_unknown_investigation_is_not_found(world: World) -> None:
    populate(world)
    world.inv["gone"] = max(world.inv.values()) + 1000
    with pytest.raises(IcatError) as caught:
        world.explain("gone")
    assert caught.value.type is ErrorType.NO_SUCH_OBJECT_FOUND
