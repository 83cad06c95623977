"""Authenticators: turn a login's credentials into an ICAT user name.

``build_authenticators(settings, db)`` makes the configured ones; ``login_user(...)`` checks a
login with one of them. The ``db`` authenticator's users are managed with
``set_password``, ``remove_user`` and ``list_users``.
"""

from cairn.authn.anon import AnonAuthenticator
from cairn.authn.base import Authenticator, BuiltinAuthenticator
from cairn.authn.db import DbAuthenticator, list_users, remove_user, set_password
from cairn.authn.passwords import hash_password, verify_password
from cairn.authn.registry import (
    build_authenticator,
    build_authenticators,
    close_authenticators,
    login_user,
)
from cairn.authn.remote import RemoteAuthenticator
from cairn.authn.simple import SimpleAuthenticator

__all__ = [
    "AnonAuthenticator",
    "Authenticator",
    "BuiltinAuthenticator",
    "DbAuthenticator",
    "RemoteAuthenticator",
    "SimpleAuthenticator",
    "build_authenticator",
    "build_authenticators",
    "close_authenticators",
    "hash_password",
    "list_users",
    "login_user",
    "remove_user",
    "set_password",
    "verify_password",
]
