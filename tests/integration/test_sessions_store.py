"""The session store on every backend: lifetime, refresh, purge of expired sessions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cairn.catalogue.sessions import SessionStore
from cairn.db import migrate
from cairn.db.engine import Database
from cairn.errors import ErrorType, IcatError


@pytest.fixture
def store(database_url: str) -> SessionStore:
    db = Database(database_url)
    migrate.upgrade(db)
    return SessionStore(db, lifetime_minutes=60)


def test_purge_removes_only_expired_sessions(store: SessionStore) -> None:
    live = store.create("db/alive")
    old = store.create("db/old")
    table = store.table
    with store.db.begin() as conn:
        conn.execute(table.update().where(table.c.id == old)
                     .values(expireDateTime=store.db.now() - timedelta(minutes=1)))
    assert store.is_logged_in("db/old")  # as icat.server: expired but unpurged still counts
    assert store.purge_expired() == 1
    assert not store.is_logged_in("db/old")
    assert store.get(live).user == "db/alive"
    with pytest.raises(IcatError) as e:
        store.get(old)
    assert e.value.type == ErrorType.SESSION
    assert e.value.message == f"Unable to find user by sessionid: {old}"


def test_refresh_extends_lifetime(store: SessionStore) -> None:
    sid = store.create("db/u")
    table = store.table
    with store.db.begin() as conn:
        conn.execute(table.update().where(table.c.id == sid)
                     .values(expireDateTime=store.db.now() + timedelta(minutes=5)))
    assert store.get(sid).remaining_minutes <= 5
    store.refresh(sid)
    assert 59 < store.get(sid).remaining_minutes <= 60
    store.logout(sid)
    with pytest.raises(IcatError):
        store.refresh(sid)
