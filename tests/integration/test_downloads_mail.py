"""The download mails, on every backend, through a real SMTP server started by the tests
(aiosmtpd): the ready mail with every placeholder filled and sent once, the delivered mail
when configured, a mail server down then up (the mail goes after a retry, exactly once),
STARTTLS with login, a bad address, no mail server configured."""

from __future__ import annotations

import datetime
import email
import ipaddress
import logging
import uuid
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import insert, select

from cairn.config import DownloadSettings, MailSettings, TransportSettings
from cairn.db import migrate
from cairn.db.engine import Database
from cairn.db.tables import TABLES
from cairn.downloads.delivery import Delivery
from cairn.downloads.mail import MAIL, MAX_ATTEMPTS, Mailer, human_size, request_mail
from cairn.downloads.model import Status
from cairn.jobs import Job, Scheduler, State
from tests.conftest import BACKENDS, make_database
from tests.integration.server import free_port

DOWNLOAD = TABLES.downloads.download
PUBLIC = "https://cairn.example.org:8443/"
ALL = ("e=${email} u=${userName} f=${facilityName} p=${preparedId} n=${fileName} "
       "s=${size} url=${downloadUrl} c=${customValue} left=${unknown}")


class Inbox:
    """An aiosmtpd handler keeping what it receives."""

    def __init__(self) -> None:
        self.mails: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append((envelope.mail_from, list(envelope.rcpt_tos),
                           email.message_from_bytes(envelope.original_content)))
        return "250 OK"


@pytest.fixture(scope="module", params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
       ) -> Iterator[Database]:
    url, drop = make_database(str(request.param),
                              tmp_path_factory.mktemp(f"mail-{request.param}"), migrated=True)
    database = Database(url)
    try:
        migrate.upgrade(database)
        yield database
    finally:
        database.dispose()
        drop()  # type: ignore[operator]


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()


def settings(port: int, **mail: Any) -> DownloadSettings:
    return DownloadSettings(
        transports={"https": TransportSettings(),
                    "globus": TransportSettings(ids_url="https://ids.example.org/ids/")},
        mail=MailSettings(smtp_host="127.0.0.1", smtp_port=port, sender="cairn@example.org",
                          **mail))


def add_download(db: Database, **values: Any) -> int:
    row = dict(facility="LILS", user="db/jdoe", full_name=None, transport="https",
               file_name="run 42", prepared_id=str(uuid.uuid4()), email="jane@example.org",
               is_email_sent=False, status=Status.COMPLETE.value, priority=1, size=1_536_000,
               is_two_level=False, created=db.now(), is_deleted=False, bytes_sent=0)
    row.update(values)
    with db.begin() as conn:
        key = conn.execute(insert(DOWNLOAD).values(**row)).inserted_primary_key
    assert key is not None
    return int(key[0])


def row(db: Database, download_id: int) -> Any:
    with db.connect() as conn:
        return conn.execute(select(DOWNLOAD).where(DOWNLOAD.c.id == download_id)).one()


def body(mail: Message) -> str:
    payload = mail.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode().replace("\r\n", "\n").rstrip("\n")


def scheduler(db: Database, mailer: Mailer) -> Scheduler:
    jobs = Scheduler(db)
    jobs.register(*mailer.job_kinds())
    return jobs


def request(jobs: Scheduler, download_id: int, event: str = "ready") -> Job:
    with jobs.queue.db.begin() as conn:
        job_id = request_mail(jobs, conn, download_id, event)
    job = jobs.queue.get(job_id)
    assert job is not None
    return job


def state(jobs: Scheduler, job: Job) -> Job:
    now = jobs.queue.get(job.id)
    assert now is not None
    return now


def run(jobs: Scheduler) -> int:
    return jobs.run_pending([MAIL])


def test_ready_mail_fills_every_placeholder_once(db: Database,
                                                 smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    mailer = Mailer(db, settings(port, subject="${fileName} is ready,\n ${userName}",
                                 body=ALL,
                                 transport_bodies={"globus": "globus: ${downloadUrl}"}),
                    PUBLIC)
    jobs = scheduler(db, mailer)
    dl = add_download(db, full_name="Jane Doe", custom_value="token-7")
    pid = row(db, dl).prepared_id
    job = request(jobs, dl)
    assert run(jobs) == 1
    assert state(jobs, job).state is State.DONE
    ((sender, to, mail),) = inbox.mails
    assert (sender, to) == ("cairn@example.org", ["jane@example.org"])
    assert (mail["From"], mail["To"]) == ("cairn@example.org", "jane@example.org")
    assert mail["Subject"] == "run 42 is ready, Jane Doe"  # one line, whatever the name
    assert body(mail) == (
        f"e=jane@example.org u=Jane Doe f=LILS p={pid} n=run 42 s=1.5 MB "
        f"url=https://cairn.example.org:8443/ids/getData?preparedId={pid}&outname=run+42 "
        "c=token-7 left=${unknown}")
    assert row(db, dl).is_email_sent

    # Asked again (a restart, a second poll): never a second ready mail.
    again = request(jobs, dl)
    assert run(jobs) == 1 and state(jobs, again).state is State.DONE
    assert len(inbox.mails) == 1

    # Another transport: its body and its data service; no full name: the user name.
    other = add_download(db, transport="globus", file_name="big.zip", custom_value=None)
    request(jobs, other)
    assert run(jobs) == 1
    other_pid = row(db, other).prepared_id
    assert body(inbox.mails[1][2]) == (
        f"globus: https://ids.example.org/ids/getData?preparedId={other_pid}"
        "&outname=big.zip")
    assert inbox.mails[1][2]["Subject"] == "big.zip is ready, db/jdoe"

    # Expired before the mail could go: no mail with a dead link.
    expired = add_download(db, status=Status.EXPIRED.value)
    request(jobs, expired)
    assert run(jobs) == 1
    assert len(inbox.mails) == 2 and not row(db, expired).is_email_sent


def test_delivered_mail_when_configured(db: Database, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    on = settings(port, on_delivered=True)
    jobs = scheduler(db, Mailer(db, on, PUBLIC))
    dl = add_download(db, size=-1)
    pid = row(db, dl).prepared_id
    assert Delivery(db, on, jobs).record(pid, 0, 500, 500) == [dl]
    assert run(jobs) == 1
    ((_, to, mail),) = inbox.mails
    assert to == ["jane@example.org"]
    assert mail["Subject"] == "Your download run 42 has been delivered"
    # The data's size unknown (-1): the delivered file's.
    assert "all 500 bytes of run 42 have been delivered" in body(mail)
    assert not row(db, dl).is_email_sent  # that flag is the ready mail's

    # Not configured: delivered all the same, and no mail is even requested.
    off = settings(port)
    jobs = scheduler(db, Mailer(db, off, PUBLIC))
    quiet = add_download(db)
    assert Delivery(db, off, jobs).record(row(db, quiet).prepared_id, 0, 9, 9) == [quiet]
    assert row(db, quiet).status == "DELIVERED"
    assert not [j for j in jobs.queue.find(kind=MAIL) if j.payload["download"] == quiet]


def test_mail_server_down_then_up_sends_once(db: Database) -> None:
    port = free_port()  # nothing listens there yet
    s = settings(port)
    assert Mailer(db, s, PUBLIC).job_kinds()[0].retry_delay(1) == 60  # in production
    assert Mailer(db, s, PUBLIC).job_kinds()[0].max_attempts == MAX_ATTEMPTS
    jobs = scheduler(db, Mailer(db, s, PUBLIC, retry_delay=lambda failures: 0))
    dl = add_download(db)
    job = request(jobs, dl)
    assert run(jobs) == 1
    failed = state(jobs, job)
    assert (failed.state, failed.attempts) == (State.QUEUED, 1)
    assert failed.error is not None
    assert f"Could not send the mail about download {dl} through 127.0.0.1:{port}" \
        in failed.error
    # The download went on regardless.
    assert (row(db, dl).status, row(db, dl).is_email_sent) == ("COMPLETE", False)

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        assert run(jobs) == 1
        assert run(jobs) == 0
    finally:
        controller.stop()
    done = state(jobs, job)
    assert (done.state, done.attempts) == (State.DONE, 1)
    assert len(inbox.mails) == 1
    assert row(db, dl).is_email_sent


@pytest.mark.parametrize("address", ["not an address", "Jane <jane@example.org>",
                                     "jane@", "jane@@example.org", "jäne@example.org"])
def test_a_bad_address_fails_clearly(db: Database, smtp: tuple[Inbox, int],
                                     address: str) -> None:
    inbox, port = smtp
    jobs = scheduler(db, Mailer(db, settings(port), PUBLIC))
    dl = add_download(db, email=address)
    job = request(jobs, dl)
    assert run(jobs) == 1
    failed = state(jobs, job)
    assert failed.state is State.FAILED
    assert failed.error == (f"Download {dl}: {address!r} is not a valid e-mail address; "
                            "no mail sent")
    assert not inbox.mails


def test_no_mail_server_configured_sends_nothing(db: Database,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    jobs = scheduler(db, Mailer(db, DownloadSettings(), PUBLIC))
    downloads = [add_download(db), add_download(db)]
    with caplog.at_level(logging.INFO, logger="cairn.downloads.mail"):
        requested = [request(jobs, dl) for dl in downloads]
        assert run(jobs) == 2
    assert all(state(jobs, j).state is State.DONE for j in requested)
    assert not any(row(db, dl).is_email_sent for dl in downloads)
    assert sum("smtp_host is not set" in r.getMessage() for r in caplog.records) == 1


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the client trusts it via SSL_CERT_FILE)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_starttls_and_login(db: Database, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    import ssl

    cert_file, key_file = _certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_file, key_file)
    logins: list[tuple[bytes, bytes, bool]] = []

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        logins.append((auth_data.login, auth_data.password, session.ssl is not None))
        return AuthResult(success=auth_data == LoginPassword(b"cairn", b"s3cret"))

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(),
                            tls_context=server_tls, require_starttls=True,
                            authenticator=authenticate, auth_required=True)
    controller.start()
    try:
        s = settings(controller.port, starttls=True, username="cairn", password="s3cret")
        jobs = scheduler(db, Mailer(db, s, PUBLIC))
        dl = add_download(db)
        job = request(jobs, dl)
        assert run(jobs) == 1
        assert state(jobs, job).state is State.DONE, state(jobs, job).error
    finally:
        controller.stop()
    assert logins == [(b"cairn", b"s3cret", True)]  # logged in over TLS only
    assert len(inbox.mails) == 1


def test_human_sizes() -> None:
    assert [human_size(n) for n in (0, 1, 999, 1000, 1_536_000, 123_456_789, 999_960,
                                    12 * 10**12, 5 * 10**18)] == \
        ["0 bytes", "1 byte", "999 bytes", "1.0 kB", "1.5 MB", "123 MB", "1.0 MB",
         "12.0 TB", "5000 PB"]
