"""Open a catalogue from settings: database, schema migrations, authenticators, root account."""

from __future__ import annotations

import logging
import os
import secrets

from sqlalchemy import select

from cairn.authn import db as db_authn
from cairn.authn.registry import build_authenticators
from cairn.catalogue.service import Catalogue
from cairn.config import ConfigError, DataSettings, Settings
from cairn.db import migrate
from cairn.db.engine import Database
from cairn.ids.service import DataService, TwoLevelStorage
from cairn.ids.storage import Storage

log = logging.getLogger(__name__)

ROOT_PASSWORD_ENV = "CAIRN_ROOT_PASSWORD"


def open_database(settings: Settings) -> Database:
    settings.server.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.database_url, zone=settings.zone)
    if settings.catalogue.migrate:
        migrate.upgrade(db)
    db.detect_ids()
    if not db.ids.identity:
        log.info("ids come from the sequence %s (increment %d), as icat.server's",
                 db.ids.sequence, db.ids.increment)
    return db


def open_catalogue(settings: Settings, db: Database | None = None) -> Catalogue:
    db = db or open_database(settings)
    return Catalogue(settings, db, build_authenticators(settings, db))


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


def open_data_service(catalogue: Catalogue) -> DataService:
    """Main storage, and two-level storage when an archive is configured."""
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
        twolevel = TwoLevel(catalogue.db, main, open_storage(data.archive, data), data)
    return DataService(catalogue, data, main, twolevel, settings.public_url)
