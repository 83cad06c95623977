"""What can be searched: the three targets (Investigation, Dataset, Datafile), the text fields
a query may name for each, and where each field's text lives in the catalogue.

A field is a path of relations from the target to an indexed entity and one of that entity's
indexed fields (:data:`cairn.search.index.INDEXED`): a datafile's ``sample.name`` is the name
of the sample of its dataset. The default fields of each target are icat.lucene's.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    CompoundSelect,
    Select,
    Table,
    any_,
    bindparam,
    func,
    select,
)

from cairn.db.tables import Tables
from cairn.schema import SCHEMA

Path = tuple[str, ...]


@dataclass(frozen=True)
class TextField:
    path: Path  # relations from the target
    entity: str  # the indexed entity at the end of the path
    field: str  # its indexed field


def _f(path: str, entity: str, field: str) -> TextField:
    return TextField(tuple(path.split(".")) if path else (), entity, field)


TEXT_FIELDS: dict[str, dict[str, TextField]] = {
    "Investigation": {
        "name": _f("", "Investigation", "name"),
        "visitId": _f("", "Investigation", "visitId"),
        "title": _f("", "Investigation", "title"),
        "summary": _f("", "Investigation", "summary"),
        "doi": _f("", "Investigation", "doi"),
        "facility.name": _f("facility", "Facility", "name"),
        "type.name": _f("type", "InvestigationType", "name"),
        "sample.name": _f("samples", "Sample", "name"),
        "sample.type.name": _f("samples.type", "SampleType", "name"),
    },
    "Dataset": {
        "name": _f("", "Dataset", "name"),
        "description": _f("", "Dataset", "description"),
        "doi": _f("", "Dataset", "doi"),
        "location": _f("", "Dataset", "location"),
        "type.name": _f("type", "DatasetType", "name"),
        "sample.name": _f("sample", "Sample", "name"),
        "sample.type.name": _f("sample.type", "SampleType", "name"),
        "visitId": _f("investigation", "Investigation", "visitId"),
        "investigation.name": _f("investigation", "Investigation", "name"),
        "investigation.title": _f("investigation", "Investigation", "title"),
    },
    "Datafile": {
        "name": _f("", "Datafile", "name"),
        "description": _f("", "Datafile", "description"),
        "location": _f("", "Datafile", "location"),
        "location.fileName": _f("", "Datafile", "location.fileName"),
        "doi": _f("", "Datafile", "doi"),
        "datafileFormat.name": _f("datafileFormat", "DatafileFormat", "name"),
        "visitId": _f("dataset.investigation", "Investigation", "visitId"),
        "sample.name": _f("dataset.sample", "Sample", "name"),
        "sample.type.name": _f("dataset.sample.type", "SampleType", "name"),
        "dataset.name": _f("dataset", "Dataset", "name"),
        "investigation.name": _f("dataset.investigation", "Investigation", "name"),
    },
}

DEFAULT_FIELDS: dict[str, tuple[str, ...]] = {
    "Investigation": ("name", "visitId", "title", "summary", "facility.name", "type.name",
                      "doi", "sample.name", "sample.type.name"),
    "Dataset": ("name", "description", "sample.name", "sample.type.name", "type.name",
                "visitId", "doi"),
    "Datafile": ("name", "description", "location", "location.fileName",
                 "datafileFormat.name", "visitId", "sample.name", "sample.type.name", "doi"),
}

TARGETS = tuple(TEXT_FIELDS)

#: The path from each target to its investigation (users, instruments, cycles hang there).
TO_INVESTIGATION: dict[str, Path] = {
    "Investigation": (),
    "Dataset": ("investigation",),
    "Datafile": ("dataset", "investigation"),
}


Ids = Select[Any] | CompoundSelect | list[int]


#: Ids from which SQLite gets them as one JSON array (:func:`one_of`).
SQLITE_JSON_IDS = 100


def _sqlite_has_json() -> bool:
    """Whether this process's SQLite has its JSON functions (built in from 3.38; an older
    or trimmed build may lack them, and gets ``IN`` lists)."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("SELECT value FROM json_each('[1]')").fetchall()
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


SQLITE_JSON = _sqlite_has_json()


def one_of(col: ColumnElement[Any], ids: list[int], dialect: str) -> ColumnElement[bool]:
    """``col`` holds one of ``ids``, without a placeholder per id for SQLAlchemy to render
    and the driver to bind on every run (1,501 datasets: 30,000 characters, and on SQLite
    9 ms of a search's 105). PostgreSQL: one array parameter (``= ANY``), which is how it
    runs an ``IN`` list anyway. SQLite (with its JSON functions), from
    :data:`SQLITE_JSON_IDS` ids: the rows of one JSON array (``IN (SELECT value FROM
    json_each(?))``), which it reads into the same ephemeral index as an ``IN`` list and
    looks up the same way. Elsewhere an ``IN`` list."""
    if dialect == "postgresql":
        return col == any_(bindparam(None, ids, type_=ARRAY(col.type)))
    if dialect == "sqlite" and SQLITE_JSON and len(ids) >= SQLITE_JSON_IDS:
        rows = func.json_each(bindparam(None, json.dumps(ids))).table_valued("value")
        return col.in_(select(rows.c.value))
    return col.in_(ids)


def reach(tables: Tables, entity: str, path: Path, inner: Ids, dialect: str = "") -> Ids:
    """The ids of ``entity`` from which ``path`` leads to an id of ``inner`` (a statement
    selecting ids, or the ids themselves, held as :func:`one_of` says for ``dialect``)."""
    if not path:
        return inner
    f = SCHEMA.entities[entity].fields[path[0]]
    rest = reach(tables, f.type, path[1:], inner, dialect)
    if f.is_one:
        t = tables[entity]
        col, out = t.c[f.name], t.c.id
    else:
        assert f.mapped_by is not None
        child = tables[f.type]
        col, out = child.c.id, child.c[f.mapped_by]
    return select(out).where(one_of(col, rest, dialect) if isinstance(rest, list)
                             else col.in_(rest))


def through(tables: Tables, entity: str, alias: Table, path: Path, inner: Ids
            ) -> ColumnElement[bool]:
    """A condition on ``alias`` (a row of ``entity``): ``path`` leads to an id of ``inner``.
    A first many-to-one step tests the row's own foreign key (its index, no self-join)."""
    if path and SCHEMA.entities[entity].fields[path[0]].is_one:
        f = SCHEMA.entities[entity].fields[path[0]]
        return alias.c[f.name].in_(reach(tables, f.type, path[1:], inner))
    return alias.c.id.in_(reach(tables, entity, path, inner))
