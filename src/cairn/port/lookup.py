"""Finding the objects an import's records refer to, a batch of records at a time.

A record names each many-to-one object by field values (:class:`Lookup`) or by a label
given earlier in the file (:class:`Label`). Resolving one statement per reference would cost
a round trip per row; instead the references of a batch are gathered, nested ones first
(a dataset's investigation's facility), and each level is looked up with one statement per
``max_ids`` distinct value tuples (``(FACILITY_ID, NAME, VISIT_ID) IN (...)``). A value
tuple the database matched but not exactly as written (MariaDB compares strings without
case) is looked up again on its own, so the database's own comparison decides, as it
would for a single lookup. Lookups are read as Cairn itself, as icat.server does: what the
importer may create is checked on what it creates.

Resolved lookups are remembered (up to ``cache_size``): rows of a table usually refer to the
same few parents one after the other.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, select

from cairn.errors import IcatError, bad_parameter, no_such_object
from cairn.port.matching import match_rows
from cairn.port.records import Label, Lookup, Ref, describe

if TYPE_CHECKING:
    from cairn.catalogue.work import Work

#: Resolved lookups kept between batches.
CACHE_SIZE = 100_000


class Resolver:
    """Ids of the objects references name, within one unit of work."""

    def __init__(self, work: Work, cache_size: int = CACHE_SIZE) -> None:
        self.work = work
        self.cache: dict[Lookup, int] = {}
        self.cache_size = cache_size
        #: (entity, label) -> id of the row the file labelled so.
        self.labels: dict[tuple[str, str], int] = {}

    def label(self, entity: str, label: str, id: int) -> None:
        self.labels[(entity, label)] = id

    def resolve(self, refs: Iterable[Ref]) -> tuple[dict[Ref, int], dict[Ref, IcatError]]:
        """Ids of ``refs``, and why the others could not be found."""
        found: dict[Ref, int] = {}
        failed: dict[Ref, IcatError] = {}
        lookups: set[Lookup] = set()
        for ref in refs:
            if isinstance(ref, Label):
                id = self.labels.get((ref.entity, ref.label))
                if id is None:
                    failed[ref] = bad_parameter(f"No {ref.entity} labelled {ref.label!r} "
                                                "earlier in the file")
                else:
                    found[ref] = id
            elif ref in self.cache:
                found[ref] = self.cache[ref]
            else:
                lookups.add(ref)
        if lookups:
            self._lookups(lookups, found, failed)
        return found, failed

    def _lookups(self, lookups: set[Lookup], found: dict[Ref, int],
                 failed: dict[Ref, IcatError]) -> None:
        inner = {v for lk in lookups for _, v in lk.fields if isinstance(v, Lookup | Label)}
        inner_found, inner_failed = self.resolve(inner) if inner else ({}, {})
        groups: dict[tuple[str, tuple[str, ...]], dict[Lookup, tuple[Any, ...]]] = {}
        for lk in lookups:
            values = []
            for _, v in lk.fields:
                if isinstance(v, Lookup | Label):
                    if v in inner_failed:
                        failed[lk] = inner_failed[v]
                        break
                    values.append(inner_found[v])
                else:
                    values.append(v)
            else:
                names = tuple(name for name, _ in lk.fields)
                groups.setdefault((lk.entity, names), {})[lk] = tuple(values)
        for (entity, names), wanted in groups.items():
            self._group(entity, names, wanted, found, failed)

    def _group(self, entity: str, names: tuple[str, ...], wanted: dict[Lookup, tuple[Any, ...]],
               found: dict[Ref, int], failed: dict[Ref, IcatError]) -> None:
        work = self.work
        table = work.tables[entity]
        cols = [table.c[name] for name in names]
        matches = match_rows(work.conn, table, names, list(set(wanted.values())),
                             work.max_ids)
        for lk, values in wanted.items():
            ids = matches.get(values)
            if ids is None:  # not found as written: the database's comparison decides
                ids = [r[0] for r in work.conn.execute(
                    select(table.c.id).where(and_(*[c == v for c, v in zip(
                        cols, values, strict=True)])).limit(2))]
            if len(ids) == 1:
                found[lk] = ids[0]
                self._remember(lk, ids[0])
            elif not ids:
                failed[lk] = no_such_object(f"{describe(lk)} not found")
            else:
                failed[lk] = bad_parameter(f"{describe(lk)} is not one object: several "
                                           f"match")

    def _remember(self, lk: Lookup, id: int) -> None:
        if len(self.cache) >= self.cache_size:
            del self.cache[next(iter(self.cache))]  # the oldest
        self.cache[lk] = id
