"""The query corpus (tests/integration/query_corpus) over REST, on every backend: one Cairn
server per backend, the fixture catalogue loaded once, then each query's JSON answer compared
strictly with the expected result worked out from the fixture."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from tests.integration.query_corpus import fixture
from tests.integration.query_corpus.cases import STATUS, Case, difference, materialize
from tests.integration.query_corpus.corpus import CASES
from tests.integration.server import Server
from tests.reference import reference_file


def backend_of(server: Server) -> str:
    scheme = server.db_url.split(":", 1)[0]
    return "mariadb" if scheme.startswith("mysql") else scheme.split("+")[0]


@pytest.fixture(scope="module")
def root(server: Server) -> str:
    """A root session on a server holding the fixture catalogue."""
    sid = server.login("root")

    def write(entities: list[dict[str, Any]]) -> list[int]:
        r = server.http.post("/icat/entityManager",
                             data={"sessionId": sid, "entities": json.dumps(entities)})
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    fixture.load(server.engine, write)
    return sid


def answer(server: Server, sid: str, case: Case) -> tuple[int, Any]:
    params: dict[str, Any] = {"sessionId": sid, "query": case.query}
    if case.get_id is not None:
        params["id"] = case.get_id
    r = server.http.get("/icat/entityManager", params=params)
    return r.status_code, r.json()


def problem(status: int, body: Any, case: Case) -> str | None:
    """None if the answer is the expected one, else what is wrong."""
    if case.error is not None:
        if status != STATUS[case.error] or not isinstance(body, dict) \
                or body.get("code") != case.error:
            return f"expected {case.error} ({STATUS[case.error]}), got {status}: {body}"
        if case.message is not None and case.message not in body.get("message", ""):
            return f"message {body.get('message')!r} lacks {case.message!r}"
        return None
    if status != 200:
        return f"expected a result, got {status}: {body}"
    expected = materialize(case.expected)
    if case.total is not None:
        if not isinstance(body, list) or len(body) != case.total:
            return f"expected {case.total} results, got {len(body)}"
        body = body[:len(expected)]
    return difference(body, expected)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_query(server: Server, root: str, case: Case) -> None:
    status, body = answer(server, root, case)
    why = problem(status, body, case)
    reason = case.xfail_reason(backend_of(server))
    if reason is not None:
        if why is None:
            pytest.fail(f"{case.id} passes now; drop its xfail ({reason})")
        pytest.xfail(f"{reason}: {why}")
    assert why is None, f"{case.query}\n{why}"


# -- the corpus itself ------------------------------------------------------------------------


def test_corpus_is_large_and_unique() -> None:
    assert len(CASES) >= 200
    assert len({c.id for c in CASES}) == len(CASES)
    dup = [q for q, n in Counter((c.query, c.get_id) for c in CASES).items() if n > 1]
    assert not dup, dup
    for c in CASES:  # every expected result renders (fixture rows and includes exist)
        materialize(c.expected)


def test_corpus_holds_every_datagateway_query() -> None:
    """Each of the 88 captured queries is in the corpus, changed only by its listed edits."""
    by_line = {c.dg: c for c in CASES if c.dg is not None}
    assert sorted(by_line) == list(range(1, 89))
    lines = reference_file("data/datagateway-api-queries.jsonl").read_text().splitlines()
    assert len(lines) == 88
    for n, line in enumerate(lines, 1):
        text = json.loads(line)["icat_query"]
        for old, new in by_line[n].subst:
            assert old in text, (n, old)
            text = text.replace(old, new)
        assert text == by_line[n].query, n
