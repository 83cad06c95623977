"""The two-level queue's `[data]` settings: eviction check interval and stale-claim timeout,
from the file and the environment, validated, and used by the queue, locks and tidier."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cairn.config import ConfigError, DataSettings, load_settings
from cairn.ids import twolevel
from cairn.ids.jobs import Op
from cairn.ids.storage_memory import MemoryStorage
from cairn.ids.twolevel import TwoLevel
from tests.unit.ids_twolevel_fixtures import settings, sqlite_database
from tests.unit.test_ids_twolevel_queue import backdate


def test_defaults() -> None:
    d = DataSettings()
    assert d.eviction_check_interval_seconds == 60
    assert d.stale_claim_seconds is None
    assert d.stale_claim_timeout == 120
    # Ten queue intervals when that is longer: heartbeats come once per interval.
    assert DataSettings(queue_interval_seconds=30).stale_claim_timeout == 300
    assert DataSettings(stale_claim_seconds=45).stale_claim_timeout == 45


@pytest.mark.parametrize("values, message", [
    ({"eviction_check_interval_seconds": 0}, "eviction_check_interval_seconds"),
    ({"eviction_check_interval_seconds": -5}, "eviction_check_interval_seconds"),
    ({"stale_claim_seconds": 0}, "stale_claim_seconds"),
    ({"stale_claim_seconds": 14}, "at least three queue intervals"),
    ({"stale_claim_seconds": 29, "queue_interval_seconds": 10}, r"3 x queue_interval_seconds"),
])
def test_bad_values_are_refused(tmp_path: Path, values: dict[str, Any], message: str) -> None:
    lines = "\n".join(f"{k} = {v}" for k, v in values.items())
    cfg = tmp_path / "cairn.toml"
    cfg.write_text(f"[data]\n{lines}\n")
    with pytest.raises(ConfigError, match=message):
        load_settings(cfg, environ={})


def test_file_and_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "cairn.toml"
    cfg.write_text("[data]\neviction_check_interval_seconds = 600\n"
                   "stale_claim_seconds = 90\n")
    data = load_settings(cfg, environ={}).data
    assert (data.eviction_check_interval_seconds, data.stale_claim_timeout) == (600, 90)
    env = {"CAIRN_DATA__EVICTION_CHECK_INTERVAL_SECONDS": "2.5",
           "CAIRN_DATA__STALE_CLAIM_SECONDS": "300"}
    data = load_settings(cfg, environ=env).data
    assert (data.eviction_check_interval_seconds, data.stale_claim_timeout) == (2.5, 300)


def test_two_level_uses_the_settings(tmp_path: Path) -> None:
    db = sqlite_database(tmp_path)
    try:
        conf = settings(tmp_path, eviction_check_interval_seconds=900, stale_claim_seconds=45)
        tl = TwoLevel(db, MemoryStorage(), MemoryStorage(), conf)
        assert tl.tidy_interval == 900
        assert tl.queue.stale == tl.locks.stale == timedelta(seconds=45)
        # Keyword arguments still override (tests use them).
        tl2 = TwoLevel(db, MemoryStorage(), MemoryStorage(), conf, stale_seconds=30,
                       tidy_interval_seconds=5)
        assert (tl2.tidy_interval, tl2.queue.stale) == (5, timedelta(seconds=30))
    finally:
        db.dispose()


def test_stale_claims_are_recovered_after_the_configured_timeout(tmp_path: Path) -> None:
    db = sqlite_database(tmp_path)
    try:
        dead = TwoLevel(db, MemoryStorage(), MemoryStorage(), settings(tmp_path))
        dead.queue.request(Op.RESTORE, {7: None})
        assert [j.unit_id for j in dead.queue.claim(1)] == [7]  # then the process dies
        backdate(db, 7, claimed_at=timedelta(seconds=600))
        patient = TwoLevel(db, MemoryStorage(), MemoryStorage(),
                           settings(tmp_path, stale_claim_seconds=3600))
        assert patient.queue.recover_stale() == 0  # ten minutes is not stale yet
        prompt = TwoLevel(db, MemoryStorage(), MemoryStorage(),
                          settings(tmp_path, stale_claim_seconds=300))
        assert prompt.queue.recover_stale() == 1
        assert [j.unit_id for j in prompt.queue.claim(1)] == [7]
    finally:
        db.dispose()


def test_eviction_check_follows_its_interval(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The first tick measures main storage at once, later ticks only once the configured
    interval has passed (on a fake clock)."""
    db = sqlite_database(tmp_path)
    clock = [5.0]  # shortly after boot: below the interval
    # Only the module's view of the clock: threads and the database keep the real one.
    monkeypatch.setattr(twolevel, "time", SimpleNamespace(monotonic=lambda: clock[0],
                                                          time=time.time))
    try:
        tl = TwoLevel(db, MemoryStorage(), MemoryStorage(),
                      settings(tmp_path, eviction_check_interval_seconds=600))
        checks: list[float] = []

        def tidy() -> int:
            checks.append(clock[0])
            return 0

        monkeypatch.setattr(tl, "tidy", tidy)

        def tick() -> None:
            tl.tick()
            if tl._tidier is not None:
                tl._tidier.join()

        tick()
        clock[0] += 599
        tick()
        assert checks == [5.0]
        clock[0] += 1
        tick()
        assert checks == [5.0, 605.0]
    finally:
        db.dispose()
