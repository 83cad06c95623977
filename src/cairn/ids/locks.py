"""Dataset locks shared by every Cairn process on one database (ids.server's LockManager).

As in ids.server, locks are per dataset, SHARED (downloads, uploads, deletes, writes to the
archive) or EXCLUSIVE (archive, restore), and never wait: a lock that can't be had at once is
:class:`DataBusy` (the data service answers 503 "Data is busy"; background jobs retry on the
next tick). Unlike ids.server's in-memory map, the locks are rows of CAIRN_IDS_LOCK, so a
download served by one process keeps another process from archiving that dataset. Unlike
ids.server, a delete does not wait for downloads (nor refuse while they run): a download's
SHARED lock is a lease on the files it reads, which a delete leaves in storage until the
lease ends (:mod:`cairn.ids.removal`); downloads lock on single-level storage too.

Acquiring is optimistic and needs no table lock or isolation level: insert our rows and
commit, then look for conflicting rows of others; if there are any, delete ours and fail.
Of two processes that race, whichever looks last sees the other's committed rows, so at
least one of them backs off (both may: then both retry, which is safe). Readers are
favoured: an exclusive request fails at its first conflict, a shared one looks again for a
moment before it gives up, since all it usually sees is an archive job's attempt that is
withdrawing again because of the readers. A row carries its
process and a heartbeat that process refreshes; rows whose heartbeat stopped belong to a
dead process and are ignored, then deleted. Rows on dataset id -1 are no locks but
processes' presence (:mod:`cairn.ids.leftovers`): they conflict with nothing and are not
listed.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update

from cairn.db.engine import Database
from cairn.ids.errors import IdsError
from cairn.jobs.model import chunks, retrying, utcnow

log = logging.getLogger(__name__)


class DataBusy(IdsError):
    """A dataset is locked in a conflicting mode: 503 DataNotOnlineException, as ids.server."""

    def __init__(self, message: str = "Data is busy") -> None:
        super().__init__("DataNotOnlineException", 503, message)


class LockManager:
    def __init__(self, db: Database, owner: str, *, stale_seconds: float = 120.0) -> None:
        self.db = db
        self.t = db.tables.ids_lock
        self.owner = owner
        self.stale = timedelta(seconds=stale_seconds)

    @contextmanager
    def lock(self, dataset_ids: Iterable[int], shared: bool) -> Iterator[None]:
        """Hold locks on the datasets for the ``with`` block, or raise DataBusy."""
        holder = self.acquire(dataset_ids, shared)
        try:
            yield
        finally:
            self.release(holder)

    def acquire(self, dataset_ids: Iterable[int], shared: bool) -> str:
        """Lock all the datasets or none; return the holder token for :meth:`release`."""
        ids = sorted(set(dataset_ids))
        holder = uuid.uuid4().hex
        if not ids:
            return holder
        t = self.t
        now = utcnow()
        with self.db.begin() as conn:
            conn.execute(insert(t), [{"holder": holder, "dataset_id": i, "shared": shared,
                                      "owner": self.owner, "heartbeat": now} for i in ids])
        try:
            # An exclusive attempt gives way at once (jobs retry on the next tick). A shared
            # one looks again a few times: the exclusive row it sees is most often a job's
            # attempt that is about to withdraw because of the readers already there.
            for attempt in range(self.SHARED_CHECKS if shared else 1):
                if attempt:
                    time.sleep(0.02 * attempt)
                if not self._conflicts(holder, ids, shared, now - self.stale):
                    return holder
            raise DataBusy()
        except BaseException:
            self.release(holder)
            raise

    #: How often a shared request looks for conflicts before it gives up (~0.2 s in all).
    SHARED_CHECKS = 5

    def _conflicts(self, holder: str, ids: list[int], shared: bool, cutoff: datetime) -> bool:
        t = self.t
        with self.db.connect() as conn:
            for batch in chunks(ids):
                cond = [t.c.dataset_id.in_(batch), t.c.holder != holder,
                        t.c.heartbeat >= cutoff]
                if shared:
                    cond.append(t.c.shared.is_(False))
                if conn.execute(select(t.c.dataset_id).where(and_(*cond)).limit(1)).first():
                    return True
        return False

    def release(self, holder: str) -> None:
        def go() -> None:
            with self.db.begin() as conn:
                conn.execute(delete(self.t).where(self.t.c.holder == holder))
        retrying(go)

    def heartbeat(self) -> None:
        """Refresh this process's locks and delete dead processes' ones."""
        t, now = self.t, utcnow()
        with self.db.begin() as conn:
            conn.execute(update(t).where(t.c.owner == self.owner).values(heartbeat=now))
        with self.db.begin() as conn:
            gone = conn.execute(delete(t).where(t.c.heartbeat < now - self.stale,
                                                t.c.dataset_id >= 0)).rowcount
        if gone:
            log.warning("Removed %d dataset locks of processes that stopped", gone)

    def summary(self) -> list[dict[str, object]]:
        """Live locks per dataset, as ids.server's getServiceStatus lists them. A request
        that is about to give way (see :meth:`acquire`) may be counted for a moment."""
        t = self.t
        cutoff = utcnow() - self.stale
        with self.db.connect() as conn:
            rows = conn.execute(
                select(t.c.dataset_id, t.c.shared, func.count())
                .where(t.c.heartbeat >= cutoff, t.c.dataset_id >= 0)
                .group_by(t.c.dataset_id, t.c.shared)
                .order_by(t.c.dataset_id)).all()
        counts: dict[int, int] = {}
        exclusive: set[int] = set()
        for dataset_id, shared, count in rows:
            counts[dataset_id] = counts.get(dataset_id, 0) + int(count)
            if not shared:  # an exclusive holder that is losing a race may coexist briefly
                exclusive.add(dataset_id)
        return [{"id": i, "type": "EXCLUSIVE" if i in exclusive else "SHARED", "count": n}
                for i, n in counts.items()]

    def holders(self, dataset_ids: Iterable[int], but: str | None = None
                ) -> dict[int, set[str]]:
        """The live holders of locks on each of the datasets that has any (readers, writers
        and jobs alike), leaving out ``but`` (the caller's own)."""
        t = self.t
        cutoff = utcnow() - self.stale
        out: dict[int, set[str]] = {}
        with self.db.connect() as conn:
            for batch in chunks(set(dataset_ids)):
                cond = [t.c.dataset_id.in_(batch), t.c.heartbeat >= cutoff]
                if but is not None:
                    cond.append(t.c.holder != but)
                for ds, holder in conn.execute(select(t.c.dataset_id, t.c.holder)
                                               .where(and_(*cond))):
                    out.setdefault(int(ds), set()).add(holder)
        return out

    def any_alive(self, holders: Iterable[str]) -> bool:
        """Whether any of these holders still holds a live lock (not released, its process
        not dead)."""
        return self._any_live(self.t.c.holder, holders)

    def held(self, dataset_ids: Iterable[int]) -> bool:
        """Whether any live lock is held on the datasets (for tests and diagnostics)."""
        return self._any_live(self.t.c.dataset_id, dataset_ids)

    def _any_live(self, column: Any, values: Iterable[Any]) -> bool:
        """Whether a lock whose heartbeat is not stale has ``column`` among ``values``."""
        cutoff = utcnow() - self.stale
        with self.db.connect() as conn:
            for batch in chunks(set(values)):
                if conn.execute(select(column).where(
                        column.in_(batch), self.t.c.heartbeat >= cutoff)
                        .limit(1)).first() is not None:
                    return True
        return False
