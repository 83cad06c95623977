"""Does the live database have the shape Cairn declares? Compared at start-up (and by
``cairn migrate --check``) so that a database changed behind Cairn's back -- by a newer
icat.server's upgrade script, or by hand -- is refused with the differences named, instead
of being served until the first query that touches them fails.

What is compared, for every declared table: that it exists; its columns (present, of a
compatible kind, strings at least as long, the same nullability); its primary key; its
unique keys and foreign keys (by columns and target, whatever their names: icat.server's
old upgrade scripts named some differently). What a facility may add is allowed: tables,
indexes, extra unique keys and foreign keys, and extra columns that a row can leave empty.
Not compared: index names and which indexes exist (performance only), column order,
integer widths and defaults.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, UniqueConstraint, inspect
from sqlalchemy import types as t
from sqlalchemy.types import TypeDecorator

from cairn.db.tables import TABLES, Tables


@dataclass(frozen=True, order=True)
class Difference:
    """One way the database differs from the declaration, said about one table."""

    table: str
    message: str

    def __str__(self) -> str:
        return f"{self.table}: {self.message}"


class SchemaMismatch(Exception):
    """The database's tables differ from those this version of Cairn declares."""

    def __init__(self, differences: list[Difference], intro: str) -> None:
        self.differences = differences
        super().__init__(describe(differences, intro))


def describe(differences: list[Difference], intro: str) -> str:
    """One line of ``intro`` and the count, then one indented line per difference."""
    n = len(differences)
    lines = [f"{intro} ({n} difference{'' if n == 1 else 's'}):"]
    lines += [f"  {d}" for d in differences]
    return "\n".join(lines)


def compare(conn: Connection, tables: Tables = TABLES) -> list[Difference]:
    """Every difference between the live database and ``tables`` (empty: it matches)."""
    inspector = inspect(conn)
    names = {n.upper(): n for n in inspector.get_table_names()}
    declared = sorted(tables.metadata.tables.values(), key=lambda tb: tb.name.upper())
    found = [names[tb.name.upper()] for tb in declared if tb.name.upper() in names]
    live = _Live(inspector, found)
    out: list[Difference] = []
    for table in declared:
        name = table.name.upper()
        if name not in names:
            out.append(Difference(name, "the table is missing"))
            continue
        out += _compare_table(table, live, names[name])
    return sorted(out)


class _Live:
    """What the database says about the tables found, read in one pass per kind."""

    def __init__(self, inspector: Any, names: list[str]) -> None:
        def by_table(found: dict[tuple[Any, str], Any]) -> dict[str, Any]:
            return {name.upper(): value for (_schema, name), value in found.items()}

        kw: dict[str, Any] = {"filter_names": names} if names else {}
        self.columns = by_table(inspector.get_multi_columns(**kw))
        self.pk = by_table(inspector.get_multi_pk_constraint(**kw))
        self.unique = by_table(inspector.get_multi_unique_constraints(**kw))
        self.indexes = by_table(inspector.get_multi_indexes(**kw))
        self.fks = by_table(inspector.get_multi_foreign_keys(**kw))


def _cols(names: Iterable[str]) -> frozenset[str]:
    return frozenset(n.upper() for n in names)


def _show(cols: Iterable[str]) -> str:
    return f"({', '.join(sorted(cols))})"


def _compare_table(table: Table, live: _Live, live_name: str) -> list[Difference]:
    name = table.name.upper()
    key = live_name.upper()
    out: list[Difference] = []

    def differ(message: str) -> None:
        out.append(Difference(name, message))

    columns = {c["name"].upper(): c for c in live.columns.get(key, [])}
    for col in table.columns:
        info = columns.get(col.name.upper())
        if info is None:
            differ(f"column {col.name.upper()} is missing")
            continue
        out += [Difference(name, m) for m in _column_differences(col, info)]
    declared_cols = {c.name.upper() for c in table.columns}
    for cname, info in columns.items():
        fillable = info.get("nullable", True) or info.get("default") is not None \
            or info.get("autoincrement") is True or info.get("identity")
        if cname not in declared_cols and not fillable:
            differ(f"column {cname} is not declared and is NOT NULL without a default: "
                   "Cairn's inserts would fail")

    pk = _cols(live.pk.get(key, {}).get("constrained_columns") or [])
    want_pk = _cols(c.name for c in table.primary_key.columns)
    if pk != want_pk:
        differ(f"primary key is {_show(pk) if pk else 'missing'}, not {_show(want_pk)}")

    uniques = {_cols(u["column_names"]) for u in live.unique.get(key, [])}
    uniques |= {_cols(i["column_names"]) for i in live.indexes.get(key, [])
                if i.get("unique") and None not in i["column_names"]}
    for want in _declared_uniques(table):
        if want not in uniques:
            others = sorted(_show(u) for u in uniques - {pk})
            has = f" (the database has {', '.join(others)})" if others else ""
            differ(f"unique key {_show(want)} is missing{has}")

    fks = {(_cols(fk["constrained_columns"]), fk["referred_table"].upper())
           for fk in live.fks.get(key, [])}
    for fk in table.foreign_key_constraints:
        want_fk = (_cols(c.name for c in fk.columns), fk.referred_table.name.upper())
        if want_fk not in fks:
            differ(f"foreign key {_show(want_fk[0])} -> {want_fk[1]} is missing")
    return out


def _declared_uniques(table: Table) -> set[frozenset[str]]:
    found = {_cols(c.name for c in con.columns) for con in table.constraints
             if isinstance(con, UniqueConstraint)}
    found |= {_cols(c.name for c in i.columns) for i in table.indexes if i.unique}
    return found


# Kinds of column types: a live type is compatible with a declared one when they share one.
_KINDS: tuple[tuple[str, tuple[type[Any], ...]], ...] = (
    ("text", (t.String,)),
    ("integer", (t.Integer,)),
    ("number", (t.Float, t.Numeric)),
    ("time", (t.DateTime, t.Date)),
    ("boolean", (t.Boolean,)),
)


def _kinds(type_: Any) -> set[str]:
    if isinstance(type_, TypeDecorator):
        type_ = type_.impl_instance
    kinds = {k for k, classes in _KINDS if isinstance(type_, classes)}
    if "integer" in kinds:
        kinds.add("number")  # NUMBER(19) on Oracle, BIGINT elsewhere: both hold a Long
    return kinds


def _compatible(declared: Any, live: Any) -> bool:
    if isinstance(live, t.NullType):
        return True  # a type the dialect does not know: nothing to say about it
    want, have = _kinds(declared), _kinds(live)
    if "boolean" in want:
        # Booleans are TINYINT(1) on MariaDB, NUMBER(1) on Oracle, BOOLEAN elsewhere.
        return bool(have & {"boolean", "integer"}) or type(live).__name__.upper() == "BIT"
    if "integer" in want:
        return "integer" in have or (isinstance(live, t.Numeric)
                                     and not isinstance(live, t.Float)
                                     and (live.scale or 0) == 0)
    if "number" in want:
        return "number" in have
    return bool(want & have)


def _column_differences(col: Any, info: dict[str, Any]) -> list[str]:
    cname = col.name.upper()
    live = info["type"]
    if not _compatible(col.type, live):
        return [f"column {cname} is {live}, not a type that holds {_kind_name(col.type)}"]
    out: list[str] = []
    length = getattr(col.type, "length", None)
    live_length = getattr(live, "length", None) if isinstance(live, t.String) else None
    if length and live_length and live_length < length:
        out.append(f"column {cname} holds {live_length} characters, not {length}: longer "
                   "values Cairn accepts would fail")
    if not col.primary_key and bool(info.get("nullable", True)) != bool(col.nullable):
        if col.nullable:
            out.append(f"column {cname} is NOT NULL in the database but optional in Cairn's "
                       "schema: writes without it would fail")
        else:
            out.append(f"column {cname} may be NULL in the database but is required in "
                       "Cairn's schema")
    return out


def _kind_name(type_: Any) -> str:
    kinds = _kinds(type_)
    for k in ("boolean", "integer", "number", "time", "text"):
        if k in kinds:
            return {"text": "text", "integer": "integers", "number": "numbers",
                    "time": "dates and times", "boolean": "booleans"}[k]
    return str(type_)
