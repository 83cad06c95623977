"""What the hostile-input tests and the fuzzer send and read: SOAP envelopes, and the ICAT
error (type, message) of any answer, REST, SOAP or data service."""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

import httpx
from lxml import etree

from tests.integration.server import Server

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
TNS = "http://icatproject.org"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SOAP_ENDPOINT = "/ICATService/ICAT"


def envelope(op: str, inner: str = "") -> bytes:
    """A SOAP 1.1 call of ``op`` with ``inner`` (XML) inside its wrapper."""
    return (f'<S:Envelope xmlns:S="{SOAP_ENV}" xmlns:xsi="{XSI}" xmlns:n="{TNS}"><S:Body>'
            f"<n:{op}>{inner}</n:{op}></S:Body></S:Envelope>").encode()


def element(name: str, value: Any) -> str:
    return f"<{name}>{escape(str(value))}</{name}>"


def soap(server: Server, body: bytes, timeout: float = 60) -> httpx.Response:
    return server.http.post(SOAP_ENDPOINT, content=body, timeout=timeout,
                            headers={"Content-Type": "text/xml; charset=utf-8",
                                     "SOAPAction": '""'})


def soap_search(server: Server, sid: str, query: str) -> httpx.Response:
    return soap(server, envelope("search", element("sessionId", sid) + element("query", query)))


def soap_fault(r: httpx.Response) -> tuple[str, str] | None:
    """(type, message) of a SOAP fault; None for a successful call. Anything else that is
    not a well-formed SOAP answer fails the test."""
    if r.status_code == 200:
        return None
    assert r.status_code == 500, (r.status_code, r.text[:500])  # SOAP 1.1 faults are 500
    fault = etree.fromstring(r.content).find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert fault is not None, r.text[:500]
    exc = fault.find(f"detail/{{{TNS}}}IcatException")
    assert exc is not None, r.text[:500]
    return exc.findtext("type") or "", exc.findtext("message") or ""


def json_error(r: httpx.Response) -> tuple[str, str]:
    """(code, message) of a REST or data-service error answer."""
    body = r.json()
    assert isinstance(body, dict) and set(body) >= {"code", "message"}, r.text[:500]
    return str(body["code"]), str(body["message"])
