"""``anon``: everyone is ``<mechanism>/anon``, no credentials asked (authn.anon)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cairn.authn.base import BuiltinAuthenticator


class AnonAuthenticator(BuiltinAuthenticator):
    """Authenticates anyone (from an allowed address, if ``ip`` is set) as ``anon``."""

    _keys: tuple[dict[str, Any], ...] = ()

    def authenticate(self, credentials: Mapping[str, str], ip: str | None) -> str:
        self.check_ip(ip)
        return self.user_name("anon")
