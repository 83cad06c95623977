"""The access log without secrets: session ids (and prepared ids, bearer tokens of a
download) travel in query strings, and uvicorn logs the whole target of every request."""

from __future__ import annotations

import logging
import re

#: ``sessionId=…`` and ``preparedId=…`` in a request target, any case, up to the next ``&``.
_SECRET = re.compile(r"(?i)((?:^|[?&])(?:sessionid|preparedid)=)[^&#\s]*")
#: ICAT's REST API puts the session id in the path of ``/icat/session/{sessionId}``.
_SESSION_PATH = re.compile(r"(?i)(/icat/session/)[^/?#\s]+")


def hide_secrets(target: str) -> str:
    """``target`` with the values of its secret parameters replaced by ``…``."""
    return _SESSION_PATH.sub(r"\1…", _SECRET.sub(r"\1…", target))


class HideSecrets(logging.Filter):
    """For ``uvicorn.access``, whose records carry (client, method, target, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], hide_secrets(args[2]), *args[3:])
        return True


def install() -> None:
    logging.getLogger("uvicorn.access").addFilter(HideSecrets())
