"""Two-level storage end to end on an SQLite catalogue and in-memory storage: archive,
restore, write, delete, failures, locks, eviction, restart. Jobs run synchronously
(``process_once``) unless a test is about the scheduler's thread; each ``two_level()`` is a
process of its own (its own scheduler)."""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from cairn.db.engine import Database
from cairn.errors import ErrorType, IcatError
from cairn.ids.locations import dataset_folder, strip_digest
from cairn.ids.locks import DataBusy
from cairn.ids.storage_memory import MemoryStorage
from cairn.ids.twolevel import TwoLevel
from cairn.ids.twolevel_queue import KIND, UnitState
from cairn.jobs import Job, JobContext, State
from cairn.jobs.model import utcnow
from tests.unit.ids_twolevel_fixtures import (
    World,
    add_datafile,
    delete_datafile,
    none_on_main,
    on_main,
    populate,
    settings,
    sqlite_database,
    two_level,
    wait_for,
)


class Env:
    def __init__(self, tmp_path: Path, unit: str = "dataset", key: str | None = None,
                 **kw: Any) -> None:
        self.tmp_path = tmp_path
        self.db: Database = sqlite_database(tmp_path)
        self.main = MemoryStorage()
        self.archive = MemoryStorage()
        self.world: World = populate(self.db, self.main, key=key)
        self.settings = settings(tmp_path, storage_unit=unit, key=key, **kw)
        self.instances: list[TwoLevel] = []

    def two_level(self, **kw: Any) -> TwoLevel:
        """Two-level storage of a process of its own: its own scheduler."""
        tl = two_level(self.db, self.main, self.archive, self.settings, **kw)
        self.instances.append(tl)
        return tl

    def close(self) -> None:
        for tl in self.instances:
            tl.scheduler.stop()
        self.db.dispose()


def claim(tl: TwoLevel, limit: int = 10) -> list[Job]:
    """Claim due jobs as ``tl``'s process would, without running them."""
    jobs = tl.scheduler
    return jobs.queue.claim(jobs.owner, jobs.registry.kinds, limit)


def run(tl: TwoLevel, job: Job) -> None:
    """Run a claimed job as ``tl``'s process would."""
    tl.scheduler.execute(JobContext(job))


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    e.close()


@pytest.fixture
def dfenv(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path, unit="datafile")
    yield e
    e.close()


def job_states(tl: TwoLevel) -> dict[int, tuple[str | None, str | None]]:
    """What is queued (merged) and running per unit."""
    return {line.unit_id: (line.waiting, line.running) for line in tl.queue.all()}


def expire_write_delays(db: Database) -> None:
    t = db.tables.job
    with db.begin() as conn:
        conn.execute(update(t).where(t.c.state == State.QUEUED)
                     .values(not_before=utcnow() - timedelta(seconds=1)))


def finished(tl: TwoLevel, state: State) -> list[Job]:
    return tl.scheduler.queue.find(kind=KIND, states=[state])


def archive_zip_names(env: Env, i: int) -> list[str]:
    ds = env.world.ds(i)
    data = env.archive.read_all(dataset_folder(ds.investigation_id, ds.id))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return sorted(n.split("/", 5)[5] for n in zf.namelist())


# --- DATASET unit -----------------------------------------------------------------------------


def test_write_archive_restore_cycle_keeps_bytes(env: Env) -> None:
    tl = env.two_level()
    w = env.world
    ds = [w.ds(0)]
    assert tl.status(ds, []) == "ONLINE"
    tl.request("WRITE", ds, [])
    assert tl.process_once() == 1
    assert archive_zip_names(env, 0) == sorted(f.name for f in w.files[ds[0].id])

    tl.request("ARCHIVE", ds, [])
    assert tl.status(ds, []) == "ARCHIVED"  # queued for archive: already ARCHIVED
    tl.process_once()
    assert none_on_main(w, env.main, ds[0])
    assert on_main(w, env.main, w.ds(1))  # the other dataset untouched
    assert tl.status(ds, []) == "ARCHIVED"
    assert tl.status([], w.files[ds[0].id][:1]) == "ARCHIVED"  # by datafile: its dataset

    tl.request("RESTORE", ds, [])
    assert tl.status(ds, []) == "RESTORING"
    assert tl.status([w.ds(1), *ds], []) == "RESTORING"
    tl.process_once()
    assert tl.status(ds, []) == "ONLINE"
    assert on_main(w, env.main, ds[0])  # CRC32 of every file as before
    assert job_states(tl) == {}


def test_status_never_queues_and_ensure_online_does(env: Env) -> None:
    tl = env.two_level()
    ds = [env.world.ds(0)]
    tl.request("WRITE", ds, [])
    tl.request("ARCHIVE", ds, [])
    tl.process_once()
    tl.process_once()
    assert tl.status(ds, []) == "ARCHIVED"
    assert job_states(tl) == {}
    assert tl.ensure_online(ds, []) is False
    assert job_states(tl) == {ds[0].id: ("RESTORE_REQUESTED", None)}
    assert tl.ensure_online(ds, []) is False  # already restoring: nothing more queued
    tl.process_once()
    assert tl.ensure_online(ds, []) is True
    assert tl.ensure_online([], []) is True


def test_archive_queued_means_not_online(env: Env) -> None:
    tl = env.two_level()
    ds = [env.world.ds(0)]
    tl.request("ARCHIVE", ds, [])
    # Still on main storage, but about to go: restore requested instead (ids.server).
    assert tl.ensure_online(ds, []) is False
    assert job_states(tl) == {ds[0].id: ("RESTORE_REQUESTED", None)}
    tl.process_once()
    assert tl.status(ds, []) == "ONLINE"


def test_archive_without_archive_copy_writes_it_first(env: Env) -> None:
    tl = env.two_level()
    ds = [env.world.ds(0)]
    tl.request("ARCHIVE", ds, [])  # never written: evicting blindly would lose the data
    tl.process_once()
    assert none_on_main(env.world, env.main, ds[0])
    tl.request("RESTORE", ds, [])
    tl.process_once()
    assert on_main(env.world, env.main, ds[0])


def test_pending_write_refuses_archive_until_written(env: Env) -> None:
    env.settings.write_delay_seconds = 3600
    tl = env.two_level()
    w = env.world
    ds = w.ds(0)
    tl.request("WRITE", [ds], [])
    tl.process_once()
    expire_write_delays(env.db)
    tl.process_once()  # the first version is in the archive
    new = add_datafile(w, ds, "late.dat", b"late bytes", env.main)
    tl.after_put(ds, new)
    tl.request("ARCHIVE", [ds], [])
    assert job_states(tl) == {ds.id: ("WRITE_THEN_ARCHIVE_REQUESTED", None)}
    assert tl.status([ds], []) == "ARCHIVED"
    assert tl.process_once() == 0  # the write waits for its delay, and the archive for it
    assert on_main(w, env.main, ds)
    expire_write_delays(env.db)
    tl.process_once()  # write, then ARCHIVE is queued
    assert "late.dat" in archive_zip_names(env, 0)
    assert job_states(tl) == {ds.id: ("ARCHIVE_REQUESTED", None)}
    tl.process_once()
    assert none_on_main(w, env.main, ds)
    tl.request("RESTORE", [ds], [])
    tl.process_once()
    assert on_main(w, env.main, ds)


def test_write_queued_while_archive_waits_for_its_lock_wins(env: Env) -> None:
    """A put finishing between an archive's claim and its lock must not be evicted."""
    tl = env.two_level()
    w = env.world
    ds = w.ds(0)
    tl.request("WRITE", [ds], [])
    tl.process_once()
    tl.request("ARCHIVE", [ds], [])
    [job] = claim(tl)
    new = add_datafile(w, ds, "racing.dat", b"racing", env.main)
    tl.after_put(ds, new)  # queued behind the running archive
    run(tl, job)
    assert on_main(w, env.main, ds)
    assert job_states(tl) == {ds.id: ("WRITE_THEN_ARCHIVE_REQUESTED", None)}
    tl.process_once()
    tl.process_once()
    assert none_on_main(w, env.main, ds)
    assert "racing.dat" in archive_zip_names(env, 0)


def test_download_lock_blocks_archive(env: Env) -> None:
    tl = env.two_level()
    ds = env.world.ds(0)
    tl.request("WRITE", [ds], [])
    tl.process_once()
    with tl.lock([ds.id], shared=True):  # a download in progress
        tl.request("ARCHIVE", [ds], [])
        assert tl.process_once() == 1  # claimed, lock busy, back in the queue
        assert on_main(env.world, env.main, ds)
        assert job_states(tl) == {ds.id: ("ARCHIVE_REQUESTED", None)}
        with tl.lock([ds.id], shared=True):  # other readers are welcome
            pass
        status = tl.service_status()
        assert status["lockCount"] == 1
        assert status["locks"] == [{"id": ds.id, "type": "SHARED", "count": 1}]
    tl.process_once()
    assert none_on_main(env.world, env.main, ds)


def test_exclusive_job_lock_makes_downloads_busy(env: Env) -> None:
    tl = env.two_level()
    ds = env.world.ds(0)
    holder = tl.locks.acquire([ds.id], shared=False)  # as a running restore holds it
    with pytest.raises(DataBusy, match="Data is busy"):
        tl.locks.acquire([ds.id, env.world.ds(1).id], shared=True)
    assert not tl.locks.held([env.world.ds(1).id])  # all or nothing
    tl.locks.release(holder)
    with tl.lock([ds.id], shared=True):
        pass


def test_corrupt_archive_sets_failure_flag_until_reset(env: Env) -> None:
    tl = env.two_level()
    w = env.world
    ds = w.ds(0)
    tl.request("WRITE", [ds], [])
    tl.request("ARCHIVE", [ds], [])
    tl.process_once()
    tl.process_once()
    key = dataset_folder(ds.investigation_id, ds.id)
    good = env.archive.read_all(key)
    # A zip with an entry that matches no datafile ("spurious"), as ids.server checks.
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as src, zipfile.ZipFile(buf, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr("ids/LILS/inv+1/v1/ds0/intruder.dat", b"?")
    env.archive.put(key, [buf.getvalue()])
    tl.request("RESTORE", [ds], [])
    tl.process_once()
    with pytest.raises(IcatError) as e:
        tl.status([ds], [])
    assert (e.value.type, e.value.message) == (ErrorType.INTERNAL, "Restore failed")
    [failed] = finished(tl, State.FAILED)  # and the job says why, for `cairn jobs`
    assert failed.payload["state"] == UnitState.RESTORE_REQUESTED
    assert failed.error is not None and "intruder.dat" in failed.error
    with pytest.raises(IcatError, match="Restore failed"):
        tl.check_failures([], w.files[ds.id][:1])
    assert tl.status([w.ds(1)], []) == "ONLINE"  # other data unaffected
    assert none_on_main(w, env.main, ds)  # nothing half-restored
    assert tl.service_status()["failures"] == [ds.id]
    tl.reset([ds], [])
    assert tl.status([ds], []) == "ARCHIVED"
    # Flags are in the database: another process sees them, and a good restore clears them.
    env.archive.put(key, [b"not a zip at all"])
    tl.request("RESTORE", [ds], [])
    tl.process_once()
    with pytest.raises(IcatError, match="Restore failed"):
        env.two_level().status([ds], [])
    env.archive.put(key, [good])
    tl.ensure_online([ds], [])  # queues a restore even when flagged (ids.server's getData)
    tl.process_once()
    assert tl.status([ds], []) == "ONLINE"
    assert on_main(w, env.main, ds)


def test_bad_crc_in_archive_fails_restore(env: Env) -> None:
    tl = env.two_level()
    ds = env.world.ds(0)
    tl.request("WRITE", [ds], [])
    tl.request("ARCHIVE", [ds], [])
    tl.process_once()
    tl.process_once()
    key = dataset_folder(ds.investigation_id, ds.id)
    data = bytearray(env.archive.read_all(key))
    # Rewrite as STORED with one flipped data byte, CRCs left as they were.
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as src:
        members = [(i.filename, src.read(i)) for i in src.infolist()]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as dst:
        for name, content in members:
            dst.writestr(name, content)
    raw = bytearray(buf.getvalue())
    first = members[0][1]
    at = raw.index(first[:20])
    raw[at] ^= 0xFF
    env.archive.put(key, [bytes(raw)])
    tl.request("RESTORE", [ds], [])
    tl.process_once()
    with pytest.raises(IcatError, match="Restore failed"):
        tl.status([ds], [])


def test_delete_rewrites_the_dataset_zip(env: Env) -> None:
    tl = env.two_level()
    w = env.world
    ds = w.ds(0)
    tl.request("WRITE", [ds], [])
    tl.process_once()
    victim = w.files[ds.id][0]
    with tl.lock([ds.id], shared=False):
        delete_datafile(w, victim, env.main)
        tl.after_delete([ds], [victim])
    tl.process_once()
    assert victim.name not in archive_zip_names(env, 0)
    for f in list(w.files[ds.id]):
        delete_datafile(w, f, env.main)
    tl.after_delete([], [victim])  # by datafile: its dataset is rewritten
    tl.process_once()
    key = dataset_folder(ds.investigation_id, ds.id)
    assert not env.archive.exists(key)  # emptied: the archive copy goes too
    assert tl.status([ds], []) == "ONLINE"  # an empty dataset is always online


def test_request_delete_in_dataset_mode_is_a_write(env: Env) -> None:
    tl = env.two_level()
    tl.request("delete", [env.world.ds(0)], [])
    assert job_states(tl) == {env.world.ds(0).id: ("WRITE_REQUESTED", None)}
    with pytest.raises(IcatError) as e:
        tl.request("SHRED", [env.world.ds(0)], [])
    assert e.value.type == ErrorType.BAD_PARAMETER


def test_partly_missing_dataset_is_not_written_over_its_archive(env: Env) -> None:
    tl = env.two_level(retry_seconds=3600)
    w = env.world
    ds = w.ds(0)
    tl.request("WRITE", [ds], [])
    tl.process_once()
    before = env.archive.read_all(dataset_folder(ds.investigation_id, ds.id))
    env.main.delete(w.files[ds.id][0].location)  # lost from main behind our back
    tl.request("WRITE", [ds], [])
    tl.process_once()
    assert env.archive.read_all(dataset_folder(ds.investigation_id, ds.id)) == before
    [job] = tl.scheduler.queue.find(kind=KIND, states=[State.QUEUED])
    assert job.payload["state"] == UnitState.WRITE_REQUESTED  # retried later
    assert job.not_before > utcnow() + timedelta(seconds=3000)
    assert job.error is not None and "missing from main storage" in job.error
    assert tl.status([ds], []) == "ARCHIVED"  # not entirely on main storage


def test_eviction_by_watermarks_oldest_first(env: Env) -> None:
    w = env.world
    sizes = {ds.id: sum(env.main.size(f.location) for f in w.files[ds.id])
             for ds in w.datasets}
    total = sum(sizes.values())
    # Dataset 1's files are older than dataset 0's: it goes first.
    for ds, mtime in ((w.ds(0), 2000.0), (w.ds(1), 1000.0)):
        for f in w.files[ds.id]:
            data, _ = env.main._objects[f.location]
            env.main._objects[f.location] = (data, mtime)
    env.settings.start_archiving_level_bytes = total + 1
    env.settings.stop_archiving_level_bytes = total - 1
    tl = env.two_level()
    assert tl.tidy() == 0  # below the high watermark
    env.settings.start_archiving_level_bytes = total
    assert tl.tidy() == 1
    assert job_states(tl) == {w.ds(1).id: ("ARCHIVE_REQUESTED", None)}
    tl.process_once()
    assert none_on_main(w, env.main, w.ds(1))
    assert on_main(w, env.main, w.ds(0))
    assert sum(o.size for o in env.main.list()) <= total - 1
    assert tl.tidy() == 0
    tl.ensure_online([w.ds(1)], [])
    tl.process_once()
    assert on_main(w, env.main, w.ds(1))


def test_write_delay(env: Env) -> None:
    env.settings.write_delay_seconds = 3600
    tl = env.two_level()
    ds = env.world.ds(0)
    tl.after_put(ds, env.world.files[ds.id][0])
    assert tl.process_once() == 0
    assert not env.archive.exists(dataset_folder(ds.investigation_id, ds.id))
    assert tl.status([ds], []) == "ONLINE"  # a pending write doesn't make data offline
    assert tl.service_status()["opsQueue"] == [
        {"data": dataset_folder(ds.investigation_id, ds.id), "request": "WRITE_REQUESTED"}]
    expire_write_delays(env.db)
    assert tl.process_once() == 1
    assert env.archive.exists(dataset_folder(ds.investigation_id, ds.id))


def test_restart_picks_up_queued_work(env: Env) -> None:
    first = env.two_level()
    ds = [env.world.ds(0), env.world.ds(1)]
    first.request("WRITE", ds, [])
    first.request("ARCHIVE", ds, [])
    first.process_once()  # written; ARCHIVE queued
    first.process_once()
    first.request("RESTORE", ds, [])
    first.scheduler.stop()  # never started: the restores are only in the database
    second = env.two_level()
    second.scheduler.start()
    wait_for(lambda: second.status(ds, []) == "ONLINE", "restores after restart")
    assert all(on_main(env.world, env.main, d) for d in ds)


def test_job_of_a_crashed_process_is_resumed(env: Env) -> None:
    dead = env.two_level(stale_seconds=30)
    ds = env.world.ds(0)
    dead.request("WRITE", [ds], [])
    dead.request("ARCHIVE", [ds], [])
    dead.process_once()
    dead.process_once()
    dead.request("RESTORE", [ds], [])
    [job] = claim(dead, 1)  # ... and the process dies before running it
    t = env.db.tables.job
    with env.db.begin() as conn:
        conn.execute(update(t).where(t.c.id == job.id)
                     .values(heartbeat=utcnow() - timedelta(seconds=60)))
    alive = env.two_level(stale_seconds=30)
    alive.scheduler.start()
    wait_for(lambda: alive.status([ds], []) == "ONLINE", "the resumed restore")
    assert job.payload["state"] == UnitState.RESTORE_REQUESTED


def test_background_thread_runs_jobs(env: Env) -> None:
    tl = env.two_level()
    tl.scheduler.start()
    ds = [env.world.ds(0)]
    tl.request("WRITE", ds, [])
    tl.request("ARCHIVE", ds, [])
    wait_for(lambda: none_on_main(env.world, env.main, ds[0]), "archive")
    assert tl.ensure_online(ds, []) is False
    wait_for(lambda: tl.ensure_online(ds, []), "restore")
    assert on_main(env.world, env.main, ds[0])
    wait_for(lambda: tl.service_status()["opsQueue"] == [], "an empty queue")
    tl.scheduler.stop()
    tl.scheduler.stop()  # idempotent


def test_service_status_shape(env: Env) -> None:
    tl = env.two_level()
    ds = env.world.ds(0)
    tl.request("ARCHIVE", [ds], [])
    [job] = claim(tl, 1)
    tl.request("RESTORE", [ds], [])
    with tl.lock([env.world.ds(1).id], shared=True):
        status = tl.service_status()
    key = dataset_folder(ds.investigation_id, ds.id)
    assert status == {
        "opsQueue": [{"data": key, "request": "ARCHIVE_REQUESTED", "running": True},
                     {"data": key, "request": "RESTORE_REQUESTED"}],
        "lockCount": 1, "locks": [{"id": env.world.ds(1).id, "type": "SHARED", "count": 1}],
        "failures": []}
    # Being archived (running) outranks the restore queued behind it.
    assert tl.status([ds], []) == "ARCHIVED"
    run(tl, job)
    assert tl.status([ds], []) == "RESTORING"


# --- DATAFILE unit ----------------------------------------------------------------------------


def test_datafile_cycle(dfenv: Env) -> None:
    tl = dfenv.two_level()
    w = dfenv.world
    files = w.files[w.ds(0).id]
    f0 = files[0]
    tl.request("WRITE", [], files)
    assert tl.process_once() == len(files)
    assert all(dfenv.archive.exists(f.location) for f in files)
    tl.request("ARCHIVE", [], [f0])
    assert tl.status([], files) == "ARCHIVED"
    tl.process_once()
    assert not dfenv.main.exists(f0.location)
    assert dfenv.main.exists(files[1].location)
    assert tl.status([], files[1:]) == "ONLINE"
    assert tl.ensure_online([], files) is False
    assert tl.status([], files) == "RESTORING"
    tl.process_once()
    assert tl.status([], files) == "ONLINE"
    assert zlib.crc32(dfenv.main.read_all(f0.location)) == w.crcs[f0.id]


def test_datafile_archive_then_restore_cancels(dfenv: Env) -> None:
    tl = dfenv.two_level()
    f0 = dfenv.world.datafiles[0]
    tl.request("ARCHIVE", [], [f0])
    tl.request("RESTORE", [], [f0])
    assert job_states(tl) == {}
    assert tl.process_once() == 0
    assert tl.status([], [f0]) == "ONLINE"


def test_datafile_delete_removes_archive_copy(dfenv: Env) -> None:
    tl = dfenv.two_level()
    w = dfenv.world
    f0, f1 = w.datafiles[:2]
    tl.request("WRITE", [], [f0, f1])
    tl.process_once()
    delete_datafile(w, f0, dfenv.main)
    tl.after_delete([], [f0])
    assert job_states(tl) == {f0.id: ("DELETE_REQUESTED", None)}
    tl.process_once()
    assert not dfenv.archive.exists(f0.location)
    assert dfenv.archive.exists(f1.location)


def test_datafile_restore_without_archive_copy_fails(dfenv: Env) -> None:
    tl = dfenv.two_level()
    f0 = dfenv.world.datafiles[0]
    dfenv.main.delete(f0.location)
    assert tl.status([], [f0]) == "ARCHIVED"
    assert tl.ensure_online([], [f0]) is False
    tl.process_once()
    with pytest.raises(IcatError, match="Restore failed"):
        tl.status([], [f0])
    tl.reset([], [f0])
    assert tl.status([], [f0]) == "ARCHIVED"


def test_datafile_eviction(dfenv: Env) -> None:
    w = dfenv.world
    files = w.datafiles
    for n, f in enumerate(files):
        data, _ = dfenv.main._objects[f.location]
        dfenv.main._objects[f.location] = (data, 1000.0 + n)
    total = sum(dfenv.main.size(f.location) for f in files)
    dfenv.settings.start_archiving_level_bytes = total
    dfenv.settings.stop_archiving_level_bytes = total - 1
    tl = dfenv.two_level()
    assert tl.tidy() == 1
    assert job_states(tl) == {files[0].id: ("ARCHIVE_REQUESTED", None)}
    tl.process_once()
    assert not dfenv.main.exists(files[0].location)
    assert dfenv.archive.exists(files[0].location)


def test_datafile_locations_with_key(tmp_path: Path) -> None:
    e = Env(tmp_path, unit="datafile", key="secret")
    try:
        tl = e.two_level()
        files = e.world.datafiles
        with e.db.connect() as conn:
            t = e.db.tables["Datafile"]
            stored = conn.execute(select(t.c.location).where(t.c.id == files[0].id)).scalar()
        assert stored != files[0].location
        assert strip_digest(files[0].id, stored, "secret") == files[0].location
        e.settings.start_archiving_level_bytes = sum(f.size or 0 for f in files)
        e.settings.stop_archiving_level_bytes = 0
        assert tl.tidy() == len(files)  # hashed catalogue locations matched
        tl.process_once()
        assert tl.status([], files) == "ARCHIVED"
        tl.ensure_online([], files)
        tl.process_once()
        assert tl.status([], files) == "ONLINE"
    finally:
        e.close()


def test_bad_settings() -> None:
    class S:
        storage_unit = "investigation"

    with pytest.raises(ValueError, match="storage_unit"):
        TwoLevel(None, MemoryStorage(), MemoryStorage(), S(), None)  # type: ignore[arg-type]


def test_datafile_pending_write_then_archive(tmp_path: Path) -> None:
    e = Env(tmp_path, unit="datafile", write_delay_seconds=3600)
    try:
        tl = e.two_level()
        ds = e.world.ds(0)
        new = add_datafile(e.world, ds, "fresh.dat", b"fresh", e.main)
        tl.after_put(ds, new)
        tl.request("ARCHIVE", [], [new])
        assert job_states(tl) == {new.id: ("WRITE_THEN_ARCHIVE_REQUESTED", None)}
        assert tl.process_once() == 0
        assert e.main.exists(new.location)
        expire_write_delays(e.db)
        tl.process_once()
        assert e.archive.read_all(new.location) == b"fresh"
        assert job_states(tl) == {new.id: ("ARCHIVE_REQUESTED", None)}
        tl.process_once()
        assert not e.main.exists(new.location)
        assert tl.status([], [new]) == "ARCHIVED"
    finally:
        e.close()
