"""The unit of work: one transaction, one caller, one clock reading; and the narrow core API
that services call on it.

A :class:`Work` comes from :meth:`Catalogue.as_user` (a session's user, permissions checked)
or :meth:`Catalogue.as_system` (Cairn itself, nothing checked). Adapters, the data service and
every later room use the same methods: read (:meth:`Work.search`, :meth:`Work.get`), check
readable ids (:meth:`Work.readable`, :meth:`Work.require_readable`, and
:meth:`Work.readable_condition` for a service's own statements), write (:meth:`Work.write`,
:meth:`Work.create`, :meth:`Work.update`, :meth:`Work.delete`) and request jobs
(:meth:`Work.enqueue`), all in the one transaction. Writes record change events
(:mod:`cairn.catalogue.changes`) for the listeners told at the end of the unit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Connection, Select, Table, false, select

from cairn.authz import Access, Authorizer
from cairn.cache import IdentityCache
from cairn.catalogue import cascade, read
from cairn.catalogue.changes import ChangeKind, Changes
from cairn.catalogue.objects import Obj
from cairn.catalogue.write import Writer
from cairn.db.engine import Database
from cairn.db.fastread import Match, Processors, Readers, fetch_in, fetch_keyed
from cairn.db.tables import Tables
from cairn.errors import bad_parameter, insufficient_privileges
from cairn.query.compiler import USER, now_values
from cairn.schema import Entity

if TYPE_CHECKING:
    from cairn.catalogue.include import Shape
    from cairn.jobs import Scheduler


#: Ids are Java longs in ICAT.
ID_RANGE = (-(2**63), 2**63 - 1)


@dataclass
class Work:
    conn: Connection
    db: Database
    user: str
    now: datetime  # naive, in the catalogue's zone, as stored
    max_ids: int  # largest IN list sent to the database in one statement
    root: bool = False
    authz: Authorizer | None = None
    max_entities: int = 10_000
    jobs: Scheduler | None = None
    read_only: bool = False
    changes: Changes = field(default_factory=Changes)
    #: Jobs were requested: the scheduler is woken after the commit.
    enqueued: bool = False

    @cached_property
    def params(self) -> Mapping[str, Any]:
        """``:user`` and the clock as statement parameters: every statement that holds a
        query's or an authorization predicate's runtime parameters runs with them."""
        return {USER: self.user, **now_values(self.now)}

    @property
    def tables(self) -> Tables:
        return self.db.tables

    def chunks(self, ids: Iterable[int]) -> Iterator[list[int]]:
        batch: list[int] = []
        for i in ids:
            batch.append(i)
            if len(batch) >= self.max_ids:
                yield batch
                batch = []
        if batch:
            yield batch

    # -- the core API: reading ----------------------------------------------------------------

    def search(self, query: str, shape: Shape[Any] | None = None) -> list[Any]:
        """An ICAT query's results, restricted to what the caller may read (§1.4)."""
        return read.search(self, query, shape)

    def get(self, query: str, id: int, shape: Shape[Any] | None = None) -> Any:
        """One object by id with its includes; NO_SUCH_OBJECT_FOUND or
        INSUFFICIENT_PRIVILEGES when it is absent or unreadable."""
        return read.get(self, query, id, shape)

    # -- the core API: permissions ------------------------------------------------------------

    def allowed(self, access: Access, entity: str, id: int | None,
                attribute: str | None = None) -> bool:
        return self.root or self._authz.allowed(self, access, entity, id, attribute)

    def check(self, access: Access, entity: str, id: int | None) -> None:
        """INSUFFICIENT_PRIVILEGES unless ``access`` to the object is allowed."""
        if not self.root:
            self._authz.check(self, access, entity, id)

    def check_all(self, access: Access, entity: str, ids: Iterable[int]) -> None:
        if not self.root:
            self._authz.check_all(self, access, entity, ids, self.max_ids)

    def readable(self, entity: str, ids: Iterable[int]) -> set[int]:
        """Those of ``ids`` the caller may read (a statement per ``max_ids`` ids)."""
        if self.root:
            return set(ids)
        return self._authz.allowed_ids(self, Access.READ, entity, ids, self.max_ids)

    def require_readable(self, entity: str, ids: Iterable[int]) -> None:
        """INSUFFICIENT_PRIVILEGES naming the first of ``ids`` the caller may not read."""
        wanted = sorted(set(ids))
        allowed = self.readable(entity, wanted)
        for i in wanted:
            if i not in allowed:
                raise insufficient_privileges(f"READ access to {entity}[id:{i}] is not "
                                              "allowed.")

    def readable_condition(self, entity: str, id_column: ColumnElement[Any], *,
                           as_sets: bool = False) -> ColumnElement[bool] | None:
        """A condition on ``id_column`` (ids of ``entity``) met by the rows the caller may
        read, for a service's own statement (run it with :attr:`params`); None: all.
        ``as_sets``: the rules as sets of readable related ids, computed once rather than
        per row, for a statement that reads many rows (the same rows are met)."""
        if self.root:
            return None
        return self._authz.predicate(self, Access.READ, entity, id_column,
                                     whole_table=as_sets)

    def readable_along(self, origin: str, up: tuple[str, ...], entity: str,
                       down: tuple[str, ...]) -> bool:
        """Whether every row of ``entity`` reaching the related row that a readable row of
        ``origin`` reaches is readable too (``origin`` along the many-to-one fields ``up``,
        ``entity`` along ``down``): such rows then need no check of their own."""
        if self.root:
            return True
        return self._authz.implied(self, origin, up, entity, down)

    @property
    def _authz(self) -> Authorizer:
        assert self.authz is not None, "a unit of work without an authorizer checks nothing"
        return self.authz

    @contextmanager
    def as_system(self) -> Iterator[Work]:
        """Within this unit, act as Cairn itself: what the block does is not checked (the
        service's own bookkeeping in a user's transaction). Writes keep the user's name."""
        was = self.root
        self.root = True
        try:
            yield self
        finally:
            self.root = was

    # -- the core API: writing ----------------------------------------------------------------

    def write(self, objs: list[Obj]) -> list[int]:
        """Create objects without id and update those with one (REST's entityManager POST);
        the ids of the created top-level objects."""
        return Writer(self._writable()).write(objs)

    def create(self, obj: Obj) -> int:
        """Create an object tree (references by id, children created too)."""
        return Writer(self._writable()).create(obj)

    def update(self, obj: Obj) -> None:
        """Update the fields ``obj`` carries."""
        Writer(self._writable()).update(obj)

    def delete(self, targets: Sequence[tuple[Entity, int]]) -> None:
        """Delete objects and everything they own (the cascade), each checked."""
        cascade.delete(self._writable(), targets)

    def record(self, entity: str, kind: ChangeKind, ids: Iterable[int]) -> None:
        """Note a change made by the caller's own statements (bulk loads) for the listeners."""
        self.changes.add(entity, kind, ids)

    def enqueue(self, kind: str, payload: dict[str, Any], **options: Any) -> int:
        """Request a job that exists only if this unit commits."""
        if self.jobs is None:
            raise RuntimeError("this catalogue has no job scheduler")
        self.enqueued = True
        return self.jobs.enqueue(self._writable().conn, kind, payload, **options)

    def _writable(self) -> Work:
        # A read-only unit may run without a transaction (autocommit on PostgreSQL): a write
        # there would not be undone by a later failure.
        if self.read_only:
            raise RuntimeError("a read-only unit of work cannot write")
        return self

    # -- rows <-> objects (internal) ----------------------------------------------------------

    def reader(self, entity: Entity, keys: tuple[str, ...], processors: Processors = ()
               ) -> Reader:
        """Turns a row whose columns are ``keys`` (in order) into an :class:`Obj`, applying
        ``processors`` (the driver's values converted as SQLAlchemy would) on the way."""
        return _reader(entity, keys, processors)

    def load(self, entity: Entity, ids: Iterable[int],
             where: ColumnElement[bool] | None = None) -> dict[int, Obj]:
        """Rows of one entity by id, batched; missing ids are simply absent."""
        return {o.id: o for o in self.rows_where(entity, "id", ids, where)}

    def load_one(self, entity: Entity, id: int) -> Obj | None:
        return self.load(entity, [id]).get(id)

    def rows_where(self, entity: Entity, column: str, values: Iterable[int],
                   where: ColumnElement[bool] | None = None,
                   readers: Readers | None = None) -> list[Any]:
        """Objects of ``entity`` whose ``column`` is one of ``values`` (and that meet
        ``where``, a condition on the table's rows), in id order per batch: :class:`Obj`,
        or what ``readers`` make of the rows."""
        table = self.db.tables[entity.name]
        keys = _keys(table)
        make = readers or self.reader
        out: list[Any] = []
        if where is not None and where.compare(false()):
            return out
        wanted = sorted(set(values))
        if wanted and (wanted[0] < ID_RANGE[0] or wanted[-1] > ID_RANGE[1]):
            # Refused here, before a driver fails on it (SQLite) or casts it (the others).
            bad = wanted[0] if wanted[0] < ID_RANGE[0] else wanted[-1]
            raise bad_parameter(f"{entity.name} {column} {bad} is out of range: ids are "
                                f"integers from {ID_RANGE[0]} to {ID_RANGE[1]}")

        def build(match: Match) -> Select[Any]:
            q = select(table).where(match(table.c[column]))
            return (q if where is None else q.where(where)).order_by(table.c.id)

        for batch in self.chunks(wanted):
            rows, processors = fetch_in(self.conn, table, column, batch) if where is None \
                else fetch_keyed(self.conn, ("rows", entity.name, column), where,
                                 build, batch, self.params)
            out.extend(map(make(entity, keys, processors), rows))
        return out


@lru_cache(maxsize=256)
def _keys(table: Table) -> tuple[str, ...]:
    """The field name of each column of ``table``, in table order."""
    return tuple(c.key for c in table.columns)


Reader = Callable[[Sequence[Any]], Obj]

#: Readers by entity, column layout and converters.
_READERS: IdentityCache[Reader] = IdentityCache(4096, "catalogue.readers")


def _reader(entity: Entity, keys: tuple[str, ...], processors: Processors = ()) -> Reader:
    """A row reader for one entity, column layout and set of converters, built once: it runs
    for every object of every result page, so it does no lookups by name."""
    return _READERS.fetch((entity,), (keys, processors),
                          lambda: _make_reader(entity, keys, processors))


def _make_reader(entity: Entity, keys: tuple[str, ...], processors: Processors = ()
                 ) -> Reader:
    """Generated code, as dataclasses does for ``__init__``: a dict display with constant keys
    builds in one step, four times faster than ``dict(zip(...))`` (1.0 against 3.5-4.9 µs per
    DatasetParameter row, measured). Each converter is called on its column in place, so the
    driver's row is never copied (a copy and a loop over the converters cost more than the
    conversions themselves). Names come from the schema declaration and indexes are integers,
    so nothing from a request reaches the generated text.

    Values end as SQLAlchemy's types make them (booleans bool, enums their names, dates naive
    in the catalogue's zone).
    """
    at = {k: i for i, k in enumerate(keys)}
    attrs = [f.name for f in entity.attributes if not f.hidden and f.name in at]
    refs = [f.name for f in entity.ones if f.name in at]
    converted = {i for i, _ in processors}

    def value(i: int) -> str:
        return f"p{i}(row[{i}])" if i in converted else f"row[{i}]"

    def display(names: list[str]) -> str:
        return "{" + ", ".join(f"{name!r}: {value(at[name])}" for name in names) + "}"

    source = (f"lambda row: Obj(entity, {value(at['id'])}, {display(attrs)}, {{}}, "
              f"{display(refs)}, {{}})")
    scope = {"Obj": Obj, "entity": entity, **{f"p{i}": proc for i, proc in processors}}
    read: Reader = eval(source, scope)
    return read
