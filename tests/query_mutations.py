"""Token-level mutations of query text, shared by the parser fuzzer (tests/unit) and the
pipeline fuzzer (tests/integration); they differ only in what an insertion adds."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import strategies as st

from cairn.errors import IcatError
from cairn.query.tokens import tokenize

#: Adds something at token ``i`` of the list, drawing what it adds from ``data``.
Insert = Callable[[list[str], int, st.DataObject], None]


def mutate(text: str, data: st.DataObject, insert: Insert) -> str:
    """One to three mutations of ``text``'s tokens: delete, duplicate, swap, replace, or
    ``insert``. Text the lexer refuses is cut at whitespace instead."""
    try:
        toks = [t.text for t in tokenize(text, concise=not text.upper().startswith("SELECT"))
                if t.kind != "EOF"]
    except IcatError:
        toks = text.split()
    for _ in range(data.draw(st.integers(1, 3))):
        if not toks:
            break
        i = data.draw(st.integers(0, len(toks) - 1))
        j = data.draw(st.integers(0, len(toks) - 1))
        op = data.draw(st.sampled_from(["delete", "duplicate", "swap", "replace", "insert"]))
        if op == "delete":
            del toks[i]
        elif op == "duplicate":
            toks.insert(i, toks[i])
        elif op == "swap":
            toks[i], toks[j] = toks[j], toks[i]
        elif op == "replace":
            toks[i] = toks[j]
        else:
            insert(toks, i, data)
    return " ".join(toks)
