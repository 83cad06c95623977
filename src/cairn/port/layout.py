"""The header of a table block in icat.server's dump: which data column holds what.

``Dataset(complete:0,investigation(facility(name:1),name:2,visitId:3),name:4,?:5)``:

- ``field:n``: column n holds an attribute (or a system field: createId, createTime, modId,
  modTime);
- ``field(...)``: a many-to-one field, its object found by the values of the fields listed
  inside (attributes ``f:n`` and, nested, many-to-one fields of that object);
- ``field(?:n)``: the object is the one labelled by column n earlier in the same file;
- ``?:n`` at the top: column n labels this row, for rows of later tables to refer to.

Columns may be shared (``type(facility(name:0),name:3)`` reuses column 0). Export writes
icat.server's layout (:func:`export_layout`): a label column first for an entity without a
uniqueness constraint, the system fields with ``attributes=ALL``, then every attribute and
many-to-one field by name, each many-to-one by its target's constraint fields, by name.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

from cairn.errors import IcatError, bad_parameter
from cairn.schema import SCHEMA, Entity, Field

SYSTEM = ("createId", "createTime", "modId", "modTime")


@dataclass(frozen=True, slots=True)
class Column:
    """``name:n``: data column ``index`` holds the attribute ``field``."""

    field: Field
    index: int


@dataclass(frozen=True, slots=True)
class Reference:
    """``name(...)``: the many-to-one ``field``; its object is labelled by column ``label``,
    or has the values of ``items`` (columns of its attributes, references of its own)."""

    field: Field
    label: int | None
    items: tuple[Column | Reference, ...]

    @property
    def target(self) -> Entity:
        return SCHEMA.entities[self.field.type]

    def indexes(self) -> list[int]:
        """The data columns this reference reads, in header order."""
        if self.label is not None:
            return [self.label]
        out: list[int] = []
        for item in self.items:
            out.extend([item.index] if isinstance(item, Column) else item.indexes())
        return out

    def text(self) -> str:
        inner = f"?:{self.label}" if self.label is not None else ",".join(
            _item_text(i) for i in self.items)
        return f"{self.field.name}({inner})"


@dataclass(frozen=True, slots=True)
class TableLayout:
    entity: Entity
    #: ``?:n``: the column labelling each row.
    label: int | None
    items: tuple[Column | Reference, ...]

    @property
    def width(self) -> int:
        """Data columns a row must have."""
        top = [self.label] if self.label is not None else []
        for item in self.items:
            top.extend([item.index] if isinstance(item, Column) else item.indexes())
        return max(top, default=-1) + 1

    @property
    def columns(self) -> list[Column]:
        return [i for i in self.items if isinstance(i, Column)]

    @property
    def references(self) -> list[Reference]:
        return [i for i in self.items if isinstance(i, Reference)]

    def header(self) -> str:
        parts = ([f"?:{self.label}"] if self.label is not None else []) + [
            _item_text(i) for i in self.items]
        return f"{self.entity.name}({','.join(parts)})"


def _item_text(item: Column | Reference) -> str:
    return f"{item.field.name}:{item.index}" if isinstance(item, Column) else item.text()


# -- export: icat.server's layout ---------------------------------------------------------------


def dump_fields(entity: Entity) -> list[Field]:
    """Attributes and many-to-one fields a dump holds for ``entity``, by name."""
    return sorted((f for f in entity.fields.values()
                   if not (f.system or f.hidden or f.is_many)), key=lambda f: f.name)


def export_layout(entity: Entity, all_attributes: bool) -> TableLayout:
    return _export_layout(entity.name, all_attributes)


@cache
def _export_layout(name: str, all_attributes: bool) -> TableLayout:
    entity = SCHEMA.entities[name]
    counter = itertools.count()
    label = None if entity.key else next(counter)
    items: list[Column | Reference] = []
    if all_attributes:
        items += [Column(entity.fields[name], next(counter)) for name in SYSTEM]
    for f in dump_fields(entity):
        items.append(Column(f, next(counter)) if f.is_attribute else _key_reference(f, counter))
    return TableLayout(entity, label, tuple(items))


def _key_reference(f: Field, counter: Iterator[int]) -> Reference:
    """A reference by the target's uniqueness constraint (its fields by name), or by label
    when the target has none; ``counter`` numbers the columns of the whole header."""
    target = SCHEMA.entities[f.type]
    if not target.key:
        return Reference(f, next(counter), ())
    items: list[Column | Reference] = []
    for name in sorted(target.key):
        kf = target.fields[name]
        items.append(Column(kf, next(counter)) if kf.is_attribute
                     else _key_reference(kf, counter))
    return Reference(f, None, tuple(items))


# -- import: a header as written ----------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:([A-Za-z_$][A-Za-z0-9_$]*)|(\d+)|([(),:?]))")


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise bad_parameter(f"Unexpected character {text[pos]!r} at position {pos + 1} "
                                f"of the table header {text!r}")
        out.append(m.group(m.lastindex or 0))
        pos = m.end()
    return out


class _Header:
    """Recursive descent over the header's tokens; commas between items are optional, as
    icat.server's parser has them."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.pos = 0

    def fail(self, why: str) -> IcatError:
        return bad_parameter(f"{why} in the table header {self.text!r}")

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if tok is None:
            raise self.fail("Unexpected end" + (f" where {expected!r} belongs" if expected
                                                 else ""))
        if expected is not None and tok != expected:
            raise self.fail(f"{expected!r} expected, not {tok!r}")
        self.pos += 1
        return tok

    def number(self) -> int:
        tok = self.take()
        if not tok.isdigit():
            raise self.fail(f"A column number expected, not {tok!r}")
        return int(tok)

    def table(self) -> TableLayout:
        name = self.take()
        entity = SCHEMA.get(name)
        if entity is None:
            raise bad_parameter(f"{name} is not an ICAT entity")
        self.take("(")
        label, items = self.items(entity, top=True)
        if self.peek() is not None:
            raise self.fail(f"Unexpected {self.peek()!r} after the closing parenthesis")
        return TableLayout(entity, label, tuple(items))

    def items(self, entity: Entity, top: bool) -> tuple[int | None, list[Column | Reference]]:
        label: int | None = None
        items: list[Column | Reference] = []
        while self.peek() != ")":
            tok = self.take()
            if tok == "?":
                self.take(":")
                label = self.number()
            else:
                items.append(self.item(entity, tok, top))
            if self.peek() == ",":
                self.take()
        self.take(")")
        if not top and label is not None and items:
            raise self.fail(f"A reference to {entity.name} is either a label (?:n) or field "
                            "values, not both")
        if not top and label is None and not items:
            raise self.fail(f"Empty reference to {entity.name}")
        return label, items

    def item(self, entity: Entity, name: str, top: bool) -> Column | Reference:
        f = entity.fields.get(name)
        if f is None or f.hidden:
            raise bad_parameter(f"{name} is not a field of {entity.name}")
        if f.is_many:
            raise bad_parameter(f"{entity.name}.{name} is a one-to-many relationship: a dump "
                                "holds those objects as rows of their own table")
        if self.peek() == "(":
            if not f.is_one:
                raise self.fail(f"{entity.name}.{name} is an attribute, not a relationship")
            self.take()
            label, items = self.items(SCHEMA.entities[f.type], top=False)
            return Reference(f, label, tuple(items))
        self.take(":")
        if f.is_one:
            raise self.fail(f"{entity.name}.{name} is a relationship: name the fields of its "
                            f"object, as {name}(field:n)")
        return Column(f, self.number())


def parse_header(text: str) -> TableLayout:
    """A table header as written in a dump file; BAD_PARAMETER naming what is wrong."""
    return _Header(text).table()
