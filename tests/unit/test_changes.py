"""The change recorder of a unit of work: ids kept as runs, grouped by entity and kind."""

from __future__ import annotations

from cairn.catalogue.changes import Change, ChangeKind, ChangeListener, Changes, IdRuns, Listeners

C, U, D = ChangeKind.CREATE, ChangeKind.UPDATE, ChangeKind.DELETE


def test_runs_keep_order_and_merge_neighbours() -> None:
    runs = IdRuns()
    runs.add([5, 6, 7])
    runs.add([8])
    runs.add([3])
    runs.add(range(10, 1_000_010))
    assert list(runs.runs()) == [range(5, 9), range(3, 4), range(10, 1_000_010)]
    assert len(runs) == 1_000_005
    assert list(runs)[:6] == [5, 6, 7, 8, 3, 10]
    runs.add([])
    runs.add(range(4, 4))
    assert len(runs) == 1_000_005


def test_changes_by_entity_and_kind() -> None:
    changes = Changes()
    assert not changes and len(changes) == 0
    changes.add("Dataset", C, [1, 2])
    changes.add("Datafile", C, range(10, 13))
    changes.add("Dataset", U, [1])
    changes.add("Dataset", C, [3])
    assert changes and len(changes) == 7
    assert changes.entities() == {"Dataset", "Datafile"}
    assert list(changes.ids("Dataset", C)) == [1, 2, 3]
    assert list(changes.ids("Datafile", D)) == []
    assert [(e, k, list(ids)) for e, k, ids in changes.groups()] == [
        ("Dataset", C, [1, 2, 3]), ("Datafile", C, [10, 11, 12]), ("Dataset", U, [1])]
    assert Change("Datafile", 11, C) in list(changes)


class Broken(ChangeListener):
    def committed(self, changes: Changes) -> None:
        raise RuntimeError("a listener's own trouble")


class Tally(ChangeListener):
    def __init__(self) -> None:
        self.seen: list[int] = []

    def committed(self, changes: Changes) -> None:
        self.seen.append(len(changes))


def test_a_failing_listener_after_commit_does_not_stop_the_others() -> None:
    tally = Tally()
    listeners = Listeners([Broken(), tally])
    changes = Changes()
    changes.add("Facility", C, [1])
    listeners.committed(changes)  # logged, not raised: the change is committed
    assert tally.seen == [1]
