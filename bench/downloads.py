"""The download manager's cart path against getData of the same selection, same run.

    .venv/bin/python bench/downloads.py                 # 10,000 x 10 KB files, best of 3
    .venv/bin/python bench/downloads.py --files 2000    # a quicker run

Starts a Cairn server (SQLite catalogue, local single-level main storage, both in a temp
folder) and catalogues one investigation of ``--files`` datafiles of ``--file-size`` bytes
of incompressible data, spread over ``--datasets`` datasets. The files are written straight
into main storage and their Datafile rows created through REST (``/icat/entityManager``, 500
per call) with their locations, sizes and CRC32 checksums, as an ingest next to the data
service does: ``/ids/put`` would cost a request, an fsync and a catalogue write per file and
measure nothing this benchmark is about.

Each run (best of ``--runs`` counts; the two paths alternate, so drift hits both) measures:

- **baseline**: ``GET /ids/getData?sessionId&investigationIds=N&zip=true`` (the STORED zip)
  streamed to the end: bytes, seconds from request to last byte, MB/s;
- **the cart path**: ``POST /topcat/user/cart/{facility}/cartItems items="investigation N"``,
  ``POST .../submit`` (transport https), ``GET /topcat/user/downloads?queryOffset=where
  download.id = ID`` every 10 ms until COMPLETE (submit-to-COMPLETE), then ``GET
  /ids/getData?preparedId=…&outname=…`` streamed to the end; submit-to-first-byte is from
  sending the submit to the first byte of the zip, polls included; the stream is timed from
  its request to its last byte, as the baseline's;
- after the stream, the download as ``/topcat/user/downloads`` shows it: DELIVERED
  (``isDelivered``, ``deliveredAt``, ``bytesDelivered`` of ``length``).

Targets (issue 15): cart stream time <= 1.1x the baseline's; submit-to-first-byte < 2 s.
The client is the standard library's ``http.client`` reading 1 MiB at a time (both paths).

Right after COMPLETE, the lifecycle measures the zip's length (it lays the zip out once, a
stat per file), which competes with a getData started at once: ``--wait-length`` starts the
cart's stream only once the download shows its ``length``, to tell that cost apart.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from cairn_process import launch_catalogue, stop
from http_client import Http
from ids_http import fill

MB = 1_000_000
MiB = 1 << 20
ROOT, PASSWORD = "root", "bench-pw"
FACILITY = "Bench"
TARGET_RATIO = 1.1
TARGET_FIRST_BYTE = 2.0
#: How often the cart path asks whether its download is COMPLETE.
POLL_SECONDS = 0.01


@dataclass
class Stream:
    status: int
    length: int | None  # Content-Length
    bytes: int
    #: Seconds from sending the request to its first body byte, and to its last.
    first_byte: float
    seconds: float

    @property
    def mb_s(self) -> float:
        return self.bytes / self.seconds / MB


def stream(base: str, path: str, params: dict[str, Any]) -> Stream:
    """GET ``path`` on a fresh connection and read the body to its end, 1 MiB at a time."""
    u = urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=600)
    buf = bytearray(MiB)
    view = memoryview(buf)
    try:
        t0 = time.perf_counter()
        conn.request("GET", path + "?" + urlencode(params))
        r = conn.getresponse()
        first = None
        n = 0
        while True:
            k = r.readinto(view)
            if not k:
                break
            if first is None:
                first = time.perf_counter() - t0
            n += k
        seconds = time.perf_counter() - t0
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status} from {path}: {bytes(buf[:min(n, 300)])!r}")
        length = r.getheader("Content-Length")
        return Stream(r.status, int(length) if length else None, n,
                      seconds if first is None else first, seconds)
    finally:
        conn.close()


#: Uvicorn closes a keep-alive connection idle for 5 s; the client reconnects before that.
IDLE_SECONDS = 2.0


class Api:
    """The calls of the run as root, on one keep-alive connection (a new one after a pause)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._http = Http(url, timeout=600)
        self._last = time.monotonic()
        creds = {"plugin": "simple",
                 "credentials": [{"username": ROOT}, {"password": PASSWORD}]}
        r = self.http.post("/icat/session", {"json": json.dumps(creds)})
        r.raise_for_status()
        self.sid: str = r.json()["sessionId"]

    @property
    def http(self) -> Http:
        if time.monotonic() - self._last > IDLE_SECONDS:
            self._http.close()  # http.client connects again on the next request
        self._last = time.monotonic()
        return self._http

    def write(self, entities: Any) -> list[int]:
        r = self.http.post("/icat/entityManager",
                           {"sessionId": self.sid, "entities": json.dumps(entities)})
        r.raise_for_status()
        return list(r.json())

    def topcat(self, method: str, path: str, **params: str) -> Any:
        params = {"sessionId": self.sid, "facilityName": FACILITY, **params}
        r = (self.http.get(f"/topcat{path}", params) if method == "GET"
             else self.http.post(f"/topcat{path}", params))
        r.raise_for_status()
        return r.json() if r.content else None

    def download(self, download_id: int) -> dict[str, Any]:
        (d,) = self.topcat("GET", "/user/downloads",
                           queryOffset=f"where download.id = {download_id}")
        return dict(d)


def catalogue(api: Api, main: Path, files: int, datasets: int, file_size: int) -> int:
    """One investigation of ``files`` datafiles in ``datasets`` datasets; its id."""
    (fac,) = api.write({"Facility": {"name": FACILITY}})
    (fmt,) = api.write({"DatafileFormat": {"name": "bin", "version": "1",
                                           "facility": {"id": fac}}})
    (dst,) = api.write({"DatasetType": {"name": "raw", "facility": {"id": fac}}})
    (it,) = api.write({"InvestigationType": {"name": "x", "facility": {"id": fac}}})
    (inv,) = api.write({"Investigation": {"name": "inv", "visitId": "v1", "title": "bench",
                                          "facility": {"id": fac}, "type": {"id": it}}})
    ds_ids = api.write([{"Dataset": {"name": f"ds{k:03d}", "investigation": {"id": inv},
                                     "type": {"id": dst}}} for k in range(datasets)])
    block = os.urandom(16 * MiB)
    rows: list[dict[str, Any]] = []
    for i in range(files):
        ds = ds_ids[i % datasets]
        loc = f"{inv}/{ds}/f{i:05d}.dat"
        off = (i * 7919) % (len(block) - file_size) if file_size < len(block) else 0
        crc = fill(main / loc, file_size, block[off:off + file_size])
        rows.append({"Datafile": {"name": f"f{i:05d}.dat", "location": loc,
                                  "fileSize": file_size, "checksum": format(crc, "x"),
                                  "datafileFormat": {"id": fmt}, "dataset": {"id": ds}}})
    for k in range(0, len(rows), 500):
        api.write(rows[k:k + 500])
    return inv


@dataclass
class CartRun:
    download_id: int
    to_complete: float
    first_byte: float
    stream: Stream
    delivered: dict[str, Any]


def cart_path(api: Api, inv: int, run: int, wait_length: bool) -> CartRun:
    api.topcat("POST", f"/user/cart/{FACILITY}/cartItems", items=f"investigation {inv}")
    name = f"bench_run{run}"
    t0 = time.perf_counter()
    out = api.topcat("POST", f"/user/cart/{FACILITY}/submit", transport="https",
                     fileName=name, zipType="ZIP")
    download_id = int(out["downloadId"])
    while True:
        d = api.download(download_id)
        if d["status"] == "COMPLETE" and (d["length"] is not None or not wait_length):
            break
        if d["status"] == "EXPIRED":
            sys.exit(f"download {download_id} EXPIRED: {d.get('error')}")
        time.sleep(POLL_SECONDS)
    to_complete = time.perf_counter() - t0
    before = time.perf_counter()
    got = stream(api.url, "/ids/getData", {"preparedId": d["preparedId"], "outname": name})
    first_byte = before + got.first_byte - t0
    # The data service reports what went out once the response has ended: wait for it.
    deadline = time.monotonic() + 10
    while True:
        d = api.download(download_id)
        if d["isDelivered"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return CartRun(download_id, to_complete, first_byte, got, d)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=10_000, help="datafiles in the investigation")
    p.add_argument("--file-size", type=int, default=10_000, help="bytes of each datafile")
    p.add_argument("--datasets", type=int, default=10, help="datasets they are spread over")
    p.add_argument("--runs", type=int, default=3, help="runs of each path (best counts)")
    p.add_argument("--wait-length", action="store_true",
                   help="start the cart's stream only once the download shows its zip's "
                        "length (measured by the lifecycle right after COMPLETE)")
    p.add_argument("--keep", type=Path, metavar="DIR",
                   help="work in DIR and keep it (catalogue, files, Cairn's log)")
    a = p.parse_args()
    if a.files < 1 or a.datasets < 1 or a.file_size < 1 or a.runs < 1:
        sys.exit("--files, --datasets, --file-size and --runs must be positive")

    work = (a.keep or Path(tempfile.mkdtemp(prefix="cairn-bench-downloads-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    main_dir = work / "main"
    proc = None
    try:
        proc, url = launch_catalogue(
            work, f"sqlite:///{work / 'catalogue.db'}", ROOT, PASSWORD,
            extra=f'[data]\nmain = "{main_dir}"\n')
        api = Api(url)
        t = time.perf_counter()
        inv = catalogue(api, main_dir, a.files, min(a.datasets, a.files), a.file_size)
        print(f"Cairn {url}, work folder {work}\ncatalogued investigation {inv}: {a.files} x "
              f"{a.file_size:,} bytes in {min(a.datasets, a.files)} datasets "
              f"(files written into main storage, rows through REST) in "
              f"{time.perf_counter() - t:.1f} s", flush=True)
        base_params = {"sessionId": api.sid, "investigationIds": str(inv), "zip": "true"}
        stream(url, "/ids/getData", base_params)  # warm-up: page cache, first queries

        baselines: list[Stream] = []
        carts: list[CartRun] = []
        print(f"\n{'run':<5}{'path':<10}{'bytes':>13}{'stream s':>10}{'MB/s':>8}"
              f"{'1st byte s':>12}{'to COMPLETE s':>15}{'submit-1st byte s':>19}  delivered")
        for run in range(1, a.runs + 1):
            b = stream(url, "/ids/getData", base_params)
            baselines.append(b)
            print(f"{run:<5}{'getData':<10}{b.bytes:>13,}{b.seconds:>10.3f}{b.mb_s:>8.0f}"
                  f"{b.first_byte:>12.3f}", flush=True)
            c = cart_path(api, inv, run, a.wait_length)
            carts.append(c)
            s = c.stream
            d = c.delivered
            print(f"{'':<5}{'cart':<10}{s.bytes:>13,}{s.seconds:>10.3f}{s.mb_s:>8.0f}"
                  f"{s.first_byte:>12.3f}{c.to_complete:>15.3f}{c.first_byte:>19.3f}  "
                  f"{'yes' if d['isDelivered'] else 'NO'}", flush=True)
            if s.bytes != b.bytes:
                print(f"  ! the cart's zip has {s.bytes:,} bytes, getData's {b.bytes:,}")

        best_base = min(baselines, key=lambda x: x.seconds)
        best_stream = min(carts, key=lambda c: c.stream.seconds).stream
        best_first = min(c.first_byte for c in carts)
        best_complete = min(c.to_complete for c in carts)
        ratio = best_stream.seconds / best_base.seconds
        med_ratio = (statistics.median(c.stream.seconds for c in carts)
                     / statistics.median(x.seconds for x in baselines))
        ratio_ok = ratio <= TARGET_RATIO
        first_ok = best_first < TARGET_FIRST_BYTE
        last = carts[-1]
        delivered_ok = all(c.delivered["isDelivered"]
                           and c.delivered["bytesDelivered"] == c.stream.bytes
                           for c in carts)

        print(f"\nbest of {a.runs}: {a.files:,} files, zip of {best_base.bytes:,} bytes")
        print(f"  baseline getData (investigationIds, zip):  {best_base.seconds:7.3f} s "
              f"{best_base.mb_s:6.0f} MB/s  (first byte after {best_base.first_byte:.3f} s)")
        print(f"  cart: getData (preparedId):                {best_stream.seconds:7.3f} s "
              f"{best_stream.mb_s:6.0f} MB/s  (first byte after {best_stream.first_byte:.3f} s)")
        print(f"  cart: submit to COMPLETE                   {best_complete:7.3f} s")
        print(f"  cart: submit to first byte of the zip      {best_first:7.3f} s   target < "
              f"{TARGET_FIRST_BYTE:g} s: {'ok' if first_ok else 'MISSED'}")
        print(f"  ratio cart stream / baseline stream        {ratio:7.3f}x  target <= "
              f"{TARGET_RATIO}x: {'ok' if ratio_ok else 'MISSED'}  (medians: {med_ratio:.3f}x)")
        shown = {k: last.delivered.get(k) for k in
                 ("id", "status", "isDelivered", "deliveredAt", "bytesDelivered", "length",
                  "completedAt", "fileName")}
        print(f"  download after the full stream: {json.dumps(shown)}")
        print(f"  every cart download DELIVERED with all its bytes: "
              f"{'yes' if delivered_ok else 'NO'}")
        print(json.dumps({"files": a.files, "file_size": a.file_size, "zip_bytes": best_base.bytes,
                          "baseline_s": round(best_base.seconds, 4),
                          "baseline_mb_s": round(best_base.mb_s, 1),
                          "cart_stream_s": round(best_stream.seconds, 4),
                          "cart_stream_mb_s": round(best_stream.mb_s, 1),
                          "ratio": round(ratio, 3), "ratio_median": round(med_ratio, 3),
                          "submit_to_complete_s": round(best_complete, 3),
                          "submit_to_first_byte_s": round(best_first, 3),
                          "delivered": delivered_ok}))
    finally:
        if proc is not None:
            stop(proc)
        if a.keep is None:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")


if __name__ == "__main__":
    main()
