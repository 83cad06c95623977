"""The publishing API (``/publishing``), JSON for portals and scripts: check, mint, draft,
publish, version, withdraw and delete DOIs, and read their state (docs/publishing.md).

The session comes as ``sessionId`` (query, form or JSON body, as ICAT's REST API takes it) or
as ``Authorization: Bearer <sessionId>``. Errors are ICAT's ``{"code", "message"}``.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from cairn.errors import ErrorType as E
from cairn.errors import IcatError, bad_parameter
from cairn.publishing.service import PublishingService
from cairn.web.icat_rest import _int, no_content
from cairn.web.jsonresponse import JSONResponse

PREFIX = "/publishing"


def _service(request: Request) -> PublishingService:
    service: PublishingService | None = request.app.state.publishing
    if service is None:
        raise IcatError(E.NOT_IMPLEMENTED, "publishing is switched off here "
                                           "([publishing] enabled = false)")
    return service


async def _body(request: Request) -> dict[str, Any]:
    """The request's JSON object or form fields (empty when there is no body)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        return {k: v for k, v in form.items() if isinstance(v, str)}
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise bad_parameter(f"The body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise bad_parameter("The body must be a JSON object")
    return body


def _sid(request: Request, body: dict[str, Any] | None = None) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    sid = request.query_params.get("sessionId") or (body or {}).get("sessionId")
    if sid is not None and not isinstance(sid, str):
        raise bad_parameter("sessionId must be a string")
    if not sid:
        raise IcatError(E.SESSION, "A sessionId is needed (or Authorization: Bearer ...)")
    return sid


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


async def check(request: Request) -> Response:
    service, q = _service(request), request.query_params
    if request.method == "POST":
        body = await _body(request)
        out = await run_in_threadpool(service.check_collection, _sid(request, body), body)
    elif q.get("investigationId"):
        out = await run_in_threadpool(service.check_investigation, _sid(request),
                                      _int(q["investigationId"], "investigationId"))
    elif q.get("instrumentId"):
        out = await run_in_threadpool(service.check_instrument, _sid(request),
                                      _int(q["instrumentId"], "instrumentId"))
    else:
        raise bad_parameter("Say what to check: investigationId or instrumentId, or POST a "
                            "selection")
    return JSONResponse(out)


async def mint_investigation(request: Request) -> Response:
    body = await _body(request)
    out = await run_in_threadpool(_service(request).mint_investigation, _sid(request, body),
                                  _int(request.path_params["id"], "id"),
                                  _flag(body.get("draft")))
    return JSONResponse(out, status_code=202)


async def mint_instrument(request: Request) -> Response:
    body = await _body(request)
    out = await run_in_threadpool(_service(request).mint_instrument, _sid(request, body),
                                  _int(request.path_params["id"], "id"))
    return JSONResponse(out, status_code=202)


async def draft_collection(request: Request) -> Response:
    body = await _body(request)
    sid = _sid(request, body)
    body.pop("sessionId", None)
    out = await run_in_threadpool(_service(request).draft_collection, sid, body)
    return JSONResponse(out, status_code=202)


async def list_dois(request: Request) -> Response:
    return JSONResponse(await run_in_threadpool(_service(request).list, _sid(request)))


def _doi(request: Request) -> str:
    return str(request.path_params["doi"])


async def state(request: Request) -> Response:
    return JSONResponse(await run_in_threadpool(_service(request).state, _sid(request),
                                                _doi(request)))


async def delete(request: Request) -> Response:
    await run_in_threadpool(_service(request).delete_draft, _sid(request), _doi(request))
    return no_content()


async def publish(request: Request) -> Response:
    body = await _body(request)
    out = await run_in_threadpool(_service(request).publish, _sid(request, body),
                                  _doi(request))
    return JSONResponse(out, status_code=202)


async def version(request: Request) -> Response:
    body = await _body(request)
    sid = _sid(request, body)
    body.pop("sessionId", None)
    out = await run_in_threadpool(_service(request).new_version, sid, _doi(request), body)
    return JSONResponse(out, status_code=202)


async def withdraw(request: Request) -> Response:
    body = await _body(request)
    reason, replaced = body.get("reason"), body.get("replacedBy")
    if not isinstance(reason, str) or (replaced is not None and not isinstance(replaced, str)):
        raise bad_parameter("reason (and replacedBy, if given) must be strings")
    out = await run_in_threadpool(_service(request).withdraw, _sid(request, body),
                                  _doi(request), reason, replaced)
    return JSONResponse(out, status_code=202)


def routes() -> list[BaseRoute]:
    p = PREFIX
    # A DOI holds a "/": the actions come before the catch-all DOI path.
    return [
        Route(f"{p}/check", check, methods=["GET", "POST"]),
        Route(f"{p}/investigations/{{id}}", mint_investigation, methods=["POST"]),
        Route(f"{p}/instruments/{{id}}", mint_instrument, methods=["POST"]),
        Route(f"{p}/collections", draft_collection, methods=["POST"]),
        Route(f"{p}/dois", list_dois, methods=["GET"]),
        Route(f"{p}/dois/{{doi:path}}/publish", publish, methods=["POST"]),
        Route(f"{p}/dois/{{doi:path}}/versions", version, methods=["POST"]),
        Route(f"{p}/dois/{{doi:path}}/withdraw", withdraw, methods=["POST"]),
        Route(f"{p}/dois/{{doi:path}}", state, methods=["GET"]),
        Route(f"{p}/dois/{{doi:path}}", delete, methods=["DELETE"]),
    ]
