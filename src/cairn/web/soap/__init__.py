"""icat.server's SOAP interface (``/ICATService/ICAT``), for python-icat and other suds clients.

``GET ?wsdl`` and ``GET ?xsd=1`` serve the contract generated from the schema; ``POST``
carries SOAP 1.1 document/literal calls. Every failure is answered with HTTP 500 and a SOAP
Fault whose detail is an ``IcatException`` (type, message, offset).
"""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from cairn.catalogue.service import Catalogue
from cairn.errors import ErrorType, IcatError
from cairn.web.soap import operations
from cairn.web.soap.envelope import (
    MAX_REQUEST_BYTES,
    ClientFault,
    children,
    fault,
    parse_envelope,
    simple_response,
    stream_response,
)
from cairn.web.soap.wsdl import ENDPOINT, wsdl_bytes, xsd_bytes

log = logging.getLogger(__name__)

XML = "text/xml; charset=utf-8"
#: Post-6.2 icat.server also answers here (its CDI deployment); same service.
ALIASES = (ENDPOINT, "/icat/ICAT")


def _catalogue(request: Request) -> Catalogue:
    catalogue: Catalogue = request.app.state.catalogue
    return catalogue


def address(request: Request) -> str:
    """The endpoint URL clients are told to use: public_url if configured, else as called."""
    configured = _catalogue(request).settings.server.public_url
    base = configured.rstrip("/") if configured else str(request.base_url).rstrip("/")
    return base + request.url.path


async def describe(request: Request) -> Response:
    q = {k.lower(): v for k, v in request.query_params.items()}
    if "wsdl" in q:
        return Response(wsdl_bytes(address(request)), media_type=XML)
    if "xsd" in q:
        if q["xsd"] != "1":
            return Response("No such schema document; use ?xsd=1", status_code=404,
                            media_type="text/plain")
        return Response(xsd_bytes(), media_type=XML)
    url = address(request)
    return HTMLResponse(f"<html><head><title>ICATService</title></head><body><h1>ICATService"
                        f"</h1><p>SOAP endpoint of the ICAT catalogue. WSDL: "
                        f'<a href="{url}?wsdl">{url}?wsdl</a></p></body></html>')


def _fault(e: IcatError, client: bool = False) -> Response:
    return Response(fault(e, client), status_code=500, media_type=XML)


async def _read_body(request: Request) -> bytes:
    too_large = ClientFault(f"Request too large: the limit is {MAX_REQUEST_BYTES} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            raise too_large  # stop reading: memory stays bounded whatever the client sends
        chunks.append(chunk)
    return b"".join(chunks)


def _execute(cat: Catalogue, body: bytes, ip: str | None) -> tuple[str, operations.Result]:
    op, wrapper = parse_envelope(body)
    handler = operations.HANDLERS.get(op)
    if handler is None:
        raise ClientFault(f"Cannot find dispatch method for {wrapper.tag}")
    try:
        return op, handler(operations.Call(cat, children(wrapper), ip))
    except IcatError as e:
        if op not in operations.OFFSET_OPERATIONS:
            e.offset = -1
        raise


async def call(request: Request) -> Response:
    cat = _catalogue(request)
    try:
        body = await _read_body(request)
        ip = request.client.host if request.client else None
        op, result = await run_in_threadpool(_execute, cat, body, ip)
        if isinstance(result, operations.Stream):
            return StreamingResponse(stream_response(op, result.values, cat.zone),
                                     media_type=XML)
        return Response(simple_response(op, result), media_type=XML)
    except ClientFault as e:
        return _fault(e, client=True)
    except IcatError as e:
        if e.type == ErrorType.INTERNAL:
            log.error("INTERNAL error in SOAP call: %s", e.message)
        return _fault(e)
    except Exception as e:
        # Never leak a stack trace to the client: log it, answer INTERNAL.
        log.exception("unexpected error in SOAP call")
        return _fault(IcatError(ErrorType.INTERNAL,
                                f"Internal error ({type(e).__name__}); see the server log"))


def routes() -> list[BaseRoute]:
    out: list[BaseRoute] = []
    for path in ALIASES:
        out.append(Route(path, describe, methods=["GET"]))
        out.append(Route(path, call, methods=["POST"]))
    return out
