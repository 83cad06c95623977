"""Bounded waits for something a test can observe.

A test that needs the server (or a helper process) to have done something waits for the
evidence of it: a log line, a file, a row, an HTTP answer. :func:`wait_until` polls such a
condition and fails with a message naming what never happened, never a fixed sleep standing
in for "it has happened by now".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A condition a test waited for did not come true before its deadline."""


def wait_until(condition: Callable[[], T], within: float, what: str, *, step: float = 0.05,
               detail: Callable[[], object] | None = None) -> T:
    """Poll ``condition`` until it returns something true and return that.

    Fails with :class:`WaitTimeout` after ``within`` seconds, naming ``what`` was awaited
    (phrase it as the thing that should have happened: "the server to log the cut upload")
    and adding ``detail()`` (e.g. the server log's tail) when given. ``step`` is only the
    polling interval; nothing relies on it having been long enough.
    """
    start = time.monotonic()
    while True:
        value = condition()
        if value:
            return value
        elapsed = time.monotonic() - start
        if elapsed >= within:
            message = f"timed out after {elapsed:.1f} s waiting for {what}"
            if detail is not None:
                message += f"\n{detail()}"
            raise WaitTimeout(message)
        time.sleep(min(step, max(within - elapsed, 0.001)))
