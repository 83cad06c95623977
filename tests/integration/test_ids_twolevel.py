"""Two-level storage on every database backend: the job cycle on the scheduler's thread,
several Cairn processes on one database (threads and real subprocesses), claims and locks
under contention, and the migrations that moved its queue into the job table."""

from __future__ import annotations

import json
import os
import select as selectmod
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, select

from cairn.db import migrate
from cairn.db.engine import Database
from cairn.db.legacy import IDS_JOB
from cairn.ids.locations import dataset_folder
from cairn.ids.locks import DataBusy, LockManager
from cairn.ids.storage import Storage
from cairn.ids.storage_local import LocalStorage
from cairn.ids.storage_memory import MemoryStorage
from cairn.ids.twolevel_queue import KIND, Op, StorageUnit, UnitQueue
from cairn.jobs import Kind, Scheduler, State
from cairn.jobs.model import utcnow
from tests.unit.ids_twolevel_fixtures import (
    database,
    none_on_main,
    on_main,
    populate,
    settings,
    two_level,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    d = database(database_url)
    yield d
    d.dispose()  # before conftest drops the database


class CountingArchive(Storage):
    """Delegates to a shared storage and counts full reads (one per dataset restore)."""

    def __init__(self, inner: Storage, counts: Counter[str], delay: float = 0.0) -> None:
        self.inner = inner
        self.counts = counts
        self.delay = delay
        self.lock = threading.Lock()

    def put(self, location: str, chunks: Any) -> Any:
        return self.inner.put(location, chunks)

    def read(self, location: str, start: int = 0, end: int | None = None) -> Any:
        with self.lock:
            self.counts[location] += 1
        time.sleep(self.delay)
        return self.inner.read(location, start, end)

    def size(self, location: str) -> int:
        return self.inner.size(location)

    def exists(self, location: str) -> bool:
        return self.inner.exists(location)

    def delete(self, location: str) -> None:
        self.inner.delete(location)

    def list(self, folder: str = "") -> Any:
        return self.inner.list(folder)


@pytest.mark.parametrize("unit", ["dataset", "datafile"])
def test_cycle_with_background_thread(db: Database, tmp_path: Path, unit: str) -> None:
    main, archive = MemoryStorage(), MemoryStorage()
    world = populate(db, main)
    tl = two_level(db, main, archive, settings(tmp_path, storage_unit=unit))
    tl.scheduler.start()
    try:
        ds = world.ds(0)
        files = world.files[ds.id]
        tl.request("WRITE", [ds], files)
        wait_for(lambda: tl.service_status()["opsQueue"] == [], "writes")
        tl.request("ARCHIVE", [ds], files)
        wait_for(lambda: none_on_main(world, main, ds), "archive")
        assert tl.status([ds], files) == "ARCHIVED"
        assert on_main(world, main, world.ds(1))
        assert tl.ensure_online([ds], files) is False
        wait_for(lambda: tl.status([ds], files) == "ONLINE", "restore")
        assert on_main(world, main, ds)  # byte-identical (CRC32 of each file)
    finally:
        tl.scheduler.stop()


def test_two_instances_never_restore_twice(db: Database, tmp_path: Path) -> None:
    main, shared_archive = MemoryStorage(), MemoryStorage()
    world = populate(db, main, datasets=6, files=2)
    counts: Counter[str] = Counter()
    conf = settings(tmp_path)
    a = two_level(db, main, CountingArchive(shared_archive, counts, 0.1), conf)
    b = two_level(db, main, CountingArchive(shared_archive, counts, 0.1), conf)
    a.request("WRITE", world.datasets, [])
    a.process_once()
    a.request("ARCHIVE", world.datasets, [])
    a.process_once()
    assert all(none_on_main(world, main, ds) for ds in world.datasets)
    a.scheduler.start()
    b.scheduler.start()
    try:
        # Both processes keep asking for the data while it is being restored.
        def asked() -> bool:
            return all([a.ensure_online(world.datasets, []), b.ensure_online(world.datasets, [])])

        wait_for(asked, "restores")
        assert b.status(world.datasets, []) == a.status(world.datasets, []) == "ONLINE"
    finally:
        a.scheduler.stop()
        b.scheduler.stop()
    keys = {dataset_folder(ds.investigation_id, ds.id) for ds in world.datasets}
    assert counts == Counter(dict.fromkeys(keys, 1))  # each restored exactly once
    assert all(on_main(world, main, ds) for ds in world.datasets)


def unit_queue(db: Database, owner: str) -> UnitQueue:
    """The two-level queue of one process, whose jobs are claimed by hand."""
    jobs = Scheduler(db, owner=owner, poll_seconds=0.05, stale_seconds=120)
    q = UnitQueue(jobs, StorageUnit.DATASET)
    jobs.register(Kind(KIND, lambda ctx: None, merge=q.merge, max_attempts=None))
    return q


def test_claims_under_contention(db: Database) -> None:
    queues = [unit_queue(db, f"p{i}") for i in range(4)]
    queues[0].request(Op.RESTORE, {i: None for i in range(60)})
    claimed: list[int] = []
    guard = threading.Lock()

    def work(q: UnitQueue) -> None:
        jobs = q.scheduler
        while claims := jobs.queue.claim(jobs.owner, jobs.registry.kinds, 3):
            with guard:
                claimed.extend(j.payload["id"] for j in claims)
            for j in claims:
                jobs.queue.finish(j, State.DONE)

    threads = [threading.Thread(target=work, args=(q,)) for q in queues]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == list(range(60))  # each exactly once
    assert queues[0].all() == []


def test_concurrent_requests_merge_into_one_line_per_unit(db: Database) -> None:
    queues = [unit_queue(db, f"p{i}") for i in range(3)]

    def work(q: UnitQueue, op: Op) -> None:
        for _ in range(5):
            q.request(op, {i: None for i in range(20)})

    threads = [threading.Thread(target=work, args=(q, op))
               for q, op in zip(queues, (Op.ARCHIVE, Op.WRITE, Op.ARCHIVE), strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = queues[0].all()
    assert sorted(line.unit_id for line in lines) == list(range(20))
    # Whatever the interleaving, the pending write survives: WRITE_THEN_ARCHIVE.
    assert {line.waiting for line in lines} == {"WRITE_THEN_ARCHIVE_REQUESTED"}
    jobs = queues[1].scheduler
    for t in (db.tables.job,):  # due now: claiming merges each unit's requests into one
        with db.begin() as conn:
            conn.execute(t.update().values(not_before=utcnow()))
    claims = jobs.queue.claim(jobs.owner, jobs.registry.kinds, 100)
    assert sorted(j.payload["id"] for j in claims) == list(range(20))
    assert jobs.queue.counts() == {(KIND, State.RUNNING): 20}


def test_lock_exclusion_under_contention(db: Database) -> None:
    managers = [LockManager(db, "a"), LockManager(db, "b")]
    state = {"shared": 0, "exclusive": 0, "violations": 0, "acquired": 0}
    guard = threading.Lock()

    def worker(i: int) -> None:
        m = managers[i % 2]
        for n in range(12):
            shared = (n + i) % 3 != 0
            try:
                holder = m.acquire([1, 2], shared)
            except DataBusy:
                continue
            with guard:
                state["acquired"] += 1
                if state["exclusive"] or (not shared and state["shared"]):
                    state["violations"] += 1
                state["shared" if shared else "exclusive"] += 1
            time.sleep(0.001)
            with guard:
                state["shared" if shared else "exclusive"] -= 1
            m.release(holder)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert state["violations"] == 0
    assert state["acquired"] > 0


def test_migrations_move_the_queue_into_the_job_table_and_back(db: Database) -> None:
    """cairn_0004 turns each CAIRN_IDS_JOB row into requests of the job table (what was
    running first, then what was queued behind it), and its downgrade folds them back."""

    def tables() -> set[str]:
        return {n.upper() for n in inspect(db.engine).get_table_names()}

    def columns(name: str) -> set[str]:
        found = {n.upper(): n for n in inspect(db.engine).get_table_names()}
        return {c["name"].upper() for c in inspect(db.engine).get_columns(found[name])}

    assert "CAIRN_JOB" in tables() and "CAIRN_IDS_JOB" not in tables()
    assert migrate.downgrade(db, "cairn_0003") == "cairn_0003"
    assert "CAIRN_JOB" not in tables() and {"RUNNING", "LOCATION"} <= columns("CAIRN_IDS_JOB")
    now = utcnow()
    row = {"not_before": now, "claimed_by": None, "claimed_at": None, "created": now}
    with db.begin() as conn:
        conn.execute(IDS_JOB.insert(), [
            {**row, "unit": "DATASET", "unit_id": 1, "state": "ARCHIVE_REQUESTED",
             "running": "WRITE_REQUESTED", "location": "5/1", "claimed_by": "gone:1",
             "claimed_at": now},
            {**row, "unit": "DATASET", "unit_id": 2, "state": "RESTORE_REQUESTED",
             "running": None, "location": None}])
    assert migrate.upgrade(db) == migrate.head()
    assert "CAIRN_IDS_JOB" not in tables()
    q = unit_queue(db, "p")
    assert {(line.unit_id, line.waiting, line.running) for line in q.all()} == {
        (1, "WRITE_THEN_ARCHIVE_REQUESTED", None), (2, "RESTORE_REQUESTED", None)}
    assert q.lines([1])[1].location == "5/1"
    # Downgraded again, each unit is one row of the old queue with the merged request.
    assert migrate.downgrade(db, "cairn_0002") == "cairn_0002"
    assert "CAIRN_IDS_LOCK" not in tables()
    assert not {"RUNNING", "LOCATION"} & columns("CAIRN_IDS_JOB")
    assert migrate.upgrade(db, "cairn_0003") == "cairn_0003"
    with db.connect() as conn:
        rows = {r.unit_id: r.state for r in conn.execute(select(IDS_JOB))}
    assert rows == {1: "WRITE_THEN_ARCHIVE_REQUESTED", 2: "RESTORE_REQUESTED"}
    assert migrate.upgrade(db) == migrate.head()


# --- real processes ---------------------------------------------------------------------------


class Proc:
    def __init__(self, *args: str) -> None:
        self.p = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.ids_twolevel_proc", *args],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)})

    def expect(self, text: str, timeout: float = 120) -> str:
        """The next stdout line, which must start with ``text`` (bounded wait)."""
        assert self.p.stdout is not None
        ready, _, _ = selectmod.select([self.p.stdout], [], [], timeout)
        if not ready:
            self.p.kill()
            raise AssertionError(f"no {text!r} from the subprocess")
        line = self.p.stdout.readline()
        if not line.startswith(text):
            self.p.kill()
            _, err = self.p.communicate(timeout=30)
            raise AssertionError(f"expected {text!r}, got {line!r}; stderr:\n{err}")
        return line

    def finish(self) -> None:
        _, err = self.p.communicate(timeout=120)
        assert self.p.returncode == 0, err

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.communicate()


@pytest.fixture
def stores(tmp_path: Path) -> tuple[LocalStorage, LocalStorage]:
    return (LocalStorage(tmp_path / "main", fsync=False),
            LocalStorage(tmp_path / "archive", fsync=False))


def test_subprocesses_share_the_queue(db: Database, tmp_path: Path,
                                      stores: tuple[LocalStorage, LocalStorage]) -> None:
    main, archive = stores
    world = populate(db, main, datasets=6, files=2)
    tl = two_level(db, main, archive, settings(tmp_path))
    tl.request("WRITE", world.datasets, [])
    tl.process_once()
    tl.request("ARCHIVE", world.datasets, [])
    tl.process_once()
    assert all(none_on_main(world, main, ds) for ds in world.datasets)

    log, stop = tmp_path / "restores.log", tmp_path / "stop"
    common = [db.url, str(tmp_path / "main"), str(tmp_path / "archive"),
              str(tmp_path / "cache")]
    procs = [Proc("worker", *common, str(log), str(stop)) for _ in range(2)]
    try:
        for p in procs:
            p.expect("ready")
        # This process only queues (it never runs jobs); the two others compete for them.
        for _ in range(3):
            tl.ensure_online(world.datasets, [])
        wait_for(lambda: tl.status(world.datasets, []) == "ONLINE", "restores", 120)
        stop.touch()
        seen = [json.loads(p.expect("{")) for p in procs]
        for p in procs:
            p.finish()
    finally:
        for p in procs:
            p.kill()
    assert all(set(s.values()) == {"ONLINE"} for s in seen)  # both see the result
    lines = log.read_text().split()
    keys = Counter(lines[0::2])
    assert keys == Counter({dataset_folder(ds.investigation_id, ds.id): 1
                            for ds in world.datasets})  # no restore ran twice
    assert all(on_main(world, main, ds) for ds in world.datasets)


def test_download_in_another_process_blocks_archive(
        db: Database, tmp_path: Path, stores: tuple[LocalStorage, LocalStorage]) -> None:
    main, archive = stores
    world = populate(db, main)
    ds = world.ds(0)
    tl = two_level(db, main, archive, settings(tmp_path))
    tl.request("WRITE", [ds], [])
    tl.process_once()
    stop = tmp_path / "stop"
    holder = Proc("hold", db.url, str(tmp_path / "main"), str(tmp_path / "archive"),
                  str(tmp_path / "cache"), str(ds.id), str(stop))
    try:
        holder.expect("locked")
        tl.request("ARCHIVE", [ds], [])
        assert tl.process_once() == 1  # tried: the other process's SHARED lock wins
        assert on_main(world, main, ds)
        assert tl.service_status()["locks"] == [{"id": ds.id, "type": "SHARED", "count": 1}]
        with pytest.raises(DataBusy):
            tl.locks.acquire([ds.id], shared=False)
        with tl.lock([ds.id], shared=True):  # downloads here are fine meanwhile
            pass
        stop.touch()
        holder.expect("released")
        holder.finish()
    finally:
        holder.kill()
    tl.process_once()
    assert none_on_main(world, main, ds)
