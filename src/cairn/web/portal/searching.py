"""The search pages: free-text search with facets, over the in-database index."""

from __future__ import annotations

from starlette.routing import BaseRoute


def routes() -> list[BaseRoute]:
    return []
