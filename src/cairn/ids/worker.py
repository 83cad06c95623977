"""The work of two-level storage jobs on one unit, and the catalogue reads it needs.

This runs as ids.server's "reader": directly on the catalogue tables, without a session.
What each job does (ids.server's Ds/Df Writer, Archiver, Restorer, Deleter threads):

- WRITE (main -> archive). DATASET: zip the dataset's located datafiles into the archive
  object ``<investigation id>/<dataset id>``; a dataset with no located datafiles (or gone
  from the catalogue) has its archive object deleted. DATAFILE: copy the file to the same
  location in the archive. A unit entirely absent from main storage has nothing new to write
  (the archive copy stands); a DATASET only partly on main storage is an error, retried
  later, because zipping it would drop files from the archive.
- ARCHIVE (evict from main). Refused while a write is pending (the caller checks the queue);
  if the archive holds no copy yet, one is written first, so eviction can't lose data that
  reached main storage some other way.
- RESTORE (archive -> main). Skipped if already online. DATASET archives are checked
  (duplicate, spurious or missing entries, bad CRC: see :func:`cairn.ids.archive.restore_dataset`)
  and a failed restore leaves nothing behind. Failures raise; the caller sets the flag.
- DELETE (DATAFILE only): remove the archive copy of a deleted datafile.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import ColumnElement, or_, select

from cairn.db.engine import Database
from cairn.errors import IcatError, internal
from cairn.ids import archive as copies
from cairn.ids.locations import dataset_folder, strip_digest
from cairn.ids.mapper import DefaultZipMapper, DfInfo, DsInfo, ZipMapper
from cairn.ids.scratch import UNBOUND, ScratchDir
from cairn.ids.storage import Storage
from cairn.ids.zipstream import ZipMember
from cairn.jobs.model import chunks

log = logging.getLogger(__name__)


class CatalogueReader:
    """Datasets and located datafiles straight from the catalogue tables."""

    def __init__(self, db: Database, key: str | None = None) -> None:
        self.db = db
        self.key = key

    def datasets(self, ids: Iterable[int]) -> dict[int, DsInfo]:
        ds, inv, fac = (self.db.tables[n] for n in ("Dataset", "Investigation", "Facility"))
        out: dict[int, DsInfo] = {}
        with self.db.connect() as conn:
            for batch in chunks(set(ids)):
                q = (select(ds.c.id, ds.c.name, ds.c.location, inv.c.id.label("inv_id"),
                            inv.c.name.label("inv_name"), inv.c.visitId,
                            fac.c.id.label("fac_id"), fac.c.name.label("fac_name"))
                     .join(inv, ds.c.investigation == inv.c.id)
                     .join(fac, inv.c.facility == fac.c.id)
                     .where(ds.c.id.in_(batch)))
                for r in conn.execute(q):
                    out[r.id] = DsInfo(id=r.id, name=r.name, investigation_id=r.inv_id,
                                       investigation_name=r.inv_name, visit_id=r.visitId,
                                       facility_id=r.fac_id, facility_name=r.fac_name,
                                       location=r.location)
        return out

    def _datafiles(self, where: ColumnElement[bool]) -> list[DfInfo]:
        df = self.db.tables["Datafile"]
        q = select(df.c.id, df.c.name, df.c.location, df.c.dataset, df.c.fileSize,
                   df.c.checksum, df.c.createId, df.c.modId).where(
            df.c.location.is_not(None), where)
        out = []
        with self.db.connect() as conn:
            for r in conn.execute(q):
                try:
                    location = strip_digest(r.id, r.location, self.key)
                except IcatError as e:  # a forged location is never acted on
                    log.warning("Datafile %s ignored: %s", r.id, e.message)
                    continue
                out.append(DfInfo(id=r.id, name=r.name, location=location,
                                  dataset_id=r.dataset, size=r.fileSize, checksum=r.checksum,
                                  create_id=r.createId, mod_id=r.modId))
        return out

    def datafiles(self, ids: Iterable[int]) -> dict[int, DfInfo]:
        df = self.db.tables["Datafile"]
        out: dict[int, DfInfo] = {}
        for batch in chunks(set(ids)):
            out.update((d.id, d) for d in self._datafiles(df.c.id.in_(batch)))
        return out

    def datafiles_of(self, dataset_ids: Iterable[int]) -> dict[int, list[DfInfo]]:
        """Located datafiles of each dataset (datasets without any are absent)."""
        df = self.db.tables["Datafile"]
        out: dict[int, list[DfInfo]] = {}
        for batch in chunks(set(dataset_ids)):
            for d in self._datafiles(df.c.dataset.in_(batch)):
                out.setdefault(d.dataset_id, []).append(d)
        return out

    def datafiles_at(self, locations: Iterable[str]) -> list[DfInfo]:
        """Datafiles stored at these (bare) locations; with a key, the catalogue holds
        ``<location> <hash>``, matched by prefix and then verified."""
        df = self.db.tables["Datafile"]
        wanted = set(locations)
        out: list[DfInfo] = []
        for batch in chunks(sorted(wanted), 100):
            cond: ColumnElement[bool]
            if self.key is None:
                cond = df.c.location.in_(batch)
            else:
                cond = or_(*(df.c.location.startswith(loc + " ", autoescape=True)
                             for loc in batch))
            out.extend(d for d in self._datafiles(cond) if d.location in wanted)
        return out


class UnitMoves:
    """Copies and deletions for one storage unit type."""

    def __init__(self, main: Storage, archive: Storage, reader: CatalogueReader,
                 work_dir: str | os.PathLike[str], mapper: ZipMapper | None = None,
                 token: str = UNBOUND) -> None:
        self.main = main
        self.archive = archive
        self.reader = reader
        #: Restore zips go to ``<work_dir>/.cairn-tmp/<token>/`` (the process's token).
        self.work_dir = Path(work_dir)
        self.scratch = ScratchDir(self.work_dir, token)
        self.mapper = mapper or DefaultZipMapper()

    # -- online checks ------------------------------------------------------------------------

    def dataset_online(self, ds: DsInfo, files: list[DfInfo] | None = None) -> bool:
        """On main storage: every located datafile is there (none: always online)."""
        if files is None:
            files = self.reader.datafiles_of([ds.id]).get(ds.id, [])
        return self._present(ds, files) == len(files)

    def _present(self, ds: DsInfo, files: list[DfInfo]) -> int:
        """How many of the dataset's files are on main storage: one listing of the dataset
        folder, then single checks for files catalogued elsewhere."""
        if not files:
            return 0
        listed = {o.location for o in self.main.list(dataset_folder(ds.investigation_id,
                                                                    ds.id))}
        return sum(1 for f in files if f.location in listed or self.main.exists(f.location))

    def datafile_online(self, df: DfInfo) -> bool:
        return self.main.exists(df.location)

    # -- DATASET unit -------------------------------------------------------------------------

    def write_dataset(self, ds_id: int, key: str | None) -> None:
        ds = self.reader.datasets([ds_id]).get(ds_id)
        files = self.reader.datafiles_of([ds_id]).get(ds_id, []) if ds else []
        key = dataset_folder(ds.investigation_id, ds.id) if ds else key
        if not files:
            if key is not None:  # emptied or deleted: its archive copy goes too
                self.archive.delete(key)
            return
        assert ds is not None and key is not None
        present = self._present(ds, files)
        if present == 0:
            log.info("Dataset %s is not on main storage: nothing to write", ds_id)
            return
        if present < len(files):
            raise internal(f"Dataset {ds_id}: {len(files) - present} of {len(files)} files "
                           "are missing from main storage; archive copy not replaced")
        members = [ZipMember(name=self.mapper.entry_name(ds, f), location=f.location,
                             size=self.main.size(f.location))
                   for f in sorted(files, key=lambda f: f.id)]
        copies.write_dataset(self.main, self.archive, key, members)

    def archive_dataset(self, ds_id: int, key: str | None) -> None:
        ds = self.reader.datasets([ds_id]).get(ds_id)
        if ds is None:
            return  # gone from the catalogue: nothing of it to keep on main storage
        key = dataset_folder(ds.investigation_id, ds.id)
        files = self.reader.datafiles_of([ds_id]).get(ds_id, [])
        if files and not self.archive.exists(key):
            log.warning("Dataset %s has no archive copy: writing it before eviction", ds_id)
            self.write_dataset(ds_id, key)
        for f in files:
            self.main.delete(f.location)
        self.main.delete_folder(key)  # leftovers of interrupted uploads too

    def restore_dataset(self, ds_id: int, key: str | None) -> None:
        ds = self.reader.datasets([ds_id]).get(ds_id)
        if ds is None:
            return
        files = self.reader.datafiles_of([ds_id]).get(ds_id, [])
        if self.dataset_online(ds, files):
            return
        key = dataset_folder(ds.investigation_id, ds.id)
        if not self.archive.exists(key):
            raise internal(f"Dataset {ds_id} has no archive copy at {key}")
        copies.restore_dataset(self.archive, self.main, key, {f.name: f.location for f in files},
                               self.scratch, mapper=self.mapper)

    # -- DATAFILE unit ------------------------------------------------------------------------

    def write_datafile(self, df_id: int, location: str | None) -> None:
        df = self.reader.datafiles([df_id]).get(df_id)
        if df is None:
            return  # deleted meanwhile: its DELETE job removes any archive copy
        if not self.main.exists(df.location):
            log.info("Datafile %s is not on main storage: nothing to write", df_id)
            return
        copies.write_datafile(self.main, self.archive, df.location)

    def archive_datafile(self, df_id: int, location: str | None) -> None:
        df = self.reader.datafiles([df_id]).get(df_id)
        if df is None or not self.main.exists(df.location):
            return
        if not self.archive.exists(df.location):
            log.warning("Datafile %s has no archive copy: writing it before eviction", df_id)
            copies.write_datafile(self.main, self.archive, df.location)
        self.main.delete(df.location)

    def restore_datafile(self, df_id: int, location: str | None) -> None:
        df = self.reader.datafiles([df_id]).get(df_id)
        if df is None or self.main.exists(df.location):
            return
        if not self.archive.exists(df.location):
            raise internal(f"Datafile {df_id} has no archive copy at {df.location}")
        copies.restore_datafile(self.archive, self.main, df.location)

    def delete_datafile(self, df_id: int, location: str | None) -> None:
        if df_id in self.reader.datafiles([df_id]):
            log.warning("Datafile %s is still catalogued: its archive copy is kept", df_id)
            return
        if location is not None:
            self.archive.delete(location)
