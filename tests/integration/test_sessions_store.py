"""The session store on every backend: lifetime, refresh, purge of expired sessions."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest

from cairn.catalogue.sessions import SessionStore
from cairn.db import migrate
from cairn.db.engine import Database
from cairn.errors import ErrorType, IcatError


def _open(url: str, reuse_seconds: float = 0.0) -> SessionStore:
    db = Database(url)
    migrate.upgrade(db)
    return SessionStore(db, lifetime_minutes=60, reuse_seconds=reuse_seconds)


def _expire_at(store: SessionStore, sid: str, when: datetime) -> None:
    """Set the session's expiry in the database itself, as another node would."""
    with store.db.begin() as conn:
        conn.execute(store.table.update().where(store.table.c.id == sid)
                     .values(expireDateTime=when))


@pytest.fixture
def store(database_url: str) -> SessionStore:
    return _open(database_url)


def test_purge_removes_only_expired_sessions(store: SessionStore) -> None:
    live = store.create("db/alive")
    old = store.create("db/old")
    _expire_at(store, old, store.db.now() - timedelta(minutes=1))
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
    _expire_at(store, sid, store.db.now() + timedelta(minutes=5))
    assert store.get(sid).remaining_minutes <= 5
    store.refresh(sid)
    assert 59 < store.get(sid).remaining_minutes <= 60
    store.logout(sid)
    with pytest.raises(IcatError):
        store.refresh(sid)


@pytest.fixture
def reusing(database_url: str) -> SessionStore:
    return _open(database_url, reuse_seconds=30)


def _delete_row(store: SessionStore, sid: str) -> None:
    """The session ended by another process or node: only the database knows."""
    with store.db.begin() as conn:
        conn.execute(store.table.delete().where(store.table.c.id == sid))


def test_a_session_found_live_is_trusted_for_a_while(reusing: SessionStore,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    sid = reusing.create("db/u")
    assert reusing.get(sid).user == "db/u"
    _delete_row(reusing, sid)
    assert reusing.get(sid).user == "db/u"  # not read again within reuse_seconds
    later = time.monotonic() + 31
    monkeypatch.setattr("cairn.catalogue.sessions.monotonic", lambda: later)
    with pytest.raises(IcatError) as e:
        reusing.get(sid)
    assert e.value.message == f"Unable to find user by sessionid: {sid}"


def test_without_reuse_every_call_reads_the_session(store: SessionStore) -> None:
    sid = store.create("db/u")
    assert store.get(sid).user == "db/u"
    _delete_row(store, sid)
    with pytest.raises(IcatError):
        store.get(sid)


def test_logout_and_refresh_in_this_process_are_seen_at_once(reusing: SessionStore) -> None:
    sid = reusing.create("db/u")
    _expire_at(reusing, sid, reusing.db.now() + timedelta(minutes=5))
    assert reusing.get(sid).remaining_minutes <= 5
    reusing.refresh(sid)
    assert reusing.get(sid).remaining_minutes > 59
    reusing.logout(sid)
    with pytest.raises(IcatError) as e:
        reusing.get(sid)
    assert e.value.type == ErrorType.SESSION


def test_a_trusted_session_that_expires_is_read_again(reusing: SessionStore,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """It may have been refreshed elsewhere; if not, it has expired."""
    sid = reusing.create("db/u")
    assert reusing.get(sid).remaining_minutes > 59
    real_now = reusing.db.now
    monkeypatch.setattr(reusing.db, "now", lambda: real_now() + timedelta(minutes=61))
    with pytest.raises(IcatError) as e:
        reusing.get(sid)
    assert e.value.message == f"Session id:{sid} has expired"
    _expire_at(reusing, sid, real_now() + timedelta(minutes=120))  # another node refreshes it
    assert reusing.get(sid).remaining_minutes > 58
