"""The C allocator's share of the server's memory (glibc only; elsewhere these do nothing).

Python objects larger than 512 bytes, SQLite's pages and statements, and the drivers' buffers
come from ``malloc``. glibc gives new threads arenas of their own (up to 8 per core) and keeps
what is freed inside each for the threads allocating from it: under ``bench/soak.py`` (40
request threads) what malloc held grew ~1.2 MB a minute while the memory in use and Python's
objects stayed flat, the difference being free pieces scattered over 16 arenas
(``docs/security.md``, the soak). :func:`limit_arenas` lets threads share a few arenas, so
freed pieces are found again; :func:`trim` hands free pages back to the system
(``malloc_trim``, which also releases whole free pages in the middle of a heap, not only at
its end).
"""

from __future__ import annotations

import ctypes
import platform
from functools import cache

#: ``mallopt`` parameter number of the arena limit (glibc's ``M_ARENA_MAX``).
_M_ARENA_MAX = -8

#: Arenas ``cairn serve`` allows (glibc's default on this machine would be 16): as many as
#: the CPUs a Python process keeps busy at once, the GIL letting one thread run Python code.
ARENAS = 2


@cache
def _libc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None  # musl and others have neither call
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    return libc


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Let at most ``arenas`` malloc arenas be made from now on (arenas that exist stay);
    whether the C library took it."""
    libc = _libc()
    return libc is not None and libc.mallopt(_M_ARENA_MAX, arenas) == 1


def trim() -> bool:
    """Return malloc's free pages to the system (the GIL is released meanwhile); whether any
    memory was released."""
    libc = _libc()
    return libc is not None and libc.malloc_trim(0) == 1
