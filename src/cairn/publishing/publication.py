"""A publication as plain data: a :class:`Publication` is a DataPublication in memory, with its
people, dates, subjects, related items, funding and content. :func:`dump` and :func:`undump`
keep one as JSON until it is stored.

It is made from an investigation (:mod:`~cairn.publishing.investigation`) or from a user's
request (:mod:`~cairn.publishing.request`), read from and written to the catalogue
(:mod:`~cairn.publishing.data_publication`), and mapped onto DataCite
(:mod:`~cairn.publishing.metadata`); :class:`Context` is what they need beyond the catalogue.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from cairn.publishing.model import Kind
from cairn.publishing.vocabulary import CREATOR

#: DataPublicationType names Cairn creates.
TYPE_INVESTIGATION = "Investigation"
TYPE_USER_DEFINED = "User-defined"
TYPE_USER_DATASET = "User-defined dataset"
#: DataCite's code for "value unassigned": ICAT's FundingReference.awardNumber is NOT NULL.
UNASSIGNED = ":unas"
#: User.name prefix of the rows created for authors who have no ICAT user.
EXTERNAL_USER = "doi-author:"

_T = TypeVar("_T")


@dataclass(kw_only=True)
class Context:
    """What making a publication and its metadata needs beyond the catalogue: the
    [publishing] settings and the clock."""

    #: "" -> the Facility's fullName, else its name.
    publisher: str
    #: e.g. a ROR URL (DataCite 4.5 publisherIdentifier).
    publisher_identifier: str = ""
    #: An SPDX licence id ("CC-BY-4.0"); "" -> no rightsList.
    rights: str = ""
    #: InvestigationUser.role values of principal investigators (case-insensitive).
    pi_roles: tuple[str, ...] = ("PI", "principal_experimenter")
    #: Aware: the publication date of a new publication.
    now: datetime


@dataclass
class Affiliation:
    name: str
    full_reference: str | None = None
    #: ROR or ISNI.
    pid: str | None = None


@dataclass
class Person:
    """A creator or contributor (DataPublicationUser)."""

    #: "Creator" or a DataCite contributorType.
    contributor_type: str = CREATOR
    full_name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    orcid: str | None = None
    email: str | None = None
    order_key: str | None = None
    #: The ICAT User.name, None for a person without an ICAT user.
    user_name: str | None = None
    affiliations: list[Affiliation] = field(default_factory=list)


@dataclass
class Dated:
    """A DataPublicationDate: a DataCite dateType and an ISO 8601 date or range."""

    date_type: str
    date: str


@dataclass
class Subject:
    name: str
    pid: str | None = None
    value_uri: str | None = None
    scheme: str | None = None
    scheme_uri: str | None = None
    classification_code: str | None = None


@dataclass
class Related:
    """An ICAT RelatedItem: a DataCite relatedIdentifier when ``identifier`` is a PID, else a
    relatedItem known by its title."""

    identifier: str
    relation_type: str
    #: A DataCite resourceTypeGeneral.
    related_item_type: str | None = None
    title: str | None = None
    full_reference: str | None = None


@dataclass
class Funding:
    funder_name: str
    award_number: str = UNASSIGNED
    funder_identifier: str | None = None
    award_title: str | None = None


@dataclass
class Publication:
    """A DataPublication as plain data, in memory or read back."""

    title: str
    facility_id: int
    #: Aware UTC, whole seconds (as every backend stores it).
    publication_date: datetime
    description: str | None = None
    #: DataPublicationType.name.
    type_name: str = TYPE_INVESTIGATION
    #: DataCite resourceTypeGeneral (Dataset or Collection).
    resource_type_general: str = "Dataset"
    internal_id: str | None = None
    users: list[Person] = field(default_factory=list)
    dates: list[Dated] = field(default_factory=list)
    subjects: list[Subject] = field(default_factory=list)
    related: list[Related] = field(default_factory=list)
    funding: list[Funding] = field(default_factory=list)
    #: The content (DataCollection members), ascending.
    investigation_ids: list[int] = field(default_factory=list)
    dataset_ids: list[int] = field(default_factory=list)
    datafile_ids: list[int] = field(default_factory=list)
    #: The DataPublication's id once stored, and its pid.
    id: int | None = None
    doi: str | None = None

    @property
    def kind(self) -> Kind:
        return Kind.INVESTIGATION if self.type_name.casefold() == "investigation" \
            else Kind.COLLECTION


def publication_date(now: datetime) -> datetime:
    """The publication date of a publication made ``now``: aware UTC in whole seconds (MariaDB
    keeps no more, so a publication read back is the same)."""
    return now.astimezone(UTC).replace(microsecond=0)


def unique_subjects(subjects: list[Subject]) -> list[Subject]:
    """One subject per name (Subject's key; MariaDB compares names without case)."""
    return _first_each(subjects, lambda s: s.name)


def unique_related(related: list[Related]) -> list[Related]:
    """One related item per identifier (RelatedItem's key)."""
    return _first_each(related, lambda r: r.identifier)


def _first_each(items: list[_T], key: Callable[[_T], str]) -> list[_T]:
    """The first of the items with each key, compared without case."""
    seen: set[str] = set()
    out = []
    for item in items:
        if key(item).casefold() not in seen:
            seen.add(key(item).casefold())
            out.append(item)
    return out


def dump(publication: Publication) -> dict[str, Any]:
    """A publication as JSON values (kept until its DataPublication is written)."""
    out = asdict(publication)
    out["publication_date"] = publication.publication_date.isoformat()
    return out


def undump(data: Mapping[str, Any]) -> Publication:
    """The publication :func:`dump` gave."""
    d = dict(data)
    d["publication_date"] = datetime.fromisoformat(d["publication_date"])
    d["users"] = [Person(**{**u, "affiliations": [Affiliation(**a) for a in u["affiliations"]]})
                  for u in d["users"]]
    d["dates"] = [Dated(**x) for x in d["dates"]]
    d["subjects"] = [Subject(**x) for x in d["subjects"]]
    d["related"] = [Related(**x) for x in d["related"]]
    d["funding"] = [Funding(**x) for x in d["funding"]]
    return Publication(**d)
