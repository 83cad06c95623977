"""``remote``: an ICAT authenticator plugin (authn.ldap, authn.db, ...) reached over HTTP.

The plugin protocol, with ``m`` the mnemonic (the plugin's context root is ``authn.m``):

* ``GET  {url}/authn.m/description`` -> ``{"keys": [{"name": "username"}, ...]}``
* ``GET  {url}/authn.m/version`` -> ``{"version": "x.y.z"}``
* ``POST {url}/authn.m/authenticate`` with form field ``json`` =
  ``{"credentials": [{"username": "jdoe"}, {"password": "..."}], "ip": "1.2.3.4"}``
  -> ``{"username": "jdoe", "mechanism": "ldap"}`` (mechanism optional), or an error status
  with ``{"code": "AuthnException", "message": "..."}``.

Several URLs name equivalent servers. They are tried in order and the first HTTP answer wins:
only a network failure or a timeout moves on to the next one, as in icat.server.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

import httpx

from cairn.config import AuthnSettings
from cairn.errors import IcatError, internal, session_error

log = logging.getLogger(__name__)


class RemoteAuthenticator:
    """Forwards logins to an authenticator plugin, with failover between its URLs."""

    def __init__(self, mnemonic: str, settings: AuthnSettings,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.mnemonic = mnemonic
        self.settings = settings
        self.friendly = settings.friendly
        self.admin = settings.admin
        #: Overrides the plugin's mechanism when configured.
        self.mechanism = settings.mechanism
        self.urls = [u.rstrip("/") for u in settings.url]
        self._client = httpx.Client(timeout=settings.timeout_seconds, transport=transport)
        self._keys: list[dict[str, Any]] | None = None
        self._keys_lock = threading.Lock()

    def _path(self, base: str, call: str) -> str:
        return f"{base}/authn.{self.mnemonic}/{call}"

    def _get_json(self, call: str) -> Any:
        """GET ``call`` from the first reachable URL and return its JSON body."""
        for base in self.urls:
            url = self._path(base, call)
            try:
                response = self._client.get(url)
            except httpx.TransportError as e:
                log.warning("authenticator %s: %s unreachable: %s", self.mnemonic, url, e)
                continue
            if not response.is_success:
                raise internal(f"Authenticator {self.mnemonic} at {base} answered "
                               f"{response.status_code} to {call}")
            try:
                return response.json()
            except ValueError as e:
                raise internal(f"Authenticator {self.mnemonic} at {base} answered {call} "
                               f"with something that is not JSON") from e
        raise internal(f"No authenticator of type {self.mnemonic} is working "
                       f"(none of {' '.join(self.urls)} could be reached for {call})")

    def keys(self) -> list[dict[str, Any]]:
        """The plugin's credential keys, fetched once from the first reachable URL."""
        with self._keys_lock:
            if self._keys is None:
                body = self._get_json("description")
                keys = body.get("keys") if isinstance(body, dict) else None
                if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
                    raise internal(f"Authenticator {self.mnemonic} sent a description "
                                   f"without a list of keys")
                self._keys = keys
            return [dict(k) for k in self._keys]

    def version(self) -> str:
        """The plugin's version, from the first reachable URL."""
        body = self._get_json("version")
        if not isinstance(body, dict) or not isinstance(body.get("version"), str):
            raise internal(f"Authenticator {self.mnemonic} sent a version without version")
        return str(body["version"])

    def authenticate(self, credentials: Mapping[str, str], ip: str | None) -> str:
        request: dict[str, Any] = {"credentials": [{k: v} for k, v in credentials.items()]}
        if ip is not None:
            request["ip"] = ip
        form = {"json": json.dumps(request)}
        for base in self.urls:
            url = self._path(base, "authenticate")
            try:
                response = self._client.post(url, data=form)
            except httpx.TransportError as e:
                log.warning("authenticator %s: %s unreachable: %s", self.mnemonic, url, e)
                continue
            return self._user_name(base, response)
        raise internal(f"No authenticator of type {self.mnemonic} is working")

    def _user_name(self, base: str, response: httpx.Response) -> str:
        """The ICAT user name from the plugin's answer, or the error it stands for."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if not response.is_success:
            raise _plugin_error(self.mnemonic, base, response.status_code, body)
        username = body.get("username") if isinstance(body, dict) else None
        if not isinstance(username, str) or not username:
            raise internal(f"Authenticator {self.mnemonic} at {base} answered without a "
                           f"user name")
        mechanism = self.mechanism or (body.get("mechanism") if isinstance(body, dict) else None)
        if isinstance(mechanism, str) and mechanism:
            return f"{mechanism}/{username}"
        return username

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"RemoteAuthenticator({self.mnemonic!r}, urls={self.urls!r})"


def _plugin_error(mnemonic: str, base: str, status: int, body: Any) -> IcatError:
    """A plugin's refusal (``code`` and ``message``) is a SESSION error with its message;
    any other failure is INTERNAL."""
    if isinstance(body, dict) and isinstance(body.get("code"), str) \
            and isinstance(body.get("message"), str):
        return session_error(body["message"])
    return internal(f"Authenticator {mnemonic} at {base} failed with HTTP status {status}")
