"""Dataset/datafile descriptors and the zip entry layout (ids.plugin's ZipMapper).

The default layout, as ids.storage_file's ZipMapper:
``ids/<Facility.name>/<Investigation.name>/<Investigation.visitId>/<Dataset.name>/<Datafile.name>``
with the first four form-URL-encoded as Java's ``URLEncoder`` does (UTF-8; ``a-zA-Z0-9.-*_``
kept, space → ``+``, everything else ``%XX``) and the datafile name verbatim (it may contain
``/``). The inverse, used to restore dataset archives, is everything after the fifth ``/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class DsInfo:
    """What the data service needs to know about a dataset (ids.plugin's DsInfo)."""

    id: int
    name: str
    investigation_id: int
    investigation_name: str
    visit_id: str
    facility_id: int
    facility_name: str
    location: str | None = None


@dataclass(frozen=True)
class DfInfo:
    """What the data service needs to know about a datafile (ids.plugin's DfInfo plus the
    catalogue's size and checksum, which let a STORED zip be laid out without reading)."""

    id: int
    name: str
    #: Location in storage, hash already stripped (see ``locations.strip_digest``).
    location: str
    dataset_id: int
    #: ``Datafile.fileSize``; None = unknown (then storage is asked).
    size: int | None = None
    #: ``Datafile.checksum``: CRC32 hex when ids.server (or Cairn) stored the file.
    checksum: str | None = None
    #: ``Datafile.datafileModTime``: becomes the entry time in zips when given.
    mod_time: datetime | None = None
    #: Opaque version of the catalogue row (e.g. its modTime): part of the ETag.
    version: str = ""
    create_id: str = ""
    mod_id: str = ""


class ZipMapper(Protocol):
    """Maps datafiles to zip entry names and back (for dataset archives)."""

    def entry_name(self, ds: DsInfo, df: DfInfo) -> str: ...

    def datafile_name(self, entry_name: str) -> str: ...


_KEEP = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-*_")


def java_url_encode(text: str) -> str:
    """``java.net.URLEncoder.encode(text, "UTF-8")`` (not the same as ``quote_plus``:
    Java keeps ``*`` and encodes ``~``)."""
    out = []
    for byte in text.encode("utf-8", errors="replace"):
        if byte in _KEEP:
            out.append(chr(byte))
        elif byte == 0x20:
            out.append("+")
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


class DefaultZipMapper:
    """ids.storage_file's ``org.icatproject.ids.storage.ZipMapper``."""

    def entry_name(self, ds: DsInfo, df: DfInfo) -> str:
        parts = (ds.facility_name, ds.investigation_name, ds.visit_id, ds.name)
        return "ids/" + "/".join(java_url_encode(p) for p in parts) + "/" + df.name

    def datafile_name(self, entry_name: str) -> str:
        parts = entry_name.split("/", 5)
        if len(parts) < 6:
            raise ValueError(f"Zip entry {entry_name!r} is not of the form ids/F/I/V/D/name")
        return parts[5]
