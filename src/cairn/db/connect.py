"""Reaching the catalogue database at start-up: why a connection fails, in words a person can
act on, and waiting (with backoff) for a database that is not up yet.

A failure is one of: the server does not answer (refused, timed out, unknown host: worth
waiting for, as when Cairn and its database start together), the login is refused, the
database does not exist, or an SQLite file can't be created. Only the first is waited for.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import URL

from cairn.db.engine import (
    Database,
    DatabaseUnavailable,
    DatabaseUnreachable,
    first_line,
    parse_url,
    quiet_outages,
)

log = logging.getLogger(__name__)

#: Seconds between attempts: doubling from the first, never more than the last.
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 10.0

# Connection failures that waiting does not cure, by the drivers' wording (psycopg reports
# no SQLSTATE for failures while connecting) and MariaDB's error numbers.
_PG_LOGIN = re.compile(r"password authentication failed|role \"[^\"]*\" does not exist|"
                       r"no pg_hba\.conf entry|authentication|permission denied", re.I)
_PG_MISSING = re.compile(r"database \"([^\"]*)\" does not exist")
_MARIADB_LOGIN = {1044, 1045, 1698}
_MARIADB_MISSING = 1049
_MARIADB_ERRNO = re.compile(r"^\((\d+),")


def where(url: str | URL) -> str:
    """The database's URL as shown to people: without its password."""
    u = url if isinstance(url, URL) else parse_url(url)
    return str(u.set(query={}).render_as_string(hide_password=True))


def _reason(e: BaseException) -> str:
    """The driver's message without its prefixes and hints."""
    text = first_line(e)
    text = re.sub(r"^connection failed: ", "", text)
    text = re.sub(r"^connection to server at \"[^\"]*\"(?:\s*\([^)]*\))?, port \d+ failed: ",
                  "", text)
    text = re.sub(r"^FATAL:\s+", "", text)
    if m := re.match(r"^\(\d+, [\"'](.*)[\"']\)$", text):  # PyMySQL: (errno, "message")
        text = m.group(1)
    return text


def diagnose(url: str | URL, error: BaseException) -> DatabaseUnavailable:
    """What a failure to connect means, as a one-line message naming what to do."""
    cause = (error.__cause__ if isinstance(error, DatabaseUnreachable) else None) or error
    orig: BaseException = getattr(cause, "orig", None) or cause
    text = str(orig)
    reason = _reason(orig)
    shown = where(url)
    errno = orig.args[0] if getattr(orig, "args", None) and \
        isinstance(orig.args[0], int) else None
    if errno is None and (m := _MARIADB_ERRNO.match(text)):
        errno = int(m.group(1))
    missing = _PG_MISSING.search(text)
    if missing or errno == _MARIADB_MISSING:
        name = missing.group(1) if missing else parse_url(str(url)).database
        return DatabaseUnavailable(
            f"the database {name!r} does not exist on the server of {shown}: create it "
            f"(CREATE DATABASE {name}) or correct [catalogue] database")
    if errno in _MARIADB_LOGIN or (errno is None and _PG_LOGIN.search(text)):
        return DatabaseUnavailable(
            f"the database server of {shown} refused the login ({reason}): correct the user "
            "or password in [catalogue] database, or grant them access")
    return DatabaseUnavailable(
        f"the catalogue database at {shown} is unreachable ({reason}): start it, or correct "
        "[catalogue] database", waitable=True, reason=reason)


def check_sqlite_path(url: str) -> None:
    """An SQLite file that can't be created or written stops start-up before anything is
    made (no folder is created to find that out)."""
    u = parse_url(url)
    if not u.drivername.startswith("sqlite") or not u.database or u.database == ":memory:":
        return
    path = Path(u.database).absolute()
    if path.exists():
        if path.is_dir():
            raise DatabaseUnavailable(f"the catalogue database {path} is a folder, not a file")
        if not os.access(path, os.R_OK | os.W_OK) or not os.access(path.parent, os.W_OK):
            raise DatabaseUnavailable(
                f"the catalogue database {path} is not writable (SQLite also writes beside "
                "it): give this user write access, or choose another [server] data_dir")
        return
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise DatabaseUnavailable(
            f"cannot create the catalogue database {path}: {parent} is not a writable "
            "folder; give this user write access, or choose another [server] data_dir or "
            "[catalogue] database")


def wait_until_reachable(db: Database, wait_seconds: float,
                         sleep: Callable[[float], None] = time.sleep) -> None:
    """Connect once; while the server does not answer, try again with a doubling pause
    (one log line per attempt) for up to ``wait_seconds``. Anything else, or still no
    answer after that, raises :class:`DatabaseUnavailable`."""
    if db.dialect == "sqlite":
        return  # a file: nothing to wait for (check_sqlite_path says what is wrong)
    deadline = time.monotonic() + wait_seconds
    pause, attempt = BACKOFF_FIRST, 1
    while True:
        try:
            with quiet_outages(), db.connect() as conn:
                conn.exec_driver_sql("SELECT 1").all()
            if attempt > 1:
                log.info("catalogue database reached at attempt %d", attempt)
            return
        except Exception as e:  # any driver's failure: diagnose() tells them apart
            problem = diagnose(db.url, e)
        left = deadline - time.monotonic()
        if not problem.waitable:
            raise problem
        if left <= 0:
            if wait_seconds > 0:
                problem.message += (f" (waited {wait_seconds:g} s: [catalogue] "
                                    "database_wait_seconds)")
                problem.args = (problem.message,)
            raise problem
        pause = min(pause, left)
        log.warning("waiting for the catalogue database at %s (attempt %d: %s); next attempt "
                    "in %.0f s, giving up in %.0f s", where(db.url), attempt, problem.reason,
                    pause, left)
        sleep(pause)
        pause, attempt = min(pause * 2, BACKOFF_MAX), attempt + 1
