"""Whether one entity's read rules imply another's along related rows
(cairn.authz.rules: AnchoredRule.rebased, implies)."""

from __future__ import annotations

from cairn.authz.rules import AnchoredRule, anchor, implies, interpret

#: The ways to an investigation ``i`` of a typical facility: on it, a scientist of its
#: instrument, released.
ON_MY = "JOIN i.investigationUsers iu JOIN iu.user u WHERE u.name = :user"
AS_SCIENTIST = ("JOIN i.investigationInstruments ii JOIN ii.instrument inst "
                "JOIN inst.instrumentScientists s JOIN s.user u WHERE u.name = :user")
RELEASED = "WHERE i.releaseDate < CURRENT_TIMESTAMP"


def rule(what: str) -> AnchoredRule:
    a = anchor(interpret(what, "R"))
    assert a is not None
    return a


def rules(head: str, *ways: str) -> list[AnchoredRule]:
    return [rule(f"{head} {way}") for way in ways]


DATASET = rules("SELECT x FROM Dataset x JOIN x.investigation i", ON_MY, AS_SCIENTIST, RELEASED)
PARAMETER = rules("SELECT p FROM DatasetParameter p JOIN p.dataset ds JOIN ds.investigation i",
                  ON_MY, AS_SCIENTIST, RELEASED)


def test_a_rule_rebased_on_a_related_row_is_that_rows_rule() -> None:
    """A dataset parameter's rule seen from its dataset is the dataset's, whatever the
    variables are called."""
    mine = rule("SELECT p FROM DatasetParameter p JOIN p.dataset d JOIN d.investigation inv "
                "JOIN inv.investigationUsers m JOIN m.user who WHERE who.name = :user")
    assert mine.rebased(("dataset",)) == DATASET[0].rebased(())
    assert mine.rebased(("dataset",)) != DATASET[2].rebased(())
    # the concise spelling too
    concise = rule("DatasetParameter <-> Dataset <-> Investigation <-> InvestigationUser "
                   "<-> User [name = :user]")
    assert concise.rebased(("dataset",)) == DATASET[0].rebased(())
    # and both rules, seen from the investigation, are the same
    assert mine.rebased(("dataset", "investigation")) == \
        DATASET[0].rebased(("investigation",))


def test_a_rule_reading_its_own_row_or_off_the_path_is_not_rebased() -> None:
    own_value = rule("SELECT p FROM DatasetParameter p JOIN p.dataset ds "
                     "WHERE p.stringValue = 'public'")
    assert own_value.rebased(("dataset",)) is None
    assert own_value.rebased(()) is not None  # on its own row it is a rule like any
    own_type = rule("SELECT p FROM DatasetParameter p JOIN p.type t WHERE t.name = 'public'")
    assert own_type.rebased(("dataset",)) is None
    other_path = rule("SELECT x FROM Dataset x JOIN x.sample s WHERE s.name = 'public'")
    assert other_path.rebased(("investigation",)) is None


def test_children_under_the_parents_rules_are_implied() -> None:
    assert implies(DATASET, (), PARAMETER, ("dataset",))
    # the other way round too: a readable parameter's dataset is readable
    assert implies(PARAMETER, ("dataset",), DATASET, ())
    # a dataset's investigation instruments, through the investigation both reach
    instrument = rules("SELECT x FROM InvestigationInstrument x JOIN x.investigation i",
                       ON_MY, AS_SCIENTIST, RELEASED)
    assert implies(DATASET, ("investigation",), instrument, ("investigation",))


def test_a_parent_rule_the_children_lack_is_not_implied() -> None:
    """Released datasets whose parameters are their investigation users' alone: a
    parameter of a readable dataset may be hidden."""
    assert not implies(DATASET, (), PARAMETER[:2], ("dataset",))
    # more rules for the children than the parent: still implied
    public = rule("SELECT p FROM DatasetParameter p JOIN p.type t WHERE t.name = 'public'")
    assert implies(DATASET[:2], (), [*PARAMETER[:2], public], ("dataset",))
    # a children's rule narrower than the parent's
    narrower = [rule("SELECT p FROM DatasetParameter p JOIN p.dataset ds "
                     f"JOIN ds.investigation i {ON_MY} AND p.stringValue = 'x'")]
    assert not implies(DATASET[:1], (), narrower, ("dataset",))


def test_rules_that_cannot_be_compared_imply_nothing() -> None:
    # a parent rule that can't be anchored on its row
    loose = anchor(interpret("SELECT ds FROM Investigation i JOIN i.datasets ds "
                             "WHERE i.name = 'A'", "R"))
    assert loose is None
    assert not implies([*DATASET, loose], (), PARAMETER, ("dataset",))
    # no parent rule: no parent row is readable, so nothing is reached from one
    assert implies([], (), PARAMETER[:1], ("dataset",))
    # the same rules along different paths
    assert not implies(DATASET, ("sample",), PARAMETER, ("dataset",))
