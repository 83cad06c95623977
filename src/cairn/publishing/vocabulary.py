"""DataCite 4.5's controlled vocabularies (resource, contributor, relation and date types) and
the identifier schemes it names: recognising a DOI, Handle, URL, ... (:func:`identifier_type`),
an ORCID iD (:func:`orcid_id`, :func:`orcid_uri`) and a ROR or ISNI organisation identifier
(:func:`organisation_scheme`).

ICAT takes any text where DataCite has a vocabulary, so each vocabulary is also kept as a map
from the casefolded word to DataCite's spelling: a value is matched without case.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: The contributorType of a creator (DataCite keeps creators apart from contributors).
CREATOR = "Creator"

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


#: Casefolded word -> DataCite's spelling.
RESOURCE = _vocabulary(RESOURCE_TYPES)
CONTRIBUTOR = _vocabulary([CREATOR, *CONTRIBUTOR_TYPES])
RELATION = _vocabulary(RELATION_TYPES)
DATE = _vocabulary(DATE_TYPES)

# -- identifiers -----------------------------------------------------------------------------

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


def is_url(text: str) -> bool:
    return re.match(r"https?://\S+$", text.strip(), re.IGNORECASE) is not None


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


_ROR = re.compile(r"(?:https?://)?(?:www\.)?ror\.org/(0[a-z0-9]{8})", re.IGNORECASE)
_ISNI = re.compile(r"(?:https?://)?(?:isni\.org/isni/)?((?:\d{4}\s?){3}\d{3}[\dX])",
                   re.IGNORECASE)


def organisation_scheme(pid: str) -> tuple[str, str, str] | None:
    """(identifier, scheme, schemeUri) of a ROR or ISNI identifier; None for others."""
    pid = pid.strip()
    if m := _ROR.fullmatch(pid):
        return f"https://ror.org/{m.group(1).lower()}", "ROR", "https://ror.org"
    if m := _ISNI.fullmatch(pid):
        return m.group(1).replace(" ", ""), "ISNI", "https://isni.org/isni/"
    return None
