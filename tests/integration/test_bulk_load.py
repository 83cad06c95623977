"""The bulk writer (cairn.demo.bulk) on every backend: values stored as normal writes store
them, broken references fail the load, and on PostgreSQL the COPY thread and the foreign keys
checked once at the end (MariaDB: the session's checks put back)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psycopg
import pytest
from sqlalchemy import Connection, func, insert, select, text
from sqlalchemy.exc import DBAPIError

from cairn.db.engine import Database
from cairn.demo import load_demo
from cairn.demo.bulk import BulkWriter
from cairn.demo.mariaload import BrokenReference
from cairn.startup import catalogue_of

FACILITY = ("name", "fullName", "description", "daysUntilRelease")
PARAMETER_TYPE = ("facility", "name", "units", "valueType", "description", "enforced",
                  "verified", "minimumNumericValue", "maximumNumericValue",
                  "applicableToDataCollection", "applicableToDatafile", "applicableToDataset",
                  "applicableToInvestigation", "applicableToSample")
AWKWARD_TEXT = ("tab\there", "new\nline", "back\\slash", "\\N", "cr\rlf", "", "naïve ✓")


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.tables.metadata.create_all(database.engine)
    try:
        yield database
    finally:
        database.dispose()


def _foreign_keys(conn: Connection) -> set[tuple[str, str, str]]:
    return {(str(t), str(n), str(d)) for t, n, d in conn.execute(text(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
        "FROM pg_constraint WHERE contype = 'f'"))}


def _rows(conn: Connection, db: Database, entity: str, columns: tuple[str, ...]
          ) -> list[tuple[Any, ...]]:
    t = db.tables[entity]
    return [tuple(r) for r in conn.execute(select(*(t.c[k] for k in columns)).order_by(t.c.id))]


def test_values_read_back_as_written_by_sqlalchemy(db: Database) -> None:
    """Every kind of value, through the bulk path and through a plain INSERT, reads back the
    same (COPY text escapes, NULLs, booleans, doubles, enums, microseconds)."""
    now = db.now()
    fac_rows = [(name, name.upper(), None if i % 2 else name, i) for i, name in
                enumerate(AWKWARD_TEXT)]
    flags = (True, False, None, True, False)
    param_rows = [(0, "numeric", "K", "NUMERIC", "a\tb", True, None, -1.5e-300, 1e300, *flags),
                  (0, "text", "", "STRING", None, False, False, None, 0.1, *flags),
                  (0, "when", "s", "DATE_AND_TIME", "x\\y", None, True, 3, -0.0, *flags)]
    system = {"createId": "db/loader", "modId": "db/loader", "createTime": now,
              "modTime": now}
    with db.begin() as conn:
        with BulkWriter(conn, db.tables, "db/loader", now, batch_rows=3) as writer:
            facilities = writer.sink("Facility", FACILITY)
            types = writer.sink("ParameterType", PARAMETER_TYPE)
            first, *_ = [facilities.add(row) for row in fac_rows]
            for row in param_rows:
                types.add((first, *row[1:]))
                writer.maybe_flush()
            writer.finish()
        bulk = (_rows(conn, db, "Facility", FACILITY),
                _rows(conn, db, "ParameterType", PARAMETER_TYPE))
        assert conn.execute(select(db.tables["Facility"].c.createTime)).scalars().all() \
            == [now] * len(fac_rows)
    with db.begin() as conn:  # the same rows, written as SQLAlchemy writes them
        conn.execute(db.tables["ParameterType"].delete())
        conn.execute(db.tables["Facility"].delete())
        ids = [conn.execute(insert(db.tables["Facility"]).values(
            **dict(zip(FACILITY, row, strict=True)), **system)).inserted_primary_key[0]
            for row in fac_rows]
        for row in param_rows:
            conn.execute(insert(db.tables["ParameterType"]).values(
                **dict(zip(PARAMETER_TYPE, (ids[0], *row[1:]), strict=True)), **system))
        plain = (_rows(conn, db, "Facility", FACILITY),
                 _rows(conn, db, "ParameterType", PARAMETER_TYPE))
    for written in (bulk, plain):  # facility ids differ: compare the rest
        written[1][:] = [row[1:] for row in written[1]]
    assert bulk == plain
    assert bulk[0] == fac_rows


def _pg(db: Database) -> None:
    if db.dialect != "postgresql":
        pytest.skip("COPY and deferred foreign keys are PostgreSQL's")


def test_foreign_keys_as_they_were_after_a_load(db: Database) -> None:
    _pg(db)
    with db.connect() as conn:
        before = _foreign_keys(conn)
    assert ("datafile", "fk_datafile_dataset_id",
            "FOREIGN KEY (dataset_id) REFERENCES dataset(id)") in before
    load_demo(catalogue_of(db), scale=0.05)
    with db.connect() as conn:
        assert _foreign_keys(conn) == before
        assert conn.execute(select(func.count()).select_from(db.tables["Datafile"])
                            ).scalar_one() > 100


def test_foreign_keys_back_after_a_failed_load(db: Database,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _pg(db)
    with db.connect() as conn:
        before = _foreign_keys(conn)

    def broken_finish(self: BulkWriter) -> None:
        self.flush()  # the keys are dropped and rows are on their way
        raise RuntimeError("disk full")

    monkeypatch.setattr(BulkWriter, "finish", broken_finish)
    with pytest.raises(RuntimeError, match="disk full"):
        load_demo(catalogue_of(db), scale=0.05)
    with db.connect() as conn:
        assert _foreign_keys(conn) == before
        assert conn.execute(select(func.count()).select_from(db.tables["Datafile"])
                            ).scalar_one() == 0


def _one_dataset(conn: Connection, db: Database, now: datetime) -> int:
    system = {"createId": "x", "modId": "x", "createTime": now, "modTime": now}
    t = db.tables

    def add(entity: str, **values: Any) -> int:
        return int(conn.execute(insert(t[entity]).values(**values, **system))
                   .inserted_primary_key[0])

    fac = add("Facility", name="F")
    inv = add("Investigation", facility=fac, name="I", visitId="1", title="T",
              type=add("InvestigationType", facility=fac, name="IT"))
    return add("Dataset", investigation=inv, name="D", complete=False,
               type=add("DatasetType", facility=fac, name="DT"))


def test_a_broken_reference_fails_the_load(db: Database) -> None:
    """Checked once at the end, a datafile without its dataset still fails the load, and
    the table keeps its key."""
    _pg(db)
    now = db.now()
    with db.begin() as conn:
        dataset = _one_dataset(conn, db, now)
    with db.connect() as conn:
        before = _foreign_keys(conn)
    # Only empty tables have their keys deferred: Datafile is, Dataset is not.
    with pytest.raises(DBAPIError, match="fk_datafile_dataset_id"), db.begin() as conn, \
            BulkWriter(conn, db.tables, "db/loader", now) as writer:
        files = writer.sink("Datafile", ("dataset", "name", "location"))
        files.add((dataset, "good.nxs", "good.nxs"))
        files.add((dataset + 1000, "orphan.nxs", "orphan.nxs"))
        writer.finish()
    with db.connect() as conn:
        assert _foreign_keys(conn) == before
        assert conn.execute(select(func.count()).select_from(db.tables["Datafile"])
                            ).scalar_one() == 0


def test_an_error_in_the_copy_thread_reaches_the_loader(db: Database) -> None:
    """A COPY failing in the writer's thread (here a duplicate natural key) is raised in the
    loading thread, and the load stops there."""
    _pg(db)
    now = db.now()
    with db.begin() as conn:
        dataset = _one_dataset(conn, db, now)
    # Raised by the driver in the thread, not wrapped by SQLAlchemy (as before the thread).
    with pytest.raises(psycopg.errors.UniqueViolation, match="unq_datafile_0"), \
            db.begin() as conn, \
            BulkWriter(conn, db.tables, "db/loader", now, batch_rows=1) as writer:
        files = writer.sink("Datafile", ("dataset", "name", "location"))
        for k in range(50):
            files.add((dataset, "same.nxs" if k in (3, 4) else f"{k}.nxs", f"{k}"))
            writer.maybe_flush()
        writer.finish()
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(db.tables["Datafile"])
                            ).scalar_one() == 0


def _fk_checks(conn: Connection) -> int:
    return int(conn.exec_driver_sql("SELECT @@SESSION.foreign_key_checks").scalar_one())


def test_a_broken_reference_among_new_tables_fails_the_load(db: Database) -> None:
    """Users, groups and memberships all new (PostgreSQL and MariaDB check their keys once,
    at the end): a membership of a user who does not exist fails the load, nothing is
    written, and the keys hold afterwards."""
    now = db.now()
    errors: tuple[type[BaseException], ...] = (DBAPIError, BrokenReference)
    with pytest.raises(errors, match=r"(?i)fk_usergroup_user_id|FOREIGN KEY constraint failed"), \
            db.begin() as conn, BulkWriter(conn, db.tables, "db/loader", now) as writer:
        users = writer.sink("User", ("name",))
        groups = writer.sink("Grouping", ("name",))
        members = writer.sink("UserGroup", ("user", "grouping"))
        alice, group = users.add(("db/alice",)), groups.add(("g",))
        members.add((alice, group))
        members.add((alice + 1000, group))
        writer.finish()
    with db.begin() as conn:
        assert conn.execute(select(func.count()).select_from(db.tables["User"])
                            ).scalar_one() == 0
        if db.dialect == "mysql":
            assert _fk_checks(conn) == 1
        with pytest.raises(DBAPIError):  # the key is in force for everyone afterwards
            conn.execute(insert(db.tables["UserGroup"]).values(
                user=12345, grouping=12345, createId="x", modId="x", createTime=now,
                modTime=now))


def test_mariadb_checks_stay_on_when_a_parent_is_not_new(db: Database) -> None:
    """A load whose rows reference rows that were there before leaves InnoDB's checks on
    (only they lock the parent row against a concurrent delete), and a load that defers
    them puts the session's setting back."""
    if db.dialect != "mysql":
        pytest.skip("MariaDB's session setting")
    now = db.now()
    with db.begin() as conn:
        dataset = _one_dataset(conn, db, now)
    with db.begin() as conn:
        with BulkWriter(conn, db.tables, "db/loader", now) as writer:
            files = writer.sink("Datafile", ("dataset", "name", "location"))
            files.add((dataset, "a.nxs", "a.nxs"))
            writer.flush()
            assert _fk_checks(conn) == 1
            writer.finish()
        with BulkWriter(conn, db.tables, "db/loader", now) as writer:
            users = writer.sink("User", ("name",))
            users.add(("db/bob",))
            writer.flush()
            assert _fk_checks(conn) == 0
            writer.finish()
        assert _fk_checks(conn) == 1
