"""``simple``: a fixed table of users and passwords from the configuration (authn.simple)."""

from __future__ import annotations

from collections.abc import Mapping

from cairn.authn.base import BuiltinAuthenticator, mismatch
from cairn.authn.passwords import verify_password
from cairn.config import AuthnSettings


class SimpleAuthenticator(BuiltinAuthenticator):
    """Users from ``settings.users``: name -> clear-text password or crypt(3) hash."""

    def __init__(self, mnemonic: str, settings: AuthnSettings) -> None:
        super().__init__(mnemonic, settings)
        self.users: dict[str, str] = dict(settings.users)

    def authenticate(self, credentials: Mapping[str, str], ip: str | None) -> str:
        username, password = self.username_password(credentials, ip)
        if not verify_password(password, self.users.get(username)):
            raise mismatch()
        return self.user_name(username)
