"""icat.server's free-text search endpoints: /icat/search/documents, /icat/facet/documents,
the deprecated /icat/lucene/data and the root-only /icat/lucene/db population calls."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from cairn.errors import ErrorType as E
from cairn.errors import IcatError, bad_parameter
from cairn.search.service import SearchService
from cairn.web.icat_rest import _form, _int, no_content
from cairn.web.jsonresponse import JSONResponse


def _search(request: Request) -> SearchService:
    search: SearchService | None = request.app.state.search
    if search is None:
        raise IcatError(E.NOT_IMPLEMENTED, "free-text search is switched off here "
                                           "([search] enabled = false)")
    return search


def _flag(value: str | None) -> bool:
    return (value or "").lower() == "true"


async def search_documents(request: Request) -> Response:
    q = request.query_params
    out = await run_in_threadpool(
        _search(request).search_documents, q.get("sessionId"), q.get("query"),
        q.get("search_after"), q.get("minCount"), q.get("maxCount"), q.get("sort"),
        _flag(q.get("restrict")))
    return JSONResponse(out)


async def facet_documents(request: Request) -> Response:
    q = request.query_params
    out = await run_in_threadpool(_search(request).facet_documents, q.get("sessionId"),
                                  q.get("query"))
    return JSONResponse(out)


async def lucene_data(request: Request) -> Response:
    q = request.query_params
    out = await run_in_threadpool(_search(request).lucene_data, q.get("sessionId"),
                                  q.get("query"), q.get("maxCount"))
    return JSONResponse(out)


async def populating(request: Request) -> Response:
    out = await run_in_threadpool(_search(request).populating,
                                  request.query_params.get("sessionId"))
    return JSONResponse(out)


async def commit(request: Request) -> Response:
    form = await _form(request)
    await run_in_threadpool(_search(request).commit, form.get("sessionId"))
    return no_content()


async def stop(request: Request) -> Response:
    await run_in_threadpool(_search(request).stop, request.query_params.get("sessionId"))
    return no_content()


def _optional_id(value: str | None, name: str) -> int | None:
    return None if value in (None, "") else _int(value, name)


async def populate(request: Request) -> Response:
    form = await _form(request)
    entity = request.path_params["entity"]
    min_id = _optional_id(form.get("minId"), "minId")
    max_id = _optional_id(form.get("maxId"), "maxId")
    if "minid" in request.path_params:  # the deprecated form: always deletes first
        min_id, delete = _int(request.path_params["minid"], "minid"), True
    else:
        delete = _flag(form.get("delete"))
    if min_id is not None and max_id is not None and max_id < min_id:
        raise bad_parameter(f"maxId ({max_id}) is below minId ({min_id})")
    await run_in_threadpool(_search(request).populate, form.get("sessionId"), entity,
                            min_id, max_id, delete)
    return no_content()


def routes() -> list[BaseRoute]:
    return [
        Route("/icat/search/documents", search_documents, methods=["GET"]),
        Route("/icat/facet/documents", facet_documents, methods=["GET"]),
        Route("/icat/lucene/data", lucene_data, methods=["GET"]),
        Route("/icat/lucene/db", populating, methods=["GET"]),
        Route("/icat/lucene/db", commit, methods=["POST"]),
        Route("/icat/lucene/db", stop, methods=["DELETE"]),
        Route("/icat/lucene/db/{entity}", populate, methods=["POST"]),
        Route("/icat/lucene/db/{entity}/{minid}", populate, methods=["POST"]),
    ]
