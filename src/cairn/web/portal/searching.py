"""The search pages: free-text search with facets, over the in-database index.

``/search`` is one GET form, so every search is a link that can be bookmarked and shared:

- ``target`` (Investigation, Dataset or Datafile: the tabs), ``text`` (Lucene syntax),
  ``sort`` (a key of :data:`SORTS`), ``mine=1`` (only the visitor's data);
- one parameter per facet dimension (:data:`FACETS`), repeated for each value ticked: values
  of one dimension are alternatives, dimensions all apply;
- ``from`` and ``to`` (dates, in the catalogue's zone): the search's ``lower`` and ``upper``;
- parameter rows ``pname``, ``pvalue``, ``pmin``, ``pmax``, ``punits`` (repeated together):
  the search's ``parameters``, a range in any units the converter knows;
- ``after`` (the ``search_after`` of the previous page) and ``shown`` (how many results
  the previous pages showed): paging by keys, never by offset.

The page calls the same :class:`~cairn.search.service.SearchService` as
``/icat/search/documents``, in-process and as the visitor, so it finds exactly what that
endpoint finds for them, and its facets count the whole authorized result.

The page is drawn from its hits alone: exact counts over a million files take longer than a
page of them. The facet panels and the number found come from ``/search/facets`` (the same
query parameters), an HTML fragment the page's script (``search.js``) puts in place; without
the script, a "Show counts" link asks for the page again with ``counts=1``, which counts
before drawing. Where more documents than :data:`RANK_LIMIT` would have to be scored for
relevance, the page shows them in the order they were catalogued instead, and says so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from cairn.errors import ErrorType, IcatError
from cairn.web.portal import pages
from cairn.web.portal.pages import Call

TARGETS = ("Investigation", "Dataset", "Datafile")

#: How each target is named on the page (tab, counts).
PLURAL = {"Investigation": "investigations", "Dataset": "datasets", "Datafile": "files"}
SINGULAR = {"Investigation": "investigation", "Dataset": "dataset", "Datafile": "file"}

#: Results per page.
PAGE_SIZE = 25

#: Labels of a facet shown before "more".
FACET_SHOWN = 8

#: Parameter rows a page can carry.
MAX_PARAMETER_ROWS = 10

#: Documents the page ranks by relevance at most: every one is scored before the first page
#: is known (about a microsecond each on SQLite). More are shown in id order, and the page
#: says so; ``/icat/search/documents`` always ranks.
RANK_LIMIT = 20_000

#: The sort options: (label, the search's sort, or None for relevance).
SORTS: dict[str, tuple[str, dict[str, str] | None]] = {
    "relevance": ("Relevance", None),
    "date-desc": ("Newest first", {"date": "desc"}),
    "date-asc": ("Oldest first", {"date": "asc"}),
    "name-asc": ("Name, A to Z", {"name": "asc"}),
    "name-desc": ("Name, Z to A", {"name": "desc"}),
    "size-desc": ("Largest first", {"fileSize": "desc"}),
    "size-asc": ("Smallest first", {"fileSize": "asc"}),
}


@dataclass(frozen=True)
class Facet:
    """One facet panel: its URL parameter, its heading, what the search counts (a facet
    ``target`` and ``dimension``) and the ``filter`` key a ticked value becomes."""

    param: str
    label: str
    target: str
    dimension: str
    filter_key: str

    @property
    def key(self) -> str:
        """The facet's name in the search's ``dimensions``."""
        return f"{self.target}.{self.dimension}"


_INSTRUMENT = Facet("instrument", "Instrument", "InvestigationInstrument", "instrument.name",
                    "investigationinstrument.instrument.name")
_TECHNIQUE = Facet("technique", "Technique", "DatasetTechnique", "technique.name",
                   "datasettechnique.technique.name")

#: The facet panels of each target. A parameter name means the same on every target that
#: has it, so switching tabs keeps the values ticked there.
FACETS: dict[str, tuple[Facet, ...]] = {
    "Investigation": (
        Facet("investigationType", "Investigation type", "Investigation", "type.name",
              "investigation.type.name"),
        _INSTRUMENT,
        Facet("cycle", "Facility cycle", "InvestigationFacilityCycle", "facilityCycle.name",
              "investigationfacilitycycle.facilityCycle.name"),
        Facet("sampleType", "Sample type", "Sample", "type.name", "sample.type.name"),
        Facet("investigationParameter", "Parameter", "InvestigationParameter", "type.name",
              "investigationparameter.type.name"),
    ),
    "Dataset": (
        Facet("datasetType", "Dataset type", "Dataset", "type.name", "dataset.type.name"),
        _INSTRUMENT,
        _TECHNIQUE,
        Facet("sampleType", "Sample type", "Dataset", "sample.type.name", "sample.type.name"),
        Facet("datasetParameter", "Parameter", "DatasetParameter", "type.name",
              "datasetparameter.type.name"),
    ),
    "Datafile": (
        Facet("format", "File format", "Datafile", "datafileFormat.name",
              "datafile.datafileFormat.name"),
        _INSTRUMENT,
        _TECHNIQUE,
        Facet("sampleType", "Sample type", "Datafile", "sample.type.name", "sample.type.name"),
        Facet("datafileParameter", "Parameter", "DatafileParameter", "type.name",
              "datafileparameter.type.name"),
    ),
}

FACET_PARAMS = tuple(dict.fromkeys(f.param for fs in FACETS.values() for f in fs))

#: The key of the range facet that counts the whole result (a range with no bounds).
TOTAL = "all"


class Mistake(Exception):
    """Something typed in the form that can't be searched: shown next to the form (400)."""


# -- what the page was asked -------------------------------------------------------------------

@dataclass(frozen=True)
class ParameterRow:
    """A parameter filter as typed: a name, one value or a range, and units."""

    name: str = ""
    value: str = ""
    low: str = ""
    high: str = ""
    units: str = ""

    @property
    def empty(self) -> bool:
        return not (self.name or self.value or self.low or self.high or self.units)

    def query(self) -> dict[str, Any]:
        """The entry of the search's ``parameters``."""
        if not self.name:
            raise Mistake("Give the name of the parameter to filter on "
                          "(* and ? match any characters).")
        units = self.units or "*"
        out: dict[str, Any] = {"name": self.name, "units": units}
        if self.value and (self.low or self.high):
            raise Mistake(f"Parameter {self.name}: give a value or a range, not both.")
        if self.value:
            number = _number(self.value, f"Parameter {self.name}: the value")
            if number is None:  # text: a string value (wildcards allowed)
                out["stringValue"] = self.value
                return out
            # a number typed is exact to its digits; a value stored in other units is the
            # same quantity up to the rounding of the conversion
            slack = max(abs(number), 1.0) * 1e-9
            out["lowerNumericValue"] = number - slack
            out["upperNumericValue"] = number + slack
            return out
        if not (self.low or self.high):
            raise Mistake(f"Parameter {self.name}: give a value, or a minimum and/or a "
                          "maximum.")
        low = _number(self.low, f"Parameter {self.name}: the minimum", required=True)
        high = _number(self.high, f"Parameter {self.name}: the maximum", required=True)
        if low is not None and high is not None and low > high:
            raise Mistake(f"Parameter {self.name}: the minimum is above the maximum.")
        out["lowerNumericValue"] = low
        out["upperNumericValue"] = high
        return out


def _number(text: str, what: str, required: bool = False) -> float | None:
    """``text`` as a finite number; None for no text, or (unless ``required``) for text that
    is not a number."""
    if not text:
        return None
    try:
        n = float(text)
    except ValueError:
        if required:
            raise Mistake(f"{what} must be a number, not {text!r}.") from None
        return None
    if not math.isfinite(n):
        raise Mistake(f"{what} must be a finite number.")
    return n


@dataclass(frozen=True)
class Criteria:
    """The page's query parameters, read once, and the links that change one of them."""

    target: str = "Investigation"
    text: str = ""
    sort: str = "relevance"
    mine: bool = False
    date_from: str = ""
    date_to: str = ""
    chosen: dict[str, tuple[str, ...]] = field(default_factory=dict)
    parameters: tuple[ParameterRow, ...] = ()
    after: str = ""
    shown: int = 0
    counts: bool = False  # count before drawing (the page without its script)

    @classmethod
    def read(cls, args: Any) -> Criteria:
        """From the request's query parameters (a Starlette ``QueryParams``)."""
        target = args.get("target") or "Investigation"
        matched = [t for t in TARGETS if t.lower() == target.lower()]
        if not matched:
            raise IcatError(ErrorType.BAD_PARAMETER,
                            f"target must be one of {', '.join(TARGETS)}, not {target!r}")
        sort = args.get("sort") or "relevance"
        if sort not in SORTS:
            sort = "relevance"
        chosen = {p: tuple(dict.fromkeys(v for v in args.getlist(p) if v))
                  for p in FACET_PARAMS}
        columns = [args.getlist(n) for n in ("pname", "pvalue", "pmin", "pmax", "punits")]
        rows = []
        for i in range(max(len(c) for c in columns)):
            row = ParameterRow(*(c[i].strip() if i < len(c) else "" for c in columns))
            if not row.empty:
                rows.append(row)
        try:
            shown = max(0, int(args.get("shown") or 0))
        except ValueError:
            shown = 0
        return cls(target=matched[0], text=args.get("text") or "", sort=sort,
                   mine=args.get("mine") in ("1", "on", "true"),
                   date_from=(args.get("from") or "").strip(),
                   date_to=(args.get("to") or "").strip(),
                   chosen={p: v for p, v in chosen.items() if v},
                   parameters=tuple(rows[:MAX_PARAMETER_ROWS]),
                   after=args.get("after") or "", shown=shown,
                   counts=args.get("counts") == "1")

    # -- links ------------------------------------------------------------------------------

    def pairs(self, *, paging: bool = False) -> list[tuple[str, str]]:
        """The query parameters that give this search (and its page, if ``paging``)."""
        out: list[tuple[str, str]] = [("target", self.target)]
        if self.text:
            out.append(("text", self.text))
        if self.sort != "relevance":
            out.append(("sort", self.sort))
        if self.mine:
            out.append(("mine", "1"))
        if self.date_from:
            out.append(("from", self.date_from))
        if self.date_to:
            out.append(("to", self.date_to))
        for f in FACETS[self.target]:
            out.extend((f.param, v) for v in self.chosen.get(f.param, ()))
        for p in self.parameters:
            out.extend((("pname", p.name), ("pvalue", p.value), ("pmin", p.low),
                        ("pmax", p.high), ("punits", p.units)))
        if paging and self.after:
            out.extend((("after", self.after), ("shown", str(self.shown))))
        if self.counts:
            out.append(("counts", "1"))
        return out

    def facets_link(self) -> str:
        """``/search/facets?…``: the counts of this search (the page's script loads it)."""
        return "/search/facets?" + urlencode(replace(self, counts=False).pairs())

    def counts_link(self) -> str:
        """This page again, with its counts drawn in (the link shown without the script);
        the links and the form of that page keep counting."""
        return "/search?" + urlencode(replace(self, counts=True).pairs(paging=True))

    def link(self, **changes: Any) -> str:
        """``/search?…`` for this search with ``changes`` (fields of this class) applied, on
        its first page unless ``after`` is among them."""
        changed = replace(self, **{"after": "", "shown": 0, **changes})
        return "/search?" + urlencode(changed.pairs(paging=True))

    def without(self, param: str, value: str) -> str:
        """This search without one ticked facet value."""
        chosen = dict(self.chosen)
        chosen[param] = tuple(v for v in chosen.get(param, ()) if v != value)
        return self.link(chosen=chosen)

    # -- the search's query --------------------------------------------------------------------

    def query(self, user: str, zone: ZoneInfo, facets: bool = True) -> dict[str, Any]:
        """The JSON ``query`` of ``/icat/search/documents`` this search is."""
        q: dict[str, Any] = {"target": self.target}
        if self.text.strip():
            q["text"] = self.text
        if self.mine:
            q["user"] = user
        low = _day(self.date_from, "From", zone)
        high = _day(self.date_to, "To", zone, end=True)
        if low is not None and high is not None and low > high:
            raise Mistake("The From date is after the To date.")
        if low is not None:
            q["lower"] = low
        if high is not None:
            q["upper"] = high
        if self.parameters:
            q["parameters"] = [p.query() for p in self.parameters]
        flt = {f.filter_key: list(self.chosen[f.param]) for f in FACETS[self.target]
               if self.chosen.get(f.param)}
        if flt:
            q["filter"] = flt
        if facets:
            q["facets"] = facet_requests(self.target)
        return q


def _day(text: str, what: str, zone: ZoneInfo, end: bool = False) -> int | None:
    """The start (or with ``end``, the last millisecond) of a ``YYYY-MM-DD`` day in the
    catalogue's zone, as epoch milliseconds."""
    if not text:
        return None
    try:
        d = date.fromisoformat(text)
    except ValueError:
        raise Mistake(f"{what} must be a date such as 2024-03-05, not {text!r}.") from None
    if end:
        if d == date.max:
            raise Mistake(f"{what} is too far in the future.")
        d += timedelta(days=1)
    try:
        midnight = datetime(d.year, d.month, d.day, tzinfo=zone).timestamp()
    except (OverflowError, ValueError):
        raise Mistake(f"{what} is out of range.") from None
    return int(midnight * 1000) - (1 if end else 0)


def facet_requests(target: str) -> list[dict[str, Any]]:
    """The search's ``facets``: every panel of the target, and the total (a range of ids
    with no bounds counts every document found)."""
    grouped: dict[str, list[dict[str, Any]]] = {
        target: [{"dimension": "id", "ranges": [{"key": TOTAL}]}]}
    for f in FACETS[target]:
        grouped.setdefault(f.target, []).append({"dimension": f.dimension})
    return [{"target": t, "dimensions": dims} for t, dims in grouped.items()]


# -- what the page shows ---------------------------------------------------------------------

@dataclass(frozen=True)
class FacetValue:
    label: str
    count: int | None  # None: ticked, but not among the labels counted
    checked: bool
    remove: str  # the search without this value (for a ticked one)


@dataclass(frozen=True)
class FacetPanel:
    facet: Facet
    values: list[FacetValue]

    @property
    def shown(self) -> list[FacetValue]:
        return self.values[:max(FACET_SHOWN, sum(v.checked for v in self.values))]

    @property
    def more(self) -> list[FacetValue]:
        return self.values[len(self.shown):]


def panels(criteria: Criteria, dimensions: dict[str, dict[str, int]]) -> list[FacetPanel]:
    out = []
    for f in FACETS[criteria.target]:
        counts = dimensions.get(f.key, {})
        ticked = criteria.chosen.get(f.param, ())
        values = [FacetValue(v, counts.get(v), True, criteria.without(f.param, v))
                  for v in ticked]
        values += [FacetValue(label, n, False, "") for label, n in counts.items()
                   if label not in ticked]
        if values:
            out.append(FacetPanel(f, values))
    return out


def _facets(criteria: Criteria, dimensions: dict[str, dict[str, int]]) -> dict[str, Any]:
    """The page's facet panels, and the values ticked in them (with links removing each)."""
    shown = panels(criteria, dimensions)
    return {"panels": shown, "active": [(p.facet.label, v) for p in shown for v in p.values
                                        if v.checked]}


def _when(ms: Any, zone: ZoneInfo) -> datetime | None:
    if not isinstance(ms, int | float):
        return None
    return datetime.fromtimestamp(ms / 1000, zone)


def result_row(target: str, hit: dict[str, Any], zone: ZoneInfo) -> dict[str, Any]:
    """What a result shows, from its ``source`` (fields the visitor may not read are absent
    there, so absent here)."""
    s = hit.get("source", {})
    row: dict[str, Any] = {
        "id": hit["id"], "name": s.get("name") or f"#{hit['id']}",
        "size": s.get("fileSize"), "files": s.get("fileCount"), "doi": s.get("doi"),
        "instruments": [i["instrument.name"] for i in s.get("investigationinstrument", [])
                        if i.get("instrument.name")]}
    if target == "Investigation":
        row.update(title=s.get("title") or row["name"], visit=s.get("visitId"),
                   type=s.get("type.name"), start=_when(s.get("startDate"), zone),
                   end=_when(s.get("endDate"), zone),
                   samples=[x["sample.name"] for x in s.get("sample", [])
                            if x.get("sample.name")])
    elif target == "Dataset":
        row.update(description=s.get("description"), type=s.get("type.name"),
                   sample=s.get("sample.name"), start=_when(s.get("startDate"), zone),
                   investigation_id=s.get("investigation.id"),
                   investigation=s.get("investigation.title") or s.get("investigation.name"))
    else:
        row.update(description=s.get("description"),
                   format=s.get("datafileFormat.name"), date=_when(s.get("date"), zone),
                   dataset_id=s.get("dataset.id"), dataset=s.get("dataset.name"),
                   investigation_id=s.get("investigation.id"),
                   investigation=s.get("investigation.name"))
    return row


def parameter_types(call: Call, target: str) -> list[tuple[str, str]]:
    """(name, units) of the parameter types that apply to the target, for the form's
    suggestions (a short table: one query)."""
    query = ("SELECT pt.name, pt.units FROM ParameterType pt "
             f"WHERE pt.applicableTo{target} = true ORDER BY pt.name, pt.units")
    try:
        rows = call.cairn.catalogue.search(call.sid, query)
    except IcatError as e:
        if e.type != ErrorType.INSUFFICIENT_PRIVILEGES:
            raise
        return []
    return [(str(r[0]), str(r[1] or "")) for r in rows]


def _units(types: Iterable[tuple[str, str]]) -> list[str]:
    """Units to suggest: those of the parameter types, and ones they convert to."""
    extra = {"K": ("degC", "degF"), "eV": ("keV",), "keV": ("eV",), "bar": ("mbar", "Pa",
             "kPa"), "mm": ("um", "m"), "um": ("nm", "mm"), "s": ("ms",), "mA": ("A",),
             "mg": ("g",), "Angstrom": ("nm",)}
    out: dict[str, None] = {}
    for _, units in types:
        if units and units != "N/A":
            out[units] = None
            out.update(dict.fromkeys(extra.get(units, ())))
    return list(out)


def unknown_units(criteria: Criteria, types: Iterable[tuple[str, str]],
                  known: Callable[[str], bool]) -> list[str]:
    """A word for each parameter filter in units the converter does not know: its values are
    then compared only with parameters recorded in exactly those units."""
    recorded = {units for _, units in types}
    return [f"Parameter {p.name}: Cairn can't convert {p.units!r}, so only values recorded "
            f"in {p.units!r} are compared." for p in criteria.parameters
            if p.units and (p.low or p.high or _number(p.value, "") is not None)
            and not known(p.units) and p.units not in recorded]


def _plain(criteria: Criteria, service: Any) -> dict[str, Any]:
    """What every search page shows, whatever was found."""
    return {
        "criteria": criteria, "plural": PLURAL, "singular": SINGULAR, "sorts": SORTS,
        "tabs": [(t, criteria.link(target=t)) for t in TARGETS],
        "indexed": set(service.index.docs) if service is not None else set(),
        "enabled": service is not None, "panels": [], "active": [], "results": [],
        "total": None, "counted": False, "unranked": False, "rank_limit": RANK_LIMIT,
        "next_link": None, "first_link": None, "error": None, "problem": None,
        "warnings": [], "parameter_types": [], "units": []}


def _problem(criteria: Criteria, service: Any) -> str | None:
    """Why this search can't run here, said on the page (not an error)."""
    if service is None:
        return ("Free-text search is switched off on this catalogue. "
                "Browse the catalogue instead.")
    if criteria.target not in service.index.docs:
        return (f"{PLURAL[criteria.target].capitalize()} are not indexed for free-text search "
                "on this catalogue: search another tab, or browse the catalogue instead.")
    return None


def _count(call: Call, criteria: Criteria, service: Any, zone: ZoneInfo
           ) -> tuple[dict[str, dict[str, int]], int | None]:
    """The facet counts of the whole result, and the number found."""
    assert call.visitor is not None
    found = service.facets(call.sid, json.dumps(criteria.query(call.visitor.user, zone)))
    dimensions: dict[str, dict[str, int]] = found.get("dimensions", {})
    total = dimensions.pop(f"{criteria.target}.id", {}).get(TOTAL)
    return dimensions, total


def _mistake(e: Exception) -> str | None:
    """The message of something the visitor typed wrong; None for anything else."""
    if isinstance(e, Mistake):
        return str(e)
    if isinstance(e, IcatError) and e.type in (ErrorType.BAD_PARAMETER, ErrorType.VALIDATION):
        return e.message
    return None


def search_page(call: Call) -> Response:
    """Free-text search: the tabs, a page of results, and the facets (counted here with
    ``counts=1``, else by ``/search/facets`` when the page's script asks)."""
    criteria = Criteria.read(call.args)
    service = call.cairn.search
    zone: ZoneInfo = call.cairn.catalogue.zone
    context = _plain(criteria, service)
    context["problem"] = _problem(criteria, service)
    if context["problem"]:
        return call.render("portal/search.html", **context)
    assert call.visitor is not None
    types = parameter_types(call, criteria.target)
    context.update(parameter_types=types, units=_units(types),
                   warnings=unknown_units(criteria, types, service.units.known))
    counted = criteria.counts
    try:
        query = criteria.query(call.visitor.user, zone, facets=False)
        sort = SORTS[criteria.sort][1]
        found = service.search_documents(
            call.sid, json.dumps(query), criteria.after or None, None, str(PAGE_SIZE),
            json.dumps(sort) if sort else None, rank_limit=RANK_LIMIT)
        dimensions, total = _count(call, criteria, service, zone) if counted else ({}, None)
    except (Mistake, IcatError) as e:
        message = _mistake(e)
        if message is None:
            raise
        # the form as it was sent (ticked values kept), the message next to the box
        context.update(error=message, **_facets(criteria, {}))
        return call.render("portal/search.html", status=400, **context)
    results = [result_row(criteria.target, h, zone) for h in found.get("results", [])]
    after = found.get("search_after")
    if not results and not criteria.after:
        total, counted = 0, True  # nothing found: nothing to count
    context.update(
        # without counts, the panels hold the values ticked (the form keeps them)
        **_facets(criteria, dimensions), results=results, total=total, counted=counted,
        unranked=bool(found.get("unranked")),
        next_link=(criteria.link(after=json.dumps(after, separators=(",", ":")),
                                 shown=criteria.shown + len(results)) if after else None),
        first_link=criteria.link() if criteria.after else None)
    return call.render("portal/search.html", **context)


def facets_fragment(call: Call) -> Response:
    """``/search/facets``: the facet panels and the number found of a search (the query
    parameters of ``/search``), as a fragment of HTML for the search page's script."""
    criteria = Criteria.read(call.args)
    service = call.cairn.search
    zone: ZoneInfo = call.cairn.catalogue.zone
    context = _plain(criteria, service)
    context["error"] = _problem(criteria, service)
    if context["error"]:
        return call.render("portal/search_facets.html", status=404, **context)
    try:
        dimensions, total = _count(call, criteria, service, zone)
    except (Mistake, IcatError) as e:
        message = _mistake(e)
        if message is None:
            raise
        context["error"] = message
        return call.render("portal/search_facets.html", status=400, **context)
    context.update(**_facets(criteria, dimensions), total=total, counted=True)
    return call.render("portal/search_facets.html", **context)


def routes() -> list[BaseRoute]:
    return [Route("/search", pages.page(search_page), methods=["GET"]),
            Route("/search/facets", pages.page(facets_fragment), methods=["GET"])]

