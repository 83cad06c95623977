"""Copies between main and archive storage (two-level storage)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from cairn.errors import ErrorType, IcatError
from cairn.ids.archive import restore_datafile, restore_dataset, write_datafile, write_dataset
from cairn.ids.locations import dataset_folder
from cairn.ids.mapper import DfInfo, DsInfo
from cairn.ids.storage_local import LocalStorage
from cairn.ids.zipstream import zip_members

DS = DsInfo(5, "My Dataset", 2, "inv", "v1", 1, "fac")
FILES = {"a.dat": b"A" * 1000, "sub/b.dat": b"", "c.dat": b"see" * 5000}


@pytest.fixture
def stores(tmp_path: Path) -> tuple[LocalStorage, LocalStorage, Path]:
    work = tmp_path / "work"
    work.mkdir()
    return LocalStorage(tmp_path / "main"), LocalStorage(tmp_path / "archive"), work


def _fill(main: LocalStorage) -> dict[str, str]:
    locations = {}
    for i, (name, data) in enumerate(FILES.items()):
        loc = f"2/5/file{i}"
        main.put(loc, [data])
        locations[name] = loc
    return locations


def test_datafile_roundtrip(stores: tuple[LocalStorage, LocalStorage, Path]) -> None:
    main, archive, _ = stores
    main.put("2/5/x", [b"payload"])
    assert write_datafile(main, archive, "2/5/x").size == 7
    main.delete("2/5/x")
    assert not main.exists("2/5/x")
    assert restore_datafile(archive, main, "2/5/x").size == 7
    assert main.read_all("2/5/x") == b"payload"


def test_dataset_roundtrip(stores: tuple[LocalStorage, LocalStorage, Path]) -> None:
    main, archive, work = stores
    locations = _fill(main)
    dfs = [DfInfo(i + 1, name, loc, DS.id, len(FILES[name]))
           for i, (name, loc) in enumerate(locations.items())]
    members, skipped = zip_members({DS.id: DS}, dfs)
    assert not skipped
    key = dataset_folder(DS.investigation_id, DS.id)
    write_dataset(main, archive, key, members)
    with zipfile.ZipFile(io.BytesIO(archive.read_all(key))) as zf:
        assert sorted(zf.namelist()) == sorted(
            f"ids/fac/inv/v1/My+Dataset/{name}" for name in FILES)
    main.delete_folder("2/5")
    assert not main.folder_exists("2/5")
    written = restore_dataset(archive, main, key, locations, work)
    assert sorted(written) == sorted(locations.values())
    for name, loc in locations.items():
        assert main.read_all(loc) == FILES[name]
    assert list(work.iterdir()) == []  # temporary zip removed


def _archive_zip(entries: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


def test_restores_archives_written_by_others(stores: tuple[LocalStorage, LocalStorage, Path]
                                             ) -> None:
    main, archive, work = stores
    archive.put("2/5", [_archive_zip([("ids/fac/inv/v1/My+Dataset/a.dat", b"from java"),
                                      ("ids/fac/inv/v1/My+Dataset/x/y", b"nested")])])
    restore_dataset(archive, main, "2/5", {"a.dat": "2/5/l1", "x/y": "2/5/l2"}, work)
    assert main.read_all("2/5/l1") == b"from java"
    assert main.read_all("2/5/l2") == b"nested"


@pytest.mark.parametrize(("entries", "why"), [
    ([("ids/f/i/v/d/a", b"1"), ("ids/f/i/v/d/a", b"2"), ("ids/f/i/v/d/b", b"")], "duplicate"),
    ([("ids/f/i/v/d/a", b"1"), ("ids/f/i/v/d/b", b""), ("ids/f/i/v/d/zzz", b"")], "spurious"),
    ([("ids/f/i/v/d/a", b"1")], "missing"),
    ([("bad-name", b"1")], "form"),
])
def test_corrupt_archives_restore_nothing(stores: tuple[LocalStorage, LocalStorage, Path],
                                          entries: list[tuple[str, bytes]], why: str) -> None:
    main, archive, work = stores
    with pytest.warns(UserWarning) if why == "duplicate" else _nothing():
        archive.put("2/5", [_archive_zip(entries)])
    with pytest.raises(IcatError) as e:
        restore_dataset(archive, main, "2/5", {"a": "2/5/la", "b": "2/5/lb"}, work)
    assert e.value.type == ErrorType.INTERNAL
    assert why in e.value.message
    assert list(main.list()) == []
    assert list(work.iterdir()) == []


def test_bad_crc_rolls_back(stores: tuple[LocalStorage, LocalStorage, Path]) -> None:
    main, archive, work = stores
    body = bytearray(_archive_zip([("ids/f/i/v/d/a", b"first"),
                                   ("ids/f/i/v/d/b", b"second file data")]))
    # Break the second entry's CRC in the central directory (offset 16 of its header).
    first = body.index(b"PK\x01\x02")
    second = body.index(b"PK\x01\x02", first + 4)
    body[second + 16] ^= 0xFF
    archive.put("2/5", [bytes(body)])
    with pytest.raises(IcatError):
        restore_dataset(archive, main, "2/5", {"a": "2/5/la", "b": "2/5/lb"}, work)
    assert list(main.list()) == []


def test_not_a_zip(stores: tuple[LocalStorage, LocalStorage, Path]) -> None:
    main, archive, work = stores
    archive.put("2/5", [b"this is not a zip"])
    with pytest.raises(IcatError) as e:
        restore_dataset(archive, main, "2/5", {"a": "2/5/la"}, work)
    assert e.value.type == ErrorType.INTERNAL


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_datafiles_to_evict() -> None:
    from cairn.ids.archive import datafiles_to_evict
    from cairn.ids.storage import StoredObject

    objs = [StoredObject("a", 40, 3.0), StoredObject("b", 30, 1.0), StoredObject("c", 30, 2.0)]
    assert datafiles_to_evict(objs, low=50, high=101) == []  # below the high watermark
    assert datafiles_to_evict(objs, low=50, high=100) == ["b", "c"]  # oldest until <= low
    assert datafiles_to_evict(objs, low=0, high=10) == ["b", "c", "a"]
    assert datafiles_to_evict([], low=0, high=0) == []


def test_datasets_to_evict() -> None:
    from cairn.ids.archive import datasets_to_evict
    from cairn.ids.storage import StoredObject

    objs = [StoredObject("1/10/x", 50, 5.0), StoredObject("1/10/y", 50, 1.0),
            StoredObject("1/11/z", 30, 2.0), StoredObject("2/12/w", 20, 9.0),
            StoredObject("other/file", 1000, 0.0), StoredObject("3/\u00b2/q", 1000, 0.0)]
    assert datasets_to_evict(objs, low=100, high=151) == []  # 150 bytes in dataset folders
    # dataset 10 holds the oldest file and all its 100 bytes count: enough on its own
    assert datasets_to_evict(objs, low=60, high=150) == [(1, 10)]
    assert datasets_to_evict(objs, low=20, high=150) == [(1, 10), (1, 11)]
    assert datasets_to_evict(objs, low=0, high=1) == [(1, 10), (1, 11), (2, 12)]
