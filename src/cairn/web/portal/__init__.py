"""The portal: server-rendered pages for scientists and facility staff at ``/``.

Each area is a module with its own ``routes()``; every page goes through
:func:`cairn.web.portal.pages.page` and calls the same core services as REST and SOAP.
Templates are under ``web/templates/portal``, styles and the little script under
``web/static/portal`` (served at ``/portal/static``).
"""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from cairn.web.portal import browse, downloads_pages, publish, searching, signin, staff

STATIC = Path(__file__).parent.parent / "static" / "portal"

#: Path prefixes of the protocols: their unknown paths keep the JSON (or XML) errors their
#: clients expect; every other unknown path gets the portal's page.
API_PREFIXES = ("/icat", "/ids", "/topcat", "/ICATService", "/doi", "/health", "/ready",
                "/metrics", "/openapi.json")


def is_api_path(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in API_PREFIXES)


def routes() -> list[BaseRoute]:
    return [
        *signin.routes(),
        *browse.routes(),
        *searching.routes(),
        *downloads_pages.routes(),
        *publish.routes(),
        *staff.routes(),
        Mount("/portal/static", StaticFiles(directory=STATIC), name="portal-static"),
    ]
