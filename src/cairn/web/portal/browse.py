"""Browsing the catalogue: facility, instrument, cycle, investigation, dataset, datafile.

Every page reads through the catalogue as the visitor (``catalogue.search`` and ``.get``), so
a person sees exactly what the rules let them read: an investigation they may not read is an
error page, and never a row of a table. Tables sort, filter and page by keyset
(:mod:`cairn.web.portal.paging`), with all their state in the query string.

A cycle page lists the instrument's investigations whose start falls within the cycle, as
DataGateway's ISIS view does; an investigation's breadcrumbs go through the cycle its start
falls in, so the way back is the way one came.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from cairn.catalogue.objects import Obj
from cairn.errors import ErrorType, IcatError
from cairn.web.portal import pages
from cairn.web.portal.pages import Call, when
from cairn.web.portal.paging import Column, Listing, Page
from cairn.web.portal.signin import quoted

Crumbs = list[tuple[str, str | None]]

#: The facilities /browse lists (a catalogue usually holds one).
MAX_FACILITIES = 100

# -- the tables ---------------------------------------------------------------------------

INVESTIGATIONS = Listing(
    var="i",
    columns=(Column("start", "startDate", "date", descending=True),
             Column("title", "title"),
             Column("name", "name", nullable=False),
             Column("size", "fileSize", "number", descending=True)),
    default="start", filters=("title", "name", "visitId"))
DATASETS = Listing(
    var="ds",
    columns=(Column("name", "name", nullable=False),
             Column("start", "startDate", "date", descending=True),
             Column("size", "fileSize", "number", descending=True)),
    default="name", filters=("name", "description"))
DATAFILES = Listing(
    var="df",
    columns=(Column("name", "name", nullable=False),
             Column("size", "fileSize", "number", descending=True),
             Column("created", "datafileCreateTime", "date", descending=True)),
    default="name", filters=("name",))
INSTRUMENTS = Listing(
    var="ins",
    columns=(Column("name", "name", nullable=False), Column("fullName", "fullName"),
             Column("type", "type")),
    default="name", filters=("name", "fullName"))
CYCLES = Listing(
    var="fc",
    columns=(Column("start", "startDate", "date", descending=True),
             Column("name", "name", nullable=False)),
    default="start", filters=("name",), prefix="cycles-")

#: What an investigation row brings along.
INVESTIGATION_ROW = "i.investigationInstruments ii, ii.instrument, i.type"


def _search(call: Call) -> Callable[[str], list[Any]]:
    catalogue, sid = call.cairn.catalogue, call.sid
    return lambda text: list(catalogue.search(sid, text))


def _size(call: Call) -> int:
    return int(call.cairn.settings.portal.page_size)


def _id(call: Call) -> int:
    return int(call.request.path_params["id"])


def _get(call: Call, query: str, ident: int) -> Obj:
    found = call.cairn.catalogue.get(call.sid, query, ident)
    assert isinstance(found, Obj)
    return found


def _literal(value: datetime) -> str:
    return quoted(value.isoformat(sep=" "))


# -- what pages show of an object -----------------------------------------------------------

def _number(x: float | int) -> str:
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return str(x)


def parameter(p: Obj) -> dict[str, Any]:
    """A parameter as a page shows it: name, value (with its error), units and the range
    observed."""
    kind = p.ones.get("type")
    t = kind.values if kind is not None else {}
    v = p.values
    extent = ""
    if v.get("numericValue") is not None:
        value = _number(v["numericValue"])
        if v.get("error") is not None:
            value += f" ± {_number(v['error'])}"
        if v.get("rangeBottom") is not None and v.get("rangeTop") is not None:
            extent = f"{_number(v['rangeBottom'])} to {_number(v['rangeTop'])}"
    elif v.get("stringValue") is not None:
        value = str(v["stringValue"])
    elif v.get("dateTimeValue") is not None:
        value = when(v["dateTimeValue"])
    else:
        value = ""
    units = t.get("units")
    if units in (None, "", "N/A"):
        units = ""
    return {"name": t.get("name", ""), "value": value, "range": extent, "units": units,
            "units_full": t.get("unitsFullName") or "", "description": t.get("description")}


def parameters(objs: Iterable[Obj]) -> list[dict[str, Any]]:
    return sorted((parameter(p) for p in objs), key=lambda p: (p["name"].lower(), p["value"]))


def _one(obj: Obj | None, name: str) -> Obj | None:
    return None if obj is None else obj.ones.get(name)


def instruments_of(investigation: Obj) -> list[Obj]:
    found = [ii.ones.get("instrument") for ii in
             investigation.manys.get("investigationInstruments", [])]
    return sorted((i for i in found if i is not None), key=lambda i: str(i.values["name"]))


def doi_href(call: Call, doi: str | None) -> str | None:
    """Where a DOI links: Cairn's own landing page for a DOI Cairn minted or knows, the
    resolver otherwise."""
    if not doi:
        return None
    from cairn.publishing.reading import doi_url
    from cairn.publishing.store import normalize

    service = call.cairn.publishing
    if service is not None:
        d = normalize(doi)
        prefix = (service.settings.prefix or "").lower()
        ours = bool(prefix) and d.startswith(prefix + "/")
        if not ours:
            with call.cairn.catalogue.as_system(read_only=True) as work:
                ours = service.has_dois(work) and service.dois.get(work.conn, d) is not None
        if ours:
            return "/doi/" + d
    return doi_url(doi)


# -- breadcrumbs --------------------------------------------------------------------------

def _cycle_at(call: Call, facility_id: int, start: datetime | None) -> Obj | None:
    """The facility's cycle the date falls in (the newest, should cycles overlap)."""
    if start is None:
        return None
    found = call.cairn.catalogue.search(
        call.sid, f"SELECT fc FROM FacilityCycle fc WHERE fc.facility.id = {int(facility_id)} "
                  f"AND fc.startDate <= {_literal(start)} AND fc.endDate >= {_literal(start)} "
                  "ORDER BY fc.startDate DESC, fc.id DESC LIMIT 0, 1")
    return found[0] if found else None


def investigation_label(i: Obj) -> str:
    v = i.values
    visit = v.get("visitId")
    return f"{v.get('name')} visit {visit}" if visit else str(v.get("name"))


def lineage(call: Call, investigation: Obj) -> Crumbs:
    """Browse > facility > instrument > cycle > investigation: where an investigation sits.
    ``investigation`` was read with its facility and instruments."""
    crumbs: Crumbs = [("Browse", "/browse")]
    facility = investigation.ones.get("facility")
    if facility is not None:
        crumbs.append((str(facility.values["name"]), f"/browse/facility/{facility.id}"))
    instruments = instruments_of(investigation)
    if instruments:
        ins = instruments[0]
        crumbs.append((str(ins.values["name"]), f"/browse/instrument/{ins.id}"))
        if facility is not None:
            cycle = _cycle_at(call, int(facility.id or 0), investigation.values.get("startDate"))
            if cycle is not None:
                crumbs.append((str(cycle.values["name"]),
                               f"/browse/instrument/{ins.id}/cycle/{cycle.id}"))
    crumbs.append((investigation_label(investigation),
                   f"/browse/investigation/{investigation.id}"))
    return crumbs


# -- the pages ----------------------------------------------------------------------------

def index(call: Call) -> Response:
    """Facilities and their instruments."""
    facilities = call.cairn.catalogue.search(
        call.sid, f"SELECT f FROM Facility f ORDER BY f.name, f.id "
                  f"LIMIT 0, {MAX_FACILITIES + 1} INCLUDE f.instruments")
    shown = [{"facility": f,
              "instruments": sorted(f.manys.get("instruments", []),
                                    key=lambda i: str(i.values["name"]).lower())}
             for f in facilities[:MAX_FACILITIES]]
    return call.render("portal/browse_index.html", facilities=shown,
                       more=len(facilities) > MAX_FACILITIES,
                       crumbs=[("Browse", None)])


def mine(call: Call) -> Response:
    """All the visitor's investigations, most recent first."""
    page = INVESTIGATIONS.fetch(
        call.args, _size(call), _search(call), "Investigation i",
        ["i.id IN (SELECT iu.investigation.id FROM InvestigationUser iu "
         "WHERE iu.user.name = :user)"], INVESTIGATION_ROW)
    return call.render("portal/browse_mine.html", page=page,
                       crumbs=[("Browse", "/browse"), ("My investigations", None)])


def facility(call: Call) -> Response:
    """A facility: its instruments and its cycles."""
    f = _get(call, "Facility", _id(call))
    search, size = _search(call), _size(call)
    instruments = INSTRUMENTS.fetch(call.args, size, search, "Instrument ins",
                                    [f"ins.facility.id = {int(f.id or 0)}"])
    cycles = CYCLES.fetch(call.args, size, search, "FacilityCycle fc",
                          [f"fc.facility.id = {int(f.id or 0)}"])
    return call.render("portal/browse_facility.html", facility=f, instruments=instruments,
                       cycles=cycles,
                       crumbs=[("Browse", "/browse"), (str(f.values["name"]), None)])


def _instrument(call: Call, ident: int) -> tuple[Obj, Crumbs]:
    ins = _get(call, "Instrument ins INCLUDE ins.facility", ident)
    crumbs: Crumbs = [("Browse", "/browse")]
    fac = ins.ones.get("facility")
    if fac is not None:
        crumbs.append((str(fac.values["name"]), f"/browse/facility/{fac.id}"))
    crumbs.append((str(ins.values["name"]), f"/browse/instrument/{ins.id}"))
    return ins, crumbs


def _on_instrument(ident: int) -> str:
    return f"ii.instrument.id = {int(ident)}"


def _readable_in_cycles(call: Call, instrument_id: int, cycle_ids: list[int]
                        ) -> dict[int, int]:
    """Cycle id -> how many of the instrument's investigations that started in it the visitor
    may read (one grouped query; the rules restrict what is counted)."""
    if not cycle_ids:
        return {}
    rows = call.cairn.catalogue.search(
        call.sid, "SELECT fc.id, COUNT(i) FROM Investigation i JOIN i.investigationInstruments "
                  f"ii, FacilityCycle fc WHERE {_on_instrument(instrument_id)} AND fc.id IN "
                  f"({', '.join(str(int(c)) for c in cycle_ids)}) AND i.startDate >= "
                  "fc.startDate AND i.startDate <= fc.endDate GROUP BY fc.id")
    return {int(cycle): int(n) for cycle, n in rows}


def instrument(call: Call) -> Response:
    """An instrument: the facility cycles it has investigations in (newest first), and its
    investigations."""
    ins, crumbs = _instrument(call, _id(call))
    search, size = _search(call), _size(call)
    fac = ins.ones.get("facility")
    cycles: Page | None = None
    counts: dict[int, int] = {}
    if fac is not None:
        # Cycles with an investigation on this instrument starting in them (the cycle is what
        # is read and checked; the investigations only qualify it, as in DataGateway's view),
        # and how many of those investigations the visitor may read.
        cycles = CYCLES.fetch(call.args, size, search, "FacilityCycle fc", [
            f"fc.facility.id = {int(fac.id or 0)}",
            "EXISTS (SELECT i.id FROM Investigation i JOIN i.investigationInstruments ii "
            f"WHERE {_on_instrument(int(ins.id or 0))} AND i.startDate >= fc.startDate "
            "AND i.startDate <= fc.endDate)"])
        counts = _readable_in_cycles(call, int(ins.id or 0), [int(c.id) for c in cycles.rows])
    investigations = INVESTIGATIONS.fetch(
        call.args, size, search, "Investigation i JOIN i.investigationInstruments ii",
        [_on_instrument(int(ins.id or 0))], "i.type")
    crumbs[-1] = (crumbs[-1][0], None)
    return call.render("portal/browse_instrument.html", instrument=ins, cycles=cycles,
                       counts=counts, page=investigations, crumbs=crumbs)


def cycle(call: Call) -> Response:
    """The instrument's investigations that started within the cycle."""
    ins, crumbs = _instrument(call, _id(call))
    fc = _get(call, "FacilityCycle fc INCLUDE fc.facility", int(call.request.path_params["cycle"]))
    fac, cycle_fac = ins.ones.get("facility"), fc.ones.get("facility")
    if fac is None or cycle_fac is None or fac.id != cycle_fac.id:
        raise IcatError(ErrorType.NO_SUCH_OBJECT_FOUND,
                        f"Cycle {fc.values['name']} is not a cycle of the facility of "
                        f"{ins.values['name']}.")
    where = [_on_instrument(int(ins.id or 0))]
    start, end = fc.values.get("startDate"), fc.values.get("endDate")
    if start is not None:
        where.append(f"i.startDate >= {_literal(start)}")
    if end is not None:
        where.append(f"i.startDate <= {_literal(end)}")
    page = INVESTIGATIONS.fetch(call.args, _size(call), _search(call),
                                "Investigation i JOIN i.investigationInstruments ii", where,
                                "i.type")
    crumbs.append((str(fc.values["name"]), None))
    return call.render("portal/browse_cycle.html", instrument=ins, cycle=fc, page=page,
                       crumbs=crumbs)


def investigation(call: Call) -> Response:
    """An investigation: its facts, people, samples, parameters and publications; then its
    datasets."""
    inv = _get(call, "Investigation i INCLUDE i.type, i.facility, i.investigationUsers iu, "
                     "iu.user, i.samples s, s.type, s.parameters sp, sp.type, "
                     "i.parameters p, p.type, i.publications, i.keywords, "
                     "i.investigationInstruments ii, ii.instrument", _id(call))
    datasets = DATASETS.fetch(call.args, _size(call), _search(call), "Dataset ds",
                              [f"ds.investigation.id = {int(inv.id or 0)}"],
                              "ds.type, ds.sample")
    users: list[dict[str, Any]] = [
        {"user": user, "role": iu.values.get("role")}
        for iu in inv.manys.get("investigationUsers", [])
        if (user := iu.ones.get("user")) is not None]
    users.sort(key=lambda u: (u["role"] not in ("PI", "principal_experimenter"),
                              str(u["user"].values.get("fullName") or u["user"].values["name"])))
    samples: list[dict[str, Any]] = [
        {"sample": s, "type": s.ones.get("type"),
         "parameters": parameters(s.manys.get("parameters", []))}
        for s in inv.manys.get("samples", [])]
    samples.sort(key=lambda s: str(s["sample"].values.get("name")))
    return call.render(
        "portal/browse_investigation.html", investigation=inv, page=datasets,
        instruments=instruments_of(inv), users=users, samples=samples,
        parameters=parameters(inv.manys.get("parameters", [])),
        keywords=sorted(str(k.values["name"]) for k in inv.manys.get("keywords", [])),
        publications=inv.manys.get("publications", []),
        doi=doi_href(call, inv.values.get("doi")), crumbs=lineage(call, inv))


#: An investigation read with what its breadcrumbs need.
_LINEAGE = "inv.facility, inv.investigationInstruments ii, ii.instrument"


def dataset(call: Call) -> Response:
    """A dataset: its facts, sample and parameters; then its datafiles."""
    ds = _get(call, "Dataset ds INCLUDE ds.type, ds.sample smp, smp.type, ds.parameters p, "
                    f"p.type, ds.investigation inv, {_LINEAGE}, "
                    "ds.datasetTechniques dt, dt.technique", _id(call))
    inv = ds.ones.get("investigation")
    crumbs: Crumbs = lineage(call, inv) if inv is not None else [("Browse", "/browse")]
    crumbs.append((str(ds.values["name"]), None))
    args = call.args
    total = ds.values.get("fileCount") if not args.get(DATAFILES.param("q")) else None
    files = DATAFILES.fetch(args, _size(call), _search(call), "Datafile df",
                            [f"df.dataset.id = {int(ds.id or 0)}"], "df.datafileFormat",
                            total=total)
    techniques = sorted(str(t.values["name"]) for t in
                        (dt.ones.get("technique") for dt in ds.manys.get("datasetTechniques", []))
                        if t is not None)
    return call.render("portal/browse_dataset.html", dataset=ds, investigation=inv,
                       page=files, sample=_one(ds, "sample"), techniques=techniques,
                       parameters=parameters(ds.manys.get("parameters", [])),
                       doi=doi_href(call, ds.values.get("doi")), crumbs=crumbs)


def datafile(call: Call) -> Response:
    """A datafile: its facts and parameters."""
    df = _get(call, "Datafile df INCLUDE df.datafileFormat, df.parameters p, p.type, "
                    f"df.dataset ds, ds.investigation inv, {_LINEAGE}", _id(call))
    ds = df.ones.get("dataset")
    inv = _one(ds, "investigation")
    crumbs: Crumbs = lineage(call, inv) if inv is not None else [("Browse", "/browse")]
    if ds is not None:
        crumbs.append((str(ds.values["name"]), f"/browse/dataset/{ds.id}"))
    crumbs.append((str(df.values["name"]), None))
    return call.render("portal/browse_datafile.html", datafile=df, dataset=ds,
                       parameters=parameters(df.manys.get("parameters", [])),
                       doi=doi_href(call, df.values.get("doi")), crumbs=crumbs)


def routes() -> list[BaseRoute]:
    return [
        Route("/browse", pages.page(index), methods=["GET"]),
        Route("/browse/mine", pages.page(mine), methods=["GET"]),
        Route("/browse/facility/{id:int}", pages.page(facility), methods=["GET"]),
        Route("/browse/instrument/{id:int}", pages.page(instrument), methods=["GET"]),
        Route("/browse/instrument/{id:int}/cycle/{cycle:int}", pages.page(cycle),
              methods=["GET"]),
        Route("/browse/investigation/{id:int}", pages.page(investigation), methods=["GET"]),
        Route("/browse/dataset/{id:int}", pages.page(dataset), methods=["GET"]),
        Route("/browse/datafile/{id:int}", pages.page(datafile), methods=["GET"]),
    ]

