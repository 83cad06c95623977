"""Makes a server's search rebuilds slow and fine-grained (blocks of 20 documents, 50 ms
each, the position saved every 0.2 s), so a test can kill the process in the middle of one.
Loaded as a plugin (``[server] plugins``)."""

from __future__ import annotations

import time
from typing import Any

from cairn.startup import Cairn


def setup(cairn: Cairn) -> None:
    assert cairn.search is not None
    index = cairn.search.index
    index.block, index.slice_seconds = 20, 0.2
    replace = index._replace

    def slowly(*args: Any) -> None:
        time.sleep(0.05)
        replace(*args)

    index._replace = slowly  # type: ignore[method-assign]
