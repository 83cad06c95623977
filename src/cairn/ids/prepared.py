"""preparedIds: frozen snapshots of a resolved selection, kept in the catalogue database.

``prepareData`` checks the caller's permissions once, freezes the datasets and located
datafiles (names, locations, sizes, checksums) and returns a random UUID. The id is a bearer
token: ``getData``, ``isPrepared``, ``getStatus``, ``getSize``, ``getDatafileIds`` and ``reset``
accept it without a session, as ids.server does.

ids.server keeps them as files in ``cache.dir/prepared`` and deletes the oldest beyond
``preparedCount``, after which the id is "not known" (404, which TopCAT retries forever).
Cairn keeps them in ``CAIRN_IDS_PREPARED`` (every process sees them, a restart loses none) and
expires them by age: an id older than ``prepared_lifetime_hours`` is answered 410 "expired";
rows are deleted once twice that old, after which the id is unknown (404).

The snapshot is compact JSON (a row per datafile), zlib-compressed and base64-encoded when
large; the column is LONGTEXT on MariaDB (4 GB), TEXT elsewhere.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, select
from sqlalchemy import exc as sa_exc

from cairn.db.engine import Database
from cairn.errors import bad_parameter, internal, no_such_object
from cairn.ids.errors import gone
from cairn.ids.mapper import DfInfo, DsInfo
from cairn.ids.selection import ResolvedSelection

_UUID = re.compile(r"[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}")
_FORMAT = 1
#: Snapshots longer than this are stored compressed.
_COMPRESS_ABOVE = 4096
_ZPREFIX = "z:"


def check_uuid(thing: str, value: str | None) -> str:
    """ids.server's ``validateUUID``: lowercase UUIDs only, else BAD_PARAMETER."""
    if value is None or not _UUID.fullmatch(value):
        shown = value if value is None or len(value) <= 100 else value[:100] + "..."
        raise bad_parameter(f"The {thing} parameter '{shown}' is not a valid UUID")
    return value


@dataclass(frozen=True)
class PreparedData:
    id: str
    user: str
    created: datetime
    zip: bool
    compress: bool
    resolved: ResolvedSelection


def encode(resolved: ResolvedSelection) -> str:
    """The snapshot as text (see the module doc)."""
    doc = {
        "format": _FORMAT,
        "ds": [[d.id, d.name, d.investigation_id, d.investigation_name, d.visit_id,
                d.facility_id, d.facility_name, d.location] for d in resolved.datasets.values()],
        "df": [[f.id, f.name, f.location, f.dataset_id, f.size, f.checksum,
                f.mod_time.isoformat() if f.mod_time else None, f.version, f.create_id,
                f.mod_id] for f in resolved.datafiles],
        "empty": sorted(resolved.empty_datasets),
    }
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    if len(text) <= _COMPRESS_ABOVE:
        return text
    packed = zlib.compress(text.encode("utf-8"), 9)
    return _ZPREFIX + base64.b64encode(packed).decode("ascii")


def decode(text: str) -> ResolvedSelection:
    if text.startswith(_ZPREFIX):
        text = zlib.decompress(base64.b64decode(text[len(_ZPREFIX):])).decode("utf-8")
    doc: dict[str, Any] = json.loads(text)
    if doc.get("format") != _FORMAT:
        raise internal(f"Prepared data of unknown format {doc.get('format')!r}")
    datasets = {d[0]: DsInfo(id=d[0], name=d[1], investigation_id=d[2],
                             investigation_name=d[3], visit_id=d[4], facility_id=d[5],
                             facility_name=d[6], location=d[7]) for d in doc["ds"]}
    datafiles = [DfInfo(id=f[0], name=f[1], location=f[2], dataset_id=f[3], size=f[4],
                        checksum=f[5], mod_time=datetime.fromisoformat(f[6]) if f[6] else None,
                        version=f[7], create_id=f[8], mod_id=f[9]) for f in doc["df"]]
    return ResolvedSelection(datasets, datafiles, set(doc["empty"]))


class PreparedStore:
    def __init__(self, db: Database, lifetime_seconds: float) -> None:
        self.db = db
        self.lifetime = timedelta(seconds=lifetime_seconds)
        self.table = db.tables.ids_prepared

    def save(self, conn: Connection, user: str, zip: bool, compress: bool,
             resolved: ResolvedSelection) -> str:
        """Store a snapshot in the caller's transaction; its new preparedId."""
        pid = str(uuid.uuid4())
        try:
            conn.execute(self.table.insert().values(
                id=pid, user=user, created=self.db.now(), zip=zip, compress=compress,
                content=encode(resolved)))
        except sa_exc.DataError:
            # A database whose column is narrower than Cairn's (e.g. a 64 KB TEXT): say so
            # rather than "Internal error".
            raise bad_parameter(
                f"The selection ({len(resolved.datafiles)} datafiles) is too large to be "
                "prepared on this database; prepare it in parts or download it directly "
                "with getData") from None
        return pid

    def load(self, prepared_id: str | None) -> PreparedData:
        pid = check_uuid("preparedId", prepared_id)
        with self.db.connect() as conn:
            row = conn.execute(select(self.table).where(self.table.c.id == pid)).first()
        if row is None:
            raise no_such_object(f"The preparedId {pid} is not known")
        created = row.created
        expires = created + self.lifetime
        if self.db.now() >= expires:
            hours = self.lifetime.total_seconds() / 3600
            raise gone(f"The preparedId {pid} expired at {expires:%Y-%m-%d %H:%M:%S} "
                       f"(prepared data are kept for {hours:g} hours); prepare the data again")
        return PreparedData(id=pid, user=row.user, created=self.db.from_db(created),
                        zip=bool(row.zip), compress=bool(row.compress),
                        resolved=decode(row.content))

    def purge(self) -> int:
        """Delete snapshots twice as old as the lifetime; until then they answer "expired"."""
        cutoff = self.db.now() - 2 * self.lifetime
        with self.db.begin() as conn:
            return int(conn.execute(delete(self.table).where(self.table.c.created < cutoff))
                       .rowcount or 0)
