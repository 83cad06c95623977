"""icat.server's dump file ("ICAT dump", version 1.0), read into records.

The file is text, one line at a time::

    # ICAT Export file written by db/root      <- comments start with #
    1.0                                        <- the first other line: the version

    Facility(daysUntilRelease:0,description:1,fullName:2,name:3,url:4)
    90,NULL,"Lightsource","LSF",NULL           <- data lines, until an empty line

    Instrument(...)                            <- the next table block
    ...

A header (:mod:`cairn.port.layout`) says what each column of its data lines holds; values are
written as :mod:`cairn.port.values` says. Reading is streamed: one line in memory at a time.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator
from typing import IO, Any
from zoneinfo import ZoneInfo

from cairn.errors import ErrorType, IcatError
from cairn.port.layout import Column, Reference, TableLayout, parse_header
from cairn.port.records import Label, Lookup, Record, Ref
from cairn.port.values import BadValue, Splitter, Token, converter

VERSION = "1.0"


def preamble(user: str) -> str:
    return f"# ICAT Export file written by {user}\n{VERSION}\n"


def at_line(e: IcatError, line: int) -> IcatError:
    """icat.server's form: the message ends " at line n", the offset is n."""
    return IcatError(e.type, f"{e.message} at line {line}", line)


def _bad(message: str, line: int) -> IcatError:
    return IcatError(ErrorType.BAD_PARAMETER, f"{message} at line {line}", line)


def lines_of(stream: IO[bytes]) -> Iterator[tuple[int, str]]:
    """(line number, text without its end) of a UTF-8 byte stream; lines end with \\n, \\r\\n
    or \\r, as Java's readLine has them."""
    text = io.TextIOWrapper(stream, encoding="utf-8", newline=None)
    n = 0
    try:
        for n, line in enumerate(text, 1):
            yield n, line.rstrip("\n")
    except UnicodeDecodeError as e:
        raise _bad(f"The file is not UTF-8 text ({e.reason})", n + 1) from None
    finally:
        with contextlib.suppress(ValueError):  # closed by its owner already
            text.detach()  # the caller owns the stream: not closed with the wrapper


def read_records(stream: IO[bytes], zone: ZoneInfo) -> Iterator[Record]:
    """Every data line of a dump as a :class:`Record`, in file order."""
    lines = lines_of(stream)
    for n, raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line != VERSION:
            raise IcatError(ErrorType.VALIDATION, f"Version of file must be {VERSION} at "
                            f"line {n}", n)
        break
    else:
        raise IcatError(ErrorType.VALIDATION, "No version of file encountered")
    table: _Rows | None = None
    for n, raw in lines:
        line = raw.strip()
        if line.startswith("#"):
            continue
        if not line:
            table = None
        elif table is None:
            try:
                table = _Rows(parse_header(line), zone)
            except IcatError as e:
                raise at_line(e, n) from None
        else:
            yield table.record(line, n)


Build = Callable[[list[Token]], Any]
#: References remembered per table block: rows in a row name the same parents.
_REMEMBERED = 4096


class _Rows:
    """Turns the data lines of one table block into records; what each column means is
    worked out once, from the header."""

    def __init__(self, layout: TableLayout, zone: ZoneInfo) -> None:
        self.layout = layout
        self.width = layout.width
        self.split = Splitter()
        self.columns = [(c.field.name, c.index, converter(c.field, zone))
                        for c in layout.columns]
        self.references = [(r.field.name, self._remembered(r, self._reference(r, zone)))
                           for r in layout.references]

    @staticmethod
    def _remembered(ref: Reference, build: Build) -> Build:
        """The same reference object for the same column values: equal references are then
        built, hashed and compared once, not once per row."""
        at = ref.indexes()
        seen: dict[tuple[Token, ...], Any] = {}

        def remembered(tokens: list[Token]) -> Any:
            key = tuple([tokens[i] for i in at])
            try:
                return seen[key]
            except KeyError:
                if len(seen) >= _REMEMBERED:
                    seen.clear()
                value = seen[key] = build(tokens)
                return value

        return remembered

    def _reference(self, ref: Reference, zone: ZoneInfo) -> Build:
        """Tokens -> the Label or Lookup the reference names, or None (a NULL in any of its
        columns: icat.server stops at the first)."""
        target = ref.field.type
        if ref.label is not None:
            at = ref.label

            def label(tokens: list[Token]) -> Ref | None:
                token = tokens[at]
                return None if token is None else Label(target, token)

            return label
        parts: list[tuple[str, Build]] = []
        for item in ref.items:
            if isinstance(item, Column):
                parts.append((item.field.name, _column(item, zone)))
            else:
                parts.append((item.field.name, self._reference(item, zone)))

        def lookup(tokens: list[Token]) -> Ref | None:
            values = {}
            for name, build in parts:
                value = build(tokens)
                if value is None:
                    return None
                values[name] = value
            return Lookup.of(target, values)

        return lookup

    def record(self, line: str, n: int) -> Record:
        try:
            tokens = self.split(line)
        except BadValue as e:
            raise _bad(f"{self.layout.entity.name}: {e}", n) from None
        if len(tokens) < self.width:
            raise _bad(f"{self.layout.entity.name}: data column {len(tokens)} does not exist "
                       f"(the header names {self.width} columns)", n)
        values: dict[str, Any] = {}
        name = ""
        try:
            for name, i, convert in self.columns:
                values[name] = convert(tokens[i])
            refs = {}
            for name, build in self.references:
                refs[name] = build(tokens)
        except BadValue as e:
            raise _bad(f"{self.layout.entity.name}.{name}: {e}", n) from None
        label = None if self.layout.label is None else tokens[self.layout.label]
        return Record(self.layout.entity, values, refs, label, n)


def _column(column: Column, zone: ZoneInfo) -> Build:
    convert = converter(column.field, zone)
    at = column.index
    return lambda tokens: convert(tokens[at])
