"""HTTP Range / If-Range / ETag helpers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.errors import ErrorType, IcatError
from cairn.ids.ranges import (
    ByteRange,
    RangeNotSatisfiable,
    if_range_matches,
    make_etag,
    parse_range,
    plan_range,
    skip_bytes,
    stream_offset,
)

L = 1000


@pytest.mark.parametrize(("header", "expected"), [
    ("bytes=0-0", (0, 1)),
    ("bytes=0-999", (0, 1000)),
    ("bytes=10-19", (10, 20)),
    ("bytes=10-", (10, 1000)),
    ("bytes=999-", (999, 1000)),
    ("bytes=-1", (999, 1000)),
    ("bytes=-100", (900, 1000)),
    ("bytes=-5000", (0, 1000)),  # suffix longer than the body: all of it
    ("bytes=500-99999", (500, 1000)),  # last position clamped
    ("bytes=500-99999999999999999999999999999", (500, 1000)),  # huge: clamped, no bignum
    ("bytes=-99999999999999999999999999999", (0, 1000)),
    ("Bytes = 3-4", (3, 5)),  # unit is case-insensitive; whitespace tolerated
    ("bytes= 3-4 ,", (3, 5)),  # empty list elements are allowed by the # rule
])
def test_single_ranges(header: str, expected: tuple[int, int]) -> None:
    assert parse_range(header, L) == ByteRange(*expected)


@pytest.mark.parametrize("header", [
    "bytes=1000-", "bytes=1000-2000", "bytes=-0", "bytes=99999999999999999999999999-",
])
def test_unsatisfiable(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, L)


@pytest.mark.parametrize("header", [
    "bytes=", "bytes=-", "bytes=a-b", "bytes=5-3", "bytes=1-2-3", "bytes=--5", "bytes=+1-",
    "bytes=0x10-", "bytes 0-10", "", "garbage", "bytes=1.5-2", "bytes=\u0661-",  # Arabic 1
    "bytes=0-1,x", "bytes=,", "bytes=1 -2", "bytes=" + "1" * 2000 + "-",
])
def test_malformed(header: str) -> None:
    with pytest.raises(IcatError) as e:
        parse_range(header, L)
    assert e.value.type == ErrorType.BAD_PARAMETER


def test_ignored() -> None:
    assert parse_range(None, L) is None
    assert parse_range("items=0-5", L) is None  # other unit: RFC says ignore
    assert parse_range("bytes=0-5,10-20", L) is None  # several ranges: whole body
    assert parse_range("bytes=0-", 0) is None  # empty body: range ignored
    assert parse_range("bytes=5-", 0) is None


def test_plan_full_and_partial() -> None:
    etag = make_etag([(1, "a/b", L, "abc", "t")])
    full = plan_range(L, None, None, etag)
    assert (full.status, full.start, full.end) == (200, 0, L)
    assert full.headers == {"Accept-Ranges": "bytes", "ETag": etag, "Content-Length": "1000"}
    part = plan_range(L, "bytes=100-", None, etag)
    assert (part.status, part.start, part.end, part.length) == (206, 100, L, 900)
    assert part.headers["Content-Range"] == "bytes 100-999/1000"
    assert part.headers["Content-Length"] == "900"
    bad = plan_range(L, "bytes=1000-", None, etag)
    assert bad.status == 416
    assert bad.headers["Content-Range"] == "bytes */1000"
    assert "Content-Length" not in bad.headers


def test_if_range() -> None:
    etag = '"abc"'
    assert plan_range(L, "bytes=5-", etag, etag).status == 206
    assert plan_range(L, "bytes=5-", '"other"', etag).status == 200  # changed: whole body
    assert plan_range(L, "bytes=5-", 'W/"abc"', etag).status == 200  # weak never matches
    assert plan_range(L, "bytes=5-", "Sat, 29 Oct 1994 19:43:31 GMT", etag).status == 200
    assert plan_range(L, "garbage", '"other"', etag).status == 200  # range not even parsed
    assert if_range_matches(None, None)
    assert not if_range_matches('"abc"', None)
    assert if_range_matches(' "abc" ', etag)


def test_plan_without_etag() -> None:
    a = plan_range(10, "bytes=-3")
    assert a.status == 206 and "ETag" not in a.headers
    assert a.headers["Content-Range"] == "bytes 7-9/10"


@given(st.integers(0, 2**70), st.text(max_size=40))
def test_never_crashes(length: int, header: str) -> None:
    try:
        a = plan_range(length, header)
    except IcatError as e:
        assert e.type == ErrorType.BAD_PARAMETER
        return
    assert a.status in (200, 206, 416)
    if a.status == 206:
        assert 0 <= a.start < a.end <= length
        assert int(a.headers["Content-Length"]) == a.end - a.start


@given(st.integers(1, 10**6), st.integers(0, 10**7), st.integers(0, 10**7))
def test_ranges_within_body(length: int, a: int, b: int) -> None:
    first, last = min(a, b), max(a, b)
    try:
        r = parse_range(f"bytes={first}-{last}", length)
    except RangeNotSatisfiable:
        assert first >= length
        return
    assert r is not None
    assert r.start == first and r.end == min(last + 1, length)


def test_stream_offset() -> None:
    assert stream_offset(None) == 0
    assert stream_offset("bytes=1234-") == 1234
    assert stream_offset(" bytes=0- ") == 0
    assert stream_offset("bytes=0-10") == 0  # satisfiable only with a known length: ignored
    assert stream_offset("bytes=-0") == 0
    assert stream_offset("bytes=" + "9" * 30 + "-") >= 2**64
    with pytest.raises(IcatError):
        stream_offset("bytes=x-")


def test_skip_bytes() -> None:
    chunks = [b"abc", b"", b"defg", b"h"]
    for n in range(10):
        assert b"".join(skip_bytes(iter(chunks), n)) == b"abcdefgh"[n:]


def test_etag_is_stable_and_sensitive() -> None:
    items = [(1, "a/b", 10, "ff", "2024-01-01"), (2, "a/c", 0, None, None)]
    tag = make_etag(items, zip=True, compress=False)
    assert tag == make_etag(list(items), compress=False, zip=True)
    assert tag.startswith('"') and tag.endswith('"') and len(tag) == 42
    assert tag != make_etag(items, zip=True, compress=True)
    assert tag != make_etag(items[::-1], zip=True, compress=False)
    assert tag != make_etag([(1, "a/b", 11, "ff", "2024-01-01"), items[1]], zip=True,
                            compress=False)
