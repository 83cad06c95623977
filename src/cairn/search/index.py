"""The in-database index: one document table per indexed entity, holding the entity's own
text, in the catalogue database's own full-text machinery.

- SQLite: an FTS5 table (rowid = the entity's id), one column per field, unicode61 tokens.
- PostgreSQL: ``(ID, DOC tsvector)`` with a GIN index, each field under its own weight.
- MariaDB: ``(ID, <fields>)`` with the normalised text and a FULLTEXT index over all fields.

Every backend tokenises as :mod:`cairn.search.text` does (maximal runs of letters and
digits, lower-cased), so a query means the same everywhere. A leaf of a query
(:class:`cairn.search.lucene.Leaf`) becomes a statement selecting the ids of the entity whose
fields match it: the native index answers exactly where it can, and finds candidates that a
check on the normalised text confirms where it can't (wildcards inside a word, a phrase over
several fields or fields sharing a weight on PostgreSQL, words under MariaDB's minimum
length, a datafile's file name).

Beside the documents, each search target (Investigation, Dataset, Datafile) has a table of
its sort keys that are expressions (a datafile's ``date`` is the first of three dates that is
set, its ``fileSize`` 0 where unknown): :class:`KeyTable`, plain NOT NULL columns with a
(key, id) index each way, so a page in that order walks an index and stops after the page.
They live in tables of Cairn's own, not as expression indexes on icat.server's tables: those
are not reflected by SQLAlchemy (the schema check would see a difference), MariaDB has none,
and icat.server's tables stay as a Java server sharing the database expects them.

Only an entity's own text is indexed. Text a search target shows from its parents (a
datafile's format or sample name, an investigation's samples) is matched in the parents'
documents and joined at query time, so a rename of a parent needs no re-indexing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    CompoundSelect,
    Connection,
    DateTime,
    Float,
    FromClause,
    Index,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    Text,
    bindparam,
    delete,
    func,
    literal_column,
    or_,
    select,
    text,
    union,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from cairn.db.engine import Database, plan_every_run, prepare_as_usual
from cairn.db.tables import ident
from cairn.search.lucene import Leaf
from cairn.search.text import tokens

#: The entities whose own text can be indexed, and their fields (as icat.lucene names them).
#: A datafile's ``location.fileName`` (the last component of its location) is not stored:
#: its words are the location's last words, found there and checked (40 % of the cost of
#: indexing a datafile, on SQLite).
INDEXED: dict[str, tuple[str, ...]] = {
    "Investigation": ("name", "visitId", "title", "summary", "doi"),
    "Dataset": ("name", "description", "doi", "location"),
    "Datafile": ("name", "description", "location", "doi"),
    "Sample": ("name",),
    "SampleType": ("name",),
    "Facility": ("name",),
    "InvestigationType": ("name",),
    "DatasetType": ("name",),
    "DatafileFormat": ("name",),
    "User": ("name", "fullName"),
}

FILE_NAME = "location.fileName"


#: SQLite's FTS5 prefix index (token prefixes of this many characters, kept beside the
#: words): a query ``scan*`` reads one list of documents instead of merging the lists of
#: every word starting so (a file name is a word per file). More sizes cost as much again
#: each to build (docs/search.md). A document table created without it is rebuilt at
#: start-up.
FTS_PREFIX = "4"

#: Bytes of new index entries SQLite's FTS5 keeps in memory before writing them out as a
#: segment (its ``hashsize``; 1 MiB by default). A bulk load's million datafiles are then
#: a few large segments rather than a thousand small ones merged again and again: indexed
#: in 4.0 s instead of 5.9. A writer holds at most this much, and only while it writes.
FTS_HASH_BYTES = 32 * 1024 * 1024


def column_name(field: str) -> str:
    return field.replace(".", "_").upper()


def table_name(entity: str) -> str:
    return f"CAIRN_SEARCH_{entity.upper()}"


class Basename(FunctionElement[str]):
    """The last ``/``-separated component of a path."""

    type = Text()
    name = "basename"
    inherit_cache = True


@compiles(Basename)
def _basename(el: Basename, compiler: SQLCompiler, **kw: Any) -> str:
    x = compiler.process(el.clauses, **kw)
    return f"replace({x}, rtrim({x}, replace({x}, '/', '')), '')"


@compiles(Basename, "postgresql")
def _basename_pg(el: Basename, compiler: SQLCompiler, **kw: Any) -> str:
    return f"substring({compiler.process(el.clauses, **kw)} from '[^/]*$')"


@compiles(Basename, "mysql")
@compiles(Basename, "mariadb")
def _basename_my(el: Basename, compiler: SQLCompiler, **kw: Any) -> str:
    return f"substring_index({compiler.process(el.clauses, **kw)}, '/', -1)"


_PUNCTUATION = "".join(chr(c) for c in range(33, 127) if not chr(c).isalnum())


class Normalized(FunctionElement[str]):
    """Text as :func:`cairn.search.text.normalize` makes it, in SQL (PostgreSQL, MariaDB)."""

    type = Text()
    name = "normalized"
    inherit_cache = True


@compiles(Normalized, "postgresql")
def _normalized_pg(el: Normalized, compiler: SQLCompiler, **kw: Any) -> str:
    x = compiler.process(el.clauses, **kw)
    return f"trim(regexp_replace(lower({x}), '[^[:alnum:]]+', ' ', 'g'))"


@compiles(Normalized, "mysql")
@compiles(Normalized, "mariadb")
def _normalized_my(el: Normalized, compiler: SQLCompiler, **kw: Any) -> str:
    x = compiler.process(el.clauses, **kw)
    return f"trim(regexp_replace(lower({x}), '[^[:alnum:]]+', ' '))"


# -- leaves, in the terms every backend shares --------------------------------------------------

def _is_literal(part: str) -> bool:
    return "*" not in part and "?" not in part


def _is_prefix(part: str) -> bool:
    head = part[:-1]
    return part.endswith("*") and bool(head) and _is_literal(head)


def native_parts(leaf: Leaf) -> bool:
    """Words in order, the last possibly a prefix: what FTS5 and tsquery express exactly."""
    *head, last = leaf.parts
    return all(_is_literal(p) for p in head) and (_is_literal(last) or _is_prefix(last))


def leaf_regex(leaf: Leaf) -> str:
    """A regular expression matching the leaf in normalised text padded with spaces."""
    def part(p: str) -> str:
        return "".join("[^ ]*" if c == "*" else "[^ ]" if c == "?" else re.escape(c)
                       for c in p)
    return " " + " ".join(part(p) for p in leaf.parts) + " "


def literal_words(leaf: Leaf) -> list[str]:
    """Words the leaf certainly contains (prefixes as ``word*``): a necessary condition."""
    out = []
    for p in leaf.parts:
        if _is_literal(p) or _is_prefix(p):
            out.append(p)
    return out


# -- the document tables ------------------------------------------------------------------------

@dataclass(frozen=True)
class DocTable:
    entity: str
    fields: tuple[str, ...]
    table: Table  # the document table, as SQLAlchemy sees it (an FTS5 table on SQLite)

    @property
    def columns(self) -> list[str]:
        return [column_name(f) for f in self.fields]


def _source_value(source: FromClause, field: str) -> ColumnElement[Any]:
    if field == FILE_NAME:
        return Basename(source.c.location)
    return source.c[field]


# -- the sort keys -----------------------------------------------------------------------------

#: The shape of the key tables: a table made for another version is dropped and refilled.
KEYS_VERSION = 1

STATE_TABLE = "CAIRN_SEARCH_STATE"


def _start(t: Any) -> ColumnElement[Any]:
    return func.coalesce(t.c.startDate, t.c.createTime)


def _end(t: Any) -> ColumnElement[Any]:
    return func.coalesce(t.c.endDate, t.c.modTime)


def _file_date(t: Any) -> ColumnElement[Any]:
    return func.coalesce(t.c.datafileModTime, t.c.datafileCreateTime, t.c.modTime)


def _file_size(t: Any) -> ColumnElement[Any]:
    return func.coalesce(t.c.fileSize, 0)


#: Per search target: sort field -> (key column, the expression the search sorts by, on a
#: row of the target). The fallbacks (MOD_TIME, CREATE_TIME, 0) are never NULL, so neither
#: is a key. Dataset's and Investigation's fileSize is left out: the database's triggers
#: (cairn.db.sizes) change it without a change event that would refresh a key.
SORT_KEYS: dict[str, dict[str, tuple[str, Callable[[Any], ColumnElement[Any]]]]] = {
    "Datafile": {"date": ("SORT_DATE", _file_date), "fileSize": ("SORT_SIZE", _file_size)},
    **{e: {"date": ("SORT_START", _start), "startDate": ("SORT_START", _start),
           "endDate": ("SORT_END", _end)} for e in ("Dataset", "Investigation")},
}


def sort_key_expr(entity: str, field: str, t: Any) -> ColumnElement[Any] | None:
    """The expression a search of ``entity`` sorts by for ``field`` (on row ``t``), where it
    is one a key table keeps."""
    spec = SORT_KEYS.get(entity, {}).get(field)
    return None if spec is None else spec[1](t)


def keys_table_name(entity: str) -> str:
    return f"{table_name(entity)}_KEYS"


@dataclass(frozen=True)
class KeyTable:
    """The sort keys of one target: ``(ID, <key columns>)``, an index (key, id) for each
    direction of each key (the id breaks ties ascending whichever way the key goes: MariaDB
    can't read an index partly backwards), the same on every backend."""

    entity: str
    table: Table
    #: sort field -> column key
    fields: dict[str, str]

    @property
    def columns(self) -> list[str]:
        return list(dict.fromkeys(self.fields.values()))

    def select(self, src: Table, where: ColumnElement[bool]) -> Select[Any]:
        exprs = {col: fn(src) for col, fn in SORT_KEYS[self.entity].values()}
        return select(src.c.id, *(exprs[c] for c in self.columns)).where(where)


def key_table(metadata: MetaData, db: Database, entity: str) -> KeyTable:
    src = db.tables[entity]
    name = keys_table_name(entity)
    spec = SORT_KEYS[entity]
    cols: dict[str, Column[Any]] = {}
    for col, fn in spec.values():
        if col in cols:
            continue
        kind = fn(src).type
        # fractions of seconds kept whatever the catalogue's columns hold
        typ: Any = (DateTime().with_variant(_mysql_datetime(), "mysql", "mariadb")
                    if isinstance(kind, DateTime) else BigInteger())
        cols[col] = Column(ident(col), typ, key=col, nullable=False)
    t = Table(ident(name), metadata,
              # SQLite: the rowid itself (no second index of the ids)
              Column(ident("ID"), BigInteger().with_variant(Integer(), "sqlite"), key="id",
                     primary_key=True, autoincrement=False),
              *cols.values(), extend_existing=True)
    for col in cols:
        c = t.c[col]
        Index(ident(f"IDX_{name}_{col}_A"), c, t.c.id)
        Index(ident(f"IDX_{name}_{col}_D"), c.desc(), t.c.id)
    return KeyTable(entity, t, {f: col for f, (col, _) in spec.items()})


def _mysql_datetime() -> Any:
    from sqlalchemy.dialects.mysql import DATETIME
    return DATETIME(fsp=6)


def state_table(metadata: MetaData) -> Table:
    """Per target: the version of its key table, and whether that table holds every row
    (a search reads the expressions until then)."""
    return Table(ident(STATE_TABLE), metadata,
                 Column(ident("ENTITY"), String(64), key="entity", primary_key=True),
                 Column(ident("KEYS_VERSION"), Integer(), key="version", nullable=False),
                 Column(ident("FILLED"), Integer(), key="filled", nullable=False),
                 extend_existing=True)


class Backend:
    """What differs between databases: the document table, how documents are written, how a
    leaf is matched and how relevance is scored."""

    name = ""
    #: Blocks a rebuild writes at once (each on its own connection, in its own transaction).
    parallel = 1
    #: Writing a document replaces the one there (else it is removed first). Replacing in
    #: place keeps it findable throughout: InnoDB's full-text index shows a reader the
    #: removal before the insertion while both commit.
    upserts = False

    def __init__(self, db: Database) -> None:
        self.db = db
        self.metadata = MetaData()

    def doc_table(self, entity: str, fields: tuple[str, ...]) -> DocTable:
        raise NotImplementedError

    def create(self, conn: Connection, doc: DocTable) -> None:
        raise NotImplementedError

    def exists(self, conn: Connection, doc: DocTable) -> bool:
        return self.has_table(conn, doc.table.name)

    def has_table(self, conn: Connection, name: str) -> bool:
        raise NotImplementedError

    def drop(self, conn: Connection, doc: DocTable) -> None:
        conn.execute(text(f"DROP TABLE IF EXISTS {doc.table.name}"))

    def outdated(self, conn: Connection, doc: DocTable) -> bool:
        """Whether an existing document table was made another way than :meth:`create`
        makes it now (it is then dropped and rebuilt)."""
        return False

    def tune(self, conn: Connection, doc: DocTable) -> None:
        """Set what an existing document table can change without being rebuilt."""

    def id_column(self, doc: DocTable) -> ColumnElement[int]:
        return doc.table.c.id

    def insert_from(self, conn: Connection, doc: DocTable, where: ColumnElement[bool]) -> int:
        """Index the entity rows meeting ``where`` (a condition on the entity's table)."""
        raise NotImplementedError

    def remove(self, conn: Connection, doc: DocTable, where: Callable[[ColumnElement[int]],
                                                                      ColumnElement[bool]]
               ) -> None:
        conn.execute(delete(doc.table).where(where(self.id_column(doc))))

    def upsert_keys(self, conn: Connection, keys: KeyTable, where: ColumnElement[bool]
                    ) -> None:
        """Write the sort keys of the entity rows meeting ``where``, replacing any there."""
        raise NotImplementedError

    def match(self, doc: DocTable, fields: Sequence[str], leaf: Leaf
              ) -> Select[Any] | CompoundSelect:
        """The ids of the entity whose ``fields`` match ``leaf``."""
        if FILE_NAME not in fields:
            return self._match(doc, fields, leaf)
        stored = [f for f in fields if f != FILE_NAME]
        if "location" in stored:  # the file name's words are the location's last ones
            return self._match(doc, stored, leaf)
        src = self.db.tables[doc.entity]
        named = select(src.c.id).where(
            src.c.id.in_(self._match(doc, ["location"], leaf)),
            self.text_check(Basename(src.c.location), leaf_regex(leaf)))
        return union(self._match(doc, stored, leaf), named) if stored else named

    def _match(self, doc: DocTable, fields: Sequence[str], leaf: Leaf) -> Select[Any]:
        raise NotImplementedError

    def text_check(self, value: ColumnElement[Any], pattern: str) -> ColumnElement[bool]:
        """Raw ``value``, normalised, matches :func:`leaf_regex`'s ``pattern``."""
        return (" " + Normalized(value) + " ").op("~")(pattern)

    def ranked(self, doc: DocTable, leaves: Sequence[Leaf]) -> Select[Any] | None:
        """(id, score) of documents matching any of ``leaves`` in any field, scored by the
        engine's relevance; None when none can be scored."""
        raise NotImplementedError

    def prepare(self, conn: Connection) -> None:
        """Before a search runs on ``conn`` (SQLite: register the wildcard function)."""

    def finish(self, conn: Connection) -> None:
        """After a search's own statements, before the unit of work reads on (the sources
        of the documents found)."""

    def optimize(self, conn: Connection, doc: DocTable) -> None:
        """After a rebuild: compact the index."""

    def empty(self, conn: Connection, doc: DocTable) -> None:
        """Remove every document at once."""
        conn.execute(delete(doc.table))

    def bulk_start(self, conn: Connection, doc: DocTable) -> None:
        """Before filling an empty table: drop what is cheaper to build once at the end."""

    def bulk_end(self, conn: Connection, doc: DocTable) -> None:
        """After filling it (also safe to call when nothing was dropped)."""


# SQLite ------------------------------------------------------------------------------------

def _wild(pattern: str, value: str | None) -> bool:
    if value is None:
        return False
    return re.search(pattern, " " + " ".join(tokens(value)) + " ") is not None


class SqliteBackend(Backend):
    name = "sqlite"

    def doc_table(self, entity: str, fields: tuple[str, ...]) -> DocTable:
        t = Table(table_name(entity), self.metadata,
                  Column("rowid", BigInteger(), key="id", primary_key=True),
                  *(Column(column_name(f), Text(), key=f) for f in fields),
                  extend_existing=True)
        return DocTable(entity, fields, t)

    def has_table(self, conn: Connection, name: str) -> bool:
        return conn.execute(text("SELECT 1 FROM sqlite_master WHERE name = :n"),
                            {"n": name}).first() is not None

    def create(self, conn: Connection, doc: DocTable) -> None:
        cols = ", ".join(doc.columns)
        conn.execute(text(f"CREATE VIRTUAL TABLE IF NOT EXISTS {doc.table.name} USING "
                          f"fts5({cols}, tokenize = 'unicode61 remove_diacritics 0', "
                          f"prefix = '{FTS_PREFIX}')"))
        self.tune(conn, doc)

    def tune(self, conn: Connection, doc: DocTable) -> None:
        name = doc.table.name
        there = conn.execute(text(f"SELECT v FROM {name}_config WHERE k = 'hashsize'")
                             ).scalar()
        if there != FTS_HASH_BYTES:  # a configuration write takes the write lock
            conn.execute(text(f"INSERT INTO {name}({name}, rank) VALUES ('hashsize', "
                              f"{FTS_HASH_BYTES})"))

    def outdated(self, conn: Connection, doc: DocTable) -> bool:
        sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = :n"),
                           {"n": doc.table.name}).scalar()
        return sql is not None and f"prefix = '{FTS_PREFIX}'" not in sql

    def insert_from(self, conn: Connection, doc: DocTable, where: ColumnElement[bool]) -> int:
        src = self.db.tables[doc.entity]
        sel = select(src.c.id, *(_source_value(src, f) for f in doc.fields)).where(where)
        return conn.execute(doc.table.insert().from_select(
            ["id", *doc.fields], sel)).rowcount

    def upsert_keys(self, conn: Connection, keys: KeyTable, where: ColumnElement[bool]
                    ) -> None:
        stmt = keys.table.insert().prefix_with("OR REPLACE").from_select(
            ["id", *keys.columns], keys.select(self.db.tables[keys.entity], where))
        conn.execute(stmt)

    def _expr(self, doc: DocTable, fields: Sequence[str], words: str) -> str:
        cols = " ".join(column_name(f) for f in fields)
        return f"{{{cols}}} : {words}"

    @staticmethod
    def _phrase(leaf: Leaf) -> str:
        parts = list(leaf.parts)
        star = parts[-1].endswith("*")
        if star:
            parts[-1] = parts[-1][:-1]
        return '"' + " ".join(parts) + '"' + (" *" if star else "")

    def text_check(self, value: ColumnElement[Any], pattern: str) -> ColumnElement[bool]:
        return func.cairn_wild(pattern, value) == 1

    def _match(self, doc: DocTable, fields: Sequence[str], leaf: Leaf) -> Select[Any]:
        t = doc.table
        fts: ColumnElement[Any] = literal_column(t.name)
        if native_parts(leaf):
            return select(t.c.id).where(fts.op("MATCH")(
                self._expr(doc, fields, self._phrase(leaf))))
        pattern = leaf_regex(leaf)
        check = or_(*(func.cairn_wild(pattern, t.c[f]) == 1 for f in fields))
        words = literal_words(leaf)
        if not words:
            return select(t.c.id).where(check)
        need = " AND ".join(self._phrase(Leaf(None, (w,))) for w in words)
        return select(t.c.id).where(fts.op("MATCH")(self._expr(doc, fields, need)), check)

    def ranked(self, doc: DocTable, leaves: Sequence[Leaf]) -> Select[Any] | None:
        terms = [self._phrase(leaf) for leaf in leaves if native_parts(leaf)]
        if not terms:
            return None
        fts: ColumnElement[Any] = literal_column(doc.table.name)
        return select(doc.table.c.id.label("id"),
                      (-func.bm25(fts)).label("score")).where(
            fts.op("MATCH")(" OR ".join(terms)))

    def prepare(self, conn: Connection) -> None:
        raw = conn.connection.driver_connection
        raw.create_function("cairn_wild", 2, _wild, deterministic=True)  # type: ignore[union-attr]

    def optimize(self, conn: Connection, doc: DocTable) -> None:
        conn.execute(text(f"INSERT INTO {doc.table.name}({doc.table.name}) "
                          "VALUES ('optimize')"))

    def empty(self, conn: Connection, doc: DocTable) -> None:
        # FTS5 deletes row by row (0.3 s per 100,000); a new table costs nothing
        self.drop(conn, doc)
        self.create(conn, doc)


# PostgreSQL -------------------------------------------------------------------------------

class PostgresBackend(Backend):
    name = "postgresql"
    upserts = True

    def prepare(self, conn: Connection) -> None:
        # A search's statements are planned for their own values on every run, never kept
        # prepared: after five runs of one search shape PostgreSQL would keep a plan made
        # without the words' and ids' values when its estimate says it costs no more, and
        # for a user's dataset search that plan took 120-200 ms where the plans for the
        # values took 35-55 (bench/search.py, ds-sample). The pool gives the connection its
        # default back when it is returned (cairn.db.engine).
        plan_every_run(conn.connection.driver_connection)

    def finish(self, conn: Connection) -> None:
        # The documents' sources (the rows found and their children, each statement with
        # the caller's rules) read rows by id: a plan for all values serves them, and
        # planning each for a user cost 1.2-1.8 ms a statement (bench/search.py inv-title).
        prepare_as_usual(conn.connection.driver_connection)

    def doc_table(self, entity: str, fields: tuple[str, ...]) -> DocTable:
        from sqlalchemy.dialects.postgresql import TSVECTOR
        t = Table(ident(table_name(entity)), self.metadata,
                  Column(ident("ID"), BigInteger(), key="id", primary_key=True),
                  Column(ident("DOC"), TSVECTOR(), key="doc"),
                  extend_existing=True)
        return DocTable(entity, fields, t)

    def has_table(self, conn: Connection, name: str) -> bool:
        return conn.execute(text("SELECT to_regclass(:n)"), {"n": name}).scalar() is not None

    parallel = 2

    def create(self, conn: Connection, doc: DocTable) -> None:
        n = doc.table.name
        conn.execute(text(f"CREATE TABLE IF NOT EXISTS {n} "
                          "(ID BIGINT PRIMARY KEY, DOC TSVECTOR NOT NULL)"))
        self.bulk_end(conn, doc)

    def empty(self, conn: Connection, doc: DocTable) -> None:
        conn.execute(text(f"TRUNCATE {doc.table.name}"))

    def bulk_start(self, conn: Connection, doc: DocTable) -> None:
        conn.execute(text(f"DROP INDEX IF EXISTS IDX_{doc.table.name}"))

    def bulk_end(self, conn: Connection, doc: DocTable) -> None:
        n = doc.table.name
        conn.execute(text(f"CREATE INDEX IF NOT EXISTS IDX_{n} ON {n} USING GIN (DOC)"))

    @staticmethod
    def weights(fields: Sequence[str]) -> dict[str, str]:
        """Each field's weight label: PostgreSQL has four (A-D), so a query naming some
        fields is answered by the index alone; fields past the fourth share D."""
        return {f: "ABCD"[min(i, 3)] for i, f in enumerate(fields)}

    def _doc(self, src: Table, fields: tuple[str, ...]) -> ColumnElement[Any]:
        # ASCII punctuation becomes spaces (translate: a tenth of regexp_replace's cost);
        # the parser of the 'simple' configuration then splits what is left as
        # cairn.search.text does (anything but letters and digits separates words).
        # A field without a value costs nothing: the functions are strict, and coalesce
        # turns their NULL into an empty vector.
        parts = [func.coalesce(func.setweight(func.to_tsvector(
            literal_column("'simple'"),
            func.translate(func.lower(_source_value(src, f)), _PUNCTUATION,
                           " " * len(_PUNCTUATION))), literal_column(f"'{w}'")),
            literal_column("''::tsvector"))
            for f, w in self.weights(fields).items()]
        doc: ColumnElement[Any] = parts[0]
        for part in parts[1:]:
            doc = doc.op("||")(part)
        return doc

    def insert_from(self, conn: Connection, doc: DocTable, where: ColumnElement[bool]) -> int:
        from sqlalchemy.dialects.postgresql import insert

        src = self.db.tables[doc.entity]
        sel = select(src.c.id, self._doc(src, doc.fields)).where(where)
        # A rebuild's block and a write's refresh may meet on one id: the later one wins.
        stmt = insert(doc.table).from_select(["id", "doc"], sel)
        stmt = stmt.on_conflict_do_update(index_elements=[doc.table.c.id],
                                          set_={"doc": stmt.excluded.doc})
        return conn.execute(stmt).rowcount

    def upsert_keys(self, conn: Connection, keys: KeyTable, where: ColumnElement[bool]
                    ) -> None:
        from sqlalchemy.dialects.postgresql import insert

        stmt = insert(keys.table).from_select(
            ["id", *keys.columns], keys.select(self.db.tables[keys.entity], where))
        stmt = stmt.on_conflict_do_update(
            index_elements=[keys.table.c.id],
            set_={c: stmt.excluded[c] for c in keys.columns})
        conn.execute(stmt)

    @staticmethod
    def tsquery(leaf: Leaf, weights: str = "") -> str | None:
        words = [p for p in leaf.parts if _is_literal(p) or _is_prefix(p)]
        if not words:
            return None
        quoted = [f"'{p[:-1]}':*{weights}" if p.endswith("*") else
                  f"'{p}'" + (f":{weights}" if weights else "") for p in words]
        return (" <-> " if native_parts(leaf) else " & ").join(quoted)

    def _match(self, doc: DocTable, fields: Sequence[str], leaf: Leaf) -> Select[Any]:
        t = doc.table
        weights = self.weights(doc.fields)
        wanted = "".join(sorted({weights[f] for f in fields}))
        # the index alone answers when the weights asked for hold no other field, and a
        # phrase stays within one field
        exclusive = all(f in fields for f, w in weights.items() if w in wanted)
        every = "".join(sorted(set(weights.values())))
        q = self.tsquery(leaf, "" if wanted == every else wanted)
        exact = (q is not None and native_parts(leaf) and exclusive
                 and (len(leaf.parts) == 1 or len(wanted) == 1))
        found = t.c.doc.op("@@")(func.to_tsquery(literal_column("'simple'"), q))
        if exact:
            return select(t.c.id).where(found)
        src = self.db.tables[doc.entity].alias("e")
        pattern = leaf_regex(leaf)
        check = or_(*((" " + Normalized(_source_value(src, f)) + " ").op("~")(pattern)
                      for f in fields))
        joined = select(t.c.id).join(src, src.c.id == t.c.id)
        return joined.where(check) if q is None else joined.where(found, check)

    def ranked(self, doc: DocTable, leaves: Sequence[Leaf]) -> Select[Any] | None:
        qs = [q for leaf in leaves if (q := self.tsquery(leaf)) is not None]
        if not qs:
            return None
        tsq = func.to_tsquery(literal_column("'simple'"), " | ".join(f"({q})" for q in qs))
        t = doc.table
        return select(t.c.id.label("id"),
                      func.ts_rank(t.c.doc, tsq).cast(Float()).label("score")).where(
            t.c.doc.op("@@")(tsq))

    def optimize(self, conn: Connection, doc: DocTable) -> None:
        conn.execute(text(f"ANALYZE {doc.table.name}"))


# MariaDB -----------------------------------------------------------------------------------

class MariadbBackend(Backend):
    name = "mariadb"
    parallel = 2
    upserts = True

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.min_word: int | None = None

    def doc_table(self, entity: str, fields: tuple[str, ...]) -> DocTable:
        t = Table(ident(table_name(entity)), self.metadata,
                  Column(ident("ID"), BigInteger(), key="id", primary_key=True),
                  *(Column(ident(column_name(f)), Text(), key=f) for f in fields),
                  extend_existing=True)
        return DocTable(entity, fields, t)

    def has_table(self, conn: Connection, name: str) -> bool:
        return conn.execute(text(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = DATABASE() "
            "AND table_name = :n"), {"n": name}).first() is not None

    def create(self, conn: Connection, doc: DocTable) -> None:
        n = doc.table.name
        cols = ", ".join(f"{c} TEXT COLLATE utf8mb4_bin" for c in doc.columns)
        # Stop words are fixed when the index is built: none, a catalogue is not prose.
        conn.execute(text("SET SESSION innodb_ft_enable_stopword = 0"))
        conn.execute(text(
            f"CREATE TABLE IF NOT EXISTS {n} (ID BIGINT PRIMARY KEY, {cols}, "
            f"FULLTEXT INDEX IDX_{n} ({', '.join(doc.columns)})) "
            "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE utf8mb4_bin"))

    def insert_from(self, conn: Connection, doc: DocTable, where: ColumnElement[bool]) -> int:
        from sqlalchemy.dialects.mysql import insert

        src = self.db.tables[doc.entity]
        sel = select(src.c.id, *(Normalized(_source_value(src, f)) for f in doc.fields)
                     ).where(where)
        stmt = insert(doc.table).from_select(["id", *doc.fields], sel)
        stmt = stmt.on_duplicate_key_update({f: stmt.inserted[f] for f in doc.fields})
        return conn.execute(stmt).rowcount

    def upsert_keys(self, conn: Connection, keys: KeyTable, where: ColumnElement[bool]
                    ) -> None:
        from sqlalchemy.dialects.mysql import insert

        stmt = insert(keys.table).from_select(
            ["id", *keys.columns], keys.select(self.db.tables[keys.entity], where))
        stmt = stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in keys.columns})
        conn.execute(stmt)

    def empty(self, conn: Connection, doc: DocTable) -> None:
        conn.execute(text("SET SESSION innodb_ft_enable_stopword = 0"))  # as create() does
        conn.execute(text(f"TRUNCATE TABLE {doc.table.name}"))

    def _min_word(self, conn: Connection) -> int:
        if self.min_word is None:
            self.min_word = int(conn.execute(
                text("SELECT @@innodb_ft_min_token_size")).scalar() or 3)
        return self.min_word

    def prepare(self, conn: Connection) -> None:
        self._min_word(conn)

    def _boolean(self, words: Sequence[str], op: str) -> str | None:
        short = self.min_word or 3
        kept = [w for w in words if len(w.rstrip("*")) >= short]
        return " ".join(op + w for w in kept) or None

    def _against(self, doc: DocTable, query: str) -> ColumnElement[Any]:
        return Against(bindparam(None, query), *(doc.table.c[f] for f in doc.fields))

    def text_check(self, value: ColumnElement[Any], pattern: str) -> ColumnElement[bool]:
        return func.concat(" ", Normalized(value), " ").op("REGEXP")(pattern)

    def _match(self, doc: DocTable, fields: Sequence[str], leaf: Leaf) -> Select[Any]:
        t = doc.table
        pattern = leaf_regex(leaf)
        check = or_(*(func.concat(" ", t.c[f], " ").op("REGEXP")(pattern) for f in fields))
        need = self._boolean(literal_words(leaf), "+")
        if need is None:
            return select(t.c.id).where(check)
        return select(t.c.id).where(self._against(doc, need) > 0, check)

    def ranked(self, doc: DocTable, leaves: Sequence[Leaf]) -> Select[Any] | None:
        words = [w for leaf in leaves for w in literal_words(leaf)]
        q = self._boolean(words, "")
        if q is None:
            return None
        score = self._against(doc, q)
        return select(doc.table.c.id.label("id"), score.label("score")).where(score > 0)


class Against(FunctionElement[float]):
    """MariaDB's relevance of a boolean-mode full-text query over the FULLTEXT columns."""

    type = Float()
    name = "against"
    inherit_cache = True


@compiles(Against)
def _against_sql(el: Against, compiler: SQLCompiler, **kw: Any) -> str:
    query, *cols = list(el.clauses)
    names = ", ".join(compiler.process(c, **kw) for c in cols)
    return f"MATCH({names}) AGAINST({compiler.process(query, **kw)} IN BOOLEAN MODE)"


def backend_for(db: Database) -> Backend:
    dialect = db.engine.dialect.name
    if dialect == "sqlite":
        return SqliteBackend(db)
    if dialect == "postgresql":
        return PostgresBackend(db)
    return MariadbBackend(db)

