"""A real ``cairn serve`` (two-level storage on local folders) killed with SIGKILL in the middle
of a put, an archive write, a restore or a delete leaves nothing behind: once restarted, the
catalogue, main storage, the archive and the cache are exactly as if the operation had never
begun or had fully happened, with no temporary file anywhere. A second process that is alive
keeps its unfinished work through everyone else's sweeps.

The ordinary run kills at fixed points (:mod:`tests.integration.crash_plugin` stops the
server there). ``CAIRN_KILL_HUNT=1`` (``make kill-hunt``) adds the hunt: ``CAIRN_KILLS``
(default 100) kills at random moments of random operations slowed down to a few seconds,
each checked the same way; it prints what the kills hit.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import threading
import time
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import create_engine, select

from cairn.db.tables import TABLES
from cairn.ids.checksum import parse_crc32_hex
from tests.conftest import BACKENDS, make_database
from tests.integration.ids_support import Fixture, Ids, Rest, build, uniq
from tests.integration.server import Server
from tests.waiting import wait_until

PLUGIN = "tests.integration.crash_plugin"
MB = 1 << 20
#: Fast polls; a process is taken for dead 3 s after its last heartbeat.
STALE = 2
JOBS = f"\n[jobs]\npoll_interval_seconds = 0.2\nstale_claim_seconds = {STALE}\n"
SCRATCH = ".cairn-tmp"
#: Jobs that must be over before a state is compared.
SETTLING = ("ids.twolevel", "ids.leftovers", "ids.remove")
HUNT = os.environ.get("CAIRN_KILL_HUNT") == "1"
KILLS = int(os.environ.get("CAIRN_KILLS", "100"))


def files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (empty folders do not count), by relative path; a live
    server may remove some while they are read."""
    out = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            with contextlib.suppress(FileNotFoundError):
                out[str(path.relative_to(root))] = path.read_bytes()
    return out


@dataclass(frozen=True, order=True)
class Row:
    id: int
    dataset: int
    location: str
    size: int
    crc: int


@dataclass(frozen=True)
class State:
    """What a crash could leave wrong: the catalogue's datafiles, the files of main storage
    (path -> size, CRC32), the archive's zips (key -> sorted (size, CRC32) of the entries) and
    every file in the cache."""

    rows: frozenset[Row]
    main: frozenset[tuple[str, int, int]]
    archive: frozenset[tuple[str, tuple[tuple[int, int], ...]]]
    cache: frozenset[str]

    def online(self) -> frozenset[int]:
        """Datasets with files whose files are all on main storage; fails if one is only
        partly there (an operation left half done)."""
        on_main = {path for path, _, _ in self.main}
        out = set()
        for ds in {r.dataset for r in self.rows}:
            mine = [r.location in on_main for r in self.rows if r.dataset == ds]
            assert all(mine) or not any(mine), f"dataset {ds} is partly on main storage"
            if all(mine):
                out.add(ds)
        return frozenset(out)


def consistent(rows: frozenset[Row], online: frozenset[int], keys: dict[int, str]
               ) -> State:
    """The one state storage may be in for these datafiles, with these datasets on main
    storage and every archive write done."""
    main = frozenset((r.location, r.size, r.crc) for r in rows if r.dataset in online)
    archive = frozenset(
        (keys[ds], tuple(sorted((r.size, r.crc) for r in rows if r.dataset == ds)))
        for ds in {r.dataset for r in rows})
    return State(rows, main, archive, frozenset())


class Site:
    """One catalogue, main storage, archive and cache, and the Cairn processes on them."""

    def __init__(self, tmp: Path, backend: str) -> None:
        self.tmp = tmp
        self.url, self._drop = make_database(backend, tmp)
        self.main, self.archive, self.cache = (tmp / n for n in ("main", "archive", "cache"))
        self.runs = 0
        self.servers: list[Server] = []
        self.engine = create_engine(self.url)
        self.fx: Fixture | None = None
        self.keys: dict[int, str] = {}

    def start(self, at: str = "", slow: float = 0.0) -> Server:
        self.runs += 1
        folder = self.tmp / f"run{self.runs}"
        folder.mkdir()
        extra = (f'\n[data]\nmain = "{self.main}"\narchive = "{self.archive}"\n'
                 f'cache_dir = "{self.cache}"\nwrite_delay_seconds = 0\n{JOBS}')
        server = Server(folder, self.url, extra, env={
            "CAIRN_SERVER__PLUGINS": PLUGIN, "CAIRN_CRASH_AT": at,
            "CAIRN_CRASH_SLOW": str(slow)})
        self.servers.append(server)
        return server

    def kill(self, server: Server) -> None:
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(10)
        server.stop()
        self.servers.remove(server)

    def close(self) -> None:
        for s in self.servers:
            s.stop()
        self.engine.dispose()
        self._drop()  # type: ignore[operator]

    # -- looking ---------------------------------------------------------------------------

    def scratch(self) -> dict[str, bytes]:
        """Every file of unfinished work (or left by a crash), in any storage or the cache."""
        return {f"{root.name}/{k}": v for root in (self.main, self.archive, self.cache)
                for k, v in files(root / SCRATCH).items()} | \
            {f"cache/{k}": v for k, v in files(self.cache / "dataset" / SCRATCH).items()}

    def busy_jobs(self) -> list[tuple[str, str]]:
        t = TABLES.job
        with self.engine.connect() as conn:
            return [(r.kind, r.state) for r in conn.execute(select(t.c.kind, t.c.state).where(
                t.c.kind.in_(SETTLING), t.c.state.in_(["QUEUED", "RUNNING"])))]

    def state(self) -> State:
        df = TABLES.entity["Datafile"]
        with self.engine.connect() as conn:
            rows = frozenset(
                Row(r.id, r.dataset, r.location, r.fileSize, parse_crc32_hex(r.checksum) or 0)
                for r in conn.execute(select(df.c.id, df.c.dataset, df.c.location,
                                             df.c.fileSize, df.c.checksum)))
        main = frozenset((k, len(v), zlib.crc32(v)) for k, v in files(self.main).items())
        archive = []
        for key in files(self.archive):
            if key.startswith(SCRATCH):  # a half-written zip: there, but no zip
                archive.append((key, ((-1, -1),)))
                continue
            with zipfile.ZipFile(self.archive / key) as z:
                archive.append((key, tuple(sorted((i.file_size, i.CRC) for i in z.infolist()))))
        return State(rows, main, frozenset(archive), frozenset(files(self.cache)))

    def settle(self, server: Server, within: float = 60) -> State:
        """Wait until jobs are done and no unfinished work is left; then the state."""
        wait_until(lambda: not self.busy_jobs() and not self.scratch(), within,
                   "the restarted server to finish the jobs and sweep what the crash left",
                   detail=lambda: (f"jobs: {self.busy_jobs()}\nleft: {sorted(self.scratch())}"
                                   f"\nlog tail:\n{server.log_text()[-3000:]}"))
        return self.state()

    # -- doing -----------------------------------------------------------------------------

    def prepare(self, server: Server, datasets: int = 3, files_each: int = 2) -> list[int]:
        """The catalogue of ids_support plus ``datasets`` datasets with files; their ids."""
        if self.fx is None:
            self.fx = build(server)
        rest = Rest(server)
        out = []
        dst = rest.search("SELECT t FROM DatasetType t WHERE t.facility.id = "
                          f"{self.fx.facility}")[0]["DatasetType"]["id"]
        for i in range(datasets):
            ds = rest.create("Dataset", name=uniq(f"D{i}"), investigation={"id": self.fx.inv_a},
                             type={"id": dst})
            self.keys[ds] = f"{self.fx.inv_a}/{ds}"
            out.append(ds)
            for _ in range(files_each):
                assert self.put(server, ds).status_code == 201
        return out

    def put(self, server: Server, dataset: int, size: int = int(2.5 * MB)) -> httpx.Response:
        assert self.fx is not None
        sid = server.login()
        return Ids(server).put(sid, dataset, uniq("f"), os.urandom(size), self.fx.fmt)

    def call(self, server: Server, op: str, **selection: Any) -> httpx.Response:
        sid = server.login()
        if op == "delete":
            return server.http.delete("/ids/delete", params={"sessionId": sid, **selection})
        return server.http.post(f"/ids/{op}", data={"sessionId": sid, **selection})


@pytest.fixture(params=BACKENDS)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path, str(request.param))
    try:
        yield s
    finally:
        s.close()


def _in_thread(fn: Callable[..., object], *args: object, **kwargs: object
               ) -> dict[str, object]:
    """Run a request that the kill will cut off; its answer (or error) lands in the dict."""
    out: dict[str, object] = {}

    def go() -> None:
        try:
            out["answer"] = fn(*args, **kwargs)
        except Exception as e:  # the connection dies with the server
            out["error"] = e

    t = threading.Thread(target=go, daemon=True)
    t.start()
    out["thread"] = t
    return out


#: The fixed kills, in order. Each server is started right after the previous one is killed,
#: finishes and sweeps what that one left, and then stops at its own point; so no settling
#: may pass the next point (an archive write left pending is not followed by archive.write).
POINTS = ["put.committed", "put.body", "archive.write", "put.stored", "delete.committed",
          "restore.unpack"]


def test_kills_at_every_point_leave_nothing_behind(site: Site) -> None:
    first = site.start()
    d1, d2, d3 = site.prepare(first)
    before = site.settle(first)
    first.stop()
    site.servers.remove(first)
    points = iter([*POINTS, ""])
    server = site.start(at=next(points))

    def crash_at(point: str, run: Callable[..., object], *args: object, **kwargs: object
                 ) -> tuple[State, dict[str, bytes]]:
        """Do ``run`` on the server, which stops at ``point``; kill it there; start the
        next: the state once that one has settled, and what the crash had left (scratch
        areas, and under "placed/" new files of main storage outside them)."""
        nonlocal server
        _in_thread(run, server, *args, **kwargs)
        server.expect_log_lines(f"CRASH-POINT {point}", 1)
        site.kill(server)
        left = site.scratch() | {f"placed/{k}": b"" for k in files(site.main)
                                 if not k.startswith(SCRATCH)
                                 and k not in {p for p, _, _ in before.main}}
        server = site.start(at=next(points))
        return site.settle(server), left

    # Killed after the commit: the put happened, whole (file, row, archive zip).
    after, left = crash_at("put.committed", site.put, d2)
    assert any(k.endswith(".put") for k in left), left
    (new,) = after.rows - before.rows
    assert new.dataset == d2
    assert after == consistent(after.rows, before.online(), site.keys)
    before = after

    # A put cut off mid-body: as if never begun.
    after, left = crash_at("put.body", site.put, d1)
    assert any(k.endswith(".part") for k in left), left
    assert after == before

    # An archive write killed mid-zip (the write a put requests): the put stands, the write
    # is done again after the restart, the half zip is gone.
    after, left = crash_at("archive.write", site.put, d3)
    assert any(k.startswith("archive/") for k in left), left
    assert len(after.rows) == len(before.rows) + 1
    assert after == consistent(after.rows, before.online(), site.keys)
    before = after

    # A put killed before its Datafile was committed: as if never begun, although its file
    # had reached its place.
    after, left = crash_at("put.stored", site.put, d1)
    assert any(k.endswith(".put") for k in left) and \
        any(k.startswith("placed/") for k in left), left
    assert after == before

    # A delete killed between its commit and its files: the files go too.
    victim = min(r for r in before.rows if r.dataset == d1)
    after, left = crash_at("delete.committed", site.call, "delete", datafileIds=victim.id)
    assert any(k.endswith(".delete") for k in left), left
    assert after == consistent(before.rows - {victim}, before.online(), site.keys)
    before = after

    # A restore killed while unpacking: finished after the restart, no zip left in the cache.
    assert site.call(server, "archive", datasetIds=d2).status_code == 204
    archived = site.settle(server)
    assert archived == consistent(before.rows, before.online() - {d2}, site.keys)
    after, left = crash_at("restore.unpack", site.call, "restore", datasetIds=d2)
    assert any(k.startswith("cache/") for k in left) and \
        any(k.startswith("main/") for k in left), left
    assert after == before


def _partial_put(server: Server, site: Site, dataset: int, sent: int, total: int
                 ) -> socket.socket:
    """A put whose client has sent ``sent`` of ``total`` bytes and waits."""
    assert site.fx is not None
    target = "/ids/put?" + urlencode({"sessionId": server.login(), "name": uniq("slow"),
                                      "datasetId": dataset, "datafileFormatId": site.fx.fmt})
    host, port = server.url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=30)
    s.sendall(f"PUT {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {total}\r\n\r\n".encode()
              + b"x" * sent)
    return s


def test_a_live_process_keeps_its_work_through_the_sweeps_of_others(site: Site) -> None:
    a = site.start()
    (ds,) = site.prepare(a, datasets=1, files_each=0)
    before = site.settle(a)
    b = site.start()
    c = site.start()

    def folders() -> set[str]:  # "main/<token>" of each process with a temporary file
        return {k.rsplit("/", 1)[0] for k in site.scratch() if k.endswith(".part")}

    slow = _partial_put(a, site, ds, 3 * MB // 2, 4 * MB)  # alive: a stalled client
    doomed = None
    try:
        (mine,) = wait_until(folders, 30, "a's upload to write part of its body")
        doomed = _partial_put(c, site, ds, 3 * MB // 2, 4 * MB)
        (dead,) = wait_until(lambda: folders() - {mine}, 30,
                             "c's upload to write part of its body")
        live = {k for k in site.scratch() if k.startswith(mine + "/")}
        assert {k.rsplit(".", 1)[1] for k in live} == {"part", "put"}
        site.kill(c)
        # c's temporary file and note go (a and b sweep every 2 s and take c for dead 3 s
        # after its last heartbeat); a's stay, though b and a looked at them many times.
        wait_until(lambda: not any(k.startswith(dead + "/") for k in site.scratch()), 30,
                   "c's leftovers to go", detail=lambda: sorted(site.scratch()))
        time.sleep(STALE + 1)  # a few more sweeps in which a's work could go wrongly
        assert live <= set(site.scratch())
        slow.sendall(b"y" * (4 * MB - 3 * MB // 2))
        answer = slow.recv(65536).decode(errors="replace")
        assert answer.startswith("HTTP/1.1 201"), answer
    finally:
        slow.close()
        if doomed is not None:
            doomed.close()
    after = site.settle(b)
    (new,) = after.rows - before.rows
    assert new.size == 4 * MB
    assert after == consistent(after.rows, frozenset({ds}), site.keys)


# -- the hunt ---------------------------------------------------------------------------------

#: Every point and every chunk written to storage takes this long in the hunt, so that an
#: operation and the jobs it causes take a second or two...
SLOW = 0.1
#: ...and the kill comes this long after an operation begins, at most: a put (its body, the
#: commit, the archive write it requests), a delete (commit, files, the archive rewrite), an
#: archive (a job deleting files from main storage), a restore (fetch, then unpack).
WINDOW = {"put": 2.0, "delete": 2.0, "archive": 0.6, "restore": 2.0}
#: Half the kills come this soon instead, while the request itself is being served.
REQUEST = {"put": 0.6, "delete": 0.4, "archive": 0.1, "restore": 0.1}


@pytest.mark.slow
@pytest.mark.skipif(not HUNT, reason="the kill hunt runs with CAIRN_KILL_HUNT=1 "
                                     "(make kill-hunt)")
def test_kill_hunt(site: Site) -> None:
    seed = os.environ.get("CAIRN_KILL_SEED") or str(random.randrange(1 << 32))
    rng = random.Random(seed)
    server = site.start(slow=SLOW)
    datasets = site.prepare(server, datasets=3)
    state = site.settle(server)
    tally: Counter[str] = Counter()
    for n in range(KILLS):
        online = state.online()
        with_files = {r.dataset for r in state.rows}
        writable = sorted(online | (set(datasets) - with_files))  # online, or empty
        choices = ["put"] if writable else []
        if any(r.dataset in online for r in state.rows):
            choices.append("delete")
        if online & with_files:
            choices.append("archive")
        if with_files - online:
            choices.append("restore")
        op = rng.choice(choices)
        if op == "put":
            ds = rng.choice(writable)
            run = _in_thread(site.put, server, ds, rng.randint(MB // 2, 3 * MB))
        elif op == "delete":
            victim = rng.choice(sorted(r for r in state.rows if r.dataset in online))
            run = _in_thread(site.call, server, "delete", datafileIds=victim.id)
        else:
            ds = rng.choice(sorted(online & with_files if op == "archive"
                                   else with_files - online))
            run = _in_thread(site.call, server, op, datasetIds=ds)
        time.sleep(rng.uniform(0, (WINDOW if rng.random() < 0.5 else REQUEST)[op]))
        site.kill(server)
        run["thread"].join(30)  # type: ignore[attr-defined]
        answer = run.get("answer")
        answered = isinstance(answer, httpx.Response) and answer.status_code < 300
        tally[f"{op} killed {'after its answer' if answered else 'before its answer'}"] += 1
        # What the kill left, before the restart mends it.
        left = site.scratch()
        if left:
            tally["kills that left unfinished work"] += 1
        for where, kind in {(k.split("/")[0], k.rsplit(".", 1)[-1]) for k in left}:
            tally[f"kills that left a .{kind} in {where}"] += 1
        dead = site.state()
        if {p for p, _, _ in dead.main if not p.startswith(SCRATCH)} - \
                {r.location for r in dead.rows}:
            tally["kills that left a file without its Datafile"] += 1
        if any(job_state == "RUNNING" for _, job_state in site.busy_jobs()):
            tally["kills during a storage job"] += 1
        server = site.start(slow=SLOW)
        after = site.settle(server)
        # The operation happened whole, or not at all; storage holds nothing else.
        if op == "put":
            assert state.rows <= after.rows and len(after.rows - state.rows) <= 1, (seed, n, op)
            happened = after.rows != state.rows
            online = online | {ds} if happened else online
        elif op == "delete":
            assert after.rows in (state.rows, state.rows - {victim}), (seed, n, op)
            happened = after.rows != state.rows
        else:
            assert after.rows == state.rows, (seed, n, op)
            moved = online - {ds} if op == "archive" else online | {ds}
            happened = after.online() == moved
            online = moved if happened else online
        assert happened or not answered, \
            f"kill {n} (seed {seed}): {op} was answered but did not happen"
        assert after == consistent(after.rows, online & {r.dataset for r in after.rows},
                                   site.keys), (seed, n, op)
        tally[f"{op} {'happened' if happened else 'never began'}"] += 1
        state = after
    print(f"\nkill hunt (CAIRN_KILL_SEED={seed}): {KILLS} kills, all consistent afterwards")
    for what, count in sorted(tally.items()):
        print(f"  {count:4d}  {what}")
