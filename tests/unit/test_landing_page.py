"""Landing pages: the HTML drawn by render_landing (parsed back with lxml), and the
``/doi/{doi}`` route's content negotiation, statuses and headers."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import lxml.html
import pytest
from starlette.applications import Starlette

from cairn.errors import IcatError
from cairn.publishing import formats
from cairn.publishing.model import Landing, State
from cairn.web.landing import render_landing, render_not_found, routes
from tests.unit.test_publishing_formats import (
    DOI,
    collection_landing,
    embargoed_landing,
    instrument_landing,
    withdrawn_landing,
)

HOSTILE = "</script><script>alert(1)</script><b>bold</b>"


def page(landing: Landing, style: str = "apa") -> Any:
    return lxml.html.fromstring(render_landing(landing, style))


def text(doc: Any, xpath: str) -> str:
    return " ".join(" ".join(e.text_content().split()) for e in doc.xpath(xpath))


def json_ld_of(doc: Any) -> Any:
    scripts = doc.xpath('//script[@type="application/ld+json"]')
    assert len(scripts) == 1
    return json.loads(scripts[0].text)


def robots(doc: Any) -> list[str]:
    return doc.xpath('//meta[@name="robots"]/@content')


# --- the page -----------------------------------------------------------------------------------

def test_collection_page() -> None:
    landing = collection_landing()
    doc = page(landing)
    assert text(doc, "//h1") == "Water under pressure"
    assert doc.findtext(".//title") == "Water under pressure"
    creators = doc.xpath('//ul[contains(@class, "creators")]/li')
    assert [" ".join(li.xpath('.//span[@class="name"]')[0].text.split()) for li in creators] == [
        "Jane A. Smith", "Karl Müller"]
    assert creators[0].xpath('.//a[@class="orcid"]/@href') == [
        "https://orcid.org/0000-0002-1825-0097"]
    assert creators[1].xpath('.//a[@class="orcid"]/@href') == [
        "https://orcid.org/0000-0001-5109-3700"]
    assert creators[0].xpath('.//span[@class="affiliation"]/a/@href') == [
        "https://ror.org/05gf8x915"]
    assert "University of Bath" in creators[1].text_content()
    assert text(doc, '//*[@id="publisher"]') == "ISIS Neutron and Muon Source"
    assert text(doc, '//*[@id="year"]') == "2024"
    assert text(doc, '//*[@id="resource-type"]') == "User-defined (Collection)"
    assert "Diffraction patterns of ice VII." in text(doc, '//*[@id="descriptions"]')
    assert "Methods" in text(doc, '//*[@id="descriptions"]//h2')
    assert doc.xpath('//*[@id="subjects"]//a/@href') == [
        "http://purl.org/pan-science/PaNET/PaNET01102"]
    assert "2023-01-10/2023-01-14" in text(doc, '//*[@id="dates"]')
    assert "EP/X012345/1" in text(doc, '//*[@id="funding"]')
    assert doc.xpath('//*[@id="doi"]/@href') == [f"https://doi.org/{DOI}"]
    assert doc.xpath('//link[@rel="cite-as"]/@href') == [f"https://doi.org/{DOI}"]
    assert doc.xpath('//meta[@name="citation_author"]/@content') == [
        "Smith, Jane A.", "Müller, Karl"]
    assert robots(doc) == []  # findable and live: indexable
    assert json_ld_of(doc) == formats.json_ld(landing)


def test_related_identifiers_are_links_but_never_script_links() -> None:
    doc = page(collection_landing())
    rows = {text(tr, "./th"): tr for tr in doc.xpath('//*[@id="related"]//tr')}
    assert rows["Is supplement to"].xpath(".//a/@href") == ["https://doi.org/10.1000/paper.42"]
    assert rows["Is identical to"].xpath(".//a/@href") == ["https://mirror.example.org/water"]
    assert rows["References"].xpath(".//a") == []
    assert "javascript:alert(1)" in text(rows["References"], ".")
    assert not [h for h in doc.xpath("//@href") if h.lower().startswith("javascript")]


def test_versions_newest_first_marking_current_and_concept() -> None:
    doc = page(collection_landing())
    items = doc.xpath('//ul[@class="versions"]/li')
    # The draft version 3 is not public and is not listed.
    assert [" ".join(li.text_content().split()) for li in items] == [
        "Version 2 10.5286/ISIS.E.RB1820123 this version latest",
        "Version 1 10.5286/ISIS.E.RB1820122",
    ]
    assert items[0].get("class") == "current"
    assert items[1].xpath(".//a/@href") == ["https://doi.org/10.5286/ISIS.E.RB1820122"]
    concept = text(doc, '//*[@id="versions"]/p')
    assert "Concept DOI" in concept and "10.5286/ISIS.E.RB1820100" in concept


def test_files_summary_and_download_instructions() -> None:
    doc = page(collection_landing())
    assert [" ".join(li.text_content().split())
            for li in doc.xpath('//*[@id="files-summary"]/li')] == [
        "3 datasets", "120 files, 2.3 GB", "Formats: NeXus 4.3, TIFF"]
    download = text(doc, '//*[@id="download"]')
    assert ("GET https://cairn.example/ids/getData?sessionId=<session>"
            "&datasetIds=3,4&datafileIds=9&zip=true") in download
    snippet = doc.xpath('//*[@id="download"]//pre/code')[-1].text_content()
    assert 'icat.Client("https://cairn.example/ICATService/ICAT?wsdl", ' \
           'idsurl="https://cairn.example/ids")' in snippet
    assert 'selection = {"datasetIds": [3, 4], "datafileIds": [9]}' in snippet
    compile(snippet, "<snippet>", "exec")  # the snippet is valid Python


def test_citation_section() -> None:
    doc = page(collection_landing())
    assert text(doc, '//*[@id="citation-text"]') == formats.citation(collection_landing())
    assert doc.xpath('//*[@id="citation-text"]/i/text()') == ["Water under pressure"]
    assert doc.xpath('//select[@name="style"]/option[@selected]/@value') == ["apa"]
    exports = doc.xpath('//*[@id="exports"]/a/@href')
    assert exports == ["?format=bibtex", "?format=ris", "?format=csl", "?format=datacite",
                       "?format=jsonld"]
    assert doc.xpath('//*[@id="exports"]/a/@download')[0] == "10.5286_ISIS.E.RB1820123.bib"


def test_another_citation_style_is_shown_and_selected() -> None:
    doc = page(collection_landing(), "harvard-cite-them-right")
    assert text(doc, '//*[@id="citation-text"]').startswith("Smith, J.A. and Müller, K. (2024)")
    assert doc.xpath('//select[@name="style"]/option[@selected]/@value') == [
        "harvard-cite-them-right"]
    # A style not in the short list stays selectable once asked for.
    doc = page(collection_landing(), "american-heart-journal")
    assert doc.xpath('//select[@name="style"]/option[@selected]/@value') == [
        "american-heart-journal"]


def test_unknown_style_is_refused() -> None:
    with pytest.raises(IcatError):
        render_landing(collection_landing(), "no-such-style")


def test_embargo_shows_metadata_only() -> None:
    landing = embargoed_landing()
    doc = page(landing)
    assert "Embargoed until 2026-03-01" in text(doc, '//*[@id="embargo"]')
    assert doc.xpath('//*[@id="embargo"]//time/@datetime') == ["2026-03-01T00:00:00+00:00"]
    assert doc.xpath('//*[@id="download"]') == []
    assert "getData" not in lxml.html.tostring(doc, encoding="unicode")
    assert "python-icat" not in doc.text_content()
    assert text(doc, '//*[@id="files-summary"]')  # what the data are is still shown
    assert text(doc, '//*[@id="citation-text"]')
    assert json_ld_of(doc)["isAccessibleForFree"] is False


def test_released_data_are_no_longer_embargoed() -> None:
    landing = embargoed_landing()
    landing.now = datetime(2026, 3, 2, tzinfo=UTC)
    doc = page(landing)
    assert doc.xpath('//*[@id="embargo"]') == []
    assert doc.xpath('//*[@id="download"]')


def test_withdrawn_tombstone() -> None:
    landing = withdrawn_landing()
    doc = page(landing)
    notice = text(doc, '//*[@id="tombstone"]')
    assert "This data publication has been withdrawn." in notice
    assert "2025-02-03" in notice
    assert "Calibration error in detector bank 3" in notice
    assert doc.xpath('//*[@id="replaced-by"]/a/@href') == [
        "https://doi.org/10.5286/ISIS.E.RB1820200"]
    assert robots(doc) == ["noindex"]
    assert doc.findtext(".//title") == "Water under pressure (withdrawn)"
    # The citation metadata stay; the data and the description go.
    assert text(doc, "//h1") == "Water under pressure"
    assert len(doc.xpath('//ul[contains(@class, "creators")]/li')) == 2
    assert text(doc, '//*[@id="citation-text"]').startswith("Smith, J. A., & Müller, K. (2024)")
    assert doc.xpath('//*[@id="data"] | //*[@id="download"] | //*[@id="descriptions"]') == []
    assert "getData" not in lxml.html.tostring(doc, encoding="unicode")
    assert json_ld_of(doc) == formats.json_ld(landing)


@pytest.mark.parametrize(("replaced_by", "href"), [
    ("https://data.example.org/new", "https://data.example.org/new"),
    ("doi:10.5286/NEW", "https://doi.org/10.5286/NEW"),
    ("javascript:alert(1)", None),
])
def test_tombstone_links_its_replacement(replaced_by: str, href: str | None) -> None:
    doc = page(withdrawn_landing(replaced_by))
    assert text(doc, '//*[@id="replaced-by"]') == f"It is replaced by {replaced_by}."
    assert doc.xpath('//*[@id="replaced-by"]/a/@href') == ([href] if href else [])


def test_decommissioned_instrument_tombstone() -> None:
    doc = page(instrument_landing(datetime(2025, 1, 2, tzinfo=UTC)))
    notice = text(doc, '//*[@id="tombstone"]')
    assert "This instrument has been decommissioned." in notice
    assert "2025-01-02" in notice
    assert robots(doc) == ["noindex"]
    assert text(doc, '//*[@id="decommissioned"]') == "2025-01-02"
    assert text(doc, '//*[@id="citation-text"]')


def test_instrument_page_is_pidinst_shaped() -> None:
    doc = page(instrument_landing())
    assert doc.xpath('//*[@id="tombstone"]') == []
    assert text(doc, "//h1") == "WISH diffractometer"
    facts = dict(zip([" ".join(dt.text_content().split()) for dt in doc.xpath("//dl/dt")],
                     [" ".join(dd.text_content().split()) for dd in doc.xpath("//dl/dd")],
                     strict=True))
    assert facts["Owner"] == "Science and Technology Facilities Council"
    assert facts["Manufacturer"].startswith("Bruker")
    assert facts["Model"] == "WISH-1"
    assert facts["Instrument type"] == "Neutron diffractometer, Powder diffractometer"
    assert facts["Commissioned"] == "2011-05-01"
    assert facts["Serial number"] == "SN-42"
    assert "Decommissioned" not in facts
    assert text(doc, '//*[@id="descriptions"]//h2') == "Description"
    rows = [(text(tr, "./th"), text(tr, "./td")) for tr in doc.xpath('//*[@id="technical"]//tr')]
    assert rows == [("Model", "WISH-1"), ("Instrument type", "Powder diffractometer"),
                    ("Measured variable", "d-spacing")]
    assert doc.xpath('//*[@id="data"]') == []
    assert json_ld_of(doc)["@type"] == "IndividualProduct"


def test_a_registered_doi_is_not_indexed() -> None:
    assert robots(page(collection_landing(state=State.REGISTERED))) == ["noindex"]


def test_hostile_text_is_escaped_everywhere() -> None:
    landing = collection_landing()
    attrs = landing.metadata.attributes
    attrs["titles"] = [{"title": HOSTILE}]
    attrs["descriptions"] = [{"description": HOSTILE + " <!--", "descriptionType": "Abstract"}]
    attrs["creators"][0]["name"] = HOSTILE
    attrs["creators"][0]["familyName"] = HOSTILE
    attrs["subjects"] = [{"subject": HOSTILE, "valueUri": 'https://x.org/"onmouseover="alert(1)'}]
    html = render_landing(landing)
    doc = lxml.html.fromstring(html)
    # One script only (the JSON-LD), no bold element smuggled in.
    assert len(doc.xpath("//script")) == 1
    assert doc.xpath("//b") == []
    assert text(doc, "//h1") == HOSTILE
    assert doc.findtext(".//title") == HOSTILE
    assert HOSTILE in text(doc, '//*[@id="descriptions"]')
    assert HOSTILE in text(doc, '//*[@id="citation-text"]')
    # JSON-LD text cannot close its script element, and still parses to the same data.
    ld = json_ld_of(doc)
    assert ld == formats.json_ld(landing)
    assert ld["name"] == HOSTILE
    assert "</script><script>" not in html.split('type="application/ld+json">', 1)[1].split(
        "</script>", 1)[0]
    # The quote in an attribute stays inside it.
    assert doc.xpath('//*[@id="subjects"]//a/@href') == ['https://x.org/"onmouseover="alert(1)']
    assert not [e for e in doc.iter() if e.get("onmouseover") is not None]


def test_not_found_page() -> None:
    doc = lxml.html.fromstring(render_not_found("10.1/<b>x</b>"))
    assert text(doc, "//h1") == "DOI not found"
    assert "10.1/<b>x</b>" in text(doc, '//*[@id="message"]')
    assert doc.xpath("//b") == []
    assert robots(doc) == ["noindex"]


# --- the route ----------------------------------------------------------------------------------

class Publishing:
    def __init__(self, *landings: Landing) -> None:
        self.landings = {landing.doi.lower(): landing for landing in landings}
        self.asked: list[str] = []

    def landing(self, doi: str) -> Landing | None:
        self.asked.append(doi)
        return self.landings.get(doi.lower())


class Client:
    """Requests straight into the ASGI app (no server, no network)."""

    def __init__(self, publishing: Publishing | None) -> None:
        self.app = Starlette(routes=routes())
        self.app.state.publishing = publishing

    def request(self, method: str, url: str, headers: dict[str, str] | None = None
                ) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport,
                                         base_url="https://cairn.example") as c:
                return await c.request(method, url, headers=headers)
        return asyncio.run(go())

    def get(self, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return self.request("GET", url, headers)

    def head(self, url: str) -> httpx.Response:
        return self.request("HEAD", url)


def client(publishing: Publishing | None) -> Client:
    return Client(publishing)


@pytest.fixture
def service() -> Publishing:
    return Publishing(collection_landing(), instrument_landing())


def test_route_answers_the_page_with_signposting(service: Publishing) -> None:
    r = client(service).get(f"/doi/{DOI}")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["vary"] == "Accept"
    assert r.headers["cache-control"] == "public, max-age=300"
    link = r.headers["link"]
    assert f'<https://doi.org/{DOI}>; rel="cite-as"' in link
    assert (f'<https://cairn.example/doi/{DOI}?format=bibtex>; rel="describedby"; '
            'type="application/x-bibtex"') in link
    assert '<https://orcid.org/0000-0002-1825-0097>; rel="author"' in link
    assert '<https://creativecommons.org/licenses/by/4.0/>; rel="license"' in link
    assert '<https://schema.org/Dataset>; rel="type"' in link
    assert text(lxml.html.fromstring(r.text), "//h1") == "Water under pressure"
    assert service.asked == [DOI]  # the path goes to the service as it is


@pytest.mark.parametrize(("accept", "query", "media", "starts"), [
    ("application/x-bibtex", "", "application/x-bibtex; charset=utf-8", "@misc{doi:10.5286/"),
    ("application/x-research-info-systems", "", "application/x-research-info-systems; "
     "charset=utf-8", "TY  - DATA\r\n"),
    (None, "?format=ris", "application/x-research-info-systems; charset=utf-8", "TY  - DATA"),
    ("application/vnd.citationstyles.csl+json", "", "application/vnd.citationstyles.csl+json",
     "{"),
    ("application/vnd.datacite.datacite+json", "", "application/vnd.datacite.datacite+json",
     "{"),
    ("application/vnd.schemaorg.ld+json", "", "application/ld+json", "{"),
    ("text/x-bibliography", "", "text/x-bibliography; charset=utf-8", "Smith, J. A., & Müller"),
    ("text/x-bibliography; style=harvard-cite-them-right", "",
     "text/x-bibliography; charset=utf-8", "Smith, J.A. and Müller, K. (2024)"),
    ("text/x-bibliography; style=apa", "?style=harvard-cite-them-right",
     "text/x-bibliography; charset=utf-8", "Smith, J.A. and Müller, K. (2024)"),
])
def test_route_negotiates(service: Publishing, accept: str | None, query: str, media: str,
                          starts: str) -> None:
    headers = {"Accept": accept} if accept else {}
    r = client(service).get(f"/doi/{DOI}{query}", headers=headers)
    assert r.status_code == 200
    assert r.headers["content-type"] == media
    assert r.text.startswith(starts)


def test_route_json_bodies_equal_the_formats(service: Publishing) -> None:
    c = client(service)
    landing = collection_landing()
    for fmt, draw in (("datacite", formats.datacite_json), ("jsonld", formats.json_ld),
                      ("csl", formats.csl_json)):
        assert c.get(f"/doi/{DOI}?format={fmt}").json() == draw(landing)


def test_route_not_acceptable(service: Publishing) -> None:
    r = client(service).get(f"/doi/{DOI}", headers={"Accept": "image/png"})
    assert r.status_code == 406
    assert "application/x-bibtex" in r.text
    assert client(service).get(f"/doi/{DOI}?format=pdf").status_code == 406


def test_route_bad_style(service: Publishing) -> None:
    r = client(service).get(f"/doi/{DOI}?format=citation&style=../../etc/passwd")
    assert r.status_code == 400
    assert "apa" in r.text
    assert client(service).get(f"/doi/{DOI}?style=nope").status_code == 400


def test_route_unknown_doi_is_an_html_404(service: Publishing) -> None:
    r = client(service).get("/doi/10.9999/none", headers={"Accept": "application/json"})
    assert r.status_code == 404
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert "DOI not found" in r.text


def test_route_without_publishing_is_a_404() -> None:
    r = client(None).get(f"/doi/{DOI}")
    assert r.status_code == 404
    assert "DOI not found" in r.text


def test_route_tombstone_still_resolves(service: Publishing) -> None:
    r = client(service).get("/doi/10.5286/isis.e.rb1820123")  # any case: the service decides
    assert r.status_code == 200
    withdrawn = Publishing(withdrawn_landing())
    r = client(withdrawn).get(f"/doi/{DOI}")
    assert r.status_code == 200
    doc = lxml.html.fromstring(r.text)
    assert robots(doc) == ["noindex"]
    assert 'rel="author"' not in r.headers["link"]
    assert client(withdrawn).get(f"/doi/{DOI}?format=bibtex").text.count("Withdrawn on") == 1


def test_route_head(service: Publishing) -> None:
    r = client(service).head(f"/doi/{DOI}")
    assert r.status_code == 200
    assert r.content == b""
