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
from functools import cached_property
from itertools import pairwise
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnClause,
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
    exists,
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
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import operators
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BinaryExpression
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import iterate, replacement_traverse

from cairn.catalogue.work import Work
from cairn.errors import bad_parameter
from cairn.query.scope import Aliases, shared_pool
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
from cairn.search.index import INDEXED, KeyTable, literal_words, sort_key_expr
from cairn.search.indexer import SearchIndex
from cairn.search.request import (
    Dimension,
    FacetRequest,
    ParameterQuery,
    SearchRequest,
)
from cairn.search.targets import (
    DEFAULT_FIELDS,
    TEXT_FIELDS,
    TO_INVESTIGATION,
    one_of,
    reach,
    through,
)
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

#: Documents found beyond which the read rules are checked per related row (SQLite).
MANY = 100_000

#: One row in this many (by the largest id) found by a word makes it dense
#: (:attr:`Search._dense_text`).
DENSE = 50

#: Rows of a key table's index a page walks at most before it sorts its hits instead (a
#: user walked 6,816 past files the rules hid, to the 26 newest they may read).
WALK = 20_000

PARAMETER_ENTITY = {"Investigation": "InvestigationParameter", "Dataset": "DatasetParameter",
                    "Datafile": "DatafileParameter"}


@dataclass(frozen=True)
class KeyRules:
    """The caller's read rules for a target as the related rows of one foreign key: the
    target's rows are readable where ``key`` holds an id that ``readable`` selects (rows of
    ``entity``, whose id column is ``id``)."""

    key: str
    entity: str
    id: ColumnElement[Any]
    readable: Select[Any]


@dataclass(frozen=True)
class Hit:
    id: int
    score: float | None
    keys: tuple[Any, ...]  # the sort values, for search_after


class Likely(FunctionElement[bool]):
    """A condition most rows meet. SQLite's planner takes ``x IN (subquery)`` for a few
    rows and would read a million through an index rather than start from a smaller
    table; ``likelihood()`` tells it otherwise. Other databases estimate it themselves."""

    type = Boolean()
    name = "likely"
    inherit_cache = True


@compiles(Likely)
def _likely(el: Likely, compiler: SQLCompiler, **kw: Any) -> str:
    # in parentheses: the condition may be an OR, and the statement ANDs it with others
    return f"({compiler.process(el.clauses, **kw)})"


@compiles(Likely, "sqlite")
def _likely_sqlite(el: Likely, compiler: SQLCompiler, **kw: Any) -> str:
    return f"likelihood({compiler.process(el.clauses, **kw)}, 0.9375)"


class PerRow(FunctionElement[bool]):
    """``PerRow(condition, joined)``: a condition to check for each row a statement joins,
    not for every row of the catalogue it could admit: PostgreSQL turns an ``EXISTS`` in a
    WHERE clause into a join with everything it admits (a hash of 800,000 readable datafiles
    to check 2,000 parameters); one it can't turn so, it runs for each row, through the
    indexes. ``joined``, a column of the row the checked one is joined to (never null),
    ties the check to that join: else PostgreSQL checks every row of the checked table
    before joining (all 42,000 file parameters, 175 ms, for the 2,639 of a user's search)."""

    type = Boolean()
    name = "per_row"
    inherit_cache = True


@compiles(PerRow)
def _per_row(el: PerRow, compiler: SQLCompiler, **kw: Any) -> str:
    condition = el.clauses.clauses[0]
    return f"({compiler.process(condition, **kw)})"  # as Likely's


@compiles(PerRow, "postgresql")
def _per_row_pg(el: PerRow, compiler: SQLCompiler, **kw: Any) -> str:
    condition, joined = el.clauses.clauses
    return (f"(({compiler.process(condition, **kw)}) OR "
            f"{compiler.process(joined, **kw)} IS NULL) IS TRUE")


@dataclass(frozen=True)
class Tally:
    """How a facet counts the rows it is given: each row once (``counted`` None, no
    ``weight``), distinct values of ``counted``, or the sum of ``weight`` (the size of a
    group of matching rows) over distinct ``groups`` per label (each group once)."""

    counted: ColumnElement[Any] | None = None
    weight: ColumnElement[Any] | None = None
    groups: Sequence[ColumnElement[Any]] = ()

    def labels(self, value: ColumnElement[Any], frm: FromClause,
               conds: Sequence[ColumnElement[bool]], limit: int) -> Select[Any]:
        """(label, count) of the ``limit`` most frequent values."""
        if self.weight is not None and self.groups:
            once = (select(*self.groups, self.weight.label("w"), value.label("v"))
                    .select_from(frm).where(*conds).distinct().subquery())
            n: ColumnElement[Any] = func.sum(once.c.w)
            return (select(cast(once.c.v, String()).label("label"), n.label("n"))
                    .group_by(once.c.v).order_by(n.desc(), once.c.v).limit(limit))
        if self.weight is not None:
            n = func.sum(self.weight)
        elif self.counted is not None:
            n = func.count(func.distinct(self.counted))
        else:
            n = func.count()
        return (select(cast(value, String()).label("label"), n.label("n"))
                .select_from(frm).where(*conds)
                .group_by(value).order_by(n.desc(), value).limit(limit))

    def range(self, key: ColumnElement[Any], frm: FromClause,
              conds: Sequence[ColumnElement[bool]], within: ColumnElement[bool]
              ) -> Select[Any]:
        """(key, count) of the rows with a value ``within`` a range."""
        if self.weight is not None and self.groups:
            once = (select(*self.groups, self.weight.label("w")).select_from(frm)
                    .where(*conds, within).distinct().subquery())
            return select(key.label("label"),
                          func.coalesce(func.sum(once.c.w), 0).label("n"))
        n: ColumnElement[Any]
        if self.weight is not None:
            n = func.coalesce(func.sum(case((within, self.weight))), 0)
        elif self.counted is not None:
            n = func.count(func.distinct(case((within, self.counted))))
        else:
            n = func.count(case((within, literal(1))))
        return select(key.label("label"), n.label("n")).select_from(frm).where(*conds)


class Search:
    """One search's statements, built for a unit of work (the caller's rules, the clock)."""

    def __init__(self, work: Work, index: SearchIndex, units: Units, req: SearchRequest,
                 *, max_labels: int = 100, rank_limit: int | None = None) -> None:
        self.work = work
        self.index = index
        self.units = units
        self.req = req
        self.max_labels = max_labels
        self.target = req.target
        self.tables = work.tables
        self.t: Table = self.tables[self.target]
        self.positive: list[lucene.Leaf] = []
        #: The conditions built (other than the rules), as rows are checked one by one
        #: (False) or all at once (True); see :meth:`conditions`.
        self._conditions: dict[bool, list[ColumnElement[bool]]] = {}
        self._whole = False
        self._by_key: tuple[ColumnElement[bool] | None] | None = None
        self._ctes = 0
        self._parsed: dict[str, lucene.Node] = {}
        self._found: dict[tuple[int, tuple[str, ...]],
                          tuple[list[Any], dict[str, set[int]]]] = {}
        #: Rank by relevance only when the documents to score are at most this many; more
        #: (a prefix of nearly every file name) are then in id order, as when nothing can
        #: be scored, and :attr:`unranked` says so. None: always rank (REST).
        self.rank_limit = rank_limit
        self.unranked = False
        self._score: tuple[FromClause, ColumnElement[float]] | None = None
        #: A walk of a key table went :data:`WALK` rows without its page: sort instead.
        self._no_walk = False
        #: The rows are found by looking the words up (:meth:`_leaf`), not by reading
        #: the table: SQLite then writes them once for the counts (:meth:`_written`).
        self._looked_up = False
        index.backend.prepare(work.conn)

    # -- what matches -------------------------------------------------------------------------

    def conditions(self, *, whole: bool = False) -> list[ColumnElement[bool]]:
        """The conditions on the target's table (its rows, not an alias) that the documents
        found meet: built once, for the page and every facet of a request. ``whole``: for
        a statement reading every document found (facets, a ranked page), with the read
        rules evaluated once per related row where they allow (:meth:`_readable_by_key`);
        else per row, which a page of the first hits in index order stops early."""
        if whole not in self._conditions:
            self._whole = whole
            self._conditions[whole] = self._build()
        if self._text_keeps_to_readable:
            return list(self._conditions[whole])
        if whole and self._by_key is None:
            self._by_key = (self._readable_by_key() if self._many else
                            self.work.readable_condition(self.target, self.t.c.id),)
        readable = self._by_key[0] if whole and self._by_key else \
            self.work.readable_condition(self.target, self.t.c.id)
        return [*self._conditions[whole], *([readable] if readable is not None else [])]

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
        return out

    @cached_property
    def _many(self) -> bool:
        """Whether a statement reading every document found may read many: then the rules
        are best checked once per related row (:meth:`_readable_by_key`), which costs the
        same however few are found (SQLite: 60 ms for the 20,000 datasets of a million
        datafiles); a few thousand are checked faster one by one. Words found in fewer than
        :data:`MANY` documents of the target's own text and nowhere else mean few; anything
        else may mean many. PostgreSQL plans the rules of each row as a join with every
        row they admit anyway: there they are always checked per related row."""
        r = self.req
        if self.work.db.dialect != "sqlite" or not r.text:
            return True
        self.conditions()  # the words' lookups (self._found), and the words that score
        if any(any(near.values()) or len(branches) != 1 for branches, near
               in self._found.values()):
            return True
        doc = self.index.docs.get(self.target)
        ranked = (self.index.backend.ranked(doc, self.positive)
                  if doc is not None and self.positive else None)
        if ranked is None:
            return True
        ids = ranked.with_only_columns(ranked.selected_columns[0]).limit(MANY + 1).subquery()
        n = self.work.conn.execute(select(func.count()).select_from(ids),
                                   self.work.params).scalar_one()
        return bool(n > MANY)

    @cached_property
    def _key_rules(self) -> KeyRules | None:
        """The caller's read rules for the target as the related rows of one foreign key,
        when they read nothing of the target's row but that mandatory key: a datafile's
        rules reach it through its dataset, so the datafiles readable are those of the
        datasets the rules admit. None otherwise (or when every row is readable).

        The rules are asked for on an alias of the target's table of this module's own,
        so every reference to that alias in the condition is to the row being checked,
        and swapping its one foreign key for the related row's id keeps the meaning."""
        row = _keyed(self.t)
        # the rules as sets: the readable parents are then found from the rules' side (the
        # investigations admitted, their datasets) rather than by checking each parent
        # (SQLite, the 16,159 of 20,000 datasets a user reads: 3.8 ms instead of 17.7)
        cond = self.work.readable_condition(self.target, row.c.id, as_sets=True)
        if cond is None:
            return None
        read = {e.key for e in iterate(cond) if isinstance(e, ColumnClause)
                and e.table is row}
        key = next(iter(read)) if len(read) == 1 else None
        rel = SCHEMA.entities[self.target].fields.get(key) if key is not None else None
        if key is None or rel is None or not rel.is_one or not rel.required:
            return None
        fk = row.c[key]
        inner = _set_of(cond, fk)
        if inner is not None:  # ``FK IN (SELECT ...)``: the set itself, not each parent in it
            ident = inner.selected_columns[0]
            return KeyRules(key, rel.type, ident, inner.with_only_columns(ident.label("id")))
        # the pool's first alias (the statement has no other from it): no new one per search
        parent = Aliases(self.tables, shared_pool(self.tables)).new(SCHEMA.entities[rel.type])

        def swap(element: Any, **kw: Any) -> Any:
            return parent.c.id if element is fk else None

        swapped: ColumnElement[bool] = replacement_traverse(cond, {}, swap)
        return KeyRules(key, rel.type, parent.c.id,
                        select(parent.c.id.label("id")).where(swapped))

    def _readable_by_key(self) -> ColumnElement[bool] | None:
        """The caller's read rules for the target as a condition on its rows, evaluated
        once per related row where they allow (:attr:`_key_rules`): a million datafiles
        are checked as the twenty thousand datasets they are in (``DATASET_ID IN (the
        datasets whose files the rules admit)``)."""
        by_key = self._key_rules
        if by_key is None:
            return self.work.readable_condition(self.target, self.t.c.id)
        # found once per statement, however many counts read it
        parents = self._once(by_key.readable, f"readable_{by_key.entity.lower()}")
        return Likely(self.t.c[by_key.key].in_(select(parents.c.id)))

    @cached_property
    def _keeps_keys_readable(self) -> KeyRules | None:
        """The rules' key (:attr:`_key_rules`) where the related rows a word reaches through
        it are kept to those whose rows the caller may read (:meth:`_readable_keys`): on
        SQLite, which otherwise checks every row found against the readable set (a user's
        49,730 files: 15 ms). PostgreSQL hashes that set once and joins it; a statement of
        its own would add more planning than it saves (12 ms)."""
        return self._key_rules if self.work.db.dialect == "sqlite" else None

    def _readable_keys(self, name: str, ids: set[int]) -> set[int]:
        """Of the related rows ``ids`` that the target's foreign key ``name`` must reach
        (a word's datasets), those whose rows the rules let the caller read, where the rules
        are that key's (:attr:`_keeps_keys_readable`): the rest hold no readable row, and a
        statement finding rows through these alone need not check them again."""
        by_key = self._keeps_keys_readable
        if by_key is None or by_key.key != name or not ids:
            return ids
        q = by_key.readable.where(one_of(by_key.id, sorted(ids), self.work.db.dialect))
        return set(self.work.conn.execute(q, self.work.params).scalars())

    @cached_property
    def _text_keeps_to_readable(self) -> bool:
        """Whether the rows the text finds are readable all: it is one word, found in
        related rows alone, through the one foreign key the rules read, and those rows
        were kept to the readable ones (:meth:`_readable_keys`). The statements then need
        no read check (a user's 49,730 files of 1,215 datasets each checked: 15 ms on
        SQLite). The conditions must be built."""
        by_key = self._keeps_keys_readable
        if by_key is None or not self.req.text:
            return False
        leaf = self._parse(self.req.text)
        found = self._found.get((id(leaf), ()))
        if not isinstance(leaf, lucene.Leaf) or found is None:
            return False
        branches, near = found
        return not branches and all(not ids for name, ids in near.items()
                                    if name != by_key.key)

    def _parse(self, text: str) -> lucene.Node:
        node = self._parsed.get(text)
        if node is None:
            try:
                node = self._parsed[text] = lucene.parse(text)
            except lucene.QuerySyntaxError as e:
                raise bad_parameter("Search term could not be parsed due to syntax errors: "
                                    f"{e.message}", e.position) from None
        return node

    def _text(self, node: lucene.Node) -> ColumnElement[bool]:
        if not self._conditions:  # the first time the conditions are built
            self._collect_positive(node, negated=False)
        return self._node(node)

    def _collect_positive(self, node: lucene.Node, negated: bool) -> None:
        if isinstance(node, lucene.Leaf):
            # a lone wildcard term (calib*, sc?n) scores the same in every document it
            # matches, as Lucene's constant-score rewrite of wildcard and prefix queries
            # has it: ranking by it would only sort ties
            wild = len(node.parts) == 1 and any(c in node.parts[0] for c in "*?")
            if not negated and not wild:
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
        key = (id(leaf), tuple(fields or ()))
        if key not in self._found:
            self._found[key] = self._lookup(leaf, fields)
        branches, near = self._found[key]
        reaching = [(name, reached) for name, reached in near.items() if reached]
        if self._whole and self.work.db.dialect == "sqlite":
            self._looked_up = True
            if not branches and len(reaching) == 1:
                # found through one foreign key alone (files by their datasets' samples):
                # its index finds the rows
                return self._reaches(*reaching[0])
            # one set of ids, found once, for a statement reading every row
            alternatives = [select(self.t.c.id).where(self._reaches(name, reached))
                            for name, reached in reaching]
            every = [*branches, *alternatives]
            if not every:
                return false()
            self._ctes += 1
            found = self._once(every[0] if len(every) == 1 else union(*every),
                               f"found_{self._ctes}")
            return self.t.c.id.in_(select(found.c[0]))
        # alternatives on the row itself (its id among the documents found, its foreign
        # key among the related rows found): a page in id order then checks the first
        # rows instead of collecting every id first
        conds: list[ColumnElement[bool]] = []
        if branches:
            conds.append(self.t.c.id.in_(branches[0] if len(branches) == 1
                                         else union(*branches)))
        conds.extend(self._reaches(name, reached) for name, reached in reaching)
        if not conds:
            return false()
        return conds[0] if len(conds) == 1 else or_(*conds)

    def _reaches(self, name: str, ids: set[int]) -> ColumnElement[bool]:
        """The target's foreign key ``name`` holds one of ``ids``: false, never unknown, where
        it is null (a dataset without a sample lacks the sample's words, and ``-beryl``
        must find it)."""
        col = self.t.c[name]
        within = one_of(col, sorted(ids), self.work.db.dialect)
        required = SCHEMA.entities[self.target].fields[name].required
        return within if required else and_(col.isnot(None), within)

    def _lookup(self, leaf: lucene.Leaf, fields: Sequence[str] | None
                ) -> tuple[list[Any], dict[str, set[int]]]:
        """Where ``leaf`` is found: statements selecting ids of the target, and the ids
        of related rows that a foreign key of the target must hold (looked up now)."""
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
                # a word the target's own documents lack (a sample's name, in files) leaves
                # the related rows alone: an OR with an empty look-up keeps PostgreSQL from
                # the foreign key's index (a scan of a million files for 62,000 in 1,501
                # datasets). Asked only of the index's words: a bare wildcard scans.
                if literal_words(leaf) and self.work.conn.execute(
                        found.limit(1), self.work.params).first() is None:
                    continue
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
                hop = reach(self.tables, first.type, path[1:], ids, self.work.db.dialect)
                hop_ids = hop if isinstance(hop, list) else self._ids(hop)
                if hop_ids is not None:
                    near.setdefault(first.name, set()).update(hop_ids)
                    continue
            branches.append(reach(self.tables, self.target, path, ids,
                                  self.work.db.dialect))
        return branches, {name: self._readable_keys(name, ids) for name, ids in near.items()}

    def _once(self, q: Any, name: str) -> Any:
        """``q`` as SQLite computes it once per statement, however many counts read it
        (a common table expression); elsewhere as a subquery, whose size the planner
        estimates (PostgreSQL takes a common table expression for 200 rows)."""
        if self.work.db.dialect != "sqlite":
            return q.subquery(name)
        return q.cte(name).prefix_with("MATERIALIZED")

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
        expr = sort_key_expr(self.target, "date", self.t if t is None else t)
        assert expr is not None
        return expr

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
        if field in ("startDate", "endDate", "fileSize") and (
                keyed := sort_key_expr(self.target, field, t)) is not None:
            return keyed  # as the key tables keep it
        f = SCHEMA.entities[self.target].field(field)
        if f is None or not f.is_attribute:
            raise bad_parameter(f"can't sort {self.target} results by {field}: sort by id, "
                                "date, name, fileSize, fileCount or another field of "
                                f"{self.target}")
        col = t.c[field]
        if f.required:  # as it is, so an index on the column gives the order
            return col
        if f.type in ("Long", "Integer", "Double"):
            return func.coalesce(col, 0)
        if f.type == "String":
            return func.coalesce(col, "")
        return col

    def _scored(self) -> tuple[FromClause, ColumnElement[float]]:
        """The target's table with the relevance of each row (0 where its own text does
        not match, 1 for all when nothing can be scored, or when more than
        :attr:`rank_limit` documents would be)."""
        if self._score is None:
            self._score = self._scoring()
        return self._score

    def _scoring(self) -> tuple[FromClause, ColumnElement[float]]:
        self.conditions()  # collects the words that score (self.positive)
        doc = self.index.docs.get(self.target)
        ranked = (self.index.backend.ranked(doc, self.positive)
                  if doc is not None and self.positive else None)
        if ranked is not None:
            # every document matching a word is scored before the first is known: count
            # them first, up to the limit (the index's own lookup, without scores); where
            # none is (the words are in related rows only), every score is 0
            cap = self.rank_limit or 0
            ids = ranked.with_only_columns(ranked.selected_columns[0]).limit(
                cap + 1).subquery()
            n = self.work.conn.execute(select(func.count()).select_from(ids),
                                       self.work.params).scalar_one()
            if n == 0:
                return self.t, cast(literal(0.0), Double())
            if self.rank_limit is not None and n > self.rank_limit:
                self.unranked = True
                ranked = None
        if ranked is None:
            return self.t, cast(literal(1.0), Double())
        sc = ranked.subquery("sc")
        return (self.t.outerjoin(sc, sc.c.id == self.t.c.id),
                cast(func.coalesce(sc.c.score, 0.0), Double()))

    def _keys(self, sort: list[tuple[str, bool]], t: Any, score: ColumnElement[Any] | None
              ) -> list[tuple[str, ColumnElement[Any], bool]]:
        """(name, expression, descending) of the page's order on ``t``: the sort asked for,
        or the relevance, then the id."""
        if sort:
            keys = self.sort_exprs(sort, t)
        else:
            assert score is not None
            keys = [("_score", score, True)]
        return [*keys, ("id", t.c.id, False)]

    def page(self, sort: list[tuple[str, bool]], after: dict[str, Any] | None, limit: int
             ) -> list[Hit]:
        """A page of hits: the order and the limit are in the statement that matches and
        authorizes, so a page of the first hits of a million in id order reads about a
        page of rows (keys that are the same for every row, such as the relevance when
        nothing is scored, are not sorted on). Another order reads every hit: the rules
        are then checked once per related row."""
        t = self.t
        frm: FromClause = t
        score = None
        if not sort:
            frm, score = self._scored()
        keys = self._keys(sort, t, score)
        walked = self._walked_keys(sort)
        bound = None
        if walked is not None:
            # the key table's rows in its (key, id) index's order, each joined to its row
            kt = walked.table
            frm = t.join(kt, kt.c.id == t.c.id)
            keys = [(n, kt.c.id if n == "id" else kt.c[walked.fields[n]], d)
                    for n, _, d in keys]
            bound = self._walk_bound(kt, keys, after)
        whole = len(_order(keys)) > 1 and not (
            (walked is not None or self._indexed_order(sort)) and self._many)
        conds = self.conditions(whole=whole)
        if walked is not None:  # many rows meet them: SQLite then walks the key index
            dense = self._dense_text if self.req.text else None
            if dense is not None:  # asked last: a row the rules hide costs no look-up
                conds = [*(c for c in conds if c is not dense[0]), dense[1]]
            conds = [Likely(c) for c in conds]
        hits = None if whole or sort else self._driving()
        if hits is not None:
            # the index's own documents, in id order, joined to their rows
            found, text = hits
            ident = next(iter(found.c))
            frm = found.join(t, t.c.id == ident)
            conds = [c for c in conds if c is not text]
            keys = [(n, ident if n == "id" else e, d) for n, e, d in keys]
        if after is not None:
            conds.append(self._after(keys, after))
        if bound is not None:  # the walk's end: the index's range, then the row itself
            (_, key, desc), bound_key = keys[0], bound[0]
            conds += [key >= bound_key if desc else key <= bound_key,
                      not_(self._beyond(keys, bound))]
        q = (select(*(k[1] for k in keys)).select_from(frm).where(*conds)
             .order_by(*_order(keys)))
        rows = self.work.conn.execute(q.limit(limit), self.work.params).all()
        if bound is not None and len(rows) < limit:
            # the page's rows lie deeper than a walk should go: sorting them all is faster
            self._no_walk = True
            return self.page(sort, after, limit)
        return [self._hit(r, scored=not sort) for r in rows]

    def _walk_bound(self, kt: Any, keys: list[tuple[str, ColumnElement[Any], bool]],
                    after: dict[str, Any] | None) -> tuple[Any, ...] | None:
        """The keys of the :data:`WALK`-th row of the key table after ``after`` in the
        page's order (read from its index alone), where a walk stops looking; None when
        fewer rows are left, all of which the walk may read."""
        q = select(*(e for _, e, _ in keys)).select_from(kt)
        if after is not None:
            q = q.where(self._after(keys, after))
        row = self.work.conn.execute(q.order_by(*_order(keys)).offset(WALK - 1).limit(1),
                                     self.work.params).first()
        return None if row is None else tuple(row)

    def _indexed_order(self, sort: list[tuple[str, bool]]) -> bool:
        """Whether an index of the target gives the page's order (cairn_0009: files by
        name): when many may match, the page then reads about a page of rows of that
        index, each checked alone; a few are sorted faster."""
        return self.target == "Datafile" and [f for f, _ in sort] == ["name"]

    def _walked_keys(self, sort: list[tuple[str, bool]]) -> KeyTable | None:
        """The key table whose (key, id) index gives the page's order (a datafile's date or
        size, a dataset's or an investigation's dates), when many may match and it holds
        every row's keys: the page then reads about a page of that index's rows, each row
        checked alone, instead of computing and sorting the key of every row found. Else
        None: the expressions.

        Not with samples or a user's full name, nor with text other than one dense word
        (:attr:`_dense_text`): every document they match is collected before the first row
        is checked, and the walk would go as deep as those rows lie (``calib*`` over a
        million files: 450 ms walking, 60 ms sorting its 12,000 files)."""
        r = self.req
        if len(sort) != 1 or r.samples or r.user_full_name or self._no_walk:
            return None
        keys = self.index.keys.get(self.target)
        if keys is None or sort[0][0] not in keys.fields or not self._many:
            return None
        if r.text and self._dense_text is None:
            return None
        return self.index.keys_filled(self.work.conn, self.target)

    @cached_property
    def _dense_text(self) -> tuple[ColumnElement[bool], ColumnElement[bool]] | None:
        """When the text is one word found in the target's own documents alone, in at
        least one row of :data:`DENSE`: its condition, and the same asked of each row
        (``EXISTS``, the index's own look-up of one document). A walk in a key's order then
        meets its rows within a few dozen of the key index's (``scan*``, in 97 % of a
        million files, walked rather than 970,000 sorted), and asks each row rather than
        collecting every id first; a rarer word's rows may lie deep in that order
        (``calib*``, 1.2 %: its 12,000 files are sorted faster). Else None."""
        self.conditions()  # the words' lookups (self._found)
        branch = self._lone_word()
        if branch is None:
            return None
        conn, t = self.work.conn, self.t
        need = max((conn.execute(select(func.max(t.c.id))).scalar() or 0) // DENSE, 1)
        ids = branch.limit(need).subquery()
        if conn.execute(select(func.count()).select_from(ids),
                        self.work.params).scalar_one() < need:
            return None
        return (self._conditions[False][0],
                exists(branch.where(branch.selected_columns[0] == t.c.id)))

    def _driving(self) -> tuple[Any, ColumnElement[bool]] | None:
        """For a page in id order on SQLite: the documents of the only word asked (and the
        condition they replace), when its own index is all that finds them and nothing
        else narrows them. SQLite collects every id of an ``IN`` subquery before reading
        the first row (a prefix of nearly every file name: a million); joined, the full-text
        index gives its documents in id order and the page stops after its rows."""
        r = self.req
        if (self.work.db.dialect != "sqlite" or not r.text or r.samples or r.user
                or r.user_full_name or r.lower or r.upper or r.parameters or r.filter):
            return None
        branch = self._lone_word()
        doc = self.index.docs.get(self.target)
        if doc is None or branch is None or branch.get_final_froms() != [doc.table]:
            return None
        text = self._conditions[False][0]
        return branch.subquery("hits"), text

    def _lone_word(self) -> Select[Any] | None:
        """The look-up of the text when it is one word found in the target's own documents
        alone (one statement, nothing in related documents); else None. The conditions
        must be built (:meth:`conditions`)."""
        leaf = self._parse(self.req.text or "")
        found = self._found.get((id(leaf), ()))
        if not isinstance(leaf, lucene.Leaf) or found is None:
            return None
        branches, near = found
        branch = branches[0] if len(branches) == 1 else None
        return branch if isinstance(branch, Select) and not any(near.values()) else None

    def _hit(self, r: Sequence[Any], scored: bool) -> Hit:
        return Hit(id=r[-1], score=float(r[0]) if scored else None,
                   keys=tuple(self._json(v) for v in r))

    def page_and_facets(self, sort: list[tuple[str, bool]], after: dict[str, Any] | None,
                        limit: int, requests: Sequence[FacetRequest]
                        ) -> tuple[list[Hit], dict[str, dict[str, Any]]]:
        """A page and the facets of the whole result in one statement: the matching rows
        are found once (with their relevance when they are ranked) and counted for every
        dimension; the page is ordered from them, or, when its order needs nothing the
        rows carry (the first hits in id order), found with its limit by the same
        conditions."""
        t = self.t
        frm: FromClause = t
        columns = self._carried(sort, requests)
        score = None
        if not sort:
            frm, score = self._scored()
        ranked = score is not None and not _constant(score)
        if score is not None and ranked:
            columns.append(score.label("_score"))
        conds = self.conditions(whole=True)
        matched = (select(*columns).select_from(frm).where(*conds).cte("matched")
                   .prefix_with("MATERIALIZED", dialect="postgresql")
                   .prefix_with(self._written(ranked), dialect="sqlite"))
        if ranked:
            keys = self._keys(sort, matched, matched.c._score)
            page = select(*(k[1] for k in keys)).select_from(matched)
        else:
            keys = self._keys(sort, t, score)
            page = (select(*(k[1] for k in keys)).select_from(frm)
                    .where(*self.conditions(whole=len(_order(keys)) > 1)))
        if after is not None:
            page = page.where(self._after(keys, after))
        limited = page.order_by(*_order(keys)).limit(limit).subquery()
        # numbered outside the limit: a window function inside it would see every row
        cols = list(limited.c)
        numbered = select(
            func.row_number().over(order_by=_order(
                [(k[0], c, k[2]) for c, k in zip(cols, keys, strict=True)]))
            .label("rank"), *(c.label(f"k{i}") for i, c in enumerate(cols))).subquery()
        dims = self._dimensions(matched, requests)
        # one UNION ALL: page rows (dim -1) carry the keys, facet rows a label and a count
        key_types = [k[1].type for k in keys]
        parts: list[Any] = [select(literal(-1).label("dim"), cast(null(), String()).label("label"),
                                   cast(null(), Integer()).label("n"), numbered.c.rank,
                                   *(numbered.c[f"k{i}"] for i in range(len(keys))))]
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

    def facets(self, requests: Sequence[FacetRequest]) -> dict[str, dict[str, Any]]:
        """The facets of the whole result, without a page: one statement over the matching
        rows (the portal draws its page first and asks for these separately)."""
        columns = self._carried([], requests)
        conds = self.conditions(whole=True)
        matched = (select(*columns).select_from(self.t).where(*conds).cte("matched")
                   .prefix_with("MATERIALIZED", dialect="postgresql")
                   .prefix_with(self._written(False), dialect="sqlite"))
        return self._run_counts(self._dimensions(matched, requests))

    def _written(self, ranked: bool) -> str:
        """Whether SQLite writes the matching rows once for every count to read: where the
        page reads their scores, or where the words' look-ups found them. Each count would
        otherwise read them again by the index it counts by, checking every row of the
        table against the words' sets (998,420 files: 61,948 of 1,501 datasets counted in
        43 ms written, 225 not; calib*'s 12,604 in 20, 37 not; scan*'s 970,080 in 0.9 s,
        1.2 not). Rows found by reading the table (no words) are read again instead, each
        count following its index without a sort (all files: 0.2 s, 0.6 written)."""
        return "MATERIALIZED" if ranked or self._looked_up else "NOT MATERIALIZED"

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
        return self._beyond(keys, values)

    @staticmethod
    def _beyond(keys: list[tuple[str, ColumnElement[Any], bool]], values: Sequence[Any]
                ) -> ColumnElement[bool]:
        """Rows whose keys come after ``values`` (the database's) in the page's order."""
        # (k1, k2, ...) after (v1, v2, ...) in the sort's directions; a key the same for
        # every row (the relevance where nothing is scored) decides nothing
        compared = [(k, v) for k, v in zip(keys, values, strict=True) if not _constant(k[1])]
        out: ColumnElement[bool] = false()
        for i in reversed(range(len(compared))):
            (_, expr, desc), value = compared[i]
            beyond = expr < value if desc else expr > value
            out = or_(beyond, and_(expr == value, out)) if i < len(compared) - 1 else beyond
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
        """The target's columns the matching rows carry: the id, and those the page's order
        and the facets read (the foreign keys the facets are reached through, the fields
        counted). Every column carried is written for every matching row."""
        named = {"id"}
        for _, expr, _ in self.sort_exprs(sort):
            named.update(e.key for e in iterate(expr) if isinstance(e, ColumnClause)
                         and e.table is self.t)
        for _, d, path, _, label in self._wanted(requests):
            hop = self._hop(path, d, label)
            if hop is not None:
                named.add(hop)
            elif not path:
                named.add(_resolve(self.target, d.name, f"{label}.{d.name}")[0])
        return [c.label(c.key) for c in self.t.c if c.key in named]

    def _wanted(self, requests: Sequence[FacetRequest]
                ) -> list[tuple[str, Dimension, tuple[str, ...], str, str]]:
        """(key, dimension, path from the target, entity at its end, facet target) of each
        dimension asked for."""
        wanted: list[tuple[str, Dimension, tuple[str, ...], str, str]] = []
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
                wanted.append((f"{f.target}.{d.name}", d, path, entity, f.target))
        return wanted

    def _dimensions(self, matched: Any, requests: Sequence[FacetRequest]
                    ) -> list[tuple[str, Dimension, list[Select[Any]]]]:
        """Each dimension's statements over the ``matched`` rows.

        A dimension reached through a many-to-one step of the target (a datafile's dataset
        or format) counts from the matching rows grouped by those foreign keys (a million
        datafiles are a few thousand datasets): a label's count is the sum of the groups
        reaching it, each group once per label, which is the number of distinct matching
        rows reaching it."""
        wanted = self._wanted(requests)
        hops = {w[0]: self._hop(w[2], w[1], w[4]) for w in wanted}
        # one grouping per foreign key: each can follow that key's index
        grouped = {}
        for k in dict.fromkeys(h for h in hops.values() if h is not None):
            col = matched.c[k]
            grouped[k] = (select(col, func.count().label("n")).select_from(matched)
                          .group_by(col).cte(f"grouped_{k}")
                          .prefix_with("MATERIALIZED", dialect="postgresql")
                          .prefix_with("MATERIALIZED", dialect="sqlite"))
        out: list[tuple[str, Dimension, list[Select[Any]]]] = []
        for key, d, path, entity, label in wanted:
            hop = hops[key]
            if grouped and not path and _everything(d):
                # ranges of ids without bounds (the number found): the groups' sizes
                g = next(iter(grouped.values()))
                n = func.coalesce(func.sum(g.c.n), 0).label("n")
                out.append((key, d, [select(literal(r.key, String()).label("label"), n)
                                     for r in d.ranges]))
            elif hop is not None:
                out.append((key, d, self._dimension(grouped[hop], path, entity, d, label,
                                                    [hop])))
            else:
                out.append((key, d, self._dimension(matched, path, entity, d, label, None)))
        return out

    def _hop(self, path: tuple[str, ...], d: Dimension, label: str) -> str | None:
        """The target's foreign key a dimension is first reached through (a many-to-one
        step), or None (the target's own field, or a one-to-many step first)."""
        steps = path or _resolve(self.target, d.name, f"{label}.{d.name}")[:-1]
        if not steps:
            return None
        first = SCHEMA.entities[self.target].fields[steps[0]]
        return first.name if first.is_one else None

    def _dimension(self, rows: Any, path: tuple[str, ...], entity: str, d: Dimension,
                   label: str, keys: list[str] | None) -> list[Select[Any]]:
        """``rows``: the matching rows, or (with ``keys``, their grouping columns) the
        matching rows grouped by foreign keys, with their number ``n``."""
        frm: FromClause = rows
        cur: FromClause = rows
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
        conds = self._readable_row(cur, cur_entity, next(iter(rows.c))) \
            if path and not self._readable_along(path) else []
        if keys is not None:
            # a group reaches one label at most when every step is many-to-one
            once = all(SCHEMA.entities[e].fields[s].is_one
                       for e, s in _steps(self.target, path))
            tally = Tally(weight=rows.c.n, groups=[] if once else [rows.c[k] for k in keys])
        else:
            # a matching row meets each label once unless a one-to-many step repeats it
            tally = Tally(counted=rows.c.id if path else None)
        return self._count(frm, tally, conds, cur, cur_entity, d, label, used)

    def _readable_along(self, path: tuple[str, ...]) -> bool:
        """Whether the rows at the end of ``path`` are readable wherever the matching row is
        (:meth:`Work.readable_along`), so a facet counts them unchecked: its many-to-one
        steps lead up to a related row, its one-to-many steps down from it (a dataset's
        parameters; the investigation instruments of its investigation)."""
        up: list[str] = []
        down: list[str] = []
        for entity, step in _steps(self.target, path):
            rel = SCHEMA.entities[entity].fields[step]
            if rel.is_one:
                if down:  # up again after down: no one row that both reach
                    return False
                up.append(step)
            else:
                assert rel.mapped_by is not None
                down.insert(0, rel.mapped_by)
        return self.work.readable_along(self.target, tuple(up), _entity_at(self.target, path),
                                        tuple(down))

    def _count(self, frm: FromClause, tally: Tally, conds: Sequence[ColumnElement[bool]],
               alias: Any, entity: str, d: Dimension, label: str, used: set[str]
               ) -> list[Select[Any]]:
        """Statements giving (label, count) for dimension ``d`` of ``alias`` (a row of
        ``entity``), counted as ``tally`` says: its most frequent labels, or one row per
        range."""
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
                out.append(tally.range(literal(r.key, String()), frm, conds, within))
            return out
        return [tally.labels(value, frm, [*conds, value.isnot(None)], self.max_labels)]

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
            found.setdefault(dim, {})[str(lab)] = int(n or 0)
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
                # the entity's own rows, each reaching one label: counted once each
                dims.append((f"{f.target}.{d.name}", d,
                             self._count(c, Tally(), conds, c, ent.name, d, f.target,
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

    def _readable_row(self, alias: Any, entity: str, joined: ColumnElement[Any]
                      ) -> list[ColumnElement[bool]]:
        """[``alias``'s row is readable], checked for each row the statement joins to
        ``joined``'s (a datafile's parameters found) rather than planned as a join with
        every row of the catalogue the rules admit, which PostgreSQL does with a rule in a
        WHERE clause (a hash of 800,000 readable datafiles to check 2,000 parameters)."""
        row = _keyed(self.tables[entity])
        cond = self.work.readable_condition(entity, row.c.id)
        if cond is None:
            return []

        def swap(element: Any, **kw: Any) -> Any:
            if isinstance(element, ColumnClause) and element.table is row:
                return alias.c[element.key]
            return None

        swapped: ColumnElement[bool] = replacement_traverse(cond, {}, swap)
        return [PerRow(swapped, joined)]

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


def _constant(expr: ColumnElement[Any]) -> bool:
    """Whether ``expr`` is the same for every row (it reads no column)."""
    return not any(isinstance(e, ColumnClause) for e in iterate(expr))


def _order(keys: Sequence[tuple[str, ColumnElement[Any], bool]]) -> list[Any]:
    """ORDER BY terms of ``keys``, leaving out those the same for every row (an index
    in the order of the rest can then give the rows in order)."""
    return [k[1].desc() if k[2] else k[1].asc() for k in keys if not _constant(k[1])]


#: An alias of each target's table of this module's own (see Search._readable_by_key); the
#: same for every search, so the authorizer's cache of conditions keeps one per rule set.
_KEYED: dict[int, FromClause] = {}


def _keyed(t: Table) -> Any:
    alias = _KEYED.get(id(t))
    if alias is None or alias.element is not t:  # type: ignore[attr-defined]
        alias = _KEYED[id(t)] = t.alias(f"{t.name}_ROW")
    return alias


def _set_of(cond: ColumnElement[bool], column: ColumnElement[Any]) -> Select[Any] | None:
    """The statement of ``column IN (SELECT ...)`` when ``cond`` is that alone."""
    if isinstance(cond, BinaryExpression) and cond.operator is operators.in_op \
            and cond.left is column:
        element = getattr(cond.right, "element", None)
        if isinstance(element, Select):
            return element
    return None


def _everything(d: Dimension) -> bool:
    """Whether ``d`` counts every row found: ranges of ids without bounds."""
    return d.name == "id" and bool(d.ranges) and all(r.low is None and r.high is None
                                                     for r in d.ranges)


def _steps(entity: str, path: Sequence[str]) -> list[tuple[str, str]]:
    """(entity, relation) of each step of ``path`` from ``entity``."""
    out = []
    for step in path:
        out.append((entity, step))
        entity = SCHEMA.entities[entity].fields[step].type
    return out


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


