"""Database engines for SQLite (embedded default), PostgreSQL and MariaDB."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import make_url

from cairn.db.ids import IdAllocator, detect
from cairn.db.tables import TABLES, Tables


def normalise_url(url: str) -> str:
    """Pick the drivers Cairn ships with and settings every backend needs."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    elif u.drivername in ("mysql", "mariadb", "mariadb+pymysql"):
        u = u.set(drivername="mysql+pymysql")
    if u.drivername.startswith("mysql") and "charset" not in u.query:
        u = u.update_query_dict({"charset": "utf8mb4"})
    return u.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # First, so that the statements below also wait for a lock instead of failing at once
    # (switching a new file to WAL needs one while another process does the same).
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")  # icat.server's tables have real foreign keys
    _wal(cur)  # readers don't block the writer
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _wal(cur: Any, patience: float = 30.0) -> None:
    """Switch the file to WAL (once per file; a no-op after). While other processes open the
    same new file, SQLite may refuse the switch with "database is locked" at once, without
    waiting for the busy timeout (seen in CI with several Cairns starting together): retry."""
    deadline = time.monotonic() + patience
    while True:
        try:
            if cur.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                return
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    u = make_url(url)
    if u.drivername.startswith("sqlite"):
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if u.drivername.startswith("postgresql") and "options" not in u.query:
        # PostgreSQL compiles a statement it estimates as costly to machine code: 65-75 ms
        # spent on a search whose plan runs in 13 (bench/search.py). Catalogue statements
        # are short: interpreting them is always faster.
        kwargs.setdefault("connect_args", {}).setdefault("options", "-c jit=off")
    # LIFO: a lone client's requests reuse one warm connection (the driver's prepared
    # statements are per connection) and surplus connections idle out.
    engine = create_engine(url, pool_recycle=3600, pool_use_lifo=True, **kwargs)
    event.listen(engine, "checkin", _note_checkin)
    event.listen(engine, "checkout", _ping_if_idle)
    return engine


#: A pooled connection unused for longer than this is tested before it is handed out.
IDLE_PING_SECONDS = 1.0


def _note_checkin(dbapi_conn: Any, record: Any) -> None:
    record.info["checked_in"] = time.monotonic()


def _ping_if_idle(dbapi_conn: Any, record: Any, proxy: Any) -> None:
    """SQLAlchemy's pre-ping, but only for connections that sat idle.

    A ping is a round trip to the database on every request, and under load each round trip
    waits for the database process to be scheduled (0.3-0.5 ms on the benchmark machine). A
    connection handed back a moment ago is alive; one that sat idle may have been dropped by
    a database restart or a firewall, and raising DisconnectionError makes the pool discard
    it and try another, exactly as pre-ping does.
    """
    if time.monotonic() - record.info.get("checked_in", 0.0) < IDLE_PING_SECONDS:
        return
    try:
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("SELECT 1")
            cursor.fetchall()
        finally:
            cursor.close()
        dbapi_conn.rollback()  # the driver began a transaction; hand the connection out idle
    except Exception as e:  # any failure of the driver: the connection is not usable
        raise exc.DisconnectionError(f"stale pooled connection: {e}") from e


class Database:
    """An engine, the catalogue's tables and the time zone its naive timestamps are in."""

    def __init__(self, url: str, zone: ZoneInfo | None = None, tables: Tables = TABLES,
                 **engine_kwargs: Any) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url, **engine_kwargs)
        self.tables = tables
        self.zone = zone or ZoneInfo("UTC")
        self.ids = IdAllocator()  # identity mode until detect_ids() finds a sequence

    def detect_ids(self) -> None:
        """Follow the id scheme of the schema in place (call after migrations)."""
        self.ids = detect(self.engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name  # "sqlite", "postgresql", "mysql"

    def now(self) -> datetime:
        """Current time as stored: naive wall-clock time in the catalogue's zone.

        MariaDB's DATETIME keeps whole seconds; truncate everywhere so that a value read back
        equals the value written, whatever the backend.
        """
        return datetime.now(self.zone).replace(tzinfo=None, microsecond=0)

    def to_db(self, value: datetime) -> datetime:
        """An aware datetime as the naive local time the database stores."""
        if value.tzinfo is None:
            return value
        return value.astimezone(self.zone).replace(tzinfo=None)

    def from_db(self, value: datetime) -> datetime:
        return value.replace(tzinfo=self.zone) if value.tzinfo is None else value

    def utcnow(self) -> datetime:
        return datetime.now(UTC)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction: committed on success, rolled back on any exception."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reading only. On PostgreSQL it runs in autocommit: its default
        READ COMMITTED isolation gives every statement its own snapshot inside a transaction
        too, so BEGIN and COMMIT would only add two round trips. Elsewhere, a transaction (a
        consistent snapshot on MariaDB, the same on SQLite), rolled back at the end."""
        if self.dialect == "postgresql":
            with self.engine.connect() as conn:
                yield conn.execution_options(isolation_level="AUTOCOMMIT")
        else:
            with self.engine.connect() as conn, conn.begin() as tx:
                yield conn
                tx.rollback()

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()
