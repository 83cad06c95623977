"""icat.server's export and import over REST: ``GET /icat/port`` and ``POST /icat/port``.

``GET /icat/port?json={"sessionId": ..., "query": ..., "attributes": "USER"|"ALL"}``
streams the dump (``text/plain``, an ``icat.export`` attachment); 204 when the query finds
nothing. ``query`` may also be a list of queries (Cairn's addition): their entities go into
one file. Everything a client can act on (session, query, permissions) is checked before
the first byte; a failure after that aborts the connection, so a dump is never silently
short.

``POST /icat/port``, multipart: a ``json`` field ``{"sessionId": ..., "duplicate":
"THROW"|"IGNORE"|"CHECK"|"OVERWRITE", "attributes": "USER"|"ALL"}``, then the file part.
Starlette spools the file to disk past a megabyte, and the import reads it from there a
line at a time, so memory stays flat whatever its size; it is written in one unit of work:
all of it, or (any error, with the line) nothing. 204 when done.
"""

from __future__ import annotations

import json
from typing import IO, Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from cairn.catalogue.service import Catalogue
from cairn.errors import bad_parameter
from cairn.port.exporter import Export
from cairn.port.importer import Attributes, Duplicate, import_records
from cairn.port.sniff import read_any
from cairn.web.streaming import StreamResponse

EXPORT_HEADERS = {"Content-Type": "text/plain; charset=utf-8",
                  "Content-Disposition": 'attachment; filename="icat.export"'}


def _catalogue(request: Request) -> Catalogue:
    catalogue: Catalogue = request.app.state.catalogue
    return catalogue


def _options(text: str | None, allowed: set[str]) -> dict[str, Any]:
    """The ``json`` parameter, as icat.server reads it: an object of known keys."""
    if text is None:
        raise bad_parameter("json must not be null")
    try:
        data = json.loads(text)
    except ValueError as e:
        raise bad_parameter(f"json is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise bad_parameter("json must be a JSON object")
    for key in data:
        if key not in allowed:
            raise bad_parameter(f"{key} is not an expected key in the json")
    return data


def _choice(data: dict[str, Any], key: str, kind: type[Attributes] | type[Duplicate],
            default: str) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or value.upper() not in kind.__members__:
        raise bad_parameter(f"{value} is not a valid value for '{key}'")
    return value.upper()


def _queries(data: dict[str, Any]) -> list[str]:
    query = data.get("query")
    if query is None:
        return []
    queries = [query] if isinstance(query, str) else query
    if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
        raise bad_parameter("query must be a query, or a list of queries")
    return queries


async def export(request: Request) -> Response:
    cat = _catalogue(request)
    data = _options(request.query_params.get("json"), {"sessionId", "query", "attributes"})
    queries = _queries(data)
    every = _choice(data, "attributes", Attributes, "USER") == Attributes.ALL
    sid = data.get("sessionId")
    dump = await run_in_threadpool(
        lambda: Export(cat.as_user(sid if isinstance(sid, str) else None, read_only=True),
                       queries, every).open())
    if dump.empty:
        dump.close()
        return Response(status_code=204)
    return StreamResponse(200, EXPORT_HEADERS, dump)


async def import_(request: Request) -> Response:
    cat = _catalogue(request)
    form = await request.form()
    try:
        text = form.get("json")
        data = _options(text if isinstance(text, str) else None,
                        {"sessionId", "duplicate", "attributes"})
        duplicate = Duplicate(_choice(data, "duplicate", Duplicate, "THROW"))
        attributes = Attributes(_choice(data, "attributes", Attributes, "USER"))
        files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
        if len(files) != 1:
            raise bad_parameter("POST /icat/port needs the dump as one file part (with a "
                                "filename) after the json part")
        upload = files[0].file
        sid = data.get("sessionId")

        def run() -> None:
            with cat.as_user(sid if isinstance(sid, str) else None) as work:
                import_records(work, read_any(_binary(upload), cat.zone), duplicate,
                               attributes)

        await run_in_threadpool(run)
    finally:
        await form.close()
    return Response(status_code=204)


def _binary(f: Any) -> IO[bytes]:
    f.seek(0)
    stream: IO[bytes] = f
    return stream


def routes() -> list[BaseRoute]:
    return [Route("/icat/port", export, methods=["GET"]),
            Route("/icat/port", import_, methods=["POST"])]
