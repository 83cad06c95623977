"""Where a process keeps its unfinished work, named so that others can tell whose it is.

A put writes its bytes to a temporary file (or, on S3, a multipart upload) before the object
appears; a restore fetches an archive zip to the cache first; a put or a delete notes which
locations it is about to change in storage until the catalogue has committed. A process
killed in the middle leaves these behind. So every storage and the cache keep them under
``.cairn-tmp/<owner>/``, where ``<owner>`` is :func:`owner_token` of the process's name
(``cairn.jobs.process_name``: the name its job claims, dataset locks and presence row carry
in the catalogue database). Another process sees from those rows whether the owner is alive,
on any machine, and removes only what dead owners left (:mod:`cairn.ids.leftovers`).

``.cairn-tmp`` is reserved: no location may start with it, listings skip it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path

#: The folder of unfinished work at the top of a storage or cache folder.
SCRATCH = ".cairn-tmp"
_TOKEN = re.compile(r"[0-9a-f]{16}", re.ASCII)
#: Tries at making the folder and the file while other puts (or a sweep) remove empty ones.
_ATTEMPTS = 20


def owner_token(owner: str) -> str:
    """The short, file-name-safe form of a process name (host names may hold anything)."""
    return hashlib.sha256(owner.encode("utf-8")).hexdigest()[:16]


def is_token(name: str) -> bool:
    return _TOKEN.fullmatch(name) is not None


#: The token of storages nobody bound to a process (tools and tests): no presence row ever
#: names it, so other processes treat what it leaves as a dead process's.
UNBOUND = owner_token(f"unbound:{os.getpid()}:{uuid.uuid4().hex}")


class ScratchDir:
    """``<root>/.cairn-tmp/<token>/`` on a local file system: one process's temporary files."""

    def __init__(self, root: str | os.PathLike[str], token: str = UNBOUND) -> None:
        self.root = Path(root)
        self.token = token

    @property
    def base(self) -> Path:
        return self.root / SCRATCH

    @property
    def folder(self) -> Path:
        return self.base / self.token

    def temp_file(self, suffix: str = ".part") -> tuple[int, str]:
        """A new file in this process's folder, open for writing: (descriptor, path)."""
        for attempt in range(_ATTEMPTS):
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                return tempfile.mkstemp(prefix="", suffix=suffix, dir=self.folder)
            except (FileNotFoundError, FileExistsError):
                # A dead owner's folder removed at the same moment (only the parents are
                # shared), or pathlib's mkdir racing with a removal: try again.
                if attempt == _ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def create(self, name: str) -> int:
        """A new file ``name`` in this process's folder (replacing one of that name), open for
        writing: its descriptor."""
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"bad scratch file name {name!r}")
        for attempt in range(_ATTEMPTS):
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                return os.open(self.folder / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            except (FileNotFoundError, FileExistsError):
                if attempt == _ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def owners(self) -> set[str]:
        """Tokens with a folder here."""
        try:
            return {e.name for e in os.scandir(self.base) if is_token(e.name) and e.is_dir()}
        except (FileNotFoundError, NotADirectoryError):
            return set()

    def files(self, token: str) -> list[Path]:
        try:
            return sorted(p for p in (self.base / token).iterdir() if p.is_file())
        except (FileNotFoundError, NotADirectoryError):
            return []

    def remove(self, token: str) -> int:
        """Remove a (dead) owner's folder with everything in it; how many files went."""
        if not is_token(token) or token == self.token:
            raise ValueError(f"not a removable owner: {token!r}")
        folder = self.base / token
        n = sum(1 for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.base.rmdir()
        return n

    def tidy(self) -> None:
        """Remove this process's folder and ``.cairn-tmp`` while they are empty, so that
        finished work leaves the storage exactly as it was (rmdir never removes a file: a
        concurrent put of this process keeps its folder, or makes it again)."""
        for folder in (self.folder, self.base):
            try:
                folder.rmdir()
            except OSError:
                return
