"""Writing an import's records into the catalogue: all of them in the caller's unit of work,
or none (icat.server commits row by row; a failed Cairn import leaves nothing behind).

Each row goes the way a created object goes (:meth:`Work.create`): the entity's own checks
and normalisation (a parameter's type, a rule's query), not-null and length checks, the
uniqueness constraint, CREATE permission checked after the insert, a change event for the
listeners (search index, rule cache). What is batched is the cost per row: records are
gathered per table, ``BATCH`` at a time; their references are resolved together
(:mod:`cairn.port.lookup`), existing rows with the same natural keys are found with one
statement, new rows go in with one multi-row INSERT, and CREATE is checked with one
statement per batch.

``duplicate`` says what a row whose natural key exists already does (icat.server's
DuplicateAction): THROW (OBJECT_ALREADY_EXISTS), IGNORE (skip it), CHECK (it must equal the
existing row: VALIDATION "Duplicate check fails for field ..." otherwise; times within a
second) or OVERWRITE (update the existing row). A row that repeats an earlier row of the
same file counts as a duplicate of it. Rows of entities without a uniqueness constraint are
always created.

``attributes=ALL`` (root only) writes createId, createTime, modId and modTime from the file
where it gives them (the caller and now otherwise); USER ignores them.

Dataset and Investigation fileSize/fileCount: where the database keeps them
(:mod:`cairn.db.sizes`), rows are written with 0 and the imported datafiles add up, so the
sums are exact whatever the file says; where nothing keeps them, the file's values are
written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cache
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import select
from sqlalchemy import update as sql_update

from cairn.authz import Access
from cairn.catalogue.changes import ChangeKind
from cairn.catalogue.objects import Obj
from cairn.catalogue.validate import (
    PARAMETER_KINDS,
    check_entity_rules,
    check_fields,
    check_unique,
)
from cairn.catalogue.write import ZERO_DEFAULTS
from cairn.db import sizes
from cairn.errors import ErrorType, IcatError, bad_parameter, insufficient_privileges
from cairn.port.insert import Ids, Inserter
from cairn.port.lookup import Resolver
from cairn.port.matching import match_rows
from cairn.port.records import Record, Ref
from cairn.schema import SCHEMA, Entity

if TYPE_CHECKING:
    from cairn.catalogue.work import Work

#: Records written together (one INSERT, one lookup statement per reference level).
BATCH = 1000
#: Times compared by CHECK may differ this much (icat.server: a second; MariaDB keeps none).
CHECK_TOLERANCE_SECONDS = 1.0
SYSTEM = ("createId", "createTime", "modId", "modTime")
#: Sums the database keeps, when it keeps them (cairn.db.sizes).
SIZE_FIELDS = {("Dataset", "fileSize"), ("Dataset", "fileCount"),
               ("Investigation", "fileSize"), ("Investigation", "fileCount")}
#: Entities some many-to-one field points at: only their rows' labels can be referred to.
REFERABLE = frozenset(f.type for e in SCHEMA.entities.values() for f in e.ones)


class Duplicate(StrEnum):
    THROW = "THROW"
    IGNORE = "IGNORE"
    CHECK = "CHECK"
    OVERWRITE = "OVERWRITE"


class Attributes(StrEnum):
    USER = "USER"
    ALL = "ALL"


@dataclass
class ImportReport:
    """Rows per entity: created, skipped as duplicates (IGNORE), found equal (CHECK) and
    updated (OVERWRITE)."""

    created: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)
    checked: Counter[str] = field(default_factory=Counter)
    overwritten: Counter[str] = field(default_factory=Counter)

    @property
    def rows(self) -> int:
        return sum(c.total() for c in (self.created, self.ignored, self.checked,
                                       self.overwritten))

    def summary(self) -> str:
        parts = [f"{self.created.total():,} created"]
        for name, c in (("ignored", self.ignored), ("checked", self.checked),
                        ("overwritten", self.overwritten)):
            if c:
                parts.append(f"{c.total():,} {name}")
        return ", ".join(parts)


def located(e: IcatError, rec: Record) -> IcatError:
    """The error as icat.server reports an import's: "... at line n", offset n (whatever
    offset it had: a rule's query error gives a position in the query)."""
    return IcatError(e.type, f"{e.message}{rec.at()}", rec.line if rec.line else -1)


def import_records(work: Work, records: Iterable[Record], duplicate: Duplicate = Duplicate.THROW,
                   attributes: Attributes = Attributes.USER,
                   progress: Callable[[int], None] | None = None) -> ImportReport:
    """Write ``records`` in ``work``; any failure raises (and the unit rolls back)."""
    if attributes is Attributes.ALL and not work.root:
        raise insufficient_privileges("Only root users may import with Attributes.ALL")
    conn = work.conn
    if conn.dialect.name == "sqlite":
        raw: Any = conn.connection.driver_connection
        if not raw.in_transaction:
            # The sqlite3 module begins at the first write only; a savepoint released before
            # that would commit. Take the write lock now: the import is one transaction.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
    kept = sizes.keeper(conn) is not None
    writer = _Importer(work, duplicate, attributes is Attributes.ALL, kept)
    with ExitStack() as stack:
        if kept:
            stack.enter_context(sizes.bulk_load(conn))
        for rec in records:
            writer.add(rec)
            if progress is not None and writer.flushed:
                progress(writer.report.rows)
                writer.flushed = False
        writer.flush()
    if progress is not None:
        progress(writer.report.rows)
    return writer.report


class _Importer:
    def __init__(self, work: Work, duplicate: Duplicate, all_attributes: bool,
                 kept_sizes: bool) -> None:
        self.work = work
        self.duplicate = duplicate
        self.all_attributes = all_attributes
        self.kept_sizes = kept_sizes
        self.resolver = Resolver(work)
        self.pending: list[Record] = []
        self.report = ImportReport()
        self.flushed = False
        #: (parameter entity, type id) whose check passed, for types not enforced.
        self.parameter_checks: set[tuple[str, int]] = set()
        #: ParameterType id -> enforced.
        self.enforced: dict[int, bool] = {}
        self.ids = Ids(work)
        self.caller_now: dict[str, Any] = {"createId": work.user, "modId": work.user,
                                           "createTime": work.now, "modTime": work.now}
        self.inserters: dict[str, Inserter] = {}

    def add(self, rec: Record) -> None:
        if self.pending and (rec.entity is not self.pending[0].entity
                             or len(self.pending) >= BATCH):
            self.flush()
        self.pending.append(rec)

    def flush(self) -> None:
        records, self.pending = self.pending, []
        if not records:
            return
        entity = records[0].entity
        refs = {r for rec in records for r in rec.refs.values() if r is not None}
        found, failed = self.resolver.resolve(refs)
        if entity.name in PARAMETER_KINDS:
            self._load_types({found[r] for rec in records if (r := rec.refs.get("type"))
                              is not None and r in found})
        elif entity.name in ("ParameterType", "PermissibleStringValue"):
            self.parameter_checks.clear()  # what they said may change
            self.enforced.clear()
        rows = [self._row(rec, found, failed) for rec in records]
        self._write(entity, list(zip(records, rows, strict=True)))
        self.flushed = True

    # -- one row, as Writer.create builds it --------------------------------------------------

    def _row(self, rec: Record, found: dict[Ref, int], failed: dict[Ref, IcatError]
             ) -> dict[str, Any]:
        plan = _plan(rec.entity)
        values = rec.values
        row: dict[str, Any] = {}
        for name, default, is_date in plan.attributes:
            value = values.get(name)
            if value is None:  # as icat.server: a NULL leaves Java's default
                value = default
            elif is_date and value.tzinfo is not None:
                value = self.work.db.to_db(value)
            row[name] = value
        if self.kept_sizes and plan.sums:
            row.update(fileSize=0, fileCount=0)
        refs = rec.refs
        for name in plan.ones:
            ref = refs.get(name)
            if ref is None:
                row[name] = None
            elif ref in failed:
                raise located(failed[ref], rec)
            else:
                row[name] = found[ref]
        row.update(self._system(rec))
        try:
            self._check_rules(rec.entity, row)
            if not plan.fields_ok(row):
                check_fields(rec.entity, row)  # raises the catalogue's own message
        except IcatError as e:
            raise located(e, rec) from None
        return row

    def _check_rules(self, entity: Entity, row: dict[str, Any]) -> None:
        """The entity's own checks. A parameter's cost a statement or two per row; for a type
        that is not enforced their outcome depends on the entity and the type alone (is the
        type applicable to it?), so it is checked once per import for each pair."""
        memo = None
        if entity.name in PARAMETER_KINDS and self.enforced.get(row["type"]) is False:
            memo = (entity.name, row["type"])
            if memo in self.parameter_checks:
                return
        check_entity_rules(self.work, entity, row)
        if memo is not None:
            self.parameter_checks.add(memo)

    def _load_types(self, ids: set[int]) -> None:
        todo = [i for i in ids if i not in self.enforced]
        if not todo:
            return
        pt = self.work.tables["ParameterType"]
        for start in range(0, len(todo), self.work.max_ids):
            chunk = todo[start:start + self.work.max_ids]
            for i, enforced in self.work.conn.execute(
                    select(pt.c.id, pt.c.enforced).where(pt.c.id.in_(chunk))):
                self.enforced[i] = bool(enforced)

    def _system(self, rec: Record) -> dict[str, Any]:
        if not self.all_attributes:
            return self.caller_now
        work = self.work
        out = dict(self.caller_now)
        for name in SYSTEM:
            value = rec.values.get(name)
            if value is not None:
                out[name] = work.db.to_db(value) if isinstance(value, datetime) else value
        return out

    # -- a batch of rows of one entity -------------------------------------------------------

    def _write(self, entity: Entity, items: list[tuple[Record, dict[str, Any]]]) -> None:
        if not entity.key:
            self._insert(entity, items)
            return
        key_of = _plan(entity).key
        keys = [key_of(row) for _, row in items]
        known = self._existing(entity, set(keys))
        batch: list[tuple[Record, dict[str, Any]]] = []
        batch_keys: dict[tuple[Any, ...], None] = {}
        for (rec, row), key in zip(items, keys, strict=True):
            if key in batch_keys:  # repeats a row of this batch: write that one first
                known.update(zip(batch_keys, self._insert(entity, batch), strict=True))
                batch, batch_keys = [], {}
            if key in known:
                self._duplicate(rec, row, known[key])
            else:
                batch.append((rec, row))
                batch_keys[key] = None
        self._insert(entity, batch)

    def _existing(self, entity: Entity, keys: set[tuple[Any, ...]]) -> dict[tuple[Any, ...], int]:
        """Ids of rows with these natural keys exactly (others: see :meth:`_insert`)."""
        work = self.work
        found = match_rows(work.conn, work.tables[entity.name], entity.key, list(keys),
                           work.max_ids)
        return {k: ids[0] for k, ids in found.items()}

    def _insert(self, entity: Entity, items: list[tuple[Record, dict[str, Any]]]
                ) -> list[int]:
        """Insert the rows; the id each row has now (created, or the row it turned out to
        duplicate). A row the database still finds a duplicate (its own comparison of
        strings, or another unit's row) is handled as one, found by the database's
        comparison."""
        if not items:
            return []
        work = self.work
        try:
            with work.conn.begin_nested():
                ids = self._insert_rows(entity, [row for _, row in items])
            created = list(zip(items, ids, strict=True))
        except sa_exc.IntegrityError:
            created, ids = [], []
            for rec, row in items:
                try:
                    with work.conn.begin_nested():
                        new = self._insert_rows(entity, [row])[0]
                    created.append(((rec, row), new))
                    ids.append(new)
                except sa_exc.IntegrityError:
                    existing = self._existing_one(entity, row)
                    if existing is None:
                        raise located(IcatError(
                            ErrorType.OBJECT_ALREADY_EXISTS, f"{entity.name} clashes with an "
                            "existing row"), rec) from None
                    self._duplicate(rec, row, existing)
                    ids.append(existing)
        new_ids = [i for _, i in created]
        work.record(entity.name, ChangeKind.CREATE, new_ids)
        self._check_create(entity, created)
        if entity.name in REFERABLE:
            for (rec, _), i in created:
                if rec.label is not None:
                    self.resolver.label(entity.name, rec.label, i)
        self.report.created[entity.name] += len(created)
        return ids

    def _insert_rows(self, entity: Entity, rows: list[dict[str, Any]]) -> list[int]:
        """One multi-row INSERT (:mod:`cairn.port.insert`); the new ids in row order."""
        work = self.work
        table = work.tables[entity.name]
        if not self.ids.reserved:
            result = work.conn.execute(
                table.insert().returning(table.c.id, sort_by_parameter_order=True), rows)
            return [r[0] for r in result]
        ids = self.ids.take(table, len(rows))
        inserter = self.inserters.get(entity.name)
        if inserter is None:
            inserter = self.inserters[entity.name] = Inserter(work.conn, table, list(rows[0]))
        for row, i in zip(rows, ids, strict=True):
            row["id"] = i
        inserter.run(work.conn, rows)
        return ids

    def _existing_one(self, entity: Entity, row: dict[str, Any]) -> int | None:
        table = self.work.tables[entity.name]
        cond = [table.c[k] == row[k] for k in entity.key]
        found = self.work.conn.execute(select(table.c.id).where(*cond).limit(1)).first()
        return None if found is None else int(found[0])

    def _check_create(self, entity: Entity,
                      created: list[tuple[tuple[Record, dict[str, Any]], int]]) -> None:
        """CREATE on the inserted rows, as the database has them now (rules may look at the
        new rows); the first refused one is named by its line."""
        work = self.work
        if work.root or not created:
            return
        try:
            work.check_all(Access.CREATE, entity.name, [i for _, i in created])
        except IcatError:
            for (rec, _), i in created:
                if not work.allowed(Access.CREATE, entity.name, i):
                    raise located(insufficient_privileges(
                        f"CREATE access to this {entity.name} is not allowed."), rec) from None
            raise

    # -- a row whose natural key exists -------------------------------------------------------

    def _duplicate(self, rec: Record, row: dict[str, Any], existing: int) -> None:
        entity, work = rec.entity, self.work
        if self.duplicate is Duplicate.THROW:
            try:
                check_unique(work, entity, row, None)
            except IcatError as e:
                raise located(e, rec) from None
            raise located(IcatError(ErrorType.OBJECT_ALREADY_EXISTS,
                                    f"{entity.name} exists already"), rec)
        if self.duplicate is Duplicate.CHECK:
            self._compare(rec, row, existing)
            self.report.checked[entity.name] += 1
        elif self.duplicate is Duplicate.OVERWRITE:
            self._overwrite(rec, row, existing)
            self.report.overwritten[entity.name] += 1
        else:
            self.report.ignored[entity.name] += 1
        if rec.label is not None and entity.name in REFERABLE:
            self.resolver.label(entity.name, rec.label, existing)

    def _compared_fields(self, entity: Entity) -> list[str]:
        return [f.name for f in entity.fields.values()
                if not (f.is_many or f.system or f.hidden)
                and not (self.kept_sizes and (entity.name, f.name) in SIZE_FIELDS)]

    def _compare(self, rec: Record, row: dict[str, Any], existing: int) -> None:
        entity = rec.entity
        current = self.work.load_one(entity, existing)
        if current is None:  # gone meanwhile (another unit): nothing to compare with
            return
        now = {**current.values, **current.refs}
        names = self._compared_fields(entity)
        if self.all_attributes:
            names += [n for n in SYSTEM if rec.values.get(n) is not None]
        for name in names:
            if not _same(row.get(name), now.get(name)):
                raise located(IcatError(ErrorType.VALIDATION, f"Duplicate check fails for "
                                        f"field {name} of {entity.name}"), rec)

    def _overwrite(self, rec: Record, row: dict[str, Any], existing: int) -> None:
        """The existing row takes every field of the file's row (icat.server's update with
        the imported object), checked as an update is."""
        entity, work = rec.entity, self.work
        current = work.load_one(entity, existing)
        if current is None:
            raise located(bad_parameter(f"{entity.name}[id:{existing}] vanished during the "
                                        "import"), rec)
        obj = Obj(entity=entity, id=existing)
        for name in self._compared_fields(entity):
            f = entity.fields[name]
            if f.is_attribute:
                obj.values[name] = row[name]
            elif row[name] != current.refs.get(name):  # only changed relations are sent
                obj.ones[name] = None if row[name] is None else Obj(
                    entity=SCHEMA.entities[f.type], id=row[name])
        try:
            work.update(obj)
        except IcatError as e:
            raise located(e, rec) from None
        if self.all_attributes:
            given = {n: row[n] for n in SYSTEM if rec.values.get(n) is not None}
            if given:
                table = work.tables[entity.name]
                work.conn.execute(sql_update(table).where(table.c.id == existing)
                                  .values(**given))


@dataclass(frozen=True)
class _Plan:
    """How rows of one entity are built and checked, worked out once per entity."""

    #: (name, value for a NULL, is a date) of every attribute but the system fields.
    attributes: list[tuple[str, Any, bool]]
    ones: list[str]
    key: Callable[[dict[str, Any]], tuple[Any, ...]]
    required: list[str]
    lengths: list[tuple[str, int]]
    #: Dataset and Investigation: fileSize and fileCount are sums.
    sums: bool

    def fields_ok(self, row: dict[str, Any]) -> bool:
        """check_fields' not-null and length conditions, as a quick test: a row failing it
        goes through check_fields itself, for its message."""
        for name in self.required:
            if row[name] is None:
                return False
        for name, length in self.lengths:
            value = row[name]
            if value is not None and len(value) > length:
                return False
        return True


@cache
def _plan_of(name: str) -> _Plan:
    entity = SCHEMA.entities[name]
    attributes = []
    for f in entity.attributes:
        if f.system:
            continue
        default = 0 if (name, f.name) in ZERO_DEFAULTS else \
            False if f.type == "boolean" and not f.hidden else None
        attributes.append((f.name, default, f.type == "Date"))
    checked = [f for f in entity.fields.values() if not (f.is_many or f.system or f.hidden)]
    key: Callable[[dict[str, Any]], tuple[Any, ...]]
    if not entity.key:
        key = lambda row: ()  # noqa: E731
    elif len(entity.key) == 1:
        only = entity.key[0]
        key = lambda row: (row[only],)  # noqa: E731
    else:
        key = itemgetter(*entity.key)
    return _Plan(attributes=attributes, ones=[f.name for f in entity.ones], key=key,
                 required=[f.name for f in checked if f.required],
                 lengths=[(f.name, f.length) for f in checked if f.length is not None],
                 sums=name in ("Dataset", "Investigation"))


def _plan(entity: Entity) -> _Plan:
    return _plan_of(entity.name)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, datetime) and isinstance(b, datetime):
        return abs((a - b).total_seconds()) <= CHECK_TOLERANCE_SECONDS
    return bool(a == b)
