"""Cairn's DataCite client against a local server speaking DataCite's REST API over HTTP
(tests/integration/datacite_server.py): creating, reading, updating and deleting DOIs, their
state changes and DataCite's refusals, idempotent writes after lost answers, and how each
failure is classed (retryable or not)."""

from __future__ import annotations

import base64
import copy
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cairn.publishing.datacite import JSON_API, DataCite, DataCiteError
from tests.integration.datacite_server import (
    ACCOUNT,
    OTHER,
    DataCiteServer,
    datacite_server_fixture,  # noqa: F401 - the fixture datacite_server
)

#: Complete DataCite metadata (REST API attributes), enough to publish with a url.
METADATA: dict[str, Any] = {
    "creators": [{"name": "Doe, Jane", "nameType": "Personal", "givenName": "Jane",
                  "familyName": "Doe",
                  "nameIdentifiers": [{"nameIdentifier": "https://orcid.org/0000-0002-1825-0097",
                                       "nameIdentifierScheme": "ORCID",
                                       "schemeUri": "https://orcid.org"}],
                  "affiliation": [{"name": "ISIS Neutron and Muon Source",
                                   "affiliationIdentifier": "https://ror.org/05ndh7v49",
                                   "affiliationIdentifierScheme": "ROR"}]}],
    "titles": [{"title": "Magnetic order in a frustrated pyrochlore"}],
    "publisher": {"name": "ISIS Neutron and Muon Source",
                  "publisherIdentifier": "https://ror.org/05ndh7v49",
                  "publisherIdentifierScheme": "ROR"},
    "publicationYear": 2024,
    "types": {"resourceTypeGeneral": "Dataset", "resourceType": "Investigation"},
    "descriptions": [{"description": "Neutron diffraction data.",
                      "descriptionType": "Abstract"}],
    "dates": [{"date": "2023-05-01/2023-05-04", "dateType": "Collected"}],
    "sizes": ["12 files", "3.2 GB"],
    "identifiers": [{"identifier": "RB1820123", "identifierType": "ISIS experiment"}],
}
URL = "https://data.example.org/doi/10.80001/inv-1"


def metadata(**changes: Any) -> dict[str, Any]:
    md = copy.deepcopy(METADATA)
    md.update(changes)
    return md


@pytest.fixture
def client(datacite_server: DataCiteServer) -> Iterator[DataCite]:
    c = DataCite(datacite_server.url, datacite_server.prefix, datacite_server.username,
                 datacite_server.password, timeout=5)
    yield c
    c.close()


@pytest.fixture
def doi(datacite_server: DataCiteServer) -> str:
    """A DOI of the account's prefix, with upper-case letters (DataCite answers lower-case)."""
    return f"{datacite_server.prefix}/ISIS.INV-1"


def make_client(server: DataCiteServer, **kw: Any) -> DataCite:
    args = {"url": server.url, "prefix": server.prefix, "username": server.username,
            "password": server.password, **kw}
    return DataCite(**args)


def raised(call: Any, *args: Any, **kw: Any) -> DataCiteError:
    with pytest.raises(DataCiteError) as info:
        call(*args, **kw)
    return info.value


# -- reading and writing ----------------------------------------------------------------------


def test_get_of_an_unknown_doi_is_none(datacite_server: DataCiteServer, client: DataCite,
                                       doi: str) -> None:
    assert client.get(doi) is None
    assert [(c.method, c.status) for c in datacite_server.calls] == [("GET", 404)]


def test_create_sends_a_json_api_document_and_makes_a_draft(
        datacite_server: DataCiteServer, client: DataCite, doi: str) -> None:
    answer = client.create(doi, {"titles": [{"title": "Work in progress"}]})

    assert answer["doi"] == doi.lower()
    assert answer["state"] == "draft"
    assert answer["titles"] == [{"title": "Work in progress"}]
    [call] = datacite_server.calls
    assert (call.method, call.path, call.status) == ("POST", "/dois", 201)
    assert call.content_type == JSON_API
    assert call.username == ACCOUNT.username
    assert call.body == {"data": {"type": "dois", "attributes": {
        "titles": [{"title": "Work in progress"}], "doi": doi}}}
    record = datacite_server.record(doi)
    assert record is not None and record.state == "draft"
    assert record.attributes == {"titles": [{"title": "Work in progress"}]}


def test_get_answers_what_was_sent_in_the_same_shape(client: DataCite, doi: str) -> None:
    client.create(doi, metadata(url=URL), event="publish")

    got = client.get(doi)

    assert got is not None
    assert (got["doi"], got["state"], got["url"]) == (doi.lower(), "findable", URL)
    # Publisher and affiliations come back as objects (not DataCite's default plain names),
    # the year as DataCite gives it (a number).
    for key in ("creators", "titles", "publisher", "publicationYear", "types", "dates"):
        assert got[key] == METADATA[key], key
    assert got["created"] and got["updated"] and got["registered"]


def test_the_doi_is_case_insensitive(datacite_server: DataCiteServer, client: DataCite,
                                     doi: str) -> None:
    client.create(doi, {"titles": [{"title": "T"}]})

    got = client.get(doi.lower())
    assert got is not None and got["doi"] == doi.lower()
    client.put(doi.swapcase(), {"titles": [{"title": "T2"}]})

    assert list(datacite_server.records) == [doi.lower()]
    assert [c.method for c in datacite_server.calls_to("POST")] == ["POST"]


def test_update_replaces_only_the_attributes_given(datacite_server: DataCiteServer,
                                                   client: DataCite, doi: str) -> None:
    client.create(doi, metadata())

    answer = client.update(doi, {"titles": [{"title": "A better title"}]})

    assert answer["titles"] == [{"title": "A better title"}]
    assert answer["creators"] == METADATA["creators"]
    [call] = datacite_server.calls_to("PUT")
    assert call.path == f"/dois/{doi}" and call.content_type == JSON_API
    assert call.body["data"]["attributes"] == {"titles": [{"title": "A better title"}]}


def test_a_doi_with_reserved_characters_reaches_its_record(datacite_server: DataCiteServer,
                                                           client: DataCite) -> None:
    doi = f"{datacite_server.prefix}/a;b(c):d"
    client.create(doi, {"titles": [{"title": "T"}]})

    got = client.get(doi)

    assert got is not None and got["suffix"] == "a;b(c):d"


# -- put: create or update, never twice -------------------------------------------------------


def test_put_twice_creates_once(datacite_server: DataCiteServer, client: DataCite,
                                doi: str) -> None:
    first = client.put(doi, metadata(url=URL), event="publish")
    second = client.put(doi, metadata(url=URL), event="publish")

    assert first["state"] == second["state"] == "findable"
    assert len(datacite_server.records) == 1
    assert [(c.method, c.status) for c in datacite_server.calls] == [
        ("GET", 404), ("POST", 201), ("GET", 200), ("PUT", 200)]


def test_put_after_a_lost_answer_does_not_create_a_second_doi(
        datacite_server: DataCiteServer, client: DataCite, doi: str) -> None:
    datacite_server.lose_next(method="POST")

    error = raised(client.put, doi, metadata(url=URL), "publish")

    assert error.status is None and error.retryable
    record = datacite_server.record(doi)
    assert record is not None and record.state == "findable"  # DataCite did the work
    answer = client.put(doi, metadata(url=URL, version="2"), "publish")
    assert answer["state"] == "findable" and answer["version"] == "2"
    assert len(datacite_server.calls_to("POST")) == 1
    assert [c.lost for c in datacite_server.calls_to("POST")] == [True]
    assert len(datacite_server.records) == 1


def test_put_after_a_timeout_does_not_create_a_second_doi(
        datacite_server: DataCiteServer, doi: str) -> None:
    datacite_server.hang_next(method="POST", seconds=5)
    with make_client(datacite_server, timeout=0.3) as client:
        error = raised(client.put, doi, metadata())
        assert error.status is None and error.retryable
        assert "did not answer" in error.message

        client.put(doi, metadata(titles=[{"title": "Second try"}]))

    record = datacite_server.record(doi)
    assert record is not None and record.attributes["titles"] == [{"title": "Second try"}]
    assert len(datacite_server.calls_to("POST")) == 1


def test_put_updates_when_the_creation_finds_the_doi_taken(
        datacite_server: DataCiteServer, client: DataCite, doi: str) -> None:
    """The lookup missed a DOI that exists (a concurrent writer, a stale answer): the
    creation's "already taken" turns into an update."""
    datacite_server.seed(doi, metadata(), state="draft")
    datacite_server.fail_next(status=404, method="GET")

    answer = client.put(doi, metadata(url=URL), "publish")

    assert answer["state"] == "findable"
    assert [(c.method, c.status) for c in datacite_server.calls] == [
        ("GET", 404), ("POST", 422), ("PUT", 200)]
    assert len(datacite_server.records) == 1


def test_create_of_an_existing_doi_is_refused_as_taken(client: DataCite, doi: str) -> None:
    client.create(doi, {"titles": [{"title": "T"}]})

    error = raised(client.create, doi, {"titles": [{"title": "T"}]})

    assert (error.status, error.retryable, error.taken) == (422, False, True)
    assert error.errors == [{"source": "doi", "title": "This DOI has already been taken",
                             "uid": doi.lower()}]


# -- states and events ------------------------------------------------------------------------


def test_events_move_a_doi_between_its_states(datacite_server: DataCiteServer,
                                              client: DataCite, doi: str) -> None:
    client.create(doi, metadata(url=URL))
    states = [client.update(doi, {}, event)["state"]
              for event in ("register", "publish", "hide", "publish")]

    assert states == ["registered", "findable", "registered", "findable"]
    assert [c.event for c in datacite_server.calls_to("PUT")] == [
        "register", "publish", "hide", "publish"]


def test_an_event_that_does_not_apply_leaves_the_state(client: DataCite, doi: str) -> None:
    client.create(doi, metadata(url=URL))

    assert client.update(doi, {}, "hide")["state"] == "draft"
    client.update(doi, {}, "publish")
    assert client.update(doi, {}, "register")["state"] == "findable"


def test_a_draft_may_be_incomplete_but_publishing_needs_a_url(
        datacite_server: DataCiteServer, client: DataCite, doi: str) -> None:
    client.create(doi, metadata())  # no url: fine for a draft

    error = raised(client.update, doi, {}, "publish")

    assert (error.status, error.retryable) == (422, False)
    assert error.errors == [{"source": "url", "title": "Can't be blank", "uid": doi.lower()}]
    assert "url: Can't be blank" in error.message
    record = datacite_server.record(doi)
    assert record is not None and record.state == "draft"


def test_publishing_needs_the_mandatory_properties(datacite_server: DataCiteServer,
                                                   client: DataCite, doi: str) -> None:
    error = raised(client.create, doi, {"url": URL, "creators": [{"nameType": "Personal"}],
                                        "types": {"resourceTypeGeneral": "Data"}}, "publish")

    assert (error.status, error.retryable) == (422, False)
    assert [e["source"] for e in error.errors] == [
        "creators", "titles", "publisher", "publication_year", "types"]
    for e in error.errors:
        assert e["title"] in error.message
    assert "'Data' is not one" in error.message
    assert datacite_server.record(doi) is None  # nothing was created


def test_registering_needs_them_too(datacite_server: DataCiteServer, client: DataCite,
                                    doi: str) -> None:
    client.create(doi, {"url": URL, "titles": [{"title": "T"}]})

    error = raised(client.update, doi, {}, "register")

    assert {e["source"] for e in error.errors} == {
        "creators", "publisher", "publication_year", "types"}
    record = datacite_server.record(doi)
    assert record is not None and record.state == "draft"


def test_metadata_of_a_published_doi_are_checked_against_schema_45(
        datacite_server: DataCiteServer, client: DataCite, doi: str) -> None:
    wrong = metadata(url=URL)
    wrong["creators"][0]["nameType"] = "Person"  # schema 4.5: Personal or Organizational
    wrong["fundingReference"] = [{"funderName": "UKRI"}]  # misspelt: fundingReferences

    error = raised(client.put, doi, wrong, "publish")

    assert (error.status, error.retryable) == (422, False)
    sources = {e["source"]: e["title"] for e in error.errors}
    assert "'Person' is not one of" in sources["creators"]
    assert "'fundingReference' was unexpected" in sources["xml"]
    assert datacite_server.record(doi) is None


def test_schema_validation_can_be_switched_off(datacite_server: DataCiteServer,
                                               client: DataCite, doi: str) -> None:
    datacite_server.validate_schema = False
    wrong = metadata(url=URL)
    wrong["creators"][0]["nameType"] = "Person"

    assert client.put(doi, wrong, "publish")["state"] == "findable"


def test_rest_attribute_shapes_pass_schema_validation(client: DataCite, doi: str) -> None:
    """Plain-string publisher, numeric year, ``identifiers`` and derived ``types`` keys are
    the REST API's shapes, not errors."""
    md = metadata(url=URL, publisher="ISIS", publicationYear=2024)
    md["types"] = {"resourceTypeGeneral": "Dataset", "ris": "DATA", "schemaOrg": "Dataset"}

    assert client.create(doi, md, "publish")["state"] == "findable"


# -- delete -----------------------------------------------------------------------------------


def test_a_draft_can_be_deleted_and_deleting_it_again_is_fine(
        datacite_server: DataCiteServer, client: DataCite, doi: str) -> None:
    client.create(doi, {"titles": [{"title": "T"}]})

    client.delete(doi)
    client.delete(doi)

    assert client.get(doi) is None
    assert [(c.method, c.status) for c in datacite_server.calls_to("DELETE")] == [
        ("DELETE", 204), ("DELETE", 404)]


@pytest.mark.parametrize("event", ["publish", "register"])
def test_a_registered_or_findable_doi_cannot_be_deleted(
        datacite_server: DataCiteServer, client: DataCite, doi: str, event: str) -> None:
    client.create(doi, metadata(url=URL), event)

    error = raised(client.delete, doi)

    assert (error.status, error.retryable) == (405, False)
    assert "Only a draft DOI can be deleted" in error.message
    assert datacite_server.record(doi) is not None


# -- the repository account -------------------------------------------------------------------


def test_wrong_credentials_are_retryable_and_the_message_says_what_to_fix(
        datacite_server: DataCiteServer, doi: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with make_client(datacite_server, password="not-the-password") as client:
        for call, args in ((client.get, (doi,)), (client.create, (doi, metadata()))):
            error = raised(call, *args)
            assert (error.status, error.retryable) == (401, True)
            assert error.errors == [{"status": "401", "title": "Bad credentials."}]
            assert ACCOUNT.username in error.message and "password" in error.message
            assert "not-the-password" not in error.message
    assert datacite_server.records == {}
    assert "not-the-password" not in caplog.text


def test_a_doi_outside_the_accounts_prefixes_is_forbidden(
        datacite_server: DataCiteServer, client: DataCite) -> None:
    foreign = f"{OTHER.prefixes[0]}/not-ours"

    error = raised(client.create, foreign, metadata())

    assert (error.status, error.retryable) == (403, True)
    assert datacite_server.prefix in error.message
    assert datacite_server.records == {}


def test_another_accounts_draft_is_hidden_and_cannot_be_written(
        datacite_server: DataCiteServer, client: DataCite, doi: str) -> None:
    datacite_server.seed(doi, metadata(), state="draft", owner=OTHER)

    assert client.get(doi) is None
    assert raised(client.update, doi, {"titles": []}).status == 403
    assert raised(client.delete, doi).status == 403


# -- outages and their classes ----------------------------------------------------------------


def test_an_outage_is_retryable_and_ends(datacite_server: DataCiteServer, client: DataCite,
                                         doi: str) -> None:
    datacite_server.outage()
    for call, args in ((client.get, (doi,)), (client.put, (doi, metadata()))):
        error = raised(call, *args)
        assert (error.status, error.retryable, error.errors) == (503, True, [])
        assert "will be tried again" in error.message
    assert datacite_server.records == {}

    datacite_server.outage(False)
    assert client.put(doi, metadata())["state"] == "draft"


def test_connection_refused_is_retryable_without_a_status(
        datacite_server: DataCiteServer, client: DataCite, doi: str) -> None:
    client.create(doi, metadata())
    datacite_server.stop()

    error = raised(client.get, doi)

    assert (error.status, error.retryable) == (None, True)
    assert datacite_server.url in error.message
    datacite_server.start()  # the same port, DOIs kept
    got = client.get(doi)
    assert got is not None and got["state"] == "draft"


@pytest.mark.parametrize(("status", "retryable"), [
    (500, True), (502, True), (503, True), (504, True), (429, True), (401, True), (403, True),
    (400, False), (404, False), (422, False),
])
def test_each_status_is_classed(datacite_server: DataCiteServer, client: DataCite, doi: str,
                                status: int, retryable: bool) -> None:
    datacite_server.fail_next(status=status)

    error = raised(client.update, doi, {"titles": [{"title": "T"}]})

    assert (error.status, error.retryable) == (status, retryable)


def test_a_success_without_a_record_is_retryable(datacite_server: DataCiteServer,
                                                 client: DataCite, doi: str) -> None:
    datacite_server.fail_next(status=200)  # an HTML page with 200: a proxy, not DataCite

    error = raised(client.get, doi)

    assert (error.status, error.retryable) == (200, True)


def test_every_call_is_logged_at_debug_level_without_the_password(
        datacite_server: DataCiteServer, client: DataCite, doi: str,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="cairn.publishing.datacite")

    client.put(doi, metadata(url=URL), "publish")
    client.update(doi, {}, "hide")

    lines = [r.getMessage() for r in caplog.records if r.name == "cairn.publishing.datacite"]
    assert [line.split(" ")[1] for line in lines] == ["GET", "POST", "PUT"]
    assert "event hide" in lines[-1] and "-> 200" in lines[-1]
    assert all(r.levelno == logging.DEBUG for r in caplog.records
               if r.name == "cairn.publishing.datacite")
    assert datacite_server.password not in caplog.text


# -- the server's own protocol, as other DataCite clients see it ------------------------------


def test_server_draws_a_suffix_when_only_a_prefix_is_given(
        datacite_server: DataCiteServer) -> None:
    auth = (datacite_server.username, datacite_server.password)
    body = {"data": {"type": "dois", "attributes": {"prefix": datacite_server.prefix}}}
    with httpx.Client(base_url=datacite_server.url, auth=auth) as http:
        answer = http.post("/dois", json=body, headers={"Content-Type": JSON_API})

    assert answer.status_code == 201
    attributes = answer.json()["data"]["attributes"]
    assert attributes["prefix"] == datacite_server.prefix
    assert len(attributes["suffix"]) == 9 and attributes["suffix"][4] == "-"
    assert datacite_server.record(attributes["doi"]) is not None


def test_server_shows_drafts_to_their_owner_only(datacite_server: DataCiteServer,
                                                 doi: str) -> None:
    datacite_server.seed(doi, metadata(), state="draft")
    datacite_server.seed(f"{datacite_server.prefix}/public", metadata(url=URL))
    with httpx.Client(base_url=datacite_server.url) as anonymous:
        assert anonymous.get(f"/dois/{doi}").status_code == 404
        public = anonymous.get(f"/dois/{datacite_server.prefix}/public")
        assert public.status_code == 200
        # DataCite's default shapes: plain names for publisher and affiliations.
        attributes = public.json()["data"]["attributes"]
        assert attributes["publisher"] == "ISIS Neutron and Muon Source"
        assert attributes["creators"][0]["affiliation"] == ["ISIS Neutron and Muon Source"]
        token = base64.b64encode(b"CAIRN.TEST:wrong").decode()
        wrong = anonymous.get(f"/dois/{datacite_server.prefix}/public",
                              headers={"Authorization": f"Basic {token}"})
        assert wrong.status_code == 401
        put = anonymous.put(f"/dois/{doi}", json={"data": {"attributes": {}}})
        assert put.status_code == 401


def test_server_put_creates_an_absent_doi_as_datacite_does(
        datacite_server: DataCiteServer, doi: str) -> None:
    auth = (datacite_server.username, datacite_server.password)
    body = {"data": {"type": "dois", "attributes": {"titles": [{"title": "T"}]}}}
    with httpx.Client(base_url=datacite_server.url, auth=auth) as http:
        answer = http.put(f"/dois/{doi}", json=body)

    assert answer.status_code == 201
    assert answer.json()["data"]["id"] == doi.lower()
