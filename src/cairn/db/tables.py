"""SQL tables derived from the schema declaration, laid out as icat.server's database.

Identifiers are emitted unquoted and upper-case, exactly as EclipseLink does: MariaDB keeps
them upper-case, PostgreSQL folds them to lower-case, SQLite ignores case. The one delimited
column of ICAT (``SHIFT."COMMENT"``) stays quoted. Constraint names follow EclipseLink
(``UNQ_<TABLE>_0``, ``FK_<TABLE>_<COLUMN>``), so an existing ICAT database matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Double,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.sql.elements import quoted_name
from sqlalchemy.types import TypeDecorator

from cairn.schema import SCHEMA, Entity, Field, Schema


def ident(name: str, quote: bool = False) -> quoted_name:
    return quoted_name(name, quote=quote)


class OrdinalEnum(TypeDecorator[str]):
    """A Java enum stored by JPA as its ordinal; Python sees the constant's name."""

    impl = Integer
    cache_ok = True

    def __init__(self, values: tuple[str, ...]) -> None:
        super().__init__()
        self.values = values

    def process_bind_param(self, value: Any, dialect: Any) -> int | None:
        if value is None:
            return None
        return self.values.index(value)

    def process_result_value(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else self.values[int(value)]


# MariaDB's TEXT stops at 64 KB; a prepared selection of many files is larger.
LONG_TEXT = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")

# SQLite only makes INTEGER PRIMARY KEY an auto-numbered rowid alias.
ID_TYPE = BigInteger().with_variant(Integer(), "sqlite")


def column_type(f: Field, schema: Schema) -> Any:
    if f.is_one:
        return BigInteger()
    match f.type:
        case "String":
            return String(f.length)
        case "Date":
            return DateTime()
        case "Long":
            return BigInteger()
        case "Integer":
            return Integer()
        case "Double":
            return Double()
        case "boolean":
            return Boolean(create_constraint=False)
        case enum:
            return OrdinalEnum(tuple(schema.enums[enum]))


@dataclass
class Tables:
    """The catalogue's tables: one per concrete entity, plus Cairn's own service tables."""

    metadata: MetaData
    entity: dict[str, Table]
    session: Table
    passwd: Table
    ids_prepared: Table
    ids_failure: Table
    ids_lock: Table
    job: Table
    doi: Table
    downloads: DownloadTables

    def __getitem__(self, entity_name: str) -> Table:
        return self.entity[entity_name]


def _entity_table(entity: Entity, schema: Schema, metadata: MetaData,
                  generated_ids: bool = True) -> Table:
    t = entity.table
    cols: list[Any] = []
    for f in entity.fields.values():
        if f.is_many:
            continue
        name = ident(f.column or "", f.quoted)
        if f.name == "id" and generated_ids:
            cols.append(Column(name, ID_TYPE, Identity(start=1), primary_key=True,
                               autoincrement=True, key="id"))
        elif f.name == "id":  # an icat.server layout fed from SEQ_GEN_SEQUENCE
            cols.append(Column(name, BigInteger(), primary_key=True, autoincrement=False,
                               key="id"))
        else:
            cols.append(Column(name, column_type(f, schema), nullable=not f.required, key=f.name,
                               default=False if f.type == "boolean" and not f.is_one else None))
    args: list[Any] = []
    if entity.key:
        args.append(UniqueConstraint(*entity.key, name=ident(f"UNQ_{t}_0")))
    for f in entity.ones:
        target = schema.entities[f.type].table
        args.append(ForeignKeyConstraint([f.name], [f"{target}.id"],
                                         name=ident(_limit(f"FK_{t}_{f.column}"))))
        if not entity.key or f.name != entity.key[0]:
            # icat.server relies on InnoDB's implicit FK indexes; PostgreSQL and SQLite need them.
            args.append(Index(ident(_limit(f"IDX_{t}_{f.column}")), f.name))
    if entity.name == "Datafile":
        args.append(Index(ident("INDEX_DATAFILE_location"), "location"))
        # Cairn's own: a search page of files sorted by name reads a page of this index
        # instead of sorting every matching file (cairn_0009)
        args.append(Index(ident("IDX_CAIRN_DATAFILE_NAME"), "name", "id"))
        # Cairn's own: many datasets' files walked by id alone, not through the unique key's
        # entries with their names (cairn_0012)
        args.append(Index(ident(DATAFILE_DATASET_INDEX), "dataset", "id"))
    # Cairn's own, for parameter filters walking datasets in investigation order (cairn_0010)
    if entity.name == "Dataset":
        args.append(Index(ident("IDX_CAIRN_DATASET_INVESTIGATION"), "investigation", "id"))
    if entity.name == "DatasetParameter":
        args.append(Index(ident("IDX_CAIRN_DATASETPARAMETER_NUMERIC"), "dataset",
                          "numericValue", postgresql_include=["type", "id"]))
    if entity.extends == "Parameter":
        # Cairn's own, for parameter filters once the type is looked up (cairn_0011)
        args.append(Index(ident(type_numeric_index(t)), "type", "numericValue"))
    return Table(ident(t), metadata, *cols, *args)


#: DATAFILE (DATASET_ID, ID), Cairn's own (migration cairn_0012).
DATAFILE_DATASET_INDEX = "IDX_CAIRN_DATAFILE_DATASET"


def type_numeric_index(table: str) -> str:
    """The name of a parameter table's (PARAMETER_TYPE_ID, NUMERIC_VALUE) index."""
    return f"IDX_CAIRN_{table.upper()}_TYPE_NUMERIC"


def _limit(name: str) -> str:
    return name if len(name) <= 60 else name[:60]


def build_tables(schema: Schema = SCHEMA, metadata: MetaData | None = None,
                 generated_ids: bool = True) -> Tables:
    """Build SQLAlchemy tables for the given (possibly historical) schema.

    ``generated_ids=False`` gives ID columns without a generator, as icat.server creates them
    where it uses a sequence (PostgreSQL, Oracle, MariaDB Connector/J); for tests and tools.
    """
    md = metadata if metadata is not None else MetaData()
    entity = {name: _entity_table(e, schema, md, generated_ids)
              for name, e in schema.entities.items()}
    session = Table(ident("SESSION_"), md,
                    Column(ident("ID"), String(255), primary_key=True, key="id"),
                    Column(ident("EXPIREDATETIME"), DateTime(), key="expireDateTime"),
                    Column(ident("USERNAME"), String(255), key="userName"))
    # The table of authn.db, so an existing authn.db user list works unchanged.
    passwd = Table(ident("PASSWD"), md,
                   Column(ident("USERNAME"), String(255), primary_key=True, key="userName"),
                   Column(ident("ENCODEDPASSWORD"), String(255), key="encodedPassword"))
    ids_prepared, ids_failure, ids_lock = _data_service_tables(md)
    return Tables(metadata=md, entity=entity, session=session, passwd=passwd,
                  ids_prepared=ids_prepared, ids_failure=ids_failure, ids_lock=ids_lock,
                  job=_job_table(md), doi=_doi_table(md),
                  downloads=_download_tables(md))


def _data_service_tables(md: MetaData) -> tuple[Table, Table, Table]:
    """The data service's state, kept in the catalogue database so it survives restarts and
    is shared by every Cairn process (ids.server keeps it in memory and in cache files)."""
    prepared = Table(
        ident("CAIRN_IDS_PREPARED"), md,
        Column(ident("PREPARED_ID"), String(36), primary_key=True, key="id"),
        Column(ident("USERNAME"), String(255), nullable=False, key="user"),
        Column(ident("CREATED"), DateTime(), nullable=False, key="created"),
        Column(ident("ZIP"), Boolean(create_constraint=False), nullable=False, key="zip"),
        Column(ident("COMPRESS"), Boolean(create_constraint=False), nullable=False,
               key="compress"),
        # JSON snapshot of the selection at prepare time (datasets, datafiles, empty datasets).
        Column(ident("CONTENT"), LONG_TEXT, nullable=False, key="content"),
        Index(ident("IDX_CAIRN_IDS_PREPARED_CREATED"), "created"))
    failure = Table(
        ident("CAIRN_IDS_FAILURE"), md,
        Column(ident("UNIT"), String(8), primary_key=True, key="unit"),
        Column(ident("UNIT_ID"), BigInteger(), primary_key=True, key="unit_id"),
        Column(ident("MESSAGE"), String(1024), key="message"),
        Column(ident("CREATED"), DateTime(), nullable=False, key="created"))
    # Dataset locks shared by every process (cairn_0003): one row per holder and dataset;
    # rows whose heartbeat stopped (a dead process) are ignored, then purged.
    lock = Table(
        ident("CAIRN_IDS_LOCK"), md,
        Column(ident("HOLDER"), String(36), primary_key=True, key="holder"),
        Column(ident("DATASET_ID"), BigInteger(), primary_key=True, key="dataset_id"),
        Column(ident("SHARED"), Boolean(create_constraint=False), nullable=False, key="shared"),
        Column(ident("OWNER"), String(64), nullable=False, key="owner"),
        Column(ident("HEARTBEAT"), DateTime(), nullable=False, key="heartbeat"),
        Index(ident("IDX_CAIRN_IDS_LOCK_DATASET"), "dataset_id"))
    return prepared, failure, lock


def _job_table(md: MetaData) -> Table:
    """Durable jobs (cairn_0004): one row per request, see :mod:`cairn.jobs`. Times are naive
    UTC in whole seconds, as MariaDB's DATETIME keeps them."""
    return Table(
        ident("CAIRN_JOB"), md,
        Column(ident("ID"), ID_TYPE, Identity(start=1), primary_key=True, autoincrement=True,
               key="id"),
        Column(ident("KIND"), String(64), nullable=False, key="kind"),
        # Requests of one kind with the same key are merged while they wait and never run
        # at the same time (NULL: an independent job).
        Column(ident("JOB_KEY"), String(255), key="key"),
        # QUEUED, RUNNING, DONE, FAILED or CANCELLED.
        Column(ident("STATE"), String(16), nullable=False, key="state"),
        Column(ident("PAYLOAD"), LONG_TEXT, nullable=False, key="payload"),  # JSON
        Column(ident("PRIORITY"), Integer(), nullable=False, key="priority"),  # lower first
        Column(ident("NOT_BEFORE"), DateTime(), nullable=False, key="not_before"),
        Column(ident("CREATED"), DateTime(), nullable=False, key="created"),
        Column(ident("STARTED"), DateTime(), key="started"),
        Column(ident("FINISHED"), DateTime(), key="finished"),
        # Failed attempts so far, and how many are allowed (NULL: no limit).
        Column(ident("ATTEMPTS"), Integer(), nullable=False, key="attempts"),
        Column(ident("MAX_ATTEMPTS"), Integer(), key="max_attempts"),
        # The process running it, that run's token, and the process's last sign of life.
        Column(ident("CLAIMED_BY"), String(64), key="claimed_by"),
        Column(ident("CLAIM"), String(36), key="claim"),
        Column(ident("HEARTBEAT"), DateTime(), key="heartbeat"),
        Column(ident("CANCEL"), Boolean(create_constraint=False), nullable=False,
               key="cancel"),
        Column(ident("PROGRESS"), BigInteger(), key="progress"),
        Column(ident("PROGRESS_TOTAL"), BigInteger(), key="progress_total"),
        Column(ident("ERROR"), Text(), key="error"),
        # Bumped by every change: updates are compare-and-set on it.
        Column(ident("VERSION"), Integer(), nullable=False, key="version"),
        Index(ident("IDX_CAIRN_JOB_STATE"), "state", "not_before"),
        Index(ident("IDX_CAIRN_JOB_KEY"), "kind", "key"),
        Index(ident("IDX_CAIRN_JOB_FINISHED"), "finished"))


def _doi_table(md: MetaData) -> Table:
    """DOIs minted by Cairn (cairn_0005): what each names, where it stands at DataCite, and
    what jobs drive it toward. Its DataPublication holds the metadata; this row holds what ICAT
    has no place for (state, versions, withdrawal)."""
    return Table(
        ident("CAIRN_DOI"), md,
        # Lower case: DOIs are case-insensitive.
        Column(ident("DOI"), String(255), primary_key=True, key="doi"),
        # investigation, collection, instrument or concept (cairn.publishing.model.Kind).
        Column(ident("KIND"), String(16), nullable=False, key="kind"),
        # The Investigation or Instrument it names (None for a collection and a concept).
        Column(ident("SUBJECT_ID"), BigInteger(), key="subject_id"),
        # Its DataPublication, once written (after DataCite has the draft).
        Column(ident("PUBLICATION_ID"), BigInteger(), key="publication_id"),
        # pending, draft, registered or findable: as DataCite last answered.
        Column(ident("STATE"), String(16), nullable=False, key="state"),
        # The state its jobs drive it toward.
        Column(ident("TARGET"), String(16), nullable=False, key="target"),
        # Versions: the concept DOI naming them all, and this one's number.
        Column(ident("CONCEPT"), String(255), key="concept"),
        Column(ident("VERSION"), Integer(), key="version"),
        # What was asked for, until its DataPublication exists (JSON).
        Column(ident("REQUEST"), LONG_TEXT, key="request"),
        # The attributes DataCite last accepted (JSON): a change is sent only if it differs.
        Column(ident("SENT"), LONG_TEXT, key="sent"),
        # DataCite's last refusal, for the people who can fix it.
        Column(ident("ERROR"), Text(), key="error"),
        Column(ident("CREATED_BY"), String(255), nullable=False, key="created_by"),
        Column(ident("CREATED"), DateTime(), nullable=False, key="created"),
        Column(ident("UPDATED"), DateTime(), nullable=False, key="updated"),
        # Withdrawn: when, why, and the DOI or URL that replaces it.
        Column(ident("WITHDRAWN"), DateTime(), key="withdrawn"),
        Column(ident("REASON"), String(1023), key="reason"),
        Column(ident("REPLACED_BY"), String(255), key="replaced_by"),
        Index(ident("IDX_CAIRN_DOI_SUBJECT"), "kind", "subject_id"),
        Index(ident("IDX_CAIRN_DOI_PUBLICATION"), "publication_id"),
        Index(ident("IDX_CAIRN_DOI_CONCEPT"), "concept"))



@dataclass
class DownloadTables:
    """The download manager's carts and downloads (cairn_0006), as TopCat keeps them."""

    cart: Table
    cart_item: Table
    download: Table
    download_item: Table
    download_type: Table
    conf_var: Table


def _download_tables(md: MetaData) -> DownloadTables:
    """Carts and downloads (cairn_0006). Times are naive UTC in whole seconds."""
    def id_column() -> Column[Any]:
        return Column(ident("ID"), ID_TYPE, Identity(start=1), primary_key=True,
                      autoincrement=True, key="id")

    cart = Table(
        ident("CAIRN_CART"), md, id_column(),
        Column(ident("FACILITY_NAME"), String(255), nullable=False, key="facility"),
        # The owner; an anonymous user's carts are per session: <anon user>/<session hash>.
        Column(ident("USER_NAME"), String(255), nullable=False, key="user"),
        Column(ident("CREATED"), DateTime(), nullable=False, key="created"),
        Column(ident("UPDATED"), DateTime(), nullable=False, key="updated"),
        UniqueConstraint("facility", "user", name=ident("UNQ_CAIRN_CART_0")))
    cart_item = Table(
        ident("CAIRN_CART_ITEM"), md, id_column(),
        Column(ident("CART_ID"), BigInteger(), nullable=False, key="cart"),
        # investigation, dataset or datafile
        Column(ident("ENTITY_TYPE"), String(16), nullable=False, key="entity_type"),
        Column(ident("ENTITY_ID"), BigInteger(), nullable=False, key="entity_id"),
        Column(ident("NAME"), String(255), nullable=False, key="name"),
        # What holds it, as JSON [["investigation", 1], ["dataset", 2]]: adding a parent
        # removes the items it holds.
        Column(ident("PARENTS"), Text(), nullable=False, key="parents"),
        ForeignKeyConstraint(["cart"], ["CAIRN_CART.id"], ondelete="CASCADE",
                             name=ident("FK_CAIRN_CART_ITEM_CART")),
        UniqueConstraint("cart", "entity_type", "entity_id",
                         name=ident("UNQ_CAIRN_CART_ITEM_0")))
    download = Table(
        ident("CAIRN_DOWNLOAD"), md, id_column(),
        Column(ident("FACILITY_NAME"), String(255), nullable=False, key="facility"),
        Column(ident("USER_NAME"), String(255), nullable=False, key="user"),
        Column(ident("FULL_NAME"), String(255), key="full_name"),
        Column(ident("TRANSPORT"), String(255), nullable=False, key="transport"),
        Column(ident("FILE_NAME"), String(255), nullable=False, key="file_name"),
        Column(ident("PREPARED_ID"), String(36), key="prepared_id"),
        Column(ident("EMAIL"), String(255), key="email"),
        Column(ident("IS_EMAIL_SENT"), Boolean(create_constraint=False), nullable=False,
               key="is_email_sent"),
        # PREPARING, RESTORING, COMPLETE, EXPIRED, PAUSED, QUEUED (TopCat's), DELIVERED.
        Column(ident("STATUS"), String(16), nullable=False, key="status"),
        Column(ident("PRIORITY"), Integer(), nullable=False, key="priority"),
        # Bytes of the data (TopCat's THE_SIZE; -1 unknown).
        Column(ident("THE_SIZE"), BigInteger(), nullable=False, key="size"),
        Column(ident("IS_TWO_LEVEL"), Boolean(create_constraint=False), nullable=False,
               key="is_two_level"),
        Column(ident("CREATED"), DateTime(), nullable=False, key="created"),
        Column(ident("COMPLETED"), DateTime(), key="completed"),
        Column(ident("IS_DELETED"), Boolean(create_constraint=False), nullable=False,
               key="is_deleted"),
        Column(ident("DELETED_AT"), DateTime(), key="deleted_at"),
        # Delivery: the zip's length, the byte ranges of it sent so far (JSON [[a, b), ...]),
        # their total, and when the last byte went out.
        Column(ident("LENGTH"), BigInteger(), key="length"),
        Column(ident("SENT_RANGES"), Text(), key="sent_ranges"),
        Column(ident("BYTES_SENT"), BigInteger(), nullable=False, key="bytes_sent"),
        Column(ident("DELIVERED"), DateTime(), key="delivered"),
        # Set by an admin for the ready mail (TopCat's customValue), and the last failure.
        Column(ident("CUSTOM_VALUE"), Text(), key="custom_value"),
        Column(ident("ERROR"), Text(), key="error"),
        Index(ident("IDX_CAIRN_DOWNLOAD_USER"), "facility", "user"),
        Index(ident("IDX_CAIRN_DOWNLOAD_STATUS"), "status"),
        Index(ident("IDX_CAIRN_DOWNLOAD_PREPARED"), "prepared_id"))
    download_item = Table(
        ident("CAIRN_DOWNLOAD_ITEM"), md, id_column(),
        Column(ident("DOWNLOAD_ID"), BigInteger(), nullable=False, key="download"),
        Column(ident("ENTITY_TYPE"), String(16), nullable=False, key="entity_type"),
        Column(ident("ENTITY_ID"), BigInteger(), nullable=False, key="entity_id"),
        ForeignKeyConstraint(["download"], ["CAIRN_DOWNLOAD.id"], ondelete="CASCADE",
                             name=ident("FK_CAIRN_DOWNLOAD_ITEM_DOWNLOAD")),
        Index(ident("IDX_CAIRN_DOWNLOAD_ITEM_DOWNLOAD"), "download"))
    download_type = Table(
        ident("CAIRN_DOWNLOAD_TYPE"), md,
        Column(ident("FACILITY_NAME"), String(255), primary_key=True, key="facility"),
        Column(ident("TYPE"), String(255), primary_key=True, key="type"),
        Column(ident("DISABLED"), Boolean(create_constraint=False), nullable=False,
               key="disabled"),
        Column(ident("MESSAGE"), String(1024), key="message"))
    conf_var = Table(
        ident("CAIRN_CONF_VAR"), md,
        Column(ident("NAME"), String(255), primary_key=True, key="name"),
        Column(ident("VALUE"), Text(), key="value"))
    return DownloadTables(cart, cart_item, download, download_item, download_type, conf_var)

TABLES = build_tables()
