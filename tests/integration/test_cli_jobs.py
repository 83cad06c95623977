"""`cairn jobs list|show|retry|cancel` against a catalogue on SQLite, as an operator uses it,
and plugins that cannot be loaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cairn.config import ConfigError, load_settings
from cairn.db import migrate
from cairn.db.engine import Database
from cairn.jobs import Kind, Scheduler, State
from cairn.startup import assemble


def cairn(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cairn.cli", "jobs", *args,
                           "--config", str(config)],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def site(tmp_path: Path) -> tuple[Path, Scheduler]:
    config = tmp_path / "cairn.toml"
    config.write_text(f'[catalogue]\ndatabase = "sqlite:///{tmp_path / "c.db"}"\n')
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    migrate.upgrade(db)

    def fail(ctx: object) -> None:
        raise OSError("tape library offline")

    jobs = Scheduler(db, poll_seconds=0.05, stale_seconds=5)
    jobs.register(Kind("t.fail", fail, max_attempts=1), Kind("t.wait", lambda ctx: None))
    return config, jobs


def test_list_show_retry_cancel(site: tuple[Path, Scheduler]) -> None:
    config, jobs = site
    failed = jobs.submit("t.fail", {"dataset": 7})
    jobs.run_pending()
    waiting = jobs.submit("t.wait", {}, key="unit:1", delay=3600)
    out = cairn(config, "list")
    assert out.returncode == 0, out.stderr
    assert "# t.fail: 1 failed" in out.stdout and "# t.wait: 1 queued" in out.stdout
    rows = {line.split()[0]: line for line in out.stdout.splitlines()[3:]}
    assert "OSError: tape library offline" in rows[str(failed)]
    assert "unit:1" in rows[str(waiting)]
    only = cairn(config, "list", "--state", "failed")
    assert str(waiting) not in {line.split()[0] for line in only.stdout.splitlines()[2:]}
    shown = cairn(config, "show", str(failed))
    assert shown.returncode == 0
    assert "state:        failed" in shown.stdout and '{"dataset": 7}' in shown.stdout
    again = cairn(config, "retry", str(failed))
    assert again.returncode == 0 and "state:        queued" in again.stdout
    assert jobs.queue.get(failed).state is State.QUEUED  # type: ignore[union-attr]
    cancelled = cairn(config, "cancel", str(waiting))
    assert cancelled.returncode == 0 and "state:        cancelled" in cancelled.stdout
    refused = cairn(config, "retry", str(waiting + 100))
    assert refused.returncode == 1 and f"no job {waiting + 100}" in refused.stderr
    twice = cairn(config, "cancel", str(waiting))
    assert twice.returncode == 1 and "already cancelled" in twice.stderr


def test_a_plugin_that_cannot_load_stops_startup_with_its_name(tmp_path: Path) -> None:
    config = tmp_path / "cairn.toml"
    config.write_text(f'[server]\nplugins = ["no.such.module"]\n'
                      f'[catalogue]\ndatabase = "sqlite:///{tmp_path / "c.db"}"\n')
    with pytest.raises(ConfigError, match=r"plugin 'no\.such\.module' cannot be imported"):
        assemble(load_settings(config, environ={}))
    config.write_text(f'[server]\nplugins = ["json"]\n'
                      f'[catalogue]\ndatabase = "sqlite:///{tmp_path / "c.db"}"\n')
    with pytest.raises(ConfigError, match="plugin 'json' has no setup"):
        assemble(load_settings(config, environ={}))
