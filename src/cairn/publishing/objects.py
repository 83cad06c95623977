"""Catalogue objects as publishing reads them: a User as a :class:`Person`, a FundingReference
as :class:`Funding`, users looked up by name, linked objects in id order, and stored
timestamps as the catalogue's calendar days or as UTC.

Days are the catalogue's calendar days: its naive timestamps are wall-clock time in
``work.db.zone``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from cairn.catalogue.objects import Obj
from cairn.catalogue.work import Work
from cairn.publishing.publication import Affiliation, Funding, Person
from cairn.publishing.vocabulary import CREATOR


def user_person(u: Obj, order_key: str, contributor_type: str = CREATOR,
                affiliations: list[Affiliation] | None = None) -> Person:
    """A User as a person; the User's affiliation unless ``affiliations`` are given."""
    v = u.values
    if affiliations is None:
        affiliations = [Affiliation(v["affiliation"])] if v.get("affiliation") else []
    return Person(contributor_type=contributor_type, full_name=v.get("fullName"),
                  given_name=v.get("givenName"), family_name=v.get("familyName"),
                  orcid=v.get("orcidId"), order_key=order_key, user_name=v["name"],
                  affiliations=affiliations)


def person_key(u: Obj) -> tuple[str, str, str]:
    """The sort key of a user: family (else full) name, given name, user name."""
    v = u.values
    return ((v.get("familyName") or v.get("fullName") or v["name"]).casefold(),
            (v.get("givenName") or "").casefold(), v["name"])


def funding_of(f: Obj) -> Funding:
    """The funding a FundingReference names."""
    v = f.values
    return Funding(v["funderName"], v["awardNumber"], v.get("funderIdentifier"),
                   v.get("awardTitle"))


def users_named(work: Work, names: Iterable[str]) -> list[Obj]:
    wanted = sorted(set(names))
    out: list[Obj] = []
    for i in range(0, len(wanted), 100):
        out += work.search("SELECT u FROM User u WHERE u.name IN ("
                           + ", ".join(map(literal, wanted[i:i + 100])) + ")")
    return out


def literal(text: str) -> str:
    """An ICAT query string literal (a quote is doubled)."""
    return "'" + text.replace("'", "''") + "'"


def ref(o: Obj, name: str) -> int:
    """The id ``o`` refers to by ``name`` (read with it or not)."""
    one = o.ones.get(name)
    value = one.id if one is not None else o.refs.get(name)
    assert value is not None, f"{o!r} has no {name}"
    return int(value)


def linked(links: Iterable[Obj], name: str) -> list[Obj]:
    """The objects ``links`` (in id order) refer to by ``name``, those that were read."""
    return [o for link in by_id(links) if (o := link.ones.get(name)) is not None]


def by_id(objs: Iterable[Obj]) -> list[Obj]:
    return sorted(objs, key=lambda o: o.id or 0)


def day(work: Work, value: datetime) -> str:
    """A stored timestamp's calendar day in the catalogue's zone."""
    return work.db.from_db(value).date().isoformat()


def utc(work: Work, value: datetime) -> datetime:
    return work.db.from_db(value).astimezone(UTC)
