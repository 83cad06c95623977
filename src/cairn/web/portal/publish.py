"""Publishing from the portal: check what DataCite still needs, then mint a DOI."""

from __future__ import annotations

from starlette.routing import BaseRoute


def routes() -> list[BaseRoute]:
    return []
