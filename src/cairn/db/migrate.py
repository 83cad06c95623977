"""Creating and upgrading the catalogue database with Alembic, steps derived from the declaration.

The revisions in ``migrations/versions`` form one linear chain: ``icat_6_1`` (every table of the
ICAT 6.1 model) -> ``icat_6_2`` (the 6.1 -> 6.2 changes) -> ``cairn_0001`` (Cairn's own tables).
An ICAT revision is two lines: it names the model versions it goes between and calls
:func:`migrate_model`, which diffs ``SCHEMA.at_version(old)`` against ``SCHEMA.at_version(new)``
(:func:`model_changes`) and applies the result (:func:`apply_changes`). So a new ICAT release is a
``since``/``before`` entry in ``icat.json`` plus such a revision with an ``icat_version`` module
attribute.

Steps are applied only where the live database still needs them, because icat.server's
EclipseLink (``create-or-extend-tables``) adds new tables and columns on its own at deployment but
never widens a column (ICAT's ``upgrade_*_6_2.sql`` is optional). A database icat.server created
has no ``alembic_version`` table: :func:`upgrade` stamps it at the newest ICAT revision whose model
it fully contains, then upgrades, never re-creating a table that exists.

Identifiers are the unquoted upper-case names of :mod:`cairn.db.tables`, so DDL reaches the same
tables the application queries (upper case on MariaDB, folded to lower case on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Connection, MetaData, String, Table, UniqueConstraint, inspect
from sqlalchemy.dialects import postgresql

from cairn.db.engine import Database
from cairn.db.tables import Tables, build_tables
from cairn.schema import SCHEMA

MIGRATIONS = Path(__file__).with_name("migrations")

#: The table whose presence marks an unversioned database as an existing ICAT catalogue.
ICAT_MARKER = "INVESTIGATION"

# Keys for the lock that serialises concurrent start-ups of several Cairn processes.
_PG_LOCK_KEY = 0x0CA1_2000
# MariaDB's named locks are server-wide, PostgreSQL's advisory locks per database.
_MARIADB_LOCK = "CONCAT('cairn.migrate.', DATABASE())"
_MARIADB_LOCK_SECONDS = 600


class MigrationError(Exception):
    """The database can't be brought to the wanted revision safely."""


class UnsupportedChange(MigrationError):
    """A model change the generic migration doesn't do; it needs a hand-written revision step."""


# ---------------------------------------------------------------------------------------------
# The changes between two versions of the model


@dataclass(frozen=True)
class AddTable:
    table: Table


@dataclass(frozen=True)
class AddColumn:
    table: Table
    column: Column[Any]


@dataclass(frozen=True)
class WidenColumn:
    table: Table
    column: Column[Any]
    old_length: int

    @property
    def length(self) -> int:
        """The new length (the column is a String)."""
        length = getattr(self.column.type, "length", None)
        assert isinstance(length, int)
        return length


Change = AddTable | AddColumn | WidenColumn


def tables_at(version: str) -> Tables:
    """The tables of the model as it was at an ICAT version, in a metadata of their own."""
    return build_tables(SCHEMA.at_version(version), MetaData())


def catalogue_tables(tables: Tables) -> list[Table]:
    """The tables icat.server owns: one per entity plus SESSION_ (PASSWD belongs to authn.db)."""
    return [*tables.entity.values(), tables.session]


def _type_name(column: Column[Any]) -> str:
    # One concrete dialect so that variants and TypeDecorators compare by what they store.
    return str(column.type.compile(dialect=postgresql.dialect()))


def _unique_keys(table: Table) -> set[tuple[str, tuple[str, ...]]]:
    return {(str(c.name), tuple(col.name for col in c.columns))
            for c in table.constraints if isinstance(c, UniqueConstraint)}


def _fk_keys(table: Table, columns: set[str]) -> set[tuple[str, tuple[str, ...], str]]:
    return {(str(fk.name), tuple(c.name for c in fk.columns), fk.referred_table.name)
            for fk in table.foreign_key_constraints
            if any(c.name in columns for c in fk.columns)}


def _index_keys(table: Table, columns: set[str]) -> set[tuple[str, tuple[str, ...]]]:
    return {(str(i.name), tuple(c.name for c in i.columns)) for i in table.indexes
            if any(c.name in columns for c in i.columns)}


def model_changes(old: Tables | None, new: Tables) -> list[Change]:
    """What turns the tables of model ``old`` into those of ``new`` (``None``: no tables yet).

    Only additive changes are generic: new tables, new nullable columns (with their foreign keys
    and indexes) and wider strings -- all that ICAT has done since 5.0. Anything else raises
    :class:`UnsupportedChange` rather than guessing.
    """
    before = {t.name.upper(): t for t in catalogue_tables(old)} if old else {}
    after = {t.name.upper(): t for t in catalogue_tables(new)}
    if gone := sorted(set(before) - set(after)):
        raise UnsupportedChange(f"tables removed: {', '.join(gone)}")
    changes: list[Change] = []
    for name, table in after.items():
        if name not in before:
            changes.append(AddTable(table))
            continue
        changes.extend(_table_changes(before[name], table))
    return changes


def _table_changes(old: Table, new: Table) -> list[Change]:
    where = new.name
    old_cols = {c.name.upper(): c for c in old.columns}
    new_cols = {c.name.upper(): c for c in new.columns}
    if gone := sorted(set(old_cols) - set(new_cols)):
        raise UnsupportedChange(f"{where}: columns removed: {', '.join(gone)}")
    if _unique_keys(old) != _unique_keys(new):
        raise UnsupportedChange(f"{where}: unique constraint changed")
    kept = {c.name for c in old.columns}
    if _fk_keys(old, kept) != _fk_keys(new, kept) or \
            _index_keys(old, kept) != _index_keys(new, kept):
        raise UnsupportedChange(f"{where}: foreign keys or indexes of existing columns changed")
    changes: list[Change] = []
    for cname, col in new_cols.items():
        was = old_cols.get(cname)
        if was is None:
            if not col.nullable:
                raise UnsupportedChange(
                    f"{where}.{col.name}: a new NOT NULL column has no value for existing rows")
            changes.append(AddColumn(new, col))
            continue
        if was.nullable != col.nullable:
            raise UnsupportedChange(f"{where}.{col.name}: nullability changed")
        if isinstance(was.type, String) and isinstance(col.type, String) \
                and was.type.length and col.type.length:
            if col.type.length > was.type.length:
                changes.append(WidenColumn(new, col, was.type.length))
            elif col.type.length < was.type.length:
                raise UnsupportedChange(f"{where}.{col.name}: narrowed")
        elif _type_name(was) != _type_name(col):
            raise UnsupportedChange(
                f"{where}.{col.name}: type {_type_name(was)} -> {_type_name(col)}")
    return changes


# ---------------------------------------------------------------------------------------------
# Applying changes to the live database


def _live(conn: Connection) -> dict[str, dict[str, dict[str, Any]]]:
    """Reflected columns by upper-case table and column name (PostgreSQL stores lower case)."""
    found = inspect(conn).get_multi_columns()
    return {table.upper(): {c["name"].upper(): dict(c) for c in cols}
            for (_schema, table), cols in found.items()}


def _live_length(info: dict[str, Any]) -> int | None:
    t = info["type"]
    return t.length if isinstance(t, String) else None


def _short(info: dict[str, Any], length: int) -> bool:
    live = _live_length(info)
    return live is not None and live < length


def apply_changes(ops: Operations, changes: Sequence[Change]) -> None:
    """Apply what the live database still lacks of ``changes``; the rest is already there."""
    bind = ops.get_bind()
    live = _live(bind)
    new_tables = [c.table for c in changes
                  if isinstance(c, AddTable) and c.table.name.upper() not in live]
    if new_tables:
        # create_all orders them by their foreign keys; referenced old tables already exist.
        new_tables[0].metadata.create_all(bind, tables=new_tables, checkfirst=False)
    todo: dict[str, list[AddColumn | WidenColumn]] = {}
    for c in changes:
        if isinstance(c, AddTable):
            continue
        tname, cname = c.table.name.upper(), c.column.name.upper()
        if tname not in live:
            if c.table in new_tables:
                continue  # created above in its new shape
            raise MigrationError(f"table {c.table.name} is missing")
        info = live[tname].get(cname)
        if isinstance(c, AddColumn):
            if info is None:
                todo.setdefault(tname, []).append(c)
        elif info is None:
            raise MigrationError(f"column {c.table.name}.{c.column.name} is missing")
        elif _short(info, c.length):  # the live column may be wider already
            todo.setdefault(tname, []).append(c)
    for items in todo.values():
        _alter_table(ops, items, live[items[0].table.name.upper()])


def _alter_table(ops: Operations, items: list[AddColumn | WidenColumn],
                 live: dict[str, dict[str, Any]]) -> None:
    table = items[0].table
    added = {c.column.name for c in items if isinstance(c, AddColumn)}
    # Batch mode: SQLite can only change a column by rebuilding the table, which Alembic does
    # from the reflected table (columns, named constraints, indexes); elsewhere plain ALTERs.
    with _triggers_set_aside(ops.get_bind()), ops.batch_alter_table(table.name) as batch:
        for c in items:
            col = c.column
            if isinstance(c, AddColumn):
                batch.add_column(Column(col.name, col.type, nullable=True))
            else:
                batch.alter_column(
                    col.name, type_=col.type,
                    existing_type=String(_live_length(live[col.name.upper()])),
                    existing_nullable=col.nullable)
        for fk in table.foreign_key_constraints:
            cols = [c.name for c in fk.columns]
            if added.intersection(cols):
                batch.create_foreign_key(_named(fk.name), fk.referred_table.name, cols,
                                         [e.column.name for e in fk.elements])
        for index in table.indexes:
            cols = [c.name for c in index.columns]
            if added.intersection(cols):
                batch.create_index(_named(index.name), cols, unique=bool(index.unique))


@contextmanager
def _triggers_set_aside(conn: Connection) -> Iterator[None]:
    """SQLite alters a column by rebuilding its table: that drops the table's own triggers,
    and renaming the rebuilt table fails while another trigger names it. Every trigger (the
    size triggers of :mod:`cairn.db.sizes`) is dropped for the rebuild and created again
    after; a failure rolls the whole migration back, triggers included."""
    if conn.dialect.name != "sqlite":
        yield
        return
    saved = conn.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND sql IS NOT NULL").all()
    for name, _sql in saved:
        conn.exec_driver_sql(f'DROP TRIGGER "{name}"')
    yield
    for _name, sql in saved:
        conn.exec_driver_sql(sql)


def _named(name: object) -> str:
    """A constraint's or index's name: every one of Cairn's tables declares it."""
    assert isinstance(name, str), f"unnamed constraint ({name!r})"
    return name  # a quoted_name stays one: str() would quote it on PostgreSQL


def revert_changes(ops: Operations, changes: Sequence[Change]) -> None:
    """Undo ``changes`` (newest first). Narrowing fails if longer values are stored."""
    bind = ops.get_bind()
    live = _live(bind)
    for items in _by_table([c for c in reversed(changes) if not isinstance(c, AddTable)]):
        table = items[0].table
        if table.name.upper() not in live:
            continue
        cols = live[table.name.upper()]
        with _triggers_set_aside(bind), ops.batch_alter_table(table.name) as batch:
            for c in items:
                col = c.column
                if col.name.upper() not in cols:
                    continue
                if isinstance(c, AddColumn):
                    # Names stay quoted_name: str() would quote them on PostgreSQL.
                    for fk in table.foreign_key_constraints:
                        if col.name in {k.name for k in fk.columns} and fk.name:
                            batch.drop_constraint(_named(fk.name), type_="foreignkey")
                    for index in table.indexes:
                        if col.name in {k.name for k in index.columns} and index.name:
                            batch.drop_index(index.name)
                    batch.drop_column(col.name)
                else:
                    batch.alter_column(col.name, type_=String(c.old_length),
                                       existing_type=col.type, existing_nullable=col.nullable)
    gone = [c.table for c in changes
            if isinstance(c, AddTable) and c.table.name.upper() in live]
    if gone:
        gone[0].metadata.drop_all(bind, tables=gone, checkfirst=False)


def _by_table(changes: list[Change]) -> list[list[AddColumn | WidenColumn]]:
    groups: dict[str, list[AddColumn | WidenColumn]] = {}
    for c in changes:
        if not isinstance(c, AddTable):
            groups.setdefault(c.table.name.upper(), []).append(c)
    return list(groups.values())


def _current_ops() -> Operations:
    from alembic import op  # a proxy, valid only while a revision is running

    return Operations(op.get_context())


def migrate_model(old_version: str | None, new_version: str) -> None:
    """Revision body: bring the catalogue from model ``old_version`` to ``new_version``."""
    old = tables_at(old_version) if old_version else None
    apply_changes(_current_ops(), model_changes(old, tables_at(new_version)))


def revert_model(old_version: str, new_version: str) -> None:
    """Revision body of a downgrade: undo :func:`migrate_model` (old_version, new_version)."""
    revert_changes(_current_ops(), model_changes(tables_at(old_version), tables_at(new_version)))


def create_service_tables(*tables: Table) -> None:
    """Revision body for Cairn's own tables: create those absent (a database made by
    ``create_all()`` of today's declarations already has them)."""
    bind = _current_ops().get_bind()
    existing = {name.upper() for name in inspect(bind).get_table_names()}
    for table in tables:
        if table.name.upper() not in existing:
            table.create(bind)


def drop_service_tables(*tables: Table) -> None:
    """Revision body of a downgrade: drop them, last first."""
    bind = _current_ops().get_bind()
    for table in reversed(tables):
        table.drop(bind)


def missing(conn: Connection, tables: Tables) -> list[str]:
    """What the live database lacks of the catalogue tables of a model (empty: all present)."""
    live = _live(conn)
    out: list[str] = []
    for table in catalogue_tables(tables):
        cols = live.get(table.name.upper())
        if cols is None:
            out.append(f"table {table.name}")
            continue
        for col in table.columns:
            info = cols.get(col.name.upper())
            if info is None:
                out.append(f"column {table.name}.{col.name}")
            elif isinstance(col.type, String) and col.type.length and \
                    _short(info, col.type.length):
                out.append(f"{table.name}.{col.name} shorter than {col.type.length}")
    return out


# ---------------------------------------------------------------------------------------------
# Running Alembic


def config(connection: Connection | None = None) -> Config:
    """Alembic configuration built in code: no alembic.ini is needed at run time."""
    cfg = Config()
    # ConfigParser interpolation would eat a '%' in the installation path.
    cfg.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    """The newest revision this version of Cairn knows."""
    rev = ScriptDirectory.from_config(config()).get_current_head()
    assert rev is not None
    return rev


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def current(db: Database) -> str | None:
    """The revision the database is stamped with; None for an empty or unversioned database."""
    with db.connect() as conn:
        return _current(conn)


@contextmanager
def migration_connection(db: Database) -> Iterator[Connection]:
    """A connection in one transaction, set up for DDL and holding the migration lock.

    SQLite: foreign keys are switched off (a batch rebuild drops a table other tables still
    reference) and checked at the end; the driver's own transaction handling is bypassed so that
    DDL is transactional too (``BEGIN IMMEDIATE`` also locks out a second migrating process).
    PostgreSQL: DDL is transactional; an advisory lock serialises concurrent start-ups.
    MariaDB: DDL commits implicitly; a named lock serialises concurrent start-ups.
    """
    with db.engine.connect() as conn:
        if db.dialect == "sqlite":
            with _sqlite_ddl_transaction(conn):
                yield conn
        elif db.dialect == "postgresql":
            with conn.begin():
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
                yield conn
        else:
            got = conn.exec_driver_sql(
                f"SELECT GET_LOCK({_MARIADB_LOCK}, {_MARIADB_LOCK_SECONDS})").scalar()
            conn.commit()
            if got != 1:
                raise MigrationError("another process holds the migration lock")
            try:
                with conn.begin():
                    yield conn
            finally:
                conn.exec_driver_sql(f"SELECT RELEASE_LOCK({_MARIADB_LOCK})")
                conn.commit()


@contextmanager
def _sqlite_ddl_transaction(conn: Connection) -> Iterator[None]:
    raw: Any = conn.connection.driver_connection
    conn.exec_driver_sql("PRAGMA foreign_keys=OFF")  # a no-op inside a transaction
    conn.commit()
    legacy = raw.isolation_level
    raw.isolation_level = None  # the sqlite3 module would otherwise commit before each DDL
    try:
        with conn.begin():
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield
            broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise MigrationError(f"foreign keys broken by the migration: {broken[:5]}")
    finally:
        raw.isolation_level = legacy
        conn.exec_driver_sql("PRAGMA foreign_keys=ON")
        conn.commit()


def _chain(script: ScriptDirectory) -> list[Any]:
    return list(reversed(list(script.walk_revisions())))


def _detect(conn: Connection, script: ScriptDirectory) -> str | None:
    if ICAT_MARKER not in _live(conn):
        return None
    stamp: str | None = None
    lacking: list[str] = []
    # Walk from the base through the ICAT revisions only: stamping past a Cairn revision
    # would skip creating Cairn's own tables.
    for rev in _chain(script):
        version = getattr(rev.module, "icat_version", None)
        if version is None:
            break
        lacking = missing(conn, tables_at(version))
        if lacking:
            break
        stamp = rev.revision
    if stamp is None:
        raise MigrationError(
            "the database has ICAT tables but not the complete ICAT "
            f"{getattr(_chain(script)[0].module, 'icat_version', '?')} layout (lacks "
            f"{', '.join(lacking[:10])}); upgrade it with icat.server first")
    return stamp


def detect_revision(db: Database) -> str | None:
    """The revision an unversioned database is at: None when it has no ICAT tables, else the
    newest ICAT revision whose model it fully contains (tables, columns, string lengths)."""
    with db.connect() as conn:
        return _detect(conn, ScriptDirectory.from_config(config()))


def _check_known(script: ScriptDirectory, rev: str) -> None:
    try:
        script.get_revision(rev)
    except Exception as e:
        raise MigrationError(
            f"the database is at revision {rev!r}, unknown to this version of Cairn") from e


def upgrade(db: Database, revision: str = "head") -> str:
    """Bring the database to ``revision`` (default: the newest); return the revision reached.

    An empty database gets every table. An unversioned icat.server database is first stamped
    at the ICAT revision it already matches, so existing tables and rows are kept.
    """
    with migration_connection(db) as conn:
        cfg = config(conn)
        script = ScriptDirectory.from_config(cfg)
        now = _current(conn)
        if now is None:
            found = _detect(conn, script)
            if found is not None:
                command.stamp(cfg, found)
        else:
            _check_known(script, now)
        command.upgrade(cfg, revision)
        reached = _current(conn)
    assert reached is not None
    return reached


def downgrade(db: Database, revision: str) -> str | None:
    """Go back to an older revision (not below ``icat_6_1``: that would drop the catalogue)."""
    with migration_connection(db) as conn:
        cfg = config(conn)
        now = _current(conn)
        if now is not None:
            _check_known(ScriptDirectory.from_config(cfg), now)
        command.downgrade(cfg, revision)
        return _current(conn)
