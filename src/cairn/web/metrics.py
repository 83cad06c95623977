"""Prometheus metrics at ``/metrics``: requests, latency, the database pool, jobs, bytes sent.

Each server process keeps its own registry and is scraped on its own (several Cairn
processes are several targets; add them up in PromQL). Request metrics are labelled by
interface and by route *template* (``/icat/session/{sid}``), never by the raw path, so ids
and session ids neither leak into the metrics nor multiply its series. Gauges that describe
the shared database (jobs per kind and state) are read at scrape time through the bounded
probe engine of :mod:`cairn.web.ops`, so a database outage makes a scrape lose those series,
not hang. ``/metrics`` answers the networks of ``[metrics] allow`` (loopback by default) and
holders of ``[metrics] token``.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from collections.abc import Iterable, Iterator
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import Engine, Table, case, func, select
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cairn.config import MetricsSettings
from cairn.jobs import State

if TYPE_CHECKING:
    from cairn.startup import Cairn

log = logging.getLogger(__name__)

PATH = "/metrics"

#: Interfaces by the first segment of the path, and under ``/icat`` by the second.
INTERFACES = {"icat": "icat", "ids": "ids", "topcat": "topcat", "ICATService": "soap",
              "publishing": "publishing", "doi": "landing", "health": "ops", "ready": "ops",
              "metrics": "ops"}
ICAT_INTERFACES = {"search": "search", "facet": "search", "lucene": "search", "ICAT": "soap"}
#: Methods kept as they are; anything else is counted as ``other`` (bounded label values).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
#: From a cached answer to a long download (seconds).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def interface_of(path: str) -> str:
    parts = path.split("/", 3)  # "", first, second, rest
    name = INTERFACES.get(parts[1], "other") if len(parts) > 1 else "other"
    if name == "icat" and len(parts) > 2:
        name = ICAT_INTERFACES.get(parts[2], "icat")
    return name


def route_of(scope: Scope, root_path: str) -> str:
    """The template of the route that served the request (its mount's prefix included), or
    ``unmatched``."""
    route = scope.get("route")
    if not isinstance(route, Route):
        return "unmatched"
    mounted = str(scope.get("root_path", ""))[len(root_path):]
    return mounted + route.path


class Metrics:
    """One process's registry and the instruments the middleware feeds."""

    def __init__(self, cairn: Cairn | None = None, jobs_engine: Engine | None = None) -> None:
        disable_created_metrics()  # no *_created series: half the output, rarely used
        self.registry = r = CollectorRegistry()
        self._children: dict[tuple[Any, ...], Any] = {}
        for default in (ProcessCollector, PlatformCollector, GCCollector):
            default(registry=r)
        Gauge("cairn_info", "This Cairn's version", ["version"], registry=r).labels(
            _version()).set(1)
        self.requests = Counter(
            "cairn_http_requests", "Requests answered, by interface, route template, method "
            "and status", ["interface", "route", "method", "status"], registry=r)
        self.duration = Histogram(
            "cairn_http_request_duration_seconds", "Time from a request's arrival to the end "
            "of its answer (a download's included)", ["interface", "route", "method"],
            buckets=BUCKETS, registry=r)
        self.in_progress = Gauge(
            "cairn_http_requests_in_progress", "Requests being answered", ["interface"],
            registry=r)
        self.body_bytes = Counter(
            "cairn_http_response_body_bytes", "Response body bytes handed to clients, by "
            "interface (interface=\"ids\": the data service's downloads)", ["interface"],
            registry=r)
        if cairn is not None:
            r.register(PoolCollector(cairn.db.engine))
            if jobs_engine is not None:
                r.register(JobsCollector(jobs_engine, cairn.db.tables.job,
                                         list(cairn.jobs.registry.kinds)))

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, remembered: the library's lookup (a lock and label
        checks) cost 15 us a request. The label values are bounded, and so is this."""
        key = (id(metric), *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def expose(self) -> bytes:
        return generate_latest(self.registry)


def _version() -> str:
    try:
        return version("cairn")
    except PackageNotFoundError:
        return "unknown"


class PoolCollector(Collector):
    """The catalogue engine's connection pool, read at scrape time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        pool = self.engine.pool
        for name, what, attr in (
                ("size", "Connections the pool keeps open", "size"),
                ("checked_out", "Connections lent to requests and jobs now", "checkedout"),
                ("checked_in", "Idle connections in the pool", "checkedin"),
                ("overflow", "Connections beyond the pool's size (negative: not yet opened)",
                 "overflow")):
            read = getattr(pool, attr, None)  # absent on pools that keep no count
            if callable(read):
                yield GaugeMetricFamily(f"cairn_db_pool_{name}", what, value=float(read()))


class JobsCollector(Collector):
    """Jobs per kind and state from the shared jobs table (the same figures on every
    process: take ``max``, not ``sum``, across processes)."""

    def __init__(self, engine: Engine, table: Table, kinds: Iterable[str] = ()) -> None:
        self.engine = engine
        self.t = table
        #: Kinds shown at 0 when the table has none of them (alerts need a series).
        self.kinds = kinds

    def collect(self) -> Iterator[Metric]:
        t = self.t
        up = GaugeMetricFamily("cairn_jobs_up", "1 if the jobs table could be read at this "
                               "scrape (the cairn_jobs series are missing otherwise)")
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(t.c.kind, t.c.state, func.count(),
                           func.sum(case((t.c.attempts > 0, 1), else_=0)))
                    .group_by(t.c.kind, t.c.state)).all()
        except Exception as e:  # the scrape goes on without them: /ready says why
            log.debug("jobs not counted for /metrics: %s", e)
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        jobs = GaugeMetricFamily("cairn_jobs", "Jobs by kind and state (queued: the queue's "
                                 "depth; failed: failed for good, kept [jobs] "
                                 "keep_failed_days)", labels=["kind", "state"])
        retrying = GaugeMetricFamily("cairn_jobs_retrying", "Queued jobs that failed at least "
                                     "once and wait for another attempt", labels=["kind"])
        counts = {(str(kind), str(state).upper()): (int(n), int(failed or 0))
                  for kind, state, n, failed in rows}
        for kind in sorted({k for k, _ in counts} | set(self.kinds)):
            for state in State:
                jobs.add_metric([kind, state.lower()], float(counts.get((kind, state), (0,))[0]))
            retrying.add_metric([kind], float(counts.get((kind, State.QUEUED), (0, 0))[1]))
        yield jobs
        yield retrying


class HttpMetrics:
    """Counts and times every HTTP request, and the body bytes of every answer."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.m = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        interface = interface_of(scope["path"])
        root_path = str(scope.get("root_path", ""))
        status = 500  # unless an answer is started
        sent = self.m.child(self.m.body_bytes, interface)

        async def counting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)
            if message["type"] == "http.response.body" and message.get("body"):
                sent.inc(len(message["body"]))  # as it goes: a download may last hours

        gauge = self.m.child(self.m.in_progress, interface)
        gauge.inc()
        try:
            await self.app(scope, receive, counting)
        finally:
            gauge.dec()
            route = route_of(scope, root_path)
            method = scope["method"] if scope["method"] in METHODS else "other"
            self.m.child(self.m.requests, interface, route, method, str(status)).inc()
            self.m.child(self.m.duration, interface, route, method).observe(
                time.perf_counter() - started)


class Guard:
    """Who may read /metrics: clients in ``allow``, or with the bearer ``token``."""

    def __init__(self, settings: MetricsSettings) -> None:
        self.networks = [ipaddress.ip_network(n, strict=False) for n in settings.allow]
        self.token = settings.token.encode()

    def admits(self, request: Request) -> bool:
        if self.token:
            given = request.headers.get("authorization", "")
            scheme, _, credentials = given.partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(
                    credentials.strip().encode(), self.token):
                return True
        host = request.client.host if request.client else ""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in net for net in self.networks)


async def metrics_endpoint(request: Request) -> Response:
    meters: Metrics = request.app.state.metrics
    guard: Guard = request.app.state.metrics_guard
    if not guard.admits(request):
        return PlainTextResponse(
            "Forbidden: this address may not read the metrics; see [metrics] allow and "
            "token in docs/operations.md\n", status_code=403)
    body = await run_in_threadpool(meters.expose)  # the jobs gauge reads the database
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def routes(settings: MetricsSettings) -> list[BaseRoute]:
    return [Route(PATH, metrics_endpoint, methods=["GET"])] if settings.enabled else []


def middleware(meters: Metrics | None) -> list[Middleware]:
    return [] if meters is None else [Middleware(HttpMetrics, metrics=meters)]
