"""`cairn serve` keeps the garbage collector off the request path."""

from __future__ import annotations

import gc

from cairn.cli import YOUNG_GC_THRESHOLD, settle_heap


def test_startup_objects_are_frozen_and_young_collections_rarer() -> None:
    before = gc.get_threshold()
    kept = []
    try:
        kept.append({"startup": object()})  # a container alive at startup
        settle_heap()
        assert gc.get_freeze_count() > 0
        assert all(o is not kept for o in gc.get_objects())  # out of the collector's sight
        assert gc.get_threshold() == (YOUNG_GC_THRESHOLD, *before[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
    assert gc.get_freeze_count() == 0
