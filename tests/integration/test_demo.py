"""The demo data generator (`cairn demo`) on every backend."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, and_, func, insert, select

from cairn.authn.db import set_password
from cairn.authn.passwords import verify_password
from cairn.catalogue.service import Catalogue
from cairn.config import Settings
from cairn.db.engine import Database
from cairn.demo import DEMO_ENTITIES, CatalogueNotEmpty, accounts, rules
from cairn.demo import load_demo as load_into
from cairn.demo.bulk import BulkWriter
from cairn.demo.contents import Scan, measure, render
from cairn.demo.vocab import DATAFILE_FORMATS
from cairn.ids.locations import strip_digest
from cairn.ids.storage_local import LocalStorage
from cairn.ids.storage_memory import MemoryStorage
from cairn.schema import SCHEMA
from cairn.startup import catalogue_of

SCALE = 0.05  # one investigation, a few hundred datafiles: seconds on any backend
PARAMETER_PARENTS = {"InvestigationParameter": ("investigation", "applicableToInvestigation"),
                     "SampleParameter": ("sample", "applicableToSample"),
                     "DatasetParameter": ("dataset", "applicableToDataset"),
                     "DatafileParameter": ("datafile", "applicableToDatafile")}


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.tables.metadata.create_all(database.engine)
    try:
        yield database
    finally:
        database.dispose()


def load_demo(db: Database | Catalogue, **options: Any) -> dict[str, int]:
    return load_into(db if isinstance(db, Catalogue) else catalogue_of(db), **options)


def _count(conn: Connection, db: Database, entity: str) -> int:
    return int(conn.execute(select(func.count()).select_from(db.tables[entity])).scalar_one())


def _content(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every demo row, ordered by id, without the load-time columns."""
    out = {}
    with db.connect() as conn:
        for entity in DEMO_ENTITIES:
            t = db.tables[entity]
            cols = [c for c in t.c if c.key not in ("createTime", "modTime")]
            out[entity] = [tuple(r) for r in conn.execute(select(*cols).order_by(t.c.id))]
    return out


def test_counts_system_columns_and_progress(db: Database) -> None:
    lines: list[str] = []
    counts = load_demo(db, scale=SCALE, seed=7, user="db/loader", progress=lines.append)
    assert set(counts) == set(DEMO_ENTITIES)
    with db.connect() as conn:
        for entity in DEMO_ENTITIES:
            assert _count(conn, db, entity) == counts[entity], entity
            t = db.tables[entity]
            bad = conn.execute(select(func.count()).select_from(t).where(
                (t.c.createId != "db/loader") | (t.c.modId != "db/loader")
                | t.c.createTime.is_(None) | (t.c.modTime != t.c.createTime))).scalar_one()
            assert bad == 0, entity
            ids = conn.execute(select(func.min(t.c.id), func.max(t.c.id))).one()
            assert tuple(ids) == (1, counts[entity]), entity  # ICAT clients expect ids from 1
    assert counts["Facility"] == 1
    assert counts["Investigation"] == 1
    assert 100 <= counts["Datafile"] <= 2000
    assert counts["Dataset"] >= 4 and counts["DatafileParameter"] > 0
    assert lines and lines[-1].startswith("done: investigations 1/1, datafiles ")


def test_scale_is_linear_in_datafiles(tmp_path: Any) -> None:
    """About 10,000 datafiles per unit of scale, through more investigations."""
    per_scale = {}
    for scale in (1.0, 3.0):
        db = Database(f"sqlite:///{tmp_path / f'scale{scale}.db'}")
        db.tables.metadata.create_all(db.engine)
        counts = load_demo(db, scale=scale, seed=11)
        assert counts["Investigation"] == round(20 * scale)
        per_scale[scale] = counts["Datafile"] / scale
        assert 7_000 <= per_scale[scale] <= 13_000
        per_investigation = counts["Dataset"] / counts["Investigation"]
        assert 8 <= per_investigation <= 12
        db.dispose()


def test_same_seed_same_content(db: Database, tmp_path: Any) -> None:
    load_demo(db, scale=SCALE, seed=5)
    reference = Database(f"sqlite:///{tmp_path / 'reference.db'}")  # also: backend-independent
    reference.tables.metadata.create_all(reference.engine)
    load_demo(reference, scale=SCALE, seed=5)
    other = Database(f"sqlite:///{tmp_path / 'other.db'}")
    other.tables.metadata.create_all(other.engine)
    load_demo(other, scale=SCALE, seed=6)
    content = _content(db)
    assert content == _content(reference)
    assert content["Datafile"] != _content(other)["Datafile"]
    reference.dispose()
    other.dispose()


def test_natural_keys_unique_and_values_sane(db: Database) -> None:
    load_demo(db, scale=SCALE, seed=2)
    with db.connect() as conn:
        for entity in DEMO_ENTITIES:
            key = SCHEMA.entities[entity].key
            if not key:
                continue
            t = db.tables[entity]
            cols = [t.c[k] for k in key]
            dups = conn.execute(select(*cols).group_by(*cols).having(func.count() > 1)).all()
            assert dups == [], entity
        df, ds, inv = (db.tables[n] for n in ("Datafile", "Dataset", "Investigation"))
        # Locations are <investigation>/<dataset>/<file> and unique across the catalogue.
        rows = conn.execute(select(df.c.name, df.c.location, ds.c.name, inv.c.name,
                                   inv.c.visitId).join(ds, df.c.dataset == ds.c.id)
                            .join(inv, ds.c.investigation == inv.c.id)).all()
        assert all(loc == f"{i}-{v}/{d}/{f}" for f, loc, d, i, v in rows)
        assert len({r[1] for r in rows}) == len(rows)
        # Investigations: name like LSF-2019-0001, dates ordered, release after the end.
        for name, start, end, release in conn.execute(
                select(inv.c.name, inv.c.startDate, inv.c.endDate, inv.c.releaseDate)):
            assert name.startswith("LSF-") and len(name) == len("LSF-2019-0001")
            assert start < end < release
        # Datasets lie inside their investigation; files inside their dataset.
        assert conn.execute(select(func.count()).select_from(ds).join(
            inv, ds.c.investigation == inv.c.id).where(
            (ds.c.startDate < inv.c.startDate) | (ds.c.endDate < ds.c.startDate))).scalar() == 0
        assert conn.execute(select(func.count()).select_from(df).join(
            ds, df.c.dataset == ds.c.id).where(
            (df.c.datafileCreateTime < ds.c.startDate)
            | (df.c.datafileCreateTime > ds.c.endDate))).scalar() == 0


def test_parameters_match_their_types(db: Database) -> None:
    load_demo(db, scale=SCALE, seed=3)
    pt = db.tables["ParameterType"]
    with db.connect() as conn:
        for entity, (_parent, flag) in PARAMETER_PARENTS.items():
            p = db.tables[entity]
            rows = conn.execute(select(pt.c[flag], pt.c.valueType, p.c.numericValue,
                                       p.c.stringValue, p.c.dateTimeValue)
                                .join(pt, p.c.type == pt.c.id)).all()
            assert rows, entity
            for applicable, value_type, num, string, when in rows:
                assert applicable is True, entity
                filled = {"NUMERIC": num, "STRING": string, "DATE_AND_TIME": when}
                assert filled.pop(value_type) is not None, entity
                assert set(filled.values()) == {None}, entity
        psv = db.tables["PermissibleStringValue"]
        allowed = {(t, v) for t, v in conn.execute(select(psv.c.type, psv.c.value))}
        enforced = {t for (t,) in conn.execute(select(pt.c.id).where(pt.c.enforced.is_(True)))}
        for entity in PARAMETER_PARENTS:
            p = db.tables[entity]
            for t, v in conn.execute(select(p.c.type, p.c.stringValue)):
                if t in enforced:
                    assert (t, v) in allowed, entity


def test_aggregates_match_datafiles(db: Database) -> None:
    load_demo(db, scale=SCALE, seed=4)
    df, ds, inv = (db.tables[n] for n in ("Datafile", "Dataset", "Investigation"))
    with db.connect() as conn:
        per_ds = select(df.c.dataset, func.sum(df.c.fileSize).label("size"),
                        func.count().label("n")).group_by(df.c.dataset).subquery()
        rows = conn.execute(select(ds.c.fileSize, ds.c.fileCount, per_ds.c.size, per_ds.c.n)
                            .join(per_ds, per_ds.c.dataset == ds.c.id)).all()
        assert len(rows) == _count(conn, db, "Dataset")
        assert all(a == c and b == d for a, b, c, d in rows)
        per_inv = select(ds.c.investigation, func.sum(df.c.fileSize).label("size"),
                         func.count().label("n")).join(df, df.c.dataset == ds.c.id) \
            .group_by(ds.c.investigation).subquery()
        rows = conn.execute(select(inv.c.fileSize, inv.c.fileCount, per_inv.c.size,
                                   per_inv.c.n)
                            .join(per_inv, per_inv.c.investigation == inv.c.id)).all()
        assert len(rows) == _count(conn, db, "Investigation")
        assert all(a == c and b == d for a, b, c, d in rows)


def test_plain_inserts_after_the_demo(db: Database) -> None:
    counts = load_demo(db, scale=SCALE)
    t = db.tables
    now = db.now()
    system = {"createId": "db/root", "modId": "db/root", "createTime": now, "modTime": now}
    with db.begin() as conn:
        facility, itype, dataset = (conn.execute(select(t[n].c.id).limit(1)).scalar_one()
                                    for n in ("Facility", "InvestigationType", "Dataset"))
        inv = conn.execute(insert(t["Investigation"]).values(
            facility=facility, type=itype, name="LSF-2099-0001", visitId="1",
            title="After the demo", **system)).inserted_primary_key[0]
        df = conn.execute(insert(t["Datafile"]).values(
            dataset=dataset, name="late.nxs", location="late.nxs", **system)
        ).inserted_primary_key[0]
    assert inv == counts["Investigation"] + 1
    assert df == counts["Datafile"] + 1


def test_datetimes_compare_like_sqlalchemy_written_ones(db: Database) -> None:
    """The bulk path must store datetimes exactly as SQLAlchemy binds them (SQLite: text)."""
    load_demo(db, scale=SCALE)
    df = db.tables["Datafile"]
    with db.connect() as conn:
        some = conn.execute(select(df.c.datafileCreateTime).order_by(df.c.id.desc())
                            .limit(1)).scalar_one()
        assert isinstance(some, datetime)
        assert conn.execute(select(func.count()).select_from(df).where(
            and_(df.c.datafileCreateTime == some, df.c.datafileModTime == some))).scalar() >= 1


def test_refuses_a_non_empty_catalogue(db: Database) -> None:
    first = load_demo(db, scale=SCALE)
    with pytest.raises(CatalogueNotEmpty, match=r"empty catalogue.*Facility"):
        load_demo(db, scale=SCALE)
    assert issubclass(CatalogueNotEmpty, ValueError)
    with db.connect() as conn:
        assert all(_count(conn, db, e) == n for e, n in first.items())


def test_refuses_when_only_users_exist(db: Database) -> None:
    now = db.now()
    with db.begin() as conn:
        conn.execute(insert(db.tables["User"]).values(
            name="db/alice", createId="x", modId="x", createTime=now, modTime=now))
    with pytest.raises(ValueError, match="User"):
        load_demo(db, scale=SCALE)
    with db.connect() as conn:
        assert _count(conn, db, "Facility") == 0


def test_failure_leaves_the_catalogue_empty(db: Database,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_finish(self: BulkWriter) -> None:
        self.flush()  # everything has reached the database by now
        raise RuntimeError("disk full")

    monkeypatch.setattr(BulkWriter, "finish", broken_finish)
    with pytest.raises(RuntimeError, match="disk full"):
        load_demo(db, scale=SCALE)
    with db.connect() as conn:
        assert all(_count(conn, db, e) == 0 for e in DEMO_ENTITIES)


def test_bad_scale(db: Database) -> None:
    with pytest.raises(ValueError, match="scale"):
        load_demo(db, scale=0)


# -- what trying the demo needs: files, rules, passwords -----------------------------------


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in root.rglob("*") if p.is_file()}


def test_every_datafile_has_its_bytes(db: Database, tmp_path: Path) -> None:
    """Each datafile's bytes are at its location; fileSize and checksum are theirs."""
    storage = LocalStorage(tmp_path / "main")
    counts = load_demo(db, scale=SCALE, seed=8, storage=storage)
    df = db.tables["Datafile"]
    with db.connect() as conn:
        rows = conn.execute(select(df.c.location, df.c.fileSize, df.c.checksum)).all()
    written = _files(tmp_path / "main")
    assert len(rows) == counts["Datafile"] == len(written)
    for location, size, checksum in rows:
        data = written[location]
        assert len(data) == size, location
        assert checksum == format(zlib.crc32(data), "x"), location
    sizes = sorted(len(b) for b in written.values())
    assert 1_000 <= sizes[len(sizes) // 2] <= 16_000  # "a few KB" by default
    assert sizes[0] != sizes[-1]


def test_locations_carry_their_hash_when_the_data_service_has_a_key(
        db: Database, tmp_path: Path) -> None:
    settings = Settings()
    settings.data.key = "demo-key"
    load_demo(catalogue_of(db, settings), scale=SCALE, storage=LocalStorage(tmp_path / "m"))
    df = db.tables["Datafile"]
    with db.connect() as conn:
        rows = conn.execute(select(df.c.id, df.c.location)).all()
    written = _files(tmp_path / "m")
    assert rows and {strip_digest(i, loc, "demo-key") for i, loc in rows} == set(written)


def test_file_contents_are_deterministic(db: Database, tmp_path: Path) -> None:
    load_demo(db, scale=SCALE, seed=9, storage=LocalStorage(tmp_path / "a"))
    again = Database(f"sqlite:///{tmp_path / 'again.db'}")
    again.tables.metadata.create_all(again.engine)
    load_demo(again, scale=SCALE, seed=9, storage=LocalStorage(tmp_path / "b"))
    again.dispose()
    files = _files(tmp_path / "a")
    assert files and files == _files(tmp_path / "b")


@pytest.mark.parametrize("size", [100, 4_000, 300_000])
def test_each_format_looks_like_itself(size: int) -> None:
    scan = Scan("I03", "crystallography", "LSF-2019-0001-1", "scan_0001")
    when = datetime(2019, 3, 4, 10, 22, 1)
    made = {}
    for fmt, *_ in DATAFILE_FORMATS:
        chunks = render(fmt, 42, f"scan_0001_00001.{fmt}", size, 12345, when, scan)
        data = b"".join(chunks)
        assert measure(chunks) == (len(data), zlib.crc32(data))
        assert data == b"".join(render(fmt, 42, f"scan_0001_00001.{fmt}", size, 12345, when,
                                       scan))
        assert b"".join(render(fmt, 43, f"scan_0001_00001.{fmt}", size, 12345, when,
                               scan)) != data  # another datafile, other bytes
        if size >= 4_000:
            assert 0.9 * size <= len(data) <= 1.1 * size, fmt
        made[fmt] = data
    width, height, pixels = _tiff_image(made["tiff"])
    assert pixels + width * height == len(made["tiff"])
    assert made["cbf"].startswith(b"###CBF: VERSION 1.5") and b"\x0c\x1a\x04\xd5" in made["cbf"]
    assert made["cbf"].endswith(b"--CIF-BINARY-FORMAT-SECTION----\n;\n")
    for fmt in ("nexus", "hdf5"):
        assert b"/entry1:NXentry" in made[fmt] and b"(not HDF5)" in made[fmt]
    assert made["mtz"].startswith(b"MTZ ") and b"VERS MTZ:V1.1" in made["mtz"]
    rows = [line.split() for line in made["ascii"].decode().splitlines()
            if not line.startswith("#")]
    assert rows and all(len(r) == 3 and float(r[1]) > 0 for r in rows)
    log = made["log"].decode().splitlines()
    assert len(log) >= 2 and all(line.startswith("2019-03-04 ") for line in log[1:])
    assert sorted(log[1:]) == log[1:]  # in time order


def _tiff_image(data: bytes) -> tuple[int, int, int]:
    """(width, height, offset of the pixels) of a little-endian, one-strip TIFF."""
    assert data[:4] == b"II*\0"
    (ifd,) = struct.unpack_from("<I", data, 4)
    (n,) = struct.unpack_from("<H", data, ifd)
    tags = {}
    for k in range(n):
        tag, typ, _count, value = struct.unpack_from("<HHII", data, ifd + 2 + 12 * k)
        tags[tag] = value & 0xFFFF if typ == 3 else value
    assert tags[258] == 8 and tags[259] == 1 and tags[279] == tags[256] * tags[257]
    return tags[256], tags[257], tags[273]


def test_file_size_option_scales_the_files(db: Database, tmp_path: Path) -> None:
    load_demo(db, scale=SCALE, seed=10, storage=LocalStorage(tmp_path / "big"),
              file_size=64 * 1024)
    small = Database(f"sqlite:///{tmp_path / 'small.db'}")
    small.tables.metadata.create_all(small.engine)
    load_demo(small, scale=SCALE, seed=10, storage=LocalStorage(tmp_path / "small"))
    small.dispose()
    big, default = _files(tmp_path / "big"), _files(tmp_path / "small")
    assert big.keys() == default.keys()
    ratio = sum(map(len, big.values())) / sum(map(len, default.values()))
    assert 12 <= ratio <= 17  # 64 KiB against the default 4 KiB, headers aside


def test_a_failed_load_leaves_no_files(db: Database, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "main" / "facility-data").mkdir(parents=True)  # not the demo's: kept

    def broken(work: Any) -> tuple[int, int]:
        raise RuntimeError("rules refused")

    monkeypatch.setattr(rules, "install", broken)
    with pytest.raises(RuntimeError, match="rules refused"):
        load_demo(db, scale=SCALE, storage=LocalStorage(tmp_path / "main"))
    assert [p.name for p in (tmp_path / "main").iterdir()] == ["facility-data"]
    with db.connect() as conn:
        assert _count(conn, db, "Datafile") == 0


def test_storage_without_local_files_gets_puts(db: Database, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Object storage (here in memory) receives ordinary puts, and loses them again when
    the load fails."""
    storage = MemoryStorage()
    load_demo(db, scale=SCALE, seed=8, storage=storage)
    df = db.tables["Datafile"]
    with db.connect() as conn:
        rows = conn.execute(select(df.c.location, df.c.fileSize, df.c.checksum)).all()
    assert len(rows) == len(list(storage.list()))
    for location, size, checksum in rows:
        data = storage.read_all(location)
        assert (len(data), format(zlib.crc32(data), "x")) == (size, checksum)

    def broken(work: Any, *args: Any) -> int:
        raise RuntimeError("no passwords today")

    monkeypatch.setattr(accounts, "set_passwords", broken)
    empty = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    empty.tables.metadata.create_all(empty.engine)
    fresh = MemoryStorage()
    with pytest.raises(RuntimeError, match="no passwords"):
        load_demo(empty, scale=SCALE, storage=fresh)
    empty.dispose()
    assert list(fresh.list()) == []


def test_rules_public_steps_and_passwords(db: Database) -> None:
    load_demo(db, scale=SCALE)
    t = db.tables
    with db.connect() as conn:
        have = {(w, f) for w, f, g, bean in conn.execute(
            select(t["Rule"].c.what, t["Rule"].c.crudFlags, t["Rule"].c.grouping,
                   t["Rule"].c.bean)) if g is None and bean}
        steps = {(o, f) for o, f in conn.execute(
            select(t["PublicStep"].c.origin, t["PublicStep"].c.field))}
        users = [n for (n,) in conn.execute(select(t["User"].c.name))]
        stored = {n: p for n, p in conn.execute(
            select(t.passwd.c.userName, t.passwd.c.encodedPassword))}
    assert have == set(rules.rules())  # each validated: bean and the rest derived
    assert steps == set(rules.PUBLIC_STEPS)
    assert users and all(u.startswith("db/") for u in users)
    assert set(stored) == {u[3:] for u in users}
    assert verify_password(accounts.DEMO_PASSWORD, stored["jbloggs"])
    assert not verify_password("not " + accounts.DEMO_PASSWORD, stored["jbloggs"])
    # Created again only where missing: a second installation changes nothing.
    with catalogue_of(db).as_system() as work:
        assert rules.install(work) == (0, 0)


def test_passwords_already_set_are_kept(db: Database) -> None:
    with db.begin() as conn:
        conn.execute(insert(db.tables.passwd).values(userName="jbloggs",
                                                     encodedPassword="own secret"))
    load_demo(db, scale=SCALE)
    with db.connect() as conn:
        stored = {n: p for n, p in conn.execute(
            select(db.tables.passwd.c.userName, db.tables.passwd.c.encodedPassword))}
    assert stored["jbloggs"] == "own secret"
    assert len(stored) > 1


def test_sign_in_help_names_a_scientist_with_data(db: Database) -> None:
    catalogue = catalogue_of(db)
    load_demo(catalogue, scale=SCALE)
    text = "\n".join(accounts.sign_in_help(catalogue, "db/root", root_created=False))
    t = db.tables
    with db.connect() as conn:
        busiest = conn.execute(
            select(t["User"].c.name).join(t["InvestigationUser"],
                                          t["InvestigationUser"].c.user == t["User"].c.id)
            .group_by(t["User"].c.id, t["User"].c.name)
            .order_by(func.count().desc(), t["User"].c.id).limit(1)).scalar_one()
    assert f"scientist:            {busiest}  password 'demo'" in text
    assert "instrument scientist: db/" in text
    # No root account yet: how to get one.
    assert "db/root  `cairn serve` creates it" in text
    set_password(db, "root", "x")
    text = "\n".join(accounts.sign_in_help(catalogue, "db/root", root_created=False))
    assert "forgot it? `cairn user add db/root` sets a new one" in text
