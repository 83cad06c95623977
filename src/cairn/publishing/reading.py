"""Reading a DOI's DataCite attributes, for its landing page and the formats: who made it
(:func:`creators`, :func:`contributors`, :func:`publisher`, :func:`owners`), what it is
(:func:`title`, :func:`resource_type`, :func:`descriptions`, :func:`subjects`, :func:`dates`,
the instrument's model, types and serial numbers), what it relates to (:func:`related`,
:func:`alternate_identifiers`), its :func:`rights`, :func:`funding`, sizes and formats; and
the words and links they are shown with (:func:`words`, :func:`human_size`, :func:`iso_date`,
:func:`doi_url`, :func:`safe_url`).

The readers tolerate any DataCite attribute being absent or oddly shaped, because the landing
page must render whatever metadata a DOI was minted with. A link is made only of an http(s)
address (:func:`safe_url`).

Instruments (PIDINST through DataCite 4.5) are read the way DataCite maps them: the name is
the title, manufacturers are the creators, owners are HostingInstitution contributors (else
the publisher), model and instrument type are ``Key: value`` lines of TechnicalInfo
descriptions, commissioning dates are dates of type Other whose dateInformation is
Commissioned or DeCommissioned, and serial numbers are alternate identifiers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from cairn.publishing.model import Landing

_UNKNOWN = {":unac", ":unal", ":unap", ":unas", ":unav", ":unkn", ":none", ":null", ":tba",
            ":etal"}
_ORCID = re.compile(r"(\d{4}-\d{4}-\d{4}-\d{3}[\dX])\Z")


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    """A non-empty string (numbers are accepted: publicationYear is often an int)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    s = str(value).strip()
    return s if s and s.lower() not in _UNKNOWN else None


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [s for s in (_text(v) for v in value) if s]


def safe_url(url: str | None) -> str | None:
    """``url`` if it is an http(s) address: metadata text must never become a
    ``javascript:`` link or break out of a Link header."""
    if not url:
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    if any(c.isspace() or ord(c) < 32 for c in url):
        return None
    return url


def doi_url(doi: str) -> str:
    """The resolver address of a DOI (given bare, as ``doi:...`` or already as a URL)."""
    d = doi.strip()
    for prefix in ("https://doi.org/", "http://doi.org/", "https://dx.doi.org/",
                   "http://dx.doi.org/", "doi:"):
        if d.lower().startswith(prefix):
            d = d[len(prefix):]
            break
    return "https://doi.org/" + quote(d, safe="/:;()._-~")


def looks_like_doi(s: str) -> bool:
    return re.match(r"(doi:)?10\.\d{4,9}/\S+\Z", s.strip(), re.IGNORECASE) is not None


def _identifier_url(value: str | None, scheme: str | None, scheme_uri: str | None) -> str | None:
    """A link for a name, affiliation, publisher or funder identifier, when one can be made."""
    if not value:
        return None
    if value.lower().startswith(("http://", "https://")):
        return safe_url(value)
    s = (scheme or "").strip().lower()
    if s == "orcid" and (m := _ORCID.search(value)):
        return "https://orcid.org/" + m.group(1)
    if s == "ror":
        return safe_url("https://ror.org/" + quote(value.strip()))
    if s == "isni":
        return safe_url("https://isni.org/isni/" + quote(value.replace(" ", "")))
    if s in ("crossref funder id", "doi") or looks_like_doi(value):
        return doi_url(value)
    if scheme_uri and safe_url(scheme_uri):
        return safe_url(scheme_uri.rstrip("/") + "/" + quote(value.strip()))
    return None


@dataclass
class Affiliation:
    name: str
    url: str | None = None


@dataclass
class Agent:
    """A creator, contributor, publisher, owner or funder, as the formats need it."""

    name: str
    personal: bool = False
    given: str | None = None
    family: str | None = None
    orcid: str | None = None
    #: Another identifier's link (ROR, ISNI, ...), when there is no ORCID.
    url: str | None = None
    affiliations: list[Affiliation] = field(default_factory=list)
    #: contributorType, for contributors.
    role: str | None = None

    @property
    def display(self) -> str:
        """"Given Family" for people (DataCite's name is "Family, Given"), else the name."""
        if self.personal and self.given and self.family:
            return f"{self.given} {self.family}"
        return self.name


def _affiliations(value: Any) -> list[Affiliation]:
    out = []
    # The REST API answers affiliations as plain strings unless asked for objects.
    for a in value if isinstance(value, list) else []:
        if isinstance(a, str) and _text(a):
            out.append(Affiliation(a.strip()))
        elif isinstance(a, dict) and (name := _text(a.get("name"))):
            url = _identifier_url(_text(a.get("affiliationIdentifier")),
                                  _text(a.get("affiliationIdentifierScheme")),
                                  _text(a.get("schemeUri")))
            out.append(Affiliation(name, url))
    return out


def _agent(d: dict[str, Any]) -> Agent | None:
    given, family = _text(d.get("givenName")), _text(d.get("familyName"))
    name = _text(d.get("name"))
    if name is None and family:
        name = f"{family}, {given}" if given else family
    if name is None:
        return None
    name_type = _text(d.get("nameType"))
    personal = name_type == "Personal" or (
        name_type is None and (given is not None or family is not None or "," in name))
    if personal and family is None and "," in name:
        family, _, rest = name.partition(",")
        family, given = family.strip(), given or rest.strip() or None
    orcid = url = None
    for ni in _dicts(d.get("nameIdentifiers")):
        scheme = _text(ni.get("nameIdentifierScheme"))
        link = _identifier_url(_text(ni.get("nameIdentifier")), scheme, _text(ni.get("schemeUri")))
        if link and (scheme or "").lower() == "orcid":
            orcid = orcid or link
        elif link:
            url = url or link
    return Agent(name=name, personal=personal, given=given if personal else None,
                 family=family if personal else None, orcid=orcid, url=url,
                 affiliations=_affiliations(d.get("affiliation")),
                 role=_text(d.get("contributorType")))


def creators(attrs: dict[str, Any]) -> list[Agent]:
    return [a for a in map(_agent, _dicts(attrs.get("creators"))) if a]


def contributors(attrs: dict[str, Any]) -> list[Agent]:
    return [a for a in map(_agent, _dicts(attrs.get("contributors"))) if a]


def publisher(attrs: dict[str, Any]) -> Agent | None:
    """Schema 4.5 allows an object (with an identifier); older metadata a plain string."""
    p = attrs.get("publisher")
    if isinstance(p, dict):
        name = _text(p.get("name"))
        if name is None:
            return None
        url = _identifier_url(_text(p.get("publisherIdentifier")),
                              _text(p.get("publisherIdentifierScheme")), _text(p.get("schemeUri")))
        return Agent(name=name, url=url)
    name = _text(p)
    return Agent(name=name) if name else None


def title(attrs: dict[str, Any]) -> str:
    titles = _dicts(attrs.get("titles"))
    main = [t for t in titles if not t.get("titleType")] or titles
    for t in main:
        if s := _text(t.get("title")):
            return s
    return "(untitled)"


def other_titles(attrs: dict[str, Any]) -> list[tuple[str, str]]:
    """(titleType, title) of the alternative titles, subtitles and translations."""
    return [(str(t["titleType"]), s) for t in _dicts(attrs.get("titles"))
            if t.get("titleType") and (s := _text(t.get("title")))]


def year(attrs: dict[str, Any]) -> int | None:
    y = _text(attrs.get("publicationYear"))
    if y is None:
        issued = date_of(attrs, "Issued")
        y = issued[:4] if issued else None
    return int(y) if y and y.isdigit() else None


def version(attrs: dict[str, Any]) -> str | None:
    return _text(attrs.get("version"))


def language(attrs: dict[str, Any]) -> str | None:
    return _text(attrs.get("language"))


def resource_type(attrs: dict[str, Any]) -> tuple[str | None, str | None]:
    """(resourceTypeGeneral, resourceType)."""
    t = attrs.get("types")
    if not isinstance(t, dict):
        return None, None
    return _text(t.get("resourceTypeGeneral")), _text(t.get("resourceType"))


def descriptions(attrs: dict[str, Any], kind: str | None = None) -> list[tuple[str, str]]:
    """(descriptionType, text), of one type if ``kind`` is given."""
    out = []
    for d in _dicts(attrs.get("descriptions")):
        dtype = _text(d.get("descriptionType")) or "Other"
        if (kind is None or dtype == kind) and (text := _text(d.get("description"))):
            out.append((dtype, text))
    return out


def abstract(attrs: dict[str, Any]) -> str | None:
    found = descriptions(attrs, "Abstract") or [
        d for d in descriptions(attrs) if d[0] != "TechnicalInfo"]
    return found[0][1] if found else None


def subjects(attrs: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(subject, link to its term) of each subject (keyword)."""
    out = []
    for s in _dicts(attrs.get("subjects")):
        if text := _text(s.get("subject")):
            out.append((text, safe_url(_text(s.get("valueUri")))))
    return out


def dates(attrs: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(dateType, date, dateInformation)."""
    return [(_text(d.get("dateType")) or "Other", s, _text(d.get("dateInformation")))
            for d in _dicts(attrs.get("dates")) if (s := _text(d.get("date")))]


def date_of(attrs: dict[str, Any], date_type: str) -> str | None:
    return next((d for t, d, _ in dates(attrs) if t == date_type), None)


def _squash(s: str) -> str:
    return re.sub(r"[^a-z]", "", s.lower())


def commissioning(attrs: dict[str, Any]) -> tuple[str | None, str | None]:
    """An instrument's (Commissioned, DeCommissioned) dates, as PIDINST puts them in DataCite."""
    found: dict[str, str] = {}
    for t, d, info in dates(attrs):
        key = _squash(info or t)
        if key in ("commissioned", "decommissioned"):
            found.setdefault(key, d)
    return found.get("commissioned"), found.get("decommissioned")


def technical_info(attrs: dict[str, Any]) -> list[tuple[str, str]]:
    """The ``Key: value`` lines of TechnicalInfo descriptions (key "" for other lines)."""
    rows = []
    for _, text in descriptions(attrs, "TechnicalInfo"):
        for line in text.splitlines():
            key, sep, value = line.partition(":")
            line = line.strip()
            if sep and key.strip() and value.strip() and len(key) <= 40 and "//" not in value[:2]:
                rows.append((key.strip(), value.strip()))
            elif line:
                rows.append(("", line))
    return rows


def _technical(attrs: dict[str, Any], *keys: str) -> list[str]:
    wanted = {_squash(k) for k in keys}
    return [v for k, v in technical_info(attrs) if _squash(k) in wanted]


def instrument_model(attrs: dict[str, Any]) -> str | None:
    return next(iter(_technical(attrs, "Model", "Model name")), None)


def instrument_types(attrs: dict[str, Any]) -> list[str]:
    specific = resource_type(attrs)[1]
    found = [specific] if specific and specific.lower() != "instrument" else []
    return found + [t for t in _technical(attrs, "Instrument type") if t not in found]


def owners(attrs: dict[str, Any]) -> list[Agent]:
    hosts = [a for a in contributors(attrs) if a.role == "HostingInstitution"]
    p = publisher(attrs)
    return hosts or ([p] if p else [])


@dataclass
class Related:
    relation: str
    identifier: str
    identifier_type: str | None
    url: str | None
    resource_type: str | None = None

    @property
    def label(self) -> str:
        return words(self.relation)


def words(name: str) -> str:
    """A DataCite controlled term for people: "IsSupplementTo" -> "Is supplement to"."""
    found = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", name)
    if not found or "".join(found) != name:
        return name  # not a CamelCase term: leave it as written
    text = " ".join(w if w.isupper() else w.lower() for w in found)
    return text[0].upper() + text[1:]


_RESOLVERS: dict[str, str] = {
    "handle": "https://hdl.handle.net/",
    "arxiv": "https://arxiv.org/abs/",
    "ark": "https://n2t.net/",
    "pmid": "https://pubmed.ncbi.nlm.nih.gov/",
}


def _related_url(identifier: str, id_type: str | None) -> str | None:
    t = (id_type or "").lower()
    if t == "doi" or (not t and looks_like_doi(identifier)):
        return doi_url(identifier)
    if identifier.lower().startswith(("http://", "https://")):
        return safe_url(identifier)
    if t in _RESOLVERS:
        return safe_url(_RESOLVERS[t] + quote(identifier.strip(), safe="/:"))
    return None


def related(attrs: dict[str, Any]) -> list[Related]:
    out = []
    for r in _dicts(attrs.get("relatedIdentifiers")):
        identifier, relation = _text(r.get("relatedIdentifier")), _text(r.get("relationType"))
        if identifier and relation:
            id_type = _text(r.get("relatedIdentifierType"))
            out.append(Related(relation, identifier, id_type, _related_url(identifier, id_type),
                               _text(r.get("resourceTypeGeneral"))))
    return out


def alternate_identifiers(attrs: dict[str, Any]) -> list[tuple[str, str]]:
    """(alternateIdentifierType, alternateIdentifier)."""
    return [(_text(a.get("alternateIdentifierType")) or "Other", s)
            for a in _dicts(attrs.get("alternateIdentifiers"))
            if (s := _text(a.get("alternateIdentifier")))]


def serial_numbers(attrs: dict[str, Any]) -> list[str]:
    return [v for t, v in alternate_identifiers(attrs) if _squash(t) == "serialnumber"]


def rights(attrs: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(name, link) of each licence or rights statement."""
    out = []
    for r in _dicts(attrs.get("rightsList")):
        url = safe_url(_text(r.get("rightsUri")))
        name = _text(r.get("rights")) or _text(r.get("rightsIdentifier")) or url
        if name:
            out.append((name, url))
    return out


@dataclass
class Funding:
    funder: str
    funder_url: str | None
    award_number: str | None
    award_title: str | None
    award_url: str | None


def funding(attrs: dict[str, Any]) -> list[Funding]:
    out = []
    for f in _dicts(attrs.get("fundingReferences")):
        if name := _text(f.get("funderName")):
            number = f.get("awardNumber")
            award_uri = f.get("awardUri")
            if isinstance(number, dict):  # the XML-shaped form: {awardNumber, awardUri}
                award_uri = number.get("awardUri")
                number = number.get("awardNumber")
            out.append(Funding(
                name, _identifier_url(_text(f.get("funderIdentifier")),
                                      _text(f.get("funderIdentifierType")), None),
                _text(number), _text(f.get("awardTitle")), safe_url(_text(award_uri))))
    return out


def human_size(n: int) -> str:
    """Bytes in decimal units, as DataCite sizes are usually written: "2.3 GB"."""
    if n < 1000:
        return "1 byte" if n == 1 else f"{n} bytes"
    value = float(n)
    for unit in ("kB", "MB", "GB", "TB", "PB"):
        value /= 1000
        text = f"{value:.1f}" if value < 9.95 else f"{value:.0f}"
        # 999,960 bytes would print as "1000 kB": move on to the next unit instead.
        if float(text) < 1000 or unit == "PB":
            return f"{text} {unit}"
    raise AssertionError("unreachable")


def iso_date(dt: datetime) -> str:
    return dt.astimezone(UTC).date().isoformat()


def content_sizes(landing: Landing) -> list[str]:
    files = landing.metadata.files
    if files is not None and files.size:
        return [human_size(files.size)]
    return _strings(landing.metadata.attributes.get("sizes"))


def file_formats(landing: Landing) -> list[str]:
    files = landing.metadata.files
    if files is not None and files.formats:
        return list(files.formats)
    return _strings(landing.metadata.attributes.get("formats"))
