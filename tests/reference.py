"""Files of the shared specification folder (``reference/``), found one way by every test.

The folder is ``$CAIRN_REFERENCE`` when that is set, else ``<repository>/../shared/reference``.
A test that needs a file calls :func:`reference_file`; when the file is absent the test is
skipped with a reason naming the file and the variable, so the gap shows in ``pytest -rs``
(as CI runs it) instead of passing silently::

    from tests.reference import reference_file

    def test_xsd_matches_reference() -> None:
        xsd = reference_file("data/icat-6.2-reconstructed.xsd")
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: The environment variable naming the reference folder.
ENV = "CAIRN_REFERENCE"
#: Where the folder is when the variable is not set: beside the repository.
DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "reference"


def reference_dir() -> Path:
    """The reference folder (which may be missing)."""
    override = os.environ.get(ENV)
    return Path(override).expanduser() if override else DEFAULT


def reference_path(relative: str) -> Path:
    """Where the reference file ``relative`` (e.g. ``"data/icat-6.2-entities.json"``) is or
    would be; no check. For collection-time use, where a skip is not possible."""
    return reference_dir() / relative


def reference_file(relative: str) -> Path:
    """The reference file ``relative``; skips the calling test when it is absent."""
    path = reference_path(relative)
    if not path.is_file():
        where = f"${ENV}={os.environ[ENV]}" if os.environ.get(ENV) else f"{ENV} not set"
        # pytest reports this skip at this line: name the test it stops.
        test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
        pytest.skip(f"{test + ': ' if test else ''}reference file {relative} not found at "
                    f"{path} ({where}; set {ENV} to the folder holding the shared reference "
                    "to run this test)")
    return path
