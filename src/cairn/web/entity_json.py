"""Entities as icat.server's REST interface writes and reads them in JSON."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from cairn.catalogue.objects import Obj
from cairn.errors import IcatError, bad_parameter
from cairn.schema import SCHEMA, Entity, Field
from cairn.web.jsonresponse import encode

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def load_json(text: str | None, name: str) -> Any:
    if text is None:
        raise bad_parameter(f"{name} must not be null")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        msg = e.msg if isinstance(e, json.JSONDecodeError) else "nesting too deep"
        pos = f" at offset {e.pos}" if isinstance(e, json.JSONDecodeError) else ""
        raise bad_parameter(f"Badly formed JSON ({msg}{pos}) in json {_short(text)}") from None
    if _SURROGATE_ESCAPE.search(text):
        _check_characters(data, text)
    return data


#: ``\ud800``-``\udfff``: a JSON escape of half of a UTF-16 pair, valid only in pairs.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _check_characters(data: Any, text: str) -> None:
    """Refuse a lone surrogate (``"\\ud800"`` not followed by its other half): JSON's
    escapes allow it, but it is not a character, so no database and no response can hold
    it."""
    stack = [data]
    while stack:  # no recursion: json.loads accepted the nesting, so may we
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, str) and not v.isascii():
            try:
                v.encode("utf-8")
            except UnicodeEncodeError as e:
                raise bad_parameter(f"Badly formed JSON (a lone surrogate {v[e.start]!a} is "
                                    f"not a character) in json {_short(text)}") from None


# -- parsing ----------------------------------------------------------------------------------


def parse_date(value: str, zone: ZoneInfo) -> datetime:
    """ICAT's ``yyyy-MM-dd'T'HH:mm:ss.SSSXXX``; a value without zone is in the server's zone."""
    try:
        d = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError:
        raise bad_parameter(f"Badly formatted date {value}") from None
    return d if d.tzinfo else d.replace(tzinfo=zone)


def parse_id(entity: Entity, value: Any, offset: int = -1) -> int:
    """An entity's id as JSON gives it: an integer that fits ICAT's Long."""
    if isinstance(value, bool) or not isinstance(value, int) or \
            not INT64[0] <= value <= INT64[1]:
        raise bad_parameter(f"The id of {entity.name} must be an integer between {INT64[0]} "
                            f"and {INT64[1]}, not {_short(json.dumps(value))}", offset)
    return value


def _attribute(entity: Entity, f: Field, value: Any, zone: ZoneInfo) -> Any:
    if value is None:
        return None
    where = f"Field {f.name} of {entity.name}"
    match f.type:
        case "String":
            if not isinstance(value, str):
                raise bad_parameter(f"{where} must be a string")
            return value
        case "Long" | "Integer":
            lo, hi = INT32 if f.type == "Integer" else INT64
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise bad_parameter(f"{where} must be an integer between {lo} and {hi}")
            return value
        case "Double":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise bad_parameter(f"{where} must be a number")
            return float(value)
        case "boolean":
            if not isinstance(value, bool):
                raise bad_parameter(f"Field {f.name} must be true or false in {entity.name}")
            return value
        case "Date":
            if not isinstance(value, str):
                raise bad_parameter(f"{where} must be a date string such as "
                                    "2024-01-31T12:00:00.000Z")
            return parse_date(value, zone)
        case enum:
            allowed = SCHEMA.enums[enum]
            if isinstance(value, str) and value.upper() in allowed:
                return value.upper()
            raise bad_parameter(f"{where} must be one of {', '.join(allowed)}")


def parse_object(entity: Entity, data: Any, zone: ZoneInfo) -> Obj:
    """One entity's JSON object (the value inside the type wrapper) as an :class:`Obj`."""
    if not isinstance(data, dict):
        raise bad_parameter(f"The value of {entity.name} must be a JSON object, "
                            f"not {_short(json.dumps(data))}")
    obj = Obj(entity=entity)
    for key, value in data.items():
        if key == "id":
            obj.id = parse_id(entity, value)
            continue
        f = entity.field(key)
        if f is None:
            raise bad_parameter(f"Field {key} not found in {entity.name}")
        if f.system:
            raise bad_parameter(f"Field {key} of {entity.name} is set by the server and "
                                "cannot be written")
        if f.is_attribute:
            obj.values[key] = _attribute(entity, f, value, zone)
        elif f.is_one:
            if value is None:
                obj.ones[key] = None
                continue
            ref = parse_object(SCHEMA.entities[f.type], value, zone)
            if ref.id is None:
                raise bad_parameter(f"Many-to-one field {key} of {entity.name} must refer to an "
                                    f"existing object by its id: {_short(json.dumps(value))}")
            obj.ones[key] = ref
        else:
            if not isinstance(value, list):
                raise bad_parameter(f"One-to-many field {key} of {entity.name} must be an array")
            children = [parse_object(SCHEMA.entities[f.type], v, zone) for v in value]
            for child in children:
                if child.id is not None:
                    raise bad_parameter(f"Objects in one-to-many field {key} of {entity.name} "
                                        "are new and must not have an id")
            obj.manys[key] = children
    return obj


def unwrap(item: Any, text: str, index: int) -> tuple[Entity, Any]:
    """``{"Type": {...}}`` -> (entity, inner value), with icat.server's messages."""
    if isinstance(item, list):
        raise bad_parameter(f"Unexpected array found in JSON {_short(text)}", index)
    if not isinstance(item, dict) or len(item) != 1:
        raise bad_parameter("Entity must have one keyword followed by its values in json "
                            f"{_short(text)}", index)
    (name, inner), = item.items()
    entity = SCHEMA.get(name)
    if entity is None:
        raise bad_parameter(f"{name} is not an ICAT entity", index)
    return entity, inner


def items_of(data: Any) -> list[Any]:
    return data if isinstance(data, list) else [data]


def parse_entities(text: str | None, zone: ZoneInfo) -> list[Obj]:
    data = load_json(text, "entities")
    out = []
    for i, item in enumerate(items_of(data)):
        entity, inner = unwrap(item, text or "", i)
        try:
            out.append(parse_object(entity, inner, zone))
        except IcatError as e:
            raise e.at(i) from None
    return out


# -- rendering --------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def format_date(d: datetime, zone: ZoneInfo) -> str:
    """``yyyy-MM-dd'T'HH:mm:ss.SSS`` and the zone's offset (``Z`` for UTC). Cached: a result
    page repeats the same few timestamps (createTime, modTime) over and over."""
    d = d.astimezone(zone) if d.tzinfo else d.replace(tzinfo=zone)
    s = (f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:"
         f"{d.second:02d}.{d.microsecond // 1000:03d}")
    off = d.utcoffset()
    if not off:
        return s + "Z"
    minutes = int(off.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{s}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def scalar(value: Any, zone: ZoneInfo) -> Any:
    if isinstance(value, datetime):
        return format_date(value, zone)
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


Render = Callable[[Obj, ZoneInfo, dict[int, Any]], dict[str, Any]]

_RENDERERS: dict[str, tuple[Entity, Render]] = {}


def _renderer(entity: Entity) -> Render:
    """The entity's JSON writer, generated once (as dataclasses generates ``__init__``): the
    hottest code of a REST search, it runs for every object of every page, and straight-line
    code with constant keys is about twice as fast as a loop over the fields. Field names come
    from the schema declaration, so nothing from a request reaches the generated text.

    Fields in icat.server's order (id, system fields, then alphabetical); absent attributes
    and ONE relations left out; every MANY relation present, empty when not included. Dates
    are the only values that need formatting (orjson writes NaN and infinities as null).
    """
    hit = _RENDERERS.get(entity.name)
    if hit is not None and hit[0] is entity:
        return hit[1]
    lines = ["def render(obj, zone, seen):",
             "    values, ones, manys = obj.values, obj.ones, obj.manys",
             "    out = {} if obj.id is None else {'id': obj.id}"]
    for f in entity.api_fields:
        key = repr(f.name)
        if f.name == "id":
            continue
        if f.is_attribute:
            value = "format_date(v, zone)" if f.type == "Date" else "v"
            lines += [f"    v = values.get({key})",
                      f"    if v is not None: out[{key}] = {value}"]
        elif f.is_one:
            lines += [f"    v = ones.get({key})",
                      f"    if v is not None: out[{key}] = sub(v, zone, seen)"]
        else:
            lines += [f"    v = manys.get({key})",
                      f"    out[{key}] = [sub(c, zone, seen) for c in v] if v else []"]
    lines.append("    return out")
    scope: dict[str, Any] = {"format_date": format_date, "sub": render}
    exec("\n".join(lines), scope)
    fn: Render = scope["render"]
    _RENDERERS[entity.name] = (entity, fn)
    return fn


class Encoding(dict[int, Any]):
    """``seen`` for a response about to be encoded: an object met a second time is encoded
    to JSON once and shared as an :class:`orjson.Fragment` from then on (the parameter type
    of each of 2,000 parameters on a page: 1 MB of JSON encoded once per type, not 2,000
    times). Plain dicts elsewhere, so :func:`results` still returns data a test can compare."""


def render(obj: Obj, zone: ZoneInfo, seen: dict[int, Any] | None = None) -> Any:
    """The plain JSON object: system fields first, then the rest alphabetically.

    ``seen`` (object id -> its JSON) lets one response render an object reached many times
    (the type of every parameter, say) once; the object is the same each time, so is its JSON.
    With an :class:`Encoding` as ``seen``, an object met again comes back as a fragment.
    """
    if seen is None:
        seen = {}
    done = seen.get(id(obj))
    if done is not None:
        if type(done) is dict and type(seen) is Encoding:
            done = seen[id(obj)] = orjson.Fragment(encode(done))
        return done
    out = _renderer(obj.entity)(obj, zone, seen)
    seen[id(obj)] = out
    return out


def wrap(obj: Obj, zone: ZoneInfo, seen: dict[int, Any] | None = None) -> dict[str, Any]:
    return {obj.entity.name: render(obj, zone, seen)}


def result(value: Any, zone: ZoneInfo, seen: dict[int, Any] | None = None) -> Any:
    """One search result (§4.2): a wrapped entity, a scalar, or a row of several items."""
    if isinstance(value, Obj):
        return wrap(value, zone, seen)
    if isinstance(value, list | tuple):
        return [result(v, zone, seen) for v in value]
    return scalar(value, zone)


def results(values: list[Any], zone: ZoneInfo) -> list[Any]:
    """A whole search answer, each object rendered once however often it is included."""
    seen: dict[int, Any] = {}
    return [result(v, zone, seen) for v in values]


def results_json(values: list[Any], zone: ZoneInfo) -> bytes:
    """:func:`results` encoded, each object encoded once however often it is included."""
    seen = Encoding()
    return encode([result(v, zone, seen) for v in values])


def entity_json(obj: Obj, zone: ZoneInfo) -> bytes:
    """One wrapped entity and its includes, encoded."""
    return encode(wrap(obj, zone, Encoding()))
