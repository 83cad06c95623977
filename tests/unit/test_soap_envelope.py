"""Reading SOAP requests leniently and safely; writing results and faults as Metro does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from lxml import etree

from cairn.catalogue.objects import Obj
from cairn.errors import ErrorType, IcatError
from cairn.schema import SCHEMA
from cairn.web.soap.envelope import (
    ClientFault,
    children,
    fault,
    format_date,
    parse_bean,
    parse_date,
    parse_envelope,
    stream_response,
)

UTCZ = ZoneInfo("UTC")
ENV = "http://schemas.xmlsoap.org/soap/envelope/"


def envelope(inner: str, prefix: str = "ns0") -> bytes:
    return (f'<soapenv:Envelope xmlns:soapenv="{ENV}" '
            f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'xmlns:{prefix}="http://icatproject.org"><soapenv:Header/><soapenv:Body>'
            f"{inner}</soapenv:Body></soapenv:Envelope>").encode()


def bean(xml: str) -> Obj:
    _op, wrapper = parse_envelope(envelope(f"<x:create xmlns:x='http://icatproject.org'>"
                                          f"<sessionId>s</sessionId>{xml}</x:create>"))
    return parse_bean(children(wrapper)["bean"][-1], UTCZ)


def test_operation_and_children_by_local_name() -> None:
    op, wrapper = parse_envelope(envelope(
        "<ns7:search><sessionId>abc</sessionId><query>Dataset</query></ns7:search>", "ns7"))
    assert op == "search"
    args = children(wrapper)
    assert [e.text for e in args["sessionId"]] == ["abc"]


@pytest.mark.parametrize("body, message", [
    (b"", "Empty request"),
    (b"not xml at all", "Malformed XML"),
    (b"<a><b></a>", "Malformed XML"),
    (b"<Envelope/>", "Not a SOAP 1.1 envelope"),
    (f'<e:Envelope xmlns:e="{ENV}"/>'.encode(), "has no Body"),
    (f'<e:Envelope xmlns:e="{ENV}"><e:Body/></e:Envelope>'.encode(), "Body is empty"),
])
def test_malformed_envelopes(body: bytes, message: str) -> None:
    with pytest.raises(ClientFault, match=message):
        parse_envelope(body)


def test_dtd_and_entities_are_refused() -> None:
    laughs = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
              + b"".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">'.encode()
                         if i else b"" for i in range(1, 10))
              + f'<!ENTITY lol0 "lol">]><e:Envelope xmlns:e="{ENV}"><e:Body><getApiVersion>'
                f"&lol9;</getApiVersion></e:Body></e:Envelope>".encode())
    with pytest.raises(ClientFault):
        parse_envelope(laughs)
    external = (f'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                f'<e:Envelope xmlns:e="{ENV}"><e:Body><login><plugin>&x;</plugin></login>'
                f"</e:Body></e:Envelope>").encode()
    with pytest.raises(ClientFault, match="Document Type"):
        parse_envelope(external)


def test_bean_with_nested_children_and_references() -> None:
    obj = bean("""<bean xsi:type="ns0:investigation">
        <id>99</id><createId>evil</createId>
        <facility><id>1</id><name>ignored</name></facility>
        <type><id>2</id></type>
        <name>I1</name><title>first</title><title>second</title>
        <visitId>1</visitId><startDate>2010-05-06</startDate>
        <endDate>2020-01-02T03:04:05.123456789+02:00</endDate>
        <keywords><name>k1</name></keywords><keywords><name>k2</name></keywords>
        <unknownElement>whatever</unknownElement>
        </bean>""")
    assert obj.entity.name == "Investigation" and obj.id == 99
    assert "createId" not in obj.values
    assert obj.ones["facility"].id == 1 and obj.ones["facility"].values == {}
    assert obj.values["title"] == "second"  # repeated single value: the last wins
    assert obj.values["startDate"] == datetime(2010, 5, 6, tzinfo=UTCZ)
    assert obj.values["endDate"] == datetime(2020, 1, 2, 3, 4, 5, 123456,
                                             tzinfo=timezone(timedelta(hours=2)))
    assert [k.values["name"] for k in obj.manys["keywords"]] == ["k1", "k2"]


def test_empty_booleans_unknown_enums_and_nil() -> None:
    obj = bean("""<bean xsi:type="x:parameterType" xmlns:x="http://icatproject.org">
        <applicableToDataset/><applicableToDatafile>true</applicableToDatafile>
        <enforced>1</enforced><verified>false</verified>
        <valueType>NOT_A_TYPE</valueType><description xsi:nil="true"/>
        <minimumNumericValue>1e-30</minimumNumericValue></bean>""")
    assert obj.values["applicableToDataset"] is False
    assert obj.values["applicableToDatafile"] is True
    assert obj.values["enforced"] is True and obj.values["verified"] is False
    assert obj.values["valueType"] is None
    assert obj.values["description"] is None
    assert obj.values["minimumNumericValue"] == 1e-30
    study = bean('<bean xsi:type="ns0:study"><status>1</status><name>s</name></bean>')
    assert study.values["status"] is None
    study = bean('<bean xsi:type="ns0:study"><status>COMPLETE</status></bean>')
    assert study.values["status"] == "COMPLETE"


@pytest.mark.parametrize("text, expected", [
    ("2020-01-02", datetime(2020, 1, 2, tzinfo=UTCZ)),
    ("2020-01-02T03:04:05", datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTCZ)),
    ("2020-01-02T03:04:05Z", datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ("2020-01-02T03:04:05.1+00:00", datetime(2020, 1, 2, 3, 4, 5, 100000, tzinfo=UTC)),
    ("2020-01-02T03:04:05.123-05:30",
     datetime(2020, 1, 2, 3, 4, 5, 123000, tzinfo=timezone(-timedelta(hours=5, minutes=30)))),
    ("2020-01-02T03:04:05.123456", datetime(2020, 1, 2, 3, 4, 5, 123456, tzinfo=UTCZ)),
    (" 2020-01-02T03:04 ", datetime(2020, 1, 2, 3, 4, tzinfo=UTCZ)),
])
def test_dates(text: str, expected: datetime) -> None:
    assert parse_date(text, UTCZ, "x") == expected


@pytest.mark.parametrize("text", ["yesterday", "2020-13-01", "2020-01-02T25:00:00"])
def test_bad_dates(text: str) -> None:
    with pytest.raises(IcatError) as e:
        parse_date(text, UTCZ, "Dataset.startDate")
    assert e.value.type == ErrorType.BAD_PARAMETER


@pytest.mark.parametrize("xml, message", [
    ("<bean><name>x</name></bean>", "has no xsi:type"),
    ('<bean xsi:type="ns0:bogus"/>', "bogus is not an ICAT entity"),
    ('<bean xsi:type="ns0:dataset"><id>abc</id></bean>', "not an integer"),
    ('<bean xsi:type="ns0:facility"><daysUntilRelease>3000000000</daysUntilRelease></bean>',
     "out of range"),
])
def test_bad_beans(xml: str, message: str) -> None:
    with pytest.raises(IcatError, match=message):
        bean(xml)


def test_format_date_as_metro() -> None:
    assert format_date(datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC), UTCZ) == "2020-01-02T03:04:05Z"
    assert format_date(datetime(2020, 1, 2, 3, 4, 5, 120000, tzinfo=UTC),
                       ZoneInfo("Europe/Berlin")) == "2020-01-02T04:04:05.120+01:00"


def _render(values: list[object]) -> etree._Element:
    body = b"".join(stream_response("search", values, UTCZ, batch=2))
    root = etree.fromstring(body)
    return root[0][0]


def test_search_results_carry_types() -> None:
    ds = Obj(entity=SCHEMA.entities["Dataset"], id=5,
             values={"name": "d", "complete": False, "startDate": None})
    ds.ones["investigation"] = Obj(entity=SCHEMA.entities["Investigation"], id=2,
                                   values={"name": "i"})
    resp = _render([ds, 42, 1.5, "text", True, None, ("a", 3, None, ds)])
    xsi = "{http://www.w3.org/2001/XMLSchema-instance}"
    types = [r.get(f"{xsi}type") for r in resp]
    assert types == ["ns2:dataset", "xs:long", "xs:double", "xs:string", "xs:boolean", None,
                     "ns2:fieldSet"]
    assert resp.nsmap["ns2"] == "http://icatproject.org"
    entity = resp[0]
    assert [c.tag for c in entity] == ["id", "complete", "investigation", "name"]
    assert entity.find("investigation/id").text == "2"
    assert entity.find("investigation").get(f"{xsi}type") is None
    assert resp[5].get(f"{xsi}nil") == "true"
    fields = resp[6]
    assert [f.get(f"{xsi}type") for f in fields] == ["xs:string", "xs:long", None, "ns2:dataset"]


def test_control_characters_are_replaced() -> None:
    resp = _render(["bad\x01char"])
    assert resp[0].text == "bad\ufffdchar"


@pytest.mark.parametrize("kind", list(ErrorType))
def test_faults(kind: ErrorType) -> None:
    root = etree.fromstring(fault(IcatError(kind, "went wrong <&>", 3)))
    f = root.find(f"{{{ENV}}}Body/{{{ENV}}}Fault")
    assert f.findtext("faultcode") == "S:Server"
    assert f.findtext("faultstring") == "went wrong <&>"
    exc = f.find("detail/{http://icatproject.org}IcatException")
    assert (exc.findtext("message"), exc.findtext("offset"), exc.findtext("type")) == \
        ("went wrong <&>", "3", kind.value)
