"""The ``source`` of each search result: the document's fields as icat.server returns them
(dates as epoch milliseconds, joined child documents as arrays), read from the catalogue for
the page's ids, showing only what the caller may read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, FromClause, func, literal, select

from cairn.catalogue.work import Work
from cairn.query.scope import Aliases, shared_pool
from cairn.schema import SCHEMA

# (source key, many-to-one path to an attribute); a path whose first steps pass through
# another entity shows only where the caller may read that entity's row.
Spec = tuple[tuple[str, str], ...]

FIELDS: dict[str, Spec] = {
    "Investigation": (
        ("id", "id"), ("name", "name"), ("visitId", "visitId"), ("title", "title"),
        ("summary", "summary"), ("doi", "doi"), ("startDate", "@startDate"),
        ("endDate", "@endDate"), ("date", "@startDate"), ("fileSize", "@fileSize"),
        ("fileCount", "@fileCount"), ("facility.id", "facility.id"),
        ("facility.name", "facility.name"), ("type.id", "type.id"),
        ("type.name", "type.name")),
    "Dataset": (
        ("id", "id"), ("name", "name"), ("description", "description"), ("doi", "doi"),
        ("startDate", "@startDate"), ("endDate", "@endDate"), ("date", "@startDate"),
        ("fileSize", "@fileSize"), ("fileCount", "@fileCount"),
        ("investigation.id", "investigation.id"),
        ("investigation.name", "investigation.name"),
        ("investigation.title", "investigation.title"),
        ("investigation.startDate", "investigation.startDate"),
        ("visitId", "investigation.visitId"), ("sample.id", "sample.id"),
        ("sample.name", "sample.name"), ("sample.investigation.id", "sample.investigation"),
        ("sample.type.id", "sample.type.id"), ("sample.type.name", "sample.type.name"),
        ("type.id", "type.id"), ("type.name", "type.name")),
    "Datafile": (
        ("id", "id"), ("name", "name"), ("description", "description"),
        ("location", "location"), ("doi", "doi"), ("date", "@date"),
        ("fileSize", "@fileSize"), ("fileCount", "@fileCount"),
        ("dataset.id", "dataset.id"), ("dataset.name", "dataset.name"),
        ("investigation.id", "dataset.investigation.id"),
        ("investigation.name", "dataset.investigation.name"),
        ("investigation.startDate", "dataset.investigation.startDate"),
        ("visitId", "dataset.investigation.visitId"),
        ("datafileFormat.id", "datafileFormat.id"),
        ("datafileFormat.name", "datafileFormat.name"),
        ("sample.id", "dataset.sample.id"), ("sample.name", "dataset.sample.name"),
        ("sample.investigation.id", "dataset.sample.investigation"),
        ("sample.type.id", "dataset.sample.type.id"),
        ("sample.type.name", "dataset.sample.type.name")),
}

# Joined child documents: (array name, path from the target to the investigation or the
# target itself, the child relation, the child's fields).
CHILDREN: dict[str, tuple[tuple[str, tuple[str, ...], str, Spec], ...]] = {}
_INV_CHILDREN: tuple[tuple[str, str, Spec], ...] = (
    ("investigationinstrument", "investigationInstruments",
     (("instrument.id", "instrument.id"), ("instrument.name", "instrument.name"),
      ("instrument.fullName", "instrument.fullName"))),
    ("investigationfacilitycycle", "investigationFacilityCycles",
     (("facilityCycle.id", "facilityCycle.id"),)),
)
_PARAMS: Spec = (("type.name", "type.name"), ("stringValue", "stringValue"),
                 ("numericValue", "numericValue"), ("dateTimeValue", "dateTimeValue"))
CHILDREN["Investigation"] = (
    *((a, (), rel, spec) for a, rel, spec in _INV_CHILDREN),
    ("investigationparameter", (), "parameters", _PARAMS),
    ("sample", (), "samples", (("sample.id", "id"), ("sample.name", "name"),
                               ("type.name", "type.name"))),
)
CHILDREN["Dataset"] = tuple((a, ("investigation",), rel, spec) for a, rel, spec in _INV_CHILDREN)
CHILDREN["Datafile"] = tuple((a, ("dataset", "investigation"), rel, spec)
                             for a, rel, spec in _INV_CHILDREN)

#: At most this many child documents per result, lowest ids first (as icat.lucene).
MAX_CHILDREN = 100


def _ms(v: Any, work: Work) -> Any:
    if type(v) is datetime:
        return int(work.db.from_db(v).astimezone(UTC).timestamp() * 1000)
    return v


class _Reader:
    """One statement reading a spec's paths, outer-joining each many-to-one step once.

    Its joined tables are aliases from the search's pool (``source``, shared by every reader
    of one statement): aliases made afresh for every result page were cyclic garbage."""

    def __init__(self, work: Work, entity: str, base: FromClause, source: Aliases) -> None:
        self.work = work
        self.source = source
        self.entity = entity
        self.frm: FromClause = base
        self.aliases: dict[tuple[str, ...], tuple[FromClause, str]] = {(): (base, entity)}
        self.columns: list[ColumnElement[Any]] = []
        # For each column: the path prefix whose row must be readable (None: the row itself).
        self.guards: list[tuple[str, ...]] = []
        self._prefixes: list[tuple[str, ...]] | None = None

    def _alias(self, prefix: tuple[str, ...]) -> tuple[FromClause, str]:
        if prefix in self.aliases:
            return self.aliases[prefix]
        parent, entity = self._alias(prefix[:-1])
        rel = SCHEMA.entities[entity].fields[prefix[-1]]
        t = self.source.new(SCHEMA.entities[rel.type])
        self.frm = self.frm.outerjoin(t, t.c.id == parent.c[rel.name])
        self.aliases[prefix] = (t, rel.type)
        return self.aliases[prefix]

    def add(self, path: str) -> None:
        special = path.startswith("@")
        parts = tuple(path.lstrip("@").split("."))
        t, entity = self._alias(parts[:-1])
        self.columns.append(_special(t, entity, parts[-1]) if special else t.c[parts[-1]])
        self.guards.append(parts[:-1])
        self._prefixes = None

    def hidden(self, rows: Sequence[Any], at: int) -> set[tuple[tuple[str, ...], int]]:
        """(path prefix, id) of the related rows the caller may not read; the rows carry
        the :meth:`guard_ids` columns from position ``at``."""
        out: set[tuple[tuple[str, ...], int]] = set()
        if self.work.root:
            return out
        for i, prefix in enumerate(self.prefixes()):
            related = {row[at + i] for row in rows} - {None}
            allowed = self.work.readable(self.aliases[prefix][1], related)
            out.update((prefix, x) for x in related - allowed)
        return out

    def document(self, spec: Spec, row: Sequence[Any], at: int,
                 hidden: set[tuple[tuple[str, ...], int]]) -> dict[str, Any]:
        """The spec's values (from position ``at`` of ``row``) that may be shown."""
        values = row[at:at + len(spec)]
        unread = [p for p, x in zip(self.prefixes(), row[at + len(spec):], strict=True)
                  if (p, x) in hidden] if hidden else []
        if not unread:  # root, or every related row readable: the common case, kept quick
            return {key: _ms(v, self.work) for (key, _), v in zip(spec, values, strict=True)
                    if v is not None}
        doc: dict[str, Any] = {}
        for (key, _), value, g in zip(spec, values, self.guards, strict=True):
            if value is None or any(g[:len(p)] == p for p in unread):
                continue
            doc[key] = _ms(value, self.work)
        return doc

    def guard_ids(self) -> list[ColumnElement[Any]]:
        return [self._alias(p)[0].c.id for p in self.prefixes()]

    def prefixes(self) -> list[tuple[str, ...]]:
        """The related rows' paths a column is read through, shortest first (fixed once the
        columns are added: kept)."""
        if self._prefixes is None:
            self._prefixes = sorted({g for g in self.guards if g}, key=len)
        return self._prefixes


def _special(t: FromClause, entity: str, field: str) -> ColumnElement[Any]:
    if field == "fileCount" and entity == "Datafile":
        return literal(1)
    if field in ("fileSize", "fileCount"):
        return func.coalesce(t.c[field], 0)
    if field == "date":  # a datafile's date
        return func.coalesce(t.c.datafileModTime, t.c.datafileCreateTime, t.c.modTime)
    fallback = "createTime" if field == "startDate" else "modTime"
    return func.coalesce(t.c[field], t.c[fallback])


def _aliases(work: Work) -> Aliases:
    """Where one statement's aliases come from: the pool of searches over these tables (its
    statements stand alone; the rules nested in them make aliases of their own)."""
    return Aliases(work.tables, shared_pool(work.tables))


def sources(work: Work, target: str, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}
    t = work.tables[target]
    spec = FIELDS[target]
    r = _Reader(work, target, t, _aliases(work))
    for _, path in spec:
        r.add(path)
    rows = work.conn.execute(select(*r.columns, *r.guard_ids()).select_from(r.frm)
                             .where(t.c.id.in_(list(ids)))).all()
    hidden = r.hidden(rows, len(spec))
    out = {row[0]: r.document(spec, row, 0, hidden) for row in rows}
    for name, to_parent, rel, child_spec in CHILDREN[target]:
        for doc_id, items in _children(work, target, ids, to_parent, rel, child_spec).items():
            out[doc_id][name] = items
        for doc in out.values():
            doc.setdefault(name, [])
    return out


def _children(work: Work, target: str, ids: Sequence[int], to_parent: tuple[str, ...],
              rel: str, spec: Spec) -> dict[int, list[dict[str, Any]]]:
    """Child documents of each result: rows of ``rel`` of the result's own row
    (``to_parent`` empty) or of the row ``to_parent`` leads to."""
    t = work.tables[target]
    source = _aliases(work)
    r = _Reader(work, target, t, source)
    parent, parent_entity = r._alias(to_parent) if to_parent else (t, target)
    relation = SCHEMA.entities[parent_entity].fields[rel]
    assert relation.mapped_by is not None
    # the child's own table, so that the caller's rules for it apply in this statement
    child = work.tables[relation.type]
    cr = _Reader(work, relation.type, child, source)
    cr.frm = r.frm.join(child, child.c[relation.mapped_by] == parent.c.id)
    for _, path in spec:
        cr.add(path)
    q = (select(t.c.id, child.c.id, *cr.columns, *cr.guard_ids()).select_from(cr.frm)
         .where(t.c.id.in_(list(ids))).order_by(t.c.id, child.c.id))
    # the results are readable: so are children that the rules make readable with them
    # (an investigation's instruments, under the rules of its datasets)
    readable = None if work.readable_along(target, to_parent, relation.type,
                                           (relation.mapped_by,)) \
        else work.readable_condition(relation.type, child.c.id)
    if readable is not None:
        q = q.where(readable)
    rows = work.conn.execute(q, work.params).all()
    hidden = cr.hidden(rows, 2 + len(spec))
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        items = out[row[0]]
        if len(items) < MAX_CHILDREN:
            items.append(cr.document(spec, row, 2, hidden))
    return out
