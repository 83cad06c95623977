"""The OpenAPI description (``web/api/*.yaml``) against what the server really answers: it is
a valid OpenAPI 3.1 document, it declares every route of the application (but the portal's
pages) and no route the application lacks, ``docs/rest.md`` is the Markdown made from it,
and a running server serves it at ``/openapi.json``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from openapi_spec_validator import validate
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles

from cairn.config import Settings
from cairn.startup import assemble
from cairn.web import ids_rest, openapi, portal
from cairn.web.app import create_app
from tests.integration.server import Server

REST_MD = Path(__file__).parents[2] / "docs" / "rest.md"


def _walk(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    for r in routes:
        if isinstance(r, Mount) and isinstance(r.app, StaticFiles):
            continue  # the portal's styles and script
        if isinstance(r, Mount):
            inner = r.app
            while not isinstance(inner, Router) and hasattr(inner, "app"):
                inner = inner.app  # a wrapper (e.g. TopCat's error face) around its router
            assert isinstance(inner, Router), f"cannot see inside the mount at {r.path}"
            yield from _walk(inner.routes, prefix + r.path)
        elif isinstance(r, Route):
            path = re.sub(r"{(\w+):\w+}", r"{\1}", prefix + r.path)
            for method in r.methods or ():
                if method != "HEAD":  # Starlette adds HEAD to every GET
                    yield method, path


def served(tmp_path: Path) -> set[tuple[str, str]]:
    settings = Settings.model_validate({"server": {"data_dir": str(tmp_path)}})
    cairn = assemble(settings)
    try:
        app = create_app(cairn)
        # The portal's pages are for people, not API clients: not part of the description.
        pages = set(_walk(portal.routes()))
        return (set(_walk(app.routes)) | set(_walk(list(ids_rest.routes())))) - pages
    finally:
        cairn.db.dispose()


def test_the_document_is_valid_openapi() -> None:
    doc = openapi.document("http://127.0.0.1:8080")
    validate(doc)
    ops = [op for item in doc["paths"].values() for op in item.values()]
    assert len({op["operationId"] for op in ops}) == len(ops)


def test_every_route_is_declared_and_nothing_else(tmp_path: Path) -> None:
    routes = served(tmp_path)
    declared = {(c.method, c.path) for i in openapi.interfaces() for c in i.calls}
    assert not routes - declared, f"routes without a declaration in web/api: " \
        f"{sorted(routes - declared)}"
    assert not declared - routes, f"declared calls the server does not have: " \
        f"{sorted(declared - routes)}"


def test_every_path_parameter_is_declared() -> None:
    for iface in openapi.interfaces():
        for call in iface.calls:
            in_path = set(re.findall(r"{(\w+)}", call.path))
            declared = {p.name for p in call.params if p.where == "path"}
            assert in_path == declared, call


def test_docs_rest_md_is_made_from_the_declarations() -> None:
    assert REST_MD.read_text() == openapi.markdown(), \
        "docs/rest.md is stale: python -m cairn.web.openapi --markdown > docs/rest.md"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path, f"sqlite:///{tmp_path / 'cat.db'}")
    try:
        yield srv
    finally:
        srv.stop()


def test_a_server_serves_its_description(server: Server) -> None:
    r = server.http.get("/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    validate(body)
    assert body["paths"] == openapi.document()["paths"]
    assert body["servers"][0]["url"].startswith("http://")
