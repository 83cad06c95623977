"""A change listener for the tests, loaded into a server as a plugin: every committed change
becomes a line ``<entity> <kind> <id>`` of the file named by CAIRN_TEST_CHANGES_LOG."""

from __future__ import annotations

import os

from cairn.catalogue.changes import ChangeListener, Changes
from cairn.startup import Cairn


class ToFile(ChangeListener):
    def __init__(self, path: str) -> None:
        self.path = path

    def committed(self, changes: Changes) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.writelines(f"{c.entity} {c.kind} {c.id}\n" for c in changes)


def setup(cairn: Cairn) -> None:
    cairn.catalogue.listeners.add(ToFile(os.environ["CAIRN_TEST_CHANGES_LOG"]))
