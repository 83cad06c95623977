"""The built-in authenticators (simple, anon), password checks and the registry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cairn.authn import (
    AnonAuthenticator,
    Authenticator,
    DbAuthenticator,
    RemoteAuthenticator,
    SimpleAuthenticator,
    build_authenticators,
    close_authenticators,
    hash_password,
    login_user,
    verify_password,
)
from cairn.authn.addresses import AddressChecker
from cairn.config import AuthnSettings, ConfigError, Settings
from cairn.db.engine import Database
from cairn.errors import ErrorType, IcatError

# Reference hashes of "secret", made by glibc's crypt(3) (perl -e 'print crypt(...)'), so that
# the check is against a real crypt implementation and not against the library that verifies.
GLIBC = {
    "md5": "$1$saltsalt$9xy1btjgzLYfb7hivXtC//",
    "sha256": "$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA",
    "sha512": "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77"
              "vwPZN.Pq.H91p5hVO1",
    "sha256_rounds": "$5$rounds=12000$saltsalt$3vadl10ciRvk2.9i8vqtmK/C/MKkyIctDtCu0foQrH3",
    "sha512_rounds": "$6$rounds=10000$abcdefgh$dtkgtX8ow6kub/Iulo6m6YRiWBlfmJEeDmTXbQPwlPu6qBj"
                     "kZV2Ix8CeH0sE3NMp3Sq63bHshmKLBUGe7mWYy/",
    "sha512_1000": "$6$rounds=1000$shortrnd$ShHtRJ5XNRBDQwl0GWL.Dud/dxHQob7CnrvTFeGpoNtnMlogT4p"
                   "xs7XeAfKnV5xU/dIKw06i4.2hI.HX7Eq2u0",
}


def session_message(excinfo: pytest.ExceptionInfo[IcatError]) -> str:
    assert excinfo.value.type is ErrorType.SESSION
    return excinfo.value.message


def simple(users: dict[str, str] | None = None, **kw: object) -> SimpleAuthenticator:
    users = users if users is not None else {"jdoe": "clear-pw", **GLIBC}
    return SimpleAuthenticator("simple", AuthnSettings(type="simple", users=users, **kw))


# --- passwords --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(GLIBC))
def test_glibc_crypt_hashes_verify(name: str) -> None:
    assert verify_password("secret", GLIBC[name])
    assert not verify_password("Secret", GLIBC[name])
    assert not verify_password("secret ", GLIBC[name])


def test_clear_text_is_compared_exactly() -> None:
    assert verify_password("clear-pw", "clear-pw")
    assert not verify_password("clear-p", "clear-pw")
    assert not verify_password("clear-pwx", "clear-pw")
    assert not verify_password("CLEAR-PW", "clear-pw")
    assert verify_password("pässwörd", "pässwörd")


def test_no_stored_password_never_matches() -> None:
    assert not verify_password("", None)
    assert not verify_password("anything", None)


@pytest.mark.parametrize("stored", [
    "$6$",  # no salt nor hash
    "$6$saltsalt$tooshort",
    "$6$rounds=abc$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8w",
    "$2b$12$abcdefghijklmnopqrstuu5sbJ7mcr2JxIgF6vLq8ZLqD6g7kqkXe",  # bcrypt: not a crypt we use
    "$9$whatever",
])
def test_malformed_or_unsupported_hashes_never_match(stored: str) -> None:
    assert not verify_password("secret", stored)


def test_new_hashes_are_sha512_crypt_with_rounds_and_fresh_salt() -> None:
    h1 = hash_password("s3cret!", rounds=6000)
    h2 = hash_password("s3cret!", rounds=6000)
    assert h1.startswith("$6$rounds=6000$")
    assert h1 != h2  # random salt
    assert verify_password("s3cret!", h1)
    assert verify_password("s3cret!", h2)
    assert not verify_password("s3cret", h1)
    assert hash_password("x").startswith("$6$rounds=100000$")


# --- simple -----------------------------------------------------------------------------------

def test_simple_clear_text_password() -> None:
    assert simple().authenticate({"username": "jdoe", "password": "clear-pw"}, None) \
        == "simple/jdoe"


@pytest.mark.parametrize("user", sorted(GLIBC))
def test_simple_crypt_passwords(user: str) -> None:
    auth = simple()
    assert auth.authenticate({"username": user, "password": "secret"}, "10.0.0.1") \
        == f"simple/{user}"
    with pytest.raises(IcatError) as e:
        auth.authenticate({"username": user, "password": "wrong"}, None)
    assert session_message(e) == "The username and password do not match"


def test_simple_wrong_password_and_unknown_user_give_the_same_answer() -> None:
    auth = simple()
    with pytest.raises(IcatError) as wrong:
        auth.authenticate({"username": "jdoe", "password": "nope"}, None)
    with pytest.raises(IcatError) as unknown:
        auth.authenticate({"username": "nobody", "password": "clear-pw"}, None)
    assert session_message(wrong) == session_message(unknown) \
        == "The username and password do not match"


def test_simple_user_names_are_case_sensitive() -> None:
    with pytest.raises(IcatError) as e:
        simple().authenticate({"username": "JDOE", "password": "clear-pw"}, None)
    assert session_message(e) == "The username and password do not match"


@pytest.mark.parametrize("credentials", [
    {"password": "clear-pw"},
    {"username": "", "password": "clear-pw"},
    {},
    {"username": ""},
])
def test_simple_empty_username(credentials: dict[str, str]) -> None:
    with pytest.raises(IcatError) as e:
        simple().authenticate(credentials, None)
    assert session_message(e) == "username cannot be null or empty."


@pytest.mark.parametrize("credentials", [
    {"username": "jdoe"},
    {"username": "jdoe", "password": ""},
])
def test_simple_empty_password(credentials: dict[str, str]) -> None:
    with pytest.raises(IcatError) as e:
        simple().authenticate(credentials, None)
    assert session_message(e) == "password cannot be null or empty."


def test_simple_extra_credentials_are_ignored() -> None:
    creds = {"username": "jdoe", "password": "clear-pw", "otp": "123456"}
    assert simple().authenticate(creds, None) == "simple/jdoe"


def test_simple_mechanism_overrides_mnemonic() -> None:
    auth = SimpleAuthenticator("local", AuthnSettings(type="simple", users={"root": "pw"},
                                                      mechanism="simple"))
    assert auth.mnemonic == "local"
    assert auth.authenticate({"username": "root", "password": "pw"}, None) == "simple/root"
    default = SimpleAuthenticator("local", AuthnSettings(type="simple", users={"root": "pw"}))
    assert default.authenticate({"username": "root", "password": "pw"}, None) == "local/root"


def test_simple_description() -> None:
    auth = simple(friendly="Local users", admin=True)
    assert auth.keys() == [{"name": "username"}, {"name": "password", "hide": True}]
    auth.keys()[0]["name"] = "changed"  # callers get copies
    assert auth.keys()[0] == {"name": "username"}
    assert auth.friendly == "Local users"
    assert auth.admin is True
    assert isinstance(auth, Authenticator)
    plain = simple()
    assert plain.friendly is None
    assert plain.admin is False


def test_simple_ip_allow_list() -> None:
    auth = simple(ip=["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"])
    creds = {"username": "jdoe", "password": "clear-pw"}
    for ip in ("10.1.2.3", "10.255.255.255", "192.168.1.7", "2001:db8::42",
               "::ffff:10.9.9.9"):
        assert auth.authenticate(creds, ip) == "simple/jdoe", ip
    for ip in ("11.0.0.1", "192.168.1.8", "2001:db9::1", "not-an-ip"):
        with pytest.raises(IcatError) as e:
            auth.authenticate(creds, ip)
        assert session_message(e) == \
            f"authn.simple does not allow log in from your IP address {ip}"
    with pytest.raises(IcatError) as e:
        auth.authenticate(creds, None)
    assert session_message(e) == \
        "authn.simple does not allow log in from your IP address unknown"


def test_ip_is_checked_after_empty_credentials_and_before_the_password() -> None:
    auth = simple(ip="10.0.0.0/8")  # a space-separated string, as in run.properties
    with pytest.raises(IcatError) as e:
        auth.authenticate({"username": "", "password": "x"}, "8.8.8.8")
    assert session_message(e) == "username cannot be null or empty."
    with pytest.raises(IcatError) as e:
        auth.authenticate({"username": "jdoe", "password": "wrong"}, "8.8.8.8")
    assert session_message(e) == "authn.simple does not allow log in from your IP address 8.8.8.8"


def test_ip_list_string_is_split_and_host_bits_ignored() -> None:
    checker = AddressChecker(AuthnSettings(type="anon", ip="10.1.2.3/8 172.16.0.0/12").ip)
    assert checker.allows("10.200.0.1")
    assert checker.allows("172.31.255.255")
    assert not checker.allows("172.32.0.0")


def test_bad_ip_entry_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match=r"authn\.simple\.ip: '10\.0\.0\.0/33'"):
        simple(ip=["10.0.0.0/33"])
    with pytest.raises(ConfigError, match=r"authn\.anon\.ip: 'localhost'"):
        AnonAuthenticator("anon", AuthnSettings(type="anon", ip=["localhost"]))


# --- anon -------------------------------------------------------------------------------------

def test_anon() -> None:
    auth = AnonAuthenticator("anon", AuthnSettings(type="anon", friendly="Anonymous"))
    assert auth.keys() == []
    assert auth.friendly == "Anonymous"
    assert auth.authenticate({}, None) == "anon/anon"
    assert auth.authenticate({"username": "x", "password": "y"}, "1.2.3.4") == "anon/anon"


def test_anon_mechanism_and_ip() -> None:
    auth = AnonAuthenticator("guest", AuthnSettings(type="anon", ip=["127.0.0.1"]))
    assert auth.authenticate({}, "127.0.0.1") == "guest/anon"
    with pytest.raises(IcatError) as e:
        auth.authenticate({}, "127.0.0.2")
    assert session_message(e) == "authn.guest does not allow log in from your IP address 127.0.0.2"
    named = AnonAuthenticator("guest", AuthnSettings(type="anon", mechanism="public"))
    assert named.authenticate({}, None) == "public/anon"


# --- registry ---------------------------------------------------------------------------------

@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'cat.db'}")
    yield db
    db.dispose()


def test_build_authenticators_in_configured_order(database: Database) -> None:
    settings = Settings.model_validate({"authn": {
        "simple": {"type": "simple", "users": {"root": "pw"}},
        "db": {"type": "db"},
        "ldap": {"type": "remote", "url": "http://127.0.0.1:9 http://127.0.0.1:10",
                 "friendly": "Federal ID"},
        "anon": {"type": "anon"},
    }})
    authenticators = build_authenticators(settings, database)
    try:
        assert list(authenticators) == ["simple", "db", "ldap", "anon"]
        assert isinstance(authenticators["simple"], SimpleAuthenticator)
        assert isinstance(authenticators["db"], DbAuthenticator)
        assert isinstance(authenticators["anon"], AnonAuthenticator)
        remote = authenticators["ldap"]
        assert isinstance(remote, RemoteAuthenticator)
        assert remote.urls == ["http://127.0.0.1:9", "http://127.0.0.1:10"]
        assert remote.friendly == "Federal ID"
        assert all(a.mnemonic == m for m, a in authenticators.items())
        assert all(isinstance(a, Authenticator) for a in authenticators.values())
        assert login_user(authenticators, "simple", {"username": "root", "password": "pw"},
                          None) == "simple/root"
        assert login_user(authenticators, "anon", {}, None) == "anon/anon"
    finally:
        close_authenticators(authenticators)


def test_default_settings_have_the_db_authenticator(database: Database) -> None:
    authenticators = build_authenticators(Settings(), database)
    assert list(authenticators) == ["db"]
    assert isinstance(authenticators["db"], DbAuthenticator)
    assert authenticators["db"].keys() == [{"name": "username"},
                                           {"name": "password", "hide": True}]


@pytest.mark.parametrize("mnemonic", ["ldap", "", None, "Simple"])
def test_login_with_unknown_mnemonic(mnemonic: str | None) -> None:
    authenticators: dict[str, Authenticator] = {
        "simple": simple({"root": "pw"}),
    }
    with pytest.raises(IcatError) as e:
        login_user(authenticators, mnemonic, {"username": "root", "password": "pw"}, None)
    shown = "null" if mnemonic is None else mnemonic
    assert session_message(e) == f"Authenticator mnemonic {shown} not recognised"


def test_login_passes_errors_of_the_authenticator_through() -> None:
    authenticators: dict[str, Authenticator] = {"simple": simple({"root": "pw"})}
    with pytest.raises(IcatError) as e:
        login_user(authenticators, "simple", {"username": "root", "password": "no"}, None)
    assert session_message(e) == "The username and password do not match"


def test_bad_ip_in_settings_fails_the_build(database: Database) -> None:
    settings = Settings.model_validate({"authn": {"anon": {"type": "anon", "ip": "10.0.0/8"}}})
    with pytest.raises(ConfigError, match=r"authn\.anon\.ip: '10\.0\.0/8'"):
        build_authenticators(settings, database)
