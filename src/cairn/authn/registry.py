"""The configured authenticators, by mnemonic, and logging a user in with one of them."""

from __future__ import annotations

from collections.abc import Mapping

from cairn.authn.anon import AnonAuthenticator
from cairn.authn.base import Authenticator
from cairn.authn.db import DbAuthenticator
from cairn.authn.remote import RemoteAuthenticator
from cairn.authn.simple import SimpleAuthenticator
from cairn.config import AuthnSettings, Settings
from cairn.db.engine import Database
from cairn.errors import session_error


def build_authenticator(mnemonic: str, settings: AuthnSettings, db: Database) -> Authenticator:
    """One authenticator from its settings (``ConfigError`` if they are unusable)."""
    if settings.type == "simple":
        return SimpleAuthenticator(mnemonic, settings)
    if settings.type == "db":
        return DbAuthenticator(mnemonic, settings, db)
    if settings.type == "anon":
        return AnonAuthenticator(mnemonic, settings)
    return RemoteAuthenticator(mnemonic, settings)


def build_authenticators(settings: Settings, db: Database) -> dict[str, Authenticator]:
    """All configured authenticators, by mnemonic, in configuration order."""
    return {m: build_authenticator(m, s, db) for m, s in settings.authn.items()}


def login_user(authenticators: Mapping[str, Authenticator], mnemonic: str | None,
               credentials: Mapping[str, str], ip: str | None) -> str:
    """The ICAT user name ``credentials`` prove, checked by the authenticator ``mnemonic``."""
    authenticator = authenticators.get(mnemonic) if mnemonic else None
    if authenticator is None:
        shown = "null" if mnemonic is None else mnemonic  # as icat.server words it
        raise session_error(f"Authenticator mnemonic {shown} not recognised")
    return authenticator.authenticate(credentials, ip)


def close_authenticators(authenticators: Mapping[str, Authenticator]) -> None:
    """Release what the authenticators hold (HTTP connection pools)."""
    for authenticator in authenticators.values():
        close = getattr(authenticator, "close", None)
        if callable(close):
            close()
