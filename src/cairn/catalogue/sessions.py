"""Sessions in the catalogue database (icat.server's SESSION_ table), shared by all processes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection, delete, func, select, update

from cairn.db.engine import Database
from cairn.db.fastread import rows_in
from cairn.errors import session_error


@dataclass(frozen=True)
class Session:
    id: str
    user: str
    remaining_minutes: float


class SessionStore:
    def __init__(self, db: Database, lifetime_minutes: int) -> None:
        self.db = db
        self.lifetime = timedelta(minutes=lifetime_minutes)
        self.table = db.tables.session

    def create(self, user: str) -> str:
        sid = str(uuid.uuid4())
        with self.db.begin() as conn:
            conn.execute(self.table.insert().values(
                id=sid, userName=user, expireDateTime=self.db.now() + self.lifetime))
        return sid

    def _row(self, sid: str | None, conn: Connection | None = None) -> tuple[str, float]:
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
        expires = row["expireDateTime"]
        remaining = (expires - self.db.now()).total_seconds() / 60 if expires else 0.0
        return row["userName"], remaining

    def get(self, sid: str | None, conn: Connection | None = None) -> Session:
        """The live session, or SESSION errors worded as icat.server's (read on ``conn`` when
        given, saving a connection checkout per request)."""
        user, remaining = self._row(sid, conn)
        if remaining <= 0:
            raise session_error(f"Session id:{sid} has expired")
        return Session(id=str(sid), user=user, remaining_minutes=remaining)

    def refresh(self, sid: str | None) -> None:
        # As icat.server: an expired but not yet purged session may still be refreshed.
        self._row(sid)
        with self.db.begin() as conn:
            conn.execute(update(self.table).where(self.table.c.id == sid)
                         .values(expireDateTime=self.db.now() + self.lifetime))

    def logout(self, sid: str | None) -> None:
        self._row(sid)
        with self.db.begin() as conn:
            conn.execute(delete(self.table).where(self.table.c.id == sid))

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
