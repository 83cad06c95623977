"""Unfinished work named after its process, and the sweep of dead processes' leftovers
(cairn.ids.scratch, cairn.ids.leftovers) on local storage and a SQLite catalogue.

The same against real processes killed with SIGKILL: tests/integration/test_crash_cleanup.py;
on S3: tests/integration/test_ids_s3_leftovers.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from cairn.db.engine import Database
from cairn.errors import IcatError
from cairn.ids.leftovers import PRESENCE_DATASET, Presence, Sweeper, note_body
from cairn.ids.locks import LockManager
from cairn.ids.scratch import SCRATCH, UNBOUND, ScratchDir, owner_token
from cairn.ids.storage_local import LocalStorage
from cairn.jobs.model import utcnow
from tests.unit.ids_twolevel_fixtures import sqlite_database

STALE = 5.0


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = sqlite_database(tmp_path)
    yield d
    d.dispose()


def storage_of(root: Path, owner: str) -> LocalStorage:
    s = LocalStorage(root, fsync=False)
    s.bind(owner)
    return s


def test_a_put_writes_in_its_process_folder_and_leaves_none(tmp_path: Path) -> None:
    s = storage_of(tmp_path, "host:1:a")
    seen: list[list[Path]] = []

    def body() -> Iterator[bytes]:
        yield b"x" * 100
        seen.append(list((tmp_path / SCRATCH).rglob("*.part")))
        yield b"y"

    s.put("1/2/f", body())
    assert [p.parent.name for p in seen[0]] == [owner_token("host:1:a")]
    assert s.read_all("1/2/f") == b"x" * 100 + b"y"
    assert not (tmp_path / SCRATCH).exists()  # nothing of the put remains, not even folders


def test_binding_is_once(tmp_path: Path) -> None:
    s = LocalStorage(tmp_path)
    assert s.token == UNBOUND
    s.bind("first")
    s.bind("second")  # a second part of the same service binding it again changes nothing
    assert s.token == owner_token("first")


def test_scratch_is_reserved_and_never_listed(tmp_path: Path) -> None:
    s = storage_of(tmp_path, "p")
    s.write_note("n.put", b"{}")
    s.put("1/2/f", [b"data"])
    assert [o.location for o in s.list()] == ["1/2/f"]
    for call in (lambda: s.read(f"{SCRATCH}/x"), lambda: s.put(f"{SCRATCH}/x", [b""]),
                 lambda: s.delete(f"{SCRATCH}/{s.token}/n.put")):
        with pytest.raises(IcatError, match="reserved"):
            call()
    assert s.notes(s.token) == {"n.put": b"{}"}


def test_notes_and_owners(tmp_path: Path) -> None:
    a, b = storage_of(tmp_path, "a"), storage_of(tmp_path, "b")
    a.write_note("1.put", b"one")
    b.write_note("2.delete", b"two")
    assert a.scratch_owners() == {a.token, b.token}
    assert b.notes(a.token) == {"1.put": b"one"}
    assert a.clear_scratch(b.token)
    assert a.scratch_owners() == {a.token}
    a.drop_note("1.put")
    assert a.scratch_owners() == set()
    assert not (tmp_path / SCRATCH).exists()
    with pytest.raises(ValueError):
        a.clear_scratch(a.token)  # never its own


def test_presence_and_liveness(db: Database) -> None:
    alive = Presence(db, "host:1:alive", STALE)
    gone = Presence(db, "host:2:gone", STALE)
    assert alive.live_tokens() == set()
    alive.ensure()
    gone.beat()
    assert alive.live_tokens() == {alive.token, gone.token}
    t = db.tables.ids_lock
    with db.begin() as conn:  # gone stopped beating long ago
        conn.execute(update(t).where(t.c.owner == gone.owner)
                     .values(heartbeat=utcnow().replace(year=2000)))
    assert alive.live_tokens() == {alive.token}
    alive.beat()  # and its row is removed by the next beat of anyone
    with db.connect() as conn:
        assert list(conn.execute(select(t.c.owner))) == [(alive.owner,)]
    # A dataset lock or a running job is a sign of life too; presence rows are no locks.
    locks = LockManager(db, "host:3:locking")
    with locks.lock([7], shared=False):
        assert owner_token("host:3:locking") in alive.live_tokens()
        assert [entry["id"] for entry in locks.summary()] == [7]
    with db.connect() as conn:
        assert conn.execute(select(t.c.dataset_id).where(t.c.owner == alive.owner)
                            ).scalar_one() == PRESENCE_DATASET


def test_the_sweep_undoes_dead_work_and_keeps_live_work(db: Database, tmp_path: Path) -> None:
    main, cache = tmp_path / "main", tmp_path / "cache"
    me = Presence(db, "host:1:me", STALE)
    other = Presence(db, "host:2:other", STALE)  # alive, on another machine
    other.beat()
    mine, others = storage_of(main, me.owner), storage_of(main, other.owner)
    dead = storage_of(main, "host:3:dead")  # never beat: dead (or long gone)
    # The dead process: a put whose file reached its place but whose Datafile did not,
    # one whose Datafile did, a delete that was committed, and a half temporary file.
    dead.put("1/1/orphan", [b"o"])
    dead.put("1/1/kept", [b"k"])
    dead.put("1/1/deleted", [b"d"])
    dead.write_note("a.put", note_body(["1/1/orphan"]))
    dead.write_note("b.put", note_body(["1/1/kept"]))
    dead.write_note("c.delete", note_body(["1/1/deleted"]))
    fd, _ = dead.scratch.temp_file()
    os.write(fd, b"half")
    os.close(fd)
    # The live one's unfinished work, in storage and in its cache.
    fd, _ = others.scratch.temp_file()
    os.close(fd)
    others.write_note("d.put", note_body(["1/1/not-yet"]))
    for token in (other.token, owner_token("host:3:dead")):
        fd, _ = ScratchDir(cache, token).temp_file(".zip")
        os.close(fd)

    referenced = {"1/1/kept"}
    sweeper = Sweeper(me, [mine], [ScratchDir(cache, me.token)], referenced.__contains__,
                      jobs=None)
    assert sweeper.find() == [owner_token("host:3:dead")]  # cleaned at once: no scheduler
    assert sorted(o.location for o in mine.list()) == ["1/1/kept"]
    assert mine.scratch_owners() == {other.token}
    assert mine.notes(other.token) == {"d.put": note_body(["1/1/not-yet"])}
    assert len(others.scratch.files(other.token)) == 2
    assert ScratchDir(cache).owners() == {other.token}
    assert sweeper.find() == []


def test_a_process_that_comes_back_keeps_its_work(db: Database, tmp_path: Path) -> None:
    """The job that cleans a dead owner checks again: a process stalled past the timeout
    that beats again before its clean-up ran is alive, and its work stays."""
    me = Presence(db, "me", STALE)
    stalled = Presence(db, "stalled", STALE)
    s = storage_of(tmp_path, "stalled")
    s.write_note("x.put", note_body(["1/1/f"]))
    sweeper = Sweeper(me, [storage_of(tmp_path, "me")], [], lambda _: False, jobs=None)
    stalled.beat()
    assert sweeper.clean(s.token)
    assert s.notes(s.token) == {"x.put": note_body(["1/1/f"])}


def test_legacy_temp_files_are_still_never_listed(tmp_path: Path) -> None:
    s = LocalStorage(tmp_path)
    (tmp_path / "9").mkdir()
    (tmp_path / "9" / ".cairn-put-x.part").write_bytes(b"half")
    assert list(s.list()) == []
