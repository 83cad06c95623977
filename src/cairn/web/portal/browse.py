"""Browsing the catalogue: facility, instrument, cycle, investigation, dataset, datafile."""

from __future__ import annotations

from starlette.routing import BaseRoute


def routes() -> list[BaseRoute]:
    return []
