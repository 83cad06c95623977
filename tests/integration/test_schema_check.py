"""A database whose tables differ from Cairn's declaration is refused with the differences
named (at start-up, and by `cairn migrate --check`), while what a facility adds is allowed
and icat.server's own layout passes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import String, create_engine, text

from cairn.db import migrate
from cairn.db.engine import Database
from cairn.db.schema_check import Difference, compare
from cairn.db.tables import ident
from tests.conftest import make_database
from tests.integration.cli_support import cairn, clean_env
from tests.integration.server import free_port
from tests.reference import reference_file

#: What icat.server's ICAT 7 upgrade does to a 6.2 catalogue, as Cairn reports it.
ICAT7_DIFFERENCES = [
    Difference("SAMPLE", "column INVESTIGATION_ID is missing"),
    Difference("SAMPLE", "column PID is NOT NULL in the database but optional in Cairn's "
                         "schema: writes without it would fail"),
    Difference("SAMPLE", "foreign key (INVESTIGATION_ID) -> INVESTIGATION is missing"),
    Difference("SAMPLE", "unique key (INVESTIGATION_ID, NAME) is missing (the database has "
                         "(PID))"),
]


def apply_icat7(conn: Any) -> None:
    """The changes of icat.server's ``upgrade_mysql_7_0.sql`` (branch schema-changes-icat7)
    to the tables: a new INVESTIGATIONSAMPLE table; SAMPLE.PID required and the natural key;
    SAMPLE.INVESTIGATION_ID, its foreign key and the old key gone. (Alembic's batch mode, so
    that SQLite, which can't drop a constrained column, rebuilds the table.)"""
    conn.exec_driver_sql(
        "CREATE TABLE INVESTIGATIONSAMPLE (ID BIGINT NOT NULL, CREATE_ID VARCHAR(255) NOT NULL, "
        "CREATE_TIME TIMESTAMP NOT NULL, MOD_ID VARCHAR(255) NOT NULL, MOD_TIME TIMESTAMP "
        "NOT NULL, INVESTIGATION_ID BIGINT NOT NULL, SAMPLE_ID BIGINT NOT NULL, "
        "PRIMARY KEY (ID), "
        "CONSTRAINT FK_INVESTIGATIONSAMPLE_INVESTIGATION_ID FOREIGN KEY (INVESTIGATION_ID) "
        "REFERENCES INVESTIGATION (ID), "
        "CONSTRAINT FK_INVESTIGATIONSAMPLE_SAMPLE_ID FOREIGN KEY (SAMPLE_ID) "
        "REFERENCES SAMPLE (ID), "
        "CONSTRAINT UNQ_INVESTIGATIONSAMPLE_0 UNIQUE (INVESTIGATION_ID, SAMPLE_ID))")
    ops = Operations(MigrationContext.configure(conn))
    with ops.batch_alter_table(ident("SAMPLE")) as batch:
        batch.alter_column(ident("PID"), existing_type=String(255), nullable=False)
        batch.drop_constraint(ident("FK_SAMPLE_INVESTIGATION_ID"), type_="foreignkey")
        batch.drop_constraint(ident("UNQ_SAMPLE_0"), type_="unique")
        batch.create_unique_constraint(ident("UNQ_SAMPLE_0"), [ident("PID")])
        batch.drop_column(ident("INVESTIGATION_ID"))


def differences(db: Database) -> list[Difference]:
    with db.connect() as conn:
        return compare(conn)


@pytest.fixture
def catalogue(database_url: str) -> Any:
    """A catalogue Cairn made (every migration applied)."""
    db = Database(database_url)
    migrate.upgrade(db)
    yield db
    db.dispose()


def test_a_catalogue_cairn_made_matches(catalogue: Database) -> None:
    assert differences(catalogue) == []


def test_what_a_facility_adds_is_allowed(catalogue: Database) -> None:
    with migrate.migration_connection(catalogue) as conn:
        conn.exec_driver_sql("CREATE TABLE FACILITY_NOTES (ID INTEGER PRIMARY KEY, "
                             "NOTE VARCHAR(100) NOT NULL)")
        conn.exec_driver_sql("CREATE INDEX DATAFILE_NAME_SITE ON DATAFILE (NAME)")
        conn.exec_driver_sql("CREATE UNIQUE INDEX DATASET_DOI_SITE ON DATASET (DOI)")
        conn.exec_driver_sql("ALTER TABLE DATAFILE ADD SITE_TAG VARCHAR(20)")
    assert differences(catalogue) == []


def test_what_cairn_can_not_serve_is_named(catalogue: Database) -> None:
    with migrate.migration_connection(catalogue) as conn:
        conn.exec_driver_sql("ALTER TABLE DATASET ADD SITE_REQUIRED VARCHAR(20) NOT NULL")
        conn.exec_driver_sql("DROP TABLE KEYWORD")
    assert differences(catalogue) == [
        Difference("DATASET", "column SITE_REQUIRED is not declared and is NOT NULL without "
                              "a default: Cairn's inserts would fail"),
        Difference("KEYWORD", "the table is missing"),
    ]


def test_the_icat7_upgrade_is_named(catalogue: Database) -> None:
    with migrate.migration_connection(catalogue) as conn:
        apply_icat7(conn)
    assert differences(catalogue) == ICAT7_DIFFERENCES


def test_serve_and_migrate_check_refuse_the_icat7_database(catalogue: Database,
                                                          tmp_path: Path) -> None:
    with migrate.migration_connection(catalogue) as conn:
        apply_icat7(conn)
    url = catalogue.url
    catalogue.dispose()
    env = clean_env(CAIRN_CATALOGUE__DATABASE=url)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    expected = [f"  {d}" for d in ICAT7_DIFFERENCES]

    out = cairn(cwd, "serve", "--port", str(free_port()), env=env)
    assert out.returncode == 1, out
    assert "Traceback" not in out.stderr
    first, *rest = out.errors
    assert first.startswith("error: the catalogue database at ") and first.endswith(
        "does not have the tables Cairn serves (`cairn migrate --check` shows this report); "
        "Cairn refuses to serve it (4 differences):"), first
    assert rest == expected
    assert "Created root account" not in out.stdout
    engine = create_engine(url)
    with engine.connect() as conn:  # no root account was made
        assert conn.execute(text("SELECT COUNT(*) FROM PASSWD")).scalar_one() == 0
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    engine.dispose()

    check = cairn(cwd, "migrate", "--check", env=env)
    assert check.returncode == 1, check
    lines = check.stdout.splitlines()
    assert f"revision: {revision}" in lines
    assert lines[-5:] == ["tables: not as Cairn serves them (4 differences):", *expected]
    assert sorted(p.name for p in cwd.iterdir()) == []  # nothing made on disk either


def test_migrate_check_of_a_good_catalogue(catalogue: Database, tmp_path: Path) -> None:
    out = cairn(tmp_path, "migrate", "--check",
                env=clean_env(CAIRN_CATALOGUE__DATABASE=catalogue.url))
    assert out.returncode == 0, out
    assert out.stdout.splitlines()[-2:] == [f"revision: {migrate.head()}",
                                            "tables: as Cairn serves them"]


def test_migrate_check_creates_no_sqlite_file(tmp_path: Path) -> None:
    out = cairn(tmp_path, "migrate", "--check")
    assert out.returncode == 1
    assert "no catalogue database at" in out.stdout
    assert list(tmp_path.iterdir()) == []


# -- icat.server's own layout ------------------------------------------------------------------


def eclipselink_ddl(layout: dict[str, Any], platform: str) -> list[str]:
    """The tables as EclipseLink creates them for icat.server 6.2 on ``platform`` (mysql or
    postgresql), from the reference layout: columns with their DDL types, then the unique
    and foreign keys, then the one JPA index."""
    quote = "`" if platform == "mysql" else '"'
    out, later = [], []
    for name, table in layout["tables"].items():
        cols = []
        for c in table["columns"]:
            kind = c[platform].replace(" (see PK section)", "")
            column = f"{quote}{c['column']}{quote}" if c["quoted"] else c["column"]
            cols.append(f"{column} {kind}{'' if c['nullable'] else ' NOT NULL'}")
        cols.append(f"PRIMARY KEY ({', '.join(table['primaryKey'])})")
        out.append(f"CREATE TABLE {name} ({', '.join(cols)})")
        for u in table["constraints"]["unique"]:
            later.append(f"ALTER TABLE {name} ADD CONSTRAINT {u[platform]} "
                         f"UNIQUE ({', '.join(u['columns'])})")
        for fk in table["constraints"]["foreignKeys"]:
            target, _, column = fk["references"].partition(".")
            later.append(f"ALTER TABLE {name} ADD CONSTRAINT {fk[platform]} FOREIGN KEY "
                         f"({fk['column']}) REFERENCES {target} ({column})")
        for index in table["indexes"]:
            later.append(f"CREATE INDEX {index['name']} ON {name} "
                         f"({', '.join(index['columns'])})")
    return out + later


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_an_icat_server_database_passes(backend: str, tmp_path: Path) -> None:
    """No false alarm: EclipseLink's own DDL (TINYINT(1) booleans, DATETIME, FLOAT, its
    constraint names), stamped and given Cairn's own tables, is served."""
    layout = json.loads(reference_file("data/icat-6.2-db-layout.json").read_text())
    url, drop = make_database(backend, tmp_path)
    try:
        engine = create_engine(url)
        with engine.begin() as conn:
            for statement in eclipselink_ddl(layout, "mysql" if backend == "mariadb"
                                             else "postgresql"):
                conn.exec_driver_sql(statement)
        engine.dispose()
        db = Database(url)
        migrate.upgrade(db)
        assert differences(db) == []
        db.dispose()
    finally:
        drop()  # type: ignore[operator]
