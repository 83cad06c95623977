"""The generated WSDL/XSD agree structurally with the reference reconstruction.

The reference pair (``reference/data/icat-6.2-reconstructed.{wsdl,xsd}``) was checked against
python-icat 1.7.0 + suds; it is read at test time (found by :mod:`tests.reference`) and the
tests are a reported skip when it is absent.
"""

from __future__ import annotations

import json
from typing import Any

from lxml import etree

from cairn.schema import SCHEMA
from cairn.web.soap.entity_info import entity_info
from cairn.web.soap.wsdl import OPERATIONS, build_wsdl, build_xsd, wsdl_bytes, xsd_bytes
from tests.reference import reference_file

XS = "{http://www.w3.org/2001/XMLSchema}"
W = "{http://schemas.xmlsoap.org/wsdl/}"
WS = "{http://schemas.xmlsoap.org/wsdl/soap/}"


def _ref(name: str) -> etree._Element:
    return etree.parse(str(reference_file(f"data/{name}"))).getroot()


def _occurs(el: etree._Element) -> tuple[str | None, ...]:
    return (el.get("type"), el.get("minOccurs"), el.get("maxOccurs"), el.get("nillable"))


def _sequence(ct: etree._Element) -> list[tuple[Any, ...]]:
    seq = ct.find(f".//{XS}sequence")
    out: list[tuple[Any, ...]] = []
    for el in seq if seq is not None else []:
        if el.tag != f"{XS}element":
            continue
        nested = el.find(f"{XS}complexType")
        out.append((el.get("name"), *_occurs(el),
                    _sequence(nested) if nested is not None else None))
    return out


def _schema_index(schema: etree._Element) -> dict[str, Any]:
    return {
        "elements": {e.get("name"): e.get("type") for e in schema.findall(f"{XS}element")},
        "complex": {c.get("name"): (c.get("abstract"),
                                    (c.find(f".//{XS}extension").get("base")
                                     if c.find(f".//{XS}extension") is not None else None),
                                    _sequence(c))
                    for c in schema.findall(f"{XS}complexType")},
        "simple": {s.get("name"): sorted(v.get("value") for v in s.iter(f"{XS}enumeration"))
                   for s in schema.findall(f"{XS}simpleType")},
        "attrs": {k: v for k, v in schema.attrib.items()},
    }


def test_xsd_matches_reference() -> None:
    ref, ours = _schema_index(_ref("icat-6.2-reconstructed.xsd")), _schema_index(build_xsd())
    assert ours["attrs"] == ref["attrs"]
    assert ours["elements"] == ref["elements"]
    assert ours["simple"] == ref["simple"]
    assert sorted(ours["complex"]) == sorted(ref["complex"])
    for name, value in ref["complex"].items():
        assert ours["complex"][name] == value, name


def _wsdl_index(d: etree._Element) -> dict[str, Any]:
    return {
        "attrs": dict(d.attrib),
        "messages": {m.get("name"): [(p.get("name"), p.get("element")) for p in m]
                     for m in d.findall(f"{W}message")},
        "portType": {o.get("name"): [(c.tag, dict(c.attrib)) for c in o]
                     for o in d.find(f"{W}portType")},
        "binding": {o.get("name"): etree.tostring(o, method="c14n")
                    for o in d.find(f"{W}binding").findall(f"{W}operation")},
        "soapBinding": dict(d.find(f"{W}binding/{WS}binding").attrib),
        "service": (d.find(f"{W}service").get("name"), d.find(f"{W}service/{W}port").attrib),
    }


def test_wsdl_matches_reference() -> None:
    address = "https://localhost:8181/ICATService/ICAT"
    ref, ours = _wsdl_index(_ref("icat-6.2-reconstructed.wsdl")), _wsdl_index(build_wsdl(address))
    for key in ("attrs", "messages", "portType", "soapBinding", "service"):
        assert ours[key] == ref[key], key
    assert sorted(ours["binding"]) == sorted(ref["binding"])
    imp = build_wsdl(address).find(f"{W}types/{XS}schema/{XS}import")
    assert imp.get("schemaLocation") == address + "?xsd=1"
    assert build_wsdl(address).find(f"{W}service/{W}port/{WS}address").get("location") == address


def test_documents_are_cached_and_parse() -> None:
    assert xsd_bytes() is xsd_bytes()
    assert wsdl_bytes("http://h:1/ICATService/ICAT") is wsdl_bytes("http://h:1/ICATService/ICAT")
    etree.fromstring(xsd_bytes())
    etree.fromstring(wsdl_bytes("http://h:1/ICATService/ICAT"))


def test_every_entity_has_a_type() -> None:
    types = _schema_index(build_xsd())["complex"]
    for name in SCHEMA.entities:
        assert name[0].lower() + name[1:] in types
    assert set(OPERATIONS) <= set(types)


def test_entity_info_matches_reference() -> None:
    path = reference_file("data/icat-6.2-entities.json")
    ref = json.loads(path.read_text())["entities"]
    assert set(ref) == {*SCHEMA.entities, "Parameter", "EntityBaseBean"}
    for name, r in ref.items():
        info = entity_info(name)
        assert info.comment == r["classComment"], name
        assert info.key == tuple(r["constraint"]), name
        want = {f["name"]: (f["relType"], f["type"], f["notNullable"], f.get("stringLength"),
                            f.get("comment")) for f in r["fields"]}
        got = {f.name: (f.rel, f.type, f.not_nullable, f.length, f.comment) for f in info.fields}
        assert got == want, name
