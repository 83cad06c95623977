"""Database engines for SQLite (embedded default), PostgreSQL and MariaDB.

Statement time limit: statements run on behalf of a user (the catalogue's units of work for
a session, inside :func:`statement_limit`) are stopped after ``[catalogue]
statement_timeout_seconds``; everything else (start-up migrations, background jobs, bulk
loads, tools) runs with the database's own setting (normally none). How each backend does it:

- PostgreSQL: ``statement_timeout`` of the connection, set (or reset to the database's
  default) when a connection is taken from the pool for work of the other kind; a pooled
  connection keeps it, so steady work of one kind costs no round trip.
- MariaDB: ``max_statement_time`` of the connection, the same way (MySQL:
  ``max_execution_time``, which covers SELECTs only).
- SQLite: a progress handler (every :data:`SQLITE_PROGRESS_STEPS` virtual-machine steps)
  that interrupts the statement once its deadline has passed; the deadline is set when a
  statement starts (by an engine event, and by :mod:`cairn.db.fastread` for the statements
  it runs through the cursor) and cleared when the connection goes back to the pool. It
  counts from the statement's start until its last row is read.

A statement stopped so is :class:`StatementTimeout`: BAD_PARAMETER naming the limit and the
setting (the query is what a person can change), never a driver error.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import ExceptionContext, make_url

from cairn.db.ids import IdAllocator, detect
from cairn.db.tables import TABLES, Tables
from cairn.errors import ErrorType, IcatError

log = logging.getLogger(__name__)

#: Seconds a connection attempt to PostgreSQL or MariaDB may take. Without it a database host
#: that drops packets holds a start-up, or a request, for the system's TCP timeout (minutes).
CONNECT_TIMEOUT_SECONDS = 10

#: The driver each backend needs, and the extra of Cairn's package that installs it.
DRIVERS = {"postgresql": ("psycopg", "postgresql"), "mysql": ("PyMySQL", "mariadb")}


class DatabaseUnavailable(Exception):
    """The database can't be used; the message says what to do. ``waitable``: it may come
    back by itself (unreachable), as opposed to a wrong URL, login or missing driver."""

    def __init__(self, message: str, waitable: bool = False, reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.waitable = waitable
        #: The driver's words, when a failure to connect is the cause.
        self.reason = reason


class StatementTimeout(IcatError):
    """A statement ran longer than the limit and was stopped by the database."""

    def __init__(self, seconds: float | None) -> None:
        if seconds:
            limit = (f"ran for longer than {seconds:g} s, the longest a statement may run "
                     "([catalogue] statement_timeout_seconds), and was stopped")
        else:
            limit = "ran for longer than the database lets a statement run, and was stopped"
        super().__init__(ErrorType.BAD_PARAMETER, f"The query {limit}: narrow it (more "
                         "conditions, fewer joins, a smaller LIMIT) or ask the "
                         "administrator to raise the limit")


#: The statement time limit of the work at hand, in seconds (None: the database's own).
_STATEMENT_LIMIT: ContextVar[float | None] = ContextVar("statement_limit", default=None)
#: SQLite calls the progress handler every this many virtual-machine steps (about a
#: millisecond of work; the handler costs well under 1% of it).
SQLITE_PROGRESS_STEPS = 10_000


@contextmanager
def statement_limit(seconds: float | None) -> Iterator[None]:
    """Stop statements of this block that run longer than ``seconds`` (0 or None: no limit
    of Cairn's, the database's own setting applies). Enter it before the block takes its
    connection: PostgreSQL and MariaDB apply it to connections as they leave the pool."""
    token = _STATEMENT_LIMIT.set(seconds or None)
    try:
        yield
    finally:
        _STATEMENT_LIMIT.reset(token)


def timed_out(error: BaseException) -> StatementTimeout | None:
    """The :class:`StatementTimeout` a driver's error (or SQLAlchemy's wrapping of it)
    stands for, or None if it is another error."""
    orig: Any = getattr(error, "orig", None) or error
    if isinstance(orig, sqlite3.OperationalError):
        hit = str(orig) == "interrupted"
    else:
        args = getattr(orig, "args", None)
        if args and isinstance(args[0], int):  # PyMySQL: (error number, message)
            hit = args[0] in (1969, 3024)  # MariaDB's max_statement_time, MySQL's
        else:
            hit = getattr(orig, "sqlstate", None) == "57014" and \
                "statement timeout" in str(orig)
    return StatementTimeout(_STATEMENT_LIMIT.get()) if hit else None


def _timeout(ctx: ExceptionContext) -> BaseException | None:
    """Raise :class:`StatementTimeout` for a statement the limit stopped."""
    stopped = timed_out(ctx.original_exception)
    if stopped is None:
        return None
    raise stopped from ctx.original_exception


def statement_started(conn: Connection) -> None:
    """A statement is about to run on ``conn`` outside SQLAlchemy's execution (the cursor
    paths of :mod:`cairn.db.fastread`): on SQLite, start its deadline."""
    if conn.dialect.name == "sqlite":
        _arm(conn.connection.info, conn.connection.dbapi_connection)


def _arm(info: dict[Any, Any], dbapi_conn: Any) -> None:
    seconds = _STATEMENT_LIMIT.get()
    deadline = info.get("cairn_deadline")
    if seconds is None:
        if deadline is not None:
            deadline[0] = math.inf
        return
    if deadline is None:  # the first limited statement on this connection
        deadline = info["cairn_deadline"] = [math.inf]
        clock = time.monotonic
        dbapi_conn.set_progress_handler(lambda: clock() > deadline[0], SQLITE_PROGRESS_STEPS)
    deadline[0] = time.monotonic() + seconds


def _sqlite_statement(conn: Connection, cursor: Any, statement: Any, parameters: Any,
                      context: Any, executemany: bool) -> None:
    _arm(conn.connection.info, conn.connection.dbapi_connection)


def _sqlite_disarm(dbapi_conn: Any, record: Any) -> None:
    """Back in the pool: the next user of the connection starts without a deadline."""
    deadline = record.info.get("cairn_deadline")
    if deadline is not None:
        deadline[0] = math.inf


def _sqlite_ended(conn: Connection) -> None:
    """A transaction ends: its COMMIT or ROLLBACK is never cut short by a deadline."""
    if conn.invalidated:
        return  # its connection is gone, and its deadline with it
    deadline = conn.connection.info.get("cairn_deadline")
    if deadline is not None:
        deadline[0] = math.inf


def _limit_on_checkout(engine: Engine) -> Any:
    """A pool listener that gives a PostgreSQL or MariaDB connection the statement limit
    of the work taking it (see the module's description)."""
    postgres = engine.dialect.name == "postgresql"

    def listener(dbapi_conn: Any, record: Any, proxy: Any) -> None:
        seconds = _STATEMENT_LIMIT.get()
        if record.info.get("cairn_limit") == seconds:
            return  # None when never set: the database's own setting
        if postgres:
            sql = "RESET statement_timeout" if seconds is None else \
                f"SET statement_timeout = {max(1, round(seconds * 1000))}"
        elif getattr(engine.dialect, "is_mariadb", True):
            sql = "SET SESSION max_statement_time = " + \
                ("DEFAULT" if seconds is None else f"{seconds:.6f}")
        else:
            sql = "SET SESSION max_execution_time = " + \
                ("DEFAULT" if seconds is None else str(max(1, round(seconds * 1000))))
        try:
            if postgres:  # outside a transaction, so no rollback undoes it
                autocommit = dbapi_conn.autocommit
                dbapi_conn.autocommit = True
            cursor = dbapi_conn.cursor()
            try:
                cursor.execute(sql)
            finally:
                cursor.close()
                if postgres:
                    dbapi_conn.autocommit = autocommit
        except Exception as e:  # any failure of the driver: the connection is not usable
            raise exc.DisconnectionError(f"could not set the statement limit: {e}") from e
        record.info["cairn_limit"] = seconds

    return listener


class DatabaseUnreachable(IcatError):
    """What a client is told while the database does not answer (an outage, not a bug)."""

    def __init__(self) -> None:
        super().__init__(ErrorType.INTERNAL, "The catalogue database is unreachable; try again "
                         "later (the server's log says why)")


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


def parse_url(url: str) -> Any:
    """The SQLAlchemy URL of ``url``, or :class:`DatabaseUnavailable` saying what is wrong."""
    try:
        return make_url(normalise_url(url))
    except exc.ArgumentError as e:
        raise DatabaseUnavailable(f"{url!r} is not a database URL (write e.g. "
                                  "sqlite:///catalogue.db or postgresql://user@host/db)") from e


#: MariaDB turns a correlated EXISTS into a semi-join whose table it reads first: a rule's
#: EXISTS on the investigation of each dataset made a page of datasets read every readable
#: investigation's datasets and sort them (ds-param as a user: 263 ms; 20 ms without).
MARIADB_SESSION = "SET SESSION optimizer_switch = 'exists_to_in=off'"


def make_engine(url: str, **kwargs: Any) -> Engine:
    u = parse_url(url)
    if u.get_backend_name() not in ("sqlite", *DRIVERS):
        raise DatabaseUnavailable(f"Cairn runs on SQLite, PostgreSQL and MariaDB, not on "
                                  f"{u.get_backend_name()}")
    url = u.render_as_string(hide_password=False)
    if u.drivername.startswith("sqlite"):
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = _create(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "handle_error", _outage)
        event.listen(engine, "handle_error", _timeout)
        event.listen(engine, "before_cursor_execute", _sqlite_statement)
        event.listen(engine, "checkin", _sqlite_disarm)
        event.listen(engine, "commit", _sqlite_ended)
        event.listen(engine, "rollback", _sqlite_ended)
        return engine
    if u.drivername.startswith("postgresql") and "options" not in u.query:
        # PostgreSQL compiles a statement it estimates as costly to machine code: 65-75 ms
        # spent on a search whose plan runs in 13 (bench/search.py). Catalogue statements
        # are short: interpreting them is always faster.
        kwargs.setdefault("connect_args", {}).setdefault("options", "-c jit=off")
    if u.drivername.startswith("postgresql"):
        # Prepare every statement on its first run (psycopg waits for five by default).
        # PostgreSQL plans a prepared statement for its values five times before it tries one
        # plan for all, so with psycopg's wait a statement with authorization predicates was
        # planned afresh (0.5-0.6 ms, ten times its run) for its first eleven runs on each
        # pooled connection: a user's small portal queries took 1.4-1.7 x root's at ten million
        # datafiles, 1.0-1.3 x with this (docs/performance.md). The price: a statement run
        # once also costs the round trip that prepares it.
        kwargs.setdefault("connect_args", {}).setdefault("prepare_threshold",
                                                         PREPARE_THRESHOLD)
    if u.drivername.startswith("mysql") and "init_command" not in u.query:
        kwargs.setdefault("connect_args", {}).setdefault("init_command", MARIADB_SESSION)
    if "connect_timeout" not in u.query:
        kwargs.setdefault("connect_args", {}).setdefault("connect_timeout",
                                                         CONNECT_TIMEOUT_SECONDS)
    # LIFO: a lone client's requests reuse one warm connection (the driver's prepared
    # statements are per connection) and surplus connections idle out.
    engine = _create(url, pool_recycle=3600, pool_use_lifo=True, **kwargs)
    event.listen(engine, "checkin", _note_checkin)
    if u.drivername.startswith("postgresql"):
        event.listen(engine, "checkin", _default_prepare)
    event.listen(engine, "checkout", _ping_if_idle)
    event.listen(engine, "checkout", _limit_on_checkout(engine))
    event.listen(engine, "handle_error", _outage)
    event.listen(engine, "handle_error", _timeout)
    return engine


def _create(url: str, **kwargs: Any) -> Engine:
    """``create_engine``, saying which extra to install when the driver is missing."""
    try:
        return create_engine(url, **kwargs)
    except exc.NoSuchModuleError as e:
        raise DatabaseUnavailable(f"{make_url(url).drivername!r} is not a database Cairn "
                                  "knows: use sqlite, postgresql or mariadb") from e
    except ImportError as e:
        backend = make_url(url).get_backend_name()
        driver, extra = DRIVERS.get(backend, (e.name or "its driver", None))
        fix = f"pip install 'cairn[{extra}]'" if extra else f"install {driver}"
        raise DatabaseUnavailable(f"the {backend} driver ({driver}) is not installed: "
                                  f"{fix}") from e


class _OutageLog:
    """One warning when requests start failing for want of the database, then at most one
    every ``every`` seconds (with a count), not one per request."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self.lock = threading.Lock()
        self.last = -every
        self.missed = 0

    def note(self, reason: str) -> None:
        with self.lock:
            now = time.monotonic()
            if now - self.last < self.every:
                self.missed += 1
                return
            missed, self.missed, self.last = self.missed, 0, now
        more = f" ({missed} more failures since the last report)" if missed else ""
        log.warning("catalogue database unreachable: %s%s", reason, more)


_OUTAGES = _OutageLog()
#: Set while start-up waits for the database: it logs each attempt itself.
_QUIET: ContextVar[bool] = ContextVar("quiet_outages", default=False)


@contextmanager
def quiet_outages() -> Iterator[None]:
    """Connection failures in this block are not logged as outages (the caller says why)."""
    token = _QUIET.set(True)
    try:
        yield
    finally:
        _QUIET.reset(token)


def first_line(e: BaseException) -> str:
    """The first line of a driver's message (they run to several, with hints)."""
    text = str(e).strip()
    return text.splitlines()[0].strip() if text else type(e).__name__


def _outage(ctx: ExceptionContext) -> BaseException | None:
    """Turn a lost connection, or a connection that can't be made, into
    :class:`DatabaseUnreachable`: clients are told the database is away, not shown a driver
    error. SQLAlchemy still discards the broken connection (and, for a disconnect, the rest
    of the pool)."""
    if ctx.is_pre_ping:
        return None
    connect_failed = ctx.connection is None and ctx.dialect.name != "sqlite"
    if not (ctx.is_disconnect or connect_failed):
        return None
    raise unreachable(ctx.original_exception) from ctx.original_exception


def unreachable(cause: BaseException) -> DatabaseUnreachable:
    """The error for a client while the database is away; the outage logged (once in a
    while, not per request). For paths that talk to the driver directly (fastread)."""
    if not _QUIET.get():
        _OUTAGES.note(first_line(cause))
    return DatabaseUnreachable()


#: A pooled connection unused for longer than this is tested before it is handed out.
IDLE_PING_SECONDS = 1.0


def _note_checkin(dbapi_conn: Any, record: Any) -> None:
    record.info["checked_in"] = time.monotonic()


#: psycopg prepares a statement from this run on (see :func:`make_engine`).
PREPARE_THRESHOLD = 0


def plan_every_run(dbapi_conn: Any) -> None:
    """Statements on this PostgreSQL connection are planned for their values on every run,
    never prepared, until :func:`prepare_as_usual` (or the pool, once it is returned)."""
    raw = getattr(dbapi_conn, "driver_connection", dbapi_conn)
    raw.prepare_threshold = None


def prepare_as_usual(dbapi_conn: Any) -> None:
    """Statements on this PostgreSQL connection are prepared again from their first run,
    whatever its user chose for its own (a search plans each of its statements afresh)."""
    raw = getattr(dbapi_conn, "driver_connection", dbapi_conn)
    if getattr(raw, "prepare_threshold", PREPARE_THRESHOLD) != PREPARE_THRESHOLD:
        raw.prepare_threshold = PREPARE_THRESHOLD


def _default_prepare(dbapi_conn: Any, record: Any) -> None:
    """Back in the pool: prepared as usual again (:func:`prepare_as_usual`)."""
    prepare_as_usual(dbapi_conn)


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
        self.url = parse_url(url).render_as_string(hide_password=False)
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

    def ping(self) -> str | None:
        """None if the database answers a trivial statement now, else why not (one line).
        Cheap: a pooled connection and one round trip; for readiness checks."""
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1").all()
        except Exception as e:  # whatever the driver raises, the answer is "not reachable"
            cause = e.__cause__ if isinstance(e, DatabaseUnreachable) else None
            return first_line(cause or e)
        return None

    def dispose(self) -> None:
        self.engine.dispose()
