"""Landing pages of DOIs (``/doi/{doi}``): the HTML page, or by content negotiation the
DataCite JSON, schema.org JSON-LD, BibTeX, RIS, CSL-JSON or a formatted citation.

The page is drawn by :func:`render_landing`, a pure function of the landing data, so it can
be tested without a server. Looking the DOI up (case-insensitively) is the publishing
service's job (``app.state.publishing.landing(doi)``); this module only presents.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from cairn.errors import IcatError
from cairn.publishing import formats, reading
from cairn.publishing.model import Kind, Landing, State, Version

#: Modest: a page changes when its metadata are updated, its embargo ends or it is withdrawn.
CACHE_CONTROL = "public, max-age=300"

#: The data-service parameter for each kind of entity a DOI covers.
_ID_PARAMS = (("Investigation", "investigationIds"), ("Dataset", "datasetIds"),
              ("Datafile", "datafileIds"))

#: The alternate representations the page links to, with their labels.
_DOWNLOADS = (("bibtex", "BibTeX", "bib"), ("ris", "RIS", "ris"), ("csl", "CSL-JSON", "csl.json"),
              ("datacite", "DataCite JSON", "datacite.json"),
              ("jsonld", "schema.org JSON-LD", "jsonld"))


class Publishing(Protocol):
    def landing(self, doi: str) -> Landing | None: ...


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True, lstrip_blocks=True)
    env.filters["doi_url"] = reading.doi_url
    env.filters["words"] = reading.words
    return env


def script_json(data: Any) -> Markup:
    """JSON for a ``<script>`` element: with <, > and & escaped as \\u sequences no text in it
    can close the element (``</script>``) or open a comment, and it still parses the same."""
    text = json.dumps(data, ensure_ascii=False, indent=1)
    for c, e in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                 ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(c, e)
    return Markup(text)


def _download(landing: Landing) -> dict[str, Any] | None:
    """How to get the data: the data-service request and a python-icat snippet."""
    data = landing.metadata.data
    ids = {param: data[entity] for entity, param in _ID_PARAMS if data.get(entity)}
    if not ids:
        return None
    query = "&".join(f"{p}={','.join(map(str, v))}" for p, v in ids.items())
    service = landing.data_service_url.rstrip("/")
    if service.endswith("/ids") and reading.safe_url(service):
        # Cairn serves the catalogue beside its data service.
        icat_url = service[: -len("/ids")] + "/ICATService/ICAT?wsdl"
    else:
        icat_url = "https://<catalogue>/ICATService/ICAT?wsdl"
    selection = ", ".join(f'"{p}": {v!r}' for p, v in ids.items())
    snippet = "\n".join([
        "import shutil",
        "import icat",
        "",
        f'client = icat.Client("{icat_url}", idsurl="{service or "https://<data service>/ids"}")',
        'client.login("anon", {})  # or your authenticator and credentials',
        "selection = {" + selection + "}",
        'with client.getData(selection, zipFlag=True) as response, '
        'open("data.zip", "wb") as out:',
        "    shutil.copyfileobj(response, out)",
    ])
    return {
        "ids": ids,
        "url": (f"{service}/getData?sessionId=<session>&{query}&zip=true" if service
                else None),
        "status_url": (f"{service}/getStatus?{query}" if service else None),
        "snippet": snippet,
    }


def _replaced_by(landing: Landing) -> tuple[str, str | None] | None:
    """(text, link) of what replaced a withdrawn DOI: a DOI resolves through doi.org."""
    r = (landing.replaced_by or "").strip()
    if not r:
        return None
    if reading.looks_like_doi(r) or r.lower().startswith(("https://doi.org/", "http://doi.org/")):
        return r, reading.doi_url(r)
    return r, reading.safe_url(r)


def _versions(landing: Landing) -> list[Version]:
    # Drafts are not public: they neither resolve nor belong on a public page.
    shown = [v for v in landing.versions if v.state in (State.REGISTERED, State.FINDABLE)]
    return sorted(shown, key=lambda v: v.version, reverse=True)


def _with_format(url: str, fmt: str) -> str:
    return url + ("&" if "?" in url else "?") + "format=" + fmt


def context(landing: Landing, style: str = "apa") -> dict[str, Any]:
    """What the landing templates show, read from the landing data."""
    attrs = landing.metadata.attributes
    files = landing.metadata.files
    general, specific = reading.resource_type(attrs)
    commissioned, decommissioned = reading.commissioning(attrs)
    if decommissioned is None and landing.metadata.decommissioned is not None:
        decommissioned = reading.iso_date(landing.metadata.decommissioned)
    withdrawn = landing.withdrawn is not None
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", landing.doi).strip("._") or "citation"
    show_data = not landing.tombstone and not landing.embargoed
    return {
        "landing": landing,
        "doi": landing.doi,
        "doi_url": reading.doi_url(landing.doi),
        "instrument": landing.kind == Kind.INSTRUMENT,
        "concept_kind": landing.kind == Kind.CONCEPT,
        "title": reading.title(attrs),
        "other_titles": reading.other_titles(attrs),
        "creators": reading.creators(attrs),
        "contributors": [c for c in reading.contributors(attrs)
                         if landing.kind != Kind.INSTRUMENT or c.role != "HostingInstitution"],
        "publisher": reading.publisher(attrs),
        "year": reading.year(attrs),
        "resource_type": specific or general,
        "resource_type_general": general,
        "version": attrs.get("version"),
        "descriptions": [] if withdrawn else [
            d for d in reading.descriptions(attrs) if d[0] != "TechnicalInfo"],
        "technical": [] if withdrawn else reading.technical_info(attrs),
        "subjects": [] if withdrawn else reading.subjects(attrs),
        # An instrument's commissioning dates have their own rows.
        "dates": [d for d in reading.dates(attrs) if landing.kind != Kind.INSTRUMENT
                  or d[2] is None or d[2].lower() not in ("commissioned", "decommissioned")],
        "funding": [] if withdrawn else reading.funding(attrs),
        "related": [] if withdrawn else reading.related(attrs),
        "alternate_identifiers": reading.alternate_identifiers(attrs),
        "rights": reading.rights(attrs),
        "language": attrs.get("language"),
        # Instruments (PIDINST).
        "owners": reading.owners(attrs),
        "model": reading.instrument_model(attrs),
        "instrument_types": reading.instrument_types(attrs),
        "commissioned": commissioned,
        "decommissioned": decommissioned,
        # Versions.
        "versions": _versions(landing),
        "concept": landing.concept,
        # Data.
        "files": files if files is not None and not withdrawn else None,
        "size": reading.human_size(files.size) if files is not None and files.size else None,
        "file_formats": reading.file_formats(landing),
        "embargoed": landing.embargoed,
        "release": (reading.iso_date(landing.metadata.release)
                    if landing.metadata.release is not None else None),
        "download": _download(landing) if show_data else None,
        # Tombstone.
        "tombstone": landing.tombstone,
        "withdrawn": reading.iso_date(landing.withdrawn) if landing.withdrawn else None,
        "reason": landing.reason,
        "replaced_by": _replaced_by(landing),
        "noindex": landing.tombstone or landing.state != State.FINDABLE,
        # Citation and the other representations.
        "style": style,
        # The selector offers the usual styles, and keeps any other one asked for by name.
        "style_options": list(formats.STYLES) + (
            [] if style in dict(formats.STYLES) else [(style, style)]),
        "citation": Markup(formats.citation_html(landing, style)),
        # (label, link, media type, file name a browser saves it as)
        "downloads": [(label, "?format=" + fmt, formats.MEDIA_TYPES[fmt].split(";")[0],
                       f"{stem}.{ext}") for fmt, label, ext in _DOWNLOADS],
        "json_ld": script_json(formats.json_ld(landing)),
    }


def render_landing(landing: Landing, style: str = "apa", site: str | None = None) -> str:
    """The landing page of a DOI (a tombstone page if it was withdrawn or decommissioned);
    ``site`` names the portal it belongs to.

    Raises BAD_PARAMETER for an unknown citation style.
    """
    return environment().get_template("landing/page.html").render(
        context(landing, style), site=site)


def render_not_found(doi: str, site: str | None = None) -> str:
    return environment().get_template("landing/not_found.html").render(doi=doi, site=site)


def _site(request: Request) -> str | None:
    settings = getattr(request.app.state, "settings", None)
    return settings.portal.title if settings is not None else None


def link_header(landing: Landing) -> str:
    """Signposting links: the DOI to cite, the metadata documents, its type, authors and
    licence."""
    def target(url: str) -> str:
        # Inside <...> a raw '>' or space would end the link early.
        return "<" + quote(url, safe=":/?#[]@!$&'()*+,;=%~") + ">"

    attrs = landing.metadata.attributes
    links = [f'{target(reading.doi_url(landing.doi))}; rel="cite-as"']
    for fmt in ("datacite", "jsonld", "bibtex", "ris", "csl", "citation"):
        media = formats.MEDIA_TYPES[fmt].split(";")[0]
        links.append(f'{target(_with_format(landing.url, fmt))}; rel="describedby"; '
                     f'type="{media}"')
    schema_type = "IndividualProduct" if landing.kind == Kind.INSTRUMENT else "Dataset"
    links.append(f'<https://schema.org/{schema_type}>; rel="type"')
    links.append('<https://schema.org/AboutPage>; rel="type"')
    if landing.withdrawn is None:
        for a in reading.creators(attrs):
            if a.orcid:
                links.append(f'{target(a.orcid)}; rel="author"')
        for _, url in reading.rights(attrs):
            if url:
                links.append(f'{target(url)}; rel="license"')
    return ", ".join(links)


def _not_found(doi: str, site: str | None) -> Response:
    return Response(render_not_found(doi, site), status_code=404,
                    media_type=formats.MEDIA_TYPES["html"],
                    headers={"Cache-Control": "public, max-age=60"})


def landing_page(request: Request) -> Response:
    # A plain function: Starlette runs it in a worker thread, as the lookup reads the
    # database and citeproc takes some milliseconds.
    doi = request.path_params["doi"]
    publishing: Publishing | None = getattr(request.app.state, "publishing", None)
    landing = publishing.landing(doi) if publishing is not None else None
    if landing is None:
        return _not_found(doi, _site(request))
    accept = request.headers.get("accept")
    fmt = formats.negotiate(accept, request.query_params.get("format"))
    headers = {"Link": link_header(landing), "Vary": "Accept", "Cache-Control": CACHE_CONTROL}
    if fmt is None:
        offered = "\n".join(sorted({m for m, _ in formats.ACCEPTED}))
        return PlainTextResponse(
            "None of the accepted media types is available. This DOI is offered as:\n"
            + offered + "\nor with ?format=" + "|".join(formats.MEDIA_TYPES) + "\n",
            status_code=406, headers={"Vary": "Accept", "Link": headers["Link"]})
    style = (request.query_params.get("style") or formats.accept_style(accept) or "apa").strip()
    try:
        if fmt == "html":
            body: str | bytes = render_landing(landing, style, _site(request))
        elif fmt == "citation":
            body = formats.citation(landing, style) + "\n"
        elif fmt in ("bibtex", "ris"):
            body = formats.RENDERERS[fmt](landing)
        else:
            body = json.dumps(formats.RENDERERS[fmt](landing), ensure_ascii=False,
                              indent=2).encode()
    except IcatError as e:
        return PlainTextResponse(e.message + "\n", status_code=400, headers={"Vary": "Accept"})
    return Response(body, media_type=formats.MEDIA_TYPES[fmt], headers=headers)


def routes() -> list[BaseRoute]:
    return [Route("/doi/{doi:path}", landing_page, methods=["GET"])]
