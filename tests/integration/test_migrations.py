"""Schema creation and upgrades on every backend: the result must be exactly the derived tables."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import pytest
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    Boolean,
    Connection,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    UniqueConstraint,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import TypeDecorator

from cairn.db import migrate
from cairn.db.engine import Database
from cairn.db.tables import TABLES, Tables, build_tables
from cairn.schema import SCHEMA, Field, Schema

HEAD = migrate.head()  # the newest revision; tests check upgrades reach it

NOW = datetime(2024, 5, 1, 12, 30, 0)
STAMP = {"createId": "db/root", "createTime": NOW, "modId": "db/root", "modTime": NOW}
LONG_LOCATION = "/data/" + "x" * 494  # 500 characters: too long for ICAT 6.1, fine for 6.2


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    try:
        yield database
    finally:
        database.dispose()  # before conftest drops the database


# --- comparing a live database with derived tables ----------------------------------------------


def _kind(t: Any) -> str:
    """What a column stores, as far as every backend reflects it alike."""
    if isinstance(t, TypeDecorator):
        t = t.impl_instance  # OrdinalEnum is an INTEGER
    if isinstance(t, String):
        return f"varchar({t.length})"
    if isinstance(t, Boolean | Integer):
        return "int"  # MariaDB reflects BOOLEAN as TINYINT(1)
    if isinstance(t, Float | Numeric):
        return "float"
    if isinstance(t, DateTime):
        return "datetime"
    return type(t).__name__


def _up(names: Any) -> tuple[str, ...]:
    return tuple(str(n).upper() for n in names)


def snapshot(engine: Engine) -> dict[str, dict[str, Any]]:
    """Tables, columns, keys and indexes as reflected, names upper-cased."""
    insp = inspect(engine)
    out: dict[str, dict[str, Any]] = {}
    for name in insp.get_table_names():
        if name.lower() == "alembic_version":
            continue
        out[name.upper()] = {
            "columns": {c["name"].upper(): (c["nullable"], _kind(c["type"]))
                        for c in insp.get_columns(name)},
            "pk": _up(insp.get_pk_constraint(name)["constrained_columns"]),
            "unique": {(u["name"].upper(), _up(u["column_names"]))
                       for u in insp.get_unique_constraints(name)},
            "fks": {(fk["name"].upper(), _up(fk["constrained_columns"]),
                     fk["referred_table"].upper(), _up(fk["referred_columns"]))
                    for fk in insp.get_foreign_keys(name)},
            "indexes": {(i["name"].upper(), _up(i["column_names"]))
                        for i in insp.get_indexes(name) if not i["unique"]},
        }
    return out


def expected(tables: list[Table]) -> dict[str, dict[str, Any]]:
    """The same view of derived tables."""
    return {t.name.upper(): {
        "columns": {c.name.upper(): (c.nullable, _kind(c.type)) for c in t.columns},
        "pk": _up(c.name for c in t.primary_key.columns),
        "unique": {(str(u.name).upper(), _up(c.name for c in u.columns))
                   for u in t.constraints if isinstance(u, UniqueConstraint)},
        "fks": {(str(fk.name).upper(), _up(c.name for c in fk.columns),
                 fk.referred_table.name.upper(), _up(e.column.name for e in fk.elements))
                for fk in t.foreign_key_constraints},
        "indexes": {(str(i.name).upper(), _up(c.name for c in i.columns)) for i in t.indexes},
    } for t in tables}


def all_tables(tables: Tables) -> list[Table]:
    d = tables.downloads
    return [*migrate.catalogue_tables(tables), tables.passwd, tables.ids_prepared,
            tables.ids_failure, tables.ids_lock, tables.job, tables.doi, d.cart, d.cart_item,
            d.download, d.download_item, d.download_type, d.conf_var]


def assert_same(actual: dict[str, Any], wanted: dict[str, Any]) -> None:
    assert sorted(actual) == sorted(wanted)
    for name in wanted:
        assert actual[name] == wanted[name], name


# --- building databases the way icat.server would have left them ------------------------------


def create_unversioned(db: Database, version: str, with_passwd: bool = False) -> Tables:
    """An icat.server-made database: tables of a model version, no alembic_version."""
    tables = migrate.tables_at(version)
    wanted = migrate.catalogue_tables(tables) + ([tables.passwd] if with_passwd else [])
    tables.metadata.create_all(db.engine, tables=wanted)
    return tables


def insert(conn: Connection, tables: Tables, entity: str, **values: Any) -> int:
    result = conn.execute(tables[entity].insert().values(**STAMP, **values))
    return int(result.inserted_primary_key[0])


def fill(db: Database, tables: Tables) -> dict[str, int]:
    """A Facility with an Instrument, Investigation, Dataset and Datafile."""
    with db.begin() as conn:
        ids = {"facility": insert(conn, tables, "Facility", name="LILS")}
        fac = ids["facility"]
        ids["instrument"] = insert(conn, tables, "Instrument", facility=fac, name="MERLIN")
        itype = insert(conn, tables, "InvestigationType", facility=fac, name="experiment")
        ids["investigation"] = insert(conn, tables, "Investigation", facility=fac, type=itype,
                                      name="inv1", visitId="1.1", title="Test investigation")
        dtype = insert(conn, tables, "DatasetType", facility=fac, name="raw")
        ids["dataset"] = insert(conn, tables, "Dataset", investigation=ids["investigation"],
                                type=dtype, name="ds1", complete=False, location="/data/ds1")
        ids["datafile"] = insert(conn, tables, "Datafile", dataset=ids["dataset"],
                                 name="f1.nxs", location="/data/ds1/f1.nxs")
    return ids


# --- tests ----------------------------------------------------------------------------------------


def test_fresh_upgrade_creates_exactly_the_derived_tables(db: Database) -> None:
    assert migrate.current(db) is None
    assert migrate.upgrade(db) == migrate.head() == HEAD
    assert migrate.current(db) == HEAD
    assert_same(snapshot(db.engine), expected(all_tables(TABLES)))


def test_upgrading_twice_changes_nothing(db: Database) -> None:
    migrate.upgrade(db)
    before = snapshot(db.engine)
    assert migrate.upgrade(db) == HEAD
    assert snapshot(db.engine) == before
    with db.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() \
            == [HEAD]


def test_stepwise_upgrade_through_icat_6_1(db: Database) -> None:
    assert migrate.upgrade(db, "icat_6_1") == "icat_6_1"
    assert_same(snapshot(db.engine), expected(migrate.catalogue_tables(migrate.tables_at("6.1"))))
    assert migrate.upgrade(db) == HEAD
    assert_same(snapshot(db.engine), expected(all_tables(TABLES)))


def test_unversioned_icat_6_1_database_is_upgraded_in_place(db: Database) -> None:
    old = create_unversioned(db, "6.1")
    ids = fill(db, old)
    assert migrate.detect_revision(db) == "icat_6_1"

    assert migrate.upgrade(db) == HEAD

    assert_same(snapshot(db.engine), expected(all_tables(TABLES)))
    t = TABLES
    with db.begin() as conn:
        inv = conn.execute(select(t["Investigation"]).where(
            t["Investigation"].c.id == ids["investigation"])).one()
        assert (inv.name, inv.visitId, inv.title, inv.createTime) == \
            ("inv1", "1.1", "Test investigation", NOW)
        df = conn.execute(select(t["Datafile"]).where(t["Datafile"].c.id == ids["datafile"])).one()
        assert (df.name, df.location, df.dataset) == ("f1.nxs", "/data/ds1/f1.nxs", ids["dataset"])
        inst = conn.execute(select(t["Instrument"]).where(
            t["Instrument"].c.id == ids["instrument"])).one()
        assert (inst.name, inst.startDate, inst.endDate) == ("MERLIN", None, None)

        # Widened columns take what ICAT 6.1 could not store.
        conn.execute(t["Dataset"].update().where(t["Dataset"].c.id == ids["dataset"])
                     .values(location=LONG_LOCATION))
        long_df = insert(conn, t, "Datafile", dataset=ids["dataset"], name="f2.nxs",
                         location=LONG_LOCATION)
        # New tables and columns work.
        dc = insert(conn, t, "DataCollection")
        pub = insert(conn, t, "DataPublication", facility=ids["facility"], content=dc,
                     pid="doi:10.5286/1", title="Pub", internalId="int-1")
        insert(conn, t, "Subject", dataPublication=pub, name="neutrons")
        insert(conn, t, "FundingReference", funderName="EC", awardNumber="1",
               acknowledgement="a" * 1023)
        conn.execute(t.passwd.insert().values(userName="root", encodedPassword="x"))
    with db.connect() as conn:
        assert conn.execute(select(t["Datafile"].c.location).where(
            t["Datafile"].c.id == long_df)).scalar() == LONG_LOCATION
        assert conn.execute(select(t["Dataset"].c.location).where(
            t["Dataset"].c.id == ids["dataset"])).scalar() == LONG_LOCATION
        assert conn.execute(select(t["Subject"].c.name)).scalars().all() == ["neutrons"]


def test_rebuilt_tables_keep_their_constraints_and_index(db: Database) -> None:
    """SQLite widens by rebuilding DATAFILE/DATASET; keys and the location index must survive."""
    old = create_unversioned(db, "6.1")
    ids = fill(db, old)
    migrate.upgrade(db)
    insp = inspect(db.engine)
    datafile = next(n for n in insp.get_table_names() if n.upper() == "DATAFILE")
    names = {i["name"].upper(): i["column_names"] for i in insp.get_indexes(datafile)}
    assert [c.upper() for c in names["INDEX_DATAFILE_LOCATION"]] == ["LOCATION"]
    t = TABLES
    with pytest.raises(IntegrityError), db.begin() as conn:  # UNQ_DATAFILE_0
        insert(conn, t, "Datafile", dataset=ids["dataset"], name="f1.nxs")
    with pytest.raises(IntegrityError), db.begin() as conn:  # FK_DATAFILE_DATASET_ID
        insert(conn, t, "Datafile", dataset=ids["dataset"] + 1000, name="orphan")
    with db.begin() as conn:
        dc = insert(conn, t, "DataCollection")
    with pytest.raises(IntegrityError), db.begin() as conn:  # a child's FK to the rebuilt DATASET
        insert(conn, t, "DataCollectionDataset", dataCollection=dc, dataset=ids["dataset"] + 1000)
    with db.begin() as conn:  # ids keep counting from where they were
        assert insert(conn, t, "Datafile", dataset=ids["dataset"], name="f3") > ids["datafile"]


def test_unversioned_icat_6_2_database_is_stamped_not_recreated(db: Database) -> None:
    tables = create_unversioned(db, "6.2", with_passwd=True)
    ids = fill(db, tables)
    with db.begin() as conn:
        conn.execute(tables.passwd.insert().values(userName="root", encodedPassword="secret"))
    assert migrate.detect_revision(db) == "icat_6_2"
    assert migrate.upgrade(db) == HEAD
    assert_same(snapshot(db.engine), expected(all_tables(TABLES)))
    with db.connect() as conn:
        assert conn.execute(select(TABLES.passwd.c.encodedPassword)).scalar() == "secret"
        assert conn.execute(select(TABLES["Datafile"].c.id)).scalars().all() == [ids["datafile"]]


def test_partly_upgraded_database_gets_the_rest(db: Database) -> None:
    """EclipseLink adds 6.2's tables and columns itself but never widens LOCATION (ICAT's
    upgrade_*_6_2.sql is optional): such a database is at 6.1 and only gets widened."""
    create_unversioned(db, "6.1")
    migrate.tables_at("6.2").entity["Subject"].create(db.engine)
    with db.begin() as conn:
        conn.execute(text("ALTER TABLE INSTRUMENT ADD STARTDATE " +
                          ("TIMESTAMP" if db.dialect == "postgresql" else "DATETIME")))
    assert migrate.detect_revision(db) == "icat_6_1"
    assert migrate.upgrade(db) == HEAD
    assert_same(snapshot(db.engine), expected(all_tables(TABLES)))


def test_passwd_of_authn_db_is_kept(db: Database) -> None:
    with db.begin() as conn:
        TABLES.passwd.create(conn)
        conn.execute(TABLES.passwd.insert().values(userName="alice", encodedPassword="hash"))
    assert migrate.detect_revision(db) is None  # not an ICAT database yet
    assert migrate.upgrade(db) == HEAD
    assert_same(snapshot(db.engine), expected(all_tables(TABLES)))
    with db.connect() as conn:
        assert conn.execute(select(TABLES.passwd.c.userName)).scalars().all() == ["alice"]


def test_incomplete_icat_database_is_refused_untouched(db: Database) -> None:
    tables = migrate.tables_at("6.1")
    tables.metadata.create_all(db.engine, tables=[tables["Facility"], tables["Investigation"],
                                                  tables["InvestigationType"]])
    before = snapshot(db.engine)
    with pytest.raises(migrate.MigrationError, match=r"not the complete ICAT 6\.1"):
        migrate.upgrade(db)
    assert snapshot(db.engine) == before
    assert migrate.current(db) is None


def test_unknown_revision_is_refused(db: Database) -> None:
    migrate.upgrade(db)
    with db.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'cairn_9999'"))
    with pytest.raises(migrate.MigrationError, match="cairn_9999"):
        migrate.upgrade(db)


def test_downgrade_to_icat_6_1_and_back(db: Database) -> None:
    migrate.upgrade(db)
    ids = fill(db, TABLES)
    assert migrate.downgrade(db, "icat_6_1") == "icat_6_1"
    six_one = migrate.tables_at("6.1")
    # PASSWD stays (it may belong to authn.db); the data service's tables go.
    assert_same(snapshot(db.engine),
                expected([*migrate.catalogue_tables(six_one), six_one.passwd]))
    with pytest.raises(migrate.MigrationError, match="refusing"):
        migrate.downgrade(db, "base")
    assert migrate.upgrade(db) == HEAD
    assert_same(snapshot(db.engine), expected(all_tables(TABLES)))
    with db.connect() as conn:
        assert conn.execute(select(TABLES["Datafile"].c.location)).scalar() == "/data/ds1/f1.nxs"
        assert conn.execute(select(TABLES["Instrument"].c.id)).scalar() == ids["instrument"]


def _with_field(schema: Schema, entity: str, field: Field) -> Schema:
    e = schema.entities[entity]
    changed = dataclasses.replace(e, fields={**e.fields, field.name: field})
    return Schema(version="9.9", entities={**schema.entities, entity: changed},
                  abstract=schema.abstract, enums=schema.enums,
                  export_order=schema.export_order)


def test_a_future_version_is_a_declaration_line_plus_the_generic_helper(db: Database) -> None:
    """A new optional relation and attribute, as a later ICAT might add: no hand-written DDL."""
    migrate.upgrade(db)
    ids = fill(db, TABLES)
    future = _with_field(SCHEMA, "Dataset", Field(
        entity="Dataset", name="technique", rel="ONE", type="Technique", column="TECHNIQUE_ID",
        since="9.9"))
    future = _with_field(future, "Instrument", Field(
        entity="Instrument", name="serial", rel="ATTRIBUTE", type="String", length=64,
        column="SERIAL", since="9.9"))
    new = build_tables(future, MetaData())
    changes = migrate.model_changes(TABLES, new)
    assert {(type(c).__name__, c.table.name, getattr(c, "column", None) is not None
             and c.column.name) for c in changes} == {
        ("AddColumn", "DATASET", "TECHNIQUE_ID"), ("AddColumn", "INSTRUMENT", "SERIAL")}
    with migrate.migration_connection(db) as conn:
        migrate.apply_changes(Operations(MigrationContext.configure(conn)), changes)
    assert_same(snapshot(db.engine), expected(all_tables(new)))
    with db.begin() as conn:
        tech = insert(conn, new, "Technique", name="SANS")
        conn.execute(new["Dataset"].update().values(technique=tech))
        assert conn.execute(select(new["Dataset"].c.name)).scalar() == "ds1"
    with pytest.raises(IntegrityError), db.begin() as conn:
        conn.execute(new["Dataset"].update().where(new["Dataset"].c.id == ids["dataset"])
                     .values(technique=tech + 1000))
    # And back: the foreign key and index go with the column.
    with migrate.migration_connection(db) as conn:
        migrate.revert_changes(Operations(MigrationContext.configure(conn)), changes)
    assert_same(snapshot(db.engine), expected(all_tables(TABLES)))


def test_a_failed_migration_leaves_nothing_behind(db: Database, backend: str) -> None:
    if backend == "mariadb":
        pytest.skip("MariaDB commits DDL implicitly")
    migrate.upgrade(db)
    before = snapshot(db.engine)
    changes = migrate.model_changes(migrate.tables_at("6.1"), migrate.tables_at("6.2"))
    with pytest.raises(RuntimeError, match="boom"), migrate.migration_connection(db) as conn:
        ops = Operations(MigrationContext.configure(conn))
        migrate.revert_changes(ops, changes)  # drops SUBJECT, rebuilds DATAFILE on SQLite, ...
        assert "SUBJECT" not in {n.upper() for n in inspect(conn).get_table_names()}
        raise RuntimeError("boom")
    assert snapshot(db.engine) == before


def test_concurrent_start_ups_migrate_once(database_url: str) -> None:
    """Several Cairn processes may start together on one database; the lock serialises them."""
    databases = [Database(database_url) for _ in range(3)]
    try:
        with ThreadPoolExecutor(len(databases)) as pool:
            reached = list(pool.map(migrate.upgrade, databases))
        assert reached == [HEAD] * 3
        assert_same(snapshot(databases[0].engine), expected(all_tables(TABLES)))
    finally:
        for d in databases:
            d.dispose()
