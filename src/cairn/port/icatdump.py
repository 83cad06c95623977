"""python-icat's data files (``icatdump`` / ``icatingest``), XML and YAML, read into records.

Both hold chunks (XML ``<data>`` elements, YAML documents) of objects, each under a key:

- an object's key is its uniqueness constraint, spelt ``Dataset_investigation-(facility-
  (name-ESNF)_name-08100122=2DEF_visitId-1=2E1=2DP)_name-e201215`` (values quoted-printable
  style: ``=2D`` is ``-``), or, for an entity without one, a generic ``DataCollection_00000001``
  that only the same file can refer to;
- many-to-one fields refer to objects by key (XML ``<facility ref="Facility_name-ESNF"/>``,
  YAML ``facility: Facility_name-ESNF``); XML may also name the object by attributes
  (``<investigation name="x" visitId="1" facility.ref="..."/>``) and declare a key for an
  existing object (``<investigationRef id="inv" name="x" .../>``);
- one-to-many fields hold child objects inline (``<userGroups><user ref=.../></userGroups>``),
  which belong to the object they are in.

A key that spells a constraint becomes a :class:`Lookup`, a generic key a :class:`Label`;
child objects refer to their parent the same way. Memory holds one chunk at a time.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from datetime import date, datetime
from typing import IO, Any
from zoneinfo import ZoneInfo

from cairn.errors import bad_parameter
from cairn.port.records import Label, Lookup, Record, Ref
from cairn.port.values import BadValue, parse_timestamp
from cairn.schema import SCHEMA, Entity, Field

#: python-icat's attribute aliases (its AttrAlias).
ALIASES = {"group": "grouping", "dataCollectionParameters": "parameters"}


def entity_of(instance_name: str) -> Entity:
    """``dataset`` (python-icat's instance name, any case) -> Dataset."""
    entity = SCHEMA.lookup_ci(instance_name)
    if entity is None:
        raise bad_parameter(f"{instance_name} is not an ICAT entity")
    return entity


def field_of(entity: Entity, name: str) -> Field:
    f = entity.field(ALIASES.get(name, name))
    if f is None or f.system:
        raise bad_parameter(f"{name} is not a field of {entity.name}")
    return f


# -- keys ------------------------------------------------------------------------------------


def _unquote(text: str) -> str:
    out = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "=":
            try:
                out.append(int(text[i + 1:i + 3], 16))
            except ValueError:
                raise bad_parameter(f"bad quoting in key value {text!r}") from None
            i += 3
        else:
            out += text[i].encode()
            i += 1
    return out.decode("utf-8")


def _pairs(text: str) -> list[tuple[str, str, bool]]:
    """``a-1_b-(c-2)`` -> [(a, 1, False), (b, c-2, True)]."""
    out = []
    pos = 0
    while pos < len(text):
        dash = text.find("-", pos)
        if dash <= pos:
            raise bad_parameter(f"malformed key part {text!r}")
        name = text[pos:dash]
        if text[dash + 1:dash + 2] == "(":
            depth, i = 0, dash + 1
            for i in range(dash + 1, len(text)):
                depth += {"(": 1, ")": -1}.get(text[i], 0)
                if depth == 0:
                    break
            if depth:
                raise bad_parameter(f"unbalanced parentheses in key {text!r}")
            out.append((name, text[dash + 2:i], True))
            pos = i + 1
        else:
            end = text.find("_", dash + 1)
            end = len(text) if end < 0 else end
            out.append((name, text[dash + 1:end], False))
            pos = end
        if pos < len(text):
            if text[pos] != "_":
                raise bad_parameter(f"malformed key {text!r}")
            pos += 1
    return out


def key_ref(key: str, zone: ZoneInfo, entity: Entity | None = None) -> Ref:
    """The object a python-icat key names."""
    name, sep, rest = key.partition("_")
    if entity is None:
        entity = entity_of(name)
    if not sep or "-" not in rest:  # a generic key: an object of this file
        return Label(entity.name, key)
    return _lookup(entity, rest, zone)


def _lookup(entity: Entity, text: str, zone: ZoneInfo) -> Lookup:
    values: dict[str, Any] = {}
    for name, value, nested in _pairs(text):
        f = field_of(entity, name)
        if f.is_one:
            if not nested:
                raise bad_parameter(f"{entity.name}.{name} in a key needs (...)")
            values[name] = _lookup(SCHEMA.entities[f.type], value, zone)
        else:
            values[name] = typed(f, _unquote(value), zone)
    return Lookup.of(entity.name, values)


# -- values ----------------------------------------------------------------------------------


def typed(f: Field, value: Any, zone: ZoneInfo) -> Any:
    """A value as python-icat writes it (XML text, or YAML's own types) as ``f``'s type."""
    if value is None:
        return None
    kind = f.type
    try:
        if kind == "String":
            return str(value)
        if kind in ("Integer", "Long"):
            return int(value)
        if kind == "Double":
            return float(value)
        if kind == "boolean":
            if isinstance(value, bool):
                return value
            if str(value).lower() not in ("true", "false"):
                raise ValueError(f"true or false expected, not {value}")
            return str(value).lower() == "true"
        if kind == "Date":
            return _datetime(value, zone)
        names = {v.upper(): v for v in SCHEMA.enums[kind]}
        return names[str(value).upper()]
    except (ValueError, KeyError, BadValue) as e:
        raise bad_parameter(f"{f.entity}.{f.name}: {value!r} is not a {kind} ({e})") from None


def _datetime(value: Any, zone: ZoneInfo) -> datetime:
    """python-icat writes times in UTC (a time without zone is UTC to it)."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=ZoneInfo("UTC"))
        return aware.astimezone(zone).replace(tzinfo=None)
    if isinstance(value, date):
        return _datetime(datetime(value.year, value.month, value.day), zone)
    text = str(value).strip().replace(" ", "T", 1)
    if not (text.endswith("Z") or "+" in text[10:] or "-" in text[10:]):
        text += "Z"
    return parse_timestamp(text, zone)


# -- objects -----------------------------------------------------------------------------------


class _Objects:
    """Records of one object and the objects inside it (XML element or YAML mapping)."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self.aliases: dict[str, Ref] = {}  # XML <...Ref id="k"/> declarations
        self.counter = itertools.count(1)

    def ref(self, key: str, entity: Entity) -> Ref:
        return self.aliases.get(key) or key_ref(key, self.zone, entity)

    def own_ref(self, rec: Record, key: str | None) -> Ref:
        """How its children refer to an object: by its constraint when the record gives
        it, else by a label."""
        entity = rec.entity
        if entity.key and all(rec.values.get(k) is not None or rec.refs.get(k) is not None
                              for k in entity.key):
            return Lookup.of(entity.name, {k: rec.values[k] if k in rec.values else rec.refs[k]
                                           for k in entity.key})
        if rec.label is None:
            rec.label = key or f"#child-{next(self.counter)}"
        return Label(entity.name, rec.label)


class _Xml(_Objects):
    def records(self, stream: IO[bytes]) -> Iterator[Record]:
        from lxml import etree

        try:
            for _, data in etree.iterparse(stream, events=("end",), tag="data"):
                for elem in data:
                    if not isinstance(elem.tag, str):
                        continue  # comments
                    if elem.tag.endswith("Ref"):
                        entity = entity_of(elem.tag[:-3])
                        if elem.get("id"):
                            self.aliases[elem.get("id")] = self.element_ref(elem, entity)
                        continue
                    yield from self.element(elem, entity_of(elem.tag), elem.get("id"), None)
                data.clear()
        except etree.XMLSyntaxError as e:
            raise bad_parameter(f"The XML file is not well-formed: {e}") from None

    def element_ref(self, elem: Any, entity: Entity) -> Ref:
        key = elem.get("ref")
        if key:
            return self.ref(key, entity)
        values: dict[str, Any] = {}
        for attr, text in elem.attrib.items():
            if attr == "id":
                continue
            if attr.endswith(".ref"):
                f = field_of(entity, attr[:-4])
                values[f.name] = self.ref(text, SCHEMA.entities[f.type])
            else:
                f = field_of(entity, attr)
                values[f.name] = typed(f, text, self.zone)
        if not values:
            raise bad_parameter(f"line {elem.sourceline}: <{elem.tag}> names no object")
        return Lookup.of(entity.name, values)

    def element(self, elem: Any, entity: Entity, key: str | None,
                parent: tuple[str, Ref] | None) -> Iterator[Record]:
        values: dict[str, Any] = {}
        refs: dict[str, Ref | None] = {}
        children = []
        for sub in elem:
            if not isinstance(sub.tag, str):
                continue
            f = field_of(entity, sub.tag)
            if f.is_attribute:
                values[f.name] = typed(f, sub.text, self.zone)
            elif f.is_one:
                refs[f.name] = self.element_ref(sub, SCHEMA.entities[f.type])
            else:
                children.append((f, sub))
        if parent is not None:
            refs[parent[0]] = parent[1]
        where = f" at line {elem.sourceline}" + (f" ({key})" if key else "")
        rec = Record(entity, values, refs, key if not entity.key else None,
                     elem.sourceline or 0, where)
        me = self.own_ref(rec, key) if children else None  # before the record goes out
        yield rec
        if me is not None:
            for f, sub in children:
                assert f.mapped_by is not None
                yield from self.element(sub, SCHEMA.entities[f.type], None, (f.mapped_by, me))


class _Yaml(_Objects):
    def records(self, stream: IO[bytes]) -> Iterator[Record]:
        import yaml

        text = io.TextIOWrapper(stream, encoding="utf-8")
        try:
            for n, data in enumerate(yaml.safe_load_all(text), 1):
                if not data:
                    continue
                if not isinstance(data, dict):
                    raise bad_parameter(f"YAML document {n} is not a mapping of entities")
                chunk = {entity_of(name).name: objs for name, objs in data.items()}
                for name in SCHEMA.export_order:
                    for key in sorted(chunk.get(name) or {}):
                        yield from self.mapping(chunk[name][key], SCHEMA.entities[name], key,
                                                None, n)
        except yaml.YAMLError as e:
            raise bad_parameter(f"The YAML file cannot be read: {e}") from None
        finally:
            text.detach()

    def mapping(self, d: Any, entity: Entity, key: str | None, parent: tuple[str, Ref] | None,
                doc: int) -> Iterator[Record]:
        where = f" in {key or entity.name} (YAML document {doc})"
        if not isinstance(d, dict):
            raise bad_parameter(f"{entity.name} is not a mapping{where}")
        values: dict[str, Any] = {}
        refs: dict[str, Ref | None] = {}
        children: list[tuple[Field, Any]] = []
        for name, value in d.items():
            f = field_of(entity, name)
            if f.is_attribute:
                values[f.name] = typed(f, value, self.zone)
            elif f.is_one:
                refs[f.name] = None if value is None else self.ref(str(value),
                                                                   SCHEMA.entities[f.type])
            else:
                children.extend((f, child) for child in value or [])
        if parent is not None:
            refs[parent[0]] = parent[1]
        rec = Record(entity, values, refs, key if not entity.key else None, 0, where)
        me = self.own_ref(rec, key) if children else None  # before the record goes out
        yield rec
        if me is not None:
            for f, child in children:
                assert f.mapped_by is not None
                yield from self.mapping(child, SCHEMA.entities[f.type], None,
                                        (f.mapped_by, me), doc)


def read_xml(stream: IO[bytes], zone: ZoneInfo) -> Iterator[Record]:
    return _Xml(zone).records(stream)


def read_yaml(stream: IO[bytes], zone: ZoneInfo) -> Iterator[Record]:
    return _Yaml(zone).records(stream)
