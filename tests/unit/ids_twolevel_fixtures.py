"""A small catalogue with files on main storage, for the two-level storage tests."""

from __future__ import annotations

import shutil
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, update

from cairn.config import DataSettings
from cairn.db import migrate
from cairn.db.engine import Database
from cairn.ids.locations import add_digest, dataset_folder
from cairn.ids.mapper import DfInfo, DsInfo
from cairn.ids.storage import Storage
from cairn.ids.twolevel import TwoLevel
from cairn.jobs import Scheduler

NOW = datetime(2024, 5, 1, 12, 0, 0)
STAMP = {"createId": "db/root", "createTime": NOW, "modId": "db/root", "modTime": NOW}


@dataclass
class World:
    db: Database
    datasets: list[DsInfo]
    #: Located datafiles by dataset id.
    files: dict[int, list[DfInfo]]
    #: CRC32 of each datafile's bytes.
    crcs: dict[int, int] = field(default_factory=dict)

    @property
    def datafiles(self) -> list[DfInfo]:
        return [f for fs in self.files.values() for f in fs]

    def ds(self, i: int) -> DsInfo:
        return self.datasets[i]


def settings(tmp_path: Path, **kw: Any) -> DataSettings:
    values: dict[str, Any] = {"archive": str(tmp_path / "archive"),
                              "cache_dir": tmp_path / "cache", "write_delay_seconds": 0,
                              "queue_interval_seconds": 0.05}
    values.update(kw)
    return DataSettings(**values)


def two_level(db: Database, main: Storage, archive: Storage, conf: DataSettings, *,
              stale_seconds: float | None = None, **kw: Any) -> TwoLevel:
    """Two-level storage as one Cairn process runs it: on a scheduler of its own (not
    started: tests run jobs with ``process_once`` or start ``tl.scheduler`` themselves).
    ``stale_seconds`` (default: the settings') applies to job claims and locks alike."""
    stale = stale_seconds if stale_seconds is not None else conf.stale_claim_timeout
    jobs = Scheduler(db, poll_seconds=0.05, stale_seconds=stale)
    tl = TwoLevel(db, main, archive, conf, jobs, stale_seconds=stale_seconds, **kw)
    jobs.register(*tl.job_kinds())
    return tl


def database(url: str) -> Database:
    db = Database(url)
    migrate.upgrade(db)
    return db


@cache
def _sqlite_template() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="cairn-twolevel-"))
    db = database(f"sqlite:///{folder / 'template.db'}")
    db.dispose()
    return folder / "template.db"


def sqlite_database(folder: Path) -> Database:
    """A migrated SQLite catalogue, copied from one made once per test process."""
    target = folder / "catalogue.db"
    shutil.copyfile(_sqlite_template(), target)
    return Database(f"sqlite:///{target}")


def _insert(conn: Connection, db: Database, entity: str, **values: Any) -> int:
    result = conn.execute(db.tables[entity].insert().values(**STAMP, **values))
    return int(result.inserted_primary_key[0])


def populate(db: Database, main: Storage, datasets: int = 2, files: int = 3,
             size: int = 1000, key: str | None = None) -> World:
    """A facility, one investigation, ``datasets`` datasets of ``files`` files each, their
    bytes on main storage at ids.storage_file-style locations."""
    out: list[DsInfo] = []
    by_ds: dict[int, list[DfInfo]] = {}
    crcs: dict[int, int] = {}
    with db.begin() as conn:
        fac = _insert(conn, db, "Facility", name="LILS")
        itype = _insert(conn, db, "InvestigationType", facility=fac, name="experiment")
        inv = _insert(conn, db, "Investigation", facility=fac, type=itype, name="inv 1",
                      visitId="v1", title="Two levels")
        dtype = _insert(conn, db, "DatasetType", facility=fac, name="raw")
        for d in range(datasets):
            ds_id = _insert(conn, db, "Dataset", investigation=inv, type=dtype,
                            name=f"ds{d}", complete=False)
            out.append(DsInfo(ds_id, f"ds{d}", inv, "inv 1", "v1", fac, "LILS"))
            for f in range(files):
                name = f"sub/f{f}.dat" if f % 2 else f"f{f}.dat"
                location = f"{dataset_folder(inv, ds_id)}/file{f}"
                data = bytes([(ds_id * 7 + f) % 251]) * (size + f) + name.encode()
                df_id = _insert(conn, db, "Datafile", dataset=ds_id, name=name,
                                fileSize=len(data))
                conn.execute(update(db.tables["Datafile"])
                             .where(db.tables["Datafile"].c.id == df_id)
                             .values(location=add_digest(df_id, location, key)))
                main.put(location, [data])
                crcs[df_id] = zlib.crc32(data)
                by_ds.setdefault(ds_id, []).append(
                    DfInfo(df_id, name, location, ds_id, size=len(data)))
    return World(db, out, by_ds, crcs)


def add_datafile(world: World, ds: DsInfo, name: str, data: bytes, main: Storage,
                 key: str | None = None) -> DfInfo:
    """A put as the data service does it: bytes on main storage, then the catalogue row."""
    db = world.db
    location = f"{dataset_folder(ds.investigation_id, ds.id)}/{name.replace('/', '_')}-new"
    main.put(location, [data])
    with db.begin() as conn:
        df_id = _insert(conn, db, "Datafile", dataset=ds.id, name=name, fileSize=len(data))
        conn.execute(update(db.tables["Datafile"]).where(db.tables["Datafile"].c.id == df_id)
                     .values(location=add_digest(df_id, location, key)))
    info = DfInfo(df_id, name, location, ds.id, size=len(data))
    world.files.setdefault(ds.id, []).append(info)
    world.crcs[df_id] = zlib.crc32(data)
    return info


def delete_datafile(world: World, df: DfInfo, main: Storage) -> None:
    db = world.db
    main.delete(df.location)
    with db.begin() as conn:
        t = db.tables["Datafile"]
        conn.execute(t.delete().where(t.c.id == df.id))
    world.files[df.dataset_id] = [f for f in world.files[df.dataset_id] if f.id != df.id]
    world.crcs.pop(df.id, None)


def on_main(world: World, main: Storage, ds: DsInfo) -> bool:
    """Every file of the dataset is on main storage with its original bytes."""
    return all(main.exists(f.location)
               and zlib.crc32(main.read_all(f.location)) == world.crcs[f.id]
               for f in world.files[ds.id])


def none_on_main(world: World, main: Storage, ds: DsInfo) -> bool:
    return not any(main.exists(f.location) for f in world.files[ds.id])


def wait_for(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll ``check`` (bounded): no assertion on how long anything takes."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
