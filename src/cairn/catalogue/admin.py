"""icat.server's calls for administrators and testers (§4.1, §4.7): a query run without
authorization, waits, and the gatekeeper's "your cached rules are stale".

``jpql`` and ``waitMillis`` are for root users only (``rootUserNames``); ``sleep`` and the
gatekeeper calls need no session, as in icat.server. Waiting itself is the adapter's business:
it should not hold a worker thread for the length of the wait.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any, Literal

from cairn.errors import bad_parameter, insufficient_privileges
from cairn.query import ast
from cairn.query.execute import queries_for, run
from cairn.query.parser import parse_jpql

if TYPE_CHECKING:
    from cairn.catalogue.service import Catalogue
    from cairn.catalogue.work import Work

log = logging.getLogger(__name__)

#: Results of ``jpql`` when the caller names no ``max`` (icat.server's default).
JPQL_MAX = 5
#: The longest wait ``waitMillis`` and ``sleep`` accept: a day. icat.server sets none, but an
#: unbounded one would overflow the event loop's clock.
MAX_WAIT_SECONDS = 86_400


def _require_root(work: Work) -> None:
    if not work.root:
        raise insufficient_privileges("user must be in rootUserNames")


def require_root(catalogue: Catalogue, sid: str | None) -> None:
    """SESSION for a bad session, INSUFFICIENT_PRIVILEGES unless its user is root."""
    if not catalogue.is_root(catalogue.session(sid).user):
        raise insufficient_privileges("user must be in rootUserNames")


def jpql(catalogue: Catalogue, sid: str | None, query: str | None, most: int | None
         ) -> list[Any]:
    """The first ``most`` (icat.server's ``max``, default 5) results of a JPQL-style query
    run as it is, with no authorization and no INCLUDE (icat.server's ``/icat/jpql``, a tool
    for testing): what :func:`cairn.query.execute.run` returns, entities as :class:`Obj`
    without relations."""
    with catalogue.as_user(sid, read_only=True) as work:
        _require_root(work)
        if query is None:
            raise bad_parameter("query is not set")
        wanted = JPQL_MAX if most is None else most
        limit = work.max_entities
        if not 1 <= wanted <= limit:
            raise bad_parameter(f"max must be between 1 and {limit} (maxEntities), "
                                f"not {wanted}")
        sel = parse_jpql(query)
        # The query's own LIMIT, if any, within ``wanted`` rows.
        offset, count = (sel.limit.offset, sel.limit.count) if sel.limit else (0, None)
        count = wanted if count is None else min(count, wanted)
        sel = dataclasses.replace(sel, limit=ast.Limit(offset, count), include=None)
        return run(work, queries_for(work.db).compile(sel), wanted)


def wait_seconds(amount: int, unit: Literal["ms", "seconds"]) -> float:
    """A wait of ``amount`` milliseconds or seconds, in seconds; BAD_PARAMETER naming the
    parameter when it is negative or longer than :data:`MAX_WAIT_SECONDS`."""
    scale = 1000 if unit == "ms" else 1
    if not 0 <= amount <= MAX_WAIT_SECONDS * scale:
        raise bad_parameter(f"{unit} must be between 0 and {MAX_WAIT_SECONDS * scale}, "
                            f"not {amount}")
    return amount / scale


def mark_rules_stale(catalogue: Catalogue, what: str, caller: str | None) -> None:
    """Read rules, public tables and public steps again on their next use (icat.server's
    ``gatekeeper/markPublic…Stale``, sent by a cluster peer after it changed them).

    Cairn needs no such call: every process reads them again within a second of their
    change (:mod:`cairn.authz.policy`). It is honoured all the same, from anyone (forgetting
    a cache is harmless), and logged as icat.server logs it."""
    log.info("%s marked stale at the request of %s", what, caller or "an unknown address")
    catalogue.authz.invalidate()
