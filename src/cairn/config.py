"""One settings object: a TOML file plus environment overrides, validated at start-up.

Every option has a default that works for the embedded mode (SQLite and local folders under
``./cairn-data``). ``docs/configuration.md`` documents each key; keep the two in step.

Environment variables override the file: ``CAIRN_<SECTION>__<KEY>`` (e.g.
``CAIRN_CATALOGUE__DATABASE=postgresql+psycopg://host/icat``, ``CAIRN_SERVER__PORT=9000``).
"""

from __future__ import annotations

import os
import tomllib
from datetime import date
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

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
    #: Proxies (addresses or networks, e.g. ``10.0.0.0/8``) whose X-Forwarded-For and
    #: X-Forwarded-Proto headers are believed; ``["*"]`` believes anyone. Unset: uvicorn's
    #: default, the FORWARDED_ALLOW_IPS environment variable or else loopback only.
    forwarded_allow_ips: list[str] | None = None

    @field_validator("forwarded_allow_ips", mode="before")
    @classmethod
    def _addresses(cls, v: Any) -> Any:
        # CAIRN_SERVER__FORWARDED_ALLOW_IPS="10.0.0.5 10.0.0.6" (or comma-separated)
        return v.replace(",", " ").split() if isinstance(v, str) else v
    #: Folder for the embedded database and local storage.
    data_dir: Path = Path("cairn-data")
    #: Seconds between purges of expired sessions.
    session_purge_interval_seconds: int = Field(3600, gt=0)
    #: Python modules imported at start-up, each defining ``setup(cairn)``: they add job
    #: kinds, periodic tasks and change listeners (see docs/architecture.md).
    plugins: list[str] = []
    #: Seconds a client has to send a request's line and headers once it has connected (or
    #: once it starts its next request); a connection still short of them is closed.
    header_timeout_seconds: float = Field(30.0, gt=0)
    #: Longest pause while a client sends a request body; then the connection is closed.
    #: (Not a cap on the whole upload: a large file on a slow line keeps going.)
    body_timeout_seconds: float = Field(60.0, gt=0)
    #: Seconds an idle connection is kept open for the client's next request.
    keep_alive_seconds: int = Field(5, ge=1)
    #: Most connections at once; beyond it new requests get 503. Keep it below the
    #: process's open-file limit (``ulimit -n``).
    max_connections: int = Field(1000, ge=1)
    #: Largest request body read into memory to parse: a REST form field, a SOAP envelope,
    #: a download-manager or data-service form. Uploads (``/ids/put``) stream and are not
    #: bound by it. 64 MiB takes a nested write of 100,000 datafiles (about 7 MB).
    max_request_bytes: int = Field(64 * 1024 * 1024, ge=1024)

    @field_validator("plugins", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        return v.split() if isinstance(v, str) else v


class CatalogueSettings(_Section):
    #: SQLAlchemy URL; empty = SQLite file ``<data_dir>/catalogue.db``.
    database: str = ""
    #: How long ``cairn serve`` waits at start-up for a database server that does not
    #: answer (one log line per attempt, 1 s between the first ones, doubling up to 10 s);
    #: 0 gives up at once. A refused login or a missing database is not waited for.
    database_wait_seconds: float = Field(60.0, ge=0)
    root_users: list[str] = ["db/root"]
    session_lifetime_minutes: int = Field(120, gt=0)
    #: Seconds a session found live is trusted without reading it again (per process); a
    #: logout or refresh through another process or node is seen up to this late.
    session_reuse_seconds: float = Field(1.0, ge=0, le=60)
    max_entities: int = Field(10000, gt=0)
    max_ids_in_query: int = Field(500, gt=0)
    #: Zone of the naive timestamps stored in the database (icat.server uses the JVM's zone).
    time_zone: str = "UTC"
    #: Create or upgrade the schema at start-up (Alembic migrations).
    migrate: bool = True
    #: Keep Dataset/Investigation fileSize and fileCount exact with database triggers
    #: (cairn.db.sizes); false: as clients write them (icat.server without its triggers).
    keep_file_sizes: bool = True
    #: Longest a database statement run for a user's session may take, in seconds; the
    #: database stops it and the client gets BAD_PARAMETER naming this setting. 0: no limit
    #: of Cairn's (the database's own setting applies). Cairn's own work (migrations, jobs,
    #: bulk loads, tools) is not limited by it.
    statement_timeout_seconds: float = Field(300.0, ge=0)

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


class DataSettings(_Section):
    """The data service (``/ids``): storage, two-level migration, downloads.

    ``main``/``archive`` name a local folder or ``s3://bucket/prefix``; without ``archive``
    storage is single-level (everything always online), as ids.server without an archive
    plugin.
    """

    #: Main storage; empty = ``<data_dir>/main``.
    main: str = ""
    #: Archive storage; absent = single-level.
    archive: str | None = None
    #: Unit of archiving: one zip per dataset, or each datafile on its own.
    storage_unit: Literal["dataset", "datafile"] = "dataset"
    #: Working folder (temporary zips of restores and writes); empty = ``<data_dir>/cache``.
    cache_dir: Path | None = None
    #: Quiet time after the last change to a unit before it is written to the archive
    #: (ids.server's delayDatasetWritesSeconds / delayDatafileOperationsSeconds).
    write_delay_seconds: float = Field(60.0, ge=0)
    #: The older name of [jobs] poll_interval_seconds (ids.server's
    #: processQueueIntervalSeconds), used when that is not set.
    queue_interval_seconds: float = Field(5.0, gt=0)
    #: How often main storage is measured against the eviction watermarks
    #: (sizeCheckIntervalSeconds).
    eviction_check_interval_seconds: float = Field(60.0, gt=0)
    #: The older name of [jobs] stale_claim_seconds, used when that is not set.
    stale_claim_seconds: float | None = Field(None, gt=0)
    #: Age after which a preparedId is refused as expired.
    prepared_lifetime_hours: float = Field(168.0, gt=0)
    #: Eviction watermarks: once main storage holds ``start`` bytes or more, archived data
    #: is removed from it, oldest first, until it holds at most ``stop`` bytes.
    start_archiving_level_bytes: int | None = Field(None, gt=0)
    stop_archiving_level_bytes: int | None = Field(None, ge=0)
    #: Refuse put and delete (ids.server's readOnly).
    read_only: bool = False
    #: Allow the ``write`` call (ids.server's enableWrite); default: ``not read_only``.
    enable_write: bool | None = None
    #: Secret for the location hash ids.server appends to Datafile.location (``key``).
    key: str | None = Field(None, repr=False)
    #: Ignore catalogue checksums when building zips (they are then computed by reading);
    #: for catalogues whose ingest writes another 8-hex-digit checksum into Datafile.checksum.
    trust_catalogue_checksums: bool = True
    #: S3-compatible object store: endpoint (empty = AWS), region, and credentials. Keep the
    #: credentials out of the file: CAIRN_DATA__S3_ACCESS_KEY / CAIRN_DATA__S3_SECRET_KEY,
    #: or boto3's own sources (AWS_ACCESS_KEY_ID, ~/.aws, instance roles).
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key: str | None = Field(None, repr=False)
    s3_secret_key: str | None = Field(None, repr=False)
    # Whether main / cache_dir were derived from data_dir (and so follow it when it moves).
    _main_default: bool = PrivateAttr(False)
    _cache_default: bool = PrivateAttr(False)

    @field_validator("main", "archive")
    @classmethod
    def _storage(cls, v: str | None) -> str | None:
        if v is not None and v.startswith("s3://"):
            bucket = v[5:].partition("/")[0]
            if not bucket:
                raise ValueError(f"{v!r} names no bucket: write s3://BUCKET/PREFIX")
        elif v is not None and "://" in v:
            raise ValueError(f"{v!r}: storage is a folder or s3://bucket/prefix")
        return v

    @field_validator("key")
    @classmethod
    def _key(cls, v: str | None) -> str | None:
        if v is not None and not v:
            raise ValueError("key must not be empty (leave it out to store plain locations)")
        return v

    @model_validator(mode="after")
    def _check(self) -> DataSettings:
        start, stop = self.start_archiving_level_bytes, self.stop_archiving_level_bytes
        if (start is None) != (stop is None):
            raise ValueError("start_archiving_level_bytes and stop_archiving_level_bytes "
                             "go together")
        if start is not None and stop is not None and stop >= start:
            raise ValueError("stop_archiving_level_bytes must be below "
                             "start_archiving_level_bytes")
        if start is not None and self.archive is None:
            raise ValueError("the archiving levels need an archive (two-level storage)")
        if self.archive is not None and self.archive == self.main:
            raise ValueError("archive and main storage must differ")
        if self.stale_claim_seconds is not None \
                and self.stale_claim_seconds < 3 * self.queue_interval_seconds:
            # A live but busy process must never look dead: that would run its jobs twice.
            raise ValueError(f"stale_claim_seconds ({self.stale_claim_seconds:g}) must be at "
                             "least three queue intervals (3 x queue_interval_seconds = "
                             f"{3 * self.queue_interval_seconds:g})")
        if bool(self.s3_access_key) != bool(self.s3_secret_key):
            raise ValueError("s3_access_key and s3_secret_key go together")
        return self

    @property
    def two_level(self) -> bool:
        return self.archive is not None

    @property
    def write_enabled(self) -> bool:
        return (not self.read_only) if self.enable_write is None else self.enable_write

    @property
    def stale_claim_timeout(self) -> float:
        """``stale_claim_seconds``, or its default for this queue interval."""
        if self.stale_claim_seconds is not None:
            return self.stale_claim_seconds
        return max(120.0, 10 * self.queue_interval_seconds)

    @property
    def prepared_lifetime_seconds(self) -> float:
        return self.prepared_lifetime_hours * 3600


class JobsSettings(_Section):
    """Durable jobs and periodic tasks (``cairn.jobs``), run by every Cairn process."""

    #: Threads running jobs in each process.
    workers: int = Field(4, ge=1, le=256)
    #: How often each process looks for due jobs and refreshes the claims of those it runs
    #: (a process that queues work itself looks at once). None = 1 s, or [data]
    #: queue_interval_seconds where only that (its older name) is set.
    poll_interval_seconds: float | None = Field(None, gt=0)
    #: A job claim (or dataset lock) whose process stopped refreshing it for this long
    #: belongs to a dead process: the job is run again elsewhere. None = [data]
    #: stale_claim_seconds if set, else 120 s or ten poll intervals, whichever is longer.
    stale_claim_seconds: float | None = Field(None, gt=0)
    #: Finished jobs are kept this long for ``cairn jobs``: done or cancelled ones (hours),
    #: failed ones (days).
    keep_finished_hours: float = Field(24.0, gt=0)
    keep_failed_days: float = Field(30.0, gt=0)


#: What free-text search can index (cairn.search.index.INDEXED).
SEARCHABLE = ("Investigation", "Dataset", "Datafile", "Sample", "SampleType", "Facility",
              "InvestigationType", "DatasetType", "DatafileFormat", "User")


class SearchSettings(_Section):
    """Free-text search (``cairn.search``): an index inside the catalogue database."""

    enabled: bool = True
    #: The entities whose text is indexed (icat.server's search.entitiesToIndex). A target
    #: (Investigation, Dataset, Datafile) left out can't be searched; a related entity left out
    #: (Sample, DatafileFormat, ...) is no longer matched by the targets' default fields.
    entities: list[str] = list(SEARCHABLE)
    #: Labels returned per facet dimension, most frequent first.
    facet_labels: int = Field(100, ge=1, le=10000)
    #: Facility spellings of parameter units, as units the converter knows, e.g.
    #: ``{ "counts" = "count", "C" = "degC" }``.
    units: dict[str, str] = {}

    @field_validator("entities")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        unknown = [e for e in v if e not in SEARCHABLE]
        if unknown:
            raise ValueError(f"{', '.join(unknown)} can't be indexed; choose among "
                             f"{', '.join(SEARCHABLE)}")
        return list(dict.fromkeys(v))


class PublishingSettings(_Section):
    """Publishing data (``cairn.publishing``): DOIs minted through DataCite's REST API, and
    landing pages served by Cairn. Without ``datacite_url`` nothing is minted; checks and the
    landing pages of DOIs already recorded still work."""

    enabled: bool = True
    #: DataCite's REST API: https://api.datacite.org, or https://api.test.datacite.org.
    datacite_url: str = ""
    #: The repository's DOI prefix, e.g. ``10.5072``.
    prefix: str = ""
    #: The repository account (DataCite Fabrica). The password is best given in the
    #: environment: ``CAIRN_PUBLISHING__PASSWORD``.
    username: str = ""
    password: str = Field("", repr=False)
    #: Put before every suffix Cairn makes (``ESRF-`` gives ``10.5072/esrf-inv-42``).
    suffix_prefix: str = ""
    #: DataCite's publisher; empty: the facility's full name.
    publisher: str = ""
    #: The publisher's identifier (DataCite 4.5), e.g. a ROR URL.
    publisher_identifier: str = ""
    #: The licence of published data, as an SPDX identifier (e.g. ``CC-BY-4.0``).
    rights: str = ""
    #: The public base of the landing pages; a DOI's page is this plus the DOI. Empty: this
    #: server's ``<public_url>/doi/``.
    landing_url: str = ""
    #: InvestigationUser roles allowed to mint their investigation (and what it holds).
    minter_roles: list[str] = ["PI", "principal_experimenter"]
    #: Members of this grouping may mint anything they can read (empty: nobody but root).
    minter_grouping: str = ""
    #: Mint a DOI for every investigation when its release date passes (as ESRF does), for
    #: release dates on or after ``auto_mint_from`` (an ISO date; required with auto_mint).
    auto_mint: bool = False
    auto_mint_from: date | None = None
    auto_mint_interval_seconds: float = Field(3600.0, gt=0)
    #: Seconds a change in the catalogue waits before its DOIs are sent again (changes in
    #: that time go in one update).
    update_delay_seconds: float = Field(30.0, ge=0)
    #: Seconds between re-checks of every DOI's metadata against the catalogue (sizes and
    #: formats change as files arrive).
    refresh_interval_seconds: float = Field(86400.0, gt=0)
    #: HTTP timeout of a call to DataCite.
    timeout_seconds: float = Field(30.0, gt=0)

    @field_validator("minter_roles", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        return v.split(",") if isinstance(v, str) else v

    @field_validator("datacite_url", "landing_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError(f"{v!r} is not an http(s) URL")
        return v

    @model_validator(mode="after")
    def _check(self) -> PublishingSettings:
        if self.datacite_url:
            missing = [k for k in ("prefix", "username", "password") if not getattr(self, k)]
            if missing:
                raise ValueError(f"datacite_url is set, so {', '.join(missing)} must be too "
                                 "(the password may come from CAIRN_PUBLISHING__PASSWORD)")
        if self.prefix and not self.prefix.startswith("10."):
            raise ValueError(f"prefix {self.prefix!r} is not a DOI prefix (10.NNNN)")
        if self.auto_mint and self.auto_mint_from is None:
            raise ValueError("auto_mint needs auto_mint_from: the first release date to mint "
                             "(without it every past investigation would be minted at once)")
        return self

    @property
    def can_mint(self) -> bool:
        return bool(self.enabled and self.datacite_url)


class TransportSettings(_Section):
    """One way of getting a download (TopCat's downloadType)."""

    display_name: str = ""
    description: str = ""
    #: The data service clients fetch from; empty: this server's ``<public_url>/ids``.
    ids_url: str = ""
    #: Only members of these groupings may use it (empty: everybody).
    allowed_groupings: list[str] = []
    #: Users of these authenticators may not (e.g. ``["anon"]``).
    disallowed_authn: list[str] = []
    #: An e-mail address is required to submit with it.
    mail_required: bool = False


def _default_transports() -> dict[str, TransportSettings]:
    return {"https": TransportSettings(display_name="HTTPS",
                                       description="Download through your browser")}


class FacilityDownloads(_Section):
    """Limits of one facility's carts (TopCat's facility.<F>.limit.*)."""

    #: Most datafiles a cart may hold when submitted.
    limit_count: int = Field(1_000_000, ge=1)
    #: Most bytes a cart may hold when submitted.
    limit_size: int = Field(100 * 10**12, ge=1)


class QueuePriorities(_Section):
    """Who may queue large downloads, and how urgently (lower first; <= 0 forbids).

    The first that applies: ``user`` by name; then the best of ``grouping`` (membership),
    ``instrument_scientist`` and ``investigation_role`` (InvestigationUser.role; key ``*`` for
    any role); then ``authenticator`` (by mnemonic); then ``default``."""

    user: dict[str, int] = {}
    grouping: dict[str, int] = {}
    instrument_scientist: int | None = None
    investigation_role: dict[str, int] = {}
    authenticator: dict[str, int] = {}
    default: int = 1


class MailSettings(_Section):
    """E-mail when a download is ready (and, optionally, when it has been delivered)."""

    #: The SMTP server; empty: no mail.
    smtp_host: str = ""
    smtp_port: int = Field(25, ge=1, le=65535)
    starttls: bool = False
    username: str = ""
    password: str = Field("", repr=False)
    sender: str = "cairn@localhost"
    subject: str = "Your download ${fileName} is ready"
    #: The body; placeholders ${email} ${userName} ${facilityName} ${preparedId}
    #: ${fileName} ${size} ${downloadUrl} ${customValue}.
    body: str = ("Dear ${userName},\n\nyour download ${fileName} (${size}) from "
                 "${facilityName} is ready:\n\n${downloadUrl}\n")
    #: Bodies per transport, overriding ``body``.
    transport_bodies: dict[str, str] = {}
    #: Also mail when every byte of a download has been delivered.
    on_delivered: bool = False
    delivered_subject: str = "Your download ${fileName} has been delivered"
    delivered_body: str = ("Dear ${userName},\n\nall ${size} of ${fileName} have been "
                           "delivered.\n")

    @property
    def enabled(self) -> bool:
        return bool(self.smtp_host)


class DownloadSettings(_Section):
    """The download manager (``cairn.downloads``): carts, downloads and queues under
    ``/topcat``, as TopCat / datagateway-download-api serves them."""

    enabled: bool = True
    #: Facilities by name, with their limits; empty: every Facility of the catalogue, with
    #: the default limits.
    facilities: dict[str, FacilityDownloads] = {}
    #: How data can be got (the first is the default); ``https`` streams from Cairn's own data
    #: service. Other transports are left RESTORING for an outside agent to complete.
    transports: dict[str, TransportSettings] = Field(default_factory=_default_transports)
    #: Users who may call /topcat/admin (empty: the root users).
    admins: list[str] = []
    #: The anonymous user: its carts are per session.
    anon_user: str = "anon/anon"
    anon_download_enabled: bool = True
    #: Most downloads restoring at once (the rest wait QUEUED; <= 0: no limit).
    max_active: int = 4
    #: Cart submits queue too (as queue/* calls always do) instead of preparing at once.
    queue_carts: bool = False
    #: Files per part of a queued visit or data collection.
    part_files: int = Field(10_000, ge=1)
    #: Most locations in one queue/files or getSize/files call.
    max_files: int = Field(10_000, ge=1)
    #: Most datafiles one search/files call returns (TopCat's search.maxResults); the search
    #: itself is Cairn's own, on whenever Datafile is indexed.
    search_max_results: int = Field(10_000, ge=1)
    priorities: QueuePriorities = QueuePriorities()
    mail: MailSettings = MailSettings()
    #: Seconds between checks of restoring downloads.
    poll_seconds: float = Field(10.0, gt=0)

    @field_validator("transports")
    @classmethod
    def _some(cls, v: dict[str, TransportSettings]) -> dict[str, TransportSettings]:
        if not v:
            raise ValueError("at least one transport is needed (e.g. https)")
        return v


class LoggingSettings(_Section):
    """What ``cairn serve`` writes to standard error (see docs/operations.md). Secrets are
    hidden whatever the format."""

    #: ``text`` (one readable line per record) or ``json`` (one JSON object per line).
    format: Literal["text", "json"] = "text"


#: Loopback only: a scraper on the same machine (or a sidecar) and nobody else.
LOCAL_NETWORKS = ["127.0.0.0/8", "::1/128"]


class MetricsSettings(_Section):
    """Prometheus metrics at ``/metrics`` (``/health`` and ``/ready`` are always open)."""

    enabled: bool = True
    #: Client networks that may read /metrics (behind a proxy: the address it forwards).
    allow: list[str] = Field(default_factory=lambda: list(LOCAL_NETWORKS))
    #: A bearer token that opens /metrics from anywhere (Prometheus ``authorization``);
    #: empty: none. Best given as CAIRN_METRICS__TOKEN.
    token: str = Field("", repr=False)

    @field_validator("allow", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        return v.split() if isinstance(v, str) else v

    @field_validator("allow")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        import ipaddress

        for net in v:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError as e:
                raise ValueError(f"{net!r} is not an address or network (write "
                                 "10.0.0.0/8 or 192.0.2.7)") from e
        return v


class PortalSettings(_Section):
    """The web portal at ``/`` (docs/portal.md): pages for scientists and facility staff."""

    enabled: bool = True
    #: The name shown in every page's header and title (the facility's, usually).
    title: str = "Cairn"
    #: Rows per page of the portal's tables.
    page_size: int = Field(50, ge=5, le=1000)


def _default_authn() -> dict[str, AuthnSettings]:
    return {"db": AuthnSettings(type="db")}


class Settings(_Section):
    server: ServerSettings = ServerSettings()
    catalogue: CatalogueSettings = CatalogueSettings()
    authn: dict[str, AuthnSettings] = Field(default_factory=_default_authn)
    data: DataSettings = DataSettings()
    jobs: JobsSettings = JobsSettings()
    search: SearchSettings = SearchSettings()
    publishing: PublishingSettings = PublishingSettings()
    downloads: DownloadSettings = DownloadSettings()
    logging: LoggingSettings = LoggingSettings()
    metrics: MetricsSettings = MetricsSettings()
    portal: PortalSettings = PortalSettings()

    @model_validator(mode="after")
    def _data_paths(self) -> Settings:
        resolve_data_paths(self)
        return self

    @model_validator(mode="after")
    def _job_timing(self) -> Settings:
        if self.job_stale_seconds < 3 * self.job_poll_seconds:
            # A live but busy process must never look dead: its jobs would run twice.
            raise ValueError(f"the stale claim timeout ({self.job_stale_seconds:g} s) must be "
                             "at least three poll intervals (3 x poll_interval_seconds = "
                             f"{3 * self.job_poll_seconds:g} s)")
        return self

    @property
    def job_poll_seconds(self) -> float:
        """[jobs] poll_interval_seconds, or its older name [data] queue_interval_seconds."""
        if self.jobs.poll_interval_seconds is not None:
            return self.jobs.poll_interval_seconds
        if "queue_interval_seconds" in self.data.model_fields_set:
            return self.data.queue_interval_seconds
        return 1.0

    @property
    def job_stale_seconds(self) -> float:
        """[jobs] stale_claim_seconds, or [data] stale_claim_seconds, or the default."""
        if self.jobs.stale_claim_seconds is not None:
            return self.jobs.stale_claim_seconds
        if self.data.stale_claim_seconds is not None:
            return self.data.stale_claim_seconds
        return max(120.0, 10 * self.job_poll_seconds)

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
    if path is not None:
        # Relative folders in a file are relative to that file, not to the working directory.
        base = Path(path).parent
        if not settings.server.data_dir.is_absolute():
            settings.server.data_dir = (base / settings.server.data_dir).resolve()
        resolve_data_paths(settings, base)
    return settings


def _is_folder(location: str) -> bool:
    return not location.startswith("s3://")


def resolve_data_paths(settings: Settings, base: Path | None = None) -> None:
    """Fill the storage defaults from ``data_dir`` and make relative folders relative to
    ``base`` (the configuration file's folder). Idempotent: defaults are remembered as such,
    so a later change of ``data_dir`` moves them along."""
    data = settings.data
    if not data.main or data._main_default:
        data.main = str(settings.server.data_dir / "main")
        data._main_default = True
    elif base is not None and _is_folder(data.main) and not Path(data.main).is_absolute():
        data.main = str((base / data.main).resolve())
    if data.cache_dir is None or data._cache_default:
        data.cache_dir = settings.server.data_dir / "cache"
        data._cache_default = True
    elif base is not None and not data.cache_dir.is_absolute():
        data.cache_dir = (base / data.cache_dir).resolve()
    if base is not None and data.archive and _is_folder(data.archive) \
            and not Path(data.archive).is_absolute():
        data.archive = str((base / data.archive).resolve())
