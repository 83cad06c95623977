"""Shared fixtures: a fresh catalogue database on every backend that is reachable here.

Backends come from ``CAIRN_TEST_BACKENDS`` (comma-separated; default ``sqlite,postgresql,mariadb``).
PostgreSQL and MariaDB are skipped cleanly when their server can't be reached. Their server URLs
can be changed with ``CAIRN_TEST_POSTGRESQL`` and ``CAIRN_TEST_MARIADB``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

SERVERS = {
    "postgresql": os.environ.get("CAIRN_TEST_POSTGRESQL",
                                 "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    "mariadb": os.environ.get("CAIRN_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/test"),
}
#: The property-based tests draw a fixed sample unless ``CAIRN_FUZZ_RANDOM=1``: a run of
#: ``make test`` (and CI) then answers the same for the same code, and a random hunt is asked
#: for (each one so far found a new database disagreement, fixed and kept as a test).
FUZZ_RANDOM = os.environ.get("CAIRN_FUZZ_RANDOM") == "1"

#: The browser tests (tests/browser) run in a pytest process of their own (`make test` starts
#: it with CAIRN_BROWSER_TESTS=1): Playwright's synchronous API leaves an event loop running in
#: the worker's thread, and every later test there that calls asyncio.run would fail.
if not os.environ.get("CAIRN_BROWSER_TESTS"):
    collect_ignore = ["browser"]

BACKENDS = [b.strip() for b in
            os.environ.get("CAIRN_TEST_BACKENDS", "sqlite,postgresql,mariadb").split(",")
            if b.strip()]


@cache
def server_reachable(backend: str) -> str | None:
    """None if the server answers, else why not."""
    try:
        engine = create_engine(SERVERS[backend], connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as e:
        where = make_url(SERVERS[backend]).render_as_string(hide_password=True)
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        return (f"{backend} server not reachable at {where} ({type(e).__name__}: {first}); "
                f"set CAIRN_TEST_{backend.upper()} to its URL, or leave {backend} out of "
                "CAIRN_TEST_BACKENDS")


def _admin_engine(backend: str):  # type: ignore[no-untyped-def]
    return create_engine(SERVERS[backend], isolation_level="AUTOCOMMIT")


#: This process's migrated databases (backend -> SQLite file or PostgreSQL database name), each
#: made once and copied for every test that asks for a database at the newest revision.
_TEMPLATES: dict[str, str] = {}


def _url(backend: str, name: str) -> str:
    return make_url(SERVERS[backend]).set(database=name).render_as_string(hide_password=False)


def _migrate(url: str) -> None:
    """Bring the database at ``url`` to the newest revision, and close every connection."""
    from cairn.db import migrate
    from cairn.db.engine import Database

    db = Database(url)
    migrate.upgrade(db)
    db.dispose()


def _template(backend: str) -> str:
    """A database at the newest revision to copy (made by ``migrate.upgrade`` itself): a
    SQLite file, or a PostgreSQL database (``CREATE DATABASE ... TEMPLATE``). Creating the
    schema takes seconds per database; a copy, milliseconds."""
    if backend not in _TEMPLATES:
        if backend == "sqlite":
            folder = Path(tempfile.mkdtemp(prefix="cairn-template-"))
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            made, url = str(folder / "catalogue.db"), f"sqlite:///{folder / 'catalogue.db'}"
        else:
            made = f"cairn_t_tpl_{uuid.uuid4().hex[:12]}"
            admin = _admin_engine(backend)
            with admin.connect() as conn:
                conn.execute(text(f"CREATE DATABASE {made}"))
            admin.dispose()
            atexit.register(_drop, backend, made)
            url = _url(backend, made)
        _migrate(url)  # closed: a template must have no connection while it is copied
        _TEMPLATES[backend] = made
    return _TEMPLATES[backend]


def _drop(backend: str, name: str) -> None:
    """Drop a test database, ending whatever connections still use it: a connection a test
    left open in a transaction would otherwise make MariaDB's DROP wait on its metadata lock
    for ever (``lock_wait_timeout`` is a year by default), and the run hang."""
    admin = _admin_engine(backend)
    with admin.connect() as conn:
        if backend == "postgresql":
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        else:
            conn.execute(text("SET SESSION lock_wait_timeout = 60"))
            for (pid,) in conn.execute(text(
                    "SELECT ID FROM information_schema.PROCESSLIST "
                    "WHERE DB = :db AND ID <> CONNECTION_ID()"), {"db": name}):
                with contextlib.suppress(Exception):  # it may have ended meanwhile
                    conn.execute(text(f"KILL CONNECTION {int(pid)}"))
            conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
    admin.dispose()


def make_database(backend: str, tmp_path: Path, migrated: bool = False) -> tuple[str, object]:
    """Create a database, empty or (``migrated``) at the newest revision; return its URL and a
    callable that drops it."""
    if backend == "sqlite":
        path = tmp_path / "catalogue.db"
        if migrated:
            shutil.copyfile(_template(backend), path)
        return f"sqlite:///{path}", lambda: None
    why = server_reachable(backend)
    if why:
        pytest.skip(why)
    name = f"cairn_t_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine(backend)
    with admin.connect() as conn:
        if migrated and backend == "postgresql":
            conn.execute(text(f"CREATE DATABASE {name} TEMPLATE {_template(backend)}"))
        else:
            conn.execute(text(f"CREATE DATABASE {name}"))
    url = _url(backend, name)
    if migrated and backend != "postgresql":  # MariaDB has no copy of a database: made here
        _migrate(url)
    admin.dispose()
    return url, lambda: _drop(backend, name)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """URL of a fresh, empty database on each configured backend."""
    url, drop = make_database(backend, tmp_path)
    try:
        yield url
    finally:
        drop()  # type: ignore[operator]


@pytest.fixture
def migrated_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """URL of a fresh database at the newest revision, on each configured backend."""
    url, drop = make_database(backend, tmp_path, migrated=True)
    try:
        yield url
    finally:
        drop()  # type: ignore[operator]
