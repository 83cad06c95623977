"""Publishing from the portal: check what DataCite still needs, then mint a DOI.

The pages are a face of the publishing service (``call.cairn.publishing``, as the
``/publishing`` REST API is): it checks, decides who may mint, writes the request and lets
its jobs talk to DataCite. These pages only read its answers out to a person:

* ``/publish/investigation/{id}``: what DataCite still needs for an investigation (blocking
  and advisable), the metadata it would get, and the "Mint DOI" form;
* ``/publish/cart``: the visitor's cart as a data collection (a title, creators, keywords),
  checked the same way, then minted (or kept as a draft);
* ``/publish/doi/{doi}``: one DOI's state, with its landing page, publishing a draft,
  deleting it, or withdrawing a published DOI (its landing page becomes a tombstone);
* ``/publish``: the visitor's DOIs (root: all of them).

Where publishing is switched off (``[publishing] enabled = false``) the pages say so; where
no DataCite account is configured they still check, and say that nothing can be minted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from cairn.errors import ErrorType, IcatError
from cairn.publishing import reading
from cairn.publishing.check import MANDATORY
from cairn.web.portal import downloads_pages, pages
from cairn.web.portal.pages import Call

#: What each state of a DOI means to a person (DataCite's states, and Cairn's pending).
STATES = {
    "pending": ("Waiting for DataCite", "Cairn has written the request; DataCite has not "
                                        "confirmed it yet."),
    "draft": ("Draft", "DataCite holds it as a draft: it is not public and does not resolve."),
    "registered": ("Registered", "It resolves to its landing page but is hidden from "
                                 "DataCite's search."),
    "findable": ("Findable", "Public: it resolves to its landing page and DataCite's search "
                             "finds it."),
}
#: The cart's entity types and the collection request's keys for them.
CART_KEYS = {"investigation": "investigationIds", "dataset": "datasetIds",
             "datafile": "datafileIds"}
RESOURCE_TYPES = (("Collection", "A collection of data (DataCite resourceTypeGeneral "
                                 "Collection)"),
                  ("Dataset", "One dataset (DataCite resourceTypeGeneral Dataset)"))
#: The longest list of keywords or creators a collection form takes.
MAX_LINES = 100

_SPLIT_KEYWORDS = re.compile(r"[,;\n]")


# -- what the templates show --------------------------------------------------------------

@dataclass
class Findings:
    """A check's findings grouped as a person acts on them."""

    blocking: list[dict[str, Any]] = field(default_factory=list)
    advisable: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, report: dict[str, Any]) -> Findings:
        out = cls()
        for f in report.get("findings", []):
            (out.blocking if f["level"] == MANDATORY else out.advisable).append(f)
        return out

    @property
    def mintable(self) -> bool:
        return not self.blocking


def preview(attrs: dict[str, Any]) -> dict[str, Any]:
    """The DataCite metadata as the page shows them (the landing page's reading of them)."""
    general, specific = reading.resource_type(attrs)
    return {
        "title": reading.title(attrs),
        "other_titles": reading.other_titles(attrs),
        "creators": reading.creators(attrs),
        "contributors": reading.contributors(attrs),
        "publisher": reading.publisher(attrs),
        "year": reading.year(attrs),
        "resource_type": specific,
        "resource_type_general": general,
        "rights": reading.rights(attrs),
        "subjects": reading.subjects(attrs),
        "dates": [(reading.words(t), d, info) for t, d, info in reading.dates(attrs)],
        "descriptions": reading.descriptions(attrs),
        "related": reading.related(attrs),
        "funding": reading.funding(attrs),
        "sizes": [s for s in attrs.get("sizes") or [] if isinstance(s, str)],
        "formats": [s for s in attrs.get("formats") or [] if isinstance(s, str)],
        "json": json.dumps(attrs, indent=2, ensure_ascii=False),
    }


def timestamp(value: Any) -> datetime | None:
    """An ISO timestamp of the publishing API as a datetime (for the ``when`` filter)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def doi_view(state: dict[str, Any]) -> dict[str, Any]:
    """A DOI's state (the service's JSON) with what the page needs to say of it."""
    s, target = state.get("state", "pending"), state.get("target", "findable")
    label, meaning = STATES.get(s, (s, ""))
    withdrawn = state.get("withdrawn") is not None
    return {
        **state,
        "label": label,
        "meaning": meaning,
        "target_label": STATES.get(target, (target, ""))[0],
        "moving": s != target,
        # Cairn serves the landing page of a DOI DataCite has registered (not of a draft).
        "landing": f"/doi/{state['doi']}" if s in ("registered", "findable") else None,
        "resolver": reading.doi_url(state["doi"]),
        "created_at": timestamp(state.get("created")),
        "updated_at": timestamp(state.get("updated")),
        "withdrawn_at": timestamp(state.get("withdrawn")),
        "is_withdrawn": withdrawn,
        "is_draft": target == "draft" and not withdrawn,
        "may_withdraw": target in ("findable", "registered") and not withdrawn,
        "replaced_by": _replaced_by(state.get("replacedBy")),
    }


def _replaced_by(ref: Any) -> tuple[str, str | None] | None:
    if not isinstance(ref, str) or not ref:
        return None
    if reading.looks_like_doi(ref):
        return ref, reading.doi_url(ref)
    return ref, reading.safe_url(ref)


# -- the service --------------------------------------------------------------------------

def service(call: Call) -> Any:
    """The publishing service, or None where publishing is switched off."""
    return getattr(call.cairn, "publishing", None)


def switched_off(call: Call, crumbs: list[tuple[str, str | None]]) -> Response:
    return call.render("portal/publish_off.html", crumbs=crumbs)


def cannot_mint(svc: Any) -> str | None:
    """Why this Cairn mints nothing at all (no DataCite account configured), or None."""
    if svc.settings.can_mint:
        return None
    return ("This Cairn is not connected to DataCite, so it cannot mint DOIs: an administrator "
            "sets the DataCite account in the [publishing] settings (datacite_url, prefix, "
            "username and password). The check below still says what DataCite would need.")


def refusal(call: Call, investigation_ids: list[int] | None = None,
            request: dict[str, Any] | None = None) -> str | None:
    """Why the visitor may not mint for these investigations (or for the investigations a
    collection ``request`` touches), in the service's words; None if they may.

    The service's own rule decides (a minter role on every investigation, the minter
    grouping, root): the same check minting makes, asked before the button is drawn.
    """
    try:
        why: str | None = service(call).may_mint(call.sid, investigation_ids or [], request)
    except IcatError as e:
        if request is not None and e.type in (ErrorType.BAD_PARAMETER,
                                              ErrorType.NO_SUCH_OBJECT_FOUND):
            return None  # a request the check refuses: its findings say why
        raise
    return why


def doi_states(call: Call, dois: list[str]) -> list[dict[str, Any]]:
    """The states of these DOIs, as far as the visitor may see them (a DOI's state is for
    whoever may change it; others see the DOI and its landing page)."""
    svc = service(call)
    out = []
    for doi in dois:
        try:
            out.append(doi_view(svc.state(call.sid, doi)))
        except IcatError as e:
            if e.type is not ErrorType.INSUFFICIENT_PRIVILEGES:
                raise
            out.append({"doi": doi, "label": None, "landing": f"/doi/{doi}",
                        "resolver": reading.doi_url(doi), "hidden": True})
    return out


# -- an investigation ---------------------------------------------------------------------

def _investigation_id(call: Call) -> int:
    raw = call.request.path_params["id"]
    try:
        return int(raw)
    except ValueError:
        raise IcatError(ErrorType.BAD_PARAMETER,
                        f"An investigation id is a whole number, not {raw!r}") from None


def investigation(call: Call) -> Response:
    """GET: what DataCite needs for the investigation, and the Mint DOI form. POST: mint."""
    inv_id = _investigation_id(call)
    crumbs: list[tuple[str, str | None]] = [("Browse", "/browse")]
    svc = service(call)
    if svc is None:
        return switched_off(call, [*crumbs, ("Publish", None)])
    report = svc.check_investigation(call.sid, inv_id)  # not found / not readable: its page
    found = call.cairn.catalogue.search(
        call.sid, f"SELECT i FROM Investigation i WHERE i.id = {inv_id}")
    values = found[0].values if found else {}
    name = values.get("title") or values.get("name") or f"Investigation {inv_id}"
    crumbs += [(name, f"/browse/investigation/{inv_id}"), ("Publish", None)]
    error, status = None, 200
    if call.form is not None:
        try:
            out = svc.mint_investigation(call.sid, inv_id)
        except IcatError as e:
            if e.type not in (ErrorType.BAD_PARAMETER, ErrorType.INSUFFICIENT_PRIVILEGES):
                raise
            error, status = e.message, pages.STATUS[e.type]
            report = svc.check_investigation(call.sid, inv_id)
        else:
            return call.redirect(f"/publish/investigation/{inv_id}", notice=(
                f"DOI {out['doi']} is minted: Cairn is registering it with DataCite. "
                "Its landing page opens once DataCite has it."))
    findings = Findings.of(report)
    dois = doi_states(call, report["dois"])
    # The investigation's own DOI (not a later version); minting again publishes a draft.
    own = next((d for d in dois if d.get("version") in (None, 1)), None)
    offer = own is None or own.get("is_draft", False)
    why_not = cannot_mint(svc) or (refusal(call, [inv_id]) if offer else None)
    return call.render(
        "portal/publish_investigation.html", status=status, crumbs=crumbs,
        investigation_id=inv_id, name=name, values=values, subject=report["subject"],
        findings=findings, preview=preview(report["metadata"]), dois=dois, own=own,
        offer=offer, why_not=why_not, can_mint=offer and findings.mintable and not why_not,
        error=error)


# -- the cart -----------------------------------------------------------------------------

def _lines(text: str, split: re.Pattern[str] | None = None) -> list[str]:
    parts = split.split(text) if split else text.splitlines()
    seen: list[str] = []
    for p in (p.strip() for p in parts):
        if p and p not in seen:
            seen.append(p)
    if len(seen) > MAX_LINES:
        raise IcatError(ErrorType.BAD_PARAMETER, f"At most {MAX_LINES} entries, please")
    return seen


def collection_request(items: list[dict[str, Any]], form: dict[str, str]) -> dict[str, Any]:
    """The publishing API's collection request for the cart's items and the form."""
    request: dict[str, Any] = {
        "title": form["title"].strip() or None,
        "description": form["description"].strip() or None,
        "creators": [{"username": u} for u in _lines(form["creators"])],
        "subjects": _lines(form["keywords"], _SPLIT_KEYWORDS),
        "resourceType": form["resourceType"],
    }
    for kind, key in CART_KEYS.items():
        request[key] = [int(i["entityId"]) for i in items if i["entityType"] == kind]
    return request


def cart(call: Call) -> Response:
    """GET: the cart as a collection to publish (a form); POST: check it, keep it as a draft
    DOI, or mint it."""
    crumbs: list[tuple[str, str | None]] = [("Cart", "/cart"), ("Publish", None)]
    svc = service(call)
    if svc is None:
        return switched_off(call, crumbs)
    facility = downloads_pages.facility(call)
    items = list(call.cairn.downloads.cart(facility, call.sid).get("cartItems", []))
    assert call.visitor is not None
    form = {"title": call.field("title"), "description": call.field("description"),
            "keywords": call.field("keywords"),
            "creators": call.field("creators", call.visitor.user),
            "resourceType": call.field("resourceType", "Collection")}
    if form["resourceType"] not in dict(RESOURCE_TYPES):
        form["resourceType"] = "Collection"
    action = call.field("action") if call.form is not None else ""
    error, status = None, 200
    report: dict[str, Any] | None = None
    problem: str | None = None
    why_not = cannot_mint(svc)
    if items and call.form is not None:
        request = collection_request(items, form)
        try:
            report = svc.check_collection(call.sid, request)
        except IcatError as e:
            if e.type not in (ErrorType.BAD_PARAMETER, ErrorType.NO_SUCH_OBJECT_FOUND):
                raise
            problem = e.message.rstrip(".")  # the form itself is wrong: a blocking finding
        why_not = why_not or refusal(call, request=request)
        findings = Findings.of(report) if report else Findings()
        if problem:
            findings.blocking.insert(0, {"property": "the form", "level": MANDATORY,
                                         "message": problem, "source": ""})
        if action in ("draft", "mint"):
            if why_not or (action == "mint" and not findings.mintable) or problem:
                error = ("Nothing was minted: " + (why_not or problem or
                                                   "DataCite would refuse it, see below."))
                status = 403 if why_not and not problem else 400
            else:
                return _make_collection(call, request, publish=action == "mint")
    else:
        findings = Findings()
    checked = report is not None or problem is not None
    return call.render(
        "portal/publish_cart.html", status=status, crumbs=crumbs, items=items, form=form,
        resource_types=RESOURCE_TYPES, checked=checked, findings=findings,
        preview=preview(report["metadata"]) if report else None, why_not=why_not,
        can_mint=checked and findings.mintable and not why_not, error=error)


def _make_collection(call: Call, request: dict[str, Any], publish: bool) -> Response:
    svc = service(call)
    draft = svc.draft_collection(call.sid, request)
    doi = draft["doi"]
    if not publish:
        return call.redirect(f"/publish/doi/{doi}", notice=(
            f"Draft DOI {doi} is made: check it, then publish it from this page."))
    try:
        svc.publish(call.sid, doi)
    except IcatError as e:  # the draft stays: its page says what to do
        if e.type not in (ErrorType.BAD_PARAMETER, ErrorType.INSUFFICIENT_PRIVILEGES):
            raise
        return call.redirect(f"/publish/doi/{doi}", notice=(
            f"Draft DOI {doi} is made, but it could not be published: {e.message}"))
    return call.redirect(f"/publish/doi/{doi}", notice=(
        f"DOI {doi} is minted: Cairn is registering it with DataCite. Its landing page "
        "opens once DataCite has it."))


# -- one DOI, and the visitor's DOIs ------------------------------------------------------

def doi_page(call: Call) -> Response:
    """GET: a DOI's state. POST (``action``): publish a draft, delete a draft, or withdraw."""
    doi = call.request.path_params["doi"]
    crumbs: list[tuple[str, str | None]] = [(_list_name(call), "/publish"), (doi, None)]
    svc = service(call)
    if svc is None:
        return switched_off(call, crumbs)
    error, status = None, 200
    if call.form is not None:
        action = call.field("action")
        try:
            if action == "publish":
                svc.publish(call.sid, doi)
                notice = f"DOI {doi} is on its way to DataCite to be published."
            elif action == "withdraw":
                svc.withdraw(call.sid, doi, call.field("reason"),
                             call.field("replacedBy") or None)
                notice = (f"DOI {doi} is withdrawn: it still resolves, to a tombstone saying "
                          "why.")
            elif action == "delete":
                svc.delete_draft(call.sid, doi)
                return call.redirect("/publish", notice=f"Draft DOI {doi} is being deleted.")
            else:
                raise IcatError(ErrorType.BAD_PARAMETER, f"Unknown action {action!r}")
        except IcatError as e:
            if e.type not in (ErrorType.BAD_PARAMETER, ErrorType.INSUFFICIENT_PRIVILEGES):
                raise
            error, status = e.message, pages.STATUS[e.type]
        else:
            return call.redirect(f"/publish/doi/{doi}", notice=notice)
    state = doi_view(svc.state(call.sid, doi))
    crumbs[-1] = (state["doi"], None)
    subject = None
    if state.get("kind") == "investigation" and state.get("subjectId") is not None:
        inv_id = int(state["subjectId"])
        found = call.cairn.catalogue.search(
            call.sid, f"SELECT i.title FROM Investigation i WHERE i.id = {inv_id}")
        subject = (found[0] if found and found[0] else f"Investigation {inv_id}",
                   f"/browse/investigation/{inv_id}", f"/publish/investigation/{inv_id}")
    return call.render("portal/publish_doi.html", status=status, crumbs=crumbs, d=state,
                       subject=subject, error=error, reason=call.field("reason"),
                       replaced_by=call.field("replacedBy"))


def _list_name(call: Call) -> str:
    return "All DOIs" if call.visitor is not None and call.visitor.root else "My DOIs"


def mine(call: Call) -> Response:
    """The visitor's DOIs (root: every DOI Cairn minted), newest first."""
    crumbs: list[tuple[str, str | None]] = [(_list_name(call), None)]
    svc = service(call)
    if svc is None:
        return switched_off(call, crumbs)
    rows = [doi_view(d) for d in svc.list(call.sid)]
    rows.sort(key=lambda d: (d.get("created") or "", d["doi"]), reverse=True)
    return call.render("portal/publish_list.html", crumbs=crumbs, dois=rows,
                       why_not=cannot_mint(svc))


def routes() -> list[BaseRoute]:
    return [
        Route("/publish", pages.page(mine), methods=["GET"]),
        Route("/publish/investigation/{id}", pages.page(investigation),
              methods=["GET", "POST"]),
        Route("/publish/cart", pages.page(cart), methods=["GET", "POST"]),
        Route("/publish/doi/{doi:path}", pages.page(doi_page), methods=["GET", "POST"]),
    ]
