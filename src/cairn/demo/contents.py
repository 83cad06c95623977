"""What the demo's datafiles contain: small, deterministic stand-ins, shaped by format.

Every datafile of the demo has real bytes, so ``getData``, zips, the download cart and
checksums can be tried. They are synthetic but look like their format at a glance:

- ``tiff``: a valid 8-bit greyscale TIFF (any image viewer opens it: dim detector noise);
- ``cbf``: a miniCBF header (the text part real detectors write) before binary counts;
- ``nexus``, ``hdf5``: a NeXus-style text outline of the file before binary counts, saying
  plainly that it is a stand-in (real HDF5 would need a library to write);
- ``mtz``: MTZ-style header records before binary reflections;
- ``ascii``: column data with a commented header; ``log``: an acquisition log.

A file is a function of its datafile id, name, format, target size, a salt drawn by the
generator, its time and its scan (beamline, investigation, dataset): the same demo gives the
same bytes on every machine. Binary bodies are slices of one pseudo-random pool and text
bodies slices of pre-formatted lines, so a file costs a header and a few slices however big
it is: making the 10,000 files of scale 1 takes a tenth of a second, writing them a second
or two.
"""

from __future__ import annotations

import math
import random
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

#: Length of the pools file bodies are cut from (a body longer than a pool repeats it).
POOL_SIZE = 1 << 20
_POOL_SEED = 20160201  # the demo's first user cycle: any fixed value would do
#: Byte -> byte making uniform noise look like a dim detector frame (counts 0-63).
_DIM = bytes(b >> 2 for b in range(256))

Chunk = bytes | memoryview


@dataclass(frozen=True)
class Scan:
    """What the files of one dataset share."""

    beamline: str
    technique: str
    investigation: str  # the investigation's folder, ``<name>-<visit>``
    dataset: str


@cache
def _noise() -> bytes:
    return random.Random(_POOL_SEED).randbytes(POOL_SIZE).translate(_DIM)


@cache
def _columns() -> tuple[bytes, tuple[int, ...]]:
    """Lines of ``x  counts  error``: a few Gaussian peaks on a background, with noise; and
    the offset of each line (text bodies start and end on line boundaries)."""
    rng = random.Random(_POOL_SEED + 1)
    peaks = [(rng.uniform(5, 65), rng.uniform(200, 5000), rng.uniform(0.05, 0.6))
             for _ in range(20)]
    lines, offsets, at = [], [], 0
    for i in range(12_000):
        x = 5 + i * 0.005
        y = 120 + 30 * rng.random() + sum(
            h * math.exp(-(((x - c) / w) ** 2)) for c, h, w in peaks if abs(x - c) < 4 * w)
        line = f"{x:10.4f} {y:12.2f} {y ** 0.5:9.3f}\n".encode()
        offsets.append(at)
        at += len(line)
        lines.append(line)
    return b"".join(lines), tuple(offsets)


def _slice(pool: bytes, start: int, n: int) -> list[Chunk]:
    """``n`` bytes of ``pool`` from ``start``, wrapping around: views, no copies."""
    view = memoryview(pool)
    out: list[Chunk] = []
    start %= len(pool)
    while n > 0:
        piece = view[start:start + n]
        out.append(piece)
        n -= len(piece)
        start = 0
    return out


def _text_body(salt: int, n: int) -> list[Chunk]:
    """Whole column lines, ``n`` bytes or a little more (to the end of the line reached)."""
    text, offsets = _columns()
    start = offsets[salt % len(offsets)]
    view = memoryview(text)
    out: list[Chunk] = []
    n = max(n, 1)
    while start + n > len(text):  # wrap around
        out.append(view[start:])
        n -= len(text) - start
        start = 0
    out.append(view[start:text.find(b"\n", start + n - 1) + 1])
    return out


def render(fmt: str, datafile_id: int, name: str, size: int, salt: int, when: datetime,
           scan: Scan) -> list[Chunk]:
    """The bytes of a demo datafile, as chunks: about ``size`` bytes (whole text lines,
    whole image rows, at least the header)."""
    size = max(size, 64)
    if fmt == "tiff":
        return _tiff(datafile_id, name, size, salt, when, scan)
    if fmt == "log":
        return [_log(datafile_id, name, size, salt, when, scan)]
    if fmt == "ascii":
        head = (f"# {scan.beamline} {scan.technique}: {scan.investigation}/{scan.dataset}/"
                f"{name}\n# datafile {datafile_id}, written {when:%Y-%m-%dT%H:%M:%S}, "
                "Cairn demo data (synthetic)\n#   two_theta       counts     error\n").encode()
        return [head, *_text_body(salt, size - len(head))]
    head = _HEADERS[fmt](datafile_id, name, when, scan).encode("latin-1")  # CBF's \xd5
    tail = _TAILS.get(fmt, b"")
    return [head, *_slice(_noise(), salt, max(size - len(head) - len(tail), 0)), tail]


def measure(chunks: Sequence[Chunk]) -> tuple[int, int]:
    """Size and CRC32 of a rendered file."""
    crc, n = 0, 0
    for c in chunks:
        crc = zlib.crc32(c, crc)
        n += len(c)
    return n, crc


def _nexus(datafile_id: int, name: str, when: datetime, scan: Scan) -> str:
    return (
        "Cairn demo stand-in for a NeXus/HDF5 file (not HDF5): this outline, then synthetic "
        f"counts.\nfile {name}, datafile {datafile_id}\n"
        "/entry1:NXentry\n"
        f"  title = \"{scan.investigation} {scan.dataset}\"\n"
        f"  start_time = \"{when:%Y-%m-%dT%H:%M:%S}\"\n"
        "  instrument:NXinstrument\n"
        f"    name = \"{scan.beamline}\"\n"
        "    source:NXsource\n"
        "      name = \"Lakeside Synchrotron Facility\"\n"
        "      type = \"Synchrotron X-ray Source\"\n"
        "  data:NXdata\n"
        f"    @signal = \"data\"\n    data = uint8[...] ({scan.technique})\n\n")


def _cbf(datafile_id: int, name: str, when: datetime, scan: Scan) -> str:
    return (
        "###CBF: VERSION 1.5, Cairn demo data (synthetic)\n\n"
        f"data_{name.rsplit('.', 1)[0]}\n\n_array_data.header_convention \"PILATUS_1.2\"\n"
        "_array_data.header_contents\n;\n"
        f"# Detector: LSF {scan.beamline} PAD, datafile {datafile_id}\n"
        f"# {when:%Y-%m-%dT%H:%M:%S.%f}\n"
        "# Pixel_size 172e-6 m x 172e-6 m\n# Silicon sensor, thickness 0.001000 m\n;\n\n"
        "_array_data.data\n;\n--CIF-BINARY-FORMAT-SECTION--\n"
        "Content-Type: application/octet-stream;\n"
        "Content-Transfer-Encoding: BINARY\n"
        "X-Binary-Element-Type: \"unsigned 8-bit integer\"\n\n\x0c\x1a\x04\xd5")


def _mtz(datafile_id: int, name: str, when: datetime, scan: Scan) -> str:
    return (
        "MTZ Cairn demo stand-in (not MTZ): header records, then synthetic reflections.\n"
        "VERS MTZ:V1.1\n"
        f"TITL {scan.investigation} {scan.dataset} {name} (datafile {datafile_id})\n"
        "NCOL        5\nCELL    78.9000   78.9000   37.1000   90.0000   90.0000   90.0000\n"
        "SYMINF   8  8  P 43 21 2\nCOLUMN H   H\nCOLUMN K   H\nCOLUMN L   H\n"
        "COLUMN F   F\nCOLUMN SIGF   Q\n"
        f"PROJECT {scan.beamline} {when:%Y-%m-%d}\nEND\n")


_HEADERS = {"nexus": _nexus, "hdf5": _nexus, "cbf": _cbf, "mtz": _mtz}
_TAILS = {"cbf": b"\n--CIF-BINARY-FORMAT-SECTION----\n;\n"}

_LOG_LINES = (
    "INFO  shutter open",
    "INFO  frame {k} collected",
    "INFO  frame {k} written",
    "DEBUG ring current {current:.1f} mA",
    "INFO  frame {k} collected",
    "WARN  beam intensity below 90 % for 0.{k3} s",
    "INFO  frame {k} written",
    "INFO  detector temperature {temp:.2f} C",
)


def _log(datafile_id: int, name: str, size: int, salt: int, when: datetime,
         scan: Scan) -> bytes:
    start = when - timedelta(minutes=20)
    lines = [f"# {scan.beamline} acquisition log {scan.investigation}/{scan.dataset}/{name}, "
             f"datafile {datafile_id}, Cairn demo data (synthetic)\n"]
    n, k = len(lines[0]), 0
    while n < size or k == 0:  # at least one entry
        t = start + timedelta(seconds=k * 3 + (salt >> (k % 16)) % 3)
        text = _LOG_LINES[(k + salt) % len(_LOG_LINES)].format(
            k=k // 2 + 1, k3=k % 10, current=299.0 + (salt + k) % 20 / 10,
            temp=-20.0 + (salt ^ k) % 50 / 100)
        line = f"{t.isoformat(' ', 'seconds')} {scan.beamline} {text}\n"
        lines.append(line)
        n += len(line)
        k += 1
    return "".join(lines).encode()


def _tiff(datafile_id: int, name: str, size: int, salt: int, when: datetime,
          scan: Scan) -> list[Chunk]:
    """A baseline TIFF: 8-bit greyscale, one strip, uncompressed, with a description."""
    description = (f"Cairn demo data (synthetic): {scan.beamline} {scan.investigation}/"
                   f"{scan.dataset}/{name}, datafile {datafile_id}, "
                   f"{when:%Y-%m-%dT%H:%M:%S}\0").encode()
    width = 1 << max(6, min(10, size.bit_length() // 2))  # 64 .. 1024 pixels wide
    entries = 13
    ifd_end = 8 + 2 + entries * 12 + 4
    xres, yres, desc_at = ifd_end, ifd_end + 8, ifd_end + 16
    pixels_at = desc_at + len(description) + (desc_at + len(description)) % 2
    height = max(1, (size - pixels_at) // width)
    short, long_, ascii_, rational = 3, 4, 2, 5
    tags = ((256, short, 1, width), (257, long_, 1, height), (258, short, 1, 8),
            (259, short, 1, 1), (262, short, 1, 1),
            (270, ascii_, len(description), desc_at), (273, long_, 1, pixels_at),
            (277, short, 1, 1), (278, long_, 1, height), (279, long_, 1, width * height),
            (282, rational, 1, xres), (283, rational, 1, yres), (296, short, 1, 1))
    assert len(tags) == entries
    head = b"".join((b"II*\0", struct.pack("<IH", 8, entries),
                     *(struct.pack("<HHII", *t) for t in tags), struct.pack("<I", 0),
                     struct.pack("<IIII", 1, 1, 1, 1), description,
                     b"\0" * (pixels_at - desc_at - len(description))))
    return [head, *_slice(_noise(), salt, width * height)]
