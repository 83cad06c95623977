"""The storage contract, run against every backend, plus local-folder specifics.

``StorageContract`` is reused by tests/integration/test_ids_storage_s3.py.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cairn.errors import ErrorType, IcatError
from cairn.ids.checksum import crc32_hex
from cairn.ids.locations import new_location
from cairn.ids.storage import Storage
from cairn.ids.storage_local import LocalStorage
from cairn.ids.storage_memory import MemoryStorage

BAD_LOCATIONS = ["", "../x", "a/../../x", "/etc/passwd", "a//b", "a/./b", "a/", ".",
                 "a\\b", "..\\x", "a\x00b", "a\nb", "x" * 300]


class Boom(Exception):
    pass


def failing(chunks: list[bytes]) -> Iterator[bytes]:
    yield from chunks
    raise Boom("client went away")


class StorageContract:
    """Behaviour every backend must show; subclasses provide a ``storage`` fixture."""

    def test_put_read_roundtrip(self, storage: Storage) -> None:
        data = os.urandom(3_000_000)
        r = storage.put("1/2/abc", [data[:1000], data[1000:2_500_000], b"", data[2_500_000:]])
        assert r.size == len(data)
        assert r.crc32 == zlib.crc32(data)
        assert r.checksum == crc32_hex(zlib.crc32(data))
        assert storage.size("1/2/abc") == len(data)
        assert storage.exists("1/2/abc")
        assert storage.read_all("1/2/abc") == data

    def test_ranges(self, storage: Storage) -> None:
        data = bytes(range(256)) * 40
        storage.put("r/x", [data])
        for start, end in [(0, 1), (5, 10), (0, len(data)), (100, None), (len(data), None),
                           (len(data) - 1, len(data)), (7, 7)]:
            got = b"".join(storage.read("r/x", start, end))
            assert got == data[start:end], (start, end)
        # past the end: no bytes, like a file
        assert b"".join(storage.read("r/x", len(data) + 10)) == b""

    def test_empty_object(self, storage: Storage) -> None:
        r = storage.put("e/empty", [])
        assert (r.size, r.crc32, r.checksum) == (0, 0, "0")
        assert storage.size("e/empty") == 0
        assert b"".join(storage.read("e/empty")) == b""
        assert b"".join(storage.read("e/empty", 0, 0)) == b""

    def test_replace(self, storage: Storage) -> None:
        storage.put("p/q", [b"old"])
        storage.put("p/q", [b"newer"])
        assert storage.read_all("p/q") == b"newer"

    def test_missing(self, storage: Storage) -> None:
        assert not storage.exists("no/such")
        for call in (lambda: storage.size("no/such"), lambda: storage.read("no/such")):
            with pytest.raises(IcatError) as e:
                call()
            assert e.value.type == ErrorType.NO_SUCH_OBJECT_FOUND
        storage.delete("no/such")  # no error

    def test_delete(self, storage: Storage) -> None:
        storage.put("d/1/a", [b"a"])
        storage.put("d/1/b", [b"b"])
        storage.delete("d/1/a")
        assert not storage.exists("d/1/a")
        assert storage.exists("d/1/b")

    def test_failed_put_leaves_nothing(self, storage: Storage) -> None:
        with pytest.raises(Boom):
            storage.put("f/1/new", failing([b"x" * 100_000] * 5))
        assert not storage.exists("f/1/new")
        assert list(storage.list("f")) == []
        assert not storage.folder_exists("f/1")

    def test_failed_put_keeps_old_version(self, storage: Storage) -> None:
        storage.put("k/1/x", [b"old"])
        with pytest.raises(Boom):
            storage.put("k/1/x", failing([b"partial"]))
        assert storage.read_all("k/1/x") == b"old"

    def test_bad_locations(self, storage: Storage) -> None:
        for bad in BAD_LOCATIONS:
            for call in (lambda b=bad: storage.put(b, [b"x"]), lambda b=bad: storage.read(b),
                         lambda b=bad: storage.exists(b), lambda b=bad: storage.delete(b)):
                with pytest.raises(IcatError) as e:
                    call()
                assert e.value.type == ErrorType.BAD_PARAMETER, repr(bad)

    def test_list_and_folders(self, storage: Storage) -> None:
        storage.put("7/8/a", [b"1"])
        storage.put("7/8/sub/b", [b"22"])
        storage.put("7/9/c", [b"333"])
        assert sorted((o.location, o.size) for o in storage.list("7/8")) == [
            ("7/8/a", 1), ("7/8/sub/b", 2)]
        assert {o.location for o in storage.list()} >= {"7/8/a", "7/8/sub/b", "7/9/c"}
        assert storage.folder_exists("7/8")
        assert not storage.folder_exists("7/80")
        storage.delete_folder("7/8")
        assert not storage.folder_exists("7/8")
        assert storage.exists("7/9/c")

    def test_new_location(self, storage: Storage) -> None:
        loc = new_location(12, 34)
        storage.put(loc, [b"z"])
        assert loc.startswith("12/34/")
        assert storage.read_all(loc) == b"z"

    def test_read_is_lazy_and_closable(self, storage: Storage) -> None:
        storage.put("c/x", [b"y" * 3_000_000])
        it = storage.read("c/x")
        first = next(iter(it))
        assert first
        close = getattr(it, "close", None)
        if close is not None:
            close()


class TestLocalStorage(StorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> LocalStorage:
        return LocalStorage(tmp_path / "main", chunk_size=64 * 1024)

    def test_files_on_disk(self, storage: LocalStorage) -> None:
        storage.put("3/4/f", [b"hello"])
        assert (storage.root / "3" / "4" / "f").read_bytes() == b"hello"
        assert storage.local_path("3/4/f") == storage.root / "3" / "4" / "f"

    def test_delete_prunes_empty_folders(self, storage: LocalStorage) -> None:
        storage.put("3/4/f", [b"hello"])
        storage.delete("3/4/f")
        assert list(storage.root.iterdir()) == []
        assert storage.root.is_dir()

    def test_interrupted_put_leaves_no_temp_file(self, storage: LocalStorage) -> None:
        storage.put("5/6/keep", [b"k"])

        def slow() -> Iterator[bytes]:
            yield b"a" * 10
            yield b"b" * 10

        gen = slow()
        with pytest.raises(KeyboardInterrupt):
            storage.put("5/6/new", _interrupt_after(gen, 1))
        assert sorted(p.name for p in (storage.root / "5" / "6").iterdir()) == ["keep"]

    def test_put_survives_a_prune_inside_mkdir(self, storage: LocalStorage,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
        # What pathlib raises when another request prunes the folder between its mkdir
        # (EEXIST) and its is_dir check: the put makes the folder again.
        real, raised = Path.mkdir, []
        target = storage.root / "7" / "8"

        def racing(self: Path, *args: object, **kwargs: object) -> None:
            if self == target and not raised:
                raised.append(self)
                raise FileExistsError(17, "File exists", str(self))
            real(self, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(Path, "mkdir", racing)
        storage.put("7/8/f", [b"data"])
        assert raised == [target]
        assert (storage.root / "7" / "8" / "f").read_bytes() == b"data"

    def test_puts_and_aborted_puts_in_one_folder_concurrently(
            self, storage: LocalStorage) -> None:
        # Aborted puts prune the folder that concurrent puts are making: every good put
        # must land, and no temporary file may stay.
        def work(worker: int) -> list[str]:
            stored = []
            for i in range(150):
                if i % 2:
                    with pytest.raises(Boom):
                        storage.put(f"1/1/gone-{worker}-{i}", failing([b"x"]))
                else:
                    storage.put(f"1/1/f-{worker}-{i}", [b"y"])
                    stored.append(f"f-{worker}-{i}")
                    storage.delete(f"1/1/f-{worker}-{i}")
            return stored

        with ThreadPoolExecutor(4) as pool:
            done = [name for names in pool.map(work, range(4)) for name in names]
        assert len(done) == 4 * 75
        assert not (storage.root / "1").exists()

    def test_traversal_never_touches_outside(self, tmp_path: Path) -> None:
        storage = LocalStorage(tmp_path / "root")
        outside = tmp_path / "outside"
        outside.write_bytes(b"secret")
        with pytest.raises(IcatError):
            storage.read("../outside")
        with pytest.raises(IcatError):
            storage.put("../outside", [b"pwned"])
        with pytest.raises(IcatError):
            storage.delete("../outside")
        assert outside.read_bytes() == b"secret"

    def test_temp_files_not_listed(self, storage: LocalStorage) -> None:
        (storage.root / "9").mkdir()
        (storage.root / "9" / ".cairn-put-x.part").write_bytes(b"half")
        assert list(storage.list()) == []


def _interrupt_after(chunks: Iterator[bytes], n: int) -> Iterator[bytes]:
    for i, chunk in enumerate(chunks):
        if i == n:
            raise KeyboardInterrupt
        yield chunk


class TestMemoryStorage(StorageContract):
    @pytest.fixture
    def storage(self) -> MemoryStorage:
        return MemoryStorage(chunk_size=64 * 1024)
