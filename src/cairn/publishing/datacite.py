"""Cairn's client for DataCite's REST API (JSON:API over HTTPS).

The calls, with the repository account's HTTP Basic credentials on every one::

    GET    {url}/dois/{doi}    -> {"data": {"id": doi, "type": "dois", "attributes": {...}}}
    POST   {url}/dois          {"data": {"type": "dois", "attributes": {"doi": ..., ...}}}
    PUT    {url}/dois/{doi}    {"data": {"type": "dois", "attributes": {...}}}
    DELETE {url}/dois/{doi}    (drafts only)

An error answer carries JSON:API ``errors`` (``[{"status"?, "source"?, "title"}]``); they are
passed on in :class:`DataCiteError`, which also says whether trying the same call again later
can succeed (:attr:`DataCiteError.retryable`), so that the job calling DataCite knows whether
to wait or to give up and show the administrator what to fix.

DataCite keeps DOIs case-insensitively and answers with them lower-cased: a DOI is sent as
given and compared lower-cased.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import httpx

log = logging.getLogger(__name__)

JSON_API = "application/vnd.api+json"

#: Ask for the publisher and affiliations as objects (DataCite answers with plain names
#: otherwise), so that what is read back has the shape of what Cairn sends.
_SHAPE = {"publisher": "true", "affiliation": "true"}


class DataCiteError(Exception):
    """A call to DataCite that did not succeed.

    ``status`` is the HTTP status, None when no answer came (connection failure, timeout).
    ``retryable`` says whether the same call may succeed later without changing it: true for
    outages (no answer, 5xx, 429) and for refused credentials (401/403, which an
    administrator can fix), false when the request itself is wrong (400, 404, 422).
    ``errors`` are DataCite's JSON:API error entries, when it gave any.
    """

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False,
                 errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.errors: list[dict[str, Any]] = errors or []

    @property
    def taken(self) -> bool:
        """DataCite refused to create a DOI because it already exists."""
        return self.status == 422 and any(
            e.get("source") == "doi" and "taken" in str(e.get("title", "")).lower()
            for e in self.errors)


class DataCite:
    """A repository account at DataCite, writing DOIs under its prefix."""

    def __init__(self, url: str, prefix: str, username: str, password: str, *,
                 timeout: float = 30.0, transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self.prefix = prefix
        self.username = username
        self.timeout = timeout
        self._http = httpx.Client(base_url=self.url, auth=httpx.BasicAuth(username, password),
                                  timeout=timeout, transport=transport,
                                  headers={"Accept": JSON_API})

    def get(self, doi: str) -> dict[str, Any] | None:
        """The DOI's attributes (``doi``, ``state``, ``url`` and its metadata), None if
        DataCite does not have it (or does not show it to this account)."""
        response = self._call("GET", _path(doi), doi)
        if response.status_code == 404:
            return None
        return self._attributes(response, "GET", doi)

    def create(self, doi: str, attributes: dict[str, Any],
               event: str | None = None) -> dict[str, Any]:
        """Create the DOI (a draft, unless ``event`` publishes or registers it)."""
        body = _document({**attributes, "doi": doi}, event)
        response = self._call("POST", "/dois", doi, body, event)
        return self._attributes(response, "POST", doi, event)

    def update(self, doi: str, attributes: dict[str, Any],
               event: str | None = None) -> dict[str, Any]:
        """Replace the given attributes of the DOI; ``event`` moves it to another state."""
        body = _document(attributes, event, doi)
        response = self._call("PUT", _path(doi), doi, body, event)
        return self._attributes(response, "PUT", doi, event)

    def put(self, doi: str, attributes: dict[str, Any], event: str | None = None, *,
            target: str | None = None) -> dict[str, Any]:
        """Create the DOI or update it: safe to repeat after a crash or an answer lost on
        the way, it never makes a second DOI.

        The DOI is looked up first; when it is absent it is created, and when the creation
        finds it taken after all (a concurrent call, or the lookup answered from a stale
        copy) it is updated instead.

        With ``target`` (``draft``, ``registered`` or ``findable``) no event is given: it is
        chosen from the state DataCite holds the DOI in (:func:`event_to`; an absent DOI is
        created as a draft would be), and chosen once more if the answer shows the DOI in
        another state than the lookup did. So a DOI DataCite lost, or holds short of where
        the caller knows it to be, is brought there instead of being created or left a
        draft. Nothing goes back: a findable DOI asked to be a draft stays findable.
        """
        held = self.get(doi)
        if target is not None:
            event = event_to(None if held is None else held.get("state"), target)
        answer: dict[str, Any] | None = None
        if held is None:
            try:
                answer = self.create(doi, attributes, event)
            except DataCiteError as e:
                if not e.taken:
                    raise
                log.debug("DataCite: %s was taken meanwhile, updating it", doi)
        if answer is None:
            answer = self.update(doi, attributes, event)
        if target is not None:
            again = event_to(answer.get("state"), target)
            if again is not None and again != event:  # the lookup was stale
                log.debug("DataCite: %s is %s, not where the lookup said; %s it", doi,
                          answer.get("state"), again)
                answer = self.update(doi, attributes, again)
        return answer

    def delete(self, doi: str) -> None:
        """Delete a draft DOI; one already gone is fine. DataCite refuses to delete a
        registered or findable DOI (a :class:`DataCiteError`, not retryable)."""
        self._call("DELETE", _path(doi), doi)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DataCite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, doi: str, body: dict[str, Any] | None = None,
              event: str | None = None) -> httpx.Response:
        """Send one request; raise :class:`DataCiteError` for anything but a success or a
        404 (which means "absent" to get and delete)."""
        what = f"{method} {path}" + (f" (event {event})" if event else "")
        headers = {"Content-Type": JSON_API} if body is not None else None
        try:
            response = self._http.request(method, path, json=body, headers=headers,
                                          params=_SHAPE if method != "DELETE" else None)
        except httpx.TimeoutException as e:
            log.debug("DataCite %s: no answer within %s s", what, self.timeout)
            raise DataCiteError(
                f"DataCite at {self.url} did not answer {what} within {self.timeout:g} s; "
                f"the call will be tried again.", retryable=True) from e
        except httpx.TransportError as e:
            log.debug("DataCite %s: %s", what, e)
            raise DataCiteError(
                f"No answer came from DataCite at {self.url} to {what} "
                f"({e or type(e).__name__}); the call will be tried again. If this lasts, "
                f"check the DataCite URL in Cairn's settings and the network.",
                retryable=True) from e
        log.debug("DataCite %s -> %s", what, response.status_code)
        if response.is_success or (response.status_code == 404 and method in ("GET", "DELETE")):
            return response
        raise _error(response, method, doi, event, self)

    def _attributes(self, response: httpx.Response, method: str, doi: str,
                    event: str | None = None) -> dict[str, Any]:
        """``data.attributes`` of a successful answer."""
        try:
            attributes = response.json()["data"]["attributes"]
        except (ValueError, KeyError, TypeError):
            attributes = None
        if not isinstance(attributes, dict):
            # A success without a DOI record in it is no answer from DataCite itself (a proxy
            # or a maintenance page), so the call is worth repeating.
            raise DataCiteError(
                f"DataCite at {self.url} answered {method} for DOI {doi} with "
                f"{response.status_code} but without a DOI record; the call will be tried "
                f"again.", status=response.status_code, retryable=True)
        return attributes


#: (state DataCite holds a DOI in, state wanted) -> the event that takes it there.
_EVENTS = {
    ("draft", "registered"): "register",
    ("draft", "findable"): "publish",
    ("registered", "findable"): "publish",
    ("findable", "registered"): "hide",
}


def event_to(state: str | None, target: str) -> str | None:
    """The event taking a DOI from ``state`` (None: DataCite does not hold it, so it is
    created as a draft) to ``target``; None when there is nothing to do or nothing that can
    be done (DataCite takes no DOI back to a draft)."""
    return _EVENTS.get((state or "draft", target))


def _path(doi: str) -> str:
    # The DOI's own slash stays a slash: DataCite's route takes the rest of the path.
    return "/dois/" + quote(doi, safe="/")


def _document(attributes: dict[str, Any], event: str | None,
              doi: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"type": "dois", "attributes": dict(attributes)}
    if doi is not None:
        data["id"] = doi
    if event is not None:
        data["attributes"]["event"] = event
    return {"data": data}


def _errors(response: httpx.Response) -> list[dict[str, Any]]:
    """DataCite's JSON:API error entries, [] when the body has none (an HTML error page)."""
    try:
        body = response.json()
    except ValueError:
        return []
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, dict):  # some of DataCite's answers give a single object
        errors = [errors]
    if not isinstance(errors, list):
        return []
    return [e for e in errors if isinstance(e, dict)]


def _describe(errors: list[dict[str, Any]]) -> str:
    parts = []
    for e in errors:
        title = e.get("title")
        text = title if isinstance(title, str) else str(title or e.get("detail") or "")
        source = e.get("source")
        if isinstance(source, dict):  # JSON:API allows {"pointer": ...}
            source = source.get("pointer") or source.get("parameter")
        parts.append(f"{source}: {text}" if source else text)
    return "; ".join(p for p in parts if p)


def _error(response: httpx.Response, method: str, doi: str, event: str | None,
           client: DataCite) -> DataCiteError:
    """The :class:`DataCiteError` for an unsuccessful answer, with advice that fits it."""
    status = response.status_code
    errors = _errors(response)
    said = _describe(errors) or response.reason_phrase or "no reason given"
    what = f"{method} of DOI {doi}" + (f" (event {event})" if event else "")
    head = f"DataCite answered {status} ({said}) to the {what}."
    if status == 401:
        advice = (f"It does not accept the repository account {client.username!r}: check the "
                  f"DataCite username and password in Cairn's settings; the call will be "
                  f"tried again.")
        retryable = True
    elif status == 403:
        advice = (f"The repository account {client.username!r} may not write this DOI: check "
                  f"that the DOI's prefix is one of the account's (Cairn is set to use "
                  f"{client.prefix}); the call will be tried again.")
        retryable = True
    elif status == 422:
        advice = ("DataCite refused the DOI's metadata or state change: complete or correct "
                  "what it names and publish again.")
        retryable = False
    elif status == 405 and method == "DELETE":
        advice = "Only a draft DOI can be deleted; a registered or findable DOI stays."
        retryable = False
    elif status == 429:
        advice = "DataCite is limiting the request rate; the call will be tried again."
        retryable = True
    elif status >= 500 or status in (408, 409):
        # 408/409: a timeout, or two writes of the same DOI at once; repeating resolves both.
        advice = "DataCite is unavailable or busy; the call will be tried again."
        retryable = True
    else:
        advice = "The request is wrong and will not be tried again as it is."
        retryable = False
    return DataCiteError(f"{head} {advice}", status=status, retryable=retryable, errors=errors)
