from __future__ import annotations

from pathlib import Path

import pytest

from cairn.config import ConfigError, load_settings


def test_defaults_are_the_embedded_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings(None, environ={})
    assert s.database_url == f"sqlite:///{tmp_path / 'cairn-data' / 'catalogue.db'}"
    assert s.catalogue.root_users == ["db/root"]
    assert s.catalogue.session_lifetime_minutes == 120
    assert s.catalogue.max_entities == 10000
    assert list(s.authn) == ["db"]
    assert s.public_url == "http://127.0.0.1:8080"


def test_file_and_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("""
[server]
port = 9001
data_dir = "store"
public_url = "https://icat.example.org/"
[catalogue]
root_users = ["simple/root"]
max_entities = 50
[authn.simple]
type = "simple"
users = { root = "pw" }
[authn.ldap]
type = "remote"
url = "https://a:8181 https://b:8181"
friendly = "Federal ID"
""")
    s = load_settings(cfg, environ={"CAIRN_CATALOGUE__MAX_ENTITIES": "77",
                                    "CAIRN_CATALOGUE__ROOT_USERS": "simple/root db/admin"})
    assert s.server.port == 9001
    assert s.server.data_dir == tmp_path / "store"  # relative to the file
    assert s.public_url == "https://icat.example.org"
    assert s.catalogue.max_entities == 77  # environment wins
    assert s.catalogue.root_users == ["simple/root", "db/admin"]
    assert s.authn["simple"].users == {"root": "pw"}
    assert s.authn["ldap"].url == ["https://a:8181", "https://b:8181"]


@pytest.mark.parametrize(("text", "fragment"), [
    ("[server]\nport = 'high'", "server.port"),
    ("[server]\nprot = 1", "server.prot"),
    ("[catalogue]\nmax_entities = 0", "catalogue.max_entities"),
    ("[catalogue]\ntime_zone = 'Mars/Olympus'", "unknown time zone"),
    ("[authn.x]\ntype = 'kerberos'", "authn.x.type"),
    ("[authn.x]\ntype = 'remote'", "needs url"),
    ("[authn.x]\ntype = 'db'\nusers = {a = 'b'}", "only for type = simple"),
    ("this is = not toml [", "not valid TOML"),
    ("[server]\nheader_timeout_seconds = 0", "server.header_timeout_seconds"),
    ("[server]\nmax_connections = 0", "server.max_connections"),
    ("[server]\nmax_request_bytes = 10", "server.max_request_bytes"),
    ("[catalogue]\ndatabase_wait_seconds = -1", "catalogue.database_wait_seconds"),
])
def test_bad_configuration_names_the_problem(tmp_path: Path, text: str, fragment: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_settings(cfg, environ={})
    assert fragment in str(e.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_server_bounds_and_database_wait(tmp_path: Path) -> None:
    """Defaults that take a nested write of 100,000 datafiles (about 7 MB) and wait a minute
    for the database; each can be set in the file or the environment."""
    s = load_settings(None, environ={})
    assert s.server.max_request_bytes == 64 * 1024 * 1024
    assert (s.server.header_timeout_seconds, s.server.body_timeout_seconds) == (30.0, 60.0)
    assert (s.server.keep_alive_seconds, s.server.max_connections) == (5, 1000)
    assert s.catalogue.database_wait_seconds == 60.0
    cfg = tmp_path / "c.toml"
    cfg.write_text("[server]\nmax_request_bytes = 100_000_000\nheader_timeout_seconds = 5\n"
                   "[catalogue]\ndatabase_wait_seconds = 0\n")
    s = load_settings(cfg, environ={"CAIRN_SERVER__MAX_CONNECTIONS": "50"})
    assert s.server.max_request_bytes == 100_000_000
    assert s.server.header_timeout_seconds == 5.0
    assert s.server.max_connections == 50
    assert s.catalogue.database_wait_seconds == 0.0
