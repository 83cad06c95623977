"""The "user-defined" mode: a publication of a selection of investigations, datasets and
datafiles that a user asks for (:func:`from_request`), and the next version of a publication
(:func:`revise`). The request is JSON: every value is checked, with a message that says where
it is wrong; the caller must be able to read every object selected.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Select, select

from cairn.catalogue.work import Work
from cairn.errors import bad_parameter, no_such_object
from cairn.publishing.model import Kind
from cairn.publishing.objects import user_person, users_named
from cairn.publishing.publication import (
    TYPE_USER_DATASET,
    TYPE_USER_DEFINED,
    UNASSIGNED,
    Affiliation,
    Context,
    Dated,
    Funding,
    Person,
    Publication,
    Related,
    Subject,
    publication_date,
    unique_related,
    unique_subjects,
)
from cairn.publishing.vocabulary import CONTRIBUTOR, CREATOR, RELATION, RESOURCE, orcid_uri

_REQUEST_KEYS = ("title", "description", "creators", "subjects", "relatedItems",
                 "fundingReferences", "resourceType", "investigationIds", "datasetIds",
                 "datafileIds")
_PERSON_KEYS = ("username", "fullName", "givenName", "familyName", "orcid", "email",
                "affiliations", "contributorType")
_SUBJECT_KEYS = {"subject": "name", "subjectScheme": "scheme", "schemeUri": "scheme_uri",
                 "valueUri": "value_uri", "classificationCode": "classification_code"}
_RELATED_KEYS = {"identifier": "identifier", "relationType": "relation_type",
                 "relatedItemType": "related_item_type", "title": "title",
                 "fullReference": "full_reference"}
_FUNDING_KEYS = {"funderName": "funder_name", "awardNumber": "award_number",
                 "funderIdentifier": "funder_identifier", "awardTitle": "award_title"}
_CONTENT = (("investigationIds", "Investigation"), ("datasetIds", "Dataset"),
            ("datafileIds", "Datafile"))


def from_request(work: Work, request: Any, ctx: Context) -> Publication:
    """A user-defined publication of a selection of investigations, datasets and datafiles.

    ``request``: ``{"title", "description", "creators": [{"username"} or {"fullName", ...},
    optional "contributorType"], "subjects": [str or {"subject", ...}], "relatedItems":
    [{"identifier", "relationType", ...}], "fundingReferences": [...], "resourceType":
    "Dataset" | "Collection" (default), "investigationIds", "datasetIds", "datafileIds"}``.
    The caller must be able to read every selected object; creators named by user name are
    looked up as the system (a co-author need not be someone the caller may read).
    """
    req = _mapping(request, "The request")
    _known_keys(req, _REQUEST_KEYS, "The request")
    pub = Publication(title="", facility_id=0, publication_date=publication_date(ctx.now),
                      type_name=TYPE_USER_DEFINED, resource_type_general="Collection")
    return _apply(work, pub, {"resourceType": "Collection", **req}, ctx, everything=True)


def revise(work: Work, publication: Publication, changes: Any, ctx: Context) -> Publication:
    """The next version of a publication: ``changes`` (keys as in :func:`from_request`)
    replace what they name; the content is checked again as the caller; the publication
    date is now. A new Publication, not yet stored."""
    req = _mapping(changes, "The changes")
    _known_keys(req, _REQUEST_KEYS, "The changes")
    pub = replace(publication, id=None, doi=None, publication_date=publication_date(ctx.now),
                  dates=[d for d in publication.dates if d.date_type != "Issued"])
    return _apply(work, pub, req, ctx, everything=False)


def _apply(work: Work, pub: Publication, req: Mapping[str, Any], ctx: Context,
           everything: bool) -> Publication:
    """``pub`` with the parts ``req`` gives (all of them when ``everything``), validated."""
    if everything or "title" in req:
        title = _text(req.get("title"), "title", 255, required=True)
        assert title is not None
        pub.title = title
    if everything or "description" in req:
        pub.description = _text(req.get("description"), "description", 4000)
    if "resourceType" in req:
        pub.resource_type_general = _choice(req["resourceType"], "resourceType",
                                            {"dataset": "Dataset", "collection": "Collection"})
        if pub.kind is Kind.COLLECTION:
            pub.type_name = TYPE_USER_DEFINED if pub.resource_type_general == "Collection" \
                else TYPE_USER_DATASET
    content = {"Investigation": pub.investigation_ids, "Dataset": pub.dataset_ids,
               "Datafile": pub.datafile_ids}
    for key, entity in _CONTENT:
        if everything or key in req:
            content[entity] = _ids(req.get(key), key)
    pub.investigation_ids, pub.dataset_ids, pub.datafile_ids = content.values()
    if not any(content.values()):
        raise bad_parameter("Nothing to publish: give at least one of investigationIds, "
                            "datasetIds or datafileIds")
    facilities: set[int] = set()
    for entity, ids in content.items():
        facilities |= set(_facilities(work, entity, ids).values())
    for entity, ids in content.items():
        work.require_readable(entity, ids)
    if len(facilities) > 1:
        raise bad_parameter("A data publication belongs to one facility: the selection spans "
                            f"{len(facilities)} facilities (ids {sorted(facilities)})")
    pub.facility_id = facilities.pop()
    if everything or "creators" in req:
        pub.users = _request_people(work, req.get("creators"))
    if everything or "subjects" in req:
        pub.subjects = _request_subjects(req.get("subjects"))
    if everything or "relatedItems" in req:
        pub.related = _request_related(req.get("relatedItems"))
    if everything or "fundingReferences" in req:
        pub.funding = _request_funding(req.get("fundingReferences"))
    pub.dates = [d for d in pub.dates if d.date_type != "Issued"] \
        + [Dated("Issued", pub.publication_date.date().isoformat())]
    return pub


def _request_people(work: Work, value: Any) -> list[Person]:
    items = [_mapping(p, f"creators[{i}]") for i, p in enumerate(_list(value, "creators"))]
    names = []
    for i, p in enumerate(items):
        where = f"creators[{i}]"
        _known_keys(p, _PERSON_KEYS, where)
        name = _text(p.get("username"), f"{where}.username", 255)
        if name is None and _text(p.get("fullName"), f"{where}.fullName", 255) is None:
            raise bad_parameter(f"{where} needs a username (an ICAT user) or a fullName")
        if name is not None:
            names.append(name)
    with work.as_system():
        known = {u.values["name"]: u for u in users_named(work, names)}
    people: list[Person] = []
    seen: set[tuple[str, str]] = set()
    width = max(4, len(str(len(items))))
    for i, p in enumerate(items):
        where = f"creators[{i}]"
        ctype = _choice(p.get("contributorType", CREATOR), f"{where}.contributorType",
                        CONTRIBUTOR)
        affiliations = _request_affiliations(p.get("affiliations"), where)
        name = p.get("username")
        key = f"{i:0{width}d}"
        if name is not None:
            user = known.get(name)
            if user is None:
                raise no_such_object(f"{where}: there is no ICAT user named '{name}'")
            person = user_person(user, key, ctype, affiliations if "affiliations" in p
                                 else None)
            person.email = _text(p.get("email"), f"{where}.email", 255)
            who = name
        else:
            orcid = _text(p.get("orcid"), f"{where}.orcid", 255)
            if orcid is not None and orcid_uri(orcid) is None:
                raise bad_parameter(f"{where}.orcid '{orcid}' is not an ORCID iD "
                                    "(0000-0000-0000-0000)")
            person = Person(
                contributor_type=ctype, full_name=p["fullName"],
                given_name=_text(p.get("givenName"), f"{where}.givenName", 255),
                family_name=_text(p.get("familyName"), f"{where}.familyName", 255),
                orcid=orcid, email=_text(p.get("email"), f"{where}.email", 255),
                order_key=key, affiliations=affiliations)
            who = p["fullName"]
        if (who.casefold(), ctype) in seen:
            raise bad_parameter(f"{where}: '{who}' is named twice as {ctype}")
        seen.add((who.casefold(), ctype))
        people.append(person)
    return people


def _request_affiliations(value: Any, where: str) -> list[Affiliation]:
    out: list[Affiliation] = []
    seen: set[str] = set()
    for at, a in _objects(value, f"{where}.affiliations", ("name", "pid", "fullReference"),
                          "name"):
        name = _text(a.get("name"), f"{at}.name", 255, required=True)
        assert name is not None
        if name.casefold() in seen:
            raise bad_parameter(f"{at}: affiliation '{name}' is given twice")
        seen.add(name.casefold())
        out.append(Affiliation(name, _text(a.get("fullReference"), f"{at}.fullReference", 1023),
                               _text(a.get("pid"), f"{at}.pid", 255)))
    return out


def _request_subjects(value: Any) -> list[Subject]:
    out = []
    for where, s in _objects(value, "subjects", tuple(_SUBJECT_KEYS), "subject"):
        out.append(Subject(**_texts(s, where, _SUBJECT_KEYS, required=("name",))))
    unique = unique_subjects(out)
    if len(unique) < len(out):
        raise bad_parameter("subjects: the same subject is given twice")
    return unique


def _request_related(value: Any) -> list[Related]:
    out = []
    for where, r in _objects(value, "relatedItems", tuple(_RELATED_KEYS)):
        fields = _texts(r, where, _RELATED_KEYS, required=("identifier", "relation_type"),
                        long=("full_reference",))
        fields["relation_type"] = _choice(fields["relation_type"], f"{where}.relationType",
                                          RELATION)
        if fields["related_item_type"] is not None:
            fields["related_item_type"] = _choice(fields["related_item_type"],
                                                  f"{where}.relatedItemType", RESOURCE)
        out.append(Related(**fields))
    unique = unique_related(out)
    if len(unique) < len(out):
        raise bad_parameter("relatedItems: the same identifier is given twice")
    return unique


def _request_funding(value: Any) -> list[Funding]:
    out = []
    for where, f in _objects(value, "fundingReferences", tuple(_FUNDING_KEYS)):
        fields = _texts(f, where, _FUNDING_KEYS, required=("funder_name",))
        fields["award_number"] = fields["award_number"] or UNASSIGNED
        out.append(Funding(**fields))
    return out


def _facilities(work: Work, entity: str, ids: list[int]) -> dict[int, int]:
    """The facility of each of ``ids``; NO_SUCH_OBJECT_FOUND for the first that does not
    exist (existence is not a secret here: ids.server answers 404 as well)."""
    t = work.tables
    inv, ds, df = t["Investigation"], t["Dataset"], t["Datafile"]
    out: dict[int, int] = {}
    for batch in work.chunks(ids):
        q: Select[Any]
        if entity == "Investigation":
            q = select(inv.c.id, inv.c.facility).where(inv.c.id.in_(batch))
        elif entity == "Dataset":
            q = select(ds.c.id, inv.c.facility).join(inv, ds.c.investigation == inv.c.id) \
                .where(ds.c.id.in_(batch))
        else:
            q = select(df.c.id, inv.c.facility).join(ds, df.c.dataset == ds.c.id) \
                .join(inv, ds.c.investigation == inv.c.id).where(df.c.id.in_(batch))
        out.update((int(r[0]), int(r[1])) for r in work.conn.execute(q))
    for i in ids:
        if i not in out:
            raise no_such_object(f"{entity}[id:{i}] not found.")
    return out


# -- request values --------------------------------------------------------------------------


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise bad_parameter(f"{where} must be a JSON object, not {_json_type(value)}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad_parameter(f"{where} must be a JSON array, not {_json_type(value)}")
    return value


def _objects(value: Any, where: str, keys: Sequence[str], text_key: str | None = None
             ) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Each item of the JSON array ``value``, with where it stands: a JSON object with only
    ``keys`` (a string stands for ``{text_key: it}`` when ``text_key`` is given)."""
    for i, item in enumerate(_list(value, where)):
        at = f"{where}[{i}]"
        if text_key is not None and isinstance(item, str):
            item = {text_key: item}
        item = _mapping(item, at)
        _known_keys(item, keys, at)
        yield at, item


def _known_keys(value: Mapping[str, Any], keys: Sequence[str], where: str) -> None:
    unknown = sorted(set(value) - set(keys))
    if unknown:
        raise bad_parameter(f"{where} has unknown key(s) {', '.join(map(repr, unknown))}; "
                            f"known: {', '.join(keys)}")


def _texts(value: Mapping[str, Any], where: str, keys: Mapping[str, str],
           required: Collection[str], long: Collection[str] = ()) -> dict[str, Any]:
    """The strings of ``value`` under ``keys`` (JSON key -> field), by field: at most 255
    characters (1023 for the ``long`` fields), the ``required`` ones present."""
    return {attr: _text(value.get(key), f"{where}.{key}", 1023 if attr in long else 255,
                        required=attr in required) for key, attr in keys.items()}


def _text(value: Any, where: str, length: int, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise bad_parameter(f"{where} is missing")
        return None
    if not isinstance(value, str):
        raise bad_parameter(f"{where} must be a string, not {_json_type(value)}")
    if not value.strip():
        if required:
            raise bad_parameter(f"{where} is empty")
        return None
    if len(value) > length:
        raise bad_parameter(f"{where} is longer than {length} characters")
    return value


def _choice(value: Any, where: str, choices: Mapping[str, str]) -> str:
    if not isinstance(value, str):
        raise bad_parameter(f"{where} must be a string, not {_json_type(value)}")
    found = choices.get(value.casefold())
    if found is None:
        shown = ", ".join(sorted(choices.values()))
        raise bad_parameter(f"{where} '{value}' is not one of {shown}")
    return found


def _ids(value: Any, where: str) -> list[int]:
    ids = _list(value, where)
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, int) or i <= 0:
            raise bad_parameter(f"{where} must hold ids (positive integers), not {i!r}")
    return sorted(set(ids))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, Mapping) else type(value).__name__
