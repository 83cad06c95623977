"""The queue's state machine (reference §2.4), every transition of both unit types."""

from __future__ import annotations

import pytest

from cairn.ids.twolevel_queue import Op, StorageUnit, UnitState, merge_states, transition

W, WA, A, R, D = (UnitState.WRITE_REQUESTED, UnitState.WRITE_THEN_ARCHIVE_REQUESTED,
                  UnitState.ARCHIVE_REQUESTED, UnitState.RESTORE_REQUESTED,
                  UnitState.DELETE_REQUESTED)

# current state -> (after WRITE, after ARCHIVE, after RESTORE): ids.server's table.
DATASET = {
    None: (W, A, R),
    A: (WA, A, R),
    R: (W, A, R),
    W: (W, WA, W),
    WA: (WA, WA, W),
}

# current state -> (WRITE, ARCHIVE, RESTORE, DELETE). ids.server's table, except the marked
# cells, where ids.server loses work (see cairn.ids.twolevel_queue).
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
def test_dataset_transitions(state: UnitState | None, op: Op) -> None:
    expected = DATASET[state][(Op.WRITE, Op.ARCHIVE, Op.RESTORE).index(op)]
    assert transition(StorageUnit.DATASET, state, op) == expected


@pytest.mark.parametrize(("state", "op"), [(s, op) for s in DATAFILE for op in Op])
def test_datafile_transitions(state: UnitState | None, op: Op) -> None:
    expected = DATAFILE[state][(Op.WRITE, Op.ARCHIVE, Op.RESTORE, Op.DELETE).index(op)]
    assert transition(StorageUnit.DATAFILE, state, op) == expected


def test_dataset_units_have_no_delete() -> None:
    with pytest.raises(ValueError, match="DELETE"):
        transition(StorageUnit.DATASET, None, Op.DELETE)


@pytest.mark.parametrize(("unit", "first", "then", "expected"), [
    # What was running goes back in front of what was queued meanwhile.
    (StorageUnit.DATASET, W, A, WA),  # a write interrupted, an archive requested: write first
    (StorageUnit.DATASET, A, W, WA),
    (StorageUnit.DATASET, R, A, A),
    (StorageUnit.DATASET, A, R, R),
    (StorageUnit.DATASET, WA, R, W),
    (StorageUnit.DATASET, W, None, W),
    (StorageUnit.DATASET, None, WA, WA),  # WRITE_THEN_ARCHIVE stands for a write, then an archive
    (StorageUnit.DATAFILE, A, R, None),  # an archive that never ran, then cancelled
    (StorageUnit.DATAFILE, W, D, D),
    (StorageUnit.DATAFILE, R, WA, WA),
    (StorageUnit.DATAFILE, None, None, None),
])
def test_merge(unit: StorageUnit, first: UnitState | None, then: UnitState | None,
               expected: UnitState | None) -> None:
    assert merge_states(unit, first, then) == expected
