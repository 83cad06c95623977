"""Pages for facility staff (root users): download queue, data service, access, health."""

from __future__ import annotations

from starlette.routing import BaseRoute


def routes() -> list[BaseRoute]:
    return []
