"""ORDER BY on PostgreSQL: NULLS FIRST/LAST only where a NULL can occur, so that ordering by
ids and NOT NULL columns can follow an index (the query corpus checks the resulting order on
every backend; this checks the SQL)."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects import postgresql

from cairn.db.engine import Database
from cairn.query.execute import Queries


@pytest.fixture(scope="module")
def queries() -> Queries:
    db = Database("sqlite://")
    q = Queries(db)
    q.compiler.dialect = "postgresql"  # compile as for PostgreSQL, no server needed
    return q


def order_by(queries: Queries, text: str) -> str:
    sql = str(queries.search(text).statement().compile(dialect=postgresql.dialect()))
    return sql[sql.index("ORDER BY"):]


def test_ids_and_not_null_columns_have_no_null_order(queries: Queries) -> None:
    sql = order_by(queries, "SELECT o FROM Dataset o JOIN o.parameters p ORDER BY o.name")
    assert "NULLS" not in sql, sql


def test_nullable_columns_keep_mariadb_null_order(queries: Queries) -> None:
    sql = order_by(queries, "SELECT o FROM Investigation o ORDER BY o.startDate DESC, o.title")
    assert "STARTDATE DESC NULLS LAST" in sql and "TITLE ASC," in sql, sql


def test_left_joined_columns_may_be_null(queries: Queries) -> None:
    sql = order_by(queries, "SELECT i.name, s.name FROM Investigation i "
                            "LEFT JOIN i.investigationInstruments ii LEFT JOIN ii.instrument s "
                            "ORDER BY s.name")
    assert sql.count("NULLS FIRST") == 3, sql  # instrument name, then both outer ids
    assert '"INVESTIGATION_1".ID ASC, ' in sql, sql  # the root is never NULL
