"""The fixture catalogue in this process (no HTTP): for the pipeline fuzz test and for
running a corpus query by hand.

``python -m tests.integration.query_corpus.inprocess "SELECT ..."`` prints the JSON Cairn
answers on SQLite (a debugging aid, never a source of expected results).
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cairn.catalogue.service import Catalogue
from cairn.config import AuthnSettings, CatalogueSettings, ServerSettings, Settings
from cairn.errors import IcatError
from cairn.startup import open_catalogue
from cairn.web.entity_json import parse_entities, results, wrap
from cairn.web.json_rows import JsonShape, entity_bytes, results_bytes
from tests.integration.query_corpus import fixture

ROOT = "simple/root"


@dataclass
class Fixture:
    """A catalogue holding the corpus fixture and a root session on it."""

    catalogue: Catalogue
    sid: str

    def search(self, query: str) -> Any:
        """The JSON REST would answer (as Python data)."""
        return results(self.catalogue.search(self.sid, query), self.catalogue.settings.zone)

    def search_json(self, query: str) -> bytes:
        """The bytes REST answers, built straight from the rows (:class:`JsonShape`)."""
        zone = self.catalogue.settings.zone
        return results_bytes(self.catalogue.search(self.sid, query, JsonShape(zone)), zone)

    def get(self, query: str, id: int) -> Any:
        return wrap(self.catalogue.get(self.sid, query, id), self.catalogue.settings.zone)

    def get_json(self, query: str, id: int) -> bytes:
        """The bytes REST answers a get with, built straight from the rows."""
        return entity_bytes(self.catalogue.get(self.sid, query, id,
                                               JsonShape(self.catalogue.settings.zone)))

    def dispose(self) -> None:
        self.catalogue.db.dispose()


def open_fixture(url: str, data_dir: Path) -> Fixture:
    """Migrate the (empty) database at ``url`` and load the fixture into it."""
    settings = Settings(
        server=ServerSettings(data_dir=data_dir),
        catalogue=CatalogueSettings(database=url, root_users=[ROOT]),
        authn={"simple": AuthnSettings(type="simple", users={"root": "secret"})})
    cat = open_catalogue(settings)
    sid = cat.login("simple", {"username": "root", "password": "secret"}, None)

    def write(entities: list[dict[str, Any]]) -> list[int]:
        return cat.write(sid, parse_entities(json.dumps(entities), settings.zone))

    fixture.load(cat.db.engine, write)
    return Fixture(cat, sid)


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        fx = open_fixture(f"sqlite:///{tmp}/c.db", Path(tmp))
        try:
            for q in argv:
                try:
                    print(json.dumps(fx.search(q)))
                except IcatError as e:
                    print(e.type.name, e.message, e.offset)
        finally:
            fx.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
