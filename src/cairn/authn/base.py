"""What every authenticator offers, and the checks the built-in ones share.

An authenticator turns a login request (a ``credentials`` map such as
``{"username": "jdoe", "password": "secret"}`` and the client's IP address) into the full ICAT
user name (``simple/jdoe``), or refuses with a ``SESSION`` error carrying the message the ICAT
plugins give. The built-in authenticators (``simple``, ``db``, ``anon``) behave as the
``authn.simple``, ``authn.db`` and ``authn.anon`` plugins do; ``remote`` talks to such a plugin.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from cairn.authn.addresses import AddressChecker
from cairn.config import AuthnSettings, ConfigError
from cairn.errors import IcatError, session_error


@runtime_checkable
class Authenticator(Protocol):
    """One configured authenticator, known to clients by its mnemonic."""

    #: Name clients pass to ``login`` (``db``, ``simple``, ``ldap``...).
    mnemonic: str
    #: Display label for tools (``/icat/properties``, ``getAuthenticatorInfo``), if any.
    friendly: str | None
    #: Advertise to admin tools only.
    admin: bool

    def keys(self) -> list[dict[str, Any]]:
        """The credential keys a client must supply, as the plugins' ``description`` lists them:
        ``{"name": ..., "hide": True?, "pattern": regex?}``; empty for ``anon``."""
        ...

    def authenticate(self, credentials: Mapping[str, str], ip: str | None) -> str:
        """The full ICAT user name for these credentials, or ``IcatError(SESSION, ...)``."""
        ...


USERNAME_PASSWORD_KEYS: tuple[dict[str, Any], ...] = (
    {"name": "username"},
    {"name": "password", "hide": True},
)


class BuiltinAuthenticator:
    """Settings and checks shared by the authenticators Cairn runs itself.

    The ICAT user name is ``<mechanism>/<username>``; the mechanism defaults to the mnemonic.
    """

    _keys: tuple[dict[str, Any], ...] = USERNAME_PASSWORD_KEYS

    def __init__(self, mnemonic: str, settings: AuthnSettings) -> None:
        self.mnemonic = mnemonic
        self.settings = settings
        self.friendly = settings.friendly
        self.admin = settings.admin
        self.mechanism = settings.mechanism or mnemonic
        try:
            self.address_checker = AddressChecker(settings.ip) if settings.ip else None
        except ValueError as e:
            raise ConfigError(f"authn.{mnemonic}.ip: {e}") from e

    def keys(self) -> list[dict[str, Any]]:
        return [dict(k) for k in self._keys]

    def user_name(self, username: str) -> str:
        return f"{self.mechanism}/{username}"

    def check_ip(self, ip: str | None) -> None:
        """Refuse clients outside the configured allow-list (if there is one)."""
        if self.address_checker is not None and not self.address_checker.allows(ip):
            raise session_error(
                f"authn.{self.mnemonic} does not allow log in from your IP address "
                f"{ip if ip else 'unknown'}")

    def username_password(self, credentials: Mapping[str, str],
                          ip: str | None) -> tuple[str, str]:
        """The username and password, checked in the plugins' order: username present,
        password present, client address allowed."""
        username = credentials.get("username")
        if not isinstance(username, str) or not username:
            raise session_error("username cannot be null or empty.")
        password = credentials.get("password")
        if not isinstance(password, str) or not password:
            raise session_error("password cannot be null or empty.")
        self.check_ip(ip)
        return username, password

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.mnemonic!r}, mechanism={self.mechanism!r})"


def mismatch() -> IcatError:
    """The error for an unknown user or a wrong password (one message for both)."""
    return session_error("The username and password do not match")
