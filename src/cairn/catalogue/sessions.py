"""Sessions in the catalogue database (icat.server's SESSION_ table), shared by all processes."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from time import monotonic

from sqlalchemy import Connection, delete, func, select, update

from cairn.cache import Lru
from cairn.db.engine import Database
from cairn.db.fastread import rows_in
from cairn.errors import session_error


@dataclass(frozen=True)
class Session:
    id: str
    user: str
    remaining_minutes: float


@dataclass(frozen=True)
class _Seen:
    """A session as last read from the database, trusted until ``until`` (monotonic)."""

    user: str
    expires: datetime | None
    until: float


class SessionStore:
    """Sessions in the database. ``reuse_seconds``: how long a session found live is trusted
    without reading it again, in this process (a round trip per request on PostgreSQL). A
    logout or refresh made here is seen at once; one made by another process or node, up to
    that late. An expired one is read again, as another node may have refreshed it."""

    def __init__(self, db: Database, lifetime_minutes: int, reuse_seconds: float = 0.0
                 ) -> None:
        self.db = db
        self.lifetime = timedelta(minutes=lifetime_minutes)
        self.table = db.tables.session
        self.reuse_seconds = reuse_seconds
        self._seen: Lru[str, _Seen] = Lru(10_000, "sessions.seen")  # ~0.5 kB each
        self._ended = 0  # logouts and refreshes so far: a read that overlapped one is not kept
        self._lock = threading.Lock()

    def create(self, user: str) -> str:
        sid = str(uuid.uuid4())
        with self.db.begin() as conn:
            conn.execute(self.table.insert().values(
                id=sid, userName=user, expireDateTime=self.db.now() + self.lifetime))
        return sid

    def _row(self, sid: str | None, conn: Connection | None = None) -> _Seen:
        if not sid:
            raise session_error("Session Id cannot be null or empty.")
        if conn is not None:  # every request: the cursor's fast path
            rows = rows_in(conn, self.table, "id", [sid])
        else:
            with self.db.connect() as own:
                rows = rows_in(own, self.table, "id", [sid])
        if not rows:
            raise session_error(f"Unable to find user by sessionid: {sid}")
        row = dict(zip(self.table.columns.keys(), rows[0], strict=True))
        return _Seen(row["userName"], row["expireDateTime"],
                     monotonic() + self.reuse_seconds)

    def _remaining(self, seen: _Seen) -> float:
        """Minutes left; 0 or less when expired."""
        if seen.expires is None:
            return 0.0
        return (seen.expires - self.db.now()).total_seconds() / 60

    def get(self, sid: str | None, conn: Connection | None = None) -> Session:
        """The live session, or SESSION errors worded as icat.server's (read on ``conn`` when
        given, saving a connection checkout per request)."""
        seen = self._seen.get(sid) if sid and self.reuse_seconds > 0 else None
        if seen is None or seen.until <= monotonic() or self._remaining(seen) <= 0:
            ended = self._ended
            seen = self._row(sid, conn)
            if self.reuse_seconds > 0:
                with self._lock:
                    if ended == self._ended:
                        self._seen.put(str(sid), seen)
        remaining = self._remaining(seen)
        if remaining <= 0:
            raise session_error(f"Session id:{sid} has expired")
        return Session(id=str(sid), user=seen.user, remaining_minutes=remaining)

    def refresh(self, sid: str | None) -> None:
        # As icat.server: an expired but not yet purged session may still be refreshed.
        self._row(sid)
        with self.db.begin() as conn:
            conn.execute(update(self.table).where(self.table.c.id == sid)
                         .values(expireDateTime=self.db.now() + self.lifetime))
        self._forget(sid)

    def logout(self, sid: str | None) -> None:
        self._row(sid)
        with self.db.begin() as conn:
            conn.execute(delete(self.table).where(self.table.c.id == sid))
        self._forget(sid)

    def _forget(self, sid: str | None) -> None:
        with self._lock:
            self._ended += 1
            self._seen.discard(str(sid))

    def is_logged_in(self, user: str) -> bool:
        with self.db.connect() as conn:
            n = conn.execute(select(func.count()).select_from(self.table)
                             .where(self.table.c.userName == user)).scalar_one()
        return n > 0

    def purge_expired(self) -> int:
        """Delete expired sessions; returns how many went."""
        with self.db.begin() as conn:
            res = conn.execute(delete(self.table)
                               .where(self.table.c.expireDateTime < self.db.now()))
        return res.rowcount or 0
