"""Dataset and Investigation ``fileSize``/``fileCount``, kept exact by the database itself.

``Dataset.fileSize`` is the sum of its datafiles' ``fileSize`` (a null size counts as 0 bytes,
but as a file) and ``Dataset.fileCount`` their number; an investigation's are the sums of its
datasets'. icat.server 5 keeps them with optional triggers (``create_triggers_*_5_0.sql``);
Cairn keeps them with triggers of its own, created by the migration ``cairn_0007``:

- a datafile inserted, deleted, moved to another dataset or resized adds its difference to
  its dataset(s);
- a dataset inserted, deleted, moved to another investigation, or whose sums changed (by the
  triggers above, or by a client writing them) adds its difference to its investigation(s).

Why triggers and not a change listener that recomputes the sums of the touched parents: they
see every write path, Cairn's (REST, SOAP, cascaded deletes, clones, the data service, bulk
loads) and everyone else's (icat.server on the same database, an administrator's SQL); they
are atomic increments under the parent's row lock, so two units adding files to one dataset
at once both count, where a recomputed sum read under READ COMMITTED (or MariaDB's snapshot)
misses the other unit's rows; and a delete or move needs no reading of old parents first.

Per backend:

- SQLite: row triggers (one UPDATE of the parent per row).
- PostgreSQL: statement triggers with transition tables: one UPDATE per statement and parent
  table, grouped by parent, so a COPY of 50,000 datafiles is one UPDATE of their datasets.
  The foreign-key check's KEY SHARE lock does not conflict with the NO KEY UPDATE of the sums.
- MariaDB: row triggers, BEFORE INSERT and UPDATE: InnoDB's foreign-key check takes a shared
  lock on the parent row, and two units each holding it could not both upgrade it to update
  the sums (a deadlock); taking the exclusive lock first, before the check, queues them
  instead. A dataset insert takes its investigation's lock even when it adds nothing, for the
  same reason (its files will).

A database where icat.server's own triggers already keep the sums (:data:`ICAT_SERVER`) gets
none of Cairn's: both would count every file twice. ``[catalogue] keep_file_sizes = false``
drops Cairn's at start-up (:func:`keep`): the sums are then what clients write, as on an
icat.server without its optional triggers (python-icat's reference data assume that).

Cairn's write paths are exact under either set of triggers: they never write a parent's sums
except a clone's and a bulk load's, which start at 0 and let their copied or loaded files add
up.

Bulk writers (:mod:`cairn.demo`, a future import) write 0 for the sums inside
:func:`bulk_load`, which makes them exact at the least cost on each backend.
``cairn sizes recompute`` runs :func:`recompute` for an existing catalogue whose sums were
never kept or went wrong.

SQLite rebuilds a table to alter a column and would drop these triggers with it (or refuse
to rename the rebuilt table while another trigger names it): :mod:`cairn.db.migrate` sets
every trigger aside around such a rebuild.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, text

from cairn.db.engine import Database
from cairn.db.migrate import migration_connection

log = logging.getLogger(__name__)

#: Cairn's triggers by backend (names as written; PostgreSQL folds them to lower case).
TRIGGERS = {
    "sqlite": ("CAIRN_SIZES_DF_INSERT", "CAIRN_SIZES_DF_UPDATE", "CAIRN_SIZES_DF_MOVE",
               "CAIRN_SIZES_DF_DELETE", "CAIRN_SIZES_DS_INSERT", "CAIRN_SIZES_DS_UPDATE",
               "CAIRN_SIZES_DS_MOVE", "CAIRN_SIZES_DS_DELETE"),
    "postgresql": ("CAIRN_SIZES_DF_INSERT", "CAIRN_SIZES_DF_UPDATE", "CAIRN_SIZES_DF_DELETE",
                   "CAIRN_SIZES_DS_INSERT", "CAIRN_SIZES_DS_UPDATE", "CAIRN_SIZES_DS_DELETE"),
    "mysql": ("CAIRN_SIZES_DF_INSERT", "CAIRN_SIZES_DF_UPDATE", "CAIRN_SIZES_DF_DELETE",
              "CAIRN_SIZES_DS_INSERT", "CAIRN_SIZES_DS_UPDATE", "CAIRN_SIZES_DS_DELETE"),
}
#: PostgreSQL's trigger functions, one per child table.
PG_FUNCTIONS = ("CAIRN_SIZES_DATAFILE", "CAIRN_SIZES_DATASET")

#: icat.server's optional triggers on DATAFILE and DATASET (5.0 names, and the later ones).
ICAT_SERVER = frozenset({
    "RECALCULATE_ON_DF_INSERT", "RECALCULATE_ON_DF_UPDATE", "RECALCULATE_ON_DF_DELETE",
    "RECALCULATE_ON_DS_UPDATE", "RECALCULATE_ON_DS_DELETE",
    "RECALCULATE_SIZES_FILECOUNT_ON_DATAFILE_INSERT",
    "RECALCULATE_SIZES_FILECOUNT_ON_DATAFILE_UPDATE",
    "RECALCULATE_SIZES_FILECOUNT_ON_DATAFILE_DELETE",
    "RECALCULATE_SIZES_FILECOUNT_ON_DATASET_UPDATE",
    "RECALCULATE_SIZES_FILECOUNT_ON_DATASET_DELETE",
})

Keeper = Literal["cairn", "icat.server"]


@dataclass(frozen=True)
class _Level:
    """A child table whose rows add up into a parent table's FILESIZE and FILECOUNT."""

    child: str
    fk: str  # the child's column naming its parent
    parent: str
    tag: str  # DF or DS, in trigger names
    #: What one child row adds to its parent's FILECOUNT, as SQL over a row alias.
    count: str

    def size_of(self, row: str) -> str:
        return f"COALESCE({row}.FILESIZE, 0)"

    def count_of(self, row: str) -> str:
        return self.count.format(row=row)


DATAFILES = _Level("DATAFILE", "DATASET_ID", "DATASET", "DF", "1")
DATASETS = _Level("DATASET", "INVESTIGATION_ID", "INVESTIGATION", "DS",
                  "COALESCE({row}.FILECOUNT, 0)")
LEVELS = (DATAFILES, DATASETS)


# -- what the database has --------------------------------------------------------------------


def triggers(conn: Connection) -> set[str]:
    """Names (upper case) of the triggers on DATAFILE and DATASET."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        q = "SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger'"
    elif dialect == "postgresql":
        q = ("SELECT trigger_name, event_object_table FROM information_schema.triggers "
             "WHERE event_object_schema = current_schema()")
    else:
        q = ("SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS "
             "WHERE TRIGGER_SCHEMA = DATABASE()")
    tables = {level.child for level in LEVELS}
    return {str(name).upper() for name, table in conn.execute(text(q))
            if str(table).upper() in tables}


def keeper(conn: Connection) -> Keeper | None:
    """Whose triggers keep the sums: Cairn's, icat.server's, or nobody's (None)."""
    found = triggers(conn)
    if found & ICAT_SERVER:
        return "icat.server"
    if any(name.startswith("CAIRN_SIZES_") for name in found):
        return "cairn"
    return None


# -- creating and dropping Cairn's triggers ------------------------------------------------------


def install(conn: Connection) -> bool:
    """Create Cairn's triggers unless icat.server's are there (then they keep the sums and
    ours would count twice); True if created. Existing sums are left as they are: call
    :func:`recompute` to make them exact first."""
    found = keeper(conn)
    if found == "icat.server":
        log.info("icat.server's triggers keep Dataset/Investigation fileSize and fileCount; "
                 "Cairn adds none of its own")
        return False
    if found == "cairn":
        uninstall(conn)  # recreated below, so a partial set is completed
    _create(conn)
    return True


def keep(db: Database, wanted: bool) -> None:
    """Apply ``[catalogue] keep_file_sizes`` at start-up, after the migrations: create Cairn's
    triggers (and count the sums once) or drop them, under the migration lock. Cheap when
    nothing changes; icat.server's triggers are never touched."""
    with db.connect() as conn:
        found = keeper(conn)
    if found == "icat.server":
        if not wanted:
            log.warning("keep_file_sizes = false, but icat.server's triggers keep "
                        "Dataset/Investigation fileSize and fileCount: they stay")
        return
    if (found == "cairn") == wanted:
        return
    with migration_connection(db) as conn:
        found = keeper(conn)  # another process may have done it meanwhile
        if wanted and found is None:
            install(conn)
            fixed = recompute(conn)
            log.info("Dataset/Investigation fileSize and fileCount are kept from now on "
                     "(%d datasets and %d investigations recounted)", fixed.datasets,
                     fixed.investigations)
        elif not wanted and found == "cairn":
            uninstall(conn)
            log.info("Dataset/Investigation fileSize and fileCount are no longer kept "
                     "(keep_file_sizes = false)")


def _create(conn: Connection) -> None:
    for statement in _ddl(conn.dialect.name):
        conn.exec_driver_sql(statement)


@contextmanager
def bulk_load(conn: Connection) -> Iterator[None]:
    """Around a bulk load in the caller's transaction that writes 0 for every new dataset's
    and investigation's sums: they are exact when the block ends, whoever keeps them.

    SQLite's row triggers would cost about 10 µs per datafile (an UPDATE of the dataset and
    one of the investigation, each rewriting the whole row): more than the insert itself.
    There they are dropped for the load and created again after one recount; SQLite's DDL is
    transactional and the load holds the only write lock, so no other writer ever runs
    without them, and a failed load rolls them back in. PostgreSQL's statement triggers count
    each batch in one UPDATE, and MariaDB commits DDL at once, so there they stay and count.
    A database without any (tables made by ``create_all``) gets one recount at the end.
    The recount covers the whole catalogue: rows the load did not write were exact before.
    """
    found = keeper(conn)
    suspend = found == "cairn" and conn.dialect.name == "sqlite"
    if suspend:
        raw: Any = conn.connection.driver_connection
        if not raw.in_transaction:
            # The sqlite3 module opens its transaction at the first INSERT, UPDATE or DELETE
            # only: a DROP TRIGGER before that would be committed at once.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        uninstall(conn)
    yield
    if suspend or found is None:
        recompute(conn)
    if suspend:
        _create(conn)


def uninstall(conn: Connection) -> None:
    """Drop Cairn's triggers (icat.server's, if any, are left alone)."""
    dialect = conn.dialect.name
    tables = {f"CAIRN_SIZES_{level.tag}_": level.child for level in LEVELS}
    for name in TRIGGERS[dialect]:
        table = tables[name[: len("CAIRN_SIZES_DF_")]]
        if dialect == "postgresql":
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        else:
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
    if dialect == "postgresql":
        for function in PG_FUNCTIONS:
            conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS {function}()")


def _ddl(dialect: str) -> list[str]:
    if dialect == "sqlite":
        return [s for level in LEVELS for s in _sqlite(level)]
    if dialect == "postgresql":
        return [s for level in LEVELS for s in _postgresql(level)]
    return [s for level in LEVELS for s in _mariadb(level)]


def _add(level: _Level, row: str, sign: str, where: str = "") -> str:
    """UPDATE adding (sign '+') or removing ('-') one child row to or from its parent."""
    return (f"UPDATE {level.parent} SET "
            f"FILESIZE = COALESCE(FILESIZE, 0) {sign} {level.size_of(row)}, "
            f"FILECOUNT = COALESCE(FILECOUNT, 0) {sign} {level.count_of(row)} "
            f"WHERE ID = {row}.{level.fk}{where}")


def _delta(level: _Level) -> str:
    """UPDATE adding NEW minus OLD of a row that stayed with its parent."""
    return (f"UPDATE {level.parent} SET "
            f"FILESIZE = COALESCE(FILESIZE, 0) + {level.size_of('NEW')} - "
            f"{level.size_of('OLD')}, "
            f"FILECOUNT = COALESCE(FILECOUNT, 0) + {level.count_of('NEW')} - "
            f"{level.count_of('OLD')} "
            f"WHERE ID = NEW.{level.fk}")


def _changed(level: _Level) -> str:
    """True when a row that stayed with its parent now adds something else to it."""
    out = f"{level.size_of('NEW')} <> {level.size_of('OLD')}"
    if level.count != "1":
        out += f" OR {level.count_of('NEW')} <> {level.count_of('OLD')}"
    return out


def _nonzero(level: _Level, row: str) -> str | None:
    """True when a row adds anything to its parent; None: always (a datafile adds a file)."""
    if level.count == "1":
        return None
    return f"{level.size_of(row)} <> 0 OR {level.count_of(row)} <> 0"


def _when(condition: str | None) -> str:
    return f" WHEN {condition}" if condition else ""


def _sqlite(level: _Level) -> list[str]:
    t, fk, name = level.child, level.fk, f"CAIRN_SIZES_{level.tag}"
    sums = "FILESIZE" if level.count == "1" else "FILESIZE, FILECOUNT"
    # Staying and moving are separate triggers, so the common case (a file added changes
    # its dataset's sums in place) runs one UPDATE per level.
    return [
        f"CREATE TRIGGER {name}_INSERT AFTER INSERT ON {t}{_when(_nonzero(level, 'NEW'))} "
        f"BEGIN {_add(level, 'NEW', '+')}; END",
        f"CREATE TRIGGER {name}_DELETE AFTER DELETE ON {t}{_when(_nonzero(level, 'OLD'))} "
        f"BEGIN {_add(level, 'OLD', '-')}; END",
        f"CREATE TRIGGER {name}_UPDATE AFTER UPDATE OF {sums} ON {t} "
        f"WHEN NEW.{fk} = OLD.{fk} AND ({_changed(level)}) BEGIN {_delta(level)}; END",
        f"CREATE TRIGGER {name}_MOVE AFTER UPDATE OF {fk} ON {t} WHEN NEW.{fk} <> OLD.{fk} "
        f"BEGIN {_add(level, 'OLD', '-')}; {_add(level, 'NEW', '+')}; END",
    ]


def _mariadb(level: _Level) -> list[str]:
    t, fk, name = level.child, level.fk, f"CAIRN_SIZES_{level.tag}"
    nonzero = _nonzero(level, "NEW")
    if nonzero is None:
        insert = _add(level, "NEW", "+")
    else:  # lock the parent even when adding nothing (see the module's docstring)
        insert = (f"IF {nonzero} THEN {_add(level, 'NEW', '+')}; "
                  f"ELSE UPDATE {level.parent} SET FILECOUNT = FILECOUNT "
                  f"WHERE ID = NEW.{fk}; END IF")
    delete = _add(level, "OLD", "-")
    if (gone := _nonzero(level, "OLD")) is not None:
        delete = f"IF {gone} THEN {delete}; END IF"
    return [
        f"CREATE TRIGGER {name}_INSERT BEFORE INSERT ON {t} FOR EACH ROW BEGIN {insert}; END",
        f"CREATE TRIGGER {name}_UPDATE BEFORE UPDATE ON {t} FOR EACH ROW BEGIN "
        f"IF NEW.{fk} <> OLD.{fk} THEN {_add(level, 'OLD', '-')}; {_add(level, 'NEW', '+')}; "
        f"ELSEIF {_changed(level)} THEN {_delta(level)}; END IF; END",
        f"CREATE TRIGGER {name}_DELETE AFTER DELETE ON {t} FOR EACH ROW BEGIN {delete}; END",
    ]


def _postgresql(level: _Level) -> list[str]:
    t, fk, name = level.child, level.fk, f"CAIRN_SIZES_{level.tag}"
    function = f"CAIRN_SIZES_{level.child}"

    def rows(table: str, sign: str) -> str:
        return (f"SELECT r.{fk} AS parent, {sign}{level.size_of('r')} AS sz, "
                f"{sign}{level.count_of('r')} AS n FROM {table} r")

    def apply(source: str) -> str:
        # What the statement's rows add to each parent, grouped: one UPDATE however many.
        return (f"UPDATE {level.parent} p SET FILESIZE = COALESCE(p.FILESIZE, 0) + d.sz, "
                f"FILECOUNT = COALESCE(p.FILECOUNT, 0) + d.n FROM ("
                f"SELECT parent, SUM(sz) AS sz, SUM(n) AS n FROM ({source}) x "
                f"GROUP BY parent HAVING SUM(sz) <> 0 OR SUM(n) <> 0) d "
                f"WHERE p.ID = d.parent")

    new, old = rows("CAIRN_NEW", ""), rows("CAIRN_OLD", "-")
    body = (f"BEGIN IF TG_OP = 'INSERT' THEN {apply(new)}; "
            f"ELSIF TG_OP = 'DELETE' THEN {apply(old)}; "
            f"ELSE {apply(new + ' UNION ALL ' + old)}; END IF; RETURN NULL; END")
    return [
        f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql "
        f"AS $cairn$ {body} $cairn$",
        # Transition tables allow one event per trigger.
        f"CREATE TRIGGER {name}_INSERT AFTER INSERT ON {t} REFERENCING NEW TABLE AS CAIRN_NEW "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
        f"CREATE TRIGGER {name}_UPDATE AFTER UPDATE ON {t} "
        f"REFERENCING OLD TABLE AS CAIRN_OLD NEW TABLE AS CAIRN_NEW "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
        f"CREATE TRIGGER {name}_DELETE AFTER DELETE ON {t} REFERENCING OLD TABLE AS CAIRN_OLD "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
    ]


# -- recomputing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recomputed:
    """How many rows had wrong sums and were corrected (investigations: by the recount or by
    the triggers carrying their datasets' corrections up)."""

    datasets: int
    investigations: int


def recompute(conn: Connection) -> Recomputed:
    """Make every dataset's and investigation's sums exact: one set-based UPDATE per level,
    touching only the rows that are wrong. Runs in the caller's transaction.

    Writers are held off while it runs (on PostgreSQL a table lock; on MariaDB shared locks
    on the datafiles; SQLite has one writer at a time), so a file added meanwhile is counted
    by its trigger after the recount, never lost in between.
    """
    dialect = conn.dialect.name
    if dialect == "postgresql":
        # Self-exclusive and excludes writers; readers go on.
        conn.exec_driver_sql("LOCK TABLE DATAFILE, DATASET IN SHARE ROW EXCLUSIVE MODE")
    elif dialect == "mysql":
        conn.exec_driver_sql("SELECT COUNT(*) FROM DATAFILE LOCK IN SHARE MODE").all()
    sums = "SELECT ID, FILESIZE, FILECOUNT FROM INVESTIGATION"
    before = {row[0]: tuple(row[1:]) for row in conn.exec_driver_sql(sums)}
    datasets = conn.exec_driver_sql(_recount(DATAFILES, dialect)).rowcount
    # Datasets are exact now: investigations add up their sums, not every datafile again.
    # Where triggers keep them, the datasets' corrections already reached most of them.
    conn.exec_driver_sql(_recount(DATASETS, dialect))
    after = conn.exec_driver_sql(sums).all()
    return Recomputed(datasets, sum(before.get(row[0]) != tuple(row[1:]) for row in after))


def _recount(level: _Level, dialect: str) -> str:
    sums = (f"SELECT c.{level.fk} AS parent, SUM({level.size_of('c')}) AS sz, "
            f"SUM({level.count_of('c')}) AS n FROM {level.child} c GROUP BY c.{level.fk}")
    size, count = "COALESCE(s.sz, 0)", "COALESCE(s.n, 0)"
    wrong = (f"(p.FILESIZE IS NULL OR p.FILECOUNT IS NULL OR p.FILESIZE <> {size} "
             f"OR p.FILECOUNT <> {count})")
    if dialect == "mysql":
        return (f"UPDATE {level.parent} p LEFT JOIN ({sums}) s ON s.parent = p.ID "
                f"SET p.FILESIZE = {size}, p.FILECOUNT = {count} WHERE {wrong}")
    # PostgreSQL and SQLite (3.33+): UPDATE ... FROM, with the parents left-joined inside.
    every = (f"SELECT q.ID AS id, s.sz AS sz, s.n AS n FROM {level.parent} q "
             f"LEFT JOIN ({sums}) s ON s.parent = q.ID")
    return (f"UPDATE {level.parent} AS p SET FILESIZE = {size}, FILECOUNT = {count} "
            f"FROM ({every}) s WHERE p.ID = s.id AND {wrong}")
