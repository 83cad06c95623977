"""Datafile locations: names for new uploads, validation, and the optional location hash.

A location is a relative, ``/``-separated name inside a storage (a path under the main folder,
a key under the bucket prefix). New uploads get ``<investigation id>/<dataset id>/<random
UUID>`` as ids.storage_file names them: the Datafile.name never reaches the file system, so
user-chosen names cannot collide or escape. Locations written by others (external ingest,
an existing ids.server) are accepted if they pass :func:`check_location`.

With a ``key`` configured, ids.server stores ``Datafile.location`` as ``<location> <H>`` where
H is the uppercase hex SHA-256 of ``<datafile id><location><key>`` (icat.utils
``IcatSecurity.digest``). On every read the text is split at its last space and H verified;
missing or wrong → 403 (INSUFFICIENT_PRIVILEGES). Storage only ever sees the bare location.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid

from cairn.errors import bad_parameter, insufficient_privileges
from cairn.ids.scratch import SCRATCH

#: Longest location accepted (ICAT's Datafile.location column is VARCHAR(255)).
MAX_LOCATION_LENGTH = 255


def dataset_folder(investigation_id: int, dataset_id: int) -> str:
    """The folder holding a dataset's uploads on main storage; also the dataset's archive key."""
    return f"{investigation_id}/{dataset_id}"


def new_location(investigation_id: int, dataset_id: int) -> str:
    """Location for a new upload, as ids.storage_file chooses it."""
    return f"{dataset_folder(investigation_id, dataset_id)}/{uuid.uuid4()}"


def check_location(location: object) -> str:
    """``location`` if it is a safe relative name, else BAD_PARAMETER.

    Refused: empty, too long, absolute (``/x``), ``.``/``..``/empty components (``a//b``,
    ``a/``), backslashes (a Windows separator on some systems), NUL and other control
    characters, and anything in the reserved ``.cairn-tmp`` folder. This is what keeps a
    location from ever naming a file outside its storage, or another process's temporary one.
    """
    if not isinstance(location, str) or not location:
        raise bad_parameter("Illegal location: empty")
    if len(location) > MAX_LOCATION_LENGTH:
        raise bad_parameter(f"Illegal location: longer than {MAX_LOCATION_LENGTH} characters")
    if any(ord(c) < 0x20 or c == "\x7f" for c in location):
        raise bad_parameter("Illegal location: contains a control character")
    if "\\" in location:
        raise bad_parameter(f"Illegal location {location!r}: contains a backslash")
    if location.startswith("/"):
        raise bad_parameter(f"Illegal location {location!r}: absolute path")
    parts = location.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise bad_parameter(f"Illegal location {location!r}: bad path component {part!r}")
    if parts[0] == SCRATCH:  # unfinished work of running processes (cairn.ids.scratch)
        raise bad_parameter(f"Illegal location {location!r}: {SCRATCH} is reserved")
    return location


def location_digest(datafile_id: int, location: str, key: str) -> str:
    """icat.utils ``IcatSecurity.digest``: uppercase hex SHA-256 of id + location + key."""
    text = f"{datafile_id}{location}{key}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest().upper()


def add_digest(datafile_id: int, location: str, key: str | None) -> str:
    """The catalogue form of a location: with its hash when a key is configured."""
    if key is None:
        return location
    return f"{location} {location_digest(datafile_id, location, key)}"


def strip_digest(datafile_id: int, stored: str | None, key: str | None) -> str:
    """The bare location of a catalogue ``Datafile.location``, verifying its hash.

    Without a key the stored text is the location. With one, as ids.server: split at the last
    space; no space → "does not contain hash", wrong hash → "does not contain a valid hash"
    (both INSUFFICIENT_PRIVILEGES).
    """
    if stored is None:
        raise insufficient_privileges("location null")
    if key is None:
        return stored
    i = stored.rfind(" ")
    if i < 0:
        raise insufficient_privileges(f'Location "{stored}" does not contain hash.')
    location, digest = stored[:i], stored[i + 1:]
    # Constant-time comparison: the digest guards locations against forgery.
    expected = location_digest(datafile_id, location, key)
    if not hmac.compare_digest(digest.encode("utf-8"), expected.encode("ascii")):
        raise insufficient_privileges(f'Location "{stored}" does not contain a valid hash.')
    return location
