"""One function per SOAP operation: read the wrapper's children, call the core, build returns.

Each function gets a :class:`Call` and answers either a list of ``return`` elements or, for
``search``, a :class:`Stream` of result values written in chunks. Everything here runs in a
worker thread (the core is synchronous).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from lxml import etree

from cairn.authz import Access
from cairn.catalogue.objects import Obj
from cairn.catalogue.service import API_VERSION, Catalogue
from cairn.errors import IcatError, bad_parameter
from cairn.schema import SCHEMA
from cairn.web.soap.entity_info import entity_info
from cairn.web.soap.envelope import (
    children,
    elements,
    format_double,
    localname,
    parse_bean,
    parse_int,
    text,
    text_element,
    value_element,
)


@dataclass
class Call:
    catalogue: Catalogue
    args: dict[str, list[etree._Element]]
    ip: str | None

    @property
    def zone(self) -> ZoneInfo:
        return self.catalogue.zone

    def el(self, name: str) -> etree._Element | None:
        found = self.args.get(name)
        # A repeated single-valued element: JAXB keeps the last one.
        return found[-1] if found else None

    def string(self, name: str) -> str | None:
        return text(self.el(name))

    @property
    def sid(self) -> str | None:
        return self.string("sessionId")

    def bean(self) -> Obj:
        el = self.el("bean")
        if el is None:
            raise bad_parameter("bean is not set")
        return parse_bean(el, self.zone)

    def beans(self) -> list[Obj]:
        out = []
        for i, el in enumerate(self.args.get("beans", [])):
            try:
                out.append(parse_bean(el, self.zone))
            except IcatError as e:
                raise e.at(i) from None
        return out


@dataclass
class Stream:
    """Result values to be written as ``return`` elements while they are serialised."""

    values: Iterable[Any]


Result = list[etree._Element] | Stream


def _texts(values: Iterable[str | None]) -> list[etree._Element]:
    return [text_element("return", v) for v in values]


def _none(call: Call) -> Result:
    return []


# -- sessions -----------------------------------------------------------------------------------


def login(call: Call) -> Result:
    creds: dict[str, str] = {}
    cred_el = call.el("credentials")
    if cred_el is not None:
        for entry in elements(cred_el):
            if localname(entry) != "entry":
                continue
            kv = children(entry)
            key = text(kv["key"][-1]) if kv.get("key") else None
            if key is not None:
                value = text(kv["value"][-1]) if kv.get("value") else None
                creds[key] = value or ""
    sid = call.catalogue.login(call.string("plugin"), creds, call.ip)
    return _texts([sid])


def logout(call: Call) -> Result:
    call.catalogue.logout(call.sid)
    return []


def refresh(call: Call) -> Result:
    call.catalogue.refresh(call.sid)
    return []


def get_user_name(call: Call) -> Result:
    return _texts([call.catalogue.session(call.sid).user])


def get_remaining_minutes(call: Call) -> Result:
    minutes = call.catalogue.session(call.sid).remaining_minutes
    return _texts([format_double(float(minutes))])


def get_properties(call: Call) -> Result:
    props = call.catalogue.root_properties(call.sid)
    return _texts(f"{key} {value}" for key, value in props.items())


# -- service information ------------------------------------------------------------------------


def get_api_version(call: Call) -> Result:
    return _texts([API_VERSION])


def get_entity_names(call: Call) -> Result:
    return _texts(SCHEMA.entity_names)


def get_entity_info(call: Call) -> Result:
    info = entity_info(call.string("beanName"))
    ret = etree.Element("return")
    if info.comment is not None:
        ret.append(text_element("classComment", info.comment))
    if info.key:
        # Only when there is a key: python-icat fails on an empty <constraints/>.
        c = etree.SubElement(ret, "constraints")
        for name in info.key:
            c.append(text_element("fieldNames", name))
    for f in info.fields:
        fe = etree.SubElement(ret, "fields")
        if f.comment is not None:
            fe.append(text_element("comment", f.comment))
        fe.append(text_element("name", f.name))
        fe.append(text_element("notNullable", "true" if f.not_nullable else "false"))
        fe.append(text_element("relType", f.rel))
        if f.length is not None:
            fe.append(text_element("stringLength", str(f.length)))
        fe.append(text_element("type", f.type))
    return [ret]


def get_authenticator_info(call: Call) -> Result:
    out = []
    for a in call.catalogue.properties()["authenticators"]:
        ret = etree.Element("return")
        ret.append(text_element("admin", "true" if a.get("admin") else "false"))
        if a.get("friendly"):
            ret.append(text_element("friendly", a["friendly"]))
        for key in a.get("keys", []):
            k = etree.SubElement(ret, "keys")
            k.append(text_element("hide", "true" if key.get("hide") else "false"))
            k.append(text_element("name", key.get("name")))
            if key.get("pattern"):
                k.append(text_element("pattern", key["pattern"]))
        ret.append(text_element("mnemonic", a["mnemonic"]))
        out.append(ret)
    return out


# -- reading ------------------------------------------------------------------------------------


def search(call: Call) -> Result:
    return Stream(call.catalogue.search(call.sid, call.string("query") or ""))


def get(call: Call) -> Result:
    raw = call.string("primaryKey")
    # primaryKey is a Java long: an absent element unmarshals to 0.
    key = parse_int(raw, "Long", "primaryKey") if raw is not None else None
    obj = call.catalogue.get(call.sid, call.string("query") or "", key or 0)
    return [value_element("return", obj, call.zone)]


# -- writing ------------------------------------------------------------------------------------


def create(call: Call) -> Result:
    return _texts([str(call.catalogue.create_tree(call.sid, call.bean()))])


def create_many(call: Call) -> Result:
    return _texts(str(i) for i in call.catalogue.create_trees(call.sid, call.beans()))


def update(call: Call) -> Result:
    call.catalogue.replace(call.sid, call.bean())
    return []


def delete(call: Call) -> Result:
    call.catalogue.delete_objects(call.sid, [call.bean()])
    return []


def delete_many(call: Call) -> Result:
    call.catalogue.delete_objects(call.sid, call.beans())
    return []


def is_access_allowed(call: Call) -> Result:
    raw = (call.string("accessType") or "").strip().upper()
    if raw not in Access.__members__:
        raise bad_parameter(f"accessType must be one of {', '.join(Access.__members__)}, "
                            f"not '{raw}'")
    call.catalogue.session(call.sid)  # a bad session is a SESSION fault, not a bad bean
    allowed = call.catalogue.access_allowed(call.sid, call.bean(), Access[raw])
    return _texts(["true" if allowed else "false"])


HANDLERS: dict[str, Callable[[Call], Result]] = {
    "login": login,
    "logout": logout,
    "refresh": refresh,
    "getUserName": get_user_name,
    "getRemainingMinutes": get_remaining_minutes,
    "getProperties": get_properties,
    "getApiVersion": get_api_version,
    "getVersion": get_api_version,
    "getEntityNames": get_entity_names,
    "getEntityInfo": get_entity_info,
    "getAuthenticatorInfo": get_authenticator_info,
    "search": search,
    "get": get,
    "create": create,
    "createMany": create_many,
    "update": update,
    "delete": delete,
    "deleteMany": delete_many,
    "isAccessAllowed": is_access_allowed,
    "dummy": _none,
}

#: Operations whose faults carry the index of the offending bean; for all others the offset
#: is -1 (python-icat maps that to None). delete goes through the list code in icat.server too.
OFFSET_OPERATIONS = {"createMany", "deleteMany", "delete"}
