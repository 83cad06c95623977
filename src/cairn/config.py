"""One settings object: a TOML file plus environment overrides, validated at start-up.

Every option has a default that works for the embedded mode (SQLite and local folders under
``./cairn-data``). ``docs/configuration.md`` documents each key; keep the two in step.

Environment variables override the file: ``CAIRN_<SECTION>__<KEY>`` (e.g.
``CAIRN_CATALOGUE__DATABASE=postgresql+psycopg://host/icat``, ``CAIRN_SERVER__PORT=9000``).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ENV_PREFIX = "CAIRN_"


class ConfigError(Exception):
    """The configuration is unusable; the message says what to fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    #: Base URL clients reach this server at (used in WSDL addresses, getIcatUrl).
    public_url: str | None = None
    #: Folder for the embedded database and local storage.
    data_dir: Path = Path("cairn-data")
    #: Seconds between purges of expired sessions.
    session_purge_interval_seconds: int = Field(3600, gt=0)


class CatalogueSettings(_Section):
    #: SQLAlchemy URL; empty = SQLite file ``<data_dir>/catalogue.db``.
    database: str = ""
    root_users: list[str] = ["db/root"]
    session_lifetime_minutes: int = Field(120, gt=0)
    max_entities: int = Field(10000, gt=0)
    max_ids_in_query: int = Field(500, gt=0)
    #: Zone of the naive timestamps stored in the database (icat.server uses the JVM's zone).
    time_zone: str = "UTC"
    #: Create or upgrade the schema at start-up (Alembic migrations).
    migrate: bool = True

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown time zone {v!r}") from e
        return v


class AuthnSettings(_Section):
    type: Literal["simple", "db", "anon", "remote"]
    #: simple: user name -> password (clear text or crypt(3) hash $1$, $5$, $6$).
    users: dict[str, str] = {}
    #: remote: one or more base URLs of equivalent authenticator plugin servers (failover).
    url: list[str] = []
    #: Prefix of the ICAT user name; default the mnemonic (remote: what the plugin returns).
    mechanism: str | None = None
    #: Shown by /icat/properties and getAuthenticatorInfo.
    friendly: str | None = None
    admin: bool = False
    #: Optional allow-list of client networks (``10.0.0.0/8``), as the ICAT plugins have.
    ip: list[str] = []
    #: remote: seconds before a plugin URL counts as unreachable.
    timeout_seconds: float = Field(10.0, gt=0)

    @field_validator("url", "ip", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        return v.split() if isinstance(v, str) else v

    @model_validator(mode="after")
    def _check(self) -> AuthnSettings:
        if self.type == "remote" and not self.url:
            raise ValueError("a remote authenticator needs url")
        if self.type != "simple" and self.users:
            raise ValueError("users is only for type = simple")
        return self


def _default_authn() -> dict[str, AuthnSettings]:
    return {"db": AuthnSettings(type="db")}


class Settings(_Section):
    server: ServerSettings = ServerSettings()
    catalogue: CatalogueSettings = CatalogueSettings()
    authn: dict[str, AuthnSettings] = Field(default_factory=_default_authn)

    @property
    def database_url(self) -> str:
        if self.catalogue.database:
            return self.catalogue.database
        return f"sqlite:///{(self.server.data_dir / 'catalogue.db').resolve()}"

    @property
    def public_url(self) -> str:
        if self.server.public_url:
            return self.server.public_url.rstrip("/")
        host = "localhost" if self.server.host in ("0.0.0.0", "::") else self.server.host
        return f"http://{host}:{self.server.port}"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.catalogue.time_zone)


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or "__" not in key:
            continue
        path = key[len(ENV_PREFIX):].lower().split("__")
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value.split() if path[-1] in ("root_users",) else value
    return out


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_settings(path: str | Path | None = None,
                  environ: dict[str, str] | None = None) -> Settings:
    """Read the TOML file (if any), apply environment overrides and validate everything."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise ConfigError(f"configuration file {path} does not exist") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"configuration file {path} is not valid TOML: {e}") from e
    data = _merge(data, _env_overrides(dict(os.environ if environ is None else environ)))
    try:
        settings = Settings.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        raise ConfigError(f"invalid configuration{f' in {path}' if path else ''}: {problems}") \
            from e
    if path is not None and not settings.server.data_dir.is_absolute():
        # Relative folders in a file are relative to that file, not to the working directory.
        settings.server.data_dir = (Path(path).parent / settings.server.data_dir).resolve()
    return settings
