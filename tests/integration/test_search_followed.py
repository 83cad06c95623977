"""Facets and sources over child rows whose read rules follow their parents': counted and
shown unchecked, and still exactly what the query engine lets each user read.

A facet counts the labels of related rows the user may read (a dataset's parameters, its
investigation's instruments). Where every rule that makes the matching row readable makes
those rows readable too (:meth:`cairn.authz.policy.Authorizer.implied`), the statement
checks none of them. This module's catalogue is the authorization matrix of
``test_search_authz`` with rules that give the children their parents' three ways in (on
the investigation, its instrument's scientist, released): for most users the children
follow, for the members of a group with a rule of its own (nbour reads every dataset,
ahau every investigation) they do not, and both must count as the query engine reads.
"""

from __future__ import annotations

import pytest

from cairn.db.engine import Database
from cairn.startup import catalogue_of
from tests.integration.authz_fixtures import AS_SCIENTIST, USERS, build_catalogue
from tests.integration.server import Server
from tests.integration.test_search_authz import TARGETS, TEXTS, World, assert_facets, extend
from tests.integration.test_search_authz import (
    test_sources_hide_unreadable_related_rows as assert_sources,
)

ON_MY = "JOIN i.investigationUsers iu JOIN iu.user u WHERE u.name = :user"
RELEASED = "WHERE i.releaseDate < CURRENT_TIMESTAMP"
#: FROM text of each child's rules, reaching its investigation as ``i``, and the ways in it
#: lacks in the matrix.
FOLLOWING = {
    "SELECT p FROM DatasetParameter p JOIN p.dataset ds JOIN ds.investigation i":
        (AS_SCIENTIST, RELEASED),
    "SELECT p FROM InvestigationParameter p JOIN p.investigation i": (AS_SCIENTIST, RELEASED),
    "SELECT x FROM InvestigationInstrument x JOIN x.investigation i":
        (ON_MY, AS_SCIENTIST, RELEASED),
}


@pytest.fixture(scope="module")
def world(server: Server) -> World:
    cat = build_catalogue(server)
    extend(cat)
    for head, ways in FOLLOWING.items():
        for way in ways:
            cat.rest.add_rule(f"{head} {way}", "R")
    return World(cat, server.http)


def test_the_children_follow_their_parents_but_for_group_rules(world: World,
                                                               server: Server) -> None:
    """What the facets below rely on: which children the rules let a statement count
    unchecked, asked of the authorizer as the search asks it."""
    pairs = {  # (origin, up, entity, down)
        "dataset parameters": ("Dataset", (), "DatasetParameter", ("dataset",)),
        "investigation parameters": ("Investigation", (), "InvestigationParameter",
                                     ("investigation",)),
        "instruments of a file's investigation": (
            "Datafile", ("dataset", "investigation"), "InvestigationInstrument",
            ("investigation",)),
        "file parameters": ("Datafile", (), "DatafileParameter", ("datafile",)),
    }
    db = Database(server.db_url)
    try:
        catalogue = catalogue_of(db)
        got = {}
        for user in ("jdoe", "nbour", "ahau"):
            sid = catalogue.sessions.create(f"simple/{user}")
            with catalogue.as_user(sid, read_only=True) as work:
                got[user] = {k for k, pair in pairs.items() if work.readable_along(*pair)}
    finally:
        db.dispose()
    follow = {"dataset parameters", "investigation parameters",
              "instruments of a file's investigation"}  # file parameters have no rule
    assert got == {"jdoe": follow,
                   "nbour": follow - {"dataset parameters"},  # reads every dataset
                   "ahau": follow - {"investigation parameters"}}  # every investigation


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("user", USERS)
def test_facets(world: World, user: str, target: str, text: str) -> None:
    assert_facets(world, user, target, text)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("user", USERS)
def test_sources(world: World, user: str, target: str) -> None:
    """The children in ``source`` (an investigation's instruments and cycles) are the ones
    the user may read, where the search shows them unchecked too."""
    assert_sources(world, user, target)
