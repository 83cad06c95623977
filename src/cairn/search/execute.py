"""Running a search: one SQL statement finds a page of authorized documents, and one per facet
dimension counts the whole authorized result set.

icat.server asks its engine for blocks of hits and filters each block through the read rules
until a page is full (or a time limit passes), and counts facets over that page only. Here the
text match, the filters, the caller's read rules, the order and the page are one statement,
so every page is full, ``search_after`` is exact, and facet counts cover every document the
caller may read and nothing else.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Double,
    FromClause,
    Integer,
    Select,
    String,
    Table,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    not_,
    null,
    or_,
    select,
    true,
    union,
    union_all,
)

from cairn.catalogue.work import Work
from cairn.errors import bad_parameter
from cairn.schema import SCHEMA
from cairn.search import lucene
from cairn.search.compare import (
    between,
    equals,
    is_number,
    range_condition,
    sort_value,
    value_condition,
    wildcard,
)
from cairn.search.index import INDEXED
from cairn.search.indexer import SearchIndex
from cairn.search.request import (
    Dimension,
    FacetRequest,
    ParameterQuery,
    SearchRequest,
)
from cairn.search.targets import DEFAULT_FIELDS, TEXT_FIELDS, TO_INVESTIGATION, reach, through
from cairn.search.units import Units

#: How each target reaches the entities a facet or filter may name (lower-cased names).
LINKS: dict[str, dict[str, tuple[str, ...]]] = {
    "Investigation": {
        "investigationparameter": ("parameters",),
        "sample": ("samples",),
        "sampleparameter": ("samples", "parameters"),
        "investigationinstrument": ("investigationInstruments",),
        "investigationuser": ("investigationUsers",),
        "investigationfacilitycycle": ("investigationFacilityCycles",),
        "keyword": ("keywords",),
    },
    "Dataset": {
        "datasetparameter": ("parameters",),
        "sample": ("sample",),
        "sampleparameter": ("sample", "parameters"),
        "datasettechnique": ("datasetTechniques",),
        "datasetinstrument": ("datasetInstruments",),
        "investigation": ("investigation",),
        "investigationparameter": ("investigation", "parameters"),
        "investigationinstrument": ("investigation", "investigationInstruments"),
        "investigationuser": ("investigation", "investigationUsers"),
        "investigationfacilitycycle": ("investigation", "investigationFacilityCycles"),
    },
    "Datafile": {
        "datafileparameter": ("parameters",),
        "dataset": ("dataset",),
        "sample": ("dataset", "sample"),
        "sampleparameter": ("dataset", "sample", "parameters"),
        "datasettechnique": ("dataset", "datasetTechniques"),
        "datasetparameter": ("dataset", "parameters"),
        "investigation": ("dataset", "investigation"),
        "investigationparameter": ("dataset", "investigation", "parameters"),
        "investigationinstrument": ("dataset", "investigation", "investigationInstruments"),
        "investigationuser": ("dataset", "investigation", "investigationUsers"),
        "investigationfacilitycycle": ("dataset", "investigation",
                                       "investigationFacilityCycles"),
    },
}

#: icat.lucene's document fields that are not the entity's own path.
ALIASES: dict[str, dict[str, str]] = {
    "Investigation": {},
    "Dataset": {"visitId": "investigation.visitId"},
    "Datafile": {"visitId": "dataset.investigation.visitId", "sample": "dataset.sample",
                 "investigation": "dataset.investigation"},
}

#: Facets asked for without dimensions: icat.lucene's facet fields present on each document.
SPARSE: dict[str, tuple[str, ...]] = {
    "Investigation": ("type.name",),
    "Dataset": ("type.name", "sample.type.name"),
    "Datafile": ("datafileFormat.name", "sample.type.name"),
    "investigationparameter": ("type.name", "stringValue"),
    "datasetparameter": ("type.name", "stringValue"),
    "datafileparameter": ("type.name", "stringValue"),
    "sampleparameter": ("type.name", "stringValue"),
    "investigationinstrument": ("instrument.name",),
    "sample": ("type.name",),
    "datasettechnique": ("technique.name",),
}

#: Related rows matched by a word are inlined as ids up to this many (else a subquery).
INLINE = 5000

PARAMETER_ENTITY = {"Investigation": "InvestigationParameter", "Dataset": "DatasetParameter",
                    "Datafile": "DatafileParameter"}


@dataclass(frozen=True)
class Hit:
    id: int
    score: float | None
    keys: tuple[Any, ...]  # the sort values, for search_after


class Search:
    """One search's statements, built for a unit of work (the caller's rules, the clock)."""

    def __init__(self, work: Work, index: SearchIndex, units: Units, req: SearchRequest,
                 *, max_labels: int = 100) -> None:
        self.work = work
        self.index = index
        self.units = units
        self.req = req
        self.max_labels = max_labels
        self.target = req.target
        self.tables = work.tables
        self.t: Table = self.tables[self.target]
        self.positive: list[lucene.Leaf] = []
        self._conditions: list[ColumnElement[bool]] | None = None
        index.backend.prepare(work.conn)

    # -- what matches -------------------------------------------------------------------------

    def conditions(self) -> list[ColumnElement[bool]]:
        """The conditions on the target's table (its rows, not an alias) that the documents
        found meet: built once, for the page and every facet of a request."""
        if self._conditions is None:
            self._conditions = self._build()
        return list(self._conditions)

    def _build(self) -> list[ColumnElement[bool]]:
        r = self.req
        out: list[ColumnElement[bool]] = []
        if r.text:
            out.append(self._text(self._parse(r.text)))
        for s in r.samples:
            leaf_node = self._parse(s)
            out.append(self._node(leaf_node, fields=("sample.name", "sample.type.name")))
        if r.user:
            out.append(self._user(r.user))
        if r.user_full_name:
            out.append(self._full_name(r.user_full_name))
        out.extend(self._dates())
        out.extend(self._parameter(p) for p in r.parameters)
        out.extend(self._filter(k, v) for k, v in r.filter.items())
        readable = self.work.readable_condition(self.target, self.t.c.id)
        if readable is not None:
            out.append(readable)
        return out

    @staticmethod
    def _parse(text: str) -> lucene.Node:
        try:
            return lucene.parse(text)
        except lucene.QuerySyntaxError as e:
            raise bad_parameter("Search term could not be parsed due to syntax errors: "
                                f"{e.message}", e.position) from None

    def _text(self, node: lucene.Node) -> ColumnElement[bool]:
        self._collect_positive(node, negated=False)
        return self._node(node)

    def _collect_positive(self, node: lucene.Node, negated: bool) -> None:
        if isinstance(node, lucene.Leaf):
            if not negated:
                self.positive.append(node)
        elif isinstance(node, lucene.Bool):
            for n in (*node.must, *node.should):
                self._collect_positive(n, negated)
            for n in node.must_not:
                self._collect_positive(n, not negated)

    def _node(self, node: lucene.Node, fields: Sequence[str] | None = None
              ) -> ColumnElement[bool]:
        return _boolean(node, lambda leaf: self._leaf(leaf, fields))

    def _leaf(self, leaf: lucene.Leaf, fields: Sequence[str] | None) -> ColumnElement[bool]:
        known = TEXT_FIELDS[self.target]
        if leaf.field is not None:
            names: Sequence[str] = (leaf.field,)
            if leaf.field not in known:
                raise bad_parameter(f"{leaf.field} is not a text field of {self.target}; "
                                    f"its text fields are {', '.join(sorted(known))}")
        else:
            names = fields or DEFAULT_FIELDS[self.target]
        groups: dict[tuple[tuple[str, ...], str], list[str]] = {}
        for name in names:
            tf = known[name]
            groups.setdefault((tf.path, tf.entity), []).append(tf.field)
        branches: list[Any] = []  # statements selecting ids of the target
        near: dict[str, set[int]] = {}  # a first many-to-one step -> the ids it must reach
        for (path, entity), own in groups.items():
            doc = self.index.docs.get(entity)
            if doc is None:
                if leaf.field is not None:
                    raise bad_parameter(f"{leaf.field} can't be searched: {entity} is not "
                                        "indexed ([search] entities)")
                continue
            found = self.index.backend.match(doc, own, leaf)
            if not path:
                branches.append(found)
                continue
            # Related rows (a format, a sample, a visit) first: usually a few ids or none,
            # which the planner then sees instead of guessing a subquery's size; those
            # reached through the same first step (a dataset's sample and its type) become
            # one condition on the target's own foreign key.
            ids = self._ids(found)
            if ids is None:
                branches.append(reach(self.tables, self.target, path, found))
                continue
            if not ids:
                continue
            first = SCHEMA.entities[self.target].fields[path[0]]
            if first.is_one:
                hop = reach(self.tables, first.type, path[1:], ids)
                hop_ids = hop if isinstance(hop, list) else self._ids(hop)
                if hop_ids is not None:
                    near.setdefault(first.name, set()).update(hop_ids)
                    continue
            branches.append(reach(self.tables, self.target, path, ids))
        for name, reached in near.items():
            if reached:
                branches.append(select(self.t.c.id).where(self.t.c[name].in_(sorted(reached))))
        if not branches:
            return false()
        if len(branches) == 1:
            return self.t.c.id.in_(branches[0])
        return self.t.c.id.in_(union(*branches))

    def _ids(self, q: Any) -> list[int] | None:
        """The ids ``q`` selects, or None when there are more than :data:`INLINE`."""
        ids = self.work.conn.execute(q.limit(INLINE + 1), self.work.params).scalars().all()
        return None if len(ids) > INLINE else list(ids)

    def _investigations(self, inv_ids: Select[Any] | CompoundSelect) -> ColumnElement[bool]:
        return through(self.tables, self.target, self.t, TO_INVESTIGATION[self.target],
                       inv_ids)

    def _user(self, user: str) -> ColumnElement[bool]:
        """On the investigation as one of its users or as a scientist of its instrument."""
        tb = self.tables
        iu, u, ii, sci = (tb["InvestigationUser"], tb["User"], tb["InvestigationInstrument"],
                          tb["InstrumentScientist"])
        users = select(u.c.id).where(equals(u.c.name, user))
        on_it = select(iu.c.investigation).where(iu.c.user.in_(users))
        scientist = select(ii.c.investigation).where(ii.c.instrument.in_(
            select(sci.c.instrument).where(sci.c.user.in_(users))))
        return self._investigations(union(on_it, scientist))

    def _full_name(self, text: str) -> ColumnElement[bool]:
        doc = self.index.docs.get("User")
        if doc is None:
            raise bad_parameter("userFullName can't be searched: User is not indexed "
                                "([search] entities)")
        iu, u = self.tables["InvestigationUser"], self.tables["User"]

        def user(leaf: lucene.Leaf) -> ColumnElement[bool]:
            field = leaf.field or "fullName"
            if field not in INDEXED["User"]:
                raise bad_parameter(f"{field} is not a text field of User")
            return u.c.id.in_(self.index.backend.match(doc, (field,), leaf))

        users = select(u.c.id).where(_boolean(self._parse(text), user))
        return self._investigations(select(iu.c.investigation).where(iu.c.user.in_(users)))

    def _dates(self) -> list[ColumnElement[bool]]:
        r = self.req
        if r.lower is None and r.upper is None:
            return []
        lower = self.work.db.to_db(r.lower) if r.lower else None
        upper = self.work.db.to_db(r.upper) if r.upper else None
        if self.target == "Datafile":
            return [between(self.date_expr(), lower, upper)]
        t = self.t
        return [between(func.coalesce(t.c.startDate, t.c.createTime), lower, upper),
                between(func.coalesce(t.c.endDate, t.c.modTime), lower, upper)]

    def date_expr(self, t: Any = None) -> ColumnElement[Any]:
        t = self.t if t is None else t
        if self.target == "Datafile":
            return func.coalesce(t.c.datafileModTime, t.c.datafileCreateTime, t.c.modTime)
        return func.coalesce(t.c.startDate, t.c.createTime)

    # -- parameters ---------------------------------------------------------------------------

    def _types(self, name: str, units: str | None) -> list[tuple[int, str | None]]:
        """The parameter types named ``name`` (ICAT wildcards), with their units."""
        pt = self.tables["ParameterType"]
        q = select(pt.c.id, pt.c.units).where(wildcard(pt.c.name, name))
        if units is not None:
            q = q.where(wildcard(pt.c.units, units))
        return [(r.id, r.units) for r in self.work.conn.execute(q)]

    def _numeric(self, p: Table, name_pattern: str | None, units: str | None,
                 low: float | None, high: float | None, *, exact: bool = False
                 ) -> ColumnElement[bool]:
        """A numeric value (or a value range containing ``low`` when ``exact``) between the
        bounds, compared in each parameter type's own units when ``units`` is convertible
        (a range in K matches values stored in degC), else in raw values of types whose
        units are ``units``."""
        types = self._types(name_pattern or "*", None)
        if units is not None and self.units.known(units):
            alts = []
            for tid, tunits in types:
                lo = None if low is None else self.units.convert(low, units, tunits)
                hi = None if high is None else self.units.convert(high, units, tunits)
                if (low is not None and lo is None) or (high is not None and hi is None):
                    continue
                alts.append(and_(p.c.type == tid, _between(p, lo, hi, exact)))
            return or_(*alts) if alts else false()
        ids = [tid for tid, tunits in types
               if units is None or _like_match(tunits, units)]
        if not ids:
            return false()
        return and_(p.c.type.in_(ids), _between(p, low, high, exact))

    def _parameter(self, q: ParameterQuery) -> ColumnElement[bool]:
        entity = PARAMETER_ENTITY[self.target]
        p = self.tables[entity]
        if q.lower_number is not None or q.upper_number is not None:
            cond = self._numeric(p, q.name, q.units, q.lower_number, q.upper_number)
        else:
            types = [tid for tid, _ in self._types(q.name, q.units)]
            cond = p.c.type.in_(types) if types else false()
            if q.string_value is not None:
                cond = and_(cond, wildcard(p.c.stringValue, q.string_value))
            else:
                if q.lower_date is not None:
                    cond = and_(cond, p.c.dateTimeValue >= self.work.db.to_db(q.lower_date))
                if q.upper_date is not None:
                    cond = and_(cond, p.c.dateTimeValue <= self.work.db.to_db(q.upper_date))
        back = SCHEMA.entities[entity].fields[self.target.lower()]
        return self.t.c.id.in_(select(p.c[back.name]).where(cond))

    # -- filters ------------------------------------------------------------------------------

    def _filter(self, key: str, value: Any) -> ColumnElement[bool]:
        head, _, rest = key.partition(".")
        owner = head.lower()
        if not rest:  # {"investigationparameter": [{"filter": [...]}, ...]}: all must hold
            items = value if isinstance(value, list) else [value]
            return and_(true(), *(self._filter_value(owner, "", v, key) for v in items))
        if isinstance(value, list):
            if not value:
                return false()
            return or_(*(self._filter_value(owner, rest, v, key) for v in value))
        return self._filter_value(owner, rest, value, key)

    def _filter_value(self, owner: str, field: str, value: Any, key: str
                      ) -> ColumnElement[bool]:
        if owner == self.target.lower():
            if isinstance(value, dict) and "filter" in value:
                raise bad_parameter(f"filter {key}: a nested filter needs a related entity")
            return self._value_condition(self.target, self.t, field, value, key)
        link = LINKS[self.target].get(owner)
        if link is None:
            raise bad_parameter(
                f"filter {key}: {owner} is not related to {self.target}; filters may name "
                f"{', '.join([self.target.lower(), *LINKS[self.target]])}")
        entity = _entity_at(self.target, link)
        c = self.tables[entity]
        if isinstance(value, dict) and "filter" in value:
            items = value["filter"]
            if not isinstance(items, list):
                raise bad_parameter(f"filter {key}: 'filter' must be a list")
            conds = [self._nested(entity, c, item, key) for item in items]
            inner = select(c.c.id).where(*conds)
        else:
            inner = select(c.c.id).where(self._value_condition(entity, c, field, value, key))
        return self.t.c.id.in_(reach(self.tables, self.target, link, inner))

    def _value_condition(self, entity: str, t: Table, field: str, value: Any, key: str
                         ) -> ColumnElement[bool]:
        expr = self.field_expr(entity, t, field, key)
        kind = _kind(entity, field, key)
        to_db = self.work.db.to_db
        if isinstance(value, dict):
            if value.get("from") is None and value.get("to") is None:
                raise bad_parameter(f"filter {key}: a range needs from and/or to")
            return range_condition(expr, kind, value.get("from"), value.get("to"),
                                   f"filter {key}", to_db)
        if kind == "Enum":
            if not isinstance(value, str):
                raise bad_parameter(f"filter {key}: a string is expected")
            return expr == value
        return value_condition(expr, kind, value, f"filter {key}", to_db)

    def _nested(self, entity: str, c: Table, item: Any, key: str) -> ColumnElement[bool]:
        if not isinstance(item, dict) or not isinstance(item.get("field"), str):
            raise bad_parameter(f"filter {key}: each nested filter needs a 'field'")
        field = item["field"]
        units = item.get("units")
        if units is not None and not isinstance(units, str):
            raise bad_parameter(f"filter {key}: units must be a string")
        numeric = field in ("numericValue", "numericValueSI") and "Parameter" in entity
        if numeric:
            field = "numericValue"
        if "value" in item:
            return self._value_condition(entity, c, field, item["value"], key)
        if "exact" in item:
            x = item["exact"]
            if numeric:
                if not is_number(x):
                    raise bad_parameter(f"filter {key}: exact must be a number")
                return self._numeric(c, None, units, x, x, exact=True)
            return self._value_condition(entity, c, field, x, key)
        if "from" in item or "to" in item:
            low, high = item.get("from"), item.get("to")
            if numeric:
                for b in (low, high):
                    if b is not None and not is_number(b):
                        raise bad_parameter(f"filter {key}: from and to must be numbers")
                return self._numeric(c, None, units, low, high)
            return self._value_condition(entity, c, field, {"from": low, "to": high}, key)
        raise bad_parameter(f"filter {key}: a nested filter needs value, exact or from/to")

    def field_expr(self, entity: str, t: Table | FromClause, field: str, key: str
                   ) -> ColumnElement[Any]:
        """A field of ``entity`` (row ``t``) by a path of many-to-one steps, as a scalar
        subquery for each step (facets join instead: :meth:`_dimension`)."""
        path = _resolve(entity, field, key)
        if len(path) > 1 and path[-1] == "id":  # a related row's id is the foreign key
            path = path[:-1]
        expr: ColumnElement[Any] = t.c[path[0]]
        cur = entity
        for prev, step in pairwise(path):
            rel = SCHEMA.entities[cur].fields[prev]
            nxt = self.tables[rel.type]
            expr = select(nxt.c[step]).where(nxt.c.id == expr).scalar_subquery()
            cur = rel.type
        return expr

    # -- the page -------------------------------------------------------------------------------

    def sort_exprs(self, sort: list[tuple[str, bool]], t: Any = None
                   ) -> list[tuple[str, ColumnElement[Any], bool]]:
        """(name, expression, descending) of each sort key, on ``t``: the target's table or
        rows carrying its columns."""
        return [(field, self._sort_expr(field, self.t if t is None else t), desc)
                for field, desc in sort]

    def _sort_expr(self, field: str, t: Any) -> ColumnElement[Any]:
        if field == "id":
            return t.c.id
        if field == "date":
            return self.date_expr(t)
        if field == "fileCount" and self.target == "Datafile":
            return literal(1)
        if field in ("startDate", "endDate") and self.target != "Datafile":
            fallback = t.c.createTime if field == "startDate" else t.c.modTime
            return func.coalesce(t.c[field], fallback)
        f = SCHEMA.entities[self.target].field(field)
        if f is None or not f.is_attribute:
            raise bad_parameter(f"can't sort {self.target} results by {field}: sort by id, "
                                "date, name, fileSize, fileCount or another field of "
                                f"{self.target}")
        col = t.c[field]
        if f.type in ("Long", "Integer", "Double"):
            return func.coalesce(col, 0)
        if f.type == "String":
            return func.coalesce(col, "")
        return col

    def _scored(self) -> tuple[FromClause, ColumnElement[float]]:
        """The target's table with the relevance of each row (0 where its own text does
        not match, 1 for all when nothing can be scored)."""
        self.conditions()  # collects the words that score (self.positive)
        doc = self.index.docs.get(self.target)
        ranked = (self.index.backend.ranked(doc, self.positive)
                  if doc is not None and self.positive else None)
        if ranked is None:
            return self.t, cast(literal(1.0), Double())
        sc = ranked.subquery("sc")
        return (self.t.outerjoin(sc, sc.c.id == self.t.c.id),
                cast(func.coalesce(sc.c.score, 0.0), Double()))

    def page(self, sort: list[tuple[str, bool]], after: dict[str, Any] | None, limit: int
             ) -> list[Hit]:
        t = self.t
        conds = self.conditions()
        keys = self.sort_exprs(sort)
        frm: FromClause = t
        if not keys:
            frm, score = self._scored()
            keys = [("_score", score, True)]
        keys = [*keys, ("id", t.c.id, False)]
        if after is not None:
            conds.append(self._after(keys, after))
        order = [k[1].desc() if k[2] else k[1].asc() for k in keys]
        q = select(*(k[1] for k in keys)).select_from(frm).where(*conds).order_by(*order)
        rows = self.work.conn.execute(q.limit(limit), self.work.params).all()
        return [self._hit(r, scored=not sort) for r in rows]

    def _hit(self, r: Sequence[Any], scored: bool) -> Hit:
        return Hit(id=r[-1], score=float(r[0]) if scored else None,
                   keys=tuple(self._json(v) for v in r))

    def page_and_facets(self, sort: list[tuple[str, bool]], after: dict[str, Any] | None,
                        limit: int, requests: Sequence[FacetRequest]
                        ) -> tuple[list[Hit], dict[str, dict[str, Any]]]:
        """A page and the facets of the whole result in one statement: the matching rows
        (with their relevance) are found once, then ordered for the page and counted for
        every dimension."""
        t = self.t
        frm: FromClause = t
        columns = self._carried(sort, requests)
        if not sort:
            frm, score = self._scored()
            columns.append(score.label("_score"))
        matched = (select(*columns).select_from(frm).where(*self.conditions())
                   .cte("matched")
                   .prefix_with("MATERIALIZED", dialect="postgresql")
                   .prefix_with("MATERIALIZED", dialect="sqlite"))
        keys: list[tuple[str, ColumnElement[Any], bool]] = (
            self.sort_exprs(sort, matched) if sort else [("_score", matched.c._score, True)])
        keys = [*keys, ("id", matched.c.id, False)]
        order = [k[1].desc() if k[2] else k[1].asc() for k in keys]
        page = (select(func.row_number().over(order_by=order).label("rank"),
                       *(k[1].label(f"k{i}") for i, k in enumerate(keys)))
                .select_from(matched).order_by(*order).limit(limit))
        if after is not None:
            page = page.where(self._after(keys, after))
        dims = self._dimensions(matched, requests)
        # one UNION ALL: page rows (dim -1) carry the keys, facet rows a label and a count
        sub = page.subquery()
        key_types = [k[1].type for k in keys]
        parts: list[Any] = [select(literal(-1).label("dim"), cast(null(), String()).label("label"),
                                   cast(null(), Integer()).label("n"), sub.c.rank,
                                   *(sub.c[f"k{i}"] for i in range(len(keys))))]
        for i, (_, _, selects) in enumerate(dims):
            for q in selects:
                fs = q.subquery()
                parts.append(select(literal(i), fs.c.label, fs.c.n,
                                    cast(null(), Integer()),
                                    *(cast(null(), tp) for tp in key_types)))
        rows = self.work.conn.execute(union_all(*parts), self.work.params).all()
        page_rows = sorted((r for r in rows if r[0] == -1), key=lambda r: r[3])
        hits = [self._hit(r[4:], scored=not sort) for r in page_rows]
        return hits, self._counts(dims, [r[:3] for r in rows if r[0] != -1])

    def _json(self, v: Any) -> Any:
        """A sort value as ``search_after`` carries it: dates as epoch milliseconds."""
        if isinstance(v, datetime):
            return int(self.work.db.from_db(v).timestamp() * 1000)
        return v

    def _after(self, keys: list[tuple[str, ColumnElement[Any], bool]], after: dict[str, Any]
               ) -> ColumnElement[bool]:
        fields = after.get("fields")
        if not isinstance(fields, list) or len(fields) != len(keys):
            raise bad_parameter(f"search_after: fields should have the same length as sort "
                                f"(plus the id), but they were {_len(fields)} and {len(keys)}")
        values = [sort_value(self._sort_kind(name), v, f"search_after {name}",
                             self.work.db.to_db)
                  for (name, _, _), v in zip(keys, fields, strict=True)]
        # (k1, k2, ...) after (v1, v2, ...) in the sort's directions
        out: ColumnElement[bool] = false()
        for i in reversed(range(len(keys))):
            _, expr, desc = keys[i]
            beyond = expr < values[i] if desc else expr > values[i]
            out = or_(beyond, and_(expr == values[i], out)) if i < len(keys) - 1 else beyond
        return out

    def _sort_kind(self, name: str) -> str:
        if name == "_score":
            return "Double"
        if name in ("id", "fileCount"):
            return "Long"
        if name in ("date", "startDate", "endDate"):
            return "Date"
        return _kind(self.target, name, "sort")

    # -- facets -----------------------------------------------------------------------------------

    def _carried(self, sort: list[tuple[str, bool]], requests: Sequence[FacetRequest]
                 ) -> list[ColumnElement[Any]]:
        """The target's columns the matching rows carry for the page's order and the facets:
        its foreign keys, numbers and dates, and the text fields named (a short statement:
        the driver parses every statement's text)."""
        entity = SCHEMA.entities[self.target]
        named = {f for f, _ in sort} | {d.name.split(".")[0] for f in requests
                                        for d in f.dimensions}
        keep = [c for c in self.t.c
                if c.key == "id" or (f := entity.fields.get(c.key)) is None or f.is_one
                or f.type != "String" or c.key in named]
        return [c.label(c.key) for c in keep]

    def _dimensions(self, matched: Any, requests: Sequence[FacetRequest]
                    ) -> list[tuple[str, Dimension, list[Select[Any]]]]:
        dims: list[tuple[str, Dimension, list[Select[Any]]]] = []
        for f in requests:
            owner = f.target.lower()
            if owner == self.target.lower():
                path: tuple[str, ...] = ()
                entity = self.target
            else:
                link = LINKS[self.target].get(owner)
                if link is None:
                    raise bad_parameter(
                        f"facet {f.target}: not related to {self.target}; facets may name "
                        f"{', '.join(sorted({self.target, *LINKS[self.target]}))}")
                path, entity = link, _entity_at(self.target, link)
            for d in f.dimensions or tuple(Dimension(d) for d in SPARSE.get(
                    entity if not path else owner, ())):
                dims.append((f"{f.target}.{d.name}", d,
                             self._dimension(matched, path, entity, d, f.target)))
        return dims

    def _dimension(self, matched: Any, path: tuple[str, ...], entity: str, d: Dimension,
                   label: str) -> list[Select[Any]]:
        frm: FromClause = matched
        cur: FromClause = matched
        cur_entity = self.target
        used = {self.target}
        for step in path:
            rel = SCHEMA.entities[cur_entity].fields[step]
            nxt = self._table(rel.type, used)
            if rel.is_one:
                frm = frm.join(nxt, nxt.c.id == cur.c[rel.name])
            else:
                assert rel.mapped_by is not None
                frm = frm.join(nxt, nxt.c[rel.mapped_by] == cur.c.id)
            cur, cur_entity = nxt, rel.type
        conds = self._readable(cur, cur_entity) if path else []
        return self._count(frm, matched.c.id, conds, cur, cur_entity, d, label, used)

    def _count(self, frm: FromClause, counted: ColumnElement[Any],
               conds: Sequence[ColumnElement[bool]], alias: Any, entity: str, d: Dimension,
               label: str, used: set[str]) -> list[Select[Any]]:
        """Statements giving (label, distinct ``counted``) for dimension ``d`` of ``alias``
        (a row of ``entity``): its most frequent labels, or one row per range."""
        value, frm, visible = self._join_field(frm, alias, entity, d.name,
                                               f"{label}.{d.name}", used)
        conds = [*conds, *visible]
        if d.ranges:
            kind = _kind(entity, d.name, label)
            if kind not in ("Long", "Integer", "Double", "Date"):
                raise bad_parameter(f"'ranges' specified for dimension {d.name} but this is "
                                    "not a supported numeric field")
            out: list[Any] = []  # Select rows (label, n)
            for r in d.ranges:
                within = range_condition(value, kind, r.low, r.high, f"{label}.{d.name}",
                                         self.work.db.to_db, high_open=True)
                out.append(select(literal(r.key, String()).label("label"),
                                  func.count(func.distinct(case((within, counted))))
                                  .label("n")).select_from(frm).where(*conds))
            return out
        n = func.count(func.distinct(counted))
        q: Any = (select(cast(value, String()).label("label"), n.label("n"))
                  .select_from(frm).where(*conds, value.isnot(None))
                  .group_by(value).order_by(n.desc(), value).limit(self.max_labels))
        return [q]

    def _run_counts(self, dims: Sequence[tuple[str, Dimension, list[Select[Any]]]]
                    ) -> dict[str, dict[str, Any]]:
        """Run every dimension's statements as one UNION ALL."""
        parts = []
        for i, (_, _, selects) in enumerate(dims):
            for q in selects:
                sub = q.subquery()
                parts.append(select(literal(i).label("dim"), sub.c.label, sub.c.n))
        if not parts:
            return {}
        return self._counts(dims, self.work.conn.execute(union_all(*parts),
                                                         self.work.params).all())

    @staticmethod
    def _counts(dims: Sequence[tuple[str, Dimension, list[Select[Any]]]],
                rows: Sequence[Sequence[Any]]) -> dict[str, dict[str, Any]]:
        """(dimension, label, count) rows as ``dimensions``: labels most frequent first,
        ranges in the order asked, dimensions without labels left out."""
        found: dict[int, dict[str, int]] = {}
        for dim, lab, n in rows:
            found.setdefault(dim, {})[str(lab)] = int(n)
        out: dict[str, dict[str, Any]] = {}
        for i, (key, d, _) in enumerate(dims):
            counts = found.get(i, {})
            if d.ranges:
                out[key] = {r.key: counts.get(r.key, 0) for r in d.ranges}
            elif counts:
                out[key] = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        return out

    def own_facets(self, requests: Sequence[FacetRequest], flt: dict[str, Any]
                   ) -> dict[str, dict[str, Any]]:
        """facet/documents: each facet counts the rows of its own entity that ``flt`` (on
        that entity's fields, e.g. ``investigation.id``) selects and the caller may read."""
        dims: list[tuple[str, Dimension, list[Select[Any]]]] = []
        for f in requests:
            ent = SCHEMA.lookup_ci(f.target)
            if ent is None:
                raise bad_parameter(f"facet target {f.target} is not an ICAT entity")
            c = self.tables[ent.name]
            conds: list[ColumnElement[bool]] = []
            for key, value in flt.items():
                values = value if isinstance(value, list) else [value]
                if not values:
                    conds.append(false())
                    continue
                conds.append(or_(*(self._value_condition(ent.name, c, key, v, key)
                                   for v in values)))
            conds.extend(self._readable(c, ent.name))
            owner = ent.name.lower()
            for d in f.dimensions or tuple(Dimension(d) for d in SPARSE.get(
                    ent.name if ent.name in TEXT_FIELDS else owner, ())):
                dims.append((f"{f.target}.{d.name}", d,
                             self._count(c, c.c.id, conds, c, ent.name, d, f.target,
                                         {ent.name})))
        return self._run_counts(dims)

    def _table(self, entity: str, used: set[str]) -> FromClause:
        """The entity's own table if the statement does not use it yet (authorization's
        predicates then apply to the row itself), else an alias."""
        if entity in used:
            return self.tables[entity].alias()
        used.add(entity)
        return self.tables[entity]

    def _join_field(self, frm: FromClause, alias: Any, entity: str, field: str, key: str,
                    used: set[str]
                    ) -> tuple[ColumnElement[Any], FromClause, list[ColumnElement[bool]]]:
        """The field's column, the joins reaching it, and the conditions that the rows
        joined are readable (a label from a row the caller may not read is not shown)."""
        path = _resolve(entity, field, key)
        cur, cur_entity = alias, entity
        conds: list[ColumnElement[bool]] = []
        for step in path[:-1]:
            rel = SCHEMA.entities[cur_entity].fields[step]
            nxt = self._table(rel.type, used)
            frm = frm.join(nxt, nxt.c.id == cur.c[rel.name])
            cur, cur_entity = nxt, rel.type
            conds.extend(self._readable(nxt, cur_entity))
        if entity == "Datafile" and path == ("fileCount",):
            return literal(1), frm, conds
        return cur.c[path[-1]], frm, conds

    def _readable(self, alias: Any, entity: str) -> list[ColumnElement[bool]]:
        """[alias's row is readable], or [] when every row of ``entity`` is."""
        base = self.tables[entity]
        readable = self.work.readable_condition(entity, base.c.id)
        if readable is None:
            return []
        if alias is base:
            return [readable]
        return [alias.c.id.in_(select(base.c.id).where(readable))]


# -- helpers ----------------------------------------------------------------------------------

def _boolean(node: lucene.Node, leaf: Callable[[lucene.Leaf], ColumnElement[bool]]
             ) -> ColumnElement[bool]:
    """A query's boolean structure as SQL, each leaf by ``leaf``."""
    if isinstance(node, lucene.MatchAll):
        return true()
    if isinstance(node, lucene.Leaf):
        return leaf(node)
    must = [_boolean(n, leaf) for n in node.must]
    should = [_boolean(n, leaf) for n in node.should]
    cond: ColumnElement[bool]
    if must:
        cond = and_(*must)
    elif should:
        cond = or_(*should)
    else:  # only exclusions: everything else (Lucene would match nothing)
        cond = true()
    if node.must_not:
        cond = and_(cond, not_(or_(*(_boolean(n, leaf) for n in node.must_not))))
    return cond


def _entity_at(entity: str, path: Sequence[str]) -> str:
    for step in path:
        entity = SCHEMA.entities[entity].fields[step].type
    return entity


def _resolve(entity: str, field: str, key: str) -> tuple[str, ...]:
    """A dotted field of ``entity`` as many-to-one steps and an attribute; icat.lucene's
    document names (a datafile's ``sample.name``, a sample's ``sample.type.name``)
    included."""
    alias = ALIASES.get(entity, {})
    parts = field.split(".")
    if parts[0] in alias:
        parts = [*alias[parts[0]].split("."), *parts[1:]]
    if parts[0] == entity[0].lower() + entity[1:] and len(parts) > 1 \
            and SCHEMA.entities[entity].field(parts[0]) is None:
        parts = parts[1:]  # "sample.type.name" on a Sample document
    cur = entity
    for i, p in enumerate(parts):
        f = SCHEMA.entities[cur].field(p)
        last = i == len(parts) - 1
        if f is None or (not last and not f.is_one) or (last and f.is_many):
            raise bad_parameter(f"{key}: {field} is not a field of {entity}")
        cur = f.type
    return tuple(parts)


def _kind(entity: str, field: str, key: str) -> str:
    """The type of a field as a request compares it: String, Long, Integer, Double, Date,
    Enum or boolean (a related row stands for its id)."""
    path = _resolve(entity, field, key)
    cur = entity
    for step in path[:-1]:
        cur = SCHEMA.entities[cur].fields[step].type
    f = SCHEMA.entities[cur].fields[path[-1]]
    if f.is_one or f.name == "id":
        return "Long"
    if f.type in ("String", "Long", "Integer", "Double", "Date", "boolean"):
        return f.type
    return "Enum"


def _like_match(value: str | None, pattern: str) -> bool:
    return value is not None and fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


def _between(p: Table, low: float | None, high: float | None, exact: bool
             ) -> ColumnElement[bool]:
    # a double: so are the bounds (an integer may pass 64 bits)
    low = None if low is None else float(low)
    high = None if high is None else float(high)
    cond = between(p.c.numericValue, low, high)
    if exact and low is not None and "rangeBottom" in p.c:
        cond = or_(cond, and_(p.c.rangeBottom <= low, p.c.rangeTop >= low))
    return cond


def _len(v: Any) -> int:
    return len(v) if isinstance(v, list) else 0


