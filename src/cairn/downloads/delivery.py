"""Delivery confirmed: which bytes of each download's file have gone out, across resumed
range requests, and DELIVERED once every one of them has.

TopCat's COMPLETE only says "ready". Cairn's data service reports, once per getData response
of a prepared id, the bytes ``[start, end)`` of the body it actually handed to the client
(:meth:`cairn.ids.service.DataService.on_delivery`). :class:`Delivery` merges that span into
``sent_ranges`` (JSON ``[[a, b), ...]``, sorted, disjoint, touching spans joined) of every
download with that prepared id, keeps ``bytes_sent`` as the bytes covered (a byte sent twice
counts once) and, when ``[0, length)`` is covered, moves a COMPLETE download to DELIVERED with
the time, and requests the "delivered" mail if configured.

This is sound because a prepared download's body is the same bytes on every request: the
STORED zip is laid out from the prepared snapshot alone (names, sizes, CRCs and times of the
catalogue), with an exact length and a strong ETag, so spans sent by different requests are
pieces of one file. A report whose length differs from the one recorded is of another body
(a file's size in storage changed, so the layout did): the spans recorded so far are dropped.

Every change is a compare-and-set on the row (retried on conflict), so concurrent range
requests of one download never lose each other's spans, on any backend.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from functools import partial

from sqlalchemy import Table, false, select, update

from cairn.config import DownloadSettings
from cairn.db.engine import Database
from cairn.downloads.mail import request_mail
from cairn.downloads.model import Status
from cairn.jobs import Scheduler
from cairn.jobs.model import Conflict, retrying, utcnow

log = logging.getLogger(__name__)

Span = tuple[int, int]


def merge(spans: Iterable[Span], new: Span) -> list[Span]:
    """``spans`` (sorted, disjoint) with ``new`` added: sorted, disjoint, touching joined."""
    out: list[Span] = []
    a, b = new
    placed = b <= a  # an empty span adds nothing
    for s, e in spans:
        if placed or e < a:
            out.append((s, e))
        elif b < s:
            out.extend([(a, b), (s, e)])
            placed = True
        else:  # overlaps or touches: grow the new span
            a, b = min(a, s), max(b, e)
    if not placed:
        out.append((a, b))
    return out


def covered(spans: Iterable[Span]) -> int:
    return sum(e - s for s, e in spans)


def complete(spans: Sequence[Span], length: int) -> bool:
    return length == 0 or (len(spans) == 1 and spans[0] == (0, length))


def loads(text: str | None) -> list[Span]:
    return [] if not text else [(int(s), int(e)) for s, e in json.loads(text)]


def dumps(spans: Iterable[Span]) -> str:
    return json.dumps([[s, e] for s, e in spans], separators=(",", ":"))


class Delivery:
    """Records what was sent of downloads; register it with ``DataService.on_delivery``.

    ``jobs`` requests the "delivered" mail (with ``[downloads.mail] on_delivered``); the
    mail kind (:mod:`cairn.downloads.mail`) must be registered on it.
    """

    def __init__(self, db: Database, settings: DownloadSettings,
                 jobs: Scheduler | None = None) -> None:
        self.db = db
        self.settings = settings
        self.jobs = jobs
        self.t: Table = db.tables.downloads.download

    def __call__(self, prepared_id: str, start: int, end: int, length: int | None) -> None:
        self.record(prepared_id, start, end, length)

    def record(self, prepared_id: str, start: int, end: int,
               length: int | None) -> list[int]:
        """Add bytes ``[start, end)`` of a body of ``length`` bytes (None: unknown) to the
        downloads of ``prepared_id``; the ids of those that became DELIVERED."""
        t = self.t
        with self.db.read() as conn:
            ids = list(conn.execute(select(t.c.id).where(
                t.c.prepared_id == prepared_id, t.c.is_deleted == false(),
                t.c.status != Status.DELIVERED.value)).scalars())
        done = [i for i in ids if retrying(partial(self._add, i, start, end, length))]
        if done and self._mails():
            assert self.jobs is not None
            self.jobs.wake()
        return done

    def _mails(self) -> bool:
        mail = self.settings.mail
        return self.jobs is not None and mail.enabled and mail.on_delivered

    def _add(self, download_id: int, start: int, end: int, length: int | None) -> bool:
        """One compare-and-set of one download; True if it became DELIVERED."""
        t = self.t
        with self.db.begin() as conn:
            row = conn.execute(select(t.c.status, t.c.length, t.c.sent_ranges,
                                      t.c.bytes_sent, t.c.email)
                               .where(t.c.id == download_id)).first()
            if row is None or row.status == Status.DELIVERED.value:
                return False
            spans = loads(row.sent_ranges)
            total = row.length if length is None else length
            if length is not None and row.length is not None and length != row.length:
                log.warning("download %d: its file is now %d bytes, not %d; what was sent "
                            "of the old one no longer counts", download_id, length, row.length)
                spans = []
            lo, hi = max(0, start), end if total is None else min(end, total)
            spans = merge(spans, (lo, hi))
            became = (total is not None and complete(spans, total)
                      and row.status == Status.COMPLETE.value)
            if not became and spans == loads(row.sent_ranges) and total == row.length:
                return False  # nothing new (a byte sent again counts once)
            values: dict[str, object] = {"sent_ranges": dumps(spans),
                                         "bytes_sent": covered(spans), "length": total}
            if became:
                values.update(status=Status.DELIVERED.value, delivered=utcnow())
            same = (t.c.sent_ranges.is_(None) if row.sent_ranges is None
                    else t.c.sent_ranges == row.sent_ranges)
            result = conn.execute(update(t).where(
                t.c.id == download_id, t.c.status == row.status, same,
                t.c.bytes_sent == row.bytes_sent,
                t.c.length.is_(None) if row.length is None else t.c.length == row.length,
            ).values(**values))
            if result.rowcount != 1:
                raise Conflict(f"download {download_id} changed meanwhile")
            if became:
                log.info("download %d delivered: all %d bytes have gone out", download_id,
                         total)
                if self._mails() and row.email:
                    assert self.jobs is not None
                    request_mail(self.jobs, conn, download_id, "delivered")
            return became
