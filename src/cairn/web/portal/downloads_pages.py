"""The visitor's cart and downloads (the download manager's service, as TopCat uses it)."""

from __future__ import annotations

from typing import Any

from starlette.routing import BaseRoute

from cairn.web.portal.pages import Call


def facility(call: Call) -> str:
    """The facility whose cart and downloads the portal shows: the download manager's first
    (a catalogue usually holds one facility)."""
    service = call.cairn.downloads
    with call.cairn.catalogue.as_system(read_only=True) as work:
        names = service.facilities(work)
    if not names:
        from cairn.errors import ErrorType, IcatError

        raise IcatError(ErrorType.NO_SUCH_OBJECT_FOUND,
                        "This catalogue has no facility to download from yet.")
    return str(names[0])


def recent(call: Call, limit: int) -> list[dict[str, Any]]:
    """The visitor's latest downloads (not deleted), newest first."""
    service = call.cairn.downloads
    if service is None or call.visitor is None:
        return []
    with call.cairn.catalogue.as_system(read_only=True) as work:
        names = service.facilities(work)
    found: list[dict[str, Any]] = []
    for name in names:
        found += service.downloads(
            name, call.sid, "where download.isDeleted = false "
            f"order by download.createdAt desc, download.id desc limit 0, {int(limit)}")
    found.sort(key=lambda d: (d.get("createdAt") or "", d["id"]), reverse=True)
    return found[:limit]


def routes() -> list[BaseRoute]:
    return []
