"""A span of a local file, read from the event loop while its pages are in the page cache.

Single-file downloads from local storage spend most of their CPU copying bytes. Reading on a
thread of its own overlaps disk and network, but on a small machine the thread hand-offs and
the GIL ping-pong between reader and event loop cost more than the copy itself (measured:
about a third more CPU per GB, see docs/data-service.md). So a span is read on the event loop
when the bytes are already in memory, and on a worker thread only when they are not:

- :meth:`FileSpan.read_cached` returns the next chunk if its first and last bytes are in the
  page cache (asked with ``preadv2(RWF_NOWAIT)`` for one byte each), else None;
- :meth:`FileSpan.read` returns the next chunk, waiting for the disk if need be (worker
  thread); that read also starts the kernel's read-ahead of what follows, so the next
  chunks are usually cached by the time they are wanted.

The kernel reads ahead in order, so pages between two cached ends are cached too, short of
one being evicted in between: then that one read waits for the disk on the event loop, as
every read of nginx's (sendfile without aio threads) does. Exact checks cost more: a
non-blocking read of the whole chunk needs a zeroed bytearray and a copy to bytes, together
twice the read itself. Where ``RWF_NOWAIT`` is missing or refused (other systems, some
network file systems) every chunk goes through :meth:`read`.

Blocking methods (:meth:`open`, :meth:`read`, :meth:`close`) belong on a worker thread;
:meth:`read_cached` waits for nothing but the copy from memory.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from cairn.errors import internal

_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None) if hasattr(os, "preadv") else None
#: Chunks read on the event loop: large enough that the per-chunk work (two probes, one
#: ASGI message) is small next to the copy, small enough to stay in the CPU cache between
#: the read and the socket write.
CHUNK_SIZE = 512 << 10
#: Errors meaning "this file system can't answer RWF_NOWAIT": fall back to :meth:`read`.
_UNSUPPORTED = {errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS}


class FileSpan:
    """Bytes ``[start, end)`` of one local file, in chunks of at most ``chunk_size``."""

    def __init__(self, fd: int, start: int, end: int, chunk_size: int, name: str) -> None:
        self.fd: int | None = fd
        self.pos = start
        self.end = end
        self.chunk_size = chunk_size
        self.name = name
        self.nowait = _NOWAIT is not None
        self._probe = bytearray(1)
        #: Chunks read from the event loop / by a worker thread (logs and tests).
        self.cached_reads = 0
        self.disk_reads = 0

    @classmethod
    def open(cls, path: Path, start: int, end: int, chunk_size: int = CHUNK_SIZE,
             name: str | None = None) -> FileSpan:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        fadvise = getattr(os, "posix_fadvise", None)
        if fadvise is not None:  # a bigger read-ahead window
            with contextlib.suppress(OSError):
                fadvise(fd, start, 0, os.POSIX_FADV_SEQUENTIAL)
        return cls(fd, start, end, chunk_size, name or str(path))

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def read_cached(self) -> bytes | None:
        """The next chunk if it is in memory, without waiting for the disk; None if it may
        not be (then call :meth:`read` on a worker thread)."""
        if not self.nowait or self.fd is None or self.pos >= self.end:
            return None
        n = min(self.chunk_size, self.end - self.pos)
        try:
            for offset in (self.pos, self.pos + n - 1) if n > 1 else (self.pos,):
                if os.preadv(self.fd, [self._probe], offset, _NOWAIT) == 0:  # type: ignore[arg-type]
                    return None  # the file ends early: read() says so
        except BlockingIOError:
            return None
        except OSError as e:
            if e.errno not in _UNSUPPORTED:
                raise
            self.nowait = False
            return None
        data = os.pread(self.fd, n, self.pos)
        if not data:
            return None
        self.pos += len(data)
        self.cached_reads += 1
        return data

    def read(self) -> bytes:
        """The next chunk, waiting for the disk if need be (blocks)."""
        if self.fd is None:
            raise ValueError("read from a closed FileSpan")
        n = min(self.chunk_size, self.end - self.pos)
        if n <= 0:
            return b""
        data = os.pread(self.fd, n, self.pos)
        if not data:  # the file shrank since its size was taken: never send a short body
            raise internal(f"File at {self.name!r} changed size while being sent")
        self.pos += len(data)
        self.disk_reads += 1
        return data

    def close(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)
