"""Assemble Cairn from settings: database, schema migrations, catalogue, data service, job
scheduler and plugins. The one place that wires services together."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import exc as sa_exc
from sqlalchemy import select

from cairn.authn import db as db_authn
from cairn.authn.registry import build_authenticators
from cairn.catalogue.service import Catalogue
from cairn.config import ConfigError, DataSettings, Settings
from cairn.db import migrate, schema_check, sizes
from cairn.db.connect import check_sqlite_path, diagnose, wait_until_reachable, where
from cairn.db.engine import (
    Database,
    DatabaseUnavailable,
    DatabaseUnreachable,
    first_line,
    parse_url,
)
from cairn.db.schema_check import SchemaMismatch
from cairn.downloads.delivery import Delivery
from cairn.downloads.lifecycle import Lifecycle
from cairn.downloads.mail import Mailer
from cairn.downloads.service import DownloadService
from cairn.ids.service import DataService, TwoLevelStorage
from cairn.ids.storage import Storage
from cairn.jobs import Scheduler
from cairn.publishing.service import PublishingService
from cairn.search.indexer import SearchIndex
from cairn.search.service import SearchService

log = logging.getLogger(__name__)

ROOT_PASSWORD_ENV = "CAIRN_ROOT_PASSWORD"


def open_database(settings: Settings, wait_seconds: float = 0.0) -> Database:
    """The catalogue database: reached (waiting up to ``wait_seconds`` for a server that
    does not answer yet), upgraded when [catalogue] migrate is on, and compared with the
    declared schema. Raises :class:`DatabaseUnavailable` or :class:`SchemaMismatch`, whose
    messages say what to do; nothing is created before the database has answered."""
    check_sqlite_path(settings.database_url)
    db = Database(settings.database_url, zone=settings.zone)
    try:
        wait_until_reachable(db, wait_seconds)
        settings.server.data_dir.mkdir(parents=True, exist_ok=True)
        if settings.catalogue.migrate:
            _upgrade(db)
            sizes.keep(db, settings.catalogue.keep_file_sizes)
        check_schema(db)
        db.detect_ids()
    except DatabaseUnreachable as e:  # it went away while being set up
        db.dispose()
        raise diagnose(db.url, e) from e
    except sa_exc.DBAPIError as e:
        db.dispose()
        raise DatabaseUnavailable(f"the catalogue database at {where(db.url)} can't be set "
                                  f"up: {first_line(e.orig or e)}") from e
    except BaseException:
        db.dispose()
        raise
    if not db.ids.identity:
        log.info("ids come from the sequence %s (increment %d), as icat.server's",
                 db.ids.sequence, db.ids.increment)
    return db


def _upgrade(db: Database) -> None:
    """Migrations; a database they can't bring to Cairn's schema is reported with its
    differences from it (an icat.server database changed by a newer ICAT, say)."""
    try:
        migrate.upgrade(db)
    except migrate.MigrationError as e:
        with db.connect() as conn:
            differences = schema_check.compare(conn)
        if differences:
            raise SchemaMismatch(differences, f"the catalogue database at {where(db.url)} "
                                 f"can't be upgraded to the schema Cairn serves ({e})") from e
        raise DatabaseUnavailable(f"the catalogue database at {where(db.url)} can't be "
                                  f"upgraded: {e}") from e


def check_schema(db: Database) -> None:
    """Refuse a database whose tables differ from the declared ones (see
    :mod:`cairn.db.schema_check`), naming every difference."""
    with db.connect() as conn:
        differences = schema_check.compare(conn, db.tables)
    if differences:
        raise SchemaMismatch(differences, f"the catalogue database at {where(db.url)} does "
                             "not have the tables Cairn serves (`cairn migrate --check` "
                             "shows this report); Cairn refuses to serve it")


def created_paths(settings: Settings) -> list[Path]:
    """What a start-up may create on disk: the data folder, the SQLite file, local storage."""
    paths = [settings.server.data_dir]
    u = parse_url(settings.database_url)
    if u.drivername.startswith("sqlite") and u.database and u.database != ":memory:":
        paths.append(Path(u.database))
    data = settings.data
    paths += [Path(p) for p in (data.main, data.archive) if p and not p.startswith("s3://")]
    if data.cache_dir is not None:
        paths.append(data.cache_dir)
    return paths


@contextmanager
def provisional(paths: list[Path]) -> Iterator[None]:
    """Remove, if the block fails, those of ``paths`` that did not exist before it: a failed
    start-up leaves no empty data folder or half-made SQLite file behind."""
    absent = [p.absolute() for p in paths if not p.exists()]
    try:
        yield
    except BaseException:
        for path in absent:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
                continue
            for leftover in (path, *(Path(f"{path}{s}") for s in ("-wal", "-shm", "-journal"))):
                with contextlib.suppress(OSError):  # never made, or under a file
                    leftover.unlink(missing_ok=True)
        raise


def open_catalogue(settings: Settings, db: Database | None = None,
                   jobs: Scheduler | None = None) -> Catalogue:
    """The catalogue alone (tools, benchmarks); :func:`assemble` builds the whole server."""
    db = db or open_database(settings)
    return Catalogue(settings, db, build_authenticators(settings, db), jobs=jobs)


def catalogue_of(db: Database, settings: Settings | None = None) -> Catalogue:
    """The catalogue of a database for a script or tool that only needs units of work
    (bulk loads, benchmarks): default settings, no authenticators, no jobs."""
    return Catalogue(settings or Settings(), db, {})


@dataclass
class Cairn:
    """The server as assembled: what the web application serves and plugins extend."""

    settings: Settings
    db: Database
    catalogue: Catalogue
    data: DataService
    #: The process's job scheduler, started and stopped with the web application.
    jobs: Scheduler
    #: Free-text search; None when [search] enabled = false.
    search: SearchService | None = None
    #: DOIs and landing pages; None when [publishing] enabled = false.
    publishing: PublishingService | None = None
    #: Carts, downloads and queues (/topcat); None when [downloads] enabled = false.
    downloads: DownloadService | None = None


def assemble(settings: Settings, db: Database | None = None) -> Cairn:
    """Everything ``cairn serve`` runs: the catalogue and the data service on one database,
    their jobs on one scheduler, and the configured plugins."""
    db = db or open_database(settings)
    j = settings.jobs
    jobs = Scheduler(db, workers=j.workers, poll_seconds=settings.job_poll_seconds,
                     stale_seconds=settings.job_stale_seconds,
                     keep_finished_hours=j.keep_finished_hours,
                     keep_failed_days=j.keep_failed_days)
    catalogue = open_catalogue(settings, db, jobs)
    data = open_data_service(catalogue, db, jobs)
    search = open_search(settings, catalogue, db, jobs)
    publishing = open_publishing(settings, catalogue, jobs)
    downloads = open_downloads(settings, catalogue, data, jobs, search)
    jobs.register(*catalogue.job_kinds(), *data.job_kinds(),
                  *(search.job_kinds() if search else ()),
                  *(publishing.job_kinds() if publishing else ()),
                  *(downloads.job_kinds() if downloads else ()))
    cairn = Cairn(settings, db, catalogue, data, jobs, search, publishing, downloads)
    for name in settings.server.plugins:
        load_plugin(name, cairn)
    return cairn


def open_search(settings: Settings, catalogue: Catalogue, db: Database,
                jobs: Scheduler | None) -> SearchService | None:
    """The search index of the configured entities, following the catalogue's changes."""
    s = settings.search
    if not s.enabled:
        # Nothing follows the catalogue now: an index kept would be stale when enabled again.
        SearchIndex(db, []).drop_others()
        return None
    search = SearchService(catalogue, db, s.entities, units=s.units,
                           max_labels=s.facet_labels, jobs=jobs)
    search.start()
    return search


def open_publishing(settings: Settings, catalogue: Catalogue, jobs: Scheduler | None
                    ) -> PublishingService | None:
    """DOIs through DataCite and their landing pages, following the catalogue's changes."""
    if not settings.publishing.enabled:
        return None
    publishing = PublishingService(catalogue, settings.publishing, settings.public_url, jobs)
    publishing.start()
    return publishing


def open_downloads(settings: Settings, catalogue: Catalogue, data: DataService,
                   jobs: Scheduler | None, search: SearchService | None = None
                   ) -> DownloadService | None:
    """Carts, downloads and queues on the data service, and delivery tracking of what its
    getData sends of their prepared ids."""
    s = settings.downloads
    if not s.enabled:
        return None
    lifecycle = Lifecycle(catalogue, data, s, jobs)
    mailer = Mailer(catalogue.db, s, settings.public_url)
    data.on_delivery(Delivery(catalogue.db, s, jobs))
    return DownloadService(catalogue, data, s, settings.public_url, jobs,
                           lifecycle=lifecycle, mailer=mailer, search=search)


def load_plugin(name: str, cairn: Cairn) -> None:
    """Import a plugin module and call its ``setup(cairn)``: it registers job kinds and
    periodic tasks (``cairn.jobs.register``) and change listeners
    (``cairn.catalogue.listeners.add``)."""
    try:
        module = importlib.import_module(name)
    except ImportError as e:
        raise ConfigError(f"plugin {name!r} cannot be imported: {e}") from e
    setup = getattr(module, "setup", None)
    if not callable(setup):
        raise ConfigError(f"plugin {name!r} has no setup(cairn) function")
    setup(cairn)
    log.info("plugin %s loaded", name)


def ensure_root_account(settings: Settings, db: Database) -> tuple[str, str] | None:
    """Give the first `db` root user a password if it has none yet.

    The password comes from CAIRN_ROOT_PASSWORD or is generated; returns (user, password)
    when one was created so the caller can show it once.
    """
    db_mnemonics = [m for m, a in settings.authn.items() if a.type == "db"]
    for full in settings.catalogue.root_users:
        mnemonic, _, name = full.partition("/")
        if mnemonic not in db_mnemonics or not name:
            continue
        passwd = db.tables.passwd
        with db.connect() as conn:
            exists = conn.execute(select(passwd.c.userName)
                                  .where(passwd.c.userName == name)).first()
        if exists:
            return None
        password = os.environ.get(ROOT_PASSWORD_ENV) or secrets.token_urlsafe(12)
        db_authn.set_password(db, name, password)
        return full, password
    return None


def open_storage(where: str, data: DataSettings) -> Storage:
    """A folder, or ``s3://bucket/prefix`` (boto3 is then required: the ``s3`` extra)."""
    if where.startswith("s3://"):
        try:
            from cairn.ids.storage_s3 import S3Storage
        except ImportError as e:
            raise ConfigError(f"storage {where} needs boto3: pip install 'cairn[s3]'") from e
        bucket, _, prefix = where[5:].partition("/")
        return S3Storage(bucket, prefix, endpoint_url=data.s3_endpoint_url,
                         region_name=data.s3_region, access_key=data.s3_access_key,
                         secret_key=data.s3_secret_key)
    from cairn.ids.storage_local import LocalStorage

    return LocalStorage(where)


def open_data_service(catalogue: Catalogue, db: Database, jobs: Scheduler) -> DataService:
    """Main storage, and two-level storage when an archive is configured (its jobs run on
    ``jobs``)."""
    settings = catalogue.settings
    data = settings.data
    main = open_storage(data.main, data)
    assert data.cache_dir is not None
    data.cache_dir.mkdir(parents=True, exist_ok=True)
    twolevel: TwoLevelStorage | None = None
    if data.archive is not None:
        try:
            from cairn.ids.twolevel import TwoLevel
        except ImportError as e:
            raise ConfigError("two-level storage ([data] archive) is not available in this "
                              f"build: {e}") from e
        twolevel = TwoLevel(db, main, open_storage(data.archive, data), data, jobs,
                            stale_seconds=settings.job_stale_seconds)
    return DataService(catalogue, db, data, main, twolevel, settings.public_url)
