"""The corpus machinery: a case, the markers expected results are written with, and a strict
comparison of JSON results (types, key order and list order all count)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tests.integration.query_corpus import fixture


@dataclass(frozen=True)
class E:
    """An entity result: the fixture row ``entity`` ``id`` with an INCLUDE tree
    (``inc="datasets.datafiles, facility"``), rendered by :func:`fixture.render`."""

    entity: str
    id: int
    inc: str | None = None

    def json(self) -> dict[str, Any]:
        return fixture.render(self.entity, self.id, fixture.tree(self.inc))


def ents(entity: str, *ids: int, inc: str | None = None) -> list[E]:
    return [E(entity, i, inc) for i in ids]


def materialize(expected: Any) -> Any:
    """Expected result with every :class:`E` replaced by its JSON."""
    if isinstance(expected, E):
        return expected.json()
    if isinstance(expected, list | tuple):
        return [materialize(x) for x in expected]
    if isinstance(expected, dict):
        return {k: materialize(v) for k, v in expected.items()}
    return expected


#: HTTP status of each ICAT error type (reference §2.9).
STATUS = {"BAD_PARAMETER": 400, "VALIDATION": 412, "NO_SUCH_OBJECT_FOUND": 404,
          "INSUFFICIENT_PRIVILEGES": 403, "SESSION": 403, "INTERNAL": 500}


@dataclass
class Case:
    """One corpus query and what the server must answer.

    * ``expected``: the JSON result (entities as :class:`E`), compared strictly;
    * ``total``: when set, the result has this many items and ``expected`` is its beginning;
    * ``error``/``message``: an ICAT error code and a text its message must contain;
    * ``get_id``: the query is a get (REST ``id`` parameter), the answer one object;
    * ``dg``: the line (1-based) of ``datagateway-api-queries.jsonl`` this adapts, with
      ``subst`` the (original, replacement) edits made to fit the fixture;
    * ``xfail``: backend name (or "*") -> reason, for known, reported gaps.
    """

    group: str
    query: str
    expected: Any = None
    total: int | None = None
    error: str | None = None
    message: str | None = None
    get_id: int | None = None
    dg: int | None = None
    subst: tuple[tuple[str, str], ...] = ()
    xfail: dict[str, str] = field(default_factory=dict)
    id: str = ""

    def xfail_reason(self, backend: str) -> str | None:
        return self.xfail.get(backend) or self.xfail.get("*")


class Corpus:
    """Cases in the order written, with ids ``group-NNN``."""

    def __init__(self) -> None:
        self.cases: list[Case] = []
        self._counts: dict[str, int] = {}

    def add(self, case: Case) -> Case:
        n = self._counts[case.group] = self._counts.get(case.group, 0) + 1
        case.id = f"{case.group}-{n:03d}"
        self.cases.append(case)
        return case

    def ok(self, group: str, query: str, expected: Any, **kw: Any) -> Case:
        return self.add(Case(group, query, expected, **kw))

    def bad(self, group: str, query: str, error: str, message: str | None = None,
            **kw: Any) -> Case:
        return self.add(Case(group, query, error=error, message=message, **kw))

    def get(self, group: str, query: str, id: int, expected: Any = None, **kw: Any) -> Case:
        return self.add(Case(group, query, expected, get_id=id, **kw))


# -- comparing --------------------------------------------------------------------------------


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "real"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def difference(actual: Any, expected: Any, path: str = "$") -> str | None:
    """None if equal, types and key order included; else where and how they differ."""
    ka, ke = _kind(actual), _kind(expected)
    if ka != ke:
        return f"{path}: {ka} {_short(actual)} where {ke} {_short(expected)} was expected"
    if isinstance(expected, list):
        for i, (a, e) in enumerate(zip(actual, expected, strict=False)):
            d = difference(a, e, f"{path}[{i}]")
            if d:
                return d
        if len(actual) != len(expected):
            return f"{path}: {len(actual)} items where {len(expected)} were expected"
        return None
    if isinstance(expected, dict):
        if list(actual) != list(expected):
            return f"{path}: keys {list(actual)} where {list(expected)} were expected"
        for k in expected:
            d = difference(actual[k], expected[k], f"{path}.{k}")
            if d:
                return d
        return None
    if actual != expected:
        return f"{path}: {_short(actual)} where {_short(expected)} was expected"
    return None


def _short(v: Any) -> str:
    text = json.dumps(v)
    return text if len(text) < 160 else text[:157] + "..."
