"""The download lifecycle on two-level storage, through ``/topcat`` and ``/ids`` of real Cairn
processes, on every backend: a cart whose data is only in the archive is restored, becomes
COMPLETE and gives the exact bytes; a queued visit restores part by part; and a download
submitted just before its server is stopped is finished by the next server on the same
database and storage, nothing lost.

(The core-level tests in ``test_downloads_lifecycle`` kill processes with SIGKILL at chosen
points; these prove the same life holds end to end over HTTP.)"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BACKENDS, make_database
from tests.integration.ids_support import Ids
from tests.integration.server import Server
from tests.integration.topcat_support import Catalogue, Topcat, build, ok, zip_members
from tests.waiting import wait_until

FACILITY = "TWOLEVEL"


def config(tmp: Path) -> str:
    return (f'[data]\nmain = "{tmp / "main"}"\narchive = "{tmp / "archive"}"\n'
            f'cache_dir = "{tmp / "cache"}"\nwrite_delay_seconds = 0\n'
            "queue_interval_seconds = 0.1\n"
            "[jobs]\nstale_claim_seconds = 2\n"
            "[downloads]\npoll_seconds = 0.2\npart_files = 3\n")


def _count_files(root: Path) -> int:
    """Files under ``root``; os.walk skips a folder the server removes while it looks
    (archiving does), where Path.rglob would fail."""
    return sum(len(names) for _, _, names in os.walk(root))


@dataclass
class Site:
    tmp: Path
    db_url: str
    server: Server
    cat: Catalogue

    @property
    def tc(self) -> Topcat:
        return Topcat(self.server, FACILITY)

    def main_files(self) -> int:
        return _count_files(self.tmp / "main")

    def restart(self) -> None:
        self.server.stop()
        self.server = Server(self.tmp, self.db_url, extra_config=config(self.tmp))

    def await_complete(self, sid: str, download_id: int) -> dict[str, Any]:
        def status() -> str:
            return str(self.tc.download(sid, download_id)["status"])
        wait_until(lambda: status() == "COMPLETE", 60, f"download {download_id} to be COMPLETE",
                   detail=lambda: f"it is {status()}; log tail:\n"
                   f"{self.server.log_text()[-3000:]}")
        return self.tc.download(sid, download_id)

    def fetch(self, d: dict[str, Any]) -> dict[str, bytes]:
        r = self.server.http.get("/ids/getData", params={"preparedId": d["preparedId"]})
        assert r.status_code == 200, r.text[:500]
        return zip_members(r.content)

    def expected(self, *datasets: str) -> dict[str, bytes]:
        return {self.cat.content[f][0]: self.cat.content[f][1]
                for d in datasets for f in self.cat.files[d]}


@pytest.fixture(params=BACKENDS)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    url, drop = make_database(str(request.param), tmp_path, migrated=True)
    server = Server(tmp_path, url, extra_config=config(tmp_path))
    s = Site(tmp_path, url, server, Catalogue(FACILITY))
    try:
        s.cat = build(server, FACILITY)
        # Everything written to the archive, then taken off main storage: only a restore
        # can bring it back.
        n = sum(len(v) for v in s.cat.files.values())
        wait_until(lambda: _count_files(tmp_path / "archive") >= len(s.cat.ds), 60,
                   "every dataset to be written to the archive")
        assert s.main_files() == n
        root = server.login("root")
        r = Ids(server).post("archive", sessionId=root,
                             investigationIds=",".join(str(i) for i in s.cat.inv.values()))
        assert r.status_code == 204, r.text
        wait_until(lambda: s.main_files() == 0, 60, "main storage to be emptied")
        yield s
    finally:
        s.server.stop()
        drop()  # type: ignore[operator]


def test_a_cart_is_restored_then_complete_with_the_exact_bytes(site: Site) -> None:
    jdoe = site.server.login("jdoe")
    site.tc.add(jdoe, f"dataset {site.cat.ds['A1']}, dataset {site.cat.ds['B1']}")
    download_id = site.tc.submit(jdoe, "restored")
    d = site.await_complete(jdoe, download_id)
    assert d["isTwoLevel"] is True
    assert site.fetch(d) == site.expected("A1", "B1")
    # The restore brought those datasets (and only those) back to main storage.
    assert site.main_files() == len(site.cat.files["A1"]) + len(site.cat.files["B1"])


def test_a_queued_visit_restores_part_by_part(site: Site) -> None:
    jdoe = site.server.login("jdoe")
    ids = ok(site.tc.post("/user/queue/visit", jdoe, transport="https", visitId="V1"))
    # V1 holds A1 (3 files), A2 (2), A3 (1), B1 (2): parts of at most 3 whole datasets' files.
    assert len(ids) == 3
    got: dict[str, bytes] = {}
    for download_id in ids:
        d = site.await_complete(jdoe, download_id)
        assert d["isTwoLevel"] is True
        part = site.fetch(d)
        assert not set(part) & set(got)
        got.update(part)
    assert got == site.expected("A1", "A2", "A3", "B1")


def test_a_restart_loses_no_download(site: Site) -> None:
    jdoe = site.server.login("jdoe")
    site.tc.add(jdoe, f"investigation {site.cat.inv['A']}")
    download_id = site.tc.submit(jdoe, "across-a-restart")
    site.restart()  # whatever state the download had reached, the next server finishes it
    d = site.await_complete(jdoe, download_id)
    assert site.fetch(d) == site.expected("A1", "A2", "A3")
