"""The life of a download on the job system, at the core level (no HTTP), on every backend:
single-level storage straight to COMPLETE with the right zip, two-level storage through
RESTORING, the ready mail requested, failed restores EXPIRED, prepared ids that have gone
prepared again, the queue's slots and priorities, PAUSED and deleted downloads left alone,
two processes never doing one download twice, and real processes killed with SIGKILL while
preparing and while restoring. Then who may queue and how a visit, a data collection or a
list of files is split (:mod:`cairn.downloads.queueing`).

Download rows are inserted directly (the API writes the real submit) and handed to
:meth:`Lifecycle.submitted` in the same transaction, as the API does.

This module is also the subprocess of the SIGKILL tests::

    python -m tests.integration.test_downloads_lifecycle child MODE URL FOLDER
"""

from __future__ import annotations

import io
import os
import select as selectmod
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select, update

from cairn.catalogue.service import Catalogue
from cairn.catalogue.work import Work
from cairn.config import DownloadSettings, QueuePriorities, Settings
from cairn.db import migrate
from cairn.db.engine import Database
from cairn.downloads.lifecycle import MAIL, POLL, PREPARE, Lifecycle
from cairn.downloads.model import Status
from cairn.downloads.queueing import (
    collection_parts,
    files_items,
    pack,
    part_names,
    priority,
    visit_parts,
)
from cairn.errors import ErrorType, IcatError
from cairn.ids.locations import dataset_folder
from cairn.ids.selection import Resolver, Selection
from cairn.jobs import JobContext, Kind, Scheduler, State
from cairn.jobs.model import utcnow
from cairn.startup import open_data_service
from tests.integration.catalogue_objects import create
from tests.unit.ids_twolevel_fixtures import wait_for

ROOT = Path(__file__).resolve().parents[2]
MEMBER = ("SELECT {v} FROM {e} {v} JOIN {path} iu JOIN iu.user u WHERE u.name = :user")
#: Files per dataset of investigation "inv1" (visit v1); ds3 holds a file alice may not read.
COUNTS = {"ds0": 3, "ds1": 2, "ds2": 0, "ds3": 4, "ds4": 7, "ds5": 1}


def content(ds: str, name: str) -> bytes:
    return f"{ds}/{name}\n".encode() * 50


class World:
    """A catalogue, a data service on folders of ``folder`` (two-level with an archive) and
    the download lifecycle, all on one scheduler whose jobs the test runs by hand (or
    starts). ``populate`` builds the catalogue; a second World on the same database (another
    process) does not."""

    def __init__(self, url: str, folder: Path, *, two_level: bool = False,
                 populate: bool = True, **downloads: Any) -> None:
        self.folder = folder
        self.db = Database(url)
        if populate:
            migrate.upgrade(self.db)
        self.db.detect_ids()
        data: dict[str, Any] = {"main": str(folder / "main"), "cache_dir": str(folder / "cache"),
                                "write_delay_seconds": 0}
        if two_level:
            data["archive"] = str(folder / "archive")
        self.settings = Settings(server={"data_dir": str(folder)}, data=data,
                                 catalogue={"max_ids_in_query": 3},
                                 jobs={"poll_interval_seconds": 0.05,
                                       "stale_claim_seconds": 0.5})
        self.jobs = Scheduler(self.db, poll_seconds=0.05, stale_seconds=0.5)
        self.catalogue = Catalogue(self.settings, self.db, {}, jobs=self.jobs)
        self.data = open_data_service(self.catalogue, self.db, self.jobs)
        options: dict[str, Any] = {"mail": {"smtp_host": "localhost"}, "poll_seconds": 0.05}
        options.update(downloads)
        self.downloads = DownloadSettings(**options)
        self.lifecycle = Lifecycle(self.catalogue, self.data, self.downloads, self.jobs)
        self.mails: list[dict[str, Any]] = []
        self.jobs.register(*self.data.job_kinds(), *self.lifecycle.job_kinds(),
                           Kind(MAIL, self._mail))
        self.t = self.db.tables.downloads
        self.ids: dict[str, int] = {}
        self.files: dict[str, list[int]] = {}
        self.names: dict[str, list[str]] = {}
        self.locations: dict[int, str] = {}
        if populate:
            self._populate()

    def _mail(self, ctx: JobContext) -> None:
        self.mails.append(ctx.payload)

    # -- the catalogue --------------------------------------------------------------------------

    def _populate(self) -> None:
        c, ids = self.catalogue, self.ids
        for what in ("Facility", "DatafileFormat", "DatasetType", "InvestigationType",
                     "DataCollection"):
            create(c, "Rule", what=what, crudFlags="R")
        create(c, "Rule", crudFlags="R", what=MEMBER.format(
            v="i", e="Investigation", path="i.investigationUsers"))
        create(c, "Rule", crudFlags="R", what=MEMBER.format(
            v="ds", e="Dataset", path="ds.investigation i JOIN i.investigationUsers"))
        # Members read the files of their datasets, but of ds3 only those not secret.
        create(c, "Rule", crudFlags="R", what=(
            "SELECT df FROM Datafile df JOIN df.dataset ds JOIN ds.investigation i "
            "JOIN i.investigationUsers iu JOIN iu.user u WHERE u.name = :user "
            "AND ds.name <> 'ds3'"))
        create(c, "Rule", crudFlags="R", what=(
            "SELECT df FROM Datafile df JOIN df.dataset ds WHERE ds.name = 'ds3' "
            "AND df.name NOT LIKE 'secret%'"))
        fac = ids["LSF"] = create(c, "Facility", name="LSF")
        other = create(c, "Facility", name="OTHER")
        itype = create(c, "InvestigationType", name="experiment", facility=("Facility", fac))
        otype = create(c, "InvestigationType", name="experiment",
                       facility=("Facility", other))
        self.dtype = create(c, "DatasetType", name="raw", facility=("Facility", fac))
        self.fmt = create(c, "DatafileFormat", name="bin", version="1",
                          facility=("Facility", fac))
        users = {n: create(c, "User", name=n) for n in (
            "db/alice", "db/bob", "db/carol", "db/dave", "db/erin", "db/zed")}
        for grouping, members in (("fast", ["db/alice", "db/zed"]),
                                  ("blocked", ["db/dave", "db/erin"])):
            g = create(c, "Grouping", name=grouping)
            for m in members:
                create(c, "UserGroup", grouping=("Grouping", g), user=("User", users[m]))
        instrument = create(c, "Instrument", name="I1", facility=("Facility", fac))
        create(c, "InstrumentScientist", instrument=("Instrument", instrument),
               user=("User", users["db/bob"]))

        def investigation(name: str, visit: str, facility: int = fac, t: int = itype,
                          members: dict[str, str] | None = None) -> int:
            inv = ids[name] = create(c, "Investigation", name=name, visitId=visit, title=name,
                                     facility=("Facility", facility),
                                     type=("InvestigationType", t))
            for user, role in (members or {}).items():
                create(c, "InvestigationUser", investigation=("Investigation", inv),
                       user=("User", users[user]), role=role)
            return inv

        inv1 = investigation("inv1", "v1", members={"db/alice": "PI", "db/erin": "CI"})
        for ds, n in COUNTS.items():
            names = [f"f{k}.dat" for k in range(n)]
            if ds == "ds3":
                names[-1] = "secret.dat"
            self.dataset(inv1, ds, names)
        inv2 = investigation("inv2", "v1", members={"db/alice": "CI", "db/carol": "CI"})
        self.dataset(inv2, "ds6", ["a.dat", "b.dat"])
        inv3 = investigation("inv3", "v1")  # nobody's: alice may not read it
        self.dataset(inv3, "ds7", ["c.dat"])
        inv4 = investigation("inv4", "v1", facility=other, t=otype,
                             members={"db/alice": "PI"})
        ds8_type = create(c, "DatasetType", name="raw", facility=("Facility", other))
        self.dataset(inv4, "ds8", ["d.dat"], ds8_type)

    def dataset(self, inv: int, name: str, files: list[str], dtype: int | None = None
                ) -> int:
        c = self.catalogue
        ds = self.ids[name] = create(c, "Dataset", name=name,
                                     investigation=("Investigation", inv),
                                     type=("DatasetType", dtype or self.dtype))
        self.files[name] = []
        self.names[name] = files
        for f in files:
            location = f"{dataset_folder(inv, ds)}/{f}"
            data = content(name, f)
            df = create(c, "Datafile", name=f, location=location, fileSize=len(data),
                        dataset=("Dataset", ds))
            self.data.main.put(location, [data])
            self.files[name].append(df)
            self.locations[df] = location
        return ds

    def archive_all(self) -> None:
        """Write every dataset of inv1 to the archive and remove it from main storage."""
        tl = self.data.twolevel
        assert tl is not None
        with self.catalogue.as_system(read_only=True) as work:
            got = Resolver(work).resolve(Selection(investigation_ids=(self.ids["inv1"],)))
        for op in ("WRITE", "ARCHIVE"):
            tl.request(op, got.dataset_list, got.datafiles)
            self.run()
        assert not any(self.data.main.exists(d.location) for d in got.datafiles)

    # -- downloads ------------------------------------------------------------------------------

    def add(self, items: list[tuple[str, int]], *, status: Status = Status.PREPARING,
            transport: str = "https", email: str | None = None, priority: int = 1,
            created: datetime | None = None, deleted: bool = False,
            submit: bool = True) -> int:
        """A download row and its items, handed to the lifecycle in the same transaction."""
        with self.catalogue.as_system() as work:
            new = work.conn.execute(insert(self.t.download).values(
                facility="LSF", user="db/alice", transport=transport, file_name="dl",
                email=email, is_email_sent=False, status=status.value, priority=priority,
                size=-1, is_two_level=False, created=created or utcnow(),
                is_deleted=deleted, bytes_sent=0)).inserted_primary_key
            assert new is not None
            download_id = int(new[0])
            if items:
                work.conn.execute(insert(self.t.download_item), [
                    {"download": download_id, "entity_type": t, "entity_id": i}
                    for t, i in items])
            if submit:
                self.lifecycle.submitted(work, download_id, status is Status.QUEUED)
        return download_id

    def row(self, download_id: int) -> Any:
        d = self.t.download
        with self.db.connect() as conn:
            return conn.execute(select(d).where(d.c.id == download_id)).one()

    def status(self, download_id: int) -> Status:
        return Status(self.row(download_id).status)

    def set(self, download_id: int, **values: Any) -> None:
        """A change made outside the lifecycle (the API: a user's pause, an agent's COMPLETE)."""
        d = self.t.download
        with self.db.begin() as conn:
            conn.execute(update(d).where(d.c.id == download_id).values(**values))

    def run(self, kinds: list[str] | None = None, rounds: int = 50) -> None:
        """Run the jobs due now (and those they request) until none is left due."""
        for _ in range(rounds):
            if not self.jobs.run_pending(kinds):
                return

    def settle(self, done: Callable[[], bool], what: str, timeout: float = 60) -> None:
        """Run jobs, waiting ones included (a poll's next run, a retry), until ``done``."""
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            self.due_now()
            self.jobs.queue.recover_stale(self.jobs.stale_seconds)
            self.jobs.run_pending()
            time.sleep(0.01)

    def due_now(self) -> None:
        j = self.db.tables.job
        with self.db.begin() as conn:
            conn.execute(update(j).where(j.c.state == State.QUEUED.value)
                         .values(not_before=datetime(2000, 1, 1)))

    def jobs_of(self, kind: str) -> list[Any]:
        return self.jobs.queue.find(kind=kind, limit=1000)

    def prepared_count(self) -> int:
        p = self.db.tables.ids_prepared
        with self.db.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(p)).scalar_one())

    def fetch(self, prepared_id: str) -> dict[str, bytes]:
        """getData of the prepared id: the zip's files as "<dataset>/<name>" -> bytes."""
        got = self.data.download(prepared_id, None, Selection(), zip=True, compress=False,
                                 outname=None)
        try:
            raw = b"".join(got.body)
            assert got.body.length == len(raw)
        finally:
            got.release()
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            return {"/".join(n.split("/")[-2:]): z.read(n) for n in z.namelist()}

    def expected(self, *datasets: str, files: tuple[str, ...] = ()) -> dict[str, bytes]:
        out = {f"{ds}/{name}": content(ds, name) for ds in datasets for name in self.names[ds]}
        for f in files:
            ds, name = f.split("/")
            out[f] = content(ds, name)
        return out

    def session(self, user: str) -> str:
        return self.catalogue.sessions.create(user)

    def close(self) -> None:
        self.jobs.stop()
        self.db.dispose()


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[World]:
    w = World(database_url, tmp_path)
    yield w
    w.close()


@pytest.fixture
def two(database_url: str, tmp_path: Path) -> Iterator[World]:
    w = World(database_url, tmp_path, two_level=True)
    w.archive_all()
    yield w
    w.close()


# -- single-level storage ------------------------------------------------------------------------


def test_single_level_goes_straight_to_complete_with_the_right_zip(world: World) -> None:
    w = world
    d1 = w.add([("dataset", w.ids["ds0"]), ("datafile", w.files["ds1"][1])],
               email="alice@example.org")
    d2 = w.add([("investigation", w.ids["inv2"])])
    assert w.status(d1) is Status.PREPARING
    w.run()
    row = w.row(d1)
    assert row.status == Status.COMPLETE and row.prepared_id and row.completed is not None
    want = w.expected("ds0", files=("ds1/f1.dat",))
    assert w.fetch(row.prepared_id) == want
    assert row.size == sum(len(b) for b in want.values())
    assert row.length is not None and row.length > row.size  # the zip's exact bytes
    assert not row.is_two_level and row.error is None
    other = w.row(d2)
    assert other.status == Status.COMPLETE and w.fetch(other.prepared_id) == w.expected("ds6")
    # The ready mail for the one with an address, once.
    assert w.mails == [{"download": d1, "event": "ready"}]
    assert [j.state for j in w.jobs_of(PREPARE)] == [State.DONE, State.DONE]
    assert w.prepared_count() == 2


def test_no_mail_job_without_mail_settings(database_url: str, tmp_path: Path) -> None:
    w = World(database_url, tmp_path, mail={})
    try:
        d = w.add([("dataset", w.ids["ds0"])], email="alice@example.org")
        w.run()
        assert w.status(d) is Status.COMPLETE and w.mails == [] and not w.jobs_of(MAIL)
    finally:
        w.close()


def test_other_transports_are_left_to_their_agent(world: World) -> None:
    """Unlike TopCat on single-level storage: RESTORING, prepared, for the agent."""
    w = world
    d = w.add([("dataset", w.ids["ds0"])], transport="globus", email="a@example.org")
    w.run()
    row = w.row(d)
    assert row.status == Status.RESTORING and row.prepared_id is not None
    assert not w.jobs_of(POLL) and w.mails == []
    w.lifecycle.schedule()
    w.run()
    assert w.status(d) is Status.RESTORING
    assert w.fetch(row.prepared_id) == w.expected("ds0")  # what the agent will fetch


def test_a_selection_that_cannot_be_prepared_expires_with_the_reason(world: World) -> None:
    w = world
    d = w.add([("dataset", w.ids["ds0"]), ("dataset", 987654321)])
    w.run()
    row = w.row(d)
    assert row.status == Status.EXPIRED and row.prepared_id is None
    assert "Dataset[id:987654321] not found" in row.error
    assert w.prepared_count() == 0 and [j.state for j in w.jobs_of(PREPARE)] == [State.DONE]


def test_reprepare_makes_a_new_prepared_id_and_a_new_mail(world: World) -> None:
    w = world
    d = w.add([("dataset", w.ids["ds1"])], email="alice@example.org")
    w.run()
    first = w.row(d)
    w.set(d, is_email_sent=True, bytes_sent=10, sent_ranges="[[0, 10]]")
    with w.catalogue.as_system() as work:
        w.lifecycle.reprepare(work, d)
    again = w.row(d)
    assert again.status == Status.PREPARING and again.prepared_id is None
    assert again.bytes_sent == 0 and again.sent_ranges is None and not again.is_email_sent
    w.run()
    second = w.row(d)
    assert second.status == Status.COMPLETE and second.prepared_id != first.prepared_id
    assert w.fetch(second.prepared_id) == w.expected("ds1")
    assert w.mails == [{"download": d, "event": "ready"}] * 2
    with pytest.raises(IcatError) as e, w.catalogue.as_system() as work:
        w.lifecycle.reprepare(work, 987654321)
    assert e.value.type is ErrorType.NO_SUCH_OBJECT_FOUND


# -- two-level storage ---------------------------------------------------------------------------


def test_two_level_restores_then_completes(two: World) -> None:
    w = two
    d = w.add([("investigation", w.ids["inv1"])], email="alice@example.org")
    w.run([PREPARE])
    row = w.row(d)
    assert row.status == Status.RESTORING and row.prepared_id and row.is_two_level
    assert row.size == sum(len(b) for b in w.expected(*COUNTS).values())
    assert w.mails == []
    w.settle(lambda: w.status(d) is Status.COMPLETE, "the restore")
    done = w.row(d)
    assert done.prepared_id == row.prepared_id and done.completed is not None
    assert done.length is not None
    assert w.fetch(done.prepared_id) == w.expected(*COUNTS)
    w.run([MAIL])
    assert w.mails == [{"download": d, "event": "ready"}]
    assert all(j.state is State.DONE for j in w.jobs_of(POLL))


def test_a_failed_restore_expires_with_the_error(two: World) -> None:
    w = two
    for f in (w.folder / "archive").rglob("*"):
        if f.is_file():
            f.unlink()  # the tape is lost
    d = w.add([("dataset", w.ids["ds0"])], email="alice@example.org")
    w.settle(lambda: w.status(d) is Status.EXPIRED, "the download to expire")
    row = w.row(d)
    assert "Restore failed" in row.error and row.completed is None and w.mails == []


@pytest.mark.parametrize("how", ["deleted", "expired"])
def test_a_prepared_id_that_has_gone_is_prepared_again(two: World, how: str) -> None:
    w = two
    d = w.add([("dataset", w.ids["ds1"])])
    w.run([PREPARE])
    first = w.row(d).prepared_id
    assert w.status(d) is Status.RESTORING
    p = w.db.tables.ids_prepared
    with w.db.begin() as conn:
        if how == "deleted":  # evicted: unknown (404)
            conn.execute(delete(p).where(p.c.id == first))
        else:  # past its lifetime: 410
            conn.execute(update(p).where(p.c.id == first)
                         .values(created=datetime(2001, 1, 1)))
    w.run([POLL])
    assert w.status(d) is Status.PREPARING and w.row(d).prepared_id is None
    w.settle(lambda: w.status(d) is Status.COMPLETE, "the download, prepared again")
    second = w.row(d).prepared_id
    assert second != first and w.fetch(second) == w.expected("ds1")


def test_a_complete_download_whose_prepared_id_expired_is_prepared_again(world: World
                                                                       ) -> None:
    w = world
    d = w.add([("dataset", w.ids["ds0"])], email="alice@example.org")
    w.run()
    first = w.row(d).prepared_id
    assert w.status(d) is Status.COMPLETE and w.mails == [{"download": d, "event": "ready"}]
    p = w.db.tables.ids_prepared
    with w.db.begin() as conn:  # past its lifetime: its link would answer 410
        conn.execute(update(p).where(p.c.id == first).values(created=datetime(2001, 1, 1)))
    w.lifecycle.schedule()
    w.run()
    row = w.row(d)
    assert row.status == Status.COMPLETE and row.prepared_id not in (None, first)
    assert w.fetch(row.prepared_id) == w.expected("ds0")
    assert w.mails == [{"download": d, "event": "ready"}] * 2  # the new link, mailed


def test_a_file_missing_from_storage_expires_the_download_before_it_is_offered(
        world: World) -> None:
    w = world
    d = w.add([("dataset", w.ids["ds0"])], email="alice@example.org")
    w.data.main.delete(w.locations[w.files["ds0"][0]])
    w.run()
    row = w.row(d)
    assert row.status == Status.EXPIRED and "missing" in row.error
    assert w.mails == []  # no mail for a link that would not work


# -- the queue -----------------------------------------------------------------------------------


def test_the_queue_keeps_to_max_active_in_priority_order(database_url: str,
                                                         tmp_path: Path) -> None:
    # An outside agent's transport keeps each started download RESTORING: it holds its slot.
    w = World(database_url, tmp_path, max_active=2)
    try:
        t0 = datetime(2024, 1, 1)
        ds0 = [("dataset", w.ids["ds0"])]

        def queued(prio: int, minutes: int, **kw: Any) -> int:
            return w.add(ds0, status=kw.pop("status", Status.QUEUED), transport="globus",
                         priority=prio, created=t0 + timedelta(minutes=minutes), **kw)

        q1, q2, q3, q4 = queued(3, 0), queued(1, 1), queued(2, 2), queued(1, 3)
        never = queued(0, 0)
        paused = queued(1, 0, status=Status.PAUSED, submit=False)
        deleted = queued(1, 0, deleted=True)
        w.run()
        statuses = {q: w.status(q) for q in (q1, q2, q3, q4)}
        assert statuses == {q1: Status.QUEUED, q2: Status.RESTORING, q3: Status.QUEUED,
                            q4: Status.RESTORING}
        assert w.lifecycle.schedule() == 0
        w.set(q2, status=Status.COMPLETE.value)  # the agent is done with it
        assert w.lifecycle.schedule() == 1
        w.run()
        assert w.status(q3) is Status.RESTORING and w.status(q1) is Status.QUEUED
        with w.catalogue.as_system() as work:  # the API deletes one: a slot is free
            work.conn.execute(update(w.t.download).where(w.t.download.c.id == q4)
                              .values(is_deleted=True))
            w.lifecycle.changed(work, q4)
        w.run()
        assert w.status(q1) is Status.RESTORING
        w.downloads.max_active = 0  # no limit: but priority 0 and PAUSED never start
        assert w.lifecycle.schedule() == 0
        assert w.status(never) is Status.QUEUED and w.status(paused) is Status.PAUSED
        assert w.status(deleted) is Status.QUEUED and w.row(paused).prepared_id is None
    finally:
        w.close()


def test_paused_and_deleted_downloads_are_left_alone_and_resume(world: World) -> None:
    w = world
    paused = w.add([("dataset", w.ids["ds0"])])
    deleted = w.add([("dataset", w.ids["ds1"])])
    w.set(paused, status=Status.PAUSED.value)  # by the user, before its job ran
    w.set(deleted, is_deleted=True)
    w.run([PREPARE])
    assert w.status(paused) is Status.PAUSED and w.row(paused).prepared_id is None
    assert w.status(deleted) is Status.PREPARING and w.row(deleted).prepared_id is None
    assert {j.state for j in w.jobs_of(PREPARE)} == {State.DONE}
    w.lifecycle.schedule()  # the periodic task: nothing to adopt
    w.run([PREPARE])
    assert w.status(paused) is Status.PAUSED and w.prepared_count() == 0
    # Resumed by the API without a word to the lifecycle: the periodic task adopts it.
    w.set(paused, status=Status.PREPARING.value)
    w.lifecycle.schedule()
    w.run([PREPARE])
    assert w.status(paused) is Status.COMPLETE
    # Undeleted, and this time the API says so.
    with w.catalogue.as_system() as work:
        work.conn.execute(update(w.t.download).where(w.t.download.c.id == deleted)
                          .values(is_deleted=False))
        w.lifecycle.changed(work, deleted)
    w.run([PREPARE])
    assert w.status(deleted) is Status.COMPLETE
    assert w.prepared_count() == 2


def test_two_processes_complete_each_download_once(world: World, database_url: str,
                                                   tmp_path: Path) -> None:
    other = World(database_url, tmp_path, populate=False)  # another process, same storage
    downloads = [world.add([("dataset", world.ids[ds])], email=f"{i}@example.org")
                 for i, ds in enumerate(["ds0", "ds1", "ds3", "ds4", "ds5", "ds6"] * 2)]
    world.jobs.start()
    other.jobs.start()
    try:
        wait_for(lambda: all(world.status(d) is Status.COMPLETE for d in downloads),
                 "every download complete", timeout=120)
        wait_for(lambda: len(world.mails) + len(other.mails) == len(downloads), "the mails")
    finally:
        world.jobs.stop()
        other.close()
    mails = Counter(m["download"] for m in world.mails + other.mails)
    assert mails == Counter(downloads)  # one each
    assert world.prepared_count() == len(downloads)
    assert {j.state for j in world.jobs_of(PREPARE)} == {State.DONE}


# -- processes killed ------------------------------------------------------------------------


class Child:
    """This module run as another Cairn process on the same database and folders."""

    def __init__(self, mode: str, url: str, folder: Path) -> None:
        self.p = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.test_downloads_lifecycle", "child", mode,
             url, str(folder)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})

    def expect(self, text: str, timeout: float = 120) -> str:
        assert self.p.stdout is not None
        ready, _, _ = selectmod.select([self.p.stdout], [], [], timeout)
        line = self.p.stdout.readline() if ready else ""
        if not line.startswith(text):
            self.p.kill()
            _, err = self.p.communicate(timeout=30)
            raise AssertionError(f"expected {text!r}, got {line!r}; stderr:\n{err}")
        return line.strip()

    def sigkill(self) -> None:
        os.kill(self.p.pid, signal.SIGKILL)
        self.p.communicate(timeout=30)

    def close(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.communicate()


def test_killed_while_preparing(database_url: str, tmp_path: Path) -> None:
    w = World(database_url, tmp_path)
    child = Child("prepare", database_url, tmp_path)
    try:
        d = w.add([("dataset", w.ids["ds0"]), ("dataset", w.ids["ds1"])],
                  email="alice@example.org")
        pid = child.expect("preparing").split()[1]  # inside its unit of work, uncommitted
        child.sigkill()
        assert w.status(d) is Status.PREPARING and w.prepared_count() == 0
        w.settle(lambda: w.status(d) is Status.COMPLETE, "the download after the kill")
        row = w.row(d)
        assert row.prepared_id != pid and w.prepared_count() == 1
        assert w.fetch(row.prepared_id) == w.expected("ds0", "ds1")
        (job,) = w.jobs_of(PREPARE)
        assert job.state is State.DONE and job.attempts == 1 and "stopped" in (job.error or "")
        w.run([MAIL])
        assert w.mails == [{"download": d, "event": "ready"}]
    finally:
        child.close()
        w.close()


def test_killed_while_restoring(database_url: str, tmp_path: Path) -> None:
    w = World(database_url, tmp_path, two_level=True)
    w.archive_all()
    child = Child("restore", database_url, tmp_path)
    try:
        d = w.add([("dataset", w.ids["ds0"])], email="alice@example.org")
        child.expect("restoring")  # the child prepared it and is reading the archive
        child.sigkill()
        row = w.row(d)
        assert row.status == Status.RESTORING and row.prepared_id is not None
        w.settle(lambda: w.status(d) is Status.COMPLETE, "the download after the kill")
        assert w.row(d).prepared_id == row.prepared_id and w.prepared_count() == 1
        assert w.fetch(row.prepared_id) == w.expected("ds0")
        (prepare,) = w.jobs_of(PREPARE)
        assert prepare.state is State.DONE and prepare.attempts == 0
        w.run([MAIL])
        assert w.mails == [{"download": d, "event": "ready"}]
    finally:
        child.close()
        w.close()


def child(mode: str, url: str, folder: str) -> None:
    """The killed process: runs the scheduler until it hangs where the test kills it."""
    w = World(url, Path(folder), two_level=mode == "restore", populate=False)
    if mode == "prepare":
        real = w.data.prepare_in

        def hang_after(work: Work, sel: Selection, **kw: Any) -> str:
            pid = real(work, sel, **kw)
            print("preparing", pid, flush=True)
            time.sleep(600)
            return pid

        w.data.prepare_in = hang_after  # type: ignore[method-assign]
    else:
        assert w.data.twolevel is not None
        archive = w.data.twolevel.archive  # type: ignore[attr-defined]

        def hang(*args: Any, **kw: Any) -> Any:
            print("restoring", flush=True)
            time.sleep(600)

        archive.read = hang
    w.jobs.start()
    threading.Event().wait(600)


# -- who may queue, and how requests are split -----------------------------------------------


def test_priorities_from_each_source(world: World) -> None:
    s = DownloadSettings(priorities=QueuePriorities(
        user={"db/zed": 7}, grouping={"fast": 2, "blocked": 0}, instrument_scientist=3,
        investigation_role={"PI": 4, "*": 5}, authenticator={"anon": 0, "ldap": 6},
        default=9))
    with world.catalogue.as_system(read_only=True) as work:
        got = {u: priority(work, s, u) for u in (
            "db/zed", "db/alice", "db/bob", "db/carol", "db/dave", "db/erin", "anon/anon",
            "ldap/frank", "db/nobody", "nobody")}
    assert got == {
        "db/zed": 7,        # by name, whatever else
        "db/alice": 2,      # grouping 2 beats PI 4
        "db/bob": 3,        # instrument scientist
        "db/carol": 5,      # a role without its own priority: "*"
        "db/dave": 0,       # only a blocked grouping: forbidden
        "db/erin": 5,       # blocked, but a CI: the best positive one
        "anon/anon": 0, "ldap/frank": 6,  # by authenticator
        "db/nobody": 9, "nobody": 9}      # the default
    with world.catalogue.as_system(read_only=True) as work:
        assert priority(work, DownloadSettings(), "db/alice") == 1


def test_a_visit_is_split_into_parts_of_whole_readable_datasets(world: World) -> None:
    w = world
    i = w.ids
    with w.catalogue.as_system(read_only=True) as work:
        parts = visit_parts(work, "LSF", "v1", 5)
    # ds0 3 + ds1 2 (+ the empty ds2) | ds3 4 | ds4 7, oversize, alone | ds5 1 + ds6 2 + ds7 1
    assert parts == [[("dataset", i["ds0"]), ("dataset", i["ds1"]), ("dataset", i["ds2"])],
                     [("dataset", i["ds3"])], [("dataset", i["ds4"])],
                     [("dataset", i["ds5"]), ("dataset", i["ds6"]), ("dataset", i["ds7"])]]
    with w.catalogue.as_user(w.session("db/alice"), read_only=True) as work:
        mine = visit_parts(work, "LSF", "v1", 5)
    # Not inv3's ds7; ds3's secret file is not hers: its other files come one by one.
    secretless = [("datafile", f) for f in w.files["ds3"][:-1]]
    assert mine == [[("dataset", i["ds0"]), ("dataset", i["ds1"]), ("dataset", i["ds2"])],
                    secretless, [("dataset", i["ds4"])],
                    [("dataset", i["ds5"]), ("dataset", i["ds6"])]]
    with w.catalogue.as_system(read_only=True) as work:
        assert visit_parts(work, "LSF", "v1", 100) == [[("dataset", i[f"ds{k}"])
                                                        for k in range(8)]]
        assert visit_parts(work, "OTHER", "v1", 5) == [[("dataset", i["ds8"])]]
        for facility, visit in (("LSF", "v2"), ("NOPE", "v1"), ("LSF", "v1' OR '1'='1")):
            with pytest.raises(IcatError) as e:
                visit_parts(work, facility, visit, 5)
            assert e.value.type is ErrorType.NO_SUCH_OBJECT_FOUND
    with w.catalogue.as_user(w.session("db/bob"), read_only=True) as work, \
            pytest.raises(IcatError) as e:
        visit_parts(work, "LSF", "v1", 5)  # he may read none of them
    assert e.value.type is ErrorType.NO_SUCH_OBJECT_FOUND


def test_a_data_collection_is_split_datasets_first(world: World) -> None:
    w, i, c = world, world.ids, world.catalogue
    dc = create(c, "DataCollection")
    for ds in ("ds4", "ds0"):
        create(c, "DataCollectionDataset", dataCollection=("DataCollection", dc),
               dataset=("Dataset", i[ds]))
    create(c, "DataCollectionInvestigation", dataCollection=("DataCollection", dc),
           investigation=("Investigation", i["inv2"]))
    loose = [w.files["ds1"][0], w.files["ds3"][3], w.files["ds0"][1]]  # ds0's is in already
    for f in loose:
        create(c, "DataCollectionDatafile", dataCollection=("DataCollection", dc),
               datafile=("Datafile", f))
    with c.as_system(read_only=True) as work:
        parts = collection_parts(work, dc, 5)
        assert parts == [[("dataset", i["ds0"])], [("dataset", i["ds4"])],
                         [("dataset", i["ds6"]), ("datafile", loose[0]),
                          ("datafile", loose[1])]]
        with pytest.raises(IcatError) as e:
            collection_parts(work, 987654321, 5)
        assert e.value.type is ErrorType.NO_SUCH_OBJECT_FOUND
    with c.as_user(w.session("db/alice"), read_only=True) as work:
        # ds3's secret file is not hers.
        assert collection_parts(work, dc, 5) == [
            [("dataset", i["ds0"])], [("dataset", i["ds4"])],
            [("dataset", i["ds6"]), ("datafile", loose[0])]]


def test_files_are_found_by_location(world: World) -> None:
    w = world
    ds0 = w.files["ds0"]
    secret = w.files["ds3"][3]
    asked = [w.locations[ds0[2]], "nowhere/x", w.locations[ds0[0]], w.locations[secret],
             "' OR 1=1 --", w.locations[ds0[0]], *(w.locations[f] for f in w.files["ds4"])]
    with w.catalogue.as_system(read_only=True) as work:
        items, missing = files_items(work, asked)
    assert items == [("datafile", f) for f in sorted([*ds0[::2], secret, *w.files["ds4"]])]
    assert missing == ["nowhere/x", "' OR 1=1 --"]
    with w.catalogue.as_user(w.session("db/alice"), read_only=True) as work:
        items, missing = files_items(work, asked)
    assert ("datafile", secret) not in items
    assert missing == ["nowhere/x", w.locations[secret], "' OR 1=1 --"]


def test_part_names_and_packing() -> None:
    assert part_names("visit", 1) == ["visit_part_1_of_1"]
    assert part_names("visit", 3) == ["visit_part_1_of_3", "visit_part_2_of_3",
                                      "visit_part_3_of_3"]
    names = part_names("v", 12)
    assert names[0] == "v_part_01_of_12" and names[-1] == "v_part_12_of_12"
    assert part_names("v", 100)[6] == "v_part_007_of_100"
    a, b, c, e = ("dataset", 1), ("dataset", 2), ("dataset", 3), ("dataset", 4)
    assert pack([], 5) == []
    assert pack([(e, 0)], 5) == [[e]]
    assert pack([(a, 9), (e, 0), (b, 1)], 5) == [[a, e], [b]]
    assert pack([(a, 5), (b, 1), (c, 4)], 5) == [[a], [b, c]]


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        child(*sys.argv[2:5])
