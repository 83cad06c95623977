"""``db``: users and passwords in the catalogue's ``PASSWD`` table (authn.db).

The table is the one the authn.db plugin keeps (``USERNAME`` -> ``ENCODEDPASSWORD``), so a site
moving from icat.server keeps its users. Stored values are clear text or crypt(3) hashes, as
authn.db allows; passwords set here are stored as SHA-512 crypt (``$6$``).

User names are compared exactly. MariaDB's default collations compare case- and
trailing-space-insensitively, so rows are fetched by name and then matched in Python: ``ROOT``
does not log in with ``root``'s password.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection, delete, insert, select, update

from cairn.authn.base import BuiltinAuthenticator, mismatch
from cairn.authn.passwords import hash_password, verify_password
from cairn.config import AuthnSettings
from cairn.db.engine import Database
from cairn.errors import ErrorType, IcatError, bad_parameter

#: Length of PASSWD.USERNAME.
MAX_NAME_LENGTH = 255


class DbAuthenticator(BuiltinAuthenticator):
    """Checks passwords against the ``PASSWD`` table of ``db``."""

    def __init__(self, mnemonic: str, settings: AuthnSettings, db: Database) -> None:
        super().__init__(mnemonic, settings)
        self.db = db

    def authenticate(self, credentials: Mapping[str, str], ip: str | None) -> str:
        username, password = self.username_password(credentials, ip)
        with self.db.connect() as conn:
            encoded = _stored(conn, self.db, username)
        if not verify_password(password, encoded):
            raise mismatch()
        return self.user_name(username)


def _matching(conn: Connection, db: Database, name: str) -> list[tuple[str, str | None]]:
    """Rows the database considers equal to ``name`` (more than the exact one on MariaDB)."""
    t = db.tables.passwd
    rows = conn.execute(select(t.c.userName, t.c.encodedPassword).where(t.c.userName == name))
    return [(r[0], r[1]) for r in rows]


def _stored(conn: Connection, db: Database, name: str) -> str | None:
    """The stored password of exactly ``name``, or None if there is no such user."""
    for user, encoded in _matching(conn, db, name):
        if user == name:
            return encoded
    return None


def set_password(db: Database, name: str, password: str) -> None:
    """Create user ``name`` (the bare name, without ``db/``) or change its password."""
    if not name or name != name.strip():
        raise bad_parameter("user name cannot be empty or start or end with white space")
    if len(name) > MAX_NAME_LENGTH:
        raise bad_parameter(f"user name is longer than {MAX_NAME_LENGTH} characters")
    if not password:
        raise bad_parameter("password cannot be null or empty.")
    encoded = hash_password(password)
    t = db.tables.passwd
    with db.begin() as conn:
        rows = _matching(conn, db, name)
        if any(user == name for user, _ in rows):
            conn.execute(update(t).where(t.c.userName == name).values(encodedPassword=encoded))
        elif rows:
            # Only on a case-insensitive database: the primary key forbids both names.
            raise IcatError(ErrorType.OBJECT_ALREADY_EXISTS,
                            f"user name {name} clashes with existing user {rows[0][0]}: the "
                            f"database compares user names without regard to case")
        else:
            conn.execute(insert(t).values(userName=name, encodedPassword=encoded))


def remove_user(db: Database, name: str) -> bool:
    """Delete user ``name``; False if there was no such user."""
    t = db.tables.passwd
    with db.begin() as conn:
        if not any(user == name for user, _ in _matching(conn, db, name)):
            return False
        # On a case-insensitive database at most one row matches (the primary key), and it is
        # this exact one.
        conn.execute(delete(t).where(t.c.userName == name))
        return True


def list_users(db: Database) -> list[str]:
    """All user names in ``PASSWD``, sorted."""
    t = db.tables.passwd
    with db.connect() as conn:
        return sorted(r[0] for r in conn.execute(select(t.c.userName)))
