"""``/health``, ``/ready`` and ``/metrics`` of a real server, and the readiness checks alone.

The database outage is real: the server reaches PostgreSQL or MariaDB through a TCP relay
that the test closes and opens again.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from cairn.config import Settings
from cairn.startup import assemble
from cairn.web.ops import Probe, Readiness, SchedulerPulse, bounded_engine
from tests.conftest import BACKENDS, make_database
from tests.integration.cli_support import TcpProxy
from tests.integration.ids_support import Ids, Rest
from tests.integration.server import Server, free_port
from tests.waiting import wait_until

TOKEN = "scrape-token-for-tests"
#: An address outside the default allow list, as a trusted local proxy forwards it.
REMOTE = {"X-Forwarded-For": "203.0.113.9"}


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp(f"ops-{request.param}")
    url, drop = make_database(str(request.param), tmp)
    srv = Server(tmp, url, extra_config=f'\n[metrics]\ntoken = "{TOKEN}"\n')
    try:
        yield srv
    finally:
        srv.stop()
        drop()  # type: ignore[operator]


def samples(text: str, name: str, **labels: str) -> list[float]:
    """Values of the samples called ``name`` whose labels include ``labels``."""
    return [s.value for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == name and labels.items() <= s.labels.items()]


def scrape(server: Server) -> str:
    r = server.http.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return r.text


def await_ready(server: Server) -> dict[str, Any]:
    last: list[httpx.Response] = []

    def ready() -> bool:
        last[:] = [server.http.get("/ready")]
        return last[0].status_code == 200

    wait_until(ready, 30, "/ready to answer 200", detail=lambda: last[0].text)
    body: dict[str, Any] = last[0].json()
    return body


# -- /health and /ready ---------------------------------------------------------------------

def test_health_answers_without_credentials(server: Server) -> None:
    r = server.http.get("/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok" and r.json()["version"]


def test_ready_names_each_check(server: Server) -> None:
    body = await_ready(server)
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "storage", "cache", "jobs"}
    for name, check in body["checks"].items():
        assert check["status"] == "ok" and check["reason"], name
    assert "answered in" in body["checks"]["database"]["reason"]


def test_ready_fails_while_the_cache_cannot_be_written(server: Server) -> None:
    cache = server.config.parent / "data" / "cache"
    aside = cache.with_name("cache.aside")
    cache.rename(aside)
    cache.write_text("a file where the cache folder should be")
    try:
        r = server.http.get("/ready")
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "not ready"
        assert body["checks"]["cache"]["status"] == "failing"
        assert "NotADirectoryError" in body["checks"]["cache"]["reason"]
        assert body["checks"]["database"]["status"] == "ok"
        assert server.http.get("/health").status_code == 200
    finally:
        cache.unlink()
        aside.rename(cache)
    await_ready(server)


# -- /metrics -------------------------------------------------------------------------------

def test_requests_are_counted_by_route_template(server: Server) -> None:
    sid = server.login()
    before = scrape(server)
    route = {"interface": "icat", "route": "/icat/session/{sid}", "method": "GET"}
    counted = sum(samples(before, "cairn_http_requests_total", status="200", **route))
    assert server.http.get(f"/icat/session/{sid}").status_code == 200
    assert server.http.get("/no/such/thing").status_code == 404  # the portal's page

    def counted_unmatched() -> str:
        text = scrape(server)
        return text if samples(text, "cairn_http_requests_total", route="unmatched") else ""

    # a request is counted once its answer is sent: wait for the server to get there
    after = wait_until(counted_unmatched, 10, "the unmatched request to be counted")
    assert sum(samples(after, "cairn_http_requests_total", status="200", **route)) == \
        counted + 1
    assert samples(after, "cairn_http_request_duration_seconds_count", **route)
    assert sum(samples(after, "cairn_http_requests_total", interface="other",
                       route="unmatched", status="404")) >= 1
    assert sid not in after  # route templates only: no id reaches the metrics


def test_bytes_sent_by_the_data_service(server: Server) -> None:
    rest, ids = Rest(server), Ids(server)
    fac = rest.create("Facility", name=f"metrics-{time.monotonic_ns()}")
    fmt = rest.create("DatafileFormat", name="raw", version="1", facility={"id": fac})
    dst = rest.create("DatasetType", name="raw", facility={"id": fac})
    it = rest.create("InvestigationType", name="t", facility={"id": fac})
    inv = rest.create("Investigation", name="i", visitId="v", title="t", facility={"id": fac},
                      type={"id": it})
    ds = rest.create("Dataset", name="d", investigation={"id": inv}, type={"id": dst})
    data = b"0123456789" * 10_000
    sent_before = sum(samples(scrape(server), "cairn_http_response_body_bytes_total",
                              interface="ids"))
    put = ids.put(rest.root, ds, "f.dat", data, fmt)
    assert put.status_code == 201
    r = ids.get_data(sessionId=rest.root, datafileIds=put.json()["id"])
    assert r.content == data
    expected = sent_before + len(put.content) + len(data)

    def sent() -> float:
        return sum(samples(scrape(server), "cairn_http_response_body_bytes_total",
                           interface="ids"))

    # counted as the server's send returns, which may be a moment after the client has it
    wait_until(lambda: sent() >= expected, 10, "the download's bytes to be counted",
               detail=lambda: f"{sent() - sent_before} counted, {expected - sent_before} sent")
    assert sent() == expected


def test_pool_and_job_gauges(server: Server) -> None:
    text = scrape(server)
    assert samples(text, "cairn_db_pool_size")
    assert samples(text, "cairn_db_pool_checked_out")
    assert samples(text, "cairn_jobs_up") == [1.0]
    # every registered kind is there, at 0 where the table has none of it
    assert samples(text, "cairn_jobs", kind="sessions.purge", state="queued") == [1.0]
    assert samples(text, "cairn_jobs", kind="ids.leftovers", state="failed") == [0.0]
    assert samples(text, "process_resident_memory_bytes")


def test_metrics_are_for_allowed_networks_and_token_holders(server: Server) -> None:
    assert server.http.get("/metrics").status_code == 200  # loopback
    refused = server.http.get("/metrics", headers=REMOTE)
    assert refused.status_code == 403 and "[metrics] allow" in refused.text
    assert server.http.get("/metrics", headers={
        **REMOTE, "Authorization": "Bearer wrong"}).status_code == 403
    assert server.http.get("/metrics", headers={
        **REMOTE, "Authorization": f"Bearer {TOKEN}"}).status_code == 200
    # the probes stay open to all
    assert server.http.get("/health", headers=REMOTE).status_code == 200


def test_only_the_configured_proxies_are_believed(tmp_path: Path) -> None:
    """[server] forwarded_allow_ips: forwarded headers from any other address are ignored,
    so a client cannot pass itself off as another address (here: loopback, not a proxy)."""
    srv = Server(tmp_path, f"sqlite:///{tmp_path / 'cat.db'}",
                 env={"CAIRN_SERVER__FORWARDED_ALLOW_IPS": "192.0.2.1, 192.0.2.2"})
    try:
        # The claimed remote address is not believed: the client is loopback, and allowed.
        assert srv.http.get("/metrics", headers=REMOTE).status_code == 200
    finally:
        srv.stop()


# -- a database outage ----------------------------------------------------------------------

@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "sqlite"])
def test_ready_answers_503_while_the_database_is_unreachable(tmp_path: Path,
                                                             backend: str) -> None:
    url, drop = make_database(backend, tmp_path)
    u = make_url(url)
    relay = TcpProxy((u.host or "127.0.0.1", u.port or (5432 if backend == "postgresql" else 3306)),
                     free_port())
    relay.start()
    server = Server(tmp_path, u.set(host="127.0.0.1", port=relay.port)
                    .render_as_string(hide_password=False))
    try:
        await_ready(server)
        relay.stop()
        r = server.http.get("/ready")
        assert r.status_code == 503
        checks = r.json()["checks"]
        assert checks["database"]["status"] == "failing"
        assert "OperationalError" in checks["database"]["reason"]
        assert checks["storage"]["status"] == checks["cache"]["status"] == "ok"
        assert server.http.get("/health").status_code == 200
        assert samples(scrape(server), "cairn_jobs_up") == [0.0]  # the scrape still answers
        relay.start()
        assert await_ready(server)["checks"]["database"]["status"] == "ok"
    finally:
        relay.stop()
        server.stop()
        drop()  # type: ignore[operator]


# -- the checks, in-process -----------------------------------------------------------------

def test_a_probe_reports_a_refused_connection() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine = bounded_engine(f"postgresql+psycopg://u@127.0.0.1:{port}/x", 5.0)
    check = asyncio.run(Probe("db", lambda: str(engine.connect()), 5.0)())
    assert not check.ok and "OperationalError" in check.reason


def test_a_hung_check_is_awaited_again_not_started_twice() -> None:
    release = threading.Event()
    starts: list[int] = []

    def hangs() -> str:
        starts.append(1)
        release.wait(30)
        return "answered at last"

    probe = Probe("hangs", hangs, 0.2)

    async def twice() -> tuple[Any, Any]:
        return await probe(), await probe()

    first, second = asyncio.run(twice())
    assert not first.ok and "no answer within 0.2 s" in first.reason
    assert not second.ok and len(starts) == 1  # the second probe waited for the first check
    release.set()
    wait_until(lambda: probe._running is not None and probe._running.done(), 10,
               "the hung check to finish")
    third = asyncio.run(probe())
    assert third.ok and len(starts) == 2


def test_a_sqlite_catalogue_gone_missing_is_not_recreated(tmp_path: Path) -> None:
    engine = bounded_engine(f"sqlite:///{tmp_path / 'gone.db'}", 1.0)
    check = asyncio.run(Probe("db", lambda: str(engine.connect()), 5.0)())
    assert not check.ok and "unable to open database file" in check.reason
    assert not (tmp_path / "gone.db").exists()


def test_readiness_follows_the_job_scheduler(tmp_path: Path) -> None:
    settings = Settings.model_validate({"server": {"data_dir": str(tmp_path)}})
    cairn = assemble(settings)
    try:
        readiness = Readiness(cairn)
        assert SchedulerPulse.attach(cairn.jobs) is readiness.pulse  # one per scheduler
        ok, body = asyncio.run(readiness.report())
        assert not ok and body["checks"]["jobs"]["reason"] == \
            "the job scheduler has not started"
        assert all(body["checks"][n]["status"] == "ok" for n in ("database", "storage",
                                                                   "cache"))
        cairn.jobs.tick()  # one round of the scheduler's loop
        ok, body = asyncio.run(readiness.report())
        assert ok, body
        readiness.pulse.last = time.monotonic() - settings.job_stale_seconds - 1
        ok, body = asyncio.run(readiness.report())
        assert not ok and "last ran" in body["checks"]["jobs"]["reason"]
        # nothing of the storage check is left in main storage
        assert not list(cairn.data.main.list())
    finally:
        cairn.db.dispose()
