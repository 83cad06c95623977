"""Logging for ``cairn serve`` and the tools: plain text or JSON lines, never a secret.

Every record passes :class:`RedactFilter` on its way to the handler, whoever logged it (Cairn,
uvicorn's access and error logs, SQLAlchemy, a plugin): session ids and prepared ids (UUIDs),
``password=…`` and other credential shapes, SOAP and JSON login credentials, passwords in
database URLs, and the secrets of the configuration itself are replaced by ``…`` in the
message, the arguments and the traceback. Redaction works on shapes, so it errs towards
hiding: every UUID goes, not only live session ids.

``[logging] format = "json"`` writes one JSON object per line: ``time`` (UTC, ISO 8601),
``level``, ``logger``, ``message``, the request being served when there is one
(``request_id``, ``method``, ``path``, ``client``), the fields of an access line (``status``,
``http_version``) and ``exception``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import urllib.parse
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal
from xml.sax.saxutils import escape as xml_escape

import orjson

from cairn.config import ConfigError

if TYPE_CHECKING:
    from cairn.config import Settings

MASK = "…"

#: A UUID as Cairn makes session ids and prepared ids (any case).
_UUID = re.compile(r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
#: Names whose values are secrets, wherever a key-value shape carries them.
_KEYS = (r"password|passwd|pwd|secret|secret_?key|access_?key|api_?key|token|"
         r"session_?id|prepared_?id|credentials?")
#: Lower-case substrings without which no key of :data:`_KEYS` can be in a text.
_KEY_HINTS = ("pass", "pwd", "secret", "key", "token", "session", "prepared", "credential")
#: ``password=x``, ``"password": "x"``, ``'password': 'x'``, ``password: x`` (JSON, forms,
#: query strings, Python reprs, YAML). The value is a quoted string or runs to a separator.
_KEY_VALUE = re.compile(
    rf"""(?ix)
    (?=["'psatc])                                 # cheap: where a key may start
    (["']?\b(?:{_KEYS})\b["']?\s*[:=]\s*)          # the key and its separator
    ("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|(?![\[{{])[^\s&,;'"}}\]<]+)   # its value
    """)
#: The same inside a URL-encoded form field (``json=%7B%22password%22%3A%22x%22%7D``).
_KEY_VALUE_ENCODED = re.compile(
    rf"(?i)((?:%22|%27)(?:{_KEYS})(?:%22|%27)(?:\+|%20)*%3A(?:\+|%20)*(?:%22|%27))"
    r"((?:(?!%22|%27).)*)")
#: SOAP's ``<key>password</key><value>x</value>`` (login credentials), any namespace prefix.
_XML_ENTRY = re.compile(
    rf"(?is)(<(?:[\w.-]+:)?key>\s*(?:{_KEYS})\s*</(?:[\w.-]+:)?key>\s*<(?:[\w.-]+:)?value>)"
    r"(.*?)(?=</(?:[\w.-]+:)?value>)")
#: ``<password>x</password>``: a secret as an XML element of its own.
_XML_ELEMENT = re.compile(rf"(?i)(<(?:[\w.-]+:)?(?:{_KEYS})>)([^<]+)(?=</)")
#: ``scheme://user:password@host``: a database or storage URL with its password.
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s]*:)([^@\s/]+)(?=@)")
#: ``Authorization: Bearer x`` and ``Basic x``.
_AUTHORIZATION = re.compile(r"(?i)\b((?:bearer|basic)\s+)([A-Za-z0-9._~+/=-]{8,})")


def _quoted(m: re.Match[str]) -> str:
    value = m.group(2)
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{m.group(1)}{quote}{MASK}{quote}"


class Redactor:
    """Replaces secrets in text: known shapes, and ``literals`` (the configuration's own
    secrets) in the forms they travel in (plain, URL-encoded, JSON and XML escaped)."""

    #: Shorter literals are not hidden: they would mask ordinary words.
    MIN_LITERAL = 4

    def __init__(self, literals: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for secret in literals:
            if len(secret) < self.MIN_LITERAL:
                continue
            forms.update((secret, urllib.parse.quote_plus(secret),
                          urllib.parse.quote(secret, safe=""), json.dumps(secret)[1:-1],
                          xml_escape(secret)))
        # Longest first, so that a secret containing another is hidden whole; on word
        # edges, so that a password that is also a word does not mask longer words.
        self._forms = tuple(forms)
        self._literals = re.compile(
            "|".join(rf"(?<![\w]){re.escape(f)}(?![\w])"
                     for f in sorted(forms, key=len, reverse=True))) if forms else None

    def __call__(self, text: str) -> str:
        # Each pattern runs only where a plain substring test says it may match: most lines
        # hold no secret, and the access log writes one line per request.
        if self._literals is not None and any(f in text for f in self._forms):
            text = self._literals.sub(MASK, text)
        if text.count("-") >= 4:
            text = _UUID.sub(MASK, text)
        low = text.lower()
        if any(k in low for k in _KEY_HINTS):
            text = _KEY_VALUE.sub(_quoted, text)
            if "%" in text:
                text = _KEY_VALUE_ENCODED.sub(rf"\1{MASK}", text)
            if "<" in text:
                text = _XML_ENTRY.sub(rf"\1{MASK}", text)
                text = _XML_ELEMENT.sub(rf"\1{MASK}", text)
        if "://" in text:
            text = _URL_PASSWORD.sub(r"\1***", text)
        if "bearer" in low or "basic" in low:
            text = _AUTHORIZATION.sub(rf"\1{MASK}", text)
        return text


def _redact_value(redact: Redactor, value: object) -> object:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact(str(value))


class RedactFilter(logging.Filter):
    """Hides secrets in every record that reaches the handler it is attached to."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redact = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: let logging report it as usual
            return True
        clean = self.redact(message)
        if clean != message and not self._redact_access_args(record):
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


    def _redact_access_args(self, record: logging.LogRecord) -> bool:
        """Redact an access record argument by argument, keeping its fields for the JSON
        formatter; False if it is not one, or if its secret spans arguments."""
        if not _is_access(record):
            return False
        assert isinstance(record.args, tuple)
        args = tuple(_redact_value(self.redact, a) for a in record.args)
        try:
            message = str(record.msg) % args
        except (TypeError, ValueError):
            return False
        if self.redact(message) != message:
            return False
        record.args = args
        return True


def _is_access(record: logging.LogRecord) -> bool:
    """uvicorn's access record: (client, method, target, http version, status)."""
    return record.name == "uvicorn.access" and isinstance(record.args, tuple) \
        and len(record.args) == 5


# -- the request being served --------------------------------------------------------------


@dataclass(frozen=True)
class RequestInfo:
    request_id: str
    method: str
    #: The raw target; redacted when written.
    path: str
    client: str | None


#: Set by the web layer for the time of a request (worker threads inherit it).
CURRENT_REQUEST: ContextVar[RequestInfo | None] = ContextVar("cairn_request", default=None)

#: LogRecord attributes that are not extra fields.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName",
    "color_message"}  # uvicorn's message again, with terminal colours


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redact = redactor

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request = CURRENT_REQUEST.get()
        if request is not None:
            out["request_id"] = request.request_id
            out["method"] = request.method
            out["path"] = self.redact(request.path)
            if request.client:
                out["client"] = request.client
        if _is_access(record):
            assert isinstance(record.args, tuple)
            client, method, target, version, status = record.args
            out.update(client=client, method=method, path=target, http_version=version,
                       status=status)
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out:
                out[key] = _redact_value(self.redact, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.redact(self.formatException(record.exc_info))
        if record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        return orjson.dumps(out, default=str).decode()


# -- set-up --------------------------------------------------------------------------------

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: uvicorn's extra level, below DEBUG.
TRACE = 5
Format = Literal["text", "json"]


def level_number(level: str | int) -> int:
    """A level name as ``--log-level`` takes it (any case; uvicorn's ``trace`` too)."""
    if isinstance(level, int):
        return level
    names = {**logging.getLevelNamesMapping(), "TRACE": TRACE}
    number = names.get(level.upper())
    if number is None:
        choices = ", ".join(n.lower() for n in ("critical", "error", "warning", "info",
                                                  "debug", "trace"))
        raise ConfigError(f"unknown log level {level!r}; choose one of {choices}")
    return number


def configured_secrets(settings: Settings) -> list[str]:
    """The secrets a configuration holds: hidden verbatim wherever they would be logged."""
    from sqlalchemy.engine import make_url

    from cairn.startup import ROOT_PASSWORD_ENV  # here: startup imports every room

    found = [settings.publishing.password, settings.downloads.mail.password,
             settings.data.s3_secret_key or "", settings.data.s3_access_key or "",
             settings.data.key or "", settings.metrics.token]
    with contextlib.suppress(Exception):  # an unparsable URL fails later, with its message
        found.append(make_url(settings.database_url).password or "")
    for authn in settings.authn.values():
        found.extend(authn.users.values())
    found.append(os.environ.get(ROOT_PASSWORD_ENV, ""))
    return [s for s in found if s]


#: The handler :func:`setup` installed, replaced when it is called again.
_handler: logging.Handler | None = None


def setup(level: str | int = "info", fmt: Format = "text",
          secrets: Iterable[str] = ()) -> None:
    """Log to standard error, in ``fmt``, with every secret hidden.

    ``level`` lowers the threshold below INFO when asked (``debug``, ``trace``); a higher one
    is left to uvicorn's own loggers (``--log-level warning`` quiets the access log), so that
    Cairn's INFO lines, which operators and tests rely on, stay.
    """
    global _handler
    number = level_number(level)
    redactor = Redactor(secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(redactor) if fmt == "json"
                         else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RedactFilter(redactor))
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    root.addHandler(handler)
    _handler = handler
    root.setLevel(min(number, logging.INFO))
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per migration is noise
