"""The planner hints wrap a condition that a statement ANDs with others: an OR inside one
must stay one condition on every dialect (unparenthesized, ``a OR b AND after`` let a page
after ``search_after`` repeat its last hit on PostgreSQL and MariaDB)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert, or_, select
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Dialect

from cairn.search.execute import Likely, PerRow

T = Table("T", MetaData(), Column("a", Integer), Column("b", Integer), Column("c", Integer))
DIALECTS = {"sqlite": sqlite.dialect(), "postgresql": postgresql.dialect(),
            "mariadb": mysql.dialect(is_mariadb=True)}


def per_row(condition: Any) -> PerRow:
    return PerRow(condition, T.c.c)


@pytest.mark.parametrize("hint", [Likely, per_row])
@pytest.mark.parametrize("dialect", DIALECTS.values(), ids=list(DIALECTS))
def test_an_or_inside_a_hint_stays_one_condition(hint: Any, dialect: Dialect) -> None:
    q = select(T.c.a).where(hint(or_(T.c.a == 1, T.c.b == 2)), T.c.c == 3)
    sql = str(q.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    where = sql.split("WHERE", 1)[1]
    # whatever the hint adds around it, the OR is closed before the AND
    assert where.index("OR") < where.index(")") < where.index("AND")


@pytest.mark.parametrize("hint", [Likely, per_row])
def test_rows_a_hinted_or_admits_are_still_filtered(hint: Any) -> None:
    engine = create_engine("sqlite://")
    T.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(T), [{"a": 1, "b": 0, "c": 3}, {"a": 0, "b": 2, "c": 3},
                                 {"a": 0, "b": 2, "c": 4}, {"a": 1, "b": 2, "c": 0}])
        got = conn.execute(select(T.c.a, T.c.b, T.c.c)
                           .where(hint(or_(T.c.a == 1, T.c.b == 2)), T.c.c == 3)
                           .order_by(T.c.a)).all()
    assert got == [(0, 2, 3), (1, 0, 3)]
