"""``cairn export`` and ``cairn import``: dumps on the command line, on the catalogue itself
(not over HTTP), as the first root user, with a progress bar on standard error (a line
every few seconds when it is not a terminal)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

from cairn.errors import IcatError

#: Seconds between plain progress lines when standard error is not a terminal.
PLAIN_EVERY = 5.0


class Progress:
    """``done`` of ``total`` (or of an unknown total), redrawn in place on a terminal at
    most ten times a second, else written as a line every :data:`PLAIN_EVERY` seconds."""

    def __init__(self, what: str, total: int | None, unit: str,
                 stream: IO[str] | None = None) -> None:
        self.what = what
        self.total = total
        self.unit = unit
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self.shown = 0.0
        self.drawn = False

    def __call__(self, done: int, note: str = "") -> None:
        now = time.monotonic()
        if now - self.shown < (0.1 if self.tty else PLAIN_EVERY):
            return
        self.shown = now
        self._show(done, note, now)

    def _text(self, done: int, note: str, now: float) -> str:
        rate = done / max(now - self.started, 1e-9)
        if self.total:
            share = min(done / self.total, 1.0)
            bar = "#" * int(share * 30)
            head = f"{self.what} [{bar:<30}] {share:4.0%} {_human(done)}/{_human(self.total)}"
        else:
            head = f"{self.what} {_human(done)}"
        return f"{head} {self.unit}, {_human(rate)}/s" + (f"  {note}" if note else "")

    def _show(self, done: int, note: str, now: float) -> None:
        text = self._text(done, note, now)
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
            self.drawn = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _human(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


class _Counting:
    """A binary stream that counts the bytes read from it (the import's progress)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)
        self.count += len(data)
        return data

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    @property
    def closed(self) -> bool:
        return bool(self.stream.closed)


def cmd_export(args: argparse.Namespace, open_catalogue: Callable[[], Any]) -> int:
    from cairn.port.exporter import Export

    catalogue = open_catalogue()
    user = catalogue.settings.catalogue.root_users[0]
    started = time.monotonic()
    bar = Progress("export", None, "rows")
    try:
        dump = Export(catalogue.as_system(read_only=True, user=user), args.query or (),
                      args.attributes == "ALL", progress=lambda n, table: bar(n, table)).open()
    except IcatError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 1
    with ExitStack() as stack:
        stack.callback(dump.close)
        bar.total = dump.count()
        if dump.empty:
            print("the queries found nothing to export", file=sys.stderr)
            return 1
        out: IO[bytes] = sys.stdout.buffer if args.file == "-" else \
            stack.enter_context(Path(args.file).open("wb"))
        try:
            for chunk in dump:
                out.write(chunk)
            out.flush()
        except IcatError as e:
            bar.finish()
            print(f"error: {e.message}", file=sys.stderr)
            return 1
    bar.finish()
    seconds = time.monotonic() - started
    where = "standard output" if args.file == "-" else args.file
    print(f"exported {dump.rows:,} rows of {len(dump.tables)} tables to {where} in "
          f"{seconds:.1f} s ({dump.rows / max(seconds, 1e-9):,.0f} rows/s)", file=sys.stderr)
    return 0


def cmd_import(args: argparse.Namespace, open_catalogue: Callable[[], Any]) -> int:
    from cairn.port.importer import Attributes, Duplicate, import_records
    from cairn.port.sniff import read_any

    catalogue = open_catalogue()
    user = catalogue.settings.catalogue.root_users[0]
    started = time.monotonic()
    with ExitStack() as stack:
        if args.file == "-":
            raw: IO[bytes] = sys.stdin.buffer
            size = None
        else:
            path = Path(args.file)
            if not path.is_file():
                print(f"error: no such file {args.file}", file=sys.stderr)
                return 2
            raw = stack.enter_context(path.open("rb"))
            size = path.stat().st_size
        counting = _Counting(raw)
        bar = Progress("import", size, "bytes")
        try:
            with catalogue.as_system(user=user) as work:
                report = import_records(
                    work, read_any(counting, catalogue.zone),  # type: ignore[arg-type]
                    Duplicate(args.duplicate), Attributes(args.attributes),
                    progress=lambda rows: bar(counting.count, f"{rows:,} rows"))
        except IcatError as e:
            bar.finish()
            print(f"error: {e.message}; nothing was imported", file=sys.stderr)
            return 1
    bar.finish()
    seconds = time.monotonic() - started
    print(f"imported {args.file}: {report.rows:,} rows ({report.summary()}) in "
          f"{seconds:.1f} s ({report.rows / max(seconds, 1e-9):,.0f} rows/s)",
          file=sys.stderr)
    return 0


def open_catalogue(args: argparse.Namespace) -> Any:
    """The configured catalogue, with the search index following what is written (as
    ``cairn demo`` has it)."""
    from cairn.config import load_settings
    from cairn.startup import open_catalogue as catalogue_of
    from cairn.startup import open_database, open_search

    settings = load_settings(args.config)
    db = open_database(settings)
    catalogue = catalogue_of(settings, db)
    open_search(settings, catalogue, db, None)
    return catalogue


def add_parsers(sub: Any, with_config: Callable[[argparse.ArgumentParser],
                                                 argparse.ArgumentParser]) -> None:
    """``cairn export`` and ``cairn import`` (``with_config`` adds ``--config``)."""
    ex = with_config(sub.add_parser(
        "export", help="write the catalogue (or what queries find) as an ICAT dump file"))
    ex.add_argument("file", metavar="FILE", help="the dump to write, - for standard output")
    ex.add_argument("--query", action="append", metavar="QUERY",
                    help="export the entities this query returns and what its INCLUDE "
                         "brings (repeatable); default: everything")
    ex.add_argument("--attributes", choices=["USER", "ALL"], default="USER",
                    type=str.upper, help="ALL adds createId, createTime, modId and modTime "
                                         "(default USER)")
    ex.set_defaults(func=lambda args: cmd_export(args, lambda: open_catalogue(args)))

    im = with_config(sub.add_parser(
        "import", help="write an ICAT dump (or python-icat XML/YAML file) into the catalogue, "
                       "all of it or nothing"))
    im.add_argument("file", metavar="FILE", help="the file to read, - for standard input")
    im.add_argument("--duplicate", choices=["THROW", "IGNORE", "CHECK", "OVERWRITE"],
                    default="THROW", type=str.upper,
                    help="a row whose natural key exists already: fail (THROW, default), "
                         "skip it (IGNORE), require it equal (CHECK) or update it (OVERWRITE)")
    im.add_argument("--attributes", choices=["USER", "ALL"], default="USER", type=str.upper,
                    help="ALL takes createId, createTime, modId and modTime from the file "
                         "(default USER: the importer and now)")
    im.set_defaults(func=lambda args: cmd_import(args, lambda: open_catalogue(args)))
