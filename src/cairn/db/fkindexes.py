"""Indexes Cairn declares that a catalogue icat.server created lacks: on foreign-key columns,
and DATAFILE(NAME, ID) for pages of files sorted by name (migration cairn_0009).

Authorization joins every checked row to its parents and children through foreign keys
(``EXISTS (… WHERE iu.INVESTIGATION_ID = i.ID …)``): without an index on the child's column,
PostgreSQL scans the child table for each row checked. Cairn's own tables declare an index on
every foreign-key column that no unique key starts with (:mod:`cairn.db.tables`), but a
database icat.server created has only its primary keys, its unique keys and
``INDEX_DATAFILE_location``: PostgreSQL and Oracle never index foreign keys by themselves (InnoDB
does, so MariaDB and MySQL already have them).

:func:`add_missing` creates the declared indexes that such a database lacks, under Cairn's
names, and nothing else: a column already leading some index (whatever its name) is left
alone. Indexes change no query's answer and no write's effect, so icat.server sharing the
database sees no difference but speed; EclipseLink neither checks nor drops indexes it did not
declare.
"""

from __future__ import annotations

from sqlalchemy import Connection, Index, inspect

from cairn.db.tables import TABLES, Tables


def _leading(conn: Connection, table: str) -> set[str]:
    """Upper-case first columns of every index, unique key and primary key of ``table``."""
    found = inspect(conn)
    firsts: list[object] = [next(iter(i["column_names"]), None)
                            for i in found.get_indexes(table)]
    firsts += [next(iter(u["column_names"]), None)
               for u in found.get_unique_constraints(table)]
    firsts.append(next(iter(found.get_pk_constraint(table).get("constrained_columns", [])),
                       None))
    return {str(c).upper() for c in firsts if c is not None}


def missing(conn: Connection, tables: Tables = TABLES) -> list[Index]:
    """Cairn's declared catalogue indexes whose leading column leads no index of the live
    table (tables absent from the database are skipped)."""
    live = {name.upper(): name for name in inspect(conn).get_table_names()}
    out: list[Index] = []
    for table in tables.entity.values():
        name = live.get(table.name.upper())
        if name is None:
            continue
        leading = _leading(conn, name)
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            first = next(iter(index.columns)).name.upper()
            if first not in leading:
                out.append(index)
                leading.add(first)
    return out


def add_missing(conn: Connection, tables: Tables = TABLES) -> list[str]:
    """Create the indexes :func:`missing` finds; their names."""
    created = []
    for index in missing(conn, tables):
        index.create(conn)
        created.append(str(index.name))
    return created
