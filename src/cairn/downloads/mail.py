"""E-mail about downloads: "ready" (TopCat's one mail) and, with ``[downloads.mail]
on_delivered``, "delivered" (every byte has gone out, :mod:`cairn.downloads.delivery`).

A mail is a durable job (:data:`MAIL`, payload ``{"download": id, "event": "ready"}``),
requested with :func:`request_mail` in the transaction of the change that causes it. So a mail
server that is down delays the mail, never the download: the job fails, is retried with
back-off for days, and the download's status moved on long before. The ready mail is sent once
(``is_email_sent``); without an SMTP server configured the job does nothing.

Subject and body are the configured templates with TopCat's placeholders (§4.6):
``${email} ${userName}`` (the full name when known) ``${facilityName} ${preparedId}
${fileName} ${size}`` (human readable) ``${downloadUrl} ${customValue}``. Unknown
placeholders are left as written.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from string import Template
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Connection, Table, false, select, update

from cairn.config import DownloadSettings
from cairn.db.engine import Database
from cairn.downloads.model import Status
from cairn.jobs import Failed, JobContext, Kind, Scheduler, backoff

log = logging.getLogger(__name__)

#: The job kind that sends one mail about one download.
MAIL = "downloads.mail"
EVENTS = ("ready", "delivered")
#: A mail server down for days still gets the mail: about three days of hourly attempts.
MAX_ATTEMPTS = 72
SMTP_TIMEOUT = 30.0
#: Statuses in which the ready mail's link works.
_READY = frozenset({Status.COMPLETE.value, Status.DELIVERED.value})


def request_mail(jobs: Scheduler, conn: Connection, download_id: int, event: str) -> int:
    """Request the ``event`` mail about a download in the caller's transaction. Requests of
    one download and event are merged while they wait and never run at once."""
    if event not in EVENTS:
        raise ValueError(f"unknown mail event {event!r}")
    return jobs.enqueue(conn, MAIL, {"download": download_id, "event": event},
                        key=f"{download_id}:{event}")


_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDRESS = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@{_LABEL}(?:\.{_LABEL})*")


def valid_address(text: str) -> bool:
    """A bare address (``jane@example.org``; no display name, no comments), as TopCat takes
    only those; ASCII only, since SMTPUTF8 is not assumed of the mail server."""
    if len(text) > 254 or not _ADDRESS.fullmatch(text):
        return False
    name, addr = parseaddr(text)
    return not name and addr == text


def human_size(n: int) -> str:
    """Bytes for people: ``512 bytes``, ``1.5 MB``, ``12 GB`` (decimal units, as disks and
    networks count)."""
    if n < 1000:
        return f"{n} byte" if n == 1 else f"{n} bytes"
    value = float(n)
    for unit in ("kB", "MB", "GB", "TB", "PB"):
        value /= 1000
        if value < 999.95 or unit == "PB":
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    raise AssertionError("unreachable")


class MailError(Exception):
    """The mail server could not take the mail now: the job is tried again later."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Mailer:
    """Renders and sends the mails of :data:`MAIL` jobs through the configured SMTP server.

    ``public_url`` is this server's public base URL: download links point at its ``/ids``
    unless the download's transport names another data service (``ids_url``).
    """

    def __init__(self, db: Database, settings: DownloadSettings, public_url: str, *,
                 retry_delay: Callable[[int], float] | None = None) -> None:
        self.db = db
        self.settings = settings
        self.public_url = public_url.rstrip("/")
        self.retry_delay = retry_delay or backoff(60.0, 3600.0)
        self.t: Table = db.tables.downloads.download
        self._said_off = False

    def job_kinds(self) -> list[Kind]:
        return [Kind(MAIL, self.run, max_attempts=MAX_ATTEMPTS, retry_delay=self.retry_delay)]

    # -- the job -----------------------------------------------------------------------------

    def run(self, ctx: JobContext) -> None:
        download_id, event = ctx.payload.get("download"), ctx.payload.get("event")
        if not isinstance(download_id, int) or event not in EVENTS:
            raise Failed(f"Not a mail request: {ctx.payload!r}")
        mail = self.settings.mail
        if not mail.enabled:
            if not self._said_off:
                log.info("no mail about downloads: [downloads.mail] smtp_host is not set")
                self._said_off = True
            return
        row = self._download(download_id)
        if row is None or row.is_deleted:
            log.info("no %s mail: download %d is gone", event, download_id)
            return
        if (event == "ready" and row.is_email_sent) or \
                (event == "delivered" and not mail.on_delivered):
            return
        if event == "ready" and row.status not in _READY:
            # Expired (or re-queued) while the mail server was away: the link is dead.
            log.info("no ready mail: download %d is %s by now", download_id, row.status)
            return
        address = (row.email or "").strip()
        if not address:
            return  # the user asked for no mail
        if not valid_address(address):
            raise Failed(f"Download {download_id}: {address!r} is not a valid e-mail "
                         "address; no mail sent")
        subject, body = self.render(row, event)
        self.send(address, subject, body, about=download_id)
        if event == "ready":
            t = self.t
            with self.db.begin() as conn:
                conn.execute(update(t).where(t.c.id == download_id,
                                             t.c.is_email_sent == false())
                             .values(is_email_sent=True))
        log.info("%s mail about download %d sent", event, download_id)

    def _download(self, download_id: int) -> Any:
        t = self.t
        with self.db.read() as conn:
            return conn.execute(select(
                t.c.id, t.c.facility, t.c.user, t.c.full_name, t.c.transport, t.c.file_name,
                t.c.prepared_id, t.c.email, t.c.is_email_sent, t.c.size, t.c.length,
                t.c.custom_value, t.c.is_deleted, t.c.status).where(t.c.id == download_id)).first()

    # -- rendering ---------------------------------------------------------------------------

    def download_url(self, transport: str, prepared_id: str | None, file_name: str) -> str:
        """Where the mail sends the user: getData of the prepared id, named as submitted."""
        chosen = self.settings.transports.get(transport)
        base = (chosen.ids_url.rstrip("/") if chosen and chosen.ids_url
                else f"{self.public_url}/ids")
        return f"{base}/getData?" + urlencode({"preparedId": prepared_id or "",
                                               "outname": file_name})

    def placeholders(self, row: Any) -> dict[str, str]:
        size = row.size if row.size is not None and row.size >= 0 else row.length
        return {
            "email": row.email or "",
            "userName": row.full_name or row.user,
            "facilityName": row.facility,
            "preparedId": row.prepared_id or "",
            "fileName": row.file_name,
            "size": "unknown size" if size is None else human_size(int(size)),
            "downloadUrl": self.download_url(row.transport, row.prepared_id, row.file_name),
            "customValue": row.custom_value or "",
        }

    def render(self, row: Any, event: str) -> tuple[str, str]:
        """Subject and body of the ``event`` mail about the download ``row``."""
        mail = self.settings.mail
        if event == "ready":
            subject, body = mail.subject, mail.transport_bodies.get(row.transport, mail.body)
        else:
            subject, body = mail.delivered_subject, mail.delivered_body
        values = self.placeholders(row)
        # A header is one line, whatever a file name holds.
        one_line = " ".join(Template(subject).safe_substitute(values).split())
        return one_line, Template(body).safe_substitute(values)

    # -- sending -----------------------------------------------------------------------------

    def send(self, to: str, subject: str, body: str, *, about: int | None = None) -> None:
        """One mail through the SMTP server: STARTTLS (certificate checked) and login when
        configured. A refusal of the address is final (:class:`Failed`); any other trouble
        raises :class:`MailError`, to be tried again."""
        mail = self.settings.mail
        msg = EmailMessage()
        msg["From"] = mail.sender
        msg["To"] = to
        msg["Subject"] = subject
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = make_msgid(domain=mail.sender.rpartition("@")[2] or None)
        msg.set_content(body)
        where = f"{mail.smtp_host}:{mail.smtp_port}"
        what = "a mail" if about is None else f"the mail about download {about}"
        try:
            with smtplib.SMTP(mail.smtp_host, mail.smtp_port, timeout=SMTP_TIMEOUT) as smtp:
                if mail.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if mail.username:
                    smtp.login(mail.username, mail.password)
                smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as e:
            codes = [code for code, _ in e.recipients.values()]
            if codes and all(code >= 500 for code in codes):
                raise Failed(f"The mail server {where} refused the address of {what}: "
                             f"{codes[0]}") from e
            raise MailError(f"The mail server {where} did not take {what} now: "
                            f"{codes}") from e
        except (OSError, smtplib.SMTPException) as e:
            raise MailError(f"Could not send {what} through {where}: "
                            f"{type(e).__name__}: {e}") from e
