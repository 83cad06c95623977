"""Rules as sets of related ids for whole-table reads (AnchoredRule.as_set) and which
searches read a whole table (cairn.authz.policy.reads_whole_table)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cairn.authz.policy import reads_whole_table
from cairn.authz.rules import ROW, AnchoredRule, anchor, as_one_set, interpret
from cairn.db.engine import Database
from cairn.query import ast
from cairn.query.execute import queries_for

ON_MY = "JOIN i.investigationUsers iu JOIN iu.user u WHERE u.name = :user"
DATAFILE = "SELECT x FROM Datafile x JOIN x.dataset ds JOIN ds.investigation i "


def anchored(what: str) -> AnchoredRule:
    a = anchor(interpret(what, "R"))
    assert a is not None
    return a


def test_joins_from_one_related_row_become_a_set_of_its_ids() -> None:
    alt = anchored(DATAFILE + ON_MY).as_set()
    assert alt.from_ == ()
    assert alt.names == {"i": "#dataset.investigation"}
    assert isinstance(alt.where, ast.InSubquery) and not alt.where.negated
    assert alt.where.expr == ast.Path("i")
    sub = alt.where.query
    # a variable of its own (not the outer i), over the related row's entity
    assert sub.items == (ast.Path("i2"),)
    assert sub.from_[0] == ast.FromEntity("Investigation", "i2")
    joins = [j for j in sub.from_[1:] if isinstance(j, ast.FromJoin)]
    assert [(j.path.var, j.path.fields, j.var) for j in joins] == [
        ("i2", ("investigationUsers",), "iu"), ("iu", ("user",), "u")]
    assert isinstance(sub.where, ast.Compare) and isinstance(sub.where.left, ast.Path)
    assert sub.where.left.var == "u"


def test_the_fresh_variable_avoids_every_name_of_the_rule() -> None:
    alt = anchored("SELECT x FROM Datafile x JOIN x.dataset ds JOIN ds.investigation i "
                   "JOIN i.investigationUsers i2 JOIN i2.user u WHERE u.name = :user").as_set()
    assert isinstance(alt.where, ast.InSubquery)
    assert alt.where.query.items == (ast.Path("i3"),)


def test_a_condition_on_related_rows_alone_stays_as_it_is() -> None:
    a = anchored(DATAFILE + "WHERE i.releaseDate < CURRENT_TIMESTAMP")
    assert a.as_set() is a.alternative


def test_joins_from_the_row_itself_stay_correlated() -> None:
    # as a set, the row's own table (millions of datafiles) would be hashed whole
    a = anchored("SELECT i FROM Investigation i " + ON_MY)
    assert a.alternative.names == {"i": ROW}
    assert a.as_set() is a.alternative


def test_joins_reaching_two_related_rows_stay_correlated() -> None:
    a = anchored(DATAFILE + "JOIN i.investigationUsers iu JOIN iu.user u "
                 "WHERE u.name = :user AND ds.name = 'raw'")
    assert a.as_set() is a.alternative


def test_a_sub_select_of_the_rule_follows_the_renamed_variable() -> None:
    alt = anchored(DATAFILE + "JOIN i.investigationUsers iu JOIN iu.user u WHERE u.name = :user "
                   "AND EXISTS (SELECT k FROM Keyword k WHERE k.investigation = i)").as_set()
    assert isinstance(alt.where, ast.InSubquery)
    inner = alt.where.query.where
    assert isinstance(inner, ast.And) and isinstance(inner.items[1], ast.Exists)
    cond = inner.items[1].query.where
    assert isinstance(cond, ast.Compare) and isinstance(cond.right, ast.Path)
    assert cond.right.var == "i2"


@pytest.fixture(scope="module")
def compiler() -> Iterator[Database]:
    db = Database("sqlite://")
    yield db
    db.dispose()


@pytest.mark.parametrize(("query", "whole"), [
    ("SELECT COUNT(o) FROM Datafile o", True),
    ("COUNT(Datafile)", True),
    ("SELECT MAX(o.fileSize) FROM Datafile o", True),
    ("SELECT o FROM Datafile o", False),
    ("SELECT COUNT(o) FROM Datafile o WHERE o.name = 'a'", False),
    ("SELECT COUNT(o) FROM Datafile o JOIN o.dataset ds", False),
    ("SELECT o.name, COUNT(o) FROM Datafile o GROUP BY o.name", False),
])
def test_which_searches_read_a_whole_table(compiler: Database, query: str, whole: bool) -> None:
    assert reads_whole_table(queries_for(compiler).search(query)) is whole


def test_rules_sharing_their_joins_become_one_set_of_the_first_related_row() -> None:
    members = [anchored(DATAFILE + "WHERE i.releaseDate < CURRENT_TIMESTAMP"),
               anchored(DATAFILE + ON_MY)]
    one = as_one_set(members)
    assert one is not None and one.from_ == () and one.names == {ROW: ROW}
    assert isinstance(one.where, ast.InSubquery)
    assert one.where.expr == ast.Path(ROW, ("dataset",))
    sub = one.where.query
    assert sub.items == (ast.Path("#dataset"),)
    assert sub.from_[0] == ast.FromEntity("Dataset", "#dataset")
    assert [j.var for j in sub.from_[1:] if isinstance(j, ast.FromJoin)] == [
        "#dataset.investigation"]
    # each rule's condition, on the shared rows' names; the second as a set of its own
    assert isinstance(sub.where, ast.Or) and len(sub.where.items) == 2
    released, mine = sub.where.items
    assert isinstance(released, ast.Compare) and isinstance(released.left, ast.Path)
    assert released.left.var == "#dataset.investigation"
    assert isinstance(mine, ast.InSubquery)
    assert mine.expr == ast.Path("#dataset.investigation")


def test_a_rule_testing_the_row_itself_keeps_the_correlated_form() -> None:
    members = [anchored(DATAFILE + "WHERE x.name LIKE 'scan%'"), anchored(DATAFILE + ON_MY)]
    assert as_one_set(members) is None


def test_joins_alone_make_the_set_of_every_reachable_row() -> None:
    one = as_one_set([anchored("SELECT x FROM Dataset x JOIN x.sample s")])
    assert one is not None and isinstance(one.where, ast.InSubquery)
    assert one.where.expr == ast.Path(ROW, ("sample",))
    assert one.where.query.where is None
