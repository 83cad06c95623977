"""What ``getData`` sends, decided without HTTP: body, status, headers, chunks.

The endpoint resolves and authorizes the selection, then::

    body = download_body(datasets, datafiles, storage, zip=..., compress=...)
    ans = answer(body, download_name(...), request.headers.get("Range"),
                 request.headers.get("If-Range"))
    -> respond with ans.status, ans.headers and ans.chunks (in a worker thread), or, when
       ans.file is set, read that span of a local file directly (cairn.ids.filespan).

Bodies: :class:`FileBody` (one datafile, not zipped), :class:`~cairn.ids.zipstream.StoredZip`
(``compress=false``: known length, ranges) and :class:`~cairn.ids.zipstream.DeflateZip`
(``compress=true``: unknown length, only ids.server's ``bytes=N-`` resume).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

from cairn.errors import internal
from cairn.ids.mapper import DfInfo, DsInfo, ZipMapper
from cairn.ids.ranges import if_range_matches, make_etag, plan_range, skip_bytes, stream_offset
from cairn.ids.storage import Storage
from cairn.ids.zipstream import DeflateZip, StoredZip, zip_members


class Body(Protocol):
    @property
    def length(self) -> int | None:
        """Exact size in bytes, or None for a stream of unknown length."""
        ...

    @property
    def etag(self) -> str: ...

    def __iter__(self) -> Iterator[bytes]: ...


class FileBody:
    """One datafile as it is in storage.

    Its length is the size in storage, not ``Datafile.fileSize`` (ids.server's pitfall: a
    wrong catalogue size breaks Content-Length); it costs one stat, or one HEAD on S3.
    """

    def __init__(self, df: DfInfo, storage: Storage) -> None:
        self.datafile = df
        self.storage = storage
        self.length: int | None = storage.size(df.location)
        self.etag = make_etag([(df.id, df.location, self.length, df.checksum, df.version)],
                              kind="file-1")

    @property
    def local_path(self) -> Path | None:
        return self.storage.local_path(self.datafile.location)

    def __iter__(self) -> Iterator[bytes]:
        assert self.length is not None
        return self.iter_range(0, self.length)

    def iter_range(self, start: int, end: int) -> Iterator[bytes]:
        return _exactly(self.storage.read(self.datafile.location, start, end), end - start,
                        self.datafile.location)


def _exactly(chunks: Iterator[bytes], want: int, location: str) -> Iterator[bytes]:
    got = 0
    try:
        for chunk in chunks:
            got += len(chunk)
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    if got != want:  # the file changed under us: abort rather than send a wrong length
        raise internal(f"File at {location!r} changed size while being sent")


def must_zip(investigation_ids: Sequence[int], dataset_ids: Sequence[int],
             datafile_ids: Sequence[int]) -> bool:
    """ids.server forces a zip for anything but exactly one datafile id."""
    return bool(investigation_ids or dataset_ids or len(datafile_ids) != 1)


def download_body(datasets: Mapping[int, DsInfo], datafiles: Iterable[DfInfo],
                  storage: Storage, *, zip: bool, compress: bool,
                  mapper: ZipMapper | None = None, catalogue_crc: bool = True) -> Body:
    """The body for a resolved selection (datafiles with a location only, hash stripped).

    Not zipped only for a single datafile (callers apply :func:`must_zip` first). Datafiles
    whose zip entry name repeats are left out as ids.server does.
    """
    files = list(datafiles)
    if not zip:
        if len(files) != 1:
            raise ValueError("an unzipped download is exactly one datafile")
        return FileBody(files[0], storage)
    members, _skipped = zip_members(datasets, files, mapper=mapper, storage=storage,
                                    catalogue_crc=catalogue_crc)
    if compress:
        return DeflateZip(members, storage)
    return StoredZip(members, storage)


def download_name(*, zip: bool, outname: str | None, datafile_name: str | None = None,
                  now: datetime | None = None) -> str:
    """File name offered to the client, by ids.server's rules: a zip is ``outname`` (plus
    ``.zip`` unless its extension is ``zip``) or the local time ``yyyy-MM-dd_HH-mm-ss.zip``;
    a single file is ``outname`` verbatim or the Datafile.name."""
    if zip:
        if outname is None:
            return (now or datetime.now()).strftime("%Y-%m-%d_%H-%M-%S") + ".zip"
        return outname if outname[outname.rfind(".") + 1:] == "zip" else outname + ".zip"
    if outname is not None:
        return outname
    if datafile_name is None:
        raise ValueError("a single-file download needs the datafile name")
    return datafile_name


_UNSAFE = re.compile(r'[^\x20-\x7e]|["\\]')


def content_disposition(filename: str) -> str:
    """``attachment; filename="..."`` as ids.server sends it, made safe: quotes and
    backslashes escaped, and for non-ASCII names an ASCII fallback plus RFC 6266's
    ``filename*`` with the UTF-8 name (which browsers prefer)."""
    if filename.isascii() and filename.isprintable():
        escaped = filename.replace("\\", "\\\\").replace('"', '\\"')
        return f'attachment; filename="{escaped}"'
    fallback = _UNSAFE.sub("_", filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@dataclass
class Answer:
    """A getData response, ready for any HTTP framework."""

    status: int  # 200, 206 or 416
    headers: dict[str, str]
    #: The body bytes (empty for 416); blocking: iterate in a worker thread.
    chunks: Iterator[bytes] = field(default_factory=lambda: iter(()))
    #: (path, start, end) when the body is that span of one local file: lets the server read
    #: it directly (:mod:`cairn.ids.filespan`) instead of iterating ``chunks``.
    file: tuple[Path, int, int] | None = None


def answer(body: Body, filename: str, range_header: str | None = None,
           if_range: str | None = None) -> Answer:
    """Status, headers and chunks of a download (see :mod:`cairn.ids.ranges` for the rules).

    Raises BAD_PARAMETER for a malformed Range header.
    """
    common = {"Content-Type": "application/octet-stream",
              "Content-Disposition": content_disposition(filename)}
    if body.length is None:
        # Unknown length: only `bytes=N-`, by regenerating and skipping (as ids.server).
        offset = stream_offset(range_header) if if_range_matches(if_range, body.etag) else 0
        headers = {**common, "Accept-Ranges": "bytes", "ETag": body.etag}
        if offset:
            return Answer(206, headers, skip_bytes(iter(body), offset))
        return Answer(200, headers, iter(body))
    plan = plan_range(body.length, range_header, if_range, body.etag)
    if plan.status == 416:
        return Answer(416, plan.headers)
    headers = {**common, **plan.headers}
    ranged = getattr(body, "iter_range", None)
    assert ranged is not None
    if isinstance(body, FileBody) and (path := body.local_path) is not None:
        # The server may sendfile instead: open the file only if chunks are iterated.
        return Answer(plan.status, headers, _lazy(ranged, plan.start, plan.end),
                      (path, plan.start, plan.end))
    return Answer(plan.status, headers, ranged(plan.start, plan.end))


def _lazy(ranged: Callable[[int, int], Iterator[bytes]], start: int, end: int
          ) -> Iterator[bytes]:
    yield from ranged(start, end)
