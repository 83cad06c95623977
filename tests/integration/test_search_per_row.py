"""A facet's per-row read check runs for the rows its join keeps, not for every row of the
checked table (PostgreSQL pushes a condition on one table down to that table's scan)."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, func, select, text

from cairn.search.execute import PerRow


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_per_row_check_runs_for_the_joined_rows_only(database_url: str) -> None:
    md = MetaData()
    found = Table("FOUND", md, Column("id", Integer, primary_key=True))
    checked = Table("CHECKED", md, Column("id", Integer, primary_key=True),
                    Column("found_id", Integer))
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            md.create_all(conn)
            conn.execute(text("CREATE SEQUENCE checks"))
            conn.execute(found.insert(), [{"id": i} for i in range(3)])
            conn.execute(text('INSERT INTO "CHECKED" SELECT g, g % 1000 '
                              "FROM generate_series(1, 20000) AS g"))
            conn.execute(text("ANALYZE"))
            # each evaluation of the check takes a number from the sequence; it reads the
            # checked row, as a read rule does
            check = func.nextval("checks") > checked.c.id - checked.c.id - 1
            q = (select(func.count())
                 .select_from(found.join(checked, checked.c.found_id == found.c.id))
                 .where(PerRow(check, found.c.id)))
            joined = conn.execute(q).scalar_one()
            calls, called = conn.execute(
                text("SELECT last_value, is_called FROM checks")).one()
        assert joined == 60  # 20 rows for each of the 3
        assert called and calls == joined  # not 20,000: one check per joined row
    finally:
        engine.dispose()
