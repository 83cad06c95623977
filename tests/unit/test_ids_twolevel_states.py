"""The queue's state machine (reference §2.4), every transition of both unit types."""

from __future__ import annotations

import pytest

from cairn.ids.jobs import Op, State, Unit, merge, transition

W, WA, A, R, D = (State.WRITE_REQUESTED, State.WRITE_THEN_ARCHIVE_REQUESTED,
                  State.ARCHIVE_REQUESTED, State.RESTORE_REQUESTED, State.DELETE_REQUESTED)

# current state -> (after WRITE, after ARCHIVE, after RESTORE): ids.server's table.
DATASET = {
    None: (W, A, R),
    A: (WA, A, R),
    R: (W, A, R),
    W: (W, WA, W),
    WA: (WA, WA, W),
}

# current state -> (WRITE, ARCHIVE, RESTORE, DELETE). ids.server's table, except the marked
# cells, where ids.server loses work (see cairn.ids.jobs).
DATAFILE = {
    None: (W, A, R, D),
    A: (WA, A, None, D),  # WRITE: ids.server drops the write and evicts an unwritten file
    R: (W, A, R, D),  # WRITE: ids.server drops it
    W: (W, WA, W, D),  # DELETE: ids.server drops the entry (the archive copy would stay)
    WA: (WA, WA, W, D),  # DELETE: likewise
    D: (D, D, D, D),  # final
}


@pytest.mark.parametrize(("state", "op"), [(s, op) for s in DATASET for op in
                                           (Op.WRITE, Op.ARCHIVE, Op.RESTORE)])
def test_dataset_transitions(state: State | None, op: Op) -> None:
    expected = DATASET[state][(Op.WRITE, Op.ARCHIVE, Op.RESTORE).index(op)]
    assert transition(Unit.DATASET, state, op) == expected


@pytest.mark.parametrize(("state", "op"), [(s, op) for s in DATAFILE for op in Op])
def test_datafile_transitions(state: State | None, op: Op) -> None:
    expected = DATAFILE[state][(Op.WRITE, Op.ARCHIVE, Op.RESTORE, Op.DELETE).index(op)]
    assert transition(Unit.DATAFILE, state, op) == expected


def test_dataset_units_have_no_delete() -> None:
    with pytest.raises(ValueError, match="DELETE"):
        transition(Unit.DATASET, None, Op.DELETE)


@pytest.mark.parametrize(("unit", "first", "then", "expected"), [
    # What was running goes back in front of what was queued meanwhile.
    (Unit.DATASET, W, A, WA),  # a write interrupted, an archive requested: write first
    (Unit.DATASET, A, W, WA),
    (Unit.DATASET, R, A, A),
    (Unit.DATASET, A, R, R),
    (Unit.DATASET, WA, R, W),
    (Unit.DATASET, W, None, W),
    (Unit.DATASET, None, WA, WA),  # WRITE_THEN_ARCHIVE stands for a write, then an archive
    (Unit.DATAFILE, A, R, None),  # an archive that never ran, then cancelled
    (Unit.DATAFILE, W, D, D),
    (Unit.DATAFILE, R, WA, WA),
    (Unit.DATAFILE, None, None, None),
])
def test_merge(unit: Unit, first: State | None, then: State | None,
               expected: State | None) -> None:
    assert merge(unit, first, then) == expected
