"""What the parts of publishing hand each other: what a DOI names, its state, the metadata
built for it and what its landing page shows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    """What a DOI names."""

    #: A whole investigation (a visit), minted in one call or when its data are released.
    INVESTIGATION = "investigation"
    #: A user-defined selection of investigations, datasets and datafiles (a DataCollection).
    COLLECTION = "collection"
    #: An instrument, as PIDINST describes it (resourceTypeGeneral Instrument).
    INSTRUMENT = "instrument"
    #: The concept DOI of a publication with versions: it always names the latest.
    CONCEPT = "concept"


class State(StrEnum):
    """A DOI's state: DataCite's three, and ``pending`` until DataCite has the DOI."""

    PENDING = "pending"
    DRAFT = "draft"
    REGISTERED = "registered"
    FINDABLE = "findable"


@dataclass
class Files:
    """What the data of a DOI hold (DataCite sizes and formats; the landing page's summary)."""

    datafiles: int = 0
    datasets: int = 0
    investigations: int = 0
    #: Bytes.
    size: int = 0
    #: DatafileFormat names (with versions), most used first.
    formats: list[str] = field(default_factory=list)


@dataclass
class Metadata:
    """A DOI's DataCite metadata as built from the catalogue.

    ``attributes`` are DataCite REST API attributes (camelCase, schema 4.5: ``creators``,
    ``titles``, ``publisher``, ``publicationYear``, ``types``, ``subjects``, ``contributors``,
    ``dates``, ``relatedIdentifiers``, ``sizes``, ``formats``, ``version``, ``rightsList``,
    ``descriptions``, ``fundingReferences``, ``alternateIdentifiers``, ...), without ``doi``,
    ``url`` and ``event``, which the service adds.
    """

    kind: Kind
    attributes: dict[str, Any]
    files: Files | None = None
    #: When the data become public (Investigation.releaseDate); until then the landing page
    #: shows metadata only.
    release: datetime | None = None
    #: An instrument's decommissioning (Instrument.endDate).
    decommissioned: datetime | None = None
    #: What the landing page offers to download: entity name -> ids
    #: (``{"Investigation": [7]}``, ``{"Dataset": [3, 4], "Datafile": [9]}``).
    data: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class Version:
    doi: str
    version: int
    state: State


@dataclass
class Landing:
    """Everything a landing page shows for one DOI (an instrument's PID included)."""

    doi: str
    kind: Kind
    state: State
    metadata: Metadata
    #: The page's own address (landing_url + DOI).
    url: str
    #: Withdrawn: when, why, and what replaced it (a DOI or a URL), for the tombstone.
    withdrawn: datetime | None = None
    reason: str | None = None
    replaced_by: str | None = None
    #: The versions of its publication, newest first; the concept DOI naming them all.
    versions: list[Version] = field(default_factory=list)
    concept: str | None = None
    #: Base URL of the data service, for the "how to download" section.
    data_service_url: str = ""
    #: The moment the page is drawn (embargo and decommissioning are judged against it).
    now: datetime | None = None

    @property
    def tombstone(self) -> bool:
        """A withdrawn DOI, or an instrument decommissioned (its endDate has passed)."""
        if self.withdrawn is not None:
            return True
        d = self.metadata.decommissioned
        return d is not None and self.now is not None and d <= self.now

    @property
    def embargoed(self) -> bool:
        r = self.metadata.release
        return r is not None and self.now is not None and r > self.now
