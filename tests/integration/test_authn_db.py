"""The ``db`` authenticator and its user management, on every database backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import insert, select

from cairn.authn import DbAuthenticator, list_users, remove_user, set_password
from cairn.config import AuthnSettings
from cairn.db.engine import Database
from cairn.errors import ErrorType, IcatError

# "secret" as glibc crypt(3) makes it, and as an authn.db site may have it stored.
GLIBC_SHA512 = ("$6$rounds=10000$abcdefgh$dtkgtX8ow6kub/Iulo6m6YRiWBlfmJEeDmTXbQPwlPu6qBjkZV2Ix8"
                "CeH0sE3NMp3Sq63bHshmKLBUGe7mWYy/")
MISMATCH = "The username and password do not match"


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.tables.metadata.create_all(database.engine)
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def authn(db: Database) -> DbAuthenticator:
    return DbAuthenticator("db", AuthnSettings(type="db"), db)


def stored(db: Database) -> dict[str, str]:
    t = db.tables.passwd
    with db.connect() as conn:
        return {r[0]: r[1] for r in conn.execute(select(t.c.userName, t.c.encodedPassword))}


def login(authn: DbAuthenticator, username: str, password: str, ip: str | None = None) -> str:
    return authn.authenticate({"username": username, "password": password}, ip)


def refused(authn: DbAuthenticator, username: str, password: str) -> str:
    with pytest.raises(IcatError) as e:
        login(authn, username, password)
    assert e.value.type is ErrorType.SESSION
    return e.value.message


def test_set_update_remove_list(db: Database, authn: DbAuthenticator) -> None:
    assert list_users(db) == []
    set_password(db, "root", "first pw")
    set_password(db, "alice", "wonderland")
    assert list_users(db) == ["alice", "root"]

    rows = stored(db)
    assert rows["root"].startswith("$6$rounds=")  # stored hashed, never as given
    assert "first pw" not in rows["root"]
    assert login(authn, "root", "first pw") == "db/root"
    assert login(authn, "alice", "wonderland") == "db/alice"

    set_password(db, "root", "second pw")  # update, not a second row
    assert list_users(db) == ["alice", "root"]
    assert stored(db)["root"] != rows["root"]
    assert login(authn, "root", "second pw") == "db/root"
    assert refused(authn, "root", "first pw") == MISMATCH

    assert remove_user(db, "root") is True
    assert remove_user(db, "root") is False
    assert list_users(db) == ["alice"]
    assert refused(authn, "root", "second pw") == MISMATCH
    assert login(authn, "alice", "wonderland") == "db/alice"


def test_rows_written_as_authn_db_has_them(db: Database, authn: DbAuthenticator) -> None:
    t = db.tables.passwd
    with db.begin() as conn:
        conn.execute(insert(t), [
            {"userName": "plain", "encodedPassword": "clear text pw"},
            {"userName": "hashed", "encodedPassword": GLIBC_SHA512},
            {"userName": "nopw", "encodedPassword": None},
        ])
    assert list_users(db) == ["hashed", "nopw", "plain"]
    assert login(authn, "plain", "clear text pw") == "db/plain"
    assert refused(authn, "plain", "clear text") == MISMATCH
    assert login(authn, "hashed", "secret") == "db/hashed"
    assert refused(authn, "hashed", GLIBC_SHA512) == MISMATCH  # the hash is not the password
    assert refused(authn, "nopw", "anything") == MISMATCH
    # Changing a clear-text password stores a hash from then on.
    set_password(db, "plain", "new pw")
    assert stored(db)["plain"].startswith("$6$")
    assert login(authn, "plain", "new pw") == "db/plain"


def test_names_are_matched_exactly(db: Database, authn: DbAuthenticator) -> None:
    set_password(db, "root", "pw")
    # MariaDB compares case- and trailing-space-insensitively; a login must not.
    assert refused(authn, "ROOT", "pw") == MISMATCH
    assert refused(authn, "root ", "pw") == MISMATCH
    assert remove_user(db, "Root") is False
    assert list_users(db) == ["root"]
    if db.dialect == "mysql":
        with pytest.raises(IcatError) as e:
            set_password(db, "Root", "other")
        assert e.value.type is ErrorType.OBJECT_ALREADY_EXISTS
        assert "clashes with existing user root" in e.value.message
        assert list_users(db) == ["root"]
    else:
        set_password(db, "Root", "other")
        assert list_users(db) == ["Root", "root"]
        assert login(authn, "Root", "other") == "db/Root"
    assert login(authn, "root", "pw") == "db/root"


def test_unicode_names_and_passwords(db: Database, authn: DbAuthenticator) -> None:
    set_password(db, "jürgen", "pässwörd €")
    assert list_users(db) == ["jürgen"]
    assert login(authn, "jürgen", "pässwörd €") == "db/jürgen"
    assert refused(authn, "jürgen", "passwort") == MISMATCH


def test_empty_credentials_and_ip(db: Database) -> None:
    set_password(db, "root", "pw")
    authn = DbAuthenticator("db", AuthnSettings(type="db", ip=["127.0.0.0/8"],
                                                mechanism="ldap"), db)
    assert login(authn, "root", "pw", "127.0.0.1") == "ldap/root"
    assert refused(authn, "", "pw") == "username cannot be null or empty."
    assert refused(authn, "root", "") == "password cannot be null or empty."
    with pytest.raises(IcatError) as e:
        login(authn, "root", "pw", "10.0.0.1")
    assert e.value.message == "authn.db does not allow log in from your IP address 10.0.0.1"


@pytest.mark.parametrize(("name", "password"), [("", "pw"), (" root", "pw"), ("root", ""),
                                                ("x" * 256, "pw")])
def test_set_password_rejects_bad_input(db: Database, name: str, password: str) -> None:
    with pytest.raises(IcatError) as e:
        set_password(db, name, password)
    assert e.value.type is ErrorType.BAD_PARAMETER
    assert list_users(db) == []


def test_longest_name_fits(db: Database, authn: DbAuthenticator) -> None:
    name = "n" * 255
    set_password(db, name, "pw")
    assert list_users(db) == [name]
    assert login(authn, name, "pw") == f"db/{name}"
