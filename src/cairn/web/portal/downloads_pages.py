"""The visitor's cart and downloads, and direct downloads (the download manager's service, as
TopCat uses it, and the data service, as ``/ids/getData`` streams).

- ``POST /cart/add``, ``/cart``, ``POST /cart/remove``, ``POST /cart/submit``: the cart of
  the visitor in the portal's facility (:func:`facility`), with each item's size as the
  download manager's ``getSize`` reckons it and the totals its submit checks.
- ``/downloads``: the visitor's downloads, newest first, paged by id (keyset), with their
  state, the bytes of the zip sent so far and the resumable link of a ready one (a prepared
  id: a bearer token for that download alone, never the session). ``/downloads/status`` is
  what ``cairn.js`` polls to update the page in place; without script a Refresh link does.
- ``GET /download/{investigation|dataset|datafile}/{id}``: the data itself with the cookie
  session, as ``getData`` sends it (one file as itself, anything else a stored zip; ranges
  answered; memory flat). Data not on main storage (two-level storage) is a page saying so,
  with the cart as the way to get it once restored.

Errors of the download manager (:class:`~cairn.downloads.service.TopcatError`) become the
catalogue's error types, so they are error pages like any other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from cairn.config import FacilityDownloads
from cairn.downloads.lifecycle import served
from cairn.downloads.service import DownloadService, TopcatError, totals
from cairn.errors import ErrorType, IcatError
from cairn.ids.download import answer
from cairn.ids.errors import IdsError
from cairn.ids.filespan import FileSpan
from cairn.ids.selection import Selection
from cairn.ids.storage import not_found
from cairn.web.portal import pages
from cairn.web.portal.pages import Call
from cairn.web.portal.signin import safe_next
from cairn.web.streaming import FileSpanResponse, StreamResponse

#: The entity types a cart holds and a direct download serves, as URLs and forms spell them.
KINDS = {"investigation": "Investigation", "dataset": "Dataset", "datafile": "Datafile"}
#: Cart items shown (and sized) per page.
CART_PAGE = 50
#: Downloads per page of /downloads.
DOWNLOADS_PAGE = 25
#: Most downloads one /downloads/status call answers for.
STATUS_IDS = 100
#: How often the downloads page asks for news while something is under way.
POLL_SECONDS = 3

#: The download manager's HTTP statuses as the catalogue's error types (for error pages).
_ERROR_TYPES = {400: ErrorType.BAD_PARAMETER, 403: ErrorType.INSUFFICIENT_PRIVILEGES,
                404: ErrorType.NO_SUCH_OBJECT_FOUND}
#: States a download moves on from by itself: the page keeps asking about them.
PENDING = frozenset({"queued", "preparing", "restoring"})
#: Sent with the data: never cached (it is one person's), never sniffed.
DATA_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


def download_service(call: Call) -> DownloadService:
    """The download manager, or the page saying it is switched off."""
    service: DownloadService | None = call.cairn.downloads
    if service is None:
        raise IcatError(ErrorType.NOT_IMPLEMENTED,
                        "The download manager is switched off here ([downloads] enabled).")
    return service


@contextmanager
def manager_errors() -> Iterator[None]:
    """The download manager's errors as catalogue errors (which become error pages)."""
    try:
        yield
    except TopcatError as e:
        raise IcatError(_ERROR_TYPES.get(e.status, ErrorType.INTERNAL), e.message) from None


def facilities(call: Call) -> list[str]:
    """The download manager's facilities (configured, else every Facility)."""
    service = download_service(call)
    with call.cairn.catalogue.as_system(read_only=True) as work:
        return [str(n) for n in service.facilities(work)]


def facility(call: Call) -> str:
    """The facility whose cart the portal fills: the download manager's first (a catalogue
    usually holds one facility)."""
    names = facilities(call)
    if not names:
        raise IcatError(ErrorType.NO_SUCH_OBJECT_FOUND,
                        "This catalogue has no facility to download from yet.")
    return names[0]


def recent(call: Call, limit: int) -> list[dict[str, Any]]:
    """The visitor's latest downloads (not deleted), newest first."""
    if call.cairn.downloads is None or call.visitor is None:
        return []
    return _downloads(call, "where download.isDeleted = false", limit)


def _downloads(call: Call, condition: str, limit: int) -> list[dict[str, Any]]:
    """The visitor's downloads in every facility meeting ``condition`` (a queryOffset
    condition), newest first, at most ``limit``: the first ``limit`` by id of each facility,
    merged (ids are shared by all facilities, so this is a keyset page of the union)."""
    service = download_service(call)
    found: list[dict[str, Any]] = []
    with manager_errors():
        for name in facilities(call):
            found += service.downloads(
                name, call.sid, f"{condition} order by download.id desc limit 0, {int(limit)}")
    found.sort(key=lambda d: d["id"], reverse=True)
    return found[:limit]


# -- the cart ----------------------------------------------------------------------------------


def _kind(text: str) -> str:
    kind = text.strip().lower()
    if kind not in KINDS:
        raise IcatError(ErrorType.BAD_PARAMETER,
                        "entityType must be Investigation, Dataset or Datafile")
    return kind


def _whole(name: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise IcatError(ErrorType.BAD_PARAMETER,
                        f"{name} must be a whole number, not {text!r}") from None
    if value < 1:
        raise IcatError(ErrorType.BAD_PARAMETER, f"{name} must be positive")
    return value


def cart_add(call: Call) -> Response:
    """Add an investigation, dataset or datafile to the cart, then back to ``next``."""
    kind = _kind(call.field("entityType"))
    entity_id = _whole("entityId", call.field("entityId"))
    target = safe_next(call.field("next") or "/cart")
    service = download_service(call)
    with manager_errors():
        cart = service.add_to_cart(facility(call), call.sid, f"{kind} {entity_id}")
    items = cart["cartItems"]
    mine = next((i for i in items if (i["entityType"], i["entityId"]) == (kind, entity_id)),
                None)
    if mine is not None:
        notice = (f'Added {kind} "{mine["name"]}" to your cart '
                  f"({_count(len(items), 'item')}).")
    else:  # not added: something holding it is in the cart already
        parents = _parents(call, kind, entity_id)
        holder = next((i for i in items if {"entityType": i["entityType"],
                                            "entityId": i["entityId"]} in parents), None)
        notice = (f'Already in your cart, as part of {holder["entityType"]} "{holder["name"]}".'
                  if holder else "Already in your cart.")
    return call.redirect(target, notice=notice)


def _parents(call: Call, kind: str, entity_id: int) -> list[dict[str, Any]]:
    """The investigation and dataset holding an entity, as cart items name parents."""
    if kind == "investigation":
        return []
    if kind == "dataset":
        ds = call.cairn.catalogue.get(call.sid, "Dataset", entity_id)
        return [{"entityType": "investigation", "entityId": ds.refs.get("investigation")}]
    df = call.cairn.catalogue.get(call.sid, "Datafile", entity_id)
    dataset_id = df.refs.get("dataset")
    if dataset_id is None:
        return []
    return [{"entityType": "dataset", "entityId": dataset_id},
            *_parents(call, "dataset", int(dataset_id))]


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _cart_context(call: Call) -> dict[str, Any]:
    """What the cart page shows: a page of items with their sizes, the totals a submit is
    held to, the facility's limits and the transports the visitor may use."""
    service = download_service(call)
    name = facility(call)
    with manager_errors():
        cart = service.cart(name, call.sid)
        transports = service.transports(name, call.sid)
    items = cart["cartItems"]
    start = max(0, call.arg_int("start", 0) or 0)
    shown = []
    for item in items[start:start + CART_PAGE]:
        row = dict(item, size=None, readable=True)
        try:
            with manager_errors():
                row["size"] = service.size(name, call.sid, item["entityType"],
                                           item["entityId"])
        except IcatError as e:
            if e.type not in (ErrorType.INSUFFICIENT_PRIVILEGES,
                              ErrorType.NO_SUCH_OBJECT_FOUND):
                raise
            row["readable"] = False  # rights changed, or deleted, since it was added
        shown.append(row)
    pairs = [(i["entityType"], int(i["entityId"])) for i in items]
    count, size = 0, 0
    if pairs:
        with call.cairn.catalogue.as_user(call.sid, read_only=True) as work:
            count, size = totals(work, pairs)
    limits = service.settings.facilities.get(name) or FacilityDownloads()
    offered = [{"name": t, **info,
                "mailRequired": service.settings.transports[t].mail_required}
               for t, info in transports.items()]
    return {"facility": name, "items": items, "shown": shown, "start": start,
            "page_size": CART_PAGE, "count": count, "total": size, "limits": limits,
            "transports": offered,
            "default_name": f"{name}_{datetime.now(UTC).strftime('%Y-%m-%d_%H-%M-%S')}",
            "crumbs": [("My data", "/"), ("Cart", None)]}


def cart(call: Call) -> Response:
    """The cart: items, sizes, totals, remove, and the form that submits it."""
    return call.render("portal/cart.html", **_cart_context(call), form={}, error=None)


def cart_remove(call: Call) -> Response:
    """Remove one item (``item``), the ticked ones (``selected``) or all (``all``)."""
    one = call.field("item")
    if call.field("all"):
        items, what = "*", "Your cart is now empty."
    else:
        chosen = [one] if one else call.fields("selected")
        ids = [str(_whole("item", i)) for i in chosen]
        if not ids:
            return call.redirect("/cart", notice="Tick the items to remove first.")
        items, what = ", ".join(ids), f"Removed {_count(len(ids), 'item')} from your cart."
    service = download_service(call)
    with manager_errors():
        service.remove_from_cart(facility(call), call.sid, items)
    return call.redirect("/cart", notice=what)


def cart_submit(call: Call) -> Response:
    """The cart becomes a download (emptying the cart); then to the downloads page. A
    refusal (an address missing, a limit passed, a transport switched off) keeps the cart
    and shows why, with what was typed."""
    service = download_service(call)
    form = {"fileName": call.field("fileName").strip(), "transport": call.field("transport"),
            "email": call.field("email").strip()}
    try:
        with manager_errors():
            done = service.submit(facility(call), call.sid, form["transport"] or None,
                                  form["fileName"], form["email"] or None)
    except IcatError as e:
        if e.type not in (ErrorType.BAD_PARAMETER, ErrorType.INSUFFICIENT_PRIVILEGES):
            raise
        return call.render("portal/cart.html", status=400, **_cart_context(call), form=form,
                           error=e.message)
    download_id = done.get("downloadId")
    if download_id is None:
        return call.redirect("/cart",
                             notice="Your cart is empty: there is nothing to submit.")
    return call.redirect(f"/downloads#download-{int(download_id)}",
                         notice=f"Your download \"{form['fileName']}\" has been "
                                        "submitted. This page shows when it is ready.")


# -- downloads --------------------------------------------------------------------------------


def _ids_url(service: DownloadService, transport: str) -> str:
    """Where a transport's links point: this server's /ids as a path (so a link works under
    whatever name the portal was reached by), another data service in full."""
    t = service.settings.transports.get(transport)
    url = ((t.ids_url if t is not None else "") or f"{service.public_url}/ids").rstrip("/")
    if url.startswith(service.public_url + "/"):
        return url[len(service.public_url):]
    return url


def _time(value: str | None) -> str:
    if not value:
        return ""
    return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def view(service: DownloadService, d: dict[str, Any], base: str) -> dict[str, Any]:
    """A download as the page shows it: its state (a word and a sentence), progress (bytes
    of the zip sent, of its length), the link of a ready one (and in full, from ``base``,
    the address the visitor reached the portal by, to copy), what the visitor may do."""
    status, transport = d["status"], d["transport"]
    ours = served(transport)
    if status == "COMPLETE" and d["isDelivered"]:
        state, label = "delivered", "Delivered"
        detail = f"Every byte went out {_time(d['deliveredAt'])}."
    elif status == "COMPLETE":
        state, label = "ready", "Ready"
        detail = "Ready to fetch." if ours else f"Handed over through {transport}."
    elif status == "QUEUED":
        state, label, detail = "queued", "Queued", "Waiting for a free slot."
    elif status == "PREPARING":
        state, label, detail = "preparing", "Preparing", "The data is being gathered."
    elif status == "RESTORING":
        state, label = "restoring", "Restoring" if ours else "Transferring"
        detail = ("The data is being brought back from the archive." if ours else
                  f"Waiting for the {transport} transfer to finish.")
    elif status == "PAUSED":
        state, label, detail = "paused", "Paused", "Paused: resume it to carry on."
    else:
        state, label = "failed", "Failed" if d.get("error") else "Expired"
        detail = d.get("error") or "This download can no longer be fetched."
    link = None
    if state in ("ready", "delivered") and ours and d.get("preparedId"):
        link = _ids_url(service, transport) + "/getData?" + urlencode(
            {"preparedId": d["preparedId"], "outname": d["fileName"]})
    sent, length = int(d.get("bytesDelivered") or 0), d.get("length")
    signature = "|".join(str(x) for x in (state, sent, length, d.get("preparedId"),
                                          d.get("error")))
    return {"id": d["id"], "fileName": d["fileName"], "created": _time(d["createdAt"]),
            "size": d["size"], "transport": transport, "state": state, "label": label,
            "detail": detail, "pending": state in PENDING, "link": link,
            "full_link": base.rstrip("/") + link if link and link.startswith("/") else link,
            "sent": sent,
            "length": length, "email": d.get("email"),
            "can_pause": state in ("preparing", "restoring"), "can_resume": state == "paused",
            "sig": hashlib.sha256(signature.encode()).hexdigest()[:16]}


def downloads(call: Call) -> Response:
    """The visitor's downloads, newest first, a page at a time (``before``: an id)."""
    service = download_service(call)
    before = call.arg_int("before")
    condition = "where download.isDeleted = false"
    if before is not None:
        condition += f" and download.id < {int(before)}"
    rows = _downloads(call, condition, DOWNLOADS_PAGE + 1)
    more = len(rows) > DOWNLOADS_PAGE
    base = str(call.request.base_url)
    shown = [view(service, d, base) for d in rows[:DOWNLOADS_PAGE]]
    return call.render("portal/downloads.html", downloads=shown, before=before,
                       older=shown[-1]["id"] if more else None,
                       poll_seconds=POLL_SECONDS,
                       crumbs=[("My data", "/"), ("Downloads", None)])


def _cells() -> Any:
    return pages.environment().get_template("portal/download_cells.html").module


def download_status(call: Call) -> Response:
    """``?ids=1,2``: the state of those of the visitor's downloads, with the page's cells
    rendered anew (for ``cairn.js``); ids not the visitor's are left out."""
    raw = [p for p in call.args.get("ids", "").replace(" ", "").split(",") if p]
    ids = sorted({_whole("ids", p) for p in raw})
    if len(ids) > STATUS_IDS:
        raise IcatError(ErrorType.BAD_PARAMETER, f"At most {STATUS_IDS} ids at once")
    service = download_service(call)
    found = _downloads(call, "where download.id in ({})".format(", ".join(map(str, ids))),
                       len(ids)) if ids else []
    cells = _cells()
    assert call.visitor is not None
    out = {}
    for d in found:
        v = view(service, d, str(call.request.base_url))
        out[str(v["id"])] = {
            "state": v["state"], "pending": v["pending"], "sig": v["sig"],
            "deleted": bool(d.get("isDeleted")),
            "cells": {"state": str(cells.state_cell(v)),
                      "progress": str(cells.progress_cell(v)),
                      "fetch": str(cells.fetch_cell(v)),
                      "actions": str(cells.actions_cell(v, call.visitor.csrf))}}
    response = JSONResponse({"downloads": out,
                             "pending": any(d["pending"] for d in out.values())})
    response.headers.update(DATA_HEADERS)
    return response


def _own_download(call: Call) -> dict[str, Any]:
    """The visitor's download named by the form's ``id`` (404 when not theirs)."""
    download_id = _whole("id", call.field("id"))
    found = _downloads(call, f"where download.id = {download_id}", 1)
    if not found:
        raise IcatError(ErrorType.NO_SUCH_OBJECT_FOUND,
                        f"You have no download {download_id}.")
    return found[0]


def _back(call: Call) -> str:
    return safe_next(call.field("next") or "/downloads")


def download_remove(call: Call) -> Response:
    """Hide a download from the list (its link, a prepared id, ages out as any other)."""
    d = _own_download(call)
    with manager_errors():
        download_service(call).set_deleted(int(d["id"]), d["facilityName"], call.sid, True)
    return call.redirect(_back(call),
                         notice=f'Removed "{d["fileName"]}" from your downloads.')


def download_pause(call: Call) -> Response:
    d = _own_download(call)
    with manager_errors():
        download_service(call).set_status(int(d["id"]), d["facilityName"], call.sid, "PAUSED")
    return call.redirect(_back(call), notice=f"Paused \"{d['fileName']}\".")


def download_resume(call: Call) -> Response:
    d = _own_download(call)
    with manager_errors():
        download_service(call).set_status(int(d["id"]), d["facilityName"], call.sid, "RESTORING")
    return call.redirect(_back(call), notice=f"Resumed \"{d['fileName']}\".")


# -- direct downloads -------------------------------------------------------------------------


def _entity(call: Call, kind: str, entity_id: int) -> Any:
    """The entity, read as the visitor (an error page when they may not)."""
    return call.cairn.catalogue.get(call.sid, KINDS[kind], entity_id)


def direct(call: Call) -> Response:
    """The data of one investigation, dataset or datafile, with the cookie session: what
    ``/ids/getData`` sends for it (a file as itself, the others as a stored zip whose
    ranges resume)."""
    kind = _kind(call.request.path_params["kind"])
    entity_id = int(call.request.path_params["id"])
    obj = _entity(call, kind, entity_id)
    if kind == "datafile" and not obj.values.get("location"):
        raise IcatError(ErrorType.NO_SUCH_OBJECT_FOUND,
                        f"The file “{obj.values.get('name')}” has no data stored.")
    name = str(obj.values.get("name") or f"{kind}-{entity_id}")
    if kind == "investigation" and obj.values.get("visitId"):
        name = f"{name}-{obj.values['visitId']}"
    data = call.cairn.data
    try:
        dl = data.download(None, call.sid, Selection(**{f"{kind}_ids": (entity_id,)}),
                           zip=kind != "datafile", compress=False,
                           outname=None if kind == "datafile" else name)
    except IdsError as e:
        if e.code != "DataNotOnlineException":
            raise
        return call.render("portal/download_offline.html", status=503, kind=kind,
                           entity=obj, entity_id=entity_id, message=e.message,
                           crumbs=[("My data", "/"), (name, f"/browse/{kind}/{entity_id}"),
                                   ("Download", None)])
    handed_over = False  # to a response, which releases the locks when it ends
    try:
        ans = answer(dl.body, dl.filename, call.request.headers.get("range"),
                     call.request.headers.get("if-range"))
        headers = {**ans.headers, **DATA_HEADERS}
        if ans.status == 416 or call.request.method == "HEAD":
            close = getattr(ans.chunks, "close", None)
            if close is not None:
                close()
            return StreamResponse(ans.status, headers, None)
        if ans.file is not None:
            try:
                span = FileSpan.open(*ans.file)
            except FileNotFoundError:
                location = getattr(getattr(dl.body, "datafile", None), "location", "?")
                raise not_found(location) from None
            handed_over = True
            return FileSpanResponse(ans.status, headers, span, on_close=dl.release)
        handed_over = True
        return StreamResponse(ans.status, headers, ans.chunks, on_close=dl.release)
    finally:
        if not handed_over:
            dl.release()


def routes() -> list[BaseRoute]:
    return [
        Route("/cart", pages.page(cart), methods=["GET"]),
        Route("/cart/add", pages.page(cart_add), methods=["POST"]),
        Route("/cart/remove", pages.page(cart_remove), methods=["POST"]),
        Route("/cart/submit", pages.page(cart_submit), methods=["POST"]),
        Route("/downloads", pages.page(downloads), methods=["GET"]),
        Route("/downloads/status", pages.page(download_status), methods=["GET"]),
        Route("/downloads/remove", pages.page(download_remove), methods=["POST"]),
        Route("/downloads/pause", pages.page(download_pause), methods=["POST"]),
        Route("/downloads/resume", pages.page(download_resume), methods=["POST"]),
        Route("/download/{kind}/{id:int}", pages.page(direct), methods=["GET"]),
    ]
