"""Publishing end to end: a real ``cairn serve`` minting through a local server speaking
DataCite's REST protocol, driven over HTTP (the ``/publishing`` API, the ``/doi/`` landing
pages with content negotiation) and by ``cairn publish`` run as a facility admin runs it,
on the same database while the server runs.

The service's own rules (who may mint, versions, refreshes, outages at the job level) are
tested in test_publishing.py; this module checks that the faces carry them: status codes and
ICAT error bodies, the session as query, body or bearer token, the password from the
environment, the jobs run by the server process, what the command line prints and exits with.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from cairn.db.tables import TABLES
from tests.conftest import BACKENDS, make_database
from tests.integration.datacite_server import DataCiteServer
from tests.integration.server import Server
from tests.waiting import wait_until

#: How long a DOI may take to reach the state asked for (jobs poll every 0.1 s here).
SETTLE_SECONDS = 20
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
#: Entities everybody may read (the landing pages and checks read as the system anyway;
#: the users read what they mint).
READABLE = ("Facility", "Investigation", "InvestigationUser", "User", "Dataset", "Datafile",
            "DatafileFormat", "Instrument", "InvestigationInstrument", "InstrumentScientist",
            "InvestigationType", "DatasetType", "DataPublication", "DataCollection",
            "DataCollectionInvestigation", "DataCollectionDataset", "DataCollectionDatafile",
            "DataPublicationUser", "DataPublicationDate", "DataPublicationType",
            "Affiliation", "Subject", "RelatedItem", "Keyword", "Technique", "Publication",
            "FundingReference", "InvestigationFunding", "DataPublicationFunding")
PEOPLE = {  # simple-authenticator users of tests/integration/server.py
    "jdoe": ("John Doe", "0000-0002-1825-0097"),  # the PI
    "acord": ("Ann Cord", None),  # a co-investigator
    "ahau": ("Anna Hau", None),  # on no investigation
}


@dataclass
class Site:
    """A running Cairn with publishing on, its DataCite, and a facility to mint from."""

    server: Server
    datacite: DataCiteServer
    env: dict[str, str]
    root: str = ""
    ids: dict[str, int] = field(default_factory=dict)
    sessions: dict[str, str] = field(default_factory=dict)

    @property
    def http(self) -> httpx.Client:
        return self.server.http

    @property
    def prefix(self) -> str:
        return self.datacite.prefix

    def write(self, entities: Any) -> list[int]:
        r = self.http.post("/icat/entityManager", data={
            "sessionId": self.root, "entities": json.dumps(entities)})
        assert r.status_code == 200, r.text
        return [int(i) for i in r.json()]

    def create(self, entity: str, **fields: Any) -> int:
        (new,) = self.write({entity: fields})
        return new

    def search(self, query: str) -> list[Any]:
        r = self.http.get("/icat/entityManager", params={"sessionId": self.root,
                                                         "query": query})
        assert r.status_code == 200, r.text
        return list(r.json())

    def investigation(self, name: str, title: str) -> int:
        """A complete investigation: a PI and a co-investigator, an instrument, three files."""
        inv = self.create("Investigation", name=name, visitId="1", title=title,
                          summary="How calcite turns into aragonite at 2 GPa.",
                          startDate="2024-03-01T09:00:00.000Z",
                          endDate="2024-03-03T09:00:00.000Z",
                          releaseDate="2025-03-03T00:00:00.000Z",
                          facility={"id": self.ids["facility"]},
                          type={"id": self.ids["inv_type"]})
        self.write([
            {"InvestigationUser": {"investigation": {"id": inv}, "role": "PI",
                                   "user": {"id": self.ids["jdoe"]}}},
            {"InvestigationUser": {"investigation": {"id": inv}, "role": "CI",
                                   "user": {"id": self.ids["acord"]}}},
            {"InvestigationInstrument": {"investigation": {"id": inv},
                                         "instrument": {"id": self.ids["instrument"]}}},
        ])
        ds = {"id": self.create("Dataset", name="scan-1", investigation={"id": inv},
                                type={"id": self.ids["ds_type"]})}
        self.write([{"Datafile": {"name": f"{name}-{i}.nxs", "fileSize": 1000 * (i + 1),
                                  "dataset": ds, "datafileFormat": {"id": self.ids["format"]}}}
                    for i in range(3)])
        return inv

    def datafiles(self, investigation: int) -> list[int]:
        return [int(i) for i in self.search(
            f"SELECT df.id FROM Datafile df JOIN df.dataset ds "
            f"WHERE ds.investigation.id = {investigation} ORDER BY df.id")]

    # -- the publishing API ---------------------------------------------------------------

    def api(self, method: str, path: str, user: str = "root", **kw: Any) -> httpx.Response:
        sid = self.root if user == "root" else self.sessions[user]
        headers = {"Authorization": f"Bearer {sid}", **kw.pop("headers", {})}
        return self.http.request(method, "/publishing" + path, headers=headers, **kw)

    def state(self, doi: str) -> dict[str, Any]:
        r = self.http.get(f"/publishing/dois/{doi}", params={"sessionId": self.root})
        assert r.status_code == 200, r.text
        return dict(r.json())

    def settle(self, doi: str, state: str) -> dict[str, Any]:
        """Wait until Cairn says ``doi`` is in ``state`` (its job ran in the server)."""
        return wait_until(lambda: (st := self.state(doi))["state"] == state and st,
                          SETTLE_SECONDS, f"DOI {doi} to become {state}",
                          step=0.1, detail=lambda: (f"{self.state(doi)}\nthe server log's "
                                                    f"tail:\n{self.server.log_text()[-3000:]}"))

    def mint(self, investigation: int, user: str = "root") -> str:
        r = self.api("POST", f"/investigations/{investigation}", user)
        assert r.status_code == 202, r.text
        doi = str(r.json()["doi"])
        self.settle(doi, "findable")
        return doi

    def landing(self, doi: str, accept: str = BROWSER, **params: str) -> httpx.Response:
        return self.http.get(f"/doi/{doi}", headers={"Accept": accept}, params=params)

    # -- the command line -----------------------------------------------------------------

    def cairn(self, *args: str, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cairn.cli", "publish", *args,
             "--config", str(self.server.config)],
            capture_output=True, text=True, timeout=120,
            env=self.env if env is None else env)


def _config(datacite: DataCiteServer) -> str:
    # No password in the file: it comes from CAIRN_PUBLISHING__PASSWORD.
    return "[jobs]\npoll_interval_seconds = 0.1\n\n" + datacite.config(password=False)


@pytest.fixture(scope="module", params=BACKENDS)
def site(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp(f"publishing-{request.param}")
    url, drop = make_database(str(request.param), tmp, migrated=True)
    # Its own DataCite for the module: the shared ``datacite_server`` fixture is reset for
    # every test, while this server's DOIs live as long as the module's Cairn.
    datacite = DataCiteServer()
    datacite.start()
    env = {**os.environ, "CAIRN_PUBLISHING__PASSWORD": datacite.password}
    try:
        server = Server(tmp, url, _config(datacite), env={"CAIRN_PUBLISHING__PASSWORD":
                                                          datacite.password})
        try:
            s = Site(server, datacite, env)
            _populate(s)
            yield s
        finally:
            server.stop()
    finally:
        datacite.stop()
        drop()  # type: ignore[operator]


def _populate(s: Site) -> None:
    s.root = s.server.login("root")
    s.write([{"Rule": {"what": entity, "crudFlags": "R"}} for entity in READABLE])
    ids = s.ids
    ids["facility"] = s.create("Facility", name="LSF", fullName="Lightsource Facility")
    fac = {"id": ids["facility"]}
    ids["inv_type"] = s.create("InvestigationType", name="experiment", facility=fac)
    ids["ds_type"] = s.create("DatasetType", name="raw", facility=fac)
    ids["format"] = s.create("DatafileFormat", name="NeXus", version="3", facility=fac)
    ids["instrument"] = s.create("Instrument", name="I03", fullName="I03 MX beamline",
                                 description="Macromolecular crystallography", facility=fac,
                                 startDate="2010-04-01T00:00:00.000Z")
    for name, (full, orcid) in PEOPLE.items():
        given, family = full.split()
        ids[name] = s.create("User", name=f"simple/{name}", fullName=full, givenName=given,
                             familyName=family, **({"orcidId": orcid} if orcid else {}))
        s.sessions[name] = s.server.login(name)
    ids["bare"] = s.create("Investigation", name="AB-0", visitId="1", title="Untitled",
                           facility=fac, type={"id": ids["inv_type"]})


def _error(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["code"] == code and isinstance(body["message"], str) and body["message"], body
    return str(body["message"])


def _relations(site: Site, doi: str) -> set[tuple[str, str]]:
    record = site.datacite.record(doi)
    assert record is not None, doi
    return {(r["relationType"], r["relatedIdentifier"])
            for r in record.attributes.get("relatedIdentifiers", [])}


# -- the /publishing API ------------------------------------------------------------------

def test_a_pi_checks_and_mints_an_investigation(site: Site) -> None:
    inv = site.investigation("AB-1", "Calcite under pressure")
    r = site.http.get("/publishing/check", params={"investigationId": inv,
                                                   "sessionId": site.sessions["jdoe"]})
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["mintable"] is True and report["dois"] == []
    assert "Calcite under pressure" in report["subject"] and str(inv) in report["subject"]
    assert report["findings"], "a complete investigation still has recommendations"
    for f in report["findings"]:
        assert set(f) == {"property", "level", "message", "source"}, f
        assert f["level"] == "recommended", f  # nothing mandatory is missing
    assert report["metadata"]["titles"][0]["title"].startswith("Calcite under pressure")

    r = site.api("POST", f"/investigations/{inv}", "jdoe")  # the session as a bearer token
    assert r.status_code == 202, r.text
    out = r.json()
    doi = out["doi"]
    assert doi == f"{site.prefix}/inv-{inv}"
    assert out["state"] == "pending" and out["target"] == "findable"
    assert out["createdBy"] == "simple/jdoe" and out["subjectId"] == inv
    assert out["url"] == f"{site.server.url}/doi/{doi}"

    st = site.settle(doi, "findable")
    assert "error" not in st and st["dataPublicationId"] > 0
    record = site.datacite.record(doi)
    assert record is not None and record.state == "findable"
    assert record.attributes["url"] == f"{site.server.url}/doi/{doi}"
    assert record.attributes["titles"][0]["title"].startswith("Calcite under pressure")
    families = [c.get("familyName") for c in record.attributes["creators"]]
    assert families[:2] == ["Doe", "Cord"]  # the PI first
    # Every call carried the account of the configuration and the password of the
    # environment (a wrong one is a 401, and the DOI would not be findable).
    calls = site.datacite.calls_to(doi=doi)
    assert calls and {c.username for c in calls} == {site.datacite.username}
    writes = [(c.method, c.status) for c in calls if c.method != "GET"]
    assert writes == [("POST", 201), ("PUT", 200)], writes  # a draft, then published

    # the same investigation again: the same DOI, nothing new at DataCite
    again = site.api("POST", f"/investigations/{inv}", "jdoe")
    assert again.status_code == 202 and again.json()["doi"] == doi
    assert again.json()["state"] == "findable"
    assert len(site.datacite.calls_to("POST", doi=doi)) == 1
    # the PI's list, the check now naming the DOI; the publication is in the catalogue
    mine = site.http.get("/publishing/dois", params={"sessionId": site.sessions["jdoe"]})
    assert mine.status_code == 200 and doi in [d["doi"] for d in mine.json()]
    checked = site.api("GET", "/check", "jdoe", params={"investigationId": inv}).json()
    assert checked["dois"] == [doi]
    assert site.search(f"SELECT p.pid FROM DataPublication p WHERE p.id = "
                       f"{st['dataPublicationId']}") == [doi]


def test_refusals_are_icat_errors(site: Site) -> None:
    inv = site.investigation("AB-2", "Dolomite at depth")
    for user in ("acord", "ahau"):  # a co-investigator; someone not on the investigation
        message = _error(site.api("POST", f"/investigations/{inv}", user), 403,
                         "INSUFFICIENT_PRIVILEGES")
        assert "PI" in message and f"simple/{user}" in message
    # no session; a session that does not exist; a session in the query
    _error(site.http.post(f"/publishing/investigations/{inv}"), 403, "SESSION")
    _error(site.http.post(f"/publishing/investigations/{inv}",
                          params={"sessionId": "not-a-session"}), 403, "SESSION")
    _error(site.http.get("/publishing/dois"), 403, "SESSION")
    _error(site.http.post(f"/publishing/investigations/{inv}",
                          params={"sessionId": site.sessions["ahau"]}), 403,
           "INSUFFICIENT_PRIVILEGES")
    # a body that is not JSON, or not an object; an id that is not a number
    bad = site.api("POST", f"/investigations/{inv}", "jdoe", content=b"{not json",
                   headers={"Content-Type": "application/json"})
    assert "not valid JSON" in _error(bad, 400, "BAD_PARAMETER")
    _error(site.api("POST", f"/investigations/{inv}", "jdoe", json=[1, 2]), 400,
           "BAD_PARAMETER")
    _error(site.api("POST", "/investigations/forty-two", "jdoe"), 400, "BAD_PARAMETER")
    _error(site.api("GET", "/check", "jdoe"), 400, "BAD_PARAMETER")
    # an unknown DOI
    unknown = f"{site.prefix}/no-such-doi"
    _error(site.api("GET", f"/dois/{unknown}"), 404, "NO_SUCH_OBJECT_FOUND")
    _error(site.api("POST", f"/dois/{unknown}/publish"), 404, "NO_SUCH_OBJECT_FOUND")
    _error(site.api("DELETE", f"/dois/{unknown}"), 404, "NO_SUCH_OBJECT_FOUND")
    # what DataCite would refuse is refused before anything is written
    message = _error(site.api("POST", f"/investigations/{site.ids['bare']}"), 400,
                     "BAD_PARAMETER")
    assert "creator" in message.lower()
    # none of these reached DataCite or left a DOI behind
    assert not site.datacite.calls_to(doi=f"{site.prefix}/inv-{inv}")
    assert not site.datacite.calls_to(doi=f"{site.prefix}/inv-{site.ids['bare']}")
    listed = {d["doi"] for d in site.api("GET", "/dois").json()}
    assert f"{site.prefix}/inv-{inv}" not in listed
    # the PI still may, with the session in the query this time
    r = site.http.post(f"/publishing/investigations/{inv}",
                       params={"sessionId": site.sessions["jdoe"]}, json={"draft": True})
    assert r.status_code == 202 and r.json()["target"] == "draft", r.text
    site.settle(r.json()["doi"], "draft")


def test_a_collection_is_drafted_published_versioned_and_withdrawn(site: Site) -> None:
    inv = site.investigation("AB-3", "Three frames")
    files = site.datafiles(inv)
    request = {"title": "Frames of figure 2", "description": "The frames of figure 2.",
               "creators": [{"username": "simple/jdoe"}, {"username": "simple/acord"}],
               "datafileIds": files}
    # the session in the JSON body this time
    r = site.http.post("/publishing/collections",
                       json={**request, "sessionId": site.sessions["jdoe"]})
    assert r.status_code == 202, r.text
    v1 = r.json()["doi"]
    assert r.json()["kind"] == "collection" and r.json()["target"] == "draft"
    assert re.fullmatch(re.escape(site.prefix) + r"/dc-[0-9a-f]{10}", v1), v1
    st = site.settle(v1, "draft")
    assert st["dataPublicationId"] > 0
    record = site.datacite.record(v1)
    assert record is not None and record.state == "draft"
    # someone not on the investigation may not publish it
    _error(site.api("POST", f"/dois/{v1}/publish", "ahau"), 403, "INSUFFICIENT_PRIVILEGES")

    r = site.api("POST", f"/dois/{v1}/publish", "jdoe")
    assert r.status_code == 202 and r.json()["target"] == "findable", r.text
    site.settle(v1, "findable")
    assert site.datacite.record(v1).state == "findable"  # type: ignore[union-attr]

    # a new version: a draft with a concept DOI naming both
    r = site.api("POST", f"/dois/{v1}/versions", "jdoe", json={"description": "Reprocessed."})
    assert r.status_code == 202, r.text
    v2 = r.json()
    assert v2["version"] == 2 and v2["target"] == "draft" and v2["concept"]
    concept = v2["concept"]
    site.settle(v2["doi"], "draft")
    r = site.api("POST", f"/dois/{v2['doi']}/publish", "jdoe")
    assert r.status_code == 202, r.text
    site.settle(v2["doi"], "findable")
    site.settle(concept, "findable")
    wait_until(lambda: {("IsVersionOf", concept), ("IsPreviousVersionOf", v2["doi"])}
               <= _relations(site, v1), SETTLE_SECONDS, "v1 to link v2 and the concept at "
               "DataCite", step=0.1, detail=lambda: _relations(site, v1))
    assert {("IsVersionOf", concept), ("IsNewVersionOf", v1)} <= _relations(site, v2["doi"])
    assert {("HasVersion", v1), ("HasVersion", v2["doi"])} <= _relations(site, concept)
    assert site.datacite.record(v2["doi"]).attributes["version"] == "2"  # type: ignore[union-attr]

    # withdrawn: hidden at DataCite (registered), still known here
    _error(site.api("POST", f"/dois/{v1}/withdraw", "jdoe", json={"reason": 42}), 400,
           "BAD_PARAMETER")
    _error(site.api("POST", f"/dois/{v1}/withdraw", "jdoe", json={"reason": "  "}), 400,
           "BAD_PARAMETER")
    r = site.api("POST", f"/dois/{v1}/withdraw", "jdoe",
                 json={"reason": "Frame 3 was mislabelled", "replacedBy": v2["doi"]})
    assert r.status_code == 202, r.text
    assert r.json()["reason"] == "Frame 3 was mislabelled" and r.json()["withdrawn"]
    assert r.json()["replacedBy"] == v2["doi"]
    st = site.settle(v1, "registered")
    assert st["target"] == "registered"
    record = site.datacite.record(v1)
    assert record is not None and record.state == "registered"
    assert any(d["dateType"] == "Withdrawn" for d in record.attributes["dates"])
    # a withdrawn DOI is not published again
    _error(site.api("POST", f"/dois/{v1}/publish", "jdoe"), 400, "BAD_PARAMETER")

    # a draft deleted: gone here and at DataCite; a findable DOI can't be deleted
    r = site.api("POST", "/collections", "jdoe", json={**request, "title": "Scrap"})
    assert r.status_code == 202, r.text
    scrap = r.json()["doi"]
    site.settle(scrap, "draft")
    assert site.datacite.record(scrap) is not None
    r = site.api("DELETE", f"/dois/{scrap}", "jdoe")
    assert r.status_code == 204, r.text
    wait_until(lambda: site.api("GET", f"/dois/{scrap}").status_code == 404, SETTLE_SECONDS,
               f"the draft {scrap} to be deleted", step=0.1)
    assert site.datacite.record(scrap) is None
    assert not site.search("SELECT p FROM DataPublication p WHERE p.title = 'Scrap'")
    _error(site.api("DELETE", f"/dois/{v2['doi']}", "jdoe"), 400, "BAD_PARAMETER")
    # a check of a selection (POST) before drafting it
    r = site.api("POST", "/check", "jdoe", json=request)
    assert r.status_code == 200 and r.json()["mintable"] is True, r.text


# -- landing pages ------------------------------------------------------------------------

def _json_ld(html: str) -> dict[str, Any]:
    m = re.search(r'<script type="application/ld\+json">(.*?)</script>', html, re.S)
    assert m, "no JSON-LD in the page"
    return dict(json.loads(m.group(1)))


def test_landing_pages_negotiate_their_content(site: Site) -> None:
    inv = site.investigation("AB-4", "Aragonite in the anvil cell")
    doi = site.mint(inv)
    record = site.datacite.record(doi)
    assert record is not None
    year = str(record.attributes["publicationYear"])

    page = site.landing(doi)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "Aragonite in the anvil cell" in page.text
    assert 'name="robots" content="noindex"' not in page.text
    ld = _json_ld(page.text)
    assert ld["@type"] == "Dataset" and doi in json.dumps(ld)
    assert "Aragonite in the anvil cell" in json.dumps(ld)
    link = page.headers["link"]
    assert f'<https://doi.org/{doi}>; rel="cite-as"' in link
    for media in ("application/vnd.datacite.datacite+json", "application/x-bibtex",
                  "application/x-research-info-systems", "application/ld+json"):
        assert f'rel="describedby"; type="{media}"' in link, link
    assert page.headers["vary"] == "Accept"

    bib = site.landing(doi, "application/x-bibtex")
    assert bib.status_code == 200 and bib.headers["content-type"].startswith(
        "application/x-bibtex")
    assert bib.text.lstrip().startswith("@") and doi in bib.text and year in bib.text

    ris = site.landing(doi, "application/x-research-info-systems")
    assert ris.status_code == 200 and ris.headers["content-type"].startswith(
        "application/x-research-info-systems")
    assert ris.text.startswith("TY  - ") and doi in ris.text
    by_param = site.landing(doi, format="ris")  # a browser's Accept, ?format= wins
    assert by_param.status_code == 200 and by_param.text == ris.text
    assert by_param.headers["content-type"] == ris.headers["content-type"]

    csl = site.landing(doi, "application/vnd.citationstyles.csl+json")
    assert csl.status_code == 200
    assert csl.headers["content-type"].startswith("application/vnd.citationstyles.csl+json")
    assert csl.json()["DOI"].lower() == doi

    dc = site.landing(doi, "application/vnd.datacite.datacite+json")
    assert dc.status_code == 200
    assert dc.headers["content-type"].startswith("application/vnd.datacite.datacite+json")
    assert dc.json()["doi"].lower() == doi
    assert dc.json()["titles"][0]["title"] == record.attributes["titles"][0]["title"]

    apa = site.landing(doi, "text/x-bibliography; style=apa")
    assert apa.status_code == 200 and apa.headers["content-type"].startswith(
        "text/x-bibliography")
    assert f"https://doi.org/{doi}" in apa.text and f"({year})" in apa.text, apa.text
    assert "Doe" in apa.text

    assert site.landing(doi, "image/png").status_code == 406
    # DOIs are case-insensitive
    upper = site.landing(doi.upper())
    assert upper.status_code == 200 and "Aragonite in the anvil cell" in upper.text
    assert site.landing(doi.upper(), "application/x-bibtex").text == bib.text

    missing = site.landing(f"{site.prefix}/no-such-doi")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")
    assert f"{site.prefix}/no-such-doi" in missing.text
    assert 'name="robots" content="noindex"' in missing.text

    # withdrawn: a tombstone saying why, hidden from search engines
    r = site.api("POST", f"/dois/{doi}/withdraw", json={"reason": "Sample <b>mixed</b> up"})
    assert r.status_code == 202, r.text
    site.settle(doi, "registered")
    tomb = site.landing(doi)
    assert tomb.status_code == 200
    assert "has been withdrawn" in tomb.text
    assert "Sample &lt;b&gt;mixed&lt;/b&gt; up" in tomb.text and "<b>mixed" not in tomb.text
    assert 'name="robots" content="noindex"' in tomb.text
    assert f'<https://doi.org/{doi}>; rel="cite-as"' in tomb.headers["link"]
    assert "scan-1" not in tomb.text and "getData" not in tomb.text  # no data offered


# -- the command line ---------------------------------------------------------------------

def test_cairn_publish_check(site: Site) -> None:
    inv = site.investigation("AB-5", "Siderite, checked")
    out = site.cairn("check", str(inv))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].endswith(": can be minted") and "Siderite, checked" in lines[0]
    assert any(line.lstrip().startswith("recommended") for line in lines[1:]), out.stdout

    bare = site.ids["bare"]
    out = site.cairn("check", str(bare))
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert out.stdout.splitlines()[0].endswith(": can't be minted yet")
    mandatory = [line for line in out.stdout.splitlines() if "mandatory" in line]
    assert mandatory and any("creator" in line.lower() for line in mandatory), out.stdout

    out = site.cairn("check")
    assert out.returncode == 0, out.stderr
    summary = out.stdout.splitlines()[-1]
    m = re.fullmatch(r"(\d+) of (\d+) investigations without a DOI could be minted today; "
                     r"(\d+) could not \(.*\)", summary)
    assert m, summary
    could, total, could_not = map(int, m.groups())
    assert could >= 1 and could_not >= 1 and could + could_not == total
    listed = {line.split("\t")[0] for line in out.stdout.splitlines()[:-1]}
    assert str(bare) in listed and str(inv) not in listed

    # the password is needed, and said where to give it
    env = {k: v for k, v in site.env.items() if k != "CAIRN_PUBLISHING__PASSWORD"}
    out = site.cairn("check", env=env)
    assert out.returncode == 2 and "CAIRN_PUBLISHING__PASSWORD" in out.stderr, out.stderr


def test_cairn_publish_mint_and_withdraw(site: Site) -> None:
    inv = site.investigation("AB-6", "Magnesite, minted by the admin")
    doi = f"{site.prefix}/inv-{inv}"
    out = site.cairn("mint", "investigation", str(inv), "--timeout", "30")
    assert out.returncode == 0, (out.stdout, out.stderr)
    assert out.stdout.splitlines()[0] == f"{doi} findable", out.stdout
    assert f"landing page: {site.server.url}/doi/{doi}" in out.stdout
    assert site.state(doi)["state"] == "findable"
    assert site.datacite.record(doi).state == "findable"  # type: ignore[union-attr]
    assert site.state(doi)["createdBy"] == "simple/root"

    instrument = site.ids["instrument"]
    out = site.cairn("mint", "instrument", str(instrument), "--timeout", "30")
    assert out.returncode == 0, (out.stdout, out.stderr)
    idoi = f"{site.prefix}/instr-{instrument}"
    assert out.stdout.splitlines()[0] == f"{idoi} findable", out.stdout
    record = site.datacite.record(idoi)
    assert record is not None and record.state == "findable"
    assert record.attributes["types"]["resourceTypeGeneral"] == "Instrument"
    assert site.search(f"SELECT i.pid FROM Instrument i WHERE i.id = {instrument}") == [
        f"doi:{idoi}"]
    page = site.landing(idoi)
    assert page.status_code == 200 and "I03 MX beamline" in page.text

    out = site.cairn("withdraw", doi.upper(), "--reason", "Recorded twice", "--timeout", "30")
    assert out.returncode == 0, (out.stdout, out.stderr)
    assert out.stdout.splitlines()[0] == f"{doi} registered", out.stdout
    assert site.datacite.record(doi).state == "registered"  # type: ignore[union-attr]
    tomb = site.landing(doi)
    assert "has been withdrawn" in tomb.text and "Recorded twice" in tomb.text

    # refusals: exit 1 and the reason, nothing written
    out = site.cairn("mint", "investigation", str(site.ids["bare"]))
    assert out.returncode == 1 and "creator" in out.stderr.lower(), out.stderr
    out = site.cairn("withdraw", f"{site.prefix}/no-such-doi", "--reason", "x")
    assert out.returncode == 1 and "No DOI" in out.stderr, out.stderr


def test_cairn_publish_mint_through_a_datacite_outage(site: Site) -> None:
    inv = site.investigation("AB-7", "Rhodochrosite, minted in a storm")
    doi = f"{site.prefix}/inv-{inv}"
    site.datacite.outage(True)
    try:
        start = datetime.now()
        out = site.cairn("mint", "investigation", str(inv), "--timeout", "2")
        took = (datetime.now() - start).total_seconds()
    finally:
        site.datacite.outage(False)
    # It gave up waiting, said why and that the job goes on, and kept the request.
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert out.stdout.splitlines()[0] == (f"{doi} pending (asked: findable; the job goes on "
                                          "in `cairn serve`)"), out.stdout
    assert "503" in out.stderr and "DataCite" in out.stderr, out.stderr
    assert took < 60
    st = site.state(doi)
    assert st["state"] == "pending" and st["target"] == "findable" and "503" in st["error"]
    job = TABLES.job
    mine = (job.c.kind == "publishing.sync") & (job.c.key == doi)
    with site.server.engine.connect() as conn:
        jobs = conn.execute(select(job.c.state, job.c.attempts).where(mine)).fetchall()
    assert [(s, a >= 1) for s, a in jobs] == [("QUEUED", True)], jobs
    assert site.datacite.record(doi) is None
    # DataCite is back; the retry is due (instead of after its back-off): mint again waits
    # for it and ends findable, the DOI created once.
    with site.server.engine.begin() as conn:
        conn.execute(update(job).where(mine, job.c.state == "QUEUED")
                     .values(not_before=datetime(2000, 1, 1)))
    out = site.cairn("mint", "investigation", str(inv), "--timeout", "30")
    assert out.returncode == 0, (out.stdout, out.stderr)
    assert out.stdout.splitlines()[0] == f"{doi} findable", out.stdout
    assert "error" not in site.state(doi)
    assert len([c for c in site.datacite.calls_to("POST", doi=doi) if c.status < 400]) == 1


def test_a_mint_that_times_out_exits_non_zero(site: Site) -> None:
    inv = site.investigation("AB-8", "Smithsonite, slow to answer")
    doi = f"{site.prefix}/inv-{inv}"
    # The creation of its draft is answered late: long enough for `cairn` to start (seconds
    # on a busy machine) and give up waiting, short of the client's timeout (30 s) and of
    # SETTLE_SECONDS. Only a POST is held: a refresh's GET or PUT of another DOI, sent
    # meanwhile, does not take the hang.
    site.datacite.hang_next(1, seconds=15, method="POST")
    r = site.api("POST", f"/investigations/{inv}")  # the server's job waits on DataCite
    assert r.status_code == 202, r.text
    job = TABLES.job

    def running() -> bool:
        with site.server.engine.connect() as conn:
            return conn.execute(select(job.c.state).where(
                job.c.kind == "publishing.sync", job.c.key == doi)).scalar() == "RUNNING"

    wait_until(running, SETTLE_SECONDS, f"the server to run the job of {doi}", step=0.02)
    try:
        out = site.cairn("mint", "investigation", str(inv), "--timeout", "0.5")
        assert out.stdout.splitlines()[0] == (f"{doi} pending (asked: findable; the job goes "
                                              "on in `cairn serve`)"), out.stdout
        assert out.returncode != 0, "a mint that did not finish in --timeout exited 0"
    finally:
        site.settle(doi, "findable")
