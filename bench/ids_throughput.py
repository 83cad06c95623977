"""Data-service throughput below HTTP: Cairn's storage and zip iterators against cat/cp.

    .venv/bin/python bench/ids_throughput.py            # 2 GB file, 1,000 x 1 MB zip
    .venv/bin/python bench/ids_throughput.py --quick    # 256 MB, 200 x 1 MB (smoke run)

Measures, in one run and on the same (page-cached) files:
- one large file: ``LocalStorage.read`` chunks written to /dev/null, next to ``cat file``
  and a plain Python read loop;
- a zip of many files (compress=false): ``StoredZip`` to /dev/null, next to ``cat`` of all
  the files; plus a ranged read of its second half (resume);
- upload: ``LocalStorage.put`` (CRC32 + fsync + rename) of the large file, next to ``cp``
  followed by fsync.
It prints MB/s, each ratio to its baseline, and the peak RSS of this process.

Still to come (issue 6, when the /ids endpoints exist): the same downloads over loopback HTTP
next to nginx serving the same files (targets: >= 0.8x nginx for the single file, >= 0.6x
for the zip, Cairn's RSS < 150 MB), and a 2 GB ``put`` over HTTP against ``cp``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

from cairn.ids.storage_local import LocalStorage
from cairn.ids.zipstream import StoredZip, ZipMember, deflate_zip

MB = 1_000_000
MiB = 1 << 20


def _fill(path: Path, size: int, block: bytes) -> int:
    """Write ``size`` bytes of (incompressible) data; return its CRC32."""
    crc = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            piece = block if left >= len(block) else block[:left]
            f.write(piece)
            crc = zlib.crc32(piece, crc)
            left -= len(piece)
    return crc


def _to_devnull(chunks: Iterable[bytes]) -> int:
    n = 0
    fd = os.open(os.devnull, os.O_WRONLY)
    try:
        for chunk in chunks:
            os.write(fd, chunk)
            n += len(chunk)
    finally:
        os.close(fd)
    return n


def _raw_read(path: Path, bufsize: int = MiB) -> int:
    n = 0
    buf = bytearray(bufsize)
    with open(path, "rb", buffering=0) as f:
        while k := f.readinto(buf):
            n += k
    return n


def _best(runs: int, fn: Callable[[], int]) -> tuple[float, int]:
    """Fastest of ``runs`` runs: (seconds, bytes)."""
    best = float("inf")
    n = 0
    for _ in range(runs):
        t = time.perf_counter()
        n = fn()
        best = min(best, time.perf_counter() - t)
    return best, n


def _cmd(args: list[str]) -> Callable[[], int]:
    def run() -> int:
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
        return 0
    return run


def _row(label: str, seconds: float, nbytes: int, base: float | None) -> str:
    rate = nbytes / seconds / MB
    ratio = f"{rate / base:6.2f}x" if base else "  base "
    return f"  {label:<44} {rate:9.0f} MB/s  {ratio}"


def _maxrss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 / (1024 if sys.platform == "darwin" else 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", type=Path, help="where to create the data (default: a temp dir)")
    p.add_argument("--big-mb", type=int, default=2000, help="size of the single file (MB)")
    p.add_argument("--files", type=int, default=1000, help="files in the zip")
    p.add_argument("--file-mb", type=float, default=1.0, help="size of each zipped file (MB)")
    p.add_argument("--runs", type=int, default=3, help="runs per measurement (best counts)")
    p.add_argument("--deflate", action="store_true", help="also time compress=true zips")
    p.add_argument("--no-upload", action="store_true", help="skip the upload measurement")
    p.add_argument("--quick", action="store_true", help="256 MB file, 200 files")
    p.add_argument("--keep", action="store_true", help="keep the data afterwards")
    a = p.parse_args()
    if a.quick:
        a.big_mb, a.files = 256, 200

    base_dir = a.dir or Path(tempfile.mkdtemp(prefix="cairn-bench-"))
    storage = LocalStorage(base_dir / "main")
    big_size = a.big_mb * MB
    file_size = int(a.file_mb * MB)
    block = os.urandom(16 * MiB)
    try:
        print(f"Preparing {a.big_mb} MB file and {a.files} x {a.file_mb} MB files "
              f"in {base_dir} ...", flush=True)
        big = storage.path("1/1/big")
        big_crc = _fill(big, big_size, block)
        members = []
        for i in range(a.files):
            loc = f"1/2/f{i:05d}"
            off = (i * 7919) % (len(block) - file_size) if file_size < len(block) else 0
            crc = _fill(storage.path(loc), file_size, block[off:off + file_size])
            members.append(ZipMember(f"ids/Facility/Inv/visit/Dataset/f{i:05d}.dat", loc,
                                     file_size, crc))
        small_paths = [str(storage.path(m.location)) for m in members]
        _cmd(["cat", str(big), *small_paths])()  # warm the page cache for everyone

        print(f"\nSingle file, {big_size / MB:.0f} MB (page-cached), best of {a.runs}:")
        t_cat, _ = _best(a.runs, _cmd(["cat", str(big)]))
        base = big_size / t_cat / MB
        print(_row("cat file > /dev/null", t_cat, big_size, None))
        t, n = _best(a.runs, lambda: _raw_read(big))
        print(_row("python readinto loop (1 MiB)", t, n, base))
        t, n = _best(a.runs, lambda: _to_devnull(storage.read("1/1/big")))
        assert n == big_size
        print(_row("LocalStorage.read -> /dev/null", t, n, base))

        z = StoredZip(members, storage)
        total = a.files * file_size
        print(f"\nZip of {a.files} files x {file_size / MB:g} MB = {total / MB:.0f} MB "
              f"(zip {z.length} bytes, known up front), best of {a.runs}:")
        t_cat, _ = _best(a.runs, _cmd(["cat", *small_paths]))
        base = total / t_cat / MB
        print(_row("cat all files > /dev/null", t_cat, total, None))
        t, n = _best(a.runs, lambda: _to_devnull(iter(z)))
        assert n == z.length
        print(_row("StoredZip (compress=false) -> /dev/null", t, n, base))
        half = z.length // 2
        t, n = _best(a.runs, lambda: _to_devnull(z.iter_range(half, z.length)))
        print(_row("StoredZip second half (Range resume)", t, n, base))
        if a.deflate:
            t, n = _best(1, lambda: _to_devnull(deflate_zip(members, storage)))
            print(_row("deflate_zip (compress=true), output bytes", t, total, base))

        if not a.no_upload:
            print(f"\nUpload of the {big_size / MB:.0f} MB file, best of {a.runs}:")
            dst = base_dir / "cp-copy"

            def cp() -> int:
                subprocess.run(["cp", str(big), str(dst)], check=True)
                fd = os.open(dst, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
                dst.unlink()
                return big_size

            t_cp, _ = _best(a.runs, cp)
            base = big_size / t_cp / MB
            print(_row("cp + fsync", t_cp, big_size, None))

            def put() -> int:
                r = storage.put("1/3/upload", storage.read("1/1/big"))
                assert r.crc32 == big_crc
                storage.delete("1/3/upload")
                return r.size

            t, n = _best(a.runs, put)
            print(_row("LocalStorage.put (CRC32, fsync, rename)", t, n, base))

        print(f"\nPeak RSS of this process: {_maxrss_mb():.1f} MB "
              f"(files total {(big_size + total) / MB:.0f} MB)")
    finally:
        if a.keep:
            print(f"Data kept in {base_dir}")
        else:
            shutil.rmtree(base_dir / "main", ignore_errors=True)
            if a.dir is None:
                shutil.rmtree(base_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
