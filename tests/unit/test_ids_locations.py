"""Locations, the location hash, checksums and the zip entry mapper."""

from __future__ import annotations

import re
import zlib

import pytest

from cairn.errors import ErrorType, IcatError
from cairn.ids.checksum import Crc32Counter, counted, crc32_hex, crc32_of, parse_crc32_hex
from cairn.ids.locations import (
    add_digest,
    check_location,
    dataset_folder,
    location_digest,
    new_location,
    strip_digest,
)
from cairn.ids.mapper import DefaultZipMapper, DfInfo, DsInfo, java_url_encode


def test_crc32_hex_is_unpadded_lowercase() -> None:
    assert crc32_hex(0x003D7A9C) == "3d7a9c"
    assert crc32_hex(0) == "0"
    assert crc32_hex(0xFFFFFFFF) == "ffffffff"
    data = b"hello world"
    assert crc32_hex(zlib.crc32(data)) == format(zlib.crc32(data), "x")


def test_parse_crc32_hex() -> None:
    assert parse_crc32_hex("3d7a9c") == 0x3D7A9C
    assert parse_crc32_hex("FFFFFFFF") == 0xFFFFFFFF
    assert parse_crc32_hex(" 0 ") == 0
    for not_crc in (None, "", "xyz", "123456789", "d41d8cd98f00b204e9800998ecf8427e", "-1"):
        assert parse_crc32_hex(not_crc) is None


def test_counter_and_counted() -> None:
    counter = Crc32Counter()
    chunks = [b"ab", b"", b"cdef"]
    assert list(counted(chunks, counter)) == chunks
    assert counter.result() == crc32_of(chunks)
    assert counter.size == 6 and counter.crc32 == zlib.crc32(b"abcdef")


def test_new_location_like_ids_storage_file() -> None:
    loc = new_location(42, 7)
    assert re.fullmatch(r"42/7/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                        loc)
    assert new_location(42, 7) != loc
    assert dataset_folder(42, 7) == "42/7"
    assert check_location(loc) == loc


@pytest.mark.parametrize("good", ["a", "a/b/c", "1/2/x y.dat", "ü/ß", "a..b", ".hidden/x"])
def test_good_locations(good: str) -> None:
    assert check_location(good) == good


@pytest.mark.parametrize("bad", ["", "..", "../x", "a/../b", "/abs", "a//b", "a/", "./a",
                                 "a\\b", "a\x00b", "a\tb", "\x7f", "x" * 256])
def test_bad_locations(bad: str) -> None:
    with pytest.raises(IcatError) as e:
        check_location(bad)
    assert e.value.type == ErrorType.BAD_PARAMETER


def test_location_digest_matches_icat_utils() -> None:
    # Verified against icat.utils IcatSecurity.digest (see reference/ids-download.md §2.9).
    d = location_digest(42, "here", "secret")
    assert d == "20D7BD6C934147BE744071DE756EB107931AC13466530F6CE9C970B07FC1C2A5"


def test_digest_roundtrip_and_rejections() -> None:
    key = "abcdefghijklm"
    stored = add_digest(1234567, "/abc/def/ghi/jkl", key)
    assert stored.startswith("/abc/def/ghi/jkl ")
    assert strip_digest(1234567, stored, key) == "/abc/def/ghi/jkl"
    # spaces inside the location are fine: the hash is after the last one
    assert strip_digest(5, add_digest(5, "a b/c d", key), key) == "a b/c d"
    with pytest.raises(IcatError) as e:
        strip_digest(1234568, stored, key)  # another datafile's location
    assert e.value.type == ErrorType.INSUFFICIENT_PRIVILEGES
    assert "does not contain a valid hash" in e.value.message
    with pytest.raises(IcatError) as e:
        strip_digest(1234567, "/abc/def/ghi/jkl", key)
    assert "does not contain hash" in e.value.message
    with pytest.raises(IcatError) as e:
        strip_digest(1234567, stored.lower(), key)  # the hash is uppercase hex
    assert e.value.type == ErrorType.INSUFFICIENT_PRIVILEGES
    with pytest.raises(IcatError):
        strip_digest(1, "a ü", key)
    with pytest.raises(IcatError):
        strip_digest(1, None, key)


def test_no_key_means_no_hash() -> None:
    assert add_digest(1, "a/b", None) == "a/b"
    assert strip_digest(1, "a/b c", None) == "a/b c"


def test_java_url_encode() -> None:
    assert java_url_encode("Facility Name") == "Facility+Name"
    assert java_url_encode("N/A") == "N%2FA"
    assert java_url_encode("a+b") == "a%2Bb"
    assert java_url_encode("x*y-z_.~") == "x*y-z_.%7E"
    assert java_url_encode("é") == "%C3%A9"


def test_default_mapper_matches_ids_storage_file() -> None:
    m = DefaultZipMapper()
    ds = DsInfo(1, "DsName", 2, "InvName", "N/A", 3, "FacilityName")
    df = DfInfo(4, "DfName", "2/1/x", 1)
    assert m.entry_name(ds, df) == "ids/FacilityName/InvName/N%2FA/DsName/DfName"
    ds2 = DsInfo(1, "Ds Name", 2, "Inv Name", "Visit Id", 3, "Facility Name")
    df2 = DfInfo(4, "Df Name", "x", 1)
    assert m.entry_name(ds2, df2) == "ids/Facility+Name/Inv+Name/Visit+Id/Ds+Name/Df Name"
    df3 = DfInfo(4, "a/b/c", "x", 1)
    entry = m.entry_name(ds, df3)
    assert entry == "ids/FacilityName/InvName/N%2FA/DsName/a/b/c"
    assert m.datafile_name(entry) == "a/b/c"
    with pytest.raises(ValueError):
        m.datafile_name("ids/a/b")
