"""The SOAP contract: operations, their parameters, and the WSDL/XSD generated from the schema.

icat.server's WSDL is what JAX-WS/JAXB derive from its Java classes. Cairn writes the same
document from :data:`cairn.schema.SCHEMA` plus the few Java-only facts listed here as data
(the operation signatures, the ``@XmlRootElement`` classes, the ``dummy`` method). The
entity part of the XSD follows JAXB's rules: one complex type per entity named after the class
with a lower-case first letter, extending ``entityBaseBean`` (or ``parameter``), whose sequence
holds the properties the class declares, alphabetically.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Literal

from lxml import etree

from cairn.authz import Access
from cairn.schema import SCHEMA, SYSTEM_FIELDS, Entity, Field

TNS = "http://icatproject.org"
XS = "http://www.w3.org/2001/XMLSchema"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
WSAM = "http://www.w3.org/2007/05/addressing/metadata"

#: Where icat.server (an EJB endpoint) answers; ``/icat/ICAT`` is the post-6.2 CDI address.
ENDPOINT = "/ICATService/ICAT"

Occurs = Literal["opt", "req", "list", "nillable-list"]


@dataclass(frozen=True)
class Part:
    """One element of a sequence: name, XSD type (``xs:`` or ``tns:`` prefixed), occurrence."""

    name: str
    type: str
    occurs: Occurs = "opt"


@dataclass(frozen=True)
class Operation:
    name: str
    request: tuple[Part, ...]
    response: Part | None  # the ``return`` element; None for void operations
    fault: bool = True


_SID = Part("sessionId", "xs:string")
_BEAN = Part("bean", "tns:entityBaseBean")
_BEANS = Part("beans", "tns:entityBaseBean", "list")
_QUERY = Part("query", "xs:string")


def _ret(type_: str, occurs: Occurs = "opt") -> Part:
    return Part("return", type_, occurs)


#: Arguments of icat.server's ``dummy`` method, which exists only to pull classes into the
#: schema (JAX-WS emits types reachable from a signature). Kept for WSDL fidelity.
DUMMY_ARGS = ("datafile", "datafileFormat", "datafileParameter", "dataset", "datasetParameter",
              "datasetType", "facility", "facilityCycle", "instrumentScientist", "user",
              "instrument", "investigation", "investigationType", "investigationUser", "keyword",
              "parameterType", "publication", "relatedDatafile", "sample", "sampleParameter",
              "shift", "study", "studyInvestigation", "studyStatus", "application", "job",
              "dataCollection", "dataCollectionParameter", "dataCollectionDataset",
              "dataCollectionDatafile", "grouping", "userGroup", "publicStep", "fieldSet")

#: The operations of icat.server 6.2's SOAP endpoint, in WSDL order (``dummy`` last).
OPERATIONS: dict[str, Operation] = {op.name: op for op in (
    Operation("create", (_SID, _BEAN), _ret("xs:long", "req")),
    Operation("createMany", (_SID, _BEANS), _ret("xs:long", "list")),
    Operation("delete", (_SID, _BEAN), None),
    Operation("deleteMany", (_SID, _BEANS), None),
    Operation("get", (_SID, _QUERY, Part("primaryKey", "xs:long", "req")),
              _ret("tns:entityBaseBean")),
    Operation("getApiVersion", (), _ret("xs:string")),
    Operation("getAuthenticatorInfo", (), _ret("tns:authenticatorInfo", "list")),
    Operation("getEntityInfo", (Part("beanName", "xs:string"),), _ret("tns:entityInfo")),
    Operation("getEntityNames", (), _ret("xs:string", "list")),
    Operation("getProperties", (_SID,), _ret("xs:string", "list")),
    Operation("getRemainingMinutes", (_SID,), _ret("xs:double", "req")),
    Operation("getUserName", (_SID,), _ret("xs:string")),
    Operation("getVersion", (), _ret("xs:string")),
    Operation("isAccessAllowed", (_SID, _BEAN, Part("accessType", "tns:accessType")),
              _ret("xs:boolean", "req")),
    # credentials is an anonymous complex type (a Java Map); see _credentials_element.
    Operation("login", (Part("plugin", "xs:string"), Part("credentials", "credentials", "req")),
              _ret("xs:string")),
    Operation("logout", (_SID,), None),
    Operation("refresh", (_SID,), None),
    Operation("search", (_SID, _QUERY), _ret("xs:anyType", "list")),
    Operation("update", (_SID, _BEAN), None),
    Operation("dummy", tuple(Part(f"arg{i}", f"tns:{t}") for i, t in enumerate(DUMMY_ARGS)),
              None, fault=False),
)}

#: Java classes annotated ``@XmlRootElement``: JAXB gives each a global element too.
ROOT_ELEMENTS = ("datafile", "datafileParameter", "dataset", "datasetParameter", "fieldSet",
                 "investigationParameter", "sampleParameter")

#: Non-entity complex types of the interface (Java beans of the manager package).
HELPER_TYPES: dict[str, tuple[Part, ...]] = {
    "fieldSet": (Part("fields", "xs:anyType", "nillable-list"),),
    "entityInfo": (Part("classComment", "xs:string"),
                   Part("constraints", "tns:constraint", "nillable-list"),
                   Part("fields", "tns:entityField", "nillable-list")),
    "constraint": (Part("fieldNames", "xs:string", "nillable-list"),),
    "entityField": (Part("comment", "xs:string"), Part("name", "xs:string"),
                    Part("notNullable", "xs:boolean", "req"), Part("relType", "tns:relType"),
                    Part("stringLength", "xs:int"), Part("type", "xs:string")),
    "authenticatorInfo": (Part("admin", "xs:boolean", "req"), Part("friendly", "xs:string"),
                          Part("keys", "tns:authenticatorCredentialKey", "nillable-list"),
                          Part("mnemonic", "xs:string")),
    "authenticatorCredentialKey": (Part("hide", "xs:boolean", "req"), Part("name", "xs:string"),
                                   Part("pattern", "xs:string")),
    "IcatException": (Part("message", "xs:string"), Part("offset", "xs:int", "req"),
                      Part("type", "tns:icatExceptionType")),
}

#: icat.server's IcatExceptionType constants in their Java declaration order.
EXCEPTION_TYPES = ("BAD_PARAMETER", "INTERNAL", "INSUFFICIENT_PRIVILEGES", "NO_SUCH_OBJECT_FOUND",
                   "OBJECT_ALREADY_EXISTS", "SESSION", "VALIDATION", "NOT_IMPLEMENTED")

#: Properties JAXB sees that getEntityInfo does not report: Rule has public getters/setters
#: for these server-derived values (input is ignored).
JAXB_EXTRA: dict[str, tuple[str, ...]] = {"Rule": ("attribute", "searchJPQL")}

#: XSD built-in type of each attribute type of the schema declaration.
XS_TYPES = {"String": "xs:string", "Date": "xs:dateTime", "Long": "xs:long",
            "Integer": "xs:int", "Double": "xs:double", "boolean": "xs:boolean"}


def type_name(name: str) -> str:
    """JAXB's type name for a Java class: the simple name with its first letter lower-cased."""
    return name[:1].lower() + name[1:]


#: Entity (and abstract Parameter) by WSDL type name, for reading ``xsi:type``.
ENTITY_BY_TYPE: dict[str, Entity] = {type_name(n): e for n, e in SCHEMA.entities.items()}


def simple_types() -> dict[str, tuple[str, ...]]:
    return {
        "accessType": tuple(a.value for a in (Access.READ, Access.UPDATE, Access.DELETE,
                                              Access.CREATE)),
        "icatExceptionType": EXCEPTION_TYPES,
        **{type_name(enum): tuple(values) for enum, values in SCHEMA.enums.items()},
        "relType": ("ATTRIBUTE", "MANY", "ONE"),
    }


def field_part(f: Field) -> Part:
    if f.is_many:
        return Part(f.name, "tns:" + type_name(f.type), "nillable-list")
    if f.is_one:
        return Part(f.name, "tns:" + type_name(f.type))
    if f.type in XS_TYPES:
        # Java primitives (boolean) can't be absent, so JAXB makes them required.
        return Part(f.name, XS_TYPES[f.type], "req" if f.type == "boolean" else "opt")
    return Part(f.name, "tns:" + type_name(f.type))


def own_fields(entity: Entity) -> list[Field]:
    """The fields the Java class itself declares (inherited Parameter fields excluded)."""
    inherited = SCHEMA.abstract[entity.extends].fields if entity.extends else {}
    return [f for f in entity.fields.values()
            if not f.system and f.name not in inherited
            and (not f.hidden or f.name in JAXB_EXTRA.get(entity.name, ()))]


def entity_parts(entity: Entity) -> list[Part]:
    return sorted((field_part(f) for f in own_fields(entity)), key=lambda p: p.name)


def base_parts() -> list[Part]:
    types = {"id": "Long", "createId": "String", "createTime": "Date", "modId": "String",
             "modTime": "Date"}
    return sorted((Part(n, XS_TYPES[types[n]]) for n in SYSTEM_FIELDS), key=lambda p: p.name)


# -- XSD ----------------------------------------------------------------------------------------


def _xs(tag: str) -> str:
    return f"{{{XS}}}{tag}"


def _sequence(parent: etree._Element, parts: tuple[Part, ...] | list[Part]) -> None:
    seq = etree.SubElement(parent, _xs("sequence"))
    for p in parts:
        if p.type == "credentials":
            _credentials_element(seq)
            continue
        el = etree.SubElement(seq, _xs("element"), name=p.name, type=p.type)
        if p.occurs == "nillable-list":
            el.set("nillable", "true")
        if p.occurs != "req":
            el.set("minOccurs", "0")
        if p.occurs in ("list", "nillable-list"):
            el.set("maxOccurs", "unbounded")


def _credentials_element(seq: etree._Element) -> None:
    """login's ``credentials``: JAXB's rendering of a ``Map<String, String>``."""
    cred = etree.SubElement(seq, _xs("element"), name="credentials")
    inner = etree.SubElement(etree.SubElement(cred, _xs("complexType")), _xs("sequence"))
    entry = etree.SubElement(inner, _xs("element"), name="entry", minOccurs="0",
                             maxOccurs="unbounded")
    kv = etree.SubElement(etree.SubElement(entry, _xs("complexType")), _xs("sequence"))
    for n in ("key", "value"):
        etree.SubElement(kv, _xs("element"), name=n, minOccurs="0", type="xs:string")


def _complex(schema: etree._Element, name: str, parts: tuple[Part, ...] | list[Part],
             base: str | None = None, abstract: bool = False) -> None:
    ct = etree.SubElement(schema, _xs("complexType"), name=name)
    if abstract:
        ct.set("abstract", "true")
    if base is None:
        _sequence(ct, parts)
    else:
        ext = etree.SubElement(etree.SubElement(ct, _xs("complexContent")), _xs("extension"),
                               base=base)
        _sequence(ext, parts)


def build_xsd() -> etree._Element:
    schema = etree.Element(_xs("schema"), nsmap={"tns": TNS, "xs": XS}, version="1.0",
                           targetNamespace=TNS)
    etree.SubElement(schema, _xs("element"), name="IcatException", type="tns:IcatException")
    for op in OPERATIONS.values():
        for n in (op.name, op.name + "Response"):
            etree.SubElement(schema, _xs("element"), name=n, type=f"tns:{n}")
    for n in ROOT_ELEMENTS:
        etree.SubElement(schema, _xs("element"), name=n, type=f"tns:{n}")
    for op in OPERATIONS.values():
        _complex(schema, op.name, op.request)
        _complex(schema, op.name + "Response", (op.response,) if op.response else ())
    _complex(schema, "entityBaseBean", base_parts(), abstract=True)
    for name, entity in SCHEMA.abstract.items():
        _complex(schema, type_name(name), entity_parts(entity), base="tns:entityBaseBean",
                 abstract=True)
    for name, entity in SCHEMA.entities.items():
        base = "tns:" + type_name(entity.extends) if entity.extends else "tns:entityBaseBean"
        _complex(schema, type_name(name), entity_parts(entity), base=base)
    for name, parts in HELPER_TYPES.items():
        _complex(schema, name, parts)
    for name, values in simple_types().items():
        st = etree.SubElement(schema, _xs("simpleType"), name=name)
        r = etree.SubElement(st, _xs("restriction"), base="xs:string")
        for v in values:
            etree.SubElement(r, _xs("enumeration"), value=v)
    return schema


@cache
def xsd_bytes() -> bytes:
    return etree.tostring(build_xsd(), xml_declaration=True, encoding="UTF-8", pretty_print=True)


# -- WSDL ---------------------------------------------------------------------------------------


def _w(tag: str) -> str:
    return f"{{{WSDL}}}{tag}"


def _ws(tag: str) -> str:
    return f"{{{WSDL_SOAP}}}{tag}"


def build_wsdl(address: str) -> etree._Element:
    """The WSDL for an endpoint at ``address`` (absolute URL of ``/ICATService/ICAT``)."""
    d = etree.Element(_w("definitions"), nsmap={None: WSDL, "tns": TNS, "xsd": XS,
                                                "soap": WSDL_SOAP, "wsam": WSAM},
                      targetNamespace=TNS, name="ICATService")
    stub = etree.SubElement(etree.SubElement(d, _w("types")), _xs("schema"))
    # A separate, imported schema document: suds cannot find the anonymous ``credentials``
    # element when the schema is inlined as the only <types> schema.
    etree.SubElement(stub, _xs("import"), namespace=TNS, schemaLocation=f"{address}?xsd=1")
    for op in OPERATIONS.values():
        for n in (op.name, op.name + "Response"):
            msg = etree.SubElement(d, _w("message"), name=n)
            etree.SubElement(msg, _w("part"), name="parameters", element=f"tns:{n}")
    fault = etree.SubElement(d, _w("message"), name="IcatException")
    etree.SubElement(fault, _w("part"), name="fault", element="tns:IcatException")

    port_type = etree.SubElement(d, _w("portType"), name="ICAT")
    action = f"{TNS}/ICAT/"
    for op in OPERATIONS.values():
        o = etree.SubElement(port_type, _w("operation"), name=op.name)
        etree.SubElement(o, _w("input"), {f"{{{WSAM}}}Action": f"{action}{op.name}Request",
                                          "message": f"tns:{op.name}"})
        etree.SubElement(o, _w("output"), {f"{{{WSAM}}}Action": f"{action}{op.name}Response",
                                           "message": f"tns:{op.name}Response"})
        if op.fault:
            etree.SubElement(o, _w("fault"), {
                "message": "tns:IcatException", "name": "IcatException",
                f"{{{WSAM}}}Action": f"{action}{op.name}/Fault/IcatException"})

    binding = etree.SubElement(d, _w("binding"), name="ICATPortBinding", type="tns:ICAT")
    etree.SubElement(binding, _ws("binding"), transport="http://schemas.xmlsoap.org/soap/http",
                     style="document")
    for op in OPERATIONS.values():
        o = etree.SubElement(binding, _w("operation"), name=op.name)
        etree.SubElement(o, _ws("operation"), soapAction="")
        for io in ("input", "output"):
            etree.SubElement(etree.SubElement(o, _w(io)), _ws("body"), use="literal")
        if op.fault:
            f = etree.SubElement(o, _w("fault"), name="IcatException")
            etree.SubElement(f, _ws("fault"), name="IcatException", use="literal")

    service = etree.SubElement(d, _w("service"), name="ICATService")
    port = etree.SubElement(service, _w("port"), name="ICATPort", binding="tns:ICATPortBinding")
    etree.SubElement(port, _ws("address"), location=address)
    return d


@lru_cache(maxsize=32)
def wsdl_bytes(address: str) -> bytes:
    return etree.tostring(build_wsdl(address), xml_declaration=True, encoding="UTF-8",
                          pretty_print=True)
