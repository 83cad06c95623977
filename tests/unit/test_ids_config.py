"""The timing settings of jobs and two-level storage: eviction check interval, poll interval
and stale-claim timeout, from the file and the environment (with their older [data] names),
validated, and used by the scheduler, the locks and the eviction check."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from cairn.config import ConfigError, DataSettings, Settings, load_settings
from cairn.ids.storage_memory import MemoryStorage
from cairn.ids.twolevel import TwoLevel
from cairn.ids.twolevel_queue import KIND, Op
from cairn.jobs import State
from cairn.jobs.model import utcnow
from tests.unit.ids_twolevel_fixtures import settings, sqlite_database
from tests.unit.ids_twolevel_fixtures import two_level as make_two_level


def test_defaults() -> None:
    d = DataSettings()
    assert d.eviction_check_interval_seconds == 60
    assert d.stale_claim_seconds is None
    assert d.stale_claim_timeout == 120
    # Ten queue intervals when that is longer: heartbeats come once per interval.
    assert DataSettings(queue_interval_seconds=30).stale_claim_timeout == 300
    assert DataSettings(stale_claim_seconds=45).stale_claim_timeout == 45
    s = Settings()
    assert (s.job_poll_seconds, s.job_stale_seconds) == (1.0, 120.0)
    assert (s.jobs.workers, s.jobs.keep_finished_hours, s.jobs.keep_failed_days) == (4, 24, 30)


def test_older_data_names_still_count(tmp_path: Path) -> None:
    cfg = tmp_path / "cairn.toml"
    cfg.write_text("[data]\nqueue_interval_seconds = 30\n")
    s = load_settings(cfg, environ={})
    assert (s.job_poll_seconds, s.job_stale_seconds) == (30, 300)
    cfg.write_text("[data]\nqueue_interval_seconds = 30\nstale_claim_seconds = 100\n"
                   "[jobs]\npoll_interval_seconds = 2\n")
    s = load_settings(cfg, environ={})
    assert (s.job_poll_seconds, s.job_stale_seconds) == (2, 100)  # [jobs] wins
    env = {"CAIRN_JOBS__STALE_CLAIM_SECONDS": "60", "CAIRN_JOBS__WORKERS": "8"}
    s = load_settings(cfg, environ=env)
    assert (s.job_stale_seconds, s.jobs.workers) == (60, 8)


@pytest.mark.parametrize("text, message", [
    ("[jobs]\npoll_interval_seconds = 50\nstale_claim_seconds = 100\n",
     r"3 x poll_interval_seconds = 150"),
    ("[jobs]\nstale_claim_seconds = 2\n", "at least three poll intervals"),
    ("[jobs]\nworkers = 0\n", "workers"),
    ("[jobs]\nkeep_finished_hours = 0\n", "keep_finished_hours"),
    ("[jobs]\nspeed = 3\n", "speed"),
])
def test_bad_job_settings_are_refused(tmp_path: Path, text: str, message: str) -> None:
    cfg = tmp_path / "cairn.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(cfg, environ={})


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


def two_level(db: Any, conf: DataSettings, **kw: Any) -> TwoLevel:
    return make_two_level(db, MemoryStorage(), MemoryStorage(), conf, **kw)


def test_two_level_uses_the_settings(tmp_path: Path) -> None:
    db = sqlite_database(tmp_path)
    try:
        conf = settings(tmp_path, eviction_check_interval_seconds=900, stale_claim_seconds=45)
        tl = two_level(db, conf)
        assert tl.tidy_interval == 900
        assert tl.locks.stale == timedelta(seconds=45)
        # Keyword arguments still override (tests use them).
        tl2 = two_level(db, conf, stale_seconds=30, tidy_interval_seconds=5)
        assert (tl2.tidy_interval, tl2.locks.stale) == (5, timedelta(seconds=30))
    finally:
        db.dispose()


def test_stale_claims_are_recovered_after_the_configured_timeout(tmp_path: Path) -> None:
    db = sqlite_database(tmp_path)
    try:
        dead = two_level(db, settings(tmp_path))
        dead.queue.request(Op.RESTORE, {7: None})
        jobs = dead.scheduler
        [job] = jobs.queue.claim(jobs.owner, jobs.registry.kinds, 1)  # then it dies
        t = db.tables.job
        with db.begin() as conn:
            conn.execute(update(t).where(t.c.id == job.id)
                         .values(heartbeat=utcnow() - timedelta(seconds=600)))
        patient = load_settings(_config(tmp_path, "[jobs]\nstale_claim_seconds = 3600\n"),
                                environ={})
        prompt = load_settings(_config(tmp_path, "[data]\nstale_claim_seconds = 300\n"),
                               environ={})
        assert jobs.queue.recover_stale(patient.job_stale_seconds) == 0  # not stale yet
        assert jobs.queue.recover_stale(prompt.job_stale_seconds) == 1
        assert [j.id for j in jobs.queue.find(kind=KIND, states=[State.QUEUED])] == [job.id]
    finally:
        db.dispose()


def _config(tmp_path: Path, text: str) -> Path:
    cfg = tmp_path / "timing.toml"
    cfg.write_text(text)
    return cfg


def test_eviction_check_follows_its_interval(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The eviction check runs at once, then once per configured interval, in one process
    at a time (a periodic job), and only where eviction is configured."""
    db = sqlite_database(tmp_path)
    try:
        assert "ids.evict" not in two_level(db, settings(tmp_path)).scheduler.registry.kinds
        conf = settings(tmp_path, eviction_check_interval_seconds=600,
                        start_archiving_level_bytes=10 ** 9, stop_archiving_level_bytes=0)
        checks: list[str] = []
        monkeypatch.setattr(TwoLevel, "tidy", lambda self: checks.append(self.name))
        tl, other = two_level(db, conf), two_level(db, conf)
        tl.name, other.name = "tl", "other"  # type: ignore[attr-defined]
        for t in (tl, other):  # both processes start
            t.scheduler.queue.ensure_periodic("ids.evict", 600)
        assert tl.scheduler.run_pending(["ids.evict"]) == 1
        assert other.scheduler.run_pending(["ids.evict"]) == 0
        assert checks == ["tl"]
        (job,) = tl.scheduler.queue.find(kind="ids.evict")
        assert job.not_before >= utcnow() + timedelta(seconds=590)
        t = db.tables.job
        with db.begin() as conn:  # ten minutes later
            conn.execute(update(t).where(t.c.id == job.id)
                         .values(not_before=utcnow() - timedelta(seconds=1)))
        assert other.scheduler.run_pending(["ids.evict"]) == 1
        assert checks == ["tl", "other"]
    finally:
        db.dispose()
