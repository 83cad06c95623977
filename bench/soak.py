"""Soak: 50 mixed clients against one Cairn process for many minutes; is it steady?

    .venv/bin/python bench/soak.py [--minutes 30] [--clients 50] [--database URL]
                                   [--scale 5] [--trace-memory SECONDS] [--gc-probe]

Loads the demo facility (``--scale 5``: 100 investigations, ~50,000 datafiles) into a fresh
catalogue -- a SQLite file in a temporary folder unless ``--database`` names an empty database
(or one a previous soak left, reused as it is) --, starts Cairn, gives the facility its rules
(those of ``bench/authz_search.py``, plus keyword writes for investigation users) and uploads
a dataset of small files to each investigation of the soak's users through ``/ids/put``.

Then ``--clients`` threads (one in five root, the others eight demo users under the rules)
each loop: log in, 200 operations, log out. The operations (``bench/soak_workload.py``) are
portal pages with INCLUDE, counts, gets by id, free-text searches, writes (a keyword added
and removed; root: a datafile created, updated, deleted, and a file put and deleted through
``/ids``) and downloads through ``/ids`` (a file, a dataset's zip, a prepared download). There
is no think time: the server is kept saturated, the hardest case for memory.

Every minute it prints the requests done, throughput, p50/p99 latency, errors, the server's
resident memory (``VmRSS`` of ``/proc/<pid>/status``, sampled every 10 s) and the load average.
At the end, per kind of request, and a verdict against issue 17's targets:

- **errors**: none at all;
- **latency**: p99 at most 5x p50, over every request after the first minute (warm-up);
- **memory flat** over the last two thirds of the run: the least-squares slope of the RSS
  samples taken from minute T/3 on is below 1 MB/min, and the RSS of the last minute (mean
  of its samples) is within 5% of the RSS around minute T/3 (mean of the samples within 30 s
  of it). Caches may fill during the first third; after that growth must stop.

``--trace-memory N`` runs the server under ``bench/memtrace.py`` (tracemalloc, a heap snapshot
every N seconds) and prints where the heap grew between the snapshot at T/3 and the last:
the way to find what is not bounded. Tracing costs throughput; never judge speed with it.
``--watch-caches N`` only records every N seconds how full each cache is, how often the
collector ran, Python's allocated blocks and the C allocator's memory (held, in use, free;
SQLite's share), at no cost, and prints them at T/3 and at the end: Python's objects flat
while the RSS rises means native memory. ``--gc-probe`` also times the
server's garbage collector (``bench/memtrace.py --gc-probe``) and prints, per generation, how
many collections ran, how long they held every thread and how many objects in reference
cycles they freed, and the full collections after the first minute: the cause when p99 is
far above p50.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from authz_search import demo_database, rule_set
from cairn_process import launch_catalogue, stop
from soak_workload import ROOT, ROOT_PASSWORD, USER_PASSWORD, USERS, Client, Conn, Recorder, prepare

RSS_EVERY = 10.0  # seconds between RSS samples
SLOPE_LIMIT = 1.0  # MB per minute
LEVEL_TOLERANCE = 0.05
P99_OVER_P50 = 5.0


def start(work: Path, database: str, trace: float | None, watch: float | None,
          gc_probe: bool = False) -> tuple[subprocess.Popen[bytes], str]:
    """Serve the catalogue (under the memory tracer with ``trace``, or recording the caches'
    fill every ``watch`` seconds, timing the collector with ``gc_probe``); process and base
    URL."""
    memtrace = str(Path(__file__).resolve().parent / "memtrace.py")
    probe = ["--gc-probe"] if gc_probe else []
    command = ([memtrace, str(work / "heap"), str(trace), *probe] if trace
               else [memtrace, str(work / "heap"), str(watch), "--caches-only", *probe]
               if watch else ["-m", "cairn.cli"])
    return launch_catalogue(work, database, ROOT, ROOT_PASSWORD, catalogue="migrate = false",
                            extra='[authn.db]\ntype = "db"', attempts=3000, command=command)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y) points."""
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


@dataclass
class Verdict:
    errors: int
    p50: float
    p99: float
    rss_slope: float  # MB per minute over the last two thirds
    rss_third: float  # MB around T/3
    rss_last: float  # MB, mean of the last minute

    @property
    def latency_ok(self) -> bool:
        return self.p99 <= P99_OVER_P50 * self.p50

    @property
    def rss_ok(self) -> bool:
        return (self.rss_slope < SLOPE_LIMIT
                and abs(self.rss_last - self.rss_third) <= LEVEL_TOLERANCE * self.rss_third)

    def lines(self) -> list[str]:
        def mark(ok: bool) -> str:
            return "meets" if ok else "FAILS"
        return [
            f"errors: {self.errors} ({mark(self.errors == 0)}; target 0)",
            f"latency after the first minute: p50 {self.p50 * 1000:.1f} ms, p99 "
            f"{self.p99 * 1000:.1f} ms, p99/p50 {self.p99 / self.p50:.2f} "
            f"({mark(self.latency_ok)}; target <= {P99_OVER_P50:g})",
            f"RSS over the last two thirds: slope {self.rss_slope:+.2f} MB/min, "
            f"{self.rss_third:.0f} MB at T/3 -> {self.rss_last:.0f} MB in the last minute "
            f"({(self.rss_last / self.rss_third - 1) * 100:+.1f}%) ({mark(self.rss_ok)}; "
            f"target slope < {SLOPE_LIMIT:g} MB/min and within {LEVEL_TOLERANCE:.0%})",
        ]


def judge(rec: Recorder, rss: list[tuple[float, float]], t0: float, minutes: float) -> Verdict:
    after_warmup = [s[2] for s in rec.samples if s[0] - t0 >= 60]
    third = minutes / 3
    late = [(t, m) for t, m in rss if t >= third]
    around = [m for t, m in rss if abs(t - third) <= 0.5] or [late[0][1]]
    last = [m for t, m in rss if t >= minutes - 1]
    return Verdict(rec.error_count, pct(after_warmup, 0.5), pct(after_warmup, 0.99),
                   slope(late), statistics.fmean(around), statistics.fmean(last))


def per_kind(rec: Recorder) -> list[str]:
    kinds: dict[str, list[tuple[float, bool]]] = {}
    for _, kind, took, ok in rec.samples:
        kinds.setdefault(kind, []).append((took, ok))
    out = [f"{'kind':<10}{'requests':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"]
    for kind, got in sorted(kinds.items(), key=lambda kv: -len(kv[1])):
        secs = [s for s, _ in got]
        out.append(f"{kind:<10}{len(got):>10,}{pct(secs, 0.5) * 1000:>9.1f}"
                   f"{pct(secs, 0.99) * 1000:>9.1f}{sum(not ok for _, ok in got):>8}")
    return out


def memory_report(heap: Path, minutes: float, every: float) -> list[str]:
    """Where the heap grew between the snapshot nearest T/3 and the last one (the caches'
    fill only, when the server ran without the tracer)."""
    from memtrace import cache_report, growth

    snaps = sorted(heap.glob("caches-*.json"), key=lambda p: int(p.stem.split("-")[1]))
    if len(snaps) < 2:
        return ["(fewer than two snapshots)"]
    first = snaps[min(len(snaps) - 2, int(minutes * 60 / 3 / every))]
    last = snaps[-1]
    n0, n1 = first.stem.split("-")[1], last.stem.split("-")[1]
    heaps = [heap / f"heap-{n}.pickle" for n in (n0, n1)]
    grew = (["where the heap grew:", *growth(heaps[0], heaps[1])]
            if all(h.exists() for h in heaps) else [])
    return [f"snapshot {n0} -> {n1} (every {every:g} s):", *grew,
            *cache_report(heap / f"caches-{n0}.json", heap / f"caches-{n1}.json")]


def collector_report(heap: Path) -> list[str]:
    """The garbage collector's pauses, from the last snapshot ``--gc-probe`` wrote."""
    from memtrace import gc_report

    snaps = sorted(heap.glob("caches-*.json"), key=lambda p: int(p.stem.split("-")[1]))
    state = json.loads(snaps[-1].read_text()).get("gc") if snaps else None
    return gc_report(state, since=1.0) if state else ["(no collector probe snapshot)"]


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--database", help="SQLAlchemy URL of an empty database")
    p.add_argument("--scale", type=float, default=5.0, help="demo scale (1 = 10,000 datafiles)")
    p.add_argument("--trace-memory", type=float, metavar="SECONDS",
                   help="run the server under tracemalloc, a heap snapshot every SECONDS")
    p.add_argument("--watch-caches", type=float, metavar="SECONDS",
                   help="record how full the server's caches are every SECONDS")
    p.add_argument("--gc-probe", action="store_true",
                   help="time the server's garbage collections (implies --watch-caches 10)")
    args = p.parse_args()
    if args.gc_probe and not (args.trace_memory or args.watch_caches):
        args.watch_caches = RSS_EVERY

    work = Path(tempfile.mkdtemp(prefix="cairn-bench-soak-"))
    database = args.database or f"sqlite:///{work / 'catalogue.db'}"
    print(f"catalogue: {database.split('@')[-1]} (scale {args.scale:g}); work in {work}",
          flush=True)
    from cairn.authn.db import set_password

    db = demo_database(database, args.scale)
    for user in USERS:
        set_password(db, user, USER_PASSWORD)
    db.dispose()
    proc, url = start(work, database, args.trace_memory, args.watch_caches, args.gc_probe)
    rec = Recorder()
    stopping = threading.Event()
    try:
        plans = prepare(url, rule_set())
        for pl in plans:
            print(f"  {pl.user}: {len(pl.investigations)} investigations, {len(pl.datasets)} "
                  f"datasets, {len(pl.own)} writable, {len(pl.files)} soak files", flush=True)
        clients = [Client(url, plans[0] if i % 5 == 0 else plans[1 + i % (len(plans) - 1)],
                          rec, seed=i) for i in range(args.clients)]
        threads = [threading.Thread(target=c.run, args=(stopping,), daemon=True)
                   for c in clients]
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.monotonic()
        for t in threads:
            t.start()
        rss = run(proc.pid, rec, t0, args.minutes)
        stopping.set()
        for t in threads:
            t.join(120)
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        elapsed = time.monotonic() - t0
    finally:
        stopping.set()
        stop(proc)

    client_cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    print(f"\n{len(rec.samples):,} requests in {elapsed / 60:.1f} min, {args.clients} clients, "
          f"{database.split(':')[0]}; {os.cpu_count()} CPUs, load average "
          + ", ".join(f"{x:.2f}" for x in os.getloadavg())
          + f"; the clients used {client_cpu / elapsed:.0%} of a CPU; "
          f"{Conn.reconnects} requests resent on a new connection (keep-alive closed)")
    print("\n".join(per_kind(rec)))
    if rec.errors:
        print("first errors:\n  " + "\n  ".join(rec.errors))
    if args.trace_memory or args.watch_caches:
        every = args.trace_memory or args.watch_caches
        print("\n".join(memory_report(work / "heap", args.minutes, every)))
    if args.gc_probe:
        print("\n".join(collector_report(work / "heap")))
    verdict = judge(rec, rss, t0, args.minutes)
    print("\nverdict:\n  " + "\n  ".join(verdict.lines()))
    ok = verdict.errors == 0 and verdict.latency_ok and verdict.rss_ok
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def run(pid: int, rec: Recorder, t0: float, minutes: float) -> list[tuple[float, float]]:
    """Sample RSS and print a line a minute until ``minutes`` are over; the RSS samples as
    (minute since start, MB)."""
    head = (f"{'min':>4}{'requests':>10}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
            f"{'RSS MB':>8}{'load':>6}")
    print(head + "\n" + "-" * len(head), flush=True)
    rss: list[tuple[float, float]] = []
    seen, errors, minute = 0, 0, 1
    end = t0 + minutes * 60
    while (now := time.monotonic()) < end:
        time.sleep(min(RSS_EVERY - (now - t0) % RSS_EVERY, end - now))
        now = time.monotonic()
        rss.append(((now - t0) / 60, rss_mb(pid)))
        if now - t0 >= minute * 60 - 0.5 or now >= end - 0.5:
            batch = rec.samples[seen:]
            seen += len(batch)
            lat = [s[2] for s in batch]
            new_errors, errors = rec.error_count - errors, rec.error_count
            print(f"{minute:>4}{len(batch):>10,}{len(batch) / 60:>8.1f}"
                  f"{pct(lat, 0.5) * 1000 if lat else 0:>9.1f}"
                  f"{pct(lat, 0.99) * 1000 if lat else 0:>9.1f}{new_errors:>8}"
                  f"{rss[-1][1]:>8.0f}{os.getloadavg()[0]:>6.1f}", flush=True)
            minute += 1
    return rss


if __name__ == "__main__":
    sys.exit(main())
