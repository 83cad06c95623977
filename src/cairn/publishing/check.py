"""Is a DOI's metadata complete enough to mint? What DataCite requires (mandatory) and
recommends, each missing property told with the catalogue field that would supply it.

The Identifier is the service's own business and GeoLocation has no source in ICAT: neither is
checked. Creator ORCID iDs and affiliations and funding references are checked as
recommendations: DataCite does not require them, but they are what makes a DOI findable and
creditable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cairn.publishing.model import Kind, Metadata
from cairn.publishing.vocabulary import RESOURCE_TYPES

MANDATORY = "mandatory"
RECOMMENDED = "recommended"


@dataclass(frozen=True)
class Finding:
    #: The DataCite property, e.g. "creators" or "descriptions (Abstract)".
    property: str
    #: "mandatory" or "recommended".
    level: str
    #: What is missing and where to add it, for a facility scientist.
    message: str
    #: The catalogue field that would supply it.
    source: str


@dataclass(frozen=True)
class _Where:
    """Where the catalogue keeps a property for one kind of DOI: its fields, and what to do."""

    source: str
    advice: str


#: Per kind of DOI, per property: the catalogue fields and the advice ({s} is the subject).
_PUBLICATION = {
    "creators": _Where("InvestigationUser.user / DataPublicationUser (contributorType Creator)",
                       "add an InvestigationUser to {s}, or a DataPublicationUser with "
                       "contributorType 'Creator' to its DataPublication"),
    "names": _Where("User.fullName, givenName, familyName / DataPublicationUser.fullName",
                    "set the fullName (or givenName and familyName) of that User or "
                    "DataPublicationUser"),
    "titles": _Where("Investigation.title / DataPublication.title",
                     "set the title of {s}"),
    "publisher": _Where("[publishing] publisher / Facility.fullName, Facility.name",
                        "set [publishing] publisher, or the fullName of the facility of {s}"),
    "publicationYear": _Where("DataPublication.publicationDate",
                              "set the publicationDate of the DataPublication of {s}"),
    "types": _Where("DataPublicationType.name, description",
                    "name the type of {s} with one of DataCite's resourceTypeGeneral values "
                    "(e.g. 'resourceTypeGeneral Dataset' in the DataPublicationType's "
                    "description)"),
    "subjects": _Where("Technique.name, pid / Keyword.name / Subject",
                       "add techniques (DatasetTechnique, with a PaNET pid) or Keywords to {s}, "
                       "or Subject rows to its DataPublication"),
    "contributors": _Where("DataPublicationUser (contributorType other than Creator)",
                           "add a DataPublicationUser with a DataCite contributorType such as "
                           "'ContactPerson' or 'DataCollector' to the DataPublication of {s}"),
    "dates": _Where("Investigation.startDate, endDate, releaseDate / DataPublicationDate",
                    "set the startDate and endDate (when the data were collected) of {s}, or "
                    "add a DataPublicationDate"),
    "relatedIdentifiers": _Where("InvestigationInstrument.instrument.pid / Publication.doi / "
                                 "RelatedItem.identifier",
                                 "give the instrument of {s} a pid, add Publication rows with "
                                 "a doi, or add a RelatedItem whose identifier is a DOI, "
                                 "Handle or URL"),
    "descriptions": _Where("Investigation.summary / DataPublication.description",
                           "write a summary (the abstract) for {s}"),
    "orcid": _Where("User.orcidId", "set the orcidId of their ICAT Users"),
    "affiliation": _Where("User.affiliation / Affiliation (pid: a ROR URL)",
                          "set the affiliation of their ICAT Users, or add Affiliation rows "
                          "(with a ROR pid) to their DataPublicationUsers"),
    "fundingReferences": _Where("InvestigationFunding.funding / DataPublicationFunding",
                                "add a FundingReference to {s} through InvestigationFunding "
                                "(or DataPublicationFunding)"),
}

_COLLECTION = {
    **_PUBLICATION,
    "creators": _Where("DataPublicationUser (contributorType Creator)",
                       "name at least one creator (an ICAT user name) in the request for {s}, "
                       "or add a DataPublicationUser with contributorType 'Creator' to its "
                       "DataPublication"),
    "titles": _Where("DataPublication.title", "give a title to {s}"),
    "subjects": _Where("Subject", "give subjects (keywords) in the request for {s}, or add "
                                  "Subject rows to its DataPublication"),
    "dates": _Where("DataPublicationDate", "add a DataPublicationDate to {s}"),
    "relatedIdentifiers": _Where("RelatedItem.identifier",
                                 "give related items with a DOI, Handle or URL identifier in "
                                 "the request for {s}, or add RelatedItem rows"),
    "descriptions": _Where("DataPublication.description",
                           "give a description (the abstract) of {s}"),
    "fundingReferences": _Where("DataPublicationFunding.funding",
                                "give fundingReferences in the request for {s}, or add "
                                "DataPublicationFunding rows"),
}

_INSTRUMENT = {
    "creators": _Where("Facility.fullName, Facility.name (ICAT has no manufacturer)",
                       "set the fullName of the facility of {s}"),
    "names": _Where("Facility.fullName / User.fullName",
                    "set the fullName of the facility or of the instrument scientist"),
    "titles": _Where("Instrument.fullName, Instrument.name", "set the fullName of {s}"),
    "publisher": _Where("[publishing] publisher / Facility.fullName, Facility.name",
                        "set [publishing] publisher, or the fullName of the facility of {s}"),
    "publicationYear": _Where("the time of minting", "mint {s} again"),
    "types": _Where("(always Instrument)", "report this: an instrument is always 'Instrument'"),
    "contributors": _Where("InstrumentScientist.user",
                           "add an InstrumentScientist (the contact person) to {s}"),
    "dates": _Where("Instrument.startDate, Instrument.endDate",
                    "set the startDate (commissioning) of {s}"),
    "relatedIdentifiers": _Where("Instrument.url", "set the url (a page describing it) of {s}"),
    "descriptions": _Where("Instrument.description", "write a description of {s}"),
}

_WHERE = {Kind.INVESTIGATION: _PUBLICATION, Kind.COLLECTION: _COLLECTION,
          Kind.CONCEPT: _COLLECTION, Kind.INSTRUMENT: _INSTRUMENT}

_YEAR = re.compile(r"[0-9]{4}")


def check(metadata: Metadata, subject: str = "") -> list[Finding]:
    """What DataCite needs (mandatory) or recommends and ``metadata`` lacks. ``subject`` names
    the object in the messages, e.g. "investigation 'AB-123' (id 42)"."""
    a = metadata.attributes
    kind = metadata.kind
    where = _WHERE[kind]
    s = subject or ("the instrument" if kind is Kind.INSTRUMENT else "the publication")
    out: list[Finding] = []

    def add(prop: str, level: str, what: str, key: str | None = None) -> None:
        name = key or prop.split(" ")[0]
        w = where.get(name) or _PUBLICATION[name]
        out.append(Finding(prop, level, f"{what}: {w.advice.format(s=s)}", w.source))

    creators = _items(a.get("creators"))
    if not creators:
        add("creators", MANDATORY, "No creator")
    else:
        nameless = [str(i) for i, c in enumerate(creators, 1) if not _text(c.get("name"))]
        if nameless:
            add("creators", MANDATORY, f"Creator {', '.join(nameless)} of {len(creators)} has "
                f"no name", "names")
    if not any(_text(t.get("title")) for t in _items(a.get("titles"))):
        add("titles", MANDATORY, "No title")
    publisher = a.get("publisher")
    if not _text(publisher.get("name") if isinstance(publisher, dict) else publisher):
        add("publisher", MANDATORY, "No publisher")
    if not _YEAR.fullmatch(str(a.get("publicationYear") or "")):
        add("publicationYear", MANDATORY, "No publication year")
    types = a.get("types")
    general = types.get("resourceTypeGeneral") if isinstance(types, dict) else None
    if general not in RESOURCE_TYPES:
        add("types.resourceTypeGeneral", MANDATORY,
            "No resource type" if not general else f"'{general}' is not a DataCite "
            "resourceTypeGeneral", "types")

    if kind is not Kind.INSTRUMENT and not _items(a.get("subjects")):
        add("subjects", RECOMMENDED, "No subjects")
    contributors = _items(a.get("contributors"))
    if not contributors:
        add("contributors", RECOMMENDED, "No contributors")
    elif kind is Kind.INSTRUMENT and not any(c.get("contributorType") == "ContactPerson"
                                             for c in contributors):
        # The hosting institution is always there; PIDINST wants someone to ask.
        add("contributors (ContactPerson)", RECOMMENDED, "No contact person")
    if not _items(a.get("dates")):
        add("dates", RECOMMENDED, "No dates")
    if not _items(a.get("relatedIdentifiers")):
        items = _items(a.get("relatedItems"))
        add("relatedIdentifiers", RECOMMENDED,
            f"{len(items)} related item(s) but none with a DOI, Handle or URL" if items
            else "No related identifiers")
    if not any(d.get("descriptionType") == "Abstract" and _text(d.get("description"))
               for d in _items(a.get("descriptions"))):
        add("descriptions (Abstract)", RECOMMENDED, "No abstract")

    people = [c for c in creators if c.get("nameType", "Personal") == "Personal"]
    no_orcid = [_label(c, i) for i, c in enumerate(people, 1)
                if not any(n.get("nameIdentifierScheme") == "ORCID"
                           for n in _items(c.get("nameIdentifiers")))]
    if no_orcid:
        add("creators (ORCID)", RECOMMENDED, f"No ORCID iD for {_names(no_orcid)}", "orcid")
    no_affiliation = [_label(c, i) for i, c in enumerate(people, 1)
                      if not _items(c.get("affiliation"))]
    if no_affiliation:
        add("creators (affiliation)", RECOMMENDED,
            f"No affiliation for {_names(no_affiliation)}", "affiliation")
    if kind is not Kind.INSTRUMENT and not _items(a.get("fundingReferences")):
        add("fundingReferences", RECOMMENDED, "No funding references")
    return out


def mintable(findings: Iterable[Finding]) -> bool:
    """Nothing mandatory is missing."""
    return not any(f.level == MANDATORY for f in findings)


def _items(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _label(creator: dict[str, Any], position: int) -> str:
    name = creator.get("name")
    return repr(name) if _text(name) else f"creator {position}"


def _names(labels: list[str]) -> str:
    shown = ", ".join(labels[:5])
    return shown if len(labels) <= 5 else f"{shown} and {len(labels) - 5} more"
