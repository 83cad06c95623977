"""Which format an import file is in, from its first lines: icat.server's dump, or
python-icat's XML or YAML (:func:`read_any`)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import IO
from zoneinfo import ZoneInfo

from cairn.port.dumpfile import read_records
from cairn.port.icatdump import read_xml, read_yaml
from cairn.port.records import Record

#: Bytes looked at to decide.
HEAD = 64 * 1024


class _Prefixed(io.RawIOBase):
    """``head`` (already read) followed by the rest of ``stream``."""

    def __init__(self, head: bytes, stream: IO[bytes]) -> None:
        self.head = head
        self.stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.head:
            n = min(len(buffer), len(self.head))
            buffer[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.stream.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def kind_of(head: bytes) -> str:
    """"dump", "xml" or "yaml", from the start of a file: the first line that is neither
    empty nor a comment decides (a dump's is its version, 1.0)."""
    for raw in head.lstrip(b"\xef\xbb\xbf").splitlines():
        line = raw.strip()
        if not line or line.startswith(b"#"):
            continue
        if line.startswith(b"<"):
            return "xml"
        if line.startswith((b"%YAML", b"---")) or (b":" in line and not line[:1].isdigit()):
            return "yaml"
        return "dump"
    return "dump"


def read_any(stream: IO[bytes], zone: ZoneInfo) -> Iterator[Record]:
    """The records of an import file, whichever of the three formats it is in."""
    head = stream.read(HEAD)
    whole = io.BufferedReader(_Prefixed(head, stream))
    kind = kind_of(head)
    if kind == "xml":
        return read_xml(whole, zone)
    if kind == "yaml":
        return read_yaml(whole, zone)
    return read_records(whole, zone)
