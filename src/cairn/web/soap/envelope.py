"""SOAP 1.1 envelopes: read requests leniently and safely, write responses and faults as Metro.

Reading follows what JAXB accepts from real clients (suds, zeep, gSOAP): any namespace
prefixes and, for the wrapper's children, any namespace; unknown elements ignored; the last of
repeated single-valued elements wins; empty booleans are false; dates with or without a time,
an offset and fractional digits; unknown enum constants become null. Only the top-level bean
carries ``xsi:type``: nested objects take their type from the parent's field.

Parsing is safe: the body is capped in size, DTDs are refused (so no entity expansion), nothing
is fetched from the network.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from lxml import etree

from cairn.catalogue.objects import Obj
from cairn.errors import ErrorType, IcatError, bad_parameter
from cairn.schema import SCHEMA, Entity, Field
from cairn.web.soap.wsdl import (
    ENTITY_BY_TYPE,
    SOAP_ENV,
    TNS,
    XS,
    XSI,
    base_parts,
    entity_parts,
    type_name,
)

#: Largest request body accepted. A createMany of 10,000 datafiles is about 5 MB.
MAX_REQUEST_BYTES = 32 * 1024 * 1024

_XSI_TYPE = f"{{{XSI}}}type"
_XSI_NIL = f"{{{XSI}}}nil"
_INT_RANGES = {"Integer": (-(2**31), 2**31 - 1), "Long": (-(2**63), 2**63 - 1)}


class ClientFault(IcatError):
    """A request that is not a usable SOAP call (faultcode ``Client``)."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorType.BAD_PARAMETER, message)


# -- parsing ------------------------------------------------------------------------------------

_local = threading.local()


def _parser() -> etree.XMLParser:
    # lxml parser objects must not be shared between threads.
    p = getattr(_local, "parser", None)
    if p is None:
        p = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                            huge_tree=False, remove_comments=True, remove_pis=True)
        _local.parser = p
    return p


def localname(el: etree._Element) -> str:
    return etree.QName(el).localname


def elements(el: etree._Element) -> Iterator[etree._Element]:
    for child in el:
        if isinstance(child.tag, str):
            yield child


def parse_envelope(body: bytes) -> tuple[str, etree._Element]:
    """The operation name and its wrapper element, or a :class:`ClientFault`."""
    if not body.strip():
        raise ClientFault("Empty request: a SOAP 1.1 envelope was expected")
    try:
        doc = etree.fromstring(body, _parser()).getroottree()
    except etree.XMLSyntaxError as e:
        raise ClientFault(f"Malformed XML: {e.msg}") from None
    if doc.docinfo.doctype or doc.docinfo.internalDTD is not None:
        raise ClientFault("A SOAP message must not contain a Document Type Declaration")
    env = doc.getroot()
    if env.tag != f"{{{SOAP_ENV}}}Envelope":
        raise ClientFault(f"Not a SOAP 1.1 envelope: root element is {env.tag}")
    body_el = next((c for c in elements(env) if c.tag == f"{{{SOAP_ENV}}}Body"), None)
    if body_el is None:
        raise ClientFault("The SOAP envelope has no Body")
    wrapper = next(elements(body_el), None)
    if wrapper is None:
        raise ClientFault("The SOAP Body is empty: no operation given")
    return localname(wrapper), wrapper


def children(wrapper: etree._Element) -> dict[str, list[etree._Element]]:
    out: dict[str, list[etree._Element]] = {}
    for c in elements(wrapper):
        out.setdefault(localname(c), []).append(c)
    return out


def is_nil(el: etree._Element) -> bool:
    return el.get(_XSI_NIL, "").strip() in ("true", "1")


def text(el: etree._Element | None) -> str | None:
    if el is None or is_nil(el):
        return None
    return el.text or ""


def parse_bool(value: str) -> bool:
    # An unset primitive boolean arrives as an empty element; JAXB reads that as false.
    return value.strip().lower() in ("true", "1")


def parse_int(value: str, kind: str, where: str) -> int | None:
    v = value.strip()
    if not v:
        return None
    try:
        n = int(v.lstrip("+"))
    except ValueError:
        raise bad_parameter(f"{where}: '{v}' is not an integer") from None
    lo, hi = _INT_RANGES[kind]
    if not lo <= n <= hi:
        raise bad_parameter(f"{where}: {n} is out of range")
    return n


def parse_double(value: str, where: str) -> float | None:
    v = value.strip()
    if not v:
        return None
    try:
        d = float(v)
    except ValueError:
        raise bad_parameter(f"{where}: '{v}' is not a number") from None
    if not math.isfinite(d):
        raise bad_parameter(f"{where}: {v} cannot be stored")
    return d


_DATE = re.compile(
    r"(-?\d{4,})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?", re.IGNORECASE)


def parse_date(value: str, zone: ZoneInfo, where: str) -> datetime | None:
    """xs:dateTime or xs:date; without an offset the value is in the server's zone."""
    v = value.strip()
    if not v:
        return None
    m = _DATE.fullmatch(v)
    if not m:
        raise bad_parameter(f"{where}: '{v}' is not a date")
    y, mo, d, h, mi, s, frac, off = m.groups()
    try:
        dt = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0),
                      int((frac or "0")[:6].ljust(6, "0")))
    except ValueError:
        raise bad_parameter(f"{where}: '{v}' is not a date") from None
    if off is None:
        return dt.replace(tzinfo=zone)
    if off.upper() == "Z":
        return dt.replace(tzinfo=UTC)
    sign = -1 if off[0] == "-" else 1
    digits = off[1:].replace(":", "")
    delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
    return dt.replace(tzinfo=timezone(sign * delta))


def parse_attribute(entity: Entity, f: Field, el: etree._Element, zone: ZoneInfo) -> Any:
    raw = text(el)
    if raw is None:
        return None
    where = f"{entity.name}.{f.name}"
    match f.type:
        case "String":
            return raw
        case "boolean":
            return parse_bool(raw)
        case "Long" | "Integer":
            return parse_int(raw, f.type, where)
        case "Double":
            return parse_double(raw, where)
        case "Date":
            return parse_date(raw, zone, where)
        case enum:
            # JAXB unmarshals an unknown constant to null rather than failing.
            v = raw.strip()
            allowed = SCHEMA.enums[enum]
            return v if v in allowed else (v.upper() if v.upper() in allowed else None)


def entity_of(el: etree._Element) -> Entity:
    """The entity named by a bean's ``xsi:type`` (any prefix; the type or entity name)."""
    t = el.get(_XSI_TYPE)
    if not t:
        raise bad_parameter(f"{localname(el)} has no xsi:type: the entity type is not known")
    name = t.rpartition(":")[2].strip()
    entity = ENTITY_BY_TYPE.get(name) or SCHEMA.lookup_ci(name)
    if entity is None:
        raise bad_parameter(f"{name} is not an ICAT entity")
    return entity


def _reference(entity: Entity, el: etree._Element) -> Obj:
    """A many-to-one value: only its id matters (suds also sends e.g. ``<complete/>``)."""
    ident = None
    for c in elements(el):
        if localname(c) == "id":
            raw = text(c)
            ident = parse_int(raw, "Long", f"{entity.name}.id") if raw is not None else None
    return Obj(entity=entity, id=ident)


def parse_bean(el: etree._Element, zone: ZoneInfo, entity: Entity | None = None) -> Obj:
    """An entity element (and the new objects in its MANY lists) as an :class:`Obj`."""
    entity = entity or entity_of(el)
    obj = Obj(entity=entity)
    for c in elements(el):
        name = localname(c)
        if name == "id":
            raw = text(c)
            obj.id = parse_int(raw, "Long", f"{entity.name}.id") if raw is not None else None
            continue
        f = entity.field(name)
        if f is None or f.system:
            continue  # unknown elements and server-set fields are ignored
        if f.is_attribute:
            obj.values[name] = parse_attribute(entity, f, c, zone)
        elif f.is_one:
            obj.ones[name] = None if is_nil(c) else _reference(SCHEMA.entities[f.type], c)
        elif not is_nil(c):
            obj.manys.setdefault(name, []).append(parse_bean(c, zone, SCHEMA.entities[f.type]))
    return obj


# -- writing ------------------------------------------------------------------------------------

ENVELOPE_HEAD = (f'<?xml version="1.0" encoding="UTF-8"?><S:Envelope xmlns:S="{SOAP_ENV}">'
                 "<S:Body>").encode()
ENVELOPE_TAIL = b"</S:Body></S:Envelope>"


def response_head(op: str) -> bytes:
    return (ENVELOPE_HEAD + f'<ns2:{op}Response xmlns:ns2="{TNS}" xmlns:xsi="{XSI}" '
            f'xmlns:xs="{XS}">'.encode())


def response_tail(op: str) -> bytes:
    return f"</ns2:{op}Response>".encode() + ENVELOPE_TAIL


def format_date(d: datetime, zone: ZoneInfo) -> str:
    """As Metro prints a java.util.Date: milliseconds only when non-zero, always an offset."""
    d = d.astimezone(zone) if d.tzinfo else d.replace(tzinfo=zone)
    s = d.strftime("%Y-%m-%dT%H:%M:%S")
    if d.microsecond // 1000:
        s += f".{d.microsecond // 1000:03d}"
    off = d.utcoffset() or timedelta(0)
    if not off:
        return s + "Z"
    minutes = int(off.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{s}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def format_double(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "INF" if v > 0 else "-INF"
    return repr(v)


def scalar_text(v: Any, zone: ZoneInfo) -> tuple[str, str]:
    """(xsi:type, text) of a plain value, as in single-item and fieldSet search results."""
    if isinstance(v, bool):
        return "xs:boolean", "true" if v else "false"
    if isinstance(v, int):
        return "xs:long", str(v)
    if isinstance(v, float | Decimal):
        return "xs:double", format_double(float(v))
    if isinstance(v, datetime):
        return "xs:dateTime", format_date(v, zone)
    return "xs:string", str(v)


def _layout(entity: Entity) -> tuple[Field, ...]:
    return _layout_of(entity.name)


@cache
def _layout_of(name: str) -> tuple[Field, ...]:
    """Fields in the order of the entity's XSD sequence: base type first, then its own."""
    entity = SCHEMA.entities[name]
    order = [p.name for p in base_parts()]
    if entity.extends:
        order += [p.name for p in entity_parts(SCHEMA.abstract[entity.extends])]
    order += [p.name for p in entity_parts(entity)]
    return tuple(entity.fields[n] for n in order
                 if n in entity.fields and not entity.fields[n].hidden)


def _attribute_text(f: Field, v: Any, zone: ZoneInfo) -> str:
    if f.type == "boolean":
        return "true" if v else "false"
    if f.type == "Date":
        return format_date(v, zone)
    if f.type == "Double":
        return format_double(float(v))
    return str(v)


def fill_entity(el: etree._Element, obj: Obj, zone: ZoneInfo) -> None:
    """Children of an entity element: set attributes, and the relations that were included."""
    sub = etree.SubElement
    for f in _layout(obj.entity):
        if f.name == "id":
            if obj.id is not None:
                sub(el, "id").text = str(obj.id)
        elif f.is_attribute:
            v = obj.values.get(f.name)
            if v is not None:
                set_text(sub(el, f.name), _attribute_text(f, v, zone))
        elif f.is_one:
            ref = obj.ones.get(f.name)
            if ref is not None:
                fill_entity(sub(el, f.name), ref, zone)
        else:
            for child in obj.manys.get(f.name, ()):
                fill_entity(sub(el, f.name), child, zone)


# Per ``return`` only xsi is declared; the ns2/xs prefixes in xsi:type values are those
# declared once on the response wrapper.
_NSMAP = {"xsi": XSI}


def set_text(el: etree._Element, s: str) -> None:
    try:
        el.text = s
    except ValueError:
        # Text XML cannot carry (control characters stored in the database).
        el.text = _INVALID_XML.sub("\ufffd", s)


_INVALID_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _fill_value(el: etree._Element, v: Any, zone: ZoneInfo) -> None:
    if v is None:
        el.set(_XSI_NIL, "true")
    elif isinstance(v, Obj):
        el.set(_XSI_TYPE, "ns2:" + type_name(v.entity.name))
        fill_entity(el, v, zone)
    elif isinstance(v, tuple | list):
        el.set(_XSI_TYPE, "ns2:fieldSet")
        for item in v:
            _fill_value(etree.SubElement(el, "fields"), item, zone)
    else:
        t, s = scalar_text(v, zone)
        el.set(_XSI_TYPE, t)
        set_text(el, s)


def value_element(tag: str, v: Any, zone: ZoneInfo) -> etree._Element:
    """A ``return`` element for any search result value: entity, fieldSet row or scalar."""
    el = etree.Element(tag, nsmap=_NSMAP)
    _fill_value(el, v, zone)
    return el


def serialise(el: etree._Element) -> bytes:
    return etree.tostring(el, encoding="UTF-8", xml_declaration=False)


def stream_response(op: str, values: Iterable[Any], zone: ZoneInfo,
                    batch: int = 200) -> Iterator[bytes]:
    """The response to ``op`` with one ``return`` per value, written in chunks."""
    yield response_head(op)
    chunk: list[bytes] = []
    for v in values:
        chunk.append(serialise(value_element("return", v, zone)))
        if len(chunk) >= batch:
            yield b"".join(chunk)
            chunk = []
    if chunk:
        yield b"".join(chunk)
    yield response_tail(op)


def simple_response(op: str, returns: Iterable[etree._Element] = ()) -> bytes:
    return response_head(op) + b"".join(serialise(r) for r in returns) + response_tail(op)


def text_element(tag: str, value: str | None) -> etree._Element:
    el = etree.Element(tag)
    if value is not None:
        set_text(el, value)
    return el


def fault(e: IcatError, client: bool = False) -> bytes:
    """A SOAP 1.1 Fault with icat.server's IcatException detail."""
    env = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"S": SOAP_ENV})
    f = etree.SubElement(etree.SubElement(env, f"{{{SOAP_ENV}}}Body"), f"{{{SOAP_ENV}}}Fault")
    etree.SubElement(f, "faultcode").text = "S:Client" if client else "S:Server"
    set_text(etree.SubElement(f, "faultstring"), e.message)
    exc = etree.SubElement(etree.SubElement(f, "detail"), f"{{{TNS}}}IcatException",
                           nsmap={"ns2": TNS})
    set_text(etree.SubElement(exc, "message"), e.message)
    etree.SubElement(exc, "offset").text = str(e.offset)
    etree.SubElement(exc, "type").text = e.type.value
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")
