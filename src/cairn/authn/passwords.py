"""Stored passwords as the ICAT authenticator plugins keep them: clear text or crypt(3) hashes.

A stored value starting with ``$`` is a crypt(3) hash: MD5 ``$1$``, SHA-256 ``$5$`` or
SHA-512 ``$6$``, each with an optional ``rounds=N$`` part. Anything else is clear text,
compared in constant time. New passwords are hashed with SHA-512 crypt (``$6$``), which
every ICAT plugin and glibc's ``crypt(3)`` can verify.
"""

from __future__ import annotations

import hmac
from functools import cache

from passlib.hash import md5_crypt, sha256_crypt, sha512_crypt
from passlib.ifc import PasswordHash

#: Rounds for new ``$6$`` hashes: about 50 ms per check, ~20x the crypt(3) default of 5000.
DEFAULT_ROUNDS = 100_000

_SCHEMES: dict[str, type[PasswordHash]] = {
    "$1$": md5_crypt,
    "$5$": sha256_crypt,
    "$6$": sha512_crypt,
}


@cache
def _dummy_hash() -> str:
    """Checked against when a user does not exist, so that an unknown name costs about as long
    as a wrong password and the answer time does not reveal which names exist."""
    return str(sha512_crypt.using(rounds=DEFAULT_ROUNDS).hash("not a password"))


def is_crypt_hash(encoded: str) -> bool:
    """True if ``encoded`` is stored as a crypt(3) hash rather than as clear text."""
    return encoded.startswith("$")


def verify_password(password: str, encoded: str | None) -> bool:
    """Does ``password`` match the stored value ``encoded`` (clear text or crypt hash)?

    ``encoded = None`` (no such user) is never a match, but costs as much as one.
    Malformed or unsupported hashes never match.
    """
    if encoded is None:
        sha512_crypt.verify(password, _dummy_hash())
        return False
    if not is_crypt_hash(encoded):
        return hmac.compare_digest(password.encode("utf-8"), encoded.encode("utf-8"))
    scheme = _SCHEMES.get(encoded[:3])
    if scheme is None:
        return False
    try:
        return bool(scheme.verify(password, encoded))
    except (ValueError, TypeError):  # malformed hash: rounds out of range, bad salt, ...
        return False


def hash_password(password: str, rounds: int = DEFAULT_ROUNDS) -> str:
    """A new SHA-512 crypt hash (``$6$rounds=N$salt$hash``) of ``password``."""
    return str(sha512_crypt.using(rounds=rounds).hash(password))
