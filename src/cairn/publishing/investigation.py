"""The "automatic" mode: the publication of a whole investigation (:func:`from_investigation`),
its metadata taken from the investigation, its users, techniques, keywords, instruments,
publications and funding.
"""

from __future__ import annotations

import re

from cairn.catalogue.objects import Obj
from cairn.catalogue.work import Work
from cairn.publishing.objects import by_id, day, funding_of, linked, person_key, ref, user_person
from cairn.publishing.publication import (
    TYPE_INVESTIGATION,
    Context,
    Dated,
    Person,
    Publication,
    Related,
    Subject,
    publication_date,
    unique_related,
    unique_subjects,
)
from cairn.publishing.vocabulary import is_url

PANET_TERMS = "http://purl.org/pan-science/PaNET/"
PANET_SCHEME = "http://purl.org/pan-science/PaNET/PaNET.owl"

_INVESTIGATION = ("Investigation i INCLUDE i.facility, i.investigationUsers AS iu, iu.user, "
                  "i.keywords, i.investigationInstruments AS ii, ii.instrument, "
                  "i.publications, i.fundingReferences AS fr, fr.funding")


def from_investigation(work: Work, investigation_id: int, ctx: Context) -> Publication:
    """The publication of a whole investigation, its metadata taken from the investigation."""
    inv: Obj = work.get(_INVESTIGATION, investigation_id)
    v = inv.values
    techniques = work.search(
        "SELECT DISTINCT t FROM Technique t JOIN t.datasetTechniques dt JOIN dt.dataset ds "
        f"WHERE ds.investigation.id = {int(investigation_id)}")
    dates = []
    start, end = v.get("startDate"), v.get("endDate")
    if start is not None or end is not None:
        days = [day(work, d) for d in (start, end) if d is not None]
        dates.append(Dated("Collected", "/".join(dict.fromkeys(days))))
    if v.get("releaseDate") is not None:
        dates.append(Dated("Available", day(work, v["releaseDate"])))
    now = publication_date(ctx.now)
    dates.append(Dated("Issued", now.date().isoformat()))
    subjects = [technique_subject(t) for t in sorted(techniques, key=_by_name)]
    subjects += [Subject(k.values["name"]) for k in sorted(inv.manys["keywords"], key=_by_name)]
    return Publication(
        title=v["title"], description=v.get("summary"), facility_id=ref(inv, "facility"),
        publication_date=now, type_name=TYPE_INVESTIGATION, resource_type_general="Dataset",
        users=_investigation_people(inv, ctx), dates=dates, subjects=unique_subjects(subjects),
        related=unique_related(_instruments(inv) + _citations(inv)),
        funding=[funding_of(f) for f in linked(inv.manys["fundingReferences"], "funding")],
        investigation_ids=[investigation_id])


def _investigation_people(inv: Obj, ctx: Context) -> list[Person]:
    """Creators: the principal investigators, then everybody else, each group by name; a
    user with several roles appears once."""
    pi = {r.casefold() for r in ctx.pi_roles}
    users: dict[int, tuple[bool, Obj]] = {}
    for iu in inv.manys["investigationUsers"]:
        u = iu.ones.get("user")
        if u is None or u.id is None:
            continue
        is_pi = iu.values["role"].casefold() in pi
        users[u.id] = (is_pi or users.get(u.id, (False, u))[0], u)
    ordered = sorted(users.values(), key=lambda pu: (not pu[0], *person_key(pu[1])))
    width = max(4, len(str(len(ordered))))
    return [user_person(u, f"{i:0{width}d}") for i, (_, u) in enumerate(ordered, 1)]


def _instruments(inv: Obj) -> list[Related]:
    """The instruments with a PID (or else a URL) collected the data."""
    out = []
    for ii in by_id(inv.manys["investigationInstruments"]):
        inst = ii.ones.get("instrument")
        if inst is None:
            continue
        iv = inst.values
        ident = iv.get("pid") or iv.get("url")
        if ident:
            out.append(Related(ident, "IsCollectedBy", "Instrument",
                               iv.get("fullName") or iv["name"]))
    return out


def _citations(inv: Obj) -> list[Related]:
    """Publication rows cite the data; one without DOI or URL is known by its reference."""
    out = []
    for p in by_id(inv.manys["publications"]):
        pv = p.values
        reference = pv["fullReference"]
        out.append(Related((pv.get("doi") or pv.get("url") or reference)[:255], "IsCitedBy",
                           "JournalArticle", None, reference))
    return out


def technique_subject(t: Obj) -> Subject:
    """A technique as a subject; a PaNET term (the PaN ontology of techniques) with its
    scheme."""
    name, pid = t.values["name"], t.values.get("pid")
    if not pid:
        return Subject(name)
    code = re.search(r"PaNET\d+", pid)
    if code is None:
        return Subject(name, pid, pid if is_url(pid) else None)
    uri = pid if is_url(pid) else PANET_TERMS + code.group(0)
    return Subject(name, pid, uri, "PaNET", PANET_SCHEME, code.group(0))


def _by_name(o: Obj) -> tuple[str, str]:
    return o.values["name"].casefold(), o.values["name"]
