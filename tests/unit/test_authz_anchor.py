"""Rules rewritten as conditions on a row (cairn.authz.rules.anchor)."""

from cairn.authz.rules import ROW, anchor, interpret

ON_MY = "JOIN i.investigationUsers iu JOIN iu.user u WHERE u.name = :user"


def test_many_to_one_joins_from_the_row_are_shared() -> None:
    a = anchor(interpret("SELECT x FROM Datafile x JOIN x.dataset ds JOIN ds.investigation i "
                         + ON_MY, "R"))
    assert a is not None
    assert a.key == frozenset({"#dataset", "#dataset.investigation"})
    assert [(j.path.var, j.path.fields, j.var) for j in a.shared] == [
        (ROW, ("dataset",), "#dataset"), ("#dataset", ("investigation",), "#dataset.investigation")]
    assert a.alternative.names == {"x": ROW, "ds": "#dataset", "i": "#dataset.investigation"}
    # the one-to-many join and what follows it stay the rule's own
    assert [j.var for j in a.alternative.from_] == ["iu", "u"]


def test_rules_through_the_same_path_have_the_same_key() -> None:
    one = anchor(interpret("SELECT x FROM Dataset x JOIN x.investigation i " + ON_MY, "R"))
    two = anchor(interpret("SELECT d FROM Dataset d JOIN d.investigation inv "
                           "WHERE inv.releaseDate < CURRENT_TIMESTAMP", "R"))
    assert one is not None and two is not None
    assert one.key == two.key == frozenset({"#investigation"})
    assert two.alternative.from_ == ()


def test_a_condition_on_the_row_alone_needs_no_join() -> None:
    a = anchor(interpret("SELECT i FROM Investigation i WHERE i.releaseDate < CURRENT_TIMESTAMP",
                         "R"))
    assert a is not None and a.shared == () and a.alternative.from_ == ()
    assert a.alternative.names == {"i": ROW}


def test_left_joins_and_collections_are_not_shared() -> None:
    a = anchor(interpret("SELECT x FROM Dataset x LEFT JOIN x.investigation i "
                         "WHERE i.name = 'A'", "R"))
    assert a is not None and a.shared == ()
    b = anchor(interpret("SELECT i FROM Investigation i " + ON_MY, "R"))
    assert b is not None and b.shared == ()
    assert [j.var for j in b.alternative.from_] == ["iu", "u"]


def test_a_variable_declared_by_a_join_cannot_be_anchored() -> None:
    assert anchor(interpret("SELECT ds FROM Investigation i JOIN i.datasets ds "
                            "WHERE i.name = 'A'", "R")) is None


def test_concise_rules_are_anchored_too() -> None:
    a = anchor(interpret("Dataset <-> Investigation [name = 'A']", "R"))
    assert a is not None
