"""Key lists padded to a few lengths, and rows read through the cursor as SQLAlchemy reads
them (same values, same types)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, insert, select

from cairn.catalogue.work import _reader
from cairn.db import migrate
from cairn.db.engine import Database
from cairn.db.fastread import CompiledSelect, _convert, fetch_in, padded, rows_in, rows_keyed
from cairn.schema import SCHEMA


@pytest.mark.parametrize(("n", "size"), [(0, 0), (1, 1), (2, 2), (3, 4), (5, 8), (8, 8),
                                         (9, 16), (500, 512)])
def test_key_lists_are_padded_to_a_power_of_two(n: int, size: int) -> None:
    values = list(range(100, 100 + n))
    out = padded(values)
    assert len(out) == size
    assert out[:n] == values and set(out) == set(values)  # only repeats of the last key


@pytest.fixture
def db(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    migrate.upgrade(db)
    t = db.tables
    with db.begin() as conn:
        conn.execute(insert(t["Facility"]), [
            {"id": i, "name": f"f{i}", "createId": "me", "modId": "me",
             "createTime": datetime(2024, 1, i, 8, 30), "modTime": datetime(2024, 1, i, 8, 30)}
            for i in range(1, 8)])
        conn.execute(insert(t["ParameterType"]), [
            {"id": 1, "name": "t", "units": "K", "valueType": "NUMERIC", "facility": 1,
             "applicableToDataset": True, "enforced": False, "verified": False,
             "createId": "me", "modId": "me", "createTime": datetime(2024, 1, 1),
             "modTime": datetime(2024, 1, 1)}])
    return db


def test_rows_come_back_as_sqlalchemy_gives_them(db: Database) -> None:
    ft, pt = db.tables["Facility"], db.tables["ParameterType"]
    with db.connect() as conn:
        fast = rows_in(conn, ft, "id", [5, 2, 3])  # three keys, padded to four
        slow = conn.execute(select(ft).where(ft.c.id.in_([2, 3, 5])).order_by(ft.c.id)).all()
        assert [tuple(r) for r in fast] == [tuple(r) for r in slow]
        assert fast[0][ft.columns.keys().index("createTime")] == datetime(2024, 1, 2, 8, 30)
        (row,) = rows_in(conn, pt, "id", [1])
        got = dict(zip(pt.columns.keys(), row, strict=True))
        assert got["valueType"] == "NUMERIC"  # the enum ordinal, converted
        assert got["applicableToDataset"] is True and got["enforced"] is False
        assert rows_in(conn, ft, "id", []) == []


def test_readers_convert_unconverted_rows_as_rows_in_does(db: Database) -> None:
    """The row reader applies SQLAlchemy's converters itself to the driver's rows (fetch_in):
    the objects are those read from converted rows."""
    pt = db.tables["ParameterType"]
    keys = tuple(pt.columns.keys())
    entity = SCHEMA.entities["ParameterType"]
    with db.connect() as conn:
        raw, processors = fetch_in(conn, pt, "id", [1])
        (converted,) = rows_in(conn, pt, "id", [1])
    assert processors and isinstance(raw[0][keys.index("createTime")], str)  # SQLite's text
    direct = _reader(entity, keys, processors)(raw[0])
    plain = _reader(entity, keys)(converted)
    assert direct == plain
    assert direct.values["valueType"] == "NUMERIC" and direct.values["enforced"] is False
    assert direct.values["createTime"] == datetime(2024, 1, 1)
    assert direct.refs == {"facility": 1}


def test_a_prepared_statement_takes_new_parameters_each_run(db: Database) -> None:
    ft = db.tables["Facility"]
    stmt = select(ft.c.id, ft.c.modTime).where(ft.c.name == bindparam("who"),
                                               ft.c.id > 1).limit(5)
    p = CompiledSelect.of(stmt, db.engine.dialect)
    assert p is not None
    with db.connect() as conn:
        assert [tuple(r) for r in _convert(*p.fetch(conn, {"who": "f3"}))] == \
            [(3, datetime(2024, 1, 3, 8, 30))]
        assert [tuple(r) for r in _convert(*p.fetch(conn, {"who": "f6"}))] == \
            [(6, datetime(2024, 1, 6, 8, 30))]
        assert _convert(*p.fetch(conn, {"who": "f1"})) == []  # the literal 1 was bound too
    assert CompiledSelect.of(select(ft.c.id).where(ft.c.id.in_([1, 2])), db.engine.dialect) is None


def test_a_keyed_statement_is_built_once_per_anchor_and_length(db: Database) -> None:
    ft = db.tables["Facility"]
    built: list[int] = []
    anchor = ft.c.name.like("f%")

    def build(match: Any) -> Any:
        cond = match(ft.c.id)
        built.append(len(cond.compile().params))  # the key placeholders
        return select(ft.c.id).where(cond, anchor).order_by(ft.c.id)

    with db.connect() as conn:
        def ids(values: list[int], anchor: object = anchor) -> list[int]:
            return [r[0] for r in rows_keyed(conn, ("t",), anchor, build, values)]

        assert ids([7, 1, 3]) == [1, 3, 7]  # padded to four placeholders
        assert ids([2, 4, 6]) == [2, 4, 6]  # same length: the same statement
        assert ids([5]) == [5]  # another length: built once more
        assert built == [4, 1]
        assert ids([1, 2, 3], anchor=object()) == [1, 2, 3]  # another anchor: rebuilt
        assert built == [4, 1, 4]
