from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.conftest import BACKENDS, make_database
from tests.integration.portal_support import Browser
from tests.integration.server import Server


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real Cairn process on a free port, one per backend and test module."""
    tmp = tmp_path_factory.mktemp(f"cairn-{request.param}")
    url, drop = make_database(str(request.param), tmp, migrated=True)
    srv = Server(tmp, url)
    try:
        yield srv
    finally:
        srv.stop()
        drop()  # type: ignore[operator]


@pytest.fixture
def browser_factory() -> Iterator[Callable[[Server], Browser]]:
    """Makes portal clients (:class:`Browser`) on a server, closed after the test."""
    made: list[Browser] = []

    def make(srv: Server) -> Browser:
        b = Browser(srv)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()
