"""HTTP byte ranges (RFC 9110 §13.1.5, §14) and strong ETags for downloads: pure functions.

What the download endpoints answer, for a body of known length:

- no ``Range`` (or a ``Range`` in another unit, or an ``If-Range`` that does not match the
  current ETag): ``200`` with the whole body;
- one satisfiable range (``bytes=a-b``, ``bytes=a-``, suffix ``bytes=-n``): ``206`` with
  ``Content-Range: bytes a-b/len``; a last position past the end is clamped, as the RFC says;
- a range starting at or past the end, or ``bytes=-0``: ``416`` with ``Content-Range:
  bytes */len``;
- several ranges: ``200`` with the whole body. The RFC lets a server ignore a multi-range
  request; download managers ask for one range at a time, and multipart/byteranges bodies
  would cost complexity nobody uses. (Documented choice.)
- a malformed ``bytes=`` header: BAD_PARAMETER (400), as ids.server answers anything it
  cannot parse, rather than the RFC's "ignore": a client that sends garbage learns so.
- an empty body: the ``Range`` is ignored (``200``, zero bytes) instead of ``416``, so a
  resume of an empty file is not an error.

ids.server's own form, ``bytes=N-``, is one of these; the answer now carries the
``Content-Range`` header ids.server omitted. For a body of unknown length (a compressed
zip) only that form can be honoured: see :func:`stream_offset`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from cairn.errors import bad_parameter

#: Longer Range headers are refused outright.
MAX_RANGE_HEADER = 1024
#: Positions with more digits than this are "past any end" (no bignum parsing of junk).
_MAX_DIGITS = 19
_HUGE = 1 << 64

_SPEC = re.compile(r"([0-9]*)-([0-9]*)", re.ASCII)
_OFFSET = re.compile(r"bytes=([0-9]+)-", re.ASCII)


@dataclass(frozen=True)
class ByteRange:
    """Bytes ``[start, end)`` of a body."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start

    def content_range(self, total: int) -> str:
        return f"bytes {self.start}-{self.end - 1}/{total}"


class RangeNotSatisfiable(Exception):
    """No byte of the body is in the requested range: answer 416."""


@dataclass(frozen=True)
class RangeAnswer:
    """Status, body span and headers of a download answer."""

    status: int  # 200, 206 or 416
    start: int
    end: int
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return self.end - self.start


def _position(digits: str) -> int:
    return _HUGE if len(digits) > _MAX_DIGITS else int(digits)


def _parse_spec(spec: str, header: str) -> tuple[int | None, int | None]:
    m = _SPEC.fullmatch(spec)
    if m is None or (not m.group(1) and not m.group(2)):
        raise bad_parameter(f"Bad Range header {header!r}: {spec!r} is not a byte range")
    first = _position(m.group(1)) if m.group(1) else None
    last = _position(m.group(2)) if m.group(2) else None
    if first is not None and last is not None and last < first:
        raise bad_parameter(f"Bad Range header {header!r}: {spec!r} ends before it starts")
    return first, last


def parse_range(header: str | None, length: int) -> ByteRange | None:
    """The one range of ``length`` bytes that ``header`` asks for; None = send everything.

    Raises BAD_PARAMETER for malformed headers and :class:`RangeNotSatisfiable` when the
    range lies outside the body.
    """
    if header is None:
        return None
    if len(header) > MAX_RANGE_HEADER:
        raise bad_parameter(f"Range header longer than {MAX_RANGE_HEADER} characters")
    unit, sep, rest = header.partition("=")
    if not sep:
        raise bad_parameter(f"Bad Range header {header!r}: expected bytes=first-last")
    if unit.strip().lower() != "bytes":
        return None  # RFC 9110: ignore range units we don't know
    specs = [s.strip() for s in rest.split(",")]
    parsed = [_parse_spec(s, header) for s in specs if s]
    if not parsed:
        raise bad_parameter(f"Bad Range header {header!r}: no range")
    if len(parsed) > 1 or length == 0:
        return None
    first, last = parsed[0]
    if first is None:  # suffix: the last `last` bytes
        assert last is not None
        if last == 0:
            raise RangeNotSatisfiable()
        return ByteRange(max(0, length - last), length)
    if first >= length:
        raise RangeNotSatisfiable()
    return ByteRange(first, length if last is None else min(last, length - 1) + 1)


def if_range_matches(if_range: str | None, etag: str | None) -> bool:
    """Whether an ``If-Range`` lets the ``Range`` apply: it must be our strong ETag. A weak
    tag or a date never matches (we send no Last-Modified), so the client gets the whole
    body instead of a splice of two versions."""
    if if_range is None:
        return True
    value = if_range.strip()
    return etag is not None and not value.startswith("W/") and value == etag


def plan_range(length: int, range_header: str | None = None, if_range: str | None = None,
               etag: str | None = None) -> RangeAnswer:
    """Status, span and headers for a body of ``length`` bytes (see the module doc).

    A 416 answer has no ``Content-Length``: its body is the endpoint's error text.
    """
    headers = {"Accept-Ranges": "bytes"}
    if etag is not None:
        headers["ETag"] = etag
    if not if_range_matches(if_range, etag):
        range_header = None
    try:
        r = parse_range(range_header, length)
    except RangeNotSatisfiable:
        headers["Content-Range"] = f"bytes */{length}"
        return RangeAnswer(416, 0, 0, headers)
    if r is None:
        headers["Content-Length"] = str(length)
        return RangeAnswer(200, 0, length, headers)
    headers["Content-Length"] = str(r.length)
    headers["Content-Range"] = r.content_range(length)
    return RangeAnswer(206, r.start, r.end, headers)


def stream_offset(range_header: str | None) -> int:
    """Offset to resume a body of unknown length (compressed zip) from.

    Only ids.server's form ``bytes=N-`` can be honoured without knowing the length: the
    stream is regenerated (it is deterministic) and its first N bytes skipped, answering 206
    without ``Content-Range`` as ids.server does. Other well-formed ranges are ignored (0:
    the whole body, 200); malformed ones are BAD_PARAMETER.
    """
    if range_header is None:
        return 0
    m = _OFFSET.fullmatch(range_header.strip())
    if m is not None:
        return _position(m.group(1))
    with contextlib.suppress(RangeNotSatisfiable):
        parse_range(range_header, _HUGE)  # raises BAD_PARAMETER for malformed headers
    return 0


def skip_bytes(chunks: Iterable[bytes], n: int) -> Iterator[bytes]:
    """``chunks`` without their first ``n`` bytes."""
    for chunk in chunks:
        if n >= len(chunk):
            n -= len(chunk)
            continue
        yield chunk[n:] if n else chunk
        n = 0


def make_etag(items: Iterable[Sequence[object]], **options: object) -> str:
    """A strong ETag from the identity of the content: an ordered list of tuples (datafile
    id, location, size, checksum, modTime, zip entry name...) plus options (zip, compress,
    layout version). Same inputs, same tag, in every process."""
    h = hashlib.sha256()
    h.update(json.dumps(options, sort_keys=True, default=str).encode("utf-8"))
    for item in items:
        h.update(b"\x1e")
        h.update(json.dumps(list(item), default=str, ensure_ascii=False).encode("utf-8"))
    return f'"{h.hexdigest()[:40]}"'
