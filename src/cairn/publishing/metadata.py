"""DataCite metadata from the catalogue: a publication as plain data, where it comes from and
how it maps onto DataCite schema 4.5.

A :class:`Publication` is a DataPublication in memory. It is built from an investigation
(:func:`from_investigation`, the "automatic" mode), from a user's request
(:func:`from_request`, a selection of investigations, datasets and datafiles) or read back
from the catalogue (:func:`load`), and written there once its DOI exists (:func:`store`;
:func:`remove` undoes it). :func:`revise` makes the next version; :func:`dump` and
:func:`undump` keep a publication as JSON until it is stored.
:func:`metadata` maps it onto DataCite's attributes and computes sizes and formats from its
content; :func:`instrument` does the same for an instrument (PIDINST). Everything reads
through the caller's unit of work, so what a user may not read stays out of the sums.

Where ICAT leaves a choice:

- DataPublicationUser.user is NOT NULL, so a person without an ICAT user (a co-author named by
  full name) is linked to the User with the same ORCID iD if there is one, else to a User row
  created for them and named ``doi-author:<doi>:<n>``; :func:`load` reads such a name as "no
  ICAT user".
- ICAT does not store a publication's resourceTypeGeneral. It is read from its
  DataPublicationType: the words "resourceTypeGeneral X" in the type's description (the types
  Cairn creates say so), else the known names (Investigation, User-defined), else the name
  itself when it is one of DataCite's, else Dataset.
- Days (collection, release, commissioning) are the catalogue's calendar days: its naive
  timestamps are wall-clock time in ``work.db.zone``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select

from cairn.catalogue.objects import Obj
from cairn.catalogue.work import Work
from cairn.errors import bad_parameter, no_such_object
from cairn.publishing.model import Files, Kind, Metadata
from cairn.schema import SCHEMA

E = SCHEMA.entities

CREATOR = "Creator"
TYPE_INVESTIGATION = "Investigation"
TYPE_USER_DEFINED = "User-defined"
TYPE_USER_DATASET = "User-defined dataset"
#: DataCite's code for "value unassigned": ICAT's FundingReference.awardNumber is NOT NULL.
UNASSIGNED = ":unas"
#: User.name prefix of the rows created for authors who have no ICAT user.
EXTERNAL_USER = "doi-author:"
#: At most this many formats are listed (the most used ones).
MAX_FORMATS = 20

# -- DataCite 4.5 vocabularies ---------------------------------------------------------------

RESOURCE_TYPES = frozenset("""
    Audiovisual Book BookChapter Collection ComputationalNotebook ConferencePaper
    ConferenceProceeding DataPaper Dataset Dissertation Event Image Instrument
    InteractiveResource Journal JournalArticle Model OutputManagementPlan PeerReview
    PhysicalObject Preprint Report Service Software Sound Standard StudyRegistration Text
    Workflow Other""".split())  # noqa: SIM905 (a word list reads better)
CONTRIBUTOR_TYPES = frozenset("""
    ContactPerson DataCollector DataCurator DataManager Distributor Editor HostingInstitution
    Producer ProjectLeader ProjectManager ProjectMember RegistrationAgency RegistrationAuthority
    RelatedPerson Researcher ResearchGroup RightsHolder Sponsor Supervisor WorkPackageLeader
    Other""".split())  # noqa: SIM905
RELATION_TYPES = frozenset("""
    IsCitedBy Cites IsCollectedBy Collects IsSupplementTo IsSupplementedBy IsContinuedBy
    Continues IsDescribedBy Describes HasMetadata IsMetadataFor HasVersion IsVersionOf
    IsNewVersionOf IsPartOf IsPreviousVersionOf IsPublishedIn HasPart IsReferencedBy References
    IsDocumentedBy Documents IsCompiledBy Compiles IsVariantFormOf IsOriginalFormOf
    IsIdenticalTo IsReviewedBy Reviews IsDerivedFrom IsSourceOf IsRequiredBy Requires
    IsObsoletedBy Obsoletes""".split())  # noqa: SIM905
DATE_TYPES = frozenset("""
    Accepted Available Copyrighted Collected Created Issued Submitted Updated Valid Withdrawn
    Other""".split())  # noqa: SIM905


def _vocabulary(words: Iterable[str]) -> dict[str, str]:
    return {w.casefold(): w for w in words}


_RESOURCE = _vocabulary(RESOURCE_TYPES)
_CONTRIBUTOR = _vocabulary([CREATOR, *CONTRIBUTOR_TYPES])
_RELATION = _vocabulary(RELATION_TYPES)
_DATE = _vocabulary(DATE_TYPES)

#: DataPublicationType names Cairn creates: resourceTypeGeneral and the type's description.
_TYPES = {
    TYPE_INVESTIGATION: ("Dataset", "All the data of one investigation"),
    TYPE_USER_DEFINED: ("Collection", "Investigations, datasets and datafiles chosen by "
                                      "their authors"),
    TYPE_USER_DATASET: ("Dataset", "Datasets and datafiles chosen by their authors, "
                                   "published as one dataset"),
}
_TYPE_GENERAL = re.compile(r"resourceTypeGeneral\s+(\w+)")

# -- the publication as plain data -----------------------------------------------------------


@dataclass(kw_only=True)
class Context:
    """What the mapping needs beyond the catalogue: the [publishing] settings and the clock."""

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


# -- automatic mode: one investigation -------------------------------------------------------

_INVESTIGATION = ("Investigation i INCLUDE i.facility, i.investigationUsers AS iu, iu.user, "
                  "i.keywords, i.investigationInstruments AS ii, ii.instrument, "
                  "i.publications, i.fundingReferences AS fr, fr.funding")


def from_investigation(work: Work, investigation_id: int, ctx: Context) -> Publication:
    """The publication of a whole investigation, its metadata taken from the investigation."""
    inv: Obj = work.get(_INVESTIGATION, investigation_id)
    v = inv.values
    techniques = work.search(
        "SELECT DISTINCT t FROM Technique t JOIN t.datasetTechniques dt JOIN dt.dataset ds "
        f"WHERE ds.investigation.id = {int(investigation_id)}")
    dates = []
    start, end = v.get("startDate"), v.get("endDate")
    if start is not None or end is not None:
        days = [_day(work, d) for d in (start, end) if d is not None]
        dates.append(Dated("Collected", "/".join(dict.fromkeys(days))))
    if v.get("releaseDate") is not None:
        dates.append(Dated("Available", _day(work, v["releaseDate"])))
    now = _second(ctx.now)
    dates.append(Dated("Issued", now.date().isoformat()))
    subjects = [technique_subject(t) for t in sorted(techniques, key=_by_name)]
    subjects += [Subject(k.values["name"]) for k in sorted(inv.manys["keywords"], key=_by_name)]
    return Publication(
        title=v["title"], description=v.get("summary"), facility_id=_ref(inv, "facility"),
        publication_date=now, type_name=TYPE_INVESTIGATION, resource_type_general="Dataset",
        users=_investigation_people(inv, ctx), dates=dates, subjects=_unique(subjects),
        related=_unique_related(_instruments(inv) + _citations(inv)),
        funding=[_funding(f) for f in _linked(inv.manys["fundingReferences"], "funding")],
        investigation_ids=[investigation_id])


def _investigation_people(inv: Obj, ctx: Context) -> list[Person]:
    """Creators: the principal investigators, then everybody else, each group by name; a
    user with several roles appears once."""
    pi = {r.casefold() for r in ctx.pi_roles}
    users: dict[int, tuple[bool, Obj]] = {}
    for iu in inv.manys["investigationUsers"]:
        u = iu.ones.get("user")
        if u is None or u.id is None:
            continue
        is_pi = iu.values["role"].casefold() in pi
        users[u.id] = (is_pi or users.get(u.id, (False, u))[0], u)
    ordered = sorted(users.values(), key=lambda pu: (not pu[0], *_person_key(pu[1])))
    width = max(4, len(str(len(ordered))))
    return [_user_person(u, f"{i:0{width}d}") for i, (_, u) in enumerate(ordered, 1)]


def _person_key(u: Obj) -> tuple[str, str, str]:
    v = u.values
    return ((v.get("familyName") or v.get("fullName") or v["name"]).casefold(),
            (v.get("givenName") or "").casefold(), v["name"])


def _user_person(u: Obj, order_key: str, contributor_type: str = CREATOR,
                 affiliations: list[Affiliation] | None = None) -> Person:
    v = u.values
    if affiliations is None:
        affiliations = [Affiliation(v["affiliation"])] if v.get("affiliation") else []
    return Person(contributor_type=contributor_type, full_name=v.get("fullName"),
                  given_name=v.get("givenName"), family_name=v.get("familyName"),
                  orcid=v.get("orcidId"), order_key=order_key, user_name=v["name"],
                  affiliations=affiliations)


def _instruments(inv: Obj) -> list[Related]:
    """The instruments with a PID (or else a URL) collected the data."""
    out = []
    for ii in _by_id(inv.manys["investigationInstruments"]):
        inst = ii.ones.get("instrument")
        if inst is None:
            continue
        iv = inst.values
        ident = iv.get("pid") or iv.get("url")
        if ident:
            out.append(Related(ident, "IsCollectedBy", "Instrument",
                               iv.get("fullName") or iv["name"]))
    return out


def _citations(inv: Obj) -> list[Related]:
    """Publication rows cite the data; one without DOI or URL is known by its reference."""
    out = []
    for p in _by_id(inv.manys["publications"]):
        pv = p.values
        ref = pv["fullReference"]
        out.append(Related((pv.get("doi") or pv.get("url") or ref)[:255], "IsCitedBy",
                           "JournalArticle", None, ref))
    return out


def technique_subject(t: Obj) -> Subject:
    """A technique as a subject; a PaNET term (the PaN ontology of techniques) with its
    scheme."""
    name, pid = t.values["name"], t.values.get("pid")
    if not pid:
        return Subject(name)
    code = re.search(r"PaNET\d+", pid)
    if code is None:
        return Subject(name, pid, pid if _is_url(pid) else None)
    uri = pid if _is_url(pid) else PANET_TERMS + code.group(0)
    return Subject(name, pid, uri, "PaNET", PANET_SCHEME, code.group(0))


PANET_TERMS = "http://purl.org/pan-science/PaNET/"
PANET_SCHEME = "http://purl.org/pan-science/PaNET/PaNET.owl"


def _funding(f: Obj) -> Funding:
    v = f.values
    return Funding(v["funderName"], v["awardNumber"], v.get("funderIdentifier"),
                   v.get("awardTitle"))


# -- user-defined mode -----------------------------------------------------------------------

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
    pub = Publication(title="", facility_id=0, publication_date=_second(ctx.now),
                      type_name=TYPE_USER_DEFINED, resource_type_general="Collection")
    return _apply(work, pub, {"resourceType": "Collection", **req}, ctx, everything=True)


def revise(work: Work, publication: Publication, changes: Any, ctx: Context) -> Publication:
    """The next version of a publication: ``changes`` (keys as in :func:`from_request`)
    replace what they name; the content is checked again as the caller; the publication
    date is now. A new Publication, not yet stored."""
    req = _mapping(changes, "The changes")
    _known_keys(req, _REQUEST_KEYS, "The changes")
    pub = replace(publication, id=None, doi=None, publication_date=_second(ctx.now),
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


def investigations_of(work: Work, publication: Publication) -> list[int]:
    """Every investigation a publication's content comes from (those of its datasets and
    datafiles too), ascending."""
    t = work.tables
    ds, df = t["Dataset"], t["Datafile"]
    found = set(publication.investigation_ids)
    for column, select_from, ids in (
            (ds.c.id, ds, publication.dataset_ids),
            (df.c.id, df.join(ds, df.c.dataset == ds.c.id), publication.datafile_ids)):
        for batch in work.chunks(sorted(set(ids))):
            q = select(ds.c.investigation).select_from(select_from).where(column.in_(batch))
            found.update(int(r[0]) for r in work.conn.execute(q))
    return sorted(found)


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
        known = {u.values["name"]: u for u in _users_named(work, names)}
    people: list[Person] = []
    seen: set[tuple[str, str]] = set()
    width = max(4, len(str(len(items))))
    for i, p in enumerate(items):
        where = f"creators[{i}]"
        ctype = _choice(p.get("contributorType", CREATOR), f"{where}.contributorType",
                        _CONTRIBUTOR)
        affiliations = _request_affiliations(p.get("affiliations"), where)
        name = p.get("username")
        key = f"{i:0{width}d}"
        if name is not None:
            user = known.get(name)
            if user is None:
                raise no_such_object(f"{where}: there is no ICAT user named '{name}'")
            person = _user_person(user, key, ctype, affiliations if "affiliations" in p
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
    for j, a in enumerate(_list(value, f"{where}.affiliations")):
        at = f"{where}.affiliations[{j}]"
        if isinstance(a, str):
            a = {"name": a}
        a = _mapping(a, at)
        _known_keys(a, ("name", "pid", "fullReference"), at)
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
    for i, s in enumerate(_list(value, "subjects")):
        where = f"subjects[{i}]"
        if isinstance(s, str):
            s = {"subject": s}
        s = _mapping(s, where)
        _known_keys(s, tuple(_SUBJECT_KEYS), where)
        fields = {attr: _text(s.get(key), f"{where}.{key}", 255, required=attr == "name")
                  for key, attr in _SUBJECT_KEYS.items()}
        out.append(Subject(**fields))  # type: ignore[arg-type]
    unique = _unique(out)
    if len(unique) < len(out):
        raise bad_parameter("subjects: the same subject is given twice")
    return unique


def _request_related(value: Any) -> list[Related]:
    out = []
    for i, r in enumerate(_list(value, "relatedItems")):
        where = f"relatedItems[{i}]"
        r = _mapping(r, where)
        _known_keys(r, tuple(_RELATED_KEYS), where)
        fields: dict[str, Any] = {
            attr: _text(r.get(key), f"{where}.{key}", 1023 if attr == "full_reference" else 255,
                        required=attr in ("identifier", "relation_type"))
            for key, attr in _RELATED_KEYS.items()}
        fields["relation_type"] = _choice(fields["relation_type"], f"{where}.relationType",
                                          _RELATION)
        if fields["related_item_type"] is not None:
            fields["related_item_type"] = _choice(fields["related_item_type"],
                                                  f"{where}.relatedItemType", _RESOURCE)
        out.append(Related(**fields))
    unique = _unique_related(out)
    if len(unique) < len(out):
        raise bad_parameter("relatedItems: the same identifier is given twice")
    return unique


def _request_funding(value: Any) -> list[Funding]:
    out = []
    for i, f in enumerate(_list(value, "fundingReferences")):
        where = f"fundingReferences[{i}]"
        f = _mapping(f, where)
        _known_keys(f, tuple(_FUNDING_KEYS), where)
        fields = {attr: _text(f.get(key), f"{where}.{key}", 255, required=attr == "funder_name")
                  for key, attr in _FUNDING_KEYS.items()}
        fields["award_number"] = fields["award_number"] or UNASSIGNED
        out.append(Funding(**fields))  # type: ignore[arg-type]
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


def _known_keys(value: Mapping[str, Any], keys: Sequence[str], where: str) -> None:
    unknown = sorted(set(value) - set(keys))
    if unknown:
        raise bad_parameter(f"{where} has unknown key(s) {', '.join(map(repr, unknown))}; "
                            f"known: {', '.join(keys)}")


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


# -- reading back ----------------------------------------------------------------------------

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

    def ids(many: str, ref: str) -> list[int]:
        return sorted({r for m in members.get(many, []) if (r := m.refs.get(ref)) is not None})

    users = sorted(p.manys["users"], key=lambda u: (u.values.get("orderKey") is None,
                                                     u.values.get("orderKey") or "", u.id))
    subjects = [Subject(s.values["name"], s.values.get("pid"), s.values.get("valueURI"),
                        s.values.get("subjectScheme"), s.values.get("schemeURI"),
                        s.values.get("classificationCode")) for s in _by_id(p.manys["subjects"])]
    if not subjects and v.get("subject"):  # a legacy publication: keywords in one string
        subjects = _unique([Subject(w.strip()) for w in re.split(r"[,;]", v["subject"])
                            if w.strip()])
    published = v.get("publicationDate")
    return Publication(
        title=v["title"], description=v.get("description"), facility_id=_ref(p, "facility"),
        publication_date=_utc(work, published) if published is not None
        else _utc(work, v["createTime"]),
        type_name=type_name,
        resource_type_general=_general(type_name,
                                       kind.values.get("description") if kind else None),
        internal_id=v.get("internalId"),
        users=[_stored_person(u) for u in users],
        dates=[Dated(d.values["dateType"], d.values["date"]) for d in _by_id(p.manys["dates"])],
        subjects=subjects,
        related=[Related(r.values["identifier"], r.values["relationType"],
                         r.values.get("relatedItemType"), r.values.get("title"),
                         r.values.get("fullReference")) for r in _by_id(p.manys["relatedItems"])],
        funding=[_funding(f) for f in _linked(p.manys["fundingReferences"], "funding")],
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
                                  a.values.get("pid")) for a in _by_id(u.manys["affiliations"])])


def _general(type_name: str, description: str | None) -> str:
    m = _TYPE_GENERAL.search(description or "")
    if m and m.group(1).casefold() in _RESOURCE:
        return _RESOURCE[m.group(1).casefold()]
    for name, (general, _) in _TYPES.items():
        if name.casefold() == type_name.casefold():
            return general
    return _RESOURCE.get(type_name.casefold(), "Dataset")


# -- writing ---------------------------------------------------------------------------------


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
    content = _ref(p, "content")
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


def _members(entity: str, field_name: str, target: str, ids: list[int]) -> list[Obj]:
    return [Obj(E[entity], ones={field_name: Obj(E[target], id=i)}) for i in ids]


def _type_id(work: Work, pub: Publication) -> int:
    found = work.search(f"SELECT t FROM DataPublicationType t WHERE t.facility.id = "
                        f"{int(pub.facility_id)} AND t.name = {_literal(pub.type_name)}")
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
             _users_named(work, [p.user_name for p in people if p.user_name])}
    orcids = {orcid_id(p.orcid) for p in people if not p.user_name and p.orcid}
    by_orcid: dict[str, int] = {}
    if orcids - {None}:
        spellings = {s for o in orcids if o for s in (o, ORCID + o)}
        users = work.search("SELECT u FROM User u WHERE u.orcidId IN ("
                            + ", ".join(map(_literal, sorted(spellings))) + ") ORDER BY u.id")
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
    conds = " OR ".join(f"(f.funderName = {_literal(f.funder_name)} AND "
                        f"f.awardNumber = {_literal(f.award_number)})" for f in funding)
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


def _users_named(work: Work, names: Iterable[str]) -> list[Obj]:
    wanted = sorted(set(names))
    out: list[Obj] = []
    for i in range(0, len(wanted), 100):
        out += work.search("SELECT u FROM User u WHERE u.name IN ("
                           + ", ".join(map(_literal, wanted[i:i + 100])) + ")")
    return out


def _literal(text: str) -> str:
    """An ICAT query string literal (a quote is doubled)."""
    return "'" + text.replace("'", "''") + "'"


# -- DataCite --------------------------------------------------------------------------------


def metadata(work: Work, publication: Publication, ctx: Context) -> Metadata:
    """The DataCite attributes of a publication, with sizes and formats computed from its
    content."""
    pub = publication
    facility = _facility(work, pub.facility_id)
    content = _Content(work, pub)
    attrs: dict[str, Any] = {}
    # contributorType is free text in ICAT: matched without case; one DataCite does not
    # know is "Other".
    types = [_CONTRIBUTOR.get(p.contributor_type.casefold(), "Other") for p in pub.users]
    creators = [_person(p) for p, t in zip(pub.users, types, strict=True) if t == CREATOR]
    contributors = [{**_person(p), "contributorType": t}
                    for p, t in zip(pub.users, types, strict=True) if t != CREATOR]
    _put(attrs, "creators", creators)
    _put(attrs, "titles", [{"title": pub.title}] if pub.title.strip() else [])
    attrs["publisher"] = _publisher(facility, ctx)
    attrs["publicationYear"] = f"{pub.publication_date.year:04d}"
    attrs["types"] = {"resourceTypeGeneral": pub.resource_type_general,
                      "resourceType": pub.type_name or pub.resource_type_general}
    _put(attrs, "subjects", [_subject(s) for s in pub.subjects])
    _put(attrs, "contributors", contributors)
    dates = [{"date": d.date, "dateType": _DATE.get(d.date_type.casefold(), "Other")}
             | ({} if d.date_type.casefold() in _DATE else {"dateInformation": d.date_type})
             for d in pub.dates]
    if not any(d["dateType"] == "Issued" for d in dates):
        dates.append({"date": pub.publication_date.date().isoformat(), "dateType": "Issued"})
    attrs["dates"] = dates
    alternates = [{"alternateIdentifier": pub.internal_id,
                   "alternateIdentifierType": "Internal identifier"}] if pub.internal_id else []
    if len(content.selected) == 1 and not (content.datasets or content.datafiles):
        # The DOI names exactly one investigation: its own key identifies it too.
        inv = content.investigations[content.selected[0]]
        alternates.append({"alternateIdentifier": inv.name_visit,
                           "alternateIdentifierType": f"{facility.values['name']} investigation"})
    _put(attrs, "alternateIdentifiers", alternates)
    _related(attrs, pub.related)
    files = content.files()
    _put(attrs, "sizes", _sizes(files))
    _put(attrs, "formats", files.formats)
    _put(attrs, "rightsList", rights(ctx.rights))
    _put(attrs, "descriptions", [{"description": pub.description, "descriptionType": "Abstract"}]
         if pub.description and pub.description.strip() else [])
    _put(attrs, "fundingReferences", [_funder(f) for f in pub.funding])
    return Metadata(kind=pub.kind, attributes=attrs, files=files, release=content.release(),
                    data=content.data())


def _put(attrs: dict[str, Any], key: str, values: list[Any]) -> None:
    """Absent rather than empty: the check reports what is missing."""
    if values:
        attrs[key] = values


def _facility(work: Work, facility_id: int) -> Obj:
    # The facility names the publisher: not a secret, whoever asks.
    with work.as_system():
        fac: Obj = work.get("Facility", facility_id)
    return fac


def _publisher(facility: Obj, ctx: Context) -> str | dict[str, str]:
    name = ctx.publisher or facility.values.get("fullName") or facility.values["name"]
    if not ctx.publisher_identifier:
        return name
    # DataCite's REST API takes a string or, since schema 4.5, an object with an identifier.
    out = {"name": name, "publisherIdentifier": ctx.publisher_identifier}
    scheme = _organisation_scheme(ctx.publisher_identifier)
    if scheme is not None:
        out["publisherIdentifier"], out["publisherIdentifierScheme"], out["schemeUri"] = scheme
    return out


def _person(p: Person) -> dict[str, Any]:
    """A creator or contributor. One without any name has no ``name`` (the check reports
    it rather than an invented name going out)."""
    out: dict[str, Any] = {}
    name = person_name(p)
    if name:
        out["name"] = name
    out["nameType"] = "Personal"
    if p.given_name:
        out["givenName"] = p.given_name
    if p.family_name:
        out["familyName"] = p.family_name
    uri = orcid_uri(p.orcid) if p.orcid else None
    if uri is not None:
        out["nameIdentifiers"] = [{"nameIdentifier": uri, "nameIdentifierScheme": "ORCID",
                                   "schemeUri": "https://orcid.org"}]
    affiliations = [_affiliation(a) for a in p.affiliations]
    if affiliations:
        out["affiliation"] = affiliations
    return out


def person_name(p: Person) -> str | None:
    """DataCite's form "Family, Given" when both are known, else the full name."""
    if p.family_name and p.given_name:
        return f"{p.family_name}, {p.given_name}"
    return p.full_name or p.family_name or None


def _affiliation(a: Affiliation) -> dict[str, str]:
    # fullReference is "as it should appear in the publication"; name is ICAT's handle.
    out = {"name": a.full_reference or a.name}
    scheme = _organisation_scheme(a.pid) if a.pid else None
    if scheme is not None:
        out["affiliationIdentifier"], out["affiliationIdentifierScheme"], out["schemeUri"] = \
            scheme
    return out


_ROR = re.compile(r"(?:https?://)?(?:www\.)?ror\.org/(0[a-z0-9]{8})", re.IGNORECASE)
_ISNI = re.compile(r"(?:https?://)?(?:isni\.org/isni/)?((?:\d{4}\s?){3}\d{3}[\dX])",
                   re.IGNORECASE)


def _organisation_scheme(pid: str) -> tuple[str, str, str] | None:
    """(identifier, scheme, schemeUri) of a ROR or ISNI identifier; None for others."""
    pid = pid.strip()
    if m := _ROR.fullmatch(pid):
        return f"https://ror.org/{m.group(1).lower()}", "ROR", "https://ror.org"
    if m := _ISNI.fullmatch(pid):
        return m.group(1).replace(" ", ""), "ISNI", "https://isni.org/isni/"
    return None


ORCID = "https://orcid.org/"
_ORCID = re.compile(r"(?:https?://(?:www\.)?orcid\.org/|orcid:)?(\d{4}-\d{4}-\d{4}-\d{3}[\dX])",
                    re.IGNORECASE)


def orcid_id(text: str | None) -> str | None:
    """The bare ORCID iD in ``text`` (a bare iD or its URL); None if it is not one."""
    m = _ORCID.fullmatch(text.strip()) if text else None
    return m.group(1).upper() if m else None


def orcid_uri(text: str | None) -> str | None:
    o = orcid_id(text)
    return ORCID + o if o else None


def _subject(s: Subject) -> dict[str, str]:
    out = {"subject": s.name}
    if s.scheme:
        out["subjectScheme"] = s.scheme
    if s.scheme_uri and _is_url(s.scheme_uri):
        out["schemeUri"] = s.scheme_uri
    uri = s.value_uri or (s.pid if s.pid and _is_url(s.pid) else None)
    if uri and _is_url(uri):
        out["valueUri"] = uri
    if s.classification_code:
        out["classificationCode"] = s.classification_code
    return out


_IDENTIFIERS: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (kind, re.compile(pattern, re.IGNORECASE), form) for kind, pattern, form in (
        ("DOI", r"(?:doi:\s*|https?://(?:dx\.)?doi\.org/)?(10\.\d{4,9}/\S+)", "{}"),
        ("Handle", r"(?:hdl:\s*|https?://hdl\.handle\.net/)(\d[\w.]*/\S+)", "{}"),
        ("arXiv", r"(?:arxiv:\s*|https?://arxiv\.org/abs/)(\S+)", "arXiv:{}"),
        ("PMID", r"pmid:\s*(\d+)", "{}"),
        ("ARK", r"(?:https?://n2t\.net/)?(ark:/?\S+)", "{}"),
        ("URN", r"(urn:\S+)", "{}"),
        ("ISBN", r"isbn:?\s*([\d-]{9,16}[\dX])", "{}"),
        ("w3id", r"(https?://w3id\.org/\S+)", "{}"),
        ("PURL", r"(https?://purl\.org/\S+)", "{}"),
        ("URL", r"(https?://\S+)", "{}"),
    ))


def identifier_type(text: str) -> tuple[str, str] | None:
    """(DataCite relatedIdentifierType, the identifier in the form DataCite wants) of a
    persistent identifier or URL; None for anything else (a citation, a name)."""
    text = text.strip()
    for kind, pattern, form in _IDENTIFIERS:
        if m := pattern.fullmatch(text):
            return kind, form.format(m.group(1))
    return None


def _related(attrs: dict[str, Any], related: list[Related]) -> None:
    identifiers: list[dict[str, str]] = []
    items: list[dict[str, Any]] = []
    for r in related:
        # An unknown relation (ICAT takes any text) becomes the most neutral one DataCite has.
        relation = _RELATION.get(r.relation_type.casefold(), "References")
        general = _RESOURCE.get((r.related_item_type or "").casefold())
        found = identifier_type(r.identifier)
        if found is not None:
            entry = {"relatedIdentifier": found[1], "relatedIdentifierType": found[0],
                     "relationType": relation}
            if general:
                entry["resourceTypeGeneral"] = general
            identifiers.append(entry)
        else:
            items.append({"relationType": relation, "relatedItemType": general or "Other",
                          "titles": [{"title": r.title or r.full_reference or r.identifier}]})
    _put(attrs, "relatedIdentifiers", identifiers)
    _put(attrs, "relatedItems", items)


def _funder(f: Funding) -> dict[str, str]:
    out = {"funderName": f.funder_name}
    if f.funder_identifier:
        out["funderIdentifier"] = f.funder_identifier
        out["funderIdentifierType"] = _funder_scheme(f.funder_identifier)
    if f.award_number and f.award_number not in (UNASSIGNED, ":unav", ":unap", ":unkn"):
        out["awardNumber"] = f.award_number
    if f.award_title:
        out["awardTitle"] = f.award_title
    return out


def _funder_scheme(identifier: str) -> str:
    if "10.13039/" in identifier:
        return "Crossref Funder ID"
    scheme = _organisation_scheme(identifier)
    return scheme[1] if scheme else "Other"


#: Common licences: SPDX id -> (name, URI); others are named by their id and spdx.org.
_LICENCES = {
    "CC-BY-4.0": ("Creative Commons Attribution 4.0 International",
                  "https://creativecommons.org/licenses/by/4.0/legalcode"),
    "CC-BY-SA-4.0": ("Creative Commons Attribution Share Alike 4.0 International",
                     "https://creativecommons.org/licenses/by-sa/4.0/legalcode"),
    "CC-BY-NC-4.0": ("Creative Commons Attribution Non Commercial 4.0 International",
                     "https://creativecommons.org/licenses/by-nc/4.0/legalcode"),
    "CC0-1.0": ("Creative Commons Zero v1.0 Universal",
                "https://creativecommons.org/publicdomain/zero/1.0/legalcode"),
}


def rights(spdx: str) -> list[dict[str, str]]:
    """The rightsList of a licence given by its SPDX id ("" -> none)."""
    if not spdx:
        return []
    name, uri = _LICENCES.get(spdx, (spdx, f"https://spdx.org/licenses/{spdx}.html"))
    return [{"rights": name, "rightsUri": uri, "rightsIdentifier": spdx,
             "rightsIdentifierScheme": "SPDX", "schemeUri": "https://spdx.org/licenses/"}]


def _sizes(files: Files) -> list[str]:
    if not (files.datafiles or files.size):
        return []
    return [_count(files.datafiles, "file"), _bytes(files.size)]


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _bytes(n: int) -> str:
    """Decimal units, as storage is sold: 1 kB = 1000 bytes."""
    if n < 1000:
        return _count(n, "byte")
    value, unit = float(n), 0
    while value >= 999.95 and unit < len(_UNITS):
        value, unit = value / 1000, unit + 1
    return f"{value:.1f} {_UNITS[unit - 1]}"


_UNITS = ("kB", "MB", "GB", "TB", "PB", "EB")


@dataclass
class _Investigation:
    name_visit: str
    release: datetime | None


class _Content:
    """What a publication's DataCollection holds, without counting anything twice (a dataset
    of a selected investigation, a datafile of a selected dataset), as far as the caller may
    read it."""

    def __init__(self, work: Work, pub: Publication) -> None:
        self.work = work
        t = work.tables
        self.inv, self.ds, self.df = t["Investigation"], t["Dataset"], t["Datafile"]
        inv_ids = set(pub.investigation_ids)
        ds_parent = dict(self._rows(select(self.ds.c.id, self.ds.c.investigation),
                                    self.ds.c.id, pub.dataset_ids))
        df_parents = {r[0]: (r[1], r[2]) for r in self._rows(
            select(self.df.c.id, self.df.c.dataset, self.ds.c.investigation)
            .join(self.ds, self.df.c.dataset == self.ds.c.id), self.df.c.id, pub.datafile_ids)}
        self.datasets = sorted(d for d, i in ds_parent.items() if i not in inv_ids)
        ds_ids = set(self.datasets)
        self.datafiles = sorted(f for f, (d, i) in df_parents.items()
                                if d not in ds_ids and i not in inv_ids)
        involved = inv_ids | set(ds_parent.values()) | {i for _, i in df_parents.values()}
        self.investigations = {
            int(r.id): _Investigation(r.name if r.visitId in (None, "", r.name)
                                      else f"{r.name}/{r.visitId}",
                                      None if r.releaseDate is None
                                      else _utc(work, r.releaseDate))
            for r in self._rows(select(self.inv.c.id, self.inv.c.name, self.inv.c.visitId,
                                       self.inv.c.releaseDate), self.inv.c.id, involved)}
        self.selected = sorted(inv_ids & set(self.investigations))

    def _rows(self, q: Select[Any], column: ColumnElement[Any], ids: Iterable[int]
              ) -> Iterator[Any]:
        for batch in self.work.chunks(sorted(set(ids))):
            yield from self.work.conn.execute(q.where(column.in_(batch)))

    def _readable(self, q: Select[Any], entity: str, column: ColumnElement[Any]) -> Select[Any]:
        cond = self.work.readable_condition(entity, column)
        return q if cond is None else q.where(cond)

    def _execute(self, q: Select[Any]) -> Any:
        return self.work.conn.execute(q, dict(self.work.params))

    def files(self) -> Files:
        """Counts, bytes and formats: one grouped statement per kind of selected object (and
        per ``max_ids`` of them). It reads the datafiles the format list needs anyway, so
        Investigation/Dataset.fileSize and fileCount (0 unless something maintains them) are
        not consulted."""
        df, ds = self.df, self.ds
        per_format: Counter[int | None] = Counter()
        count = size = 0
        grouped = select(df.c.datafileFormat, func.count(df.c.id),
                         func.coalesce(func.sum(df.c.fileSize), 0))
        for column, ids, join in ((ds.c.investigation, self.selected, True),
                                  (df.c.dataset, self.datasets, False),
                                  (df.c.id, self.datafiles, False)):
            for batch in self.work.chunks(ids):
                q = grouped.select_from(df.join(ds, df.c.dataset == ds.c.id) if join else df)
                q = self._readable(q.where(column.in_(batch)), "Datafile", df.c.id)
                for fmt, n, total in self._execute(q.group_by(df.c.datafileFormat)):
                    per_format[fmt] += int(n)
                    count += int(n)
                    size += int(total)
        datasets = len(self.datasets)
        for batch in self.work.chunks(self.selected):
            q = select(func.count(ds.c.id)).where(ds.c.investigation.in_(batch))
            datasets += int(self._execute(self._readable(q, "Dataset", ds.c.id)).scalar_one())
        return Files(datafiles=count, datasets=datasets, investigations=len(self.selected),
                     size=size, formats=self._formats(per_format))

    def _formats(self, per_format: Counter[int | None]) -> list[str]:
        ids = [f for f in per_format if f is not None]
        names: dict[int, str] = {}
        for o in self.work.rows_where(E["DatafileFormat"], "id", ids):
            name, version = o.values["name"], (o.values.get("version") or "").strip()
            names[int(o.id)] = f"{name} {version}" if version else name
        ranked = sorted(((-n, names[f]) for f, n in per_format.items() if f in names))
        return list(dict.fromkeys(name for _, name in ranked))[:MAX_FORMATS]

    def release(self) -> datetime | None:
        """The latest release date of the investigations involved: the data are public when
        all of them are."""
        dates = [i.release for i in self.investigations.values() if i.release is not None]
        return max(dates) if dates else None

    def data(self) -> dict[str, list[int]]:
        out = {"Investigation": self.selected, "Dataset": self.datasets,
               "Datafile": self.datafiles}
        return {k: v for k, v in out.items() if v}


# -- instruments (PIDINST) -------------------------------------------------------------------

_INSTRUMENT = "Instrument i INCLUDE i.facility, i.instrumentScientists AS s, s.user"


def instrument(work: Work, instrument_id: int, ctx: Context) -> Metadata:
    """An instrument's DataCite metadata after PIDINST's mapping (resourceTypeGeneral
    Instrument)."""
    inst: Obj = work.get(_INSTRUMENT, instrument_id)
    v = inst.values
    fac = inst.ones.get("facility") or _facility(work, _ref(inst, "facility"))
    owner = fac.values.get("fullName") or fac.values["name"]
    organisation: dict[str, Any] = {"name": owner, "nameType": "Organizational"}
    scheme = _organisation_scheme(ctx.publisher_identifier) \
        if ctx.publisher_identifier and not ctx.publisher else None
    if scheme is not None:  # the identifier configured for the publisher is the facility's
        organisation["nameIdentifiers"] = [{"nameIdentifier": scheme[0],
                                            "nameIdentifierScheme": scheme[1],
                                            "schemeUri": scheme[2]}]
    titles = [{"title": v.get("fullName") or v["name"]}]
    if v.get("fullName") and v["fullName"] != v["name"]:
        titles.append({"title": v["name"], "titleType": "AlternativeTitle"})
    scientists = sorted(_linked(inst.manys["instrumentScientists"], "user"), key=_person_key)
    attrs: dict[str, Any] = {
        # ICAT records no manufacturer (PIDINST's creator): the facility that built or runs
        # the instrument stands in for it, as an organisation.
        "creators": [organisation],
        "titles": titles,
        "publisher": _publisher(fac, ctx),
        "publicationYear": f"{ctx.now.year:04d}",
        "types": {"resourceTypeGeneral": "Instrument", "resourceType": v.get("type") or
                  "Instrument"},
        "contributors": [{**organisation, "contributorType": "HostingInstitution"}]
        + [{**_person(_user_person(u, "")), "contributorType": "ContactPerson"}
           for u in scientists],
    }
    dates = [{"date": _day(work, v[key]), "dateType": "Other", "dateInformation": words}
             for key, words in (("startDate", "Commissioned"), ("endDate", "DeCommissioned"))
             if v.get(key) is not None]
    _put(attrs, "dates", dates)
    pid = v.get("pid")
    found = identifier_type(pid) if pid else None
    if found is not None and found[0] != "DOI":  # a DOI is the one being minted
        attrs["alternateIdentifiers"] = [{"alternateIdentifier": found[1],
                                          "alternateIdentifierType": found[0]}]
    if v.get("url"):
        attrs["relatedIdentifiers"] = [{"relatedIdentifier": v["url"],
                                        "relatedIdentifierType": "URL",
                                        "relationType": "IsDescribedBy"}]
    descriptions = []
    if v.get("description"):
        descriptions.append({"description": v["description"], "descriptionType": "Abstract"})
    if v.get("type"):
        descriptions.append({"description": f"Instrument type: {v['type']}",
                             "descriptionType": "TechnicalInfo"})
    _put(attrs, "descriptions", descriptions)
    _put(attrs, "rightsList", rights(ctx.rights))
    end = v.get("endDate")
    return Metadata(kind=Kind.INSTRUMENT, attributes=attrs,
                    decommissioned=None if end is None else _utc(work, end))


# -- small helpers ---------------------------------------------------------------------------


def _ref(o: Obj, name: str) -> int:
    one = o.ones.get(name)
    value = one.id if one is not None else o.refs.get(name)
    assert value is not None, f"{o!r} has no {name}"
    return int(value)


def _linked(links: Iterable[Obj], name: str) -> list[Obj]:
    """The objects ``links`` (in id order) refer to by ``name``, those that were read."""
    return [o for link in _by_id(links) if (o := link.ones.get(name)) is not None]


def _id(o: Obj) -> int:
    assert o.id is not None
    return int(o.id)


def _by_id(objs: Iterable[Obj]) -> list[Obj]:
    return sorted(objs, key=lambda o: o.id or 0)


def _by_name(o: Obj) -> tuple[str, str]:
    return o.values["name"].casefold(), o.values["name"]


def _day(work: Work, value: datetime) -> str:
    """A stored timestamp's calendar day in the catalogue's zone."""
    return work.db.from_db(value).date().isoformat()


def _utc(work: Work, value: datetime) -> datetime:
    return work.db.from_db(value).astimezone(UTC)


def _second(value: datetime) -> datetime:
    """Aware UTC in whole seconds: MariaDB keeps no more, so a publication read back is
    the same."""
    return value.astimezone(UTC).replace(microsecond=0)


def _is_url(text: str) -> bool:
    return re.match(r"https?://\S+$", text.strip(), re.IGNORECASE) is not None


def _unique(subjects: list[Subject]) -> list[Subject]:
    """One subject per name (Subject's key; MariaDB compares names without case)."""
    seen: set[str] = set()
    out = []
    for s in subjects:
        if s.name.casefold() not in seen:
            seen.add(s.name.casefold())
            out.append(s)
    return out


def _unique_related(related: list[Related]) -> list[Related]:
    """One related item per identifier (RelatedItem's key)."""
    seen: set[str] = set()
    out = []
    for r in related:
        if r.identifier.casefold() not in seen:
            seen.add(r.identifier.casefold())
            out.append(r)
    return out
