"""A search rebuild in a real ``cairn serve`` killed with SIGKILL half-way is taken up again
after the restart, from where it stopped, and finishes with every document indexed."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cairn.catalogue.service import Catalogue
from cairn.db import migrate
from cairn.db.engine import Database
from cairn.demo import load_demo
from cairn.jobs import JobQueue, State
from cairn.search.index import INDEXED
from cairn.search.indexer import REBUILD
from cairn.search.service import SearchService
from cairn.startup import catalogue_of
from tests.conftest import BACKENDS, make_database
from tests.integration.server import Server
from tests.unit.ids_twolevel_fixtures import wait_for

PLUGIN = "tests.integration.search_slow_plugin"
JOBS = "\n[jobs]\npoll_interval_seconds = 0.2\nstale_claim_seconds = 3\n"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_killed_rebuild_resumes_after_the_restart(backend: str, tmp_path: Path) -> None:
    url, drop = make_database(backend, tmp_path)
    db = Database(url)
    try:
        migrate.upgrade(db)
        catalogue = Catalogue(catalogue_of(db).settings, db, {})
        SearchService(catalogue, db, list(INDEXED)).start()  # the server's: no other jobs
        load_demo(catalogue, scale=0.1, user="db/root")  # indexed as it is loaded
        total = db.tables["Datafile"]
        queue = JobQueue(db)

        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        first = Server(tmp_path / "a", url, JOBS, env={"CAIRN_SERVER__PLUGINS": PLUGIN})
        try:
            sid = first.login()
            r = first.http.post("/icat/lucene/db/Datafile", data={"sessionId": sid})
            assert r.status_code == 204, r.text

            def saved() -> bool:  # a slice finished and its position is in the job
                jobs = queue.find(kind=REBUILD)
                return bool(jobs) and jobs[0].payload.get("next") is not None

            wait_for(saved, "the rebuild to save its position")
            os.kill(first.proc.pid, signal.SIGKILL)
            first.proc.wait(10)
        finally:
            first.stop()
        (job,) = queue.find(kind=REBUILD)
        # killed running a slice, or between two (a slice ends by queueing the next)
        assert job.state in (State.RUNNING, State.QUEUED)
        assert 0 < job.payload["done"] < job.payload["total"]

        second = Server(tmp_path / "b", url, JOBS, env={"CAIRN_SERVER__PLUGINS": PLUGIN})
        try:
            wait_for(lambda: queue.get(job.id).state is State.DONE,  # type: ignore[union-attr]
                     "the rebuild to finish after the restart", 120)
            done = queue.get(job.id)
            assert done is not None
            # a run killed in a slice counts as one failed attempt
            assert done.attempts == (1 if job.state is State.RUNNING else 0)
            # taken up from its saved position: started again from the first id, it would
            # have counted the documents before that position twice
            assert done.progress == done.progress_total == job.payload["total"]
            sid = second.login()
            r = second.http.get("/icat/search/documents", params={
                "sessionId": sid, "query": '{"target": "Datafile", "text": "*.dat"}',
                "maxCount": "1000"})
            assert r.status_code == 200, r.text
            with db.connect() as conn:
                dat = conn.execute(select(func.count()).select_from(total)
                                   .where(total.c.name.like("%.dat"))).scalar_one()
            assert len(r.json()["results"]) == dat
        finally:
            second.stop()
    finally:
        db.dispose()
        drop()  # type: ignore[operator]
