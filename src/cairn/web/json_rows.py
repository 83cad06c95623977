"""REST search and get answers built straight from rows: each row becomes its JSON object
at once.

The core's :class:`~cairn.catalogue.objects.Obj` costs a REST page twice: building it from
the row, then rendering it to JSON. A portal page of investigations with every dataset and
parameter holds about 3,000 objects, and those two steps took most of its time. This
:class:`~cairn.catalogue.include.Shape` goes from the row to the dict that is encoded, in
icat.server's field order, and attaches includes into it; the answer is byte for byte what
:func:`cairn.web.entity_json.results_json` and ``entity_json`` render from objects (tested on
the query corpus, on a get of every entity, and by the pipeline fuzzer).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, Final
from zoneinfo import ZoneInfo

import orjson

from cairn.cache import IdentityCache
from cairn.catalogue.work import Work
from cairn.db.fastread import Processor, Processors, Readers
from cairn.query.includes import IncludeTree
from cairn.schema import Entity
from cairn.web.entity_json import format_date, scalar
from cairn.web.jsonresponse import encode

#: One object: its JSON object (MANY fields present, included ONE fields holding the stored
#: id until the object is attached), the stored ids of its ONE fields, its entity's name.
#: A plain tuple: a page builds thousands, and a class's constructor costs several times more.
Node = tuple[dict[str, Any], dict[str, int | None], str]
JSON: Final = 0
REFS: Final = 1
NAME: Final = 2

_READERS: IdentityCache[Callable[[Sequence[Any]], Node]] = IdentityCache(4096, "json.readers")


class JsonShape:
    """Rows as JSON objects for one catalogue's zone."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone

    def readers(self, work: Work, tree: IncludeTree) -> Readers:
        included = frozenset(tree.steps)
        zone = self.zone

        def readers(entity: Entity, keys: tuple[str, ...], processors: Processors
                    ) -> Callable[[Sequence[Any]], Node]:
            return _READERS.fetch((entity, zone), (keys, processors, included),
                                  lambda: _make_reader(entity, keys, processors, included, zone))

        return readers

    def idents(self, nodes: Sequence[Node]) -> list[int]:
        return [n[JSON]["id"] for n in nodes]

    def refs(self, nodes: Sequence[Node], field: str) -> set[int]:
        return {r for n in nodes if (r := n[REFS].get(field)) is not None}

    def attach_one(self, parents: Sequence[Node], field: str, loaded: Sequence[Node]) -> None:
        # Each object encoded once, however many parents share it (the type of each of 2,000
        # parameters); its own includes are attached by now.
        done = {n[JSON]["id"]: orjson.Fragment(encode(n[JSON])) for n in loaded}
        for p in parents:
            out = p[JSON]
            if field in out:
                found = done.get(p[REFS][field])
                if found is None:  # not readable: left out, as if there were none
                    del out[field]
                else:
                    out[field] = found

    def attach_many(self, parents: Sequence[Node], field: str, children: Sequence[Node],
                    back: str) -> None:
        groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        for c in children:  # the JSON objects themselves: nothing reads the nodes from here
            groups[c[REFS][back]].append(c[JSON])
        for p in parents:
            out = p[JSON]
            kids = groups.get(out["id"])
            if kids:
                out[field] = kids


def entity_bytes(node: Node) -> bytes:
    """A get answer (§4.2): the one wrapped entity, encoded."""
    return encode({node[NAME]: node[JSON]})


def results_bytes(values: list[Any], zone: ZoneInfo) -> bytes:
    """A search answer of :class:`JsonShape` results (§4.2), encoded."""
    return encode([_result(v, zone) for v in values])


def _result(value: Any, zone: ZoneInfo) -> Any:
    if type(value) is tuple:
        return {value[NAME]: value[JSON]}
    if isinstance(value, list):  # a row of several items
        return [_result(v, zone) for v in value]
    return scalar(value, zone)


@lru_cache(maxsize=256)
def _date_text(processor: Processor | None, zone: ZoneInfo) -> Callable[[Any], str]:
    """The driver's date value straight to its JSON text, cached by that value alone: a page
    repeats the same few timestamps (createTime, modTime), and SQLite's are strings parsed
    only to be formatted."""
    fmt = format_date.__wrapped__  # this cache replaces format_date's own
    if processor is None:
        return lru_cache(maxsize=4096)(lambda raw: fmt(raw, zone))
    return lru_cache(maxsize=4096)(lambda raw: fmt(processor(raw), zone))


def _make_reader(entity: Entity, keys: tuple[str, ...], processors: Processors,
                 included: frozenset[str], zone: ZoneInfo) -> Callable[[Sequence[Any]], Node]:
    """Generated code, as for the core's row readers (``cairn.catalogue.work``): fields in
    icat.server's order (id, system fields, then alphabetical); absent attributes and ONE
    fields not included left out; every MANY field present, an empty array unless included.
    The leading fields that are never null (the id, required fields, MANY fields) go in one
    dict display. Names come from the schema declaration and indexes are integers, so nothing
    from a request reaches the text."""
    at = {k: i for i, k in enumerate(keys)}
    conv = dict(processors)
    scope: dict[str, Any] = {"entity_name": entity.name}
    for n, proc in processors:
        scope[f"p{n}"] = proc

    def converted(i: int) -> str:  # the column as the core's objects hold it
        return f"p{i}(r[{i}])" if i in conv else f"r[{i}]"

    def text(i: int, typ: str, v: str) -> str:  # a value as JSON holds it
        if typ != "Date":
            return v
        scope[f"t{i}"] = _date_text(conv.get(i), zone)  # the driver's value, formatted
        return f"t{i}({v})"

    display: list[str] = []
    lines: list[str] = []
    for f in entity.api_fields:
        if f.is_many:
            if lines:
                lines.append(f"    out[{f.name!r}] = ()")
            else:
                display.append(f"{f.name!r}: ()")
            continue
        i = at.get(f.name)
        if i is None or f.hidden or (f.is_one and f.name not in included):
            continue
        typ = "ONE" if f.is_one else f.type
        raw = f"r[{i}]" if typ == "Date" else converted(i)
        if (f.name == "id" or f.required) and not lines:  # never null: in the display
            display.append(f"{f.name!r}: {text(i, typ, raw)}")
        else:
            lines += [f"    v = {raw}",
                      f"    if v is not None: out[{f.name!r}] = {text(i, typ, 'v')}"]
    refs = ", ".join(f"{f.name!r}: {converted(at[f.name])}" for f in entity.ones
                     if f.name in at)
    source = "\n".join(["def read(r):", f"    out = {{{', '.join(display)}}}", *lines,
                        f"    return (out, {{{refs}}}, entity_name)"])
    exec(source, scope)
    read: Callable[[Sequence[Any]], Node] = scope["read"]
    return read
