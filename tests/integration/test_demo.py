"""The demo data generator (`cairn demo`) on every backend."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Connection, and_, func, insert, select

from cairn.db.engine import Database
from cairn.demo import DEMO_ENTITIES, CatalogueNotEmpty
from cairn.demo import load_demo as load_into
from cairn.demo.bulk import BulkWriter
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


def load_demo(db: Database, **options: Any) -> dict[str, int]:
    return load_into(catalogue_of(db), **options)


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
