"""icat.server's REST interface (/icat/...): parse the request, call the core, render."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from cairn.catalogue import admin
from cairn.catalogue.objects import Obj
from cairn.catalogue.service import API_VERSION, Catalogue, entity_named
from cairn.errors import bad_parameter
from cairn.web.entity_json import (
    format_date,
    items_of,
    load_json,
    parse_entities,
    unwrap,
)
from cairn.web.forms import read_form  # [server] max_request_bytes
from cairn.web.json_rows import JsonShape, entity_bytes, results_bytes
from cairn.web.jsonresponse import JSONResponse, json_bytes

Handler = Callable[[Request], Awaitable[Response]]


def _catalogue(request: Request) -> Catalogue:
    catalogue: Catalogue = request.app.state.catalogue
    return catalogue


async def _form(request: Request) -> dict[str, Any]:
    # [server] max_request_bytes, not Starlette's 1 MB per field (cairn.web.forms)
    form = await read_form(request, _catalogue(request).settings.server.max_request_bytes)
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def _int(value: str | None, name: str) -> int:
    try:
        return int(value or "")
    except ValueError:
        raise bad_parameter(f"{name} must be an integer, not {value!r}") from None


NO_CONTENT = 204


def no_content() -> Response:
    return Response(status_code=NO_CONTENT)


# -- service information ----------------------------------------------------------------------


async def version(request: Request) -> Response:
    return JSONResponse({"version": API_VERSION})


async def properties(request: Request) -> Response:
    return JSONResponse(await run_in_threadpool(_catalogue(request).properties))


# -- sessions ---------------------------------------------------------------------------------


def _credentials(data: Any) -> tuple[str | None, dict[str, str]]:
    if not isinstance(data, dict):
        raise bad_parameter("json must be an object with plugin and credentials")
    plugin = data.get("plugin")
    creds: dict[str, str] = {}
    for item in data.get("credentials") or []:
        if not isinstance(item, dict):
            raise bad_parameter("credentials must be a list of single-key objects")
        for k, v in item.items():
            if not isinstance(v, str):
                raise bad_parameter(f"credential {k} must be a string")
            creds[k] = v
    if plugin is not None and not isinstance(plugin, str):
        raise bad_parameter("plugin must be a string")
    return plugin, creds


async def login(request: Request) -> Response:
    form = await _form(request)
    plugin, creds = _credentials(load_json(form.get("json"), "json"))
    sid = await run_in_threadpool(_catalogue(request).login, plugin, creds, _client_ip(request))
    return JSONResponse({"sessionId": sid})


async def session_info(request: Request) -> Response:
    s = await run_in_threadpool(_catalogue(request).session, request.path_params["sid"])
    return JSONResponse({"userName": s.user, "remainingMinutes": s.remaining_minutes})


async def refresh(request: Request) -> Response:
    await run_in_threadpool(_catalogue(request).refresh, request.path_params["sid"])
    return no_content()


async def logout(request: Request) -> Response:
    await run_in_threadpool(_catalogue(request).logout, request.path_params["sid"])
    return no_content()


async def user_logged_in(request: Request) -> Response:
    p = request.path_params
    name = f"{p['mnemonic']}/{p['name']}" if "mnemonic" in p else p["name"]
    logged_in = await run_in_threadpool(_catalogue(request).is_logged_in, name)
    return JSONResponse({"loggedIn": logged_in})


# -- entity manager ---------------------------------------------------------------------------


async def entity_get(request: Request) -> Response:
    cat = _catalogue(request)
    q = request.query_params
    sid, query = q.get("sessionId"), q.get("query")
    if query is None:
        raise bad_parameter("query is not set")
    zone = cat.zone
    # Rendering and encoding run in the worker thread too: a page of thousands of objects
    # takes tens of milliseconds that the event loop spends serving other requests instead.
    shape = JsonShape(zone)
    if "id" in q:
        key = _int(q.get("id"), "id")
        return json_bytes(await run_in_threadpool(
            lambda: entity_bytes(cat.get(sid, query, key, shape))))
    page: list[Any] = []

    def answer() -> bytes:
        page.extend(cat.search(sid, query, shape))
        return results_bytes(page, zone)

    return json_bytes(await run_in_threadpool(answer), keep=page)


async def entity_write(request: Request) -> Response:
    cat = _catalogue(request)
    form = await _form(request)
    objs = parse_entities(form.get("entities"), cat.zone)
    ids = await run_in_threadpool(cat.write, form.get("sessionId"), objs)
    return JSONResponse(ids)


async def entity_delete(request: Request) -> Response:
    cat = _catalogue(request)
    q = request.query_params
    text = q.get("entities")
    targets = []
    for i, item in enumerate(items_of(load_json(text, "entities"))):
        entity, inner = unwrap(item, text or "", i)
        if not isinstance(inner, dict) or "id" not in inner:
            raise bad_parameter(f"entity must have the id value specified in json {text}", i)
        if len(inner) != 1:
            raise bad_parameter(f"entity must have only the id value specified in json {text}",
                                i)
        if isinstance(inner["id"], bool) or not isinstance(inner["id"], int):
            raise bad_parameter(f"The id of {entity.name} must be an integer", i)
        targets.append((entity, inner["id"]))
    await run_in_threadpool(cat.delete, q.get("sessionId"), targets)
    return no_content()


async def cloner(request: Request) -> Response:
    cat = _catalogue(request)
    form = await _form(request)
    name = form.get("name")
    if not name:
        raise bad_parameter("name is not set")
    entity_named(name)
    keys = load_json(form.get("keys") or "{}", "keys")
    if not isinstance(keys, dict):
        raise bad_parameter("keys must be a JSON object")
    new_id = await run_in_threadpool(cat.clone, form.get("sessionId"), name,
                                     _int(form.get("id"), "id"), keys)
    return JSONResponse({"id": new_id})


# -- administration and testing (§4.7) ---------------------------------------------------------


async def jpql(request: Request) -> Response:
    """The first results of a query run without authorization, as text (root only)."""
    cat = _catalogue(request)
    q = request.query_params
    wanted = _int(q["max"], "max") if "max" in q else None
    values = await run_in_threadpool(admin.jpql, cat, q.get("sessionId"), q.get("query"),
                                     wanted)
    return PlainTextResponse(_jpql_text(values, wanted or admin.JPQL_MAX, cat.zone))


def _jpql_text(values: list[Any], wanted: int, zone: ZoneInfo) -> str:
    # icat.server's form, "Count 2: Dataset:12, [a, 3]"; it says "at least 5" whatever the
    # max, Cairn names the max.
    head = f"Count at least {wanted}" if len(values) == wanted else f"Count {len(values)}"
    return head + (": " + ", ".join(_text(v, zone) for v in values) if values else "")


def _text(value: Any, zone: ZoneInfo) -> str:
    if isinstance(value, Obj):
        if value.name == "User":  # as icat.server's User prints itself
            return f"User[name={value.values.get('name')}]"
        return f"{value.name}:{value.id}"
    if isinstance(value, list):
        return "[" + ", ".join(_text(v, zone) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return format_date(value, zone)
    return str(value)


async def _pause(seconds: float) -> float:
    """Wait at least ``seconds`` without holding a worker thread; the seconds waited."""
    start = time.monotonic()
    while (left := seconds - (time.monotonic() - start)) > 0:
        await asyncio.sleep(left)
    return time.monotonic() - start


async def wait_millis(request: Request) -> Response:
    form = await _form(request)
    ms = _int(form["ms"], "ms") if "ms" in form else 0  # none: no wait, as in icat.server
    await run_in_threadpool(admin.require_root, _catalogue(request), form.get("sessionId"))
    await _pause(admin.wait_seconds(ms, "ms"))
    return no_content()


async def sleep(request: Request) -> Response:
    seconds = admin.wait_seconds(_int(request.path_params["seconds"], "seconds"), "seconds")
    return JSONResponse({"slept": int(await _pause(seconds) * 1000)})


def _stale(what: str) -> Handler:
    async def mark(request: Request) -> Response:
        admin.mark_rules_stale(_catalogue(request), what, _client_ip(request))  # no I/O
        return no_content()

    return mark


def routes() -> list[BaseRoute]:
    return [
        Route("/icat/version", version, methods=["GET"]),
        Route("/icat/properties", properties, methods=["GET"]),
        Route("/icat/session", login, methods=["POST"]),
        Route("/icat/session/{sid}", session_info, methods=["GET"]),
        Route("/icat/session/{sid}", refresh, methods=["PUT"]),
        Route("/icat/session/{sid}", logout, methods=["DELETE"]),
        Route("/icat/user/{name}", user_logged_in, methods=["GET"]),
        Route("/icat/user/{mnemonic}/{name}", user_logged_in, methods=["GET"]),
        Route("/icat/entityManager", entity_get, methods=["GET"]),
        Route("/icat/entityManager", entity_write, methods=["POST"]),
        Route("/icat/entityManager", entity_delete, methods=["DELETE"]),
        Route("/icat/cloner", cloner, methods=["POST"]),
        Route("/icat/jpql", jpql, methods=["GET"]),
        Route("/icat/waitMillis", wait_millis, methods=["POST"]),
        Route("/icat/sleep/{seconds}", sleep, methods=["GET"]),
        Route("/icat/gatekeeper/markPublicTablesStale", _stale("public tables"),
              methods=["POST"]),
        Route("/icat/gatekeeper/markPublicStepsStale", _stale("public steps"),
              methods=["POST"]),
    ]
