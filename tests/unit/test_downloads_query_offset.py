"""TopCat's queryOffset: every form its clients send, run against a real (SQLite) download
table, and the hostile texts it must refuse with BAD_PARAMETER."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, insert, select
from sqlalchemy.dialects import mysql, postgresql, sqlite

from cairn.db.tables import TABLES
from cairn.downloads.query_offset import (
    MAX_DEPTH,
    Compare,
    Field,
    Literal,
    QueryOffset,
    apply,
    parse,
    parse_query_offset,
)
from cairn.errors import ErrorType, IcatError

T = TABLES.downloads.download


def _row(id: int, facility: str, user: str, full_name: str | None, transport: str,
         file_name: str, prepared_id: str | None, email: str | None, status: str,
         priority: int, size: int, two_level: bool, created: datetime,
         completed: datetime | None = None, deleted: datetime | None = None,
         delivered: datetime | None = None, email_sent: bool = False) -> dict[str, Any]:
    return {"id": id, "facility": facility, "user": user, "full_name": full_name,
            "transport": transport, "file_name": file_name, "prepared_id": prepared_id,
            "email": email, "is_email_sent": email_sent, "status": status,
            "priority": priority, "size": size, "is_two_level": two_level,
            "created": created, "completed": completed, "is_deleted": deleted is not None,
            "deleted_at": deleted, "bytes_sent": 0, "delivered": delivered}


ROWS = [
    _row(1, "LILS", "alice", "Alice A", "https", "abc_data.zip", "p1", "a@x.org", "COMPLETE",
         1, 100, False, datetime(2024, 1, 10, 10), completed=datetime(2024, 1, 10, 11)),
    _row(2, "LILS", "bob", "Bob B", "globus", "bob_run.zip", "p2", None, "RESTORING",
         1, -1, True, datetime(2024, 3, 5, 8, 30)),
    # Delivered: clients are shown COMPLETE.
    _row(3, "LILS", "alice", None, "https", "ABC_more.zip", None, None, "DELIVERED",
         1, 2000, False, datetime(2024, 6, 1), completed=datetime(2024, 6, 1, 1),
         delivered=datetime(2024, 6, 2)),
    _row(4, "ISIS", "carol", "Carol O'Neil", "https", "o'neil.zip", "p4", "c@x.org",
         "EXPIRED", 2, 50, False, datetime(2023, 12, 31, 23, 59, 59),
         deleted=datetime(2024, 1, 2), email_sent=True),
    _row(5, "LILS", "bob", "Bob B", "globus", "queued.zip", None, None, "QUEUED",
         3, 0, True, datetime(2025, 1, 1, 12)),
    # Created at the same time as 1: ordering by createdAt falls back on id.
    _row(12, "LILS", "dave", "Dave", "http", "paused_12.zip", "p6", None, "PAUSED",
         1, 12, False, datetime(2024, 1, 10, 10), deleted=datetime(2024, 2, 1)),
]
ALL = [1, 2, 3, 4, 5, 12]


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    e = create_engine("sqlite://")
    T.create(e)
    with e.begin() as conn:
        conn.execute(insert(T), ROWS)
    yield e
    e.dispose()


def ids(engine: Engine, text: str | None, user: str | None = None) -> list[int]:
    """The ids the queryOffset finds, in its order (by id when it gives none)."""
    q = select(T.c.id)
    if user is not None:
        q = q.where(T.c.user == user)
    qo = parse_query_offset(text, T)
    q = apply(q, qo)
    with engine.connect() as conn:
        found = [int(i) for i in conn.execute(q).scalars()]
    return found if qo.order_by else sorted(found)


# -- what clients send -------------------------------------------------------------------------

CLIENT_FORMS = [
    # DataGateway download plugin, downloadApi.ts: the default and one download.
    ("where download.isDeleted = false", [1, 2, 3, 5]),
    ("where download.id = 3", [3]),
    # Its admin table (current): facility, created range, include filter, order, page.
    ("WHERE download.facilityName = 'LILS' ORDER BY download.createdAt desc, download.id ASC "
     "LIMIT 0, 50", [5, 3, 2, 1, 12]),
    ("WHERE download.facilityName = 'LILS' ORDER BY download.createdAt desc, download.id ASC "
     "LIMIT 1, 2", [3, 2]),
    ("WHERE download.facilityName = 'LILS' AND download.createdAt BETWEEN "
     "{ts '2024-01-01 00:00:00'} AND {ts '2024-03-31 23:59:00'} AND UPPER(download.userName) "
     "LIKE CONCAT('%', 'BO', '%') ORDER BY download.createdAt desc, download.id ASC "
     "LIMIT 0, 50", [2]),
    ("WHERE download.facilityName = 'LILS' AND UPPER(download.transport) NOT LIKE "
     "CONCAT('%', 'GLOBUS', '%') ORDER BY download.id ASC LIMIT 0, 50", [1, 3, 12]),
    # Its 'exact' filter, with '' escaping; for id a quoted number.
    ("WHERE download.facilityName = 'ISIS' AND download.fullName = 'Carol O''Neil' "
     "ORDER BY download.id ASC LIMIT 0, 50", [4]),
    ("WHERE download.facilityName = 'LILS' AND download.id = '2' ORDER BY download.id ASC "
     "LIMIT 0, 50", [2]),
    # Text filters on the number and status columns.
    ("WHERE download.facilityName = 'LILS' AND UPPER(download.id) LIKE CONCAT('%', '2', '%') "
     "ORDER BY download.id ASC LIMIT 0, 50", [2, 12]),
    ("WHERE download.facilityName = 'LILS' AND UPPER(download.status) LIKE "
     "CONCAT('%', 'COMPLETE', '%') ORDER BY download.id ASC LIMIT 0, 50", [1, 3]),
    ("WHERE download.facilityName = 'LILS' AND UPPER(download.preparedId) LIKE "
     "CONCAT('%', 'P', '%') ORDER BY download.fullName asc, download.id ASC LIMIT 0, 50",
     [1, 2, 12]),
    # Its date filter without seconds, and the open ends of older versions (year 0000).
    ("WHERE download.facilityName = 'LILS' AND download.createdAt BETWEEN "
     "{ts '0001-01-01 00:00'} AND {ts '2024-01-10 10:00'} ORDER BY download.id ASC", [1, 12]),
    ("WHERE download.createdAt BETWEEN {ts '0000-01-01 00:00:00'} AND "
     "{ts '9999-12-31 23:59:59'}", ALL),
    # Older versions: UPPER round the facility, the id ordered, the date field.
    ("WHERE UPPER(download.facilityName) = 'LILS' ORDER BY UPPER(download.id) ASC LIMIT 0, 50",
     [1, 2, 3, 5, 12]),
    ("WHERE UPPER(download.facilityName) = 'LILS' AND UPPER(download.createdAt) BETWEEN "
     "{ts '2024-01-01 00:00:00'} AND {ts '2024-12-31 23:59:59'} ORDER BY UPPER(download.id) "
     "ASC LIMIT 0, 50", [1, 2, 3, 12]),
    ("WHERE download.facilityName = 'LILS' AND UPPER(download.status) LIKE "
     "CONCAT('%', 'COMPLETE''', '%') ORDER BY download.id ASC LIMIT 0, 50", []),
    # TopCat's AngularJS admin page: no WHERE, "1 = 1", lower-case keywords.
    ("1 = 1 and download.createdAt between {ts '2024-01-01 00:00:00'} and "
     "{ts '2024-12-31 23:59:59'} and UPPER(download.fileName) like concat('%', 'ABC', '%') "
     "order by download.fileName asc , download.id asc limit 0, 10", [3, 1]),
    ("1 = 1 limit 0, 10", ALL),
    # pollcat: a JPQL enum constant for the status.
    ("where download.transport = 'globus' and download.isDeleted = false and download.status "
     "= org.icatproject.topcat.domain.DownloadStatus.RESTORING", [2]),
    # The brief's example, with the unquoted {ts} form.
    ("WHERE download.facilityName = 'LILS' AND download.userName = 'alice' AND "
     "UPPER(download.fileName) LIKE UPPER('%abc%') AND download.createdAt BETWEEN "
     "{ts 2024-01-01 00:00:00} AND {ts 2024-12-31 23:59:59}", [1, 3]),
]


@pytest.mark.parametrize(("text", "expected"), CLIENT_FORMS)
def test_client_forms(engine: Engine, text: str, expected: list[int]) -> None:
    assert ids(engine, text) == expected


GRAMMAR = [
    (None, ALL),
    ("", ALL),
    ("   ", ALL),
    ("WHERE download.id IN (1, 3) ORDER BY download.id DESC", [3, 1]),
    ("where download.id not in (1, 3)", [2, 4, 5, 12]),
    ("where (download.userName = 'alice' or download.userName = 'carol') and not "
     "download.isDeleted = true", [1, 3]),
    ("download.userName = 'alice' or download.userName = 'carol' and download.size > 60",
     [1, 3]),  # AND binds tighter than OR
    ("NOT NOT download.id = 1", [1]),
    ("not (download.id = 1 or download.id = 2)", [3, 4, 5, 12]),
    ("download.preparedId IS NULL", [3, 5]),
    ("download.email is not null", [1, 4]),
    ("download.size = -1", [2]),
    ("download.size >= 100", [1, 3]),
    ("100 <= download.size", [1, 3]),
    ("download.size BETWEEN 0 AND 50", [4, 5, 12]),
    ("download.size NOT BETWEEN 0 AND 50", [1, 2, 3]),
    ("download.priority <> 1", [4, 5]),
    ("download.priority != 1 AND download.priority < 3", [4]),
    ("download.createdAt > '2024-06-01'", [5]),
    ("download.createdAt >= {d '2024-06-01'}", [3, 5]),
    ("download.createdAt = '2024-06-01T02:00:00+02:00'", [3]),  # zones are made UTC
    ("download.createdAt = {ts '2023-12-31 23:59:59.000'}", [4]),
    ("download.completedAt IS NULL AND download.isTwoLevel = true", [2, 5]),
    ("download.completedAt > download.createdAt", [1, 3]),
    ("download.isEmailSent = true", [4]),
    ("download.isDeleted != false", [4, 12]),
    ("download.deletedAt < {ts '2024-01-15 00:00:00'}", [4]),
    ("download.fileName LIKE '%!_%' ESCAPE '!'", [1, 2, 3, 12]),
    ("UPPER(download.fileName) LIKE 'ABC%'", [1, 3]),
    ("LOWER(download.fileName) LIKE 'abc%'", [1, 3]),
    ("download.fileName = 'o''neil.zip'", [4]),
    ("CONCAT(download.userName, '@', download.facilityName) = 'bob@LILS'", [2, 5]),
    ("WHERE Download.FACILITYNAME = 'ISIS'", [4]),
    ("wHeRe download.facilityname = 'ISIS' oRdEr bY download.ID dEsC", [4]),
    ("ORDER BY download.size DESC", [3, 1, 4, 12, 5, 2]),
    ("ORDER BY download.transport, download.userName DESC", [2, 5, 12, 4, 1, 3]),
    ("LIMIT 2, 2", [3, 4]),  # paged by id when no order is given
    ("LIMIT 0, 0", []),
    ("where download.id > 1 limit 100, 5", []),
    # Status as clients see it: DELIVERED reads COMPLETE; isDelivered tells them apart.
    ("download.status = 'COMPLETE'", [1, 3]),
    ("'COMPLETE' = download.status", [1, 3]),
    ("download.status = 'DELIVERED'", []),
    ("download.status != 'COMPLETE'", [2, 4, 5, 12]),
    ("download.status <> 'DELIVERED'", ALL),
    ("download.status IN ('COMPLETE', 'QUEUED')", [1, 3, 5]),
    ("download.status NOT IN ('COMPLETE', 'DELIVERED')", [2, 4, 5, 12]),
    ("download.status IN ('DELIVERED')", []),
    ("download.status = DownloadStatus.COMPLETE", [1, 3]),
    ("download.status > 'PAUSED'", [2, 5]),  # RESTORING, QUEUED (not DELIVERED)
    ("download.status < 'D'", [1, 3]),
    ("download.isDelivered = true", [3]),
    ("download.isDelivered = false AND download.status = 'COMPLETE'", [1]),
    ("download.deliveredAt IS NOT NULL", [3]),
    ("ORDER BY download.status, download.id DESC", [3, 1, 4, 12, 5, 2]),
    ("ORDER BY download.isDelivered DESC, download.id", [3, 1, 2, 4, 5, 12]),
    # Literal against literal is allowed (TopCat's "1 = 1"); it binds like anything else.
    ("1 = 2", []),
    ("'a' = 'a' AND true = true", ALL),
    ("'abc' LIKE 'a%'", ALL),
    # Many NOTs cost nothing: they fold.
    ("NOT " * 10_000 + "download.id = 1", [1]),
    ("NOT " * 10_001 + "download.id = 1", [2, 3, 4, 5, 12]),
    # Nesting up to the limit.
    ("(" * MAX_DEPTH + "download.id = 2" + ")" * MAX_DEPTH, [2]),
    ("download.fileName = " + "UPPER(" * MAX_DEPTH + "'x'" + ")" * MAX_DEPTH, []),
    # The deepest nestings allowed, mixed, still within SQLite's parser stack. Innermost
    # {1, 3}; each NOT (id = 1 OR …) level flips between {2, 4, 5, 12} and {3}.
    ("NOT (download.id = 1 OR " * (MAX_DEPTH - 1) + "UPPER(download.status) LIKE 'C%'"
     + ")" * (MAX_DEPTH - 1), [2, 4, 5, 12] if (MAX_DEPTH - 1) % 2 else [3]),
    ("download.fileName = " + "CONCAT(" * MAX_DEPTH + "'a'" + ", 'b')" * MAX_DEPTH, []),
]


@pytest.mark.parametrize(("text", "expected"), GRAMMAR)
def test_grammar(engine: Engine, text: str | None, expected: list[int]) -> None:
    assert ids(engine, text) == expected


def test_the_caller_s_condition_still_applies(engine: Engine) -> None:
    """A user's queryOffset is ANDed, as one parenthesised condition, to the query that picks
    their downloads: an OR cannot reach anyone else's."""
    assert ids(engine, "download.userName = 'bob' OR 1 = 1", user="alice") == [1, 3]
    assert ids(engine, "where download.id = 2", user="alice") == []
    assert ids(engine, "where download.isDeleted = false OR download.isDeleted = true "
                       "ORDER BY download.id DESC", user="alice") == [3, 1]


def test_values_are_bound_not_pasted() -> None:
    qo = parse_query_offset("where download.fileName = 'x'' OR ''1''=''1' "
                            "AND download.createdAt > {ts '2024-01-01 00:00:00'}", T)
    assert qo.where is not None
    compiled = qo.where.compile(dialect=sqlite.dialect())
    assert "'" not in str(compiled)  # no literal in the SQL text
    assert list(compiled.params.values()) == ["x' OR '1'='1", datetime(2024, 1, 1)]


def test_order_ends_with_id() -> None:
    def order(text: str) -> list[str]:
        qo = parse_query_offset(text, T)
        return [str(o.compile(dialect=sqlite.dialect())) for o in qo.order_by]

    assert order("ORDER BY download.createdAt DESC") == ["CAIRN_DOWNLOAD.CREATED DESC",
                                                         "CAIRN_DOWNLOAD.ID ASC"]
    assert order("ORDER BY download.id DESC, download.size") == [
        "CAIRN_DOWNLOAD.ID DESC", "CAIRN_DOWNLOAD.THE_SIZE ASC"]
    assert order("LIMIT 0, 5") == ["CAIRN_DOWNLOAD.ID ASC"]
    assert order("where download.id = 1") == []
    assert parse_query_offset("LIMIT 10, 20", T).offset == 10
    assert parse_query_offset("LIMIT 10, 20", T).limit == 20


def test_parse_tree() -> None:
    parsed = parse("where download.id = 1 order by download.size desc limit 3, 4")
    assert (parsed.offset, parsed.limit) == (3, 4)
    assert [(o.descending, o.operand) for o in parsed.order] == [(True, Field("size", 31))]
    assert parsed.where == Compare("=", Field("id", 6), Literal(1, 20), 18)


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect(),
                                     mysql.dialect()])
def test_compiles_on_every_database(dialect: Any) -> None:
    """Every client form compiles on each database Cairn runs on (CONCAT is || or concat(),
    LIKE on a number casts it)."""
    for text, _ in CLIENT_FORMS:
        qo: QueryOffset = parse_query_offset(text, T)
        str(apply(select(T.c.id), qo).compile(dialect=dialect))


# -- what must be refused ----------------------------------------------------------------------

HOSTILE = [
    # (text, where the error points (0-based, None: anywhere), words of the message)
    ("1=1; DROP TABLE CAIRN_DOWNLOAD", 3, "';' is not allowed"),
    ("download.id = 1; --", 15, "';' is not allowed"),
    (") OR (1=1", 0, "expected a field or a value, not ')'"),
    ("download.id = 1) OR (1=1", 15, "')' without a matching '('"),
    ("download.id = 1 OR (1=1", 23, "')' to close the '(' at character 20"),
    ("((download.id = 1)", 18, "')' to close the '(' at character 1"),
    ("download.id = 1 -- comment", 16, "unexpected character '-'"),
    ("/* x */ download.id = 1", 0, "unexpected character '/'"),
    ("download.id = 1 UNION SELECT id FROM CAIRN_CART", 16,
     "expected AND, OR, ORDER BY, LIMIT or the end"),
    ("download.id = 1 UNION SELECT * FROM CAIRN_CART", 29, "unexpected character '*'"),
    ("download.id IN (SELECT d.id FROM Download d)", 16, "subqueries are not allowed"),
    ("download.sessionId = 'x'", 0, "unknown field download.sessionId"),
    ("download.foo = 1", 0, "unknown field download.foo; the fields are download.id"),
    ("download.id.x = 1", 0, "unexpected word"),
    ("other.id = 1", 0, "unexpected word 'other.id'"),
    ("facilityName = 'LILS'", 0, "write fields as download.facilityName"),
    ("download.fileName = 'abc", 20, "unterminated string"),
    ("download.fileName = 'it''s", 20, "unterminated string"),
    ('download.fileName = "x"', 20, "single quotes"),
    ("download.fileName \uff1d 'x'", 18, "unexpected character '\uff1d'"),  # fullwidth =
    ("LIMIT -1, 5", 6, "the LIMIT offset must be a whole number from 0"),
    ("LIMIT 0, -5", 9, "the LIMIT count must be a whole number from 0"),
    ("LIMIT 0, 2147483648", 9, "the LIMIT count"),
    ("LIMIT 5", 7, "',' between the LIMIT offset and count"),
    ("LIMIT 'a', 5", 6, "the LIMIT offset"),
    ("download.id = 99999999999999999999", 14, "number out of range"),
    ("download.id = " + "9" * 5000, 14, "number out of range"),
    ("download.id = -9223372036854775808", 14, "number out of range"),
    ("download.size = 1.5", 16, "only whole numbers"),
    ("(" * 10_000 + "download.id = 1" + ")" * 10_000, MAX_DEPTH, "nested too deeply"),
    ("download.fileName = " + "UPPER(" * 5_000 + "'x'" + ")" * 5_000, 20 + 6 * MAX_DEPTH,
     "nested too deeply"),
    ("x" * 70_000, -1, "too long"),
    (" OR ".join(["download.id = 1"] * 300), None, "too many conditions"),
    ("download.id IN (" + ", ".join(["1"] * 1001) + ")", None, "too many values"),
    ("CONCAT(" + ", ".join(["'a'"] * 17) + ") = 'a'", 0, "CONCAT takes 2 to 16"),
    ("CONCAT('a') = 'a'", 0, "CONCAT takes 2 to 16"),
    ("UPPER('a', 'b') = 'A'", 0, "UPPER takes one argument"),
    ("LENGTH(download.fileName) > 3", 0, "function LENGTH is not supported"),
    ("SLEEP(5) = 0", 0, "function SLEEP is not supported"),
    ("download.fileName = NULL", 18, "write IS NULL"),
    ("download.fileName != null", 18, "write IS NULL"),
    ("download.id IN (1, NULL)", 12, "write IS NULL"),
    ("NULL IS NULL", 0, "IS NULL applies to fields"),
    ("NULL LIKE 'a'", 0, "LIKE applies to fields"),
    ("download.id = 'abc'", 14, "expected a whole number here, not text"),
    ("download.id = true", 14, "expected a whole number here, not true or false"),
    ("download.isDeleted = 1", 21, "expected true or false here"),
    ("download.isDeleted = 'false'", 21, "expected true or false here"),
    ("download.isDeleted > false", 19, "compare only with = or !="),
    ("download.isDeleted BETWEEN false AND true", 19, "BETWEEN does not apply"),
    ("download.createdAt = 5", 21, "expected a time here"),
    ("download.createdAt = 'yesterday'", 21, "'yesterday' is not a time"),
    ("download.createdAt > {ts '2024-02-30 00:00:00'}", 21, "is not a time: day is out"),
    ("download.createdAt > {ts '2024-01-01 25:00:00'}", 21, "is not a time"),
    ("download.createdAt > {ts '2024-01-01 00:00:00+99:00'}", 21, "impossible time zone"),
    ("download.createdAt > {ts 'now'}", 21, "'now' is not a time"),
    ("download.createdAt > {fn now()}", 21, "expected a time as {ts"),
    ("download.createdAt > {ts '2024-01-01'", 21, "expected a time as {ts"),
    ("download.fileName = 5", 20, "expected text here, not a whole number"),
    ("download.fileName = download.size", 20, "expected text here"),
    ("download.size LIKE 5", 19, "LIKE takes a pattern in quotes"),
    ("download.fileName LIKE 'a' ESCAPE 'ab'", 34, "ESCAPE takes one character"),
    ("CONCAT(download.size, 'x') = 'x'", 7, "CONCAT joins text"),
    ("download.status = org.icatproject.topcat.domain.DownloadStatus.BOGUS", 18,
     "BOGUS is not a download status"),
    ("download.id = 1 download.id = 2", 16, "expected AND, OR, ORDER BY, LIMIT or the end"),
    ("download.id", 11, "expected a comparison"),
    ("download.id NOT = 1", 16, "expected a comparison"),
    ("download.id =", 13, "expected a field or a value"),
    ("download.id IS 1", 15, "expected NULL"),
    ("download.id BETWEEN 1 OR 2", 22, "expected AND"),
    ("download.id IN 1", 15, "'(' to start the IN list"),
    ("download.id IN (1, 2", 20, "')' to end the IN list"),
    ("WHERE", 5, "expected a field or a value"),
    ("WHERE ORDER BY download.id", 6, "unexpected word 'ORDER'"),
    ("ORDER download.id", 6, "expected BY"),
    ("ORDER BY 1", 9, "ORDER BY takes fields"),
    ("ORDER BY 'download.id'", 9, "ORDER BY takes fields"),
    ("ORDER BY download.id LIMIT 1, 2 LIMIT 3, 4", 32, "expected AND, OR, ORDER BY"),
    ("download.id = 1 ORDER BY download.id ASC DESC", 41, "expected AND, OR, ORDER BY"),
    ("download.fileName = 'a\\' OR 1=1 --'", 32, "unexpected character '-'"),
]


@pytest.mark.parametrize(("text", "offset", "words"), HOSTILE)
def test_hostile(text: str, offset: int | None, words: str) -> None:
    with pytest.raises(IcatError) as e:
        parse_query_offset(text, T)
    assert e.value.type is ErrorType.BAD_PARAMETER
    assert words in e.value.message
    assert e.value.message.startswith("queryOffset")
    if offset is not None:
        assert e.value.offset == offset
    if offset is not None and offset >= 0:
        position = "(at the end)" if offset >= len(text) else f"at character {offset + 1}"
        assert position in e.value.message


# -- properties --------------------------------------------------------------------------------

_WORDS = ["download.id", "download.fileName", "download.status", "download.createdAt",
          "download.isDeleted", "download.isDelivered", "download.size", "download.email",
          "WHERE", "AND", "OR", "NOT", "LIKE", "IN", "BETWEEN", "IS", "NULL", "ORDER", "BY",
          "ASC", "DESC", "LIMIT", "UPPER(", "LOWER(", "CONCAT(", "ESCAPE", "true", "false",
          "(", ")", ",", "=", "!=", "<>", "<", "<=", ">", ">=", "'a%'", "'COMPLETE'", "''",
          "'2024-01-01'", "0", "-1", "12", "{ts '2024-01-01 00:00:00'}", "{ts 2024-01-01}",
          "DownloadStatus.COMPLETE", ";", "SELECT", "download.nope"]


def _check(engine: Engine, text: str) -> None:
    """Parses and runs, or is refused with BAD_PARAMETER: never another error, and never a
    query the database rejects."""
    try:
        qo = parse_query_offset(text, T)
    except IcatError as e:
        assert e.type is ErrorType.BAD_PARAMETER, e
        assert -1 <= e.offset <= len(text)
        return
    with engine.connect() as conn:
        conn.execute(apply(select(T.c.id), qo)).all()


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=200))
def test_any_text(engine: Engine, text: str) -> None:
    _check(engine, text)


@settings(max_examples=500, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(_WORDS), max_size=25).map(" ".join))
def test_any_token_soup(engine: Engine, text: str) -> None:
    _check(engine, text)


_FIELD = st.sampled_from(["download.id", "download.size", "download.priority"])
_COMPARISON = st.builds(lambda f, op, n: f"{f} {op} {n}", _FIELD,
                        st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
                        st.integers(-2**63 + 1, 2**63 - 1))
_CONDITION = st.recursive(
    _COMPARISON,
    lambda inner: st.one_of(
        st.builds(lambda a, b: f"({a}) AND ({b})", inner, inner),
        st.builds(lambda a, b: f"({a}) OR ({b})", inner, inner),
        st.builds(lambda a: f"NOT ({a})", inner)),
    max_leaves=8)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_CONDITION)
def test_well_formed_conditions_are_accepted(engine: Engine, text: str) -> None:
    """Anything the grammar allows within the limits is accepted and runs."""
    qo = parse_query_offset("WHERE " + text, T)
    with engine.connect() as conn:
        conn.execute(apply(select(T.c.id), qo)).all()
