"""A publication as ICAT's DataPublication rows: :func:`load` reads one back (as stored, and
perhaps edited since by facility staff), :func:`store` writes one once its DOI exists, with its
DataCollection, type, users, dates, subjects, related items and funding, and :func:`remove`
undoes that.

Where ICAT leaves a choice:

- DataPublicationUser.user is NOT NULL, so a person without an ICAT user (a co-author named by
  full name) is linked to the User with the same ORCID iD if there is one, else to a User row
  created for them and named ``doi-author:<doi>:<n>``; :func:`load` reads such a name as "no
  ICAT user".
- ICAT does not store a publication's resourceTypeGeneral. It is read from its
  DataPublicationType: the words "resourceTypeGeneral X" in the type's description (the types
  Cairn creates say so), else the known names (Investigation, User-defined), else the name
  itself when it is one of DataCite's, else Dataset.
"""

from __future__ import annotations

import re

from cairn.catalogue.objects import Obj
from cairn.catalogue.work import Work
from cairn.errors import no_such_object
from cairn.publishing.objects import by_id, funding_of, linked, literal, ref, users_named, utc
from cairn.publishing.publication import (
    EXTERNAL_USER,
    TYPE_INVESTIGATION,
    TYPE_USER_DATASET,
    TYPE_USER_DEFINED,
    Affiliation,
    Dated,
    Funding,
    Person,
    Publication,
    Related,
    Subject,
    unique_subjects,
)
from cairn.publishing.vocabulary import ORCID, RESOURCE, orcid_id
from cairn.schema import SCHEMA

E = SCHEMA.entities

#: DataPublicationType names Cairn creates: resourceTypeGeneral and the type's description.
_TYPES = {
    TYPE_INVESTIGATION: ("Dataset", "All the data of one investigation"),
    TYPE_USER_DEFINED: ("Collection", "Investigations, datasets and datafiles chosen by "
                                      "their authors"),
    TYPE_USER_DATASET: ("Dataset", "Datasets and datafiles chosen by their authors, "
                                   "published as one dataset"),
}
_TYPE_GENERAL = re.compile(r"resourceTypeGeneral\s+(\w+)")

_PUBLICATION = ("DataPublication p INCLUDE p.type, p.content AS c, "
                "c.dataCollectionInvestigations, c.dataCollectionDatasets, "
                "c.dataCollectionDatafiles, p.users AS u, u.user, u.affiliations, p.dates, "
                "p.subjects, p.relatedItems, p.fundingReferences AS f, f.funding")


def load(work: Work, data_publication_id: int) -> Publication:
    """A DataPublication as stored (and perhaps edited since by facility staff)."""
    p: Obj = work.get(_PUBLICATION, data_publication_id)
    v = p.values
    kind = p.ones.get("type")
    type_name = kind.values["name"] if kind is not None else ""
    content = p.ones.get("content")
    members = content.manys if content is not None else {}

    def ids(many: str, target: str) -> list[int]:
        return sorted({r for m in members.get(many, []) if (r := m.refs.get(target)) is not None})

    users = sorted(p.manys["users"], key=lambda u: (u.values.get("orderKey") is None,
                                                     u.values.get("orderKey") or "", u.id))
    subjects = [Subject(s.values["name"], s.values.get("pid"), s.values.get("valueURI"),
                        s.values.get("subjectScheme"), s.values.get("schemeURI"),
                        s.values.get("classificationCode")) for s in by_id(p.manys["subjects"])]
    if not subjects and v.get("subject"):  # a legacy publication: keywords in one string
        subjects = unique_subjects([Subject(w.strip())
                                    for w in re.split(r"[,;]", v["subject"]) if w.strip()])
    published = v.get("publicationDate")
    return Publication(
        title=v["title"], description=v.get("description"), facility_id=ref(p, "facility"),
        publication_date=utc(work, published) if published is not None
        else utc(work, v["createTime"]),
        type_name=type_name,
        resource_type_general=_general(type_name,
                                       kind.values.get("description") if kind else None),
        internal_id=v.get("internalId"),
        users=[_stored_person(u) for u in users],
        dates=[Dated(d.values["dateType"], d.values["date"]) for d in by_id(p.manys["dates"])],
        subjects=subjects,
        related=[Related(r.values["identifier"], r.values["relationType"],
                         r.values.get("relatedItemType"), r.values.get("title"),
                         r.values.get("fullReference")) for r in by_id(p.manys["relatedItems"])],
        funding=[funding_of(f) for f in linked(p.manys["fundingReferences"], "funding")],
        investigation_ids=ids("dataCollectionInvestigations", "investigation"),
        dataset_ids=ids("dataCollectionDatasets", "dataset"),
        datafile_ids=ids("dataCollectionDatafiles", "datafile"),
        id=p.id, doi=v["pid"])


def _stored_person(u: Obj) -> Person:
    v = u.values
    user = u.ones.get("user")
    name = user.values["name"] if user is not None else None
    return Person(
        contributor_type=v["contributorType"], full_name=v.get("fullName"),
        given_name=v.get("givenName"), family_name=v.get("familyName"),
        orcid=user.values.get("orcidId") if user is not None else None, email=v.get("email"),
        order_key=v.get("orderKey"),
        user_name=None if name is None or name.startswith(EXTERNAL_USER) else name,
        affiliations=[Affiliation(a.values["name"], a.values.get("fullReference"),
                                  a.values.get("pid")) for a in by_id(u.manys["affiliations"])])


def _general(type_name: str, description: str | None) -> str:
    m = _TYPE_GENERAL.search(description or "")
    if m and m.group(1).casefold() in RESOURCE:
        return RESOURCE[m.group(1).casefold()]
    for name, (general, _) in _TYPES.items():
        if name.casefold() == type_name.casefold():
            return general
    return RESOURCE.get(type_name.casefold(), "Dataset")


def store(work: Work, publication: Publication, doi: str) -> int:
    """Write ``publication`` as a DataPublication with ``pid = doi`` (with its DataCollection,
    type, users, dates, subjects, related items and funding); its id."""
    pub = publication
    fac = Obj(E["Facility"], id=pub.facility_id)
    content = Obj(E["DataCollection"], values={"doi": doi}, manys={
        "dataCollectionInvestigations": _members("DataCollectionInvestigation", "investigation",
                                                 "Investigation", pub.investigation_ids),
        "dataCollectionDatasets": _members("DataCollectionDataset", "dataset", "Dataset",
                                           pub.dataset_ids),
        "dataCollectionDatafiles": _members("DataCollectionDatafile", "datafile", "Datafile",
                                            pub.datafile_ids)})
    content_id = work.create(content)
    user_ids = _user_ids(work, pub.users, doi)
    fundings = _funding_ids(work, pub.funding)
    row = Obj(E["DataPublication"], values={
        "pid": doi, "title": pub.title, "description": pub.description,
        "publicationDate": pub.publication_date, "internalId": pub.internal_id,
    }, ones={
        "facility": fac, "content": Obj(E["DataCollection"], id=content_id),
        "type": Obj(E["DataPublicationType"], id=_type_id(work, pub)),
    }, manys={
        "users": [Obj(E["DataPublicationUser"], values={
            "contributorType": p.contributor_type, "fullName": p.full_name,
            "givenName": p.given_name, "familyName": p.family_name, "email": p.email,
            "orderKey": p.order_key,
        }, ones={"user": Obj(E["User"], id=uid)}, manys={"affiliations": [
            Obj(E["Affiliation"], values={"name": a.name, "fullReference": a.full_reference,
                                          "pid": a.pid}) for a in p.affiliations]})
            for p, uid in zip(pub.users, user_ids, strict=True)],
        "dates": [Obj(E["DataPublicationDate"], values={"dateType": d.date_type, "date": d.date})
                  for d in pub.dates],
        "subjects": [Obj(E["Subject"], values={
            "name": s.name, "pid": s.pid, "valueURI": s.value_uri, "subjectScheme": s.scheme,
            "schemeURI": s.scheme_uri, "classificationCode": s.classification_code})
            for s in pub.subjects],
        "relatedItems": [Obj(E["RelatedItem"], values={
            "identifier": r.identifier, "relationType": r.relation_type,
            "relatedItemType": r.related_item_type, "title": r.title,
            "fullReference": r.full_reference}) for r in pub.related],
        "fundingReferences": [Obj(E["DataPublicationFunding"],
                                  ones={"funding": Obj(E["FundingReference"], id=f)})
                              for f in fundings],
    })
    return work.create(row)


def remove(work: Work, data_publication_id: int) -> None:
    """Delete a DataPublication written by :func:`store` (a draft DataCite deleted): its
    DataCollection unless another publication uses it, and the users made for its authors
    who have no other publication."""
    p: Obj = work.get("DataPublication p INCLUDE p.users AS u, u.user", data_publication_id)
    content = ref(p, "content")
    made = [u.id for pu in p.manys["users"] if (u := pu.ones.get("user")) is not None
            and u.id is not None and u.values["name"].startswith(EXTERNAL_USER)]
    work.delete([(E["DataPublication"], data_publication_id)])
    targets = []
    if not work.search(f"SELECT p.id FROM DataPublication p WHERE p.content.id = {content}"):
        targets.append((E["DataCollection"], content))
    if made:
        still = {int(i) for i in work.search(
            "SELECT DISTINCT pu.user.id FROM DataPublicationUser pu WHERE pu.user.id IN ("
            + ", ".join(str(int(i)) for i in made) + ")")}
        targets += [(E["User"], int(i)) for i in made if int(i) not in still]
    if targets:
        work.delete(targets)


def _members(entity: str, field_name: str, target: str, ids: list[int]) -> list[Obj]:
    return [Obj(E[entity], ones={field_name: Obj(E[target], id=i)}) for i in ids]


def _type_id(work: Work, pub: Publication) -> int:
    found = work.search(f"SELECT t FROM DataPublicationType t WHERE t.facility.id = "
                        f"{int(pub.facility_id)} AND t.name = {literal(pub.type_name)}")
    if found:
        return int(found[0].id)
    known = _TYPES.get(pub.type_name)
    words = known[1] if known else pub.type_name
    return work.create(Obj(E["DataPublicationType"], values={
        "name": pub.type_name,
        "description": f"{words} (DataCite resourceTypeGeneral {pub.resource_type_general})"},
        ones={"facility": Obj(E["Facility"], id=pub.facility_id)}))


def _user_ids(work: Work, people: list[Person], doi: str) -> list[int]:
    """The ICAT User of each person: by user name, else by ORCID iD, else a User row made
    for an author without one (DataPublicationUser.user is NOT NULL)."""
    named = {u.values["name"]: _id(u) for u in
             users_named(work, [p.user_name for p in people if p.user_name])}
    orcids = {orcid_id(p.orcid) for p in people if not p.user_name and p.orcid}
    by_orcid: dict[str, int] = {}
    if orcids - {None}:
        spellings = {s for o in orcids if o for s in (o, ORCID + o)}
        users = work.search("SELECT u FROM User u WHERE u.orcidId IN ("
                            + ", ".join(map(literal, sorted(spellings))) + ") ORDER BY u.id")
        for u in users:
            o = orcid_id(u.values["orcidId"])
            if o is not None:
                by_orcid.setdefault(o, int(u.id))
    out = []
    for n, p in enumerate(people, 1):
        if p.user_name:
            if p.user_name not in named:
                raise no_such_object(f"There is no ICAT user named '{p.user_name}'")
            out.append(named[p.user_name])
            continue
        o = orcid_id(p.orcid) if p.orcid else None
        if o is not None and o in by_orcid:
            out.append(by_orcid[o])
            continue
        uid = work.create(Obj(E["User"], values={
            "name": f"{EXTERNAL_USER}{doi}:{n}", "fullName": p.full_name,
            "givenName": p.given_name, "familyName": p.family_name, "orcidId": p.orcid,
            "affiliation": p.affiliations[0].name if p.affiliations else None}))
        if o is not None:
            by_orcid[o] = uid
        out.append(uid)
    return out


def _funding_ids(work: Work, funding: list[Funding]) -> list[int]:
    """FundingReference ids, reusing a row with the same funder and award (its key)."""
    if not funding:
        return []
    conds = " OR ".join(f"(f.funderName = {literal(f.funder_name)} AND "
                        f"f.awardNumber = {literal(f.award_number)})" for f in funding)
    existing = {(r.values["funderName"].casefold(), r.values["awardNumber"].casefold()): int(r.id)
                for r in work.search(f"SELECT f FROM FundingReference f WHERE {conds} "
                                     "ORDER BY f.id DESC")}
    out: list[int] = []
    for f in funding:
        key = (f.funder_name.casefold(), f.award_number.casefold())
        if key not in existing:
            existing[key] = work.create(Obj(E["FundingReference"], values={
                "funderName": f.funder_name, "awardNumber": f.award_number,
                "funderIdentifier": f.funder_identifier, "awardTitle": f.award_title}))
        if existing[key] not in out:
            out.append(existing[key])
    return out


def _id(o: Obj) -> int:
    assert o.id is not None
    return int(o.id)
