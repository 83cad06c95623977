"""A publication's DataCite metadata: :func:`metadata` maps a :class:`Publication` onto
DataCite schema 4.5's attributes, with sizes and formats computed from its content;
:func:`instrument` does the same for an instrument (PIDINST). Everything reads through the
caller's unit of work, so what a user may not read stays out of the sums.

ICAT takes any text where DataCite has a vocabulary: a contributor, date or relation type is
matched without case, and one DataCite does not know becomes its most neutral term (Other,
References). An attribute with nothing to say is left out rather than sent empty: the check
reports what is missing.
"""

from __future__ import annotations

from typing import Any

from cairn.catalogue.objects import Obj
from cairn.catalogue.work import Work
from cairn.publishing.content import Content
from cairn.publishing.model import Files, Kind, Metadata
from cairn.publishing.objects import day, linked, person_key, ref, user_person, utc
from cairn.publishing.publication import (
    UNASSIGNED,
    Affiliation,
    Context,
    Funding,
    Person,
    Publication,
    Related,
    Subject,
)
from cairn.publishing.vocabulary import (
    CONTRIBUTOR,
    CREATOR,
    DATE,
    RELATION,
    RESOURCE,
    identifier_type,
    is_url,
    orcid_uri,
    organisation_scheme,
)


def metadata(work: Work, publication: Publication, ctx: Context) -> Metadata:
    """The DataCite attributes of a publication, with sizes and formats computed from its
    content."""
    pub = publication
    facility = _facility(work, pub.facility_id)
    content = Content(work, pub)
    attrs: dict[str, Any] = {}
    # contributorType is free text in ICAT: matched without case; one DataCite does not
    # know is "Other".
    types = [CONTRIBUTOR.get(p.contributor_type.casefold(), "Other") for p in pub.users]
    creators = [_person(p) for p, t in zip(pub.users, types, strict=True) if t == CREATOR]
    contributors = [{**_person(p), "contributorType": t}
                    for p, t in zip(pub.users, types, strict=True) if t != CREATOR]
    _put(attrs, "creators", creators)
    _put(attrs, "titles", [{"title": pub.title}] if pub.title.strip() else [])
    attrs["publisher"] = _publisher(facility, ctx)
    attrs["publicationYear"] = f"{pub.publication_date.year:04d}"
    attrs["types"] = {"resourceTypeGeneral": pub.resource_type_general,
                      "resourceType": pub.type_name or pub.resource_type_general}
    _put(attrs, "subjects", [_subject(s) for s in pub.subjects])
    _put(attrs, "contributors", contributors)
    dates = [{"date": d.date, "dateType": DATE.get(d.date_type.casefold(), "Other")}
             | ({} if d.date_type.casefold() in DATE else {"dateInformation": d.date_type})
             for d in pub.dates]
    if not any(d["dateType"] == "Issued" for d in dates):
        dates.append({"date": pub.publication_date.date().isoformat(), "dateType": "Issued"})
    attrs["dates"] = dates
    alternates = [{"alternateIdentifier": pub.internal_id,
                   "alternateIdentifierType": "Internal identifier"}] if pub.internal_id else []
    if len(content.selected) == 1 and not (content.datasets or content.datafiles):
        # The DOI names exactly one investigation: its own key identifies it too.
        inv = content.investigations[content.selected[0]]
        alternates.append({"alternateIdentifier": inv.name_visit,
                           "alternateIdentifierType": f"{facility.values['name']} investigation"})
    _put(attrs, "alternateIdentifiers", alternates)
    _related(attrs, pub.related)
    files = content.files()
    _put(attrs, "sizes", _sizes(files))
    _put(attrs, "formats", files.formats)
    _put(attrs, "rightsList", rights(ctx.rights))
    _put(attrs, "descriptions", [{"description": pub.description, "descriptionType": "Abstract"}]
         if pub.description and pub.description.strip() else [])
    _put(attrs, "fundingReferences", [_funder(f) for f in pub.funding])
    return Metadata(kind=pub.kind, attributes=attrs, files=files, release=content.release(),
                    data=content.data())


def _put(attrs: dict[str, Any], key: str, values: list[Any]) -> None:
    """Absent rather than empty: the check reports what is missing."""
    if values:
        attrs[key] = values


def _facility(work: Work, facility_id: int) -> Obj:
    # The facility names the publisher: not a secret, whoever asks.
    with work.as_system():
        fac: Obj = work.get("Facility", facility_id)
    return fac


def _publisher(facility: Obj, ctx: Context) -> str | dict[str, str]:
    name = ctx.publisher or facility.values.get("fullName") or facility.values["name"]
    if not ctx.publisher_identifier:
        return name
    # DataCite's REST API takes a string or, since schema 4.5, an object with an identifier.
    out = {"name": name, "publisherIdentifier": ctx.publisher_identifier}
    scheme = organisation_scheme(ctx.publisher_identifier)
    if scheme is not None:
        out["publisherIdentifier"], out["publisherIdentifierScheme"], out["schemeUri"] = scheme
    return out


def _person(p: Person) -> dict[str, Any]:
    """A creator or contributor. One without any name has no ``name`` (the check reports
    it rather than an invented name going out)."""
    out: dict[str, Any] = {}
    name = person_name(p)
    if name:
        out["name"] = name
    out["nameType"] = "Personal"
    if p.given_name:
        out["givenName"] = p.given_name
    if p.family_name:
        out["familyName"] = p.family_name
    uri = orcid_uri(p.orcid) if p.orcid else None
    if uri is not None:
        out["nameIdentifiers"] = [{"nameIdentifier": uri, "nameIdentifierScheme": "ORCID",
                                   "schemeUri": "https://orcid.org"}]
    affiliations = [_affiliation(a) for a in p.affiliations]
    if affiliations:
        out["affiliation"] = affiliations
    return out


def person_name(p: Person) -> str | None:
    """DataCite's form "Family, Given" when both are known, else the full name."""
    if p.family_name and p.given_name:
        return f"{p.family_name}, {p.given_name}"
    return p.full_name or p.family_name or None


def _affiliation(a: Affiliation) -> dict[str, str]:
    # fullReference is "as it should appear in the publication"; name is ICAT's handle.
    out = {"name": a.full_reference or a.name}
    scheme = organisation_scheme(a.pid) if a.pid else None
    if scheme is not None:
        out["affiliationIdentifier"], out["affiliationIdentifierScheme"], out["schemeUri"] = \
            scheme
    return out


def _subject(s: Subject) -> dict[str, str]:
    out = {"subject": s.name}
    if s.scheme:
        out["subjectScheme"] = s.scheme
    if s.scheme_uri and is_url(s.scheme_uri):
        out["schemeUri"] = s.scheme_uri
    uri = s.value_uri or (s.pid if s.pid and is_url(s.pid) else None)
    if uri and is_url(uri):
        out["valueUri"] = uri
    if s.classification_code:
        out["classificationCode"] = s.classification_code
    return out


def _related(attrs: dict[str, Any], related: list[Related]) -> None:
    identifiers: list[dict[str, str]] = []
    items: list[dict[str, Any]] = []
    for r in related:
        # An unknown relation (ICAT takes any text) becomes the most neutral one DataCite has.
        relation = RELATION.get(r.relation_type.casefold(), "References")
        general = RESOURCE.get((r.related_item_type or "").casefold())
        found = identifier_type(r.identifier)
        if found is not None:
            entry = {"relatedIdentifier": found[1], "relatedIdentifierType": found[0],
                     "relationType": relation}
            if general:
                entry["resourceTypeGeneral"] = general
            identifiers.append(entry)
        else:
            items.append({"relationType": relation, "relatedItemType": general or "Other",
                          "titles": [{"title": r.title or r.full_reference or r.identifier}]})
    _put(attrs, "relatedIdentifiers", identifiers)
    _put(attrs, "relatedItems", items)


def _funder(f: Funding) -> dict[str, str]:
    out = {"funderName": f.funder_name}
    if f.funder_identifier:
        out["funderIdentifier"] = f.funder_identifier
        out["funderIdentifierType"] = _funder_scheme(f.funder_identifier)
    if f.award_number and f.award_number not in (UNASSIGNED, ":unav", ":unap", ":unkn"):
        out["awardNumber"] = f.award_number
    if f.award_title:
        out["awardTitle"] = f.award_title
    return out


def _funder_scheme(identifier: str) -> str:
    if "10.13039/" in identifier:
        return "Crossref Funder ID"
    scheme = organisation_scheme(identifier)
    return scheme[1] if scheme else "Other"


#: Common licences: SPDX id -> (name, URI); others are named by their id and spdx.org.
_LICENCES = {
    "CC-BY-4.0": ("Creative Commons Attribution 4.0 International",
                  "https://creativecommons.org/licenses/by/4.0/legalcode"),
    "CC-BY-SA-4.0": ("Creative Commons Attribution Share Alike 4.0 International",
                     "https://creativecommons.org/licenses/by-sa/4.0/legalcode"),
    "CC-BY-NC-4.0": ("Creative Commons Attribution Non Commercial 4.0 International",
                     "https://creativecommons.org/licenses/by-nc/4.0/legalcode"),
    "CC0-1.0": ("Creative Commons Zero v1.0 Universal",
                "https://creativecommons.org/publicdomain/zero/1.0/legalcode"),
}


def rights(spdx: str) -> list[dict[str, str]]:
    """The rightsList of a licence given by its SPDX id ("" -> none)."""
    if not spdx:
        return []
    name, uri = _LICENCES.get(spdx, (spdx, f"https://spdx.org/licenses/{spdx}.html"))
    return [{"rights": name, "rightsUri": uri, "rightsIdentifier": spdx,
             "rightsIdentifierScheme": "SPDX", "schemeUri": "https://spdx.org/licenses/"}]


def _sizes(files: Files) -> list[str]:
    if not (files.datafiles or files.size):
        return []
    return [_count(files.datafiles, "file"), _bytes(files.size)]


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _bytes(n: int) -> str:
    """Decimal units, as storage is sold: 1 kB = 1000 bytes."""
    if n < 1000:
        return _count(n, "byte")
    value, unit = float(n), 0
    while value >= 999.95 and unit < len(_UNITS):
        value, unit = value / 1000, unit + 1
    return f"{value:.1f} {_UNITS[unit - 1]}"


_UNITS = ("kB", "MB", "GB", "TB", "PB", "EB")


# -- instruments (PIDINST) -------------------------------------------------------------------

_INSTRUMENT = "Instrument i INCLUDE i.facility, i.instrumentScientists AS s, s.user"


def instrument(work: Work, instrument_id: int, ctx: Context) -> Metadata:
    """An instrument's DataCite metadata after PIDINST's mapping (resourceTypeGeneral
    Instrument)."""
    inst: Obj = work.get(_INSTRUMENT, instrument_id)
    v = inst.values
    fac = inst.ones.get("facility") or _facility(work, ref(inst, "facility"))
    owner = fac.values.get("fullName") or fac.values["name"]
    organisation: dict[str, Any] = {"name": owner, "nameType": "Organizational"}
    scheme = organisation_scheme(ctx.publisher_identifier) \
        if ctx.publisher_identifier and not ctx.publisher else None
    if scheme is not None:  # the identifier configured for the publisher is the facility's
        organisation["nameIdentifiers"] = [{"nameIdentifier": scheme[0],
                                            "nameIdentifierScheme": scheme[1],
                                            "schemeUri": scheme[2]}]
    titles = [{"title": v.get("fullName") or v["name"]}]
    if v.get("fullName") and v["fullName"] != v["name"]:
        titles.append({"title": v["name"], "titleType": "AlternativeTitle"})
    scientists = sorted(linked(inst.manys["instrumentScientists"], "user"), key=person_key)
    attrs: dict[str, Any] = {
        # ICAT records no manufacturer (PIDINST's creator): the facility that built or runs
        # the instrument stands in for it, as an organisation.
        "creators": [organisation],
        "titles": titles,
        "publisher": _publisher(fac, ctx),
        "publicationYear": f"{ctx.now.year:04d}",
        "types": {"resourceTypeGeneral": "Instrument", "resourceType": v.get("type") or
                  "Instrument"},
        "contributors": [{**organisation, "contributorType": "HostingInstitution"}]
        + [{**_person(user_person(u, "")), "contributorType": "ContactPerson"}
           for u in scientists],
    }
    dates = [{"date": day(work, v[key]), "dateType": "Other", "dateInformation": words}
             for key, words in (("startDate", "Commissioned"), ("endDate", "DeCommissioned"))
             if v.get(key) is not None]
    _put(attrs, "dates", dates)
    pid = v.get("pid")
    found = identifier_type(pid) if pid else None
    if found is not None and found[0] != "DOI":  # a DOI is the one being minted
        attrs["alternateIdentifiers"] = [{"alternateIdentifier": found[1],
                                          "alternateIdentifierType": found[0]}]
    if v.get("url"):
        attrs["relatedIdentifiers"] = [{"relatedIdentifier": v["url"],
                                        "relatedIdentifierType": "URL",
                                        "relationType": "IsDescribedBy"}]
    descriptions = []
    if v.get("description"):
        descriptions.append({"description": v["description"], "descriptionType": "Abstract"})
    if v.get("type"):
        descriptions.append({"description": f"Instrument type: {v['type']}",
                             "descriptionType": "TechnicalInfo"})
    _put(attrs, "descriptions", descriptions)
    _put(attrs, "rightsList", rights(ctx.rights))
    end = v.get("endDate")
    return Metadata(kind=Kind.INSTRUMENT, attributes=attrs,
                    decommissioned=None if end is None else utc(work, end))
