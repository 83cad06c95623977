"""CRC32 and size of a byte stream, computed while it flows past.

ids.server stores ``Datafile.checksum`` as the CRC32 in lowercase hex without leading zeros
(Java's ``Long.toHexString(crc.getValue())``) and ``Datafile.fileSize`` as the byte count;
its ``put`` answer carries the same CRC32 as a decimal number.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

_HEX32 = re.compile(r"[0-9a-fA-F]{1,8}")


def crc32_hex(value: int) -> str:
    """``3d7a9c``, never ``003d7a9c``: the form ids.server writes to the catalogue."""
    return format(value & 0xFFFFFFFF, "x")


def parse_crc32_hex(checksum: str | None) -> int | None:
    """The CRC32 a catalogue checksum stands for, or None when it is not one.

    Anything that is not 1-8 hex digits (an MD5, a SHA-256, free text) is not a CRC32.
    """
    if checksum is None:
        return None
    text = checksum.strip()
    if not _HEX32.fullmatch(text):
        return None
    return int(text, 16)


@dataclass(frozen=True)
class PutResult:
    """What a storage put reports: the bytes stored and their CRC32."""

    size: int
    crc32: int

    @property
    def checksum(self) -> str:
        """The catalogue form of the CRC32 (unpadded lowercase hex)."""
        return crc32_hex(self.crc32)


class Crc32Counter:
    """Running CRC32 and byte count."""

    __slots__ = ("crc32", "size")

    def __init__(self) -> None:
        self.crc32 = 0
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self.crc32 = zlib.crc32(data, self.crc32)
        self.size += len(data)

    def result(self) -> PutResult:
        return PutResult(self.size, self.crc32)


def counted(chunks: Iterable[bytes], counter: Crc32Counter) -> Iterator[bytes]:
    """Pass ``chunks`` through unchanged, feeding each into ``counter``."""
    for chunk in chunks:
        counter.update(chunk)
        yield chunk


def crc32_of(chunks: Iterable[bytes]) -> PutResult:
    """Size and CRC32 of a whole stream (consumes it)."""
    counter = Crc32Counter()
    for chunk in chunks:
        counter.update(chunk)
    return counter.result()
