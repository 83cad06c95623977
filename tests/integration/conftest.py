from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import BACKENDS, make_database
from tests.integration.server import Server


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real Cairn process on a free port, one per backend and test module."""
    tmp = tmp_path_factory.mktemp(f"cairn-{request.param}")
    url, drop = make_database(str(request.param), tmp)
    srv = Server(tmp, url)
    try:
        yield srv
    finally:
        srv.stop()
        drop()  # type: ignore[operator]
