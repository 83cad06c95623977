"""Data-service throughput over loopback HTTP: Cairn's /ids against nginx, same files, same run.

    .venv/bin/python bench/ids_http.py            # 2 GB file, 1,000 x 1 MB zip, 2 GB put
    .venv/bin/python bench/ids_http.py --quick    # 256 MB, 200 x 1 MB (smoke run)

Starts a Cairn server (SQLite catalogue, local main storage in a temp folder) and nginx as a
user process on a free port whose root is that same main storage folder, so both serve the
same files from the same (page-cached) disk. curl fetches to /dev/null; the best of
``--runs`` counts. Measured:

- one large file: ``getData?datafileIds=`` against nginx serving the file;
- a zip of many files (``getData?datasetIds=``, compress=false, the STORED zip): against
  nginx serving the same files one after another on one keep-alive connection, and against
  nginx serving a ready-made zip with identical bytes (the static-file ceiling);
- a resumed download: the second half of the zip (``Range: bytes=N-``);
- the peak RSS of the Cairn process (VmHWM) over the whole run, and its RSS sampled during
  the downloads;
- the CPU seconds per GB the serving process (Cairn, nginx's worker) spent, lowest run: on a
  shared machine MB/s ratios swing with other work (nginx is slowed too), CPU per GB barely;
- upload: ``put`` of the large file with curl, against ``cp`` of it followed by fsync (Cairn's
  put also fsyncs before its atomic rename).

Targets (issue 6): >= 0.8x nginx for the single file, >= 0.6x for the zip, RSS < 150 MB.
nginx comes from the system (``apt-get install nginx``); without it the baselines are
skipped and said so.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import httpx

MB = 1_000_000
MiB = 1 << 20
TARGETS = {"file": 0.8, "zip": 0.6}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited: {log.read_text()[-2000:]}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    sys.exit(f"{what} did not start")


def fill(path: Path, size: int, block: bytes) -> int:
    """Write ``size`` bytes of incompressible data; return the CRC32."""
    crc = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            piece = block[:min(left, len(block))]
            f.write(piece)
            crc = zlib.crc32(piece, crc)
            left -= len(piece)
    return crc


def curl(urls: list[str], headers: list[str] | None = None, upload: Path | None = None
         ) -> tuple[float, int]:
    """Fetch ``urls`` to /dev/null, one keep-alive connection (or PUT ``upload`` to the one
    URL): (seconds, bytes)."""
    args = ["curl", "-sS", "--fail", "--http1.1", "-w", "%{size_download}\\n"]
    for h in headers or []:
        args += ["-H", h]
    if upload is not None:
        args += ["-T", str(upload), "-H", "Content-Type: application/octet-stream"]
    for u in urls:
        args += ["-o", "/dev/null", u]
    t = time.perf_counter()
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    seconds = time.perf_counter() - t
    n = upload.stat().st_size if upload is not None else sum(int(x) for x in out.split())
    return seconds, n


def best(runs: int, fn: Any, pid: int | None = None,
         cpu: list[float] | None = None) -> tuple[float, int]:
    """The fastest of ``runs``; with ``pid``, each run's CPU seconds per GB of that process
    are appended to ``cpu``."""
    results = []
    for _ in range(runs):
        before = cpu_seconds(pid) if pid else 0.0
        r = fn()
        if pid and cpu is not None and r[1]:
            cpu.append((cpu_seconds(pid) - before) / (r[1] / 1e9))
        results.append(r)
    return min(results, key=lambda r: r[0])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pid(pid: int) -> int | None:
    """nginx's worker (its master only accepts)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            return int(stat.parent.name)
    return None


class RssSampler:
    """VmRSS of a process, sampled every 50 ms while running."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, status_kb(self.pid, "VmRSS"))
            time.sleep(0.05)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def start_nginx(root: Path, work: Path) -> tuple[subprocess.Popen[bytes] | None, str]:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                       else None)
    if nginx is None:
        return None, "nginx not installed (apt-get install nginx): baselines skipped"
    port = free_port()
    conf = work / "nginx.conf"
    (work / "nginx").mkdir(exist_ok=True)
    conf.write_text(f"""
daemon off;
worker_processes 1;
pid {work}/nginx/nginx.pid;
error_log {work}/nginx/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path {work}/nginx/body;
    proxy_temp_path {work}/nginx/proxy;
    fastcgi_temp_path {work}/nginx/fastcgi;
    uwsgi_temp_path {work}/nginx/uwsgi;
    scgi_temp_path {work}/nginx/scgi;
    types {{ }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
""")
    log = work / "nginx" / "stdout.log"
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(work / "nginx")],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/", proc, "nginx", log)
    return proc, url


def start_cairn(work: Path, main: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cfg = work / "cairn.toml"
    cfg.write_text(f"""
[server]
port = {port}
data_dir = "{work / 'cairn-data'}"
[catalogue]
root_users = ["simple/root"]
[authn.simple]
type = "simple"
users = {{ root = "pw" }}
[data]
main = "{main}"
""")
    log = work / "cairn.log"
    proc = subprocess.Popen([sys.executable, "-m", "cairn.cli", "serve", "--config", str(cfg),
                             "--log-level", "warning"], stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/ids/ping", proc, "Cairn", log)
    return proc, url


class Catalogue:
    """Just enough catalogue for the benchmark, written through REST as root."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=600)
        creds = {"plugin": "simple", "credentials": [{"username": "root"}, {"password": "pw"}]}
        self.sid = self.http.post("/icat/session",
                                  data={"json": json.dumps(creds)}).json()["sessionId"]

    def write(self, entities: Any) -> list[int]:
        r = self.http.post("/icat/entityManager",
                           data={"sessionId": self.sid, "entities": json.dumps(entities)})
        r.raise_for_status()
        return list(r.json())

    def setup(self) -> dict[str, int]:
        (fac,) = self.write({"Facility": {"name": "Bench", "datafileFormats": [],
                                          "datasetTypes": [], "investigationTypes": []}})
        (fmt,) = self.write({"DatafileFormat": {"name": "bin", "version": "1",
                                                "facility": {"id": fac}}})
        (dst,) = self.write({"DatasetType": {"name": "raw", "facility": {"id": fac}}})
        (it,) = self.write({"InvestigationType": {"name": "x", "facility": {"id": fac}}})
        (inv,) = self.write({"Investigation": {"name": "inv", "visitId": "v", "title": "t",
                                               "facility": {"id": fac}, "type": {"id": it}}})
        big_ds, zip_ds, up_ds = self.write([
            {"Dataset": {"name": n, "investigation": {"id": inv}, "type": {"id": dst}}}
            for n in ("big", "many", "uploads")])
        return {"fmt": fmt, "inv": inv, "big_ds": big_ds, "zip_ds": zip_ds, "up_ds": up_ds}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", type=Path, help="work folder (default: a new temp dir)")
    p.add_argument("--big-mb", type=int, default=2000, help="size of the single file (MB)")
    p.add_argument("--files", type=int, default=1000, help="files in the zip")
    p.add_argument("--file-mb", type=float, default=1.0, help="size of each zipped file (MB)")
    p.add_argument("--runs", type=int, default=3, help="runs per measurement (best counts)")
    p.add_argument("--no-upload", action="store_true", help="skip the upload measurement")
    p.add_argument("--quick", action="store_true", help="256 MB file, 200 files")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    a = p.parse_args()
    if a.quick:
        a.big_mb, a.files = 256, 200
    if shutil.which("curl") is None:
        sys.exit("curl is needed")

    work = (a.dir or Path(tempfile.mkdtemp(prefix="cairn-bench-http-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o755)  # nginx's workers run as an unprivileged user when started by root
    main_dir = work / "main"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        big_size, file_size = a.big_mb * MB, int(a.file_mb * MB)
        print(f"Preparing a {a.big_mb} MB file and {a.files} x {a.file_mb:g} MB files in "
              f"{work} ...", flush=True)
        block = os.urandom(16 * MiB)
        cairn, cairn_url = start_cairn(work, main_dir)
        procs.append(cairn)
        cat = Catalogue(cairn_url)
        ids = cat.setup()
        # The files are placed in main storage and catalogued with their locations, as an
        # ingest next to the data service does; nginx serves the same folder.
        big_loc = f"{ids['inv']}/{ids['big_ds']}/big"
        big_crc = fill(main_dir / big_loc, big_size, block)
        (big_id,) = cat.write({"Datafile": {
            "name": "big.dat", "location": big_loc, "fileSize": big_size,
            "checksum": format(big_crc, "x"), "dataset": {"id": ids["big_ds"]}}})
        small: list[str] = []
        entities = []
        for i in range(a.files):
            loc = f"{ids['inv']}/{ids['zip_ds']}/f{i:05d}"
            off = (i * 7919) % (len(block) - file_size) if file_size < len(block) else 0
            crc = fill(main_dir / loc, file_size, block[off:off + file_size])
            small.append(loc)
            entities.append({"Datafile": {"name": f"f{i:05d}.dat", "location": loc,
                                          "fileSize": file_size, "checksum": format(crc, "x"),
                                          "dataset": {"id": ids["zip_ds"]}}})
        for i in range(0, len(entities), 500):
            cat.write(entities[i:i + 500])
        subprocess.run(["cat", str(main_dir / big_loc), *(str(main_dir / s) for s in small)],
                       check=True, stdout=subprocess.DEVNULL)  # page cache, for everyone

        nginx, nginx_url = start_nginx(main_dir, work)
        if nginx is not None:
            procs.append(nginx)
            print(f"nginx {nginx_url} serving {main_dir}")
        else:
            print(nginx_url)  # the reason
        sid = cat.sid
        file_url = f"{cairn_url}/ids/getData?sessionId={sid}&datafileIds={big_id}"
        zip_url = f"{cairn_url}/ids/getData?sessionId={sid}&datasetIds={ids['zip_ds']}"
        rows: list[tuple[str, float, int, float | None, float | None]] = []
        ratios: dict[str, float] = {}
        #: CPU seconds per GB of the serving process, by measurement.
        cpu: dict[str, list[float]] = {}
        worker = child_pid(nginx.pid) if nginx is not None else None
        cpid = cairn.pid

        def add(label: str, res: tuple[float, int], base: tuple[float, int] | None,
                target: float | None = None, key: str | None = None) -> None:
            rate = res[1] / res[0] / MB
            base_rate = base[1] / base[0] / MB if base else None
            rows.append((label, rate, res[1], base_rate, target))
            if key and base_rate:
                ratios[key] = rate / base_rate

        print("Downloading ...", flush=True)
        with RssSampler(cairn.pid) as rss:
            nginx_file = best(a.runs, lambda: curl([f"{nginx_url}/{big_loc}"]), worker,
                              cpu.setdefault("nginx: single file", [])) if nginx else None
            cairn_file = best(a.runs, lambda: curl([file_url]), cpid,
                              cpu.setdefault("Cairn: single file", []))
            assert cairn_file[1] == big_size, cairn_file
            if nginx_file:
                add("nginx: single file", nginx_file, None)
            add("Cairn getData: single file", cairn_file, nginx_file, TARGETS["file"], "file")

            cairn_zip = best(a.runs, lambda: curl([zip_url]), cpid,
                             cpu.setdefault("Cairn: zip", []))
            zip_path = main_dir / "prebuilt.zip"
            subprocess.run(["curl", "-sS", "--fail", "-o", str(zip_path), zip_url], check=True)
            zip_len = zip_path.stat().st_size
            assert zip_len == cairn_zip[1]
            if nginx:
                nginx_files = best(a.runs, lambda: curl([f"{nginx_url}/{s}" for s in small]),
                                   worker, cpu.setdefault("nginx: the files", []))
                nginx_zipfile = best(a.runs, lambda: curl([f"{nginx_url}/prebuilt.zip"]))
                add(f"nginx: {a.files} files, one connection", nginx_files, None)
                add("nginx: the same zip as a static file", nginx_zipfile, None)
                add(f"Cairn getData: zip of {a.files} files", cairn_zip, nginx_files,
                    TARGETS["zip"], "zip")
                rows.append(("  (against the static zip)", cairn_zip[1] / cairn_zip[0] / MB,
                             0, nginx_zipfile[1] / nginx_zipfile[0] / MB, None))
                ratios["zip_static"] = (cairn_zip[1] / cairn_zip[0]) / (
                    nginx_zipfile[1] / nginx_zipfile[0])
            else:
                add(f"Cairn getData: zip of {a.files} files", cairn_zip, None)
            half = zip_len // 2
            resumed = best(a.runs, lambda: curl([zip_url], headers=[f"Range: bytes={half}-"]))
            assert resumed[1] == zip_len - half
            add("Cairn getData: zip, resumed at half (Range)", resumed, None)
        download_rss = rss.peak_kb / 1024

        if not a.no_upload:
            print("Uploading ...", flush=True)
            src = main_dir / big_loc
            dst = work / "copy.bin"

            def cp() -> tuple[float, int]:
                t = time.perf_counter()
                subprocess.run(["cp", str(src), str(dst)], check=True)
                fd = os.open(dst, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
                seconds = time.perf_counter() - t
                dst.unlink()
                return seconds, big_size

            def put() -> tuple[float, int]:
                name = f"up-{time.monotonic_ns()}.bin"
                url = (f"{cairn_url}/ids/put?sessionId={sid}&name={name}"
                       f"&datasetId={ids['up_ds']}&datafileFormatId={ids['fmt']}")
                return curl([url], upload=src)

            with RssSampler(cairn.pid) as rss_up:
                base = best(a.runs, cp)
                add("cp + fsync: large file", base, None)
                add("Cairn put: large file",
                    best(a.runs, put, cpid, cpu.setdefault("Cairn: put", [])), base)
            upload_rss = rss_up.peak_kb / 1024
        peak = status_kb(cairn.pid, "VmHWM") / 1024

        print(f"\n{'':<46}{'MB/s':>9}  {'baseline':>9}  {'ratio':>6}  target")
        for label, rate, _n, base_rate, target in rows:
            ratio = f"{rate / base_rate:5.2f}x" if base_rate else ""
            base_txt = f"{base_rate:9.0f}" if base_rate else ""
            tgt = f">= {target}x" if target else ""
            ok = ""
            if target and base_rate:
                ok = "  ok" if rate / base_rate >= target else "  MISSED"
            print(f"  {label:<44}{rate:9.0f}  {base_txt:>9}  {ratio:>6}  {tgt}{ok}")
        measured = {k: min(v) for k, v in cpu.items() if v}
        if measured:
            print("\nCPU seconds per GB of the serving process (lowest run): "
                  + ", ".join(f"{k} {v:.2f}" for k, v in measured.items()))
        print(f"\nCairn RSS: peak (VmHWM, whole run) {peak:.0f} MB; during downloads "
              f"{download_rss:.0f} MB" + ("" if a.no_upload else
                                         f"; during uploads {upload_rss:.0f} MB")
              + f"  (target < 150 MB: {'ok' if peak < 150 else 'MISSED'})")
        print(json.dumps({"ratios": {k: round(v, 3) for k, v in ratios.items()},
                          "cpu_s_per_gb": {k: round(v, 3) for k, v in measured.items()},
                          "peak_rss_mb": round(peak, 1)}))
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if not a.keep and a.dir is None:
            shutil.rmtree(work, ignore_errors=True)
        elif a.keep:
            print(f"kept {work}")


if __name__ == "__main__":
    main()
