"""The job system across real ``cairn serve`` processes sharing one database (three on
PostgreSQL and MariaDB, two on SQLite): a thousand jobs each run exactly once, a restart loses
no queued job, and a process killed in the middle of a job has it finished by another."""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cairn.db.engine import Database
from cairn.jobs import JobQueue, State
from tests.conftest import BACKENDS, make_database
from tests.integration.server import Server
from tests.unit.ids_twolevel_fixtures import wait_for

PLUGIN = "tests.integration.jobs_plugin"
#: Fast polls, and a claim is stale after 3 s: a killed process's job is soon taken over.
JOBS = "\n[jobs]\npoll_interval_seconds = 0.2\nstale_claim_seconds = 3\n"


class Site:
    """One database, and the Cairn processes serving it."""

    def __init__(self, tmp: Path, backend: str) -> None:
        self.tmp = tmp
        self.url, self._drop = make_database(backend, tmp)
        self.processes = 2 if backend == "sqlite" else 3
        self.servers: list[Server] = []
        self.started = 0
        self.db: Database | None = None

    def start(self) -> list[Server]:
        for _ in range(self.processes):
            self.started += 1
            folder = self.tmp / f"cairn{self.started}"
            folder.mkdir()
            self.servers.append(Server(folder, self.url, JOBS,
                                       env={"CAIRN_SERVER__PLUGINS": PLUGIN}))
        if self.db is None:
            self.db = Database(self.url)
        return self.servers

    def stop(self) -> None:
        """SIGTERM, as a service manager stops them: running jobs finish first."""
        for s in self.servers:
            s.stop()
        self.servers = []

    @property
    def queue(self) -> JobQueue:
        assert self.db is not None
        return JobQueue(self.db)

    def enqueue(self, kind: str, payloads: list[dict[str, object]]) -> list[int]:
        assert self.db is not None
        with self.db.begin() as conn:
            return [self.queue.enqueue(conn, kind, p) for p in payloads]

    def states(self, kind: str) -> Counter[State]:
        assert self.db is not None
        t = self.db.tables.job
        with self.db.connect() as conn:
            return Counter({State(s): n for s, n in conn.execute(
                select(t.c.state, func.count()).where(t.c.kind == kind).group_by(t.c.state))})

    def close(self) -> None:
        self.stop()
        if self.db is not None:
            self.db.dispose()
        self._drop()  # type: ignore[operator]


@pytest.fixture(params=BACKENDS)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path, str(request.param))
    try:
        yield s
    finally:
        s.close()


def test_a_thousand_jobs_run_once_each_across_processes_and_a_restart(site: Site) -> None:
    log = site.tmp / "ran.log"
    site.start()
    first = site.enqueue("test.record", [{"log": str(log), "seconds": 0.01}] * 1000)
    wait_for(lambda: site.states("test.record")[State.DONE] >= 200, "a first part of them",
             timeout=300)
    site.stop()  # mid-way: what runs finishes, what waits stays queued
    stopped = site.states("test.record")
    assert State.RUNNING not in stopped and set(stopped) <= {State.DONE, State.QUEUED}
    later = site.enqueue("test.record", [{"log": str(log)}] * 100)  # while none runs
    site.start()
    wait_for(lambda: site.states("test.record") == Counter({State.DONE: 1100}),
             "every job done after the restart", timeout=300)
    runs = Counter(int(line.split()[0]) for line in log.read_text().splitlines())
    assert set(runs) == set(first + later)
    assert set(runs.values()) == {1}  # each exactly once
    pids = {line.split()[1] for line in log.read_text().splitlines()}
    assert len(pids) >= 2  # the work was shared between processes


def test_a_killed_process_has_its_job_finished_by_another(site: Site) -> None:
    log, release = site.tmp / "block.log", site.tmp / "release"
    servers = site.start()
    (job_id,) = site.enqueue("test.block", [{"log": str(log), "release": str(release)}])

    def lines(word: str) -> list[list[str]]:
        text = log.read_text() if log.exists() else ""
        return [line.split() for line in text.splitlines() if line.startswith(word)]

    wait_for(lambda: len(lines("start")) == 1, "the job to start", timeout=60)
    killed = int(lines("start")[0][2])
    (victim,) = [s for s in servers if s.proc.pid == killed]
    os.kill(killed, signal.SIGKILL)
    victim.proc.wait(30)
    wait_for(lambda: len(lines("start")) == 2, "another process to take the job over",
             timeout=120)
    release.touch()
    wait_for(lambda: site.states("test.block") == Counter({State.DONE: 1}), "the job done",
             timeout=120)
    (done,) = lines("done")
    assert done[1] == str(job_id) and int(done[2]) != killed
    assert int(lines("start")[1][2]) == int(done[2])
    job = site.queue.get(job_id)
    assert job is not None and job.attempts == 1  # the killed run counts as a failed attempt
    assert job.error is not None and f":{killed}:" in job.error and "stopped" in job.error
