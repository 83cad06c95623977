"""Publishing as a service: who may mint what, the life of each DOI, and its landing page.

Every request is written first (a CAIRN_DOI row naming the DOI, in the caller's transaction,
with a ``publishing.sync`` job), then carried out by that job: the DataCite draft, then the
DataPublication (so neither waits for the other: the DOI is Cairn's to choose), then the
state asked for. The job is keyed by the DOI and retried for as long as DataCite is away; a
DOI is never created twice because its name is fixed before the first call and the client's
``put`` is idempotent. A change in the catalogue queues one ``publishing.refresh`` that sends
again the metadata of every DOI whose metadata it changed.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, select

from cairn.catalogue.changes import ChangeListener, Changes
from cairn.catalogue.service import Catalogue, retried
from cairn.catalogue.work import Work
from cairn.config import PublishingSettings
from cairn.errors import (
    ErrorType,
    IcatError,
    bad_parameter,
    insufficient_privileges,
    no_such_object,
)
from cairn.jobs import Failed, JobContext, Kind, Periodic, Scheduler, backoff
from cairn.publishing import check as checks
from cairn.publishing import data_publication, metadata
from cairn.publishing.content import investigations_of
from cairn.publishing.datacite import DataCite, DataCiteError
from cairn.publishing.investigation import from_investigation
from cairn.publishing.model import Kind as DoiKind
from cairn.publishing.model import Landing, Metadata, State, Version
from cairn.publishing.publication import Context, Publication, dump, undump
from cairn.publishing.request import from_request, revise
from cairn.publishing.store import Doi, Dois, normalize, utcnow

log = logging.getLogger(__name__)

SYNC = "publishing.sync"
REFRESH = "publishing.refresh"
RELEASE = "publishing.release"

#: Entities whose changes can change the metadata of a DOI (datafiles and datasets change
#: only sizes and formats: the periodic refresh picks those up).
WATCHED = frozenset({
    "DataPublication", "DataPublicationUser", "DataPublicationDate", "DataPublicationType",
    "DataPublicationFunding", "Affiliation", "Subject", "RelatedItem", "FundingReference",
    "DataCollection", "DataCollectionInvestigation", "DataCollectionDataset",
    "DataCollectionDatafile", "Investigation", "InvestigationUser", "InvestigationFunding",
    "InvestigationInstrument", "InvestigationTechnique", "Keyword", "Publication", "User",
    "Instrument", "InstrumentScientist", "Facility", "Technique"})

#: Publish refuses these while DataCite's mandatory properties are missing.
_MINTING = (State.FINDABLE, State.REGISTERED)


class Follower(ChangeListener):
    """Queues one refresh (merged, after a short delay) when what a DOI describes changes."""

    def __init__(self, service: PublishingService) -> None:
        self.service = service

    def in_transaction(self, work: Work, changes: Changes) -> None:
        if (work.jobs is None or not self.service.settings.can_mint
                or WATCHED.isdisjoint(changes.entities())):
            return
        if self.service.has_dois(work):
            work.enqueue(REFRESH, {}, key="all", delay=self.service.settings.update_delay_seconds)


class PublishingService:
    def __init__(self, catalogue: Catalogue, settings: PublishingSettings, public_url: str,
                 jobs: Scheduler | None = None) -> None:
        self.catalogue = catalogue
        self.db = catalogue.db
        self.settings = settings
        self.jobs = jobs
        self.dois = Dois(self.db.tables.doi)
        self.landing_base = settings.landing_url or f"{public_url}/doi/"
        if not self.landing_base.endswith("/"):
            self.landing_base += "/"
        self.data_service_url = f"{public_url}/ids"
        self._client: DataCite | None = None
        self._known = False  # some DOI exists (once true, stays true)

    # -- the room's seams -------------------------------------------------------------------

    def start(self) -> None:
        self.catalogue.listeners.add(Follower(self))

    def job_kinds(self) -> list[Kind | Periodic]:
        s = self.settings
        kinds: list[Kind | Periodic] = [
            # Never given up: an outage of a day must not lose a request.
            Kind(SYNC, self._sync, max_attempts=None, retry_delay=backoff(10.0, 1800.0)),
            Kind(REFRESH, self._refresh_job, max_attempts=3),
            Periodic("publishing.refresh_all", s.refresh_interval_seconds, self.refresh),
        ]
        if s.auto_mint and s.can_mint:
            kinds.append(Periodic(RELEASE, s.auto_mint_interval_seconds, self.mint_released))
        return kinds

    def has_dois(self, work: Work) -> bool:
        if not self._known:
            self._known = self.dois.any(work.conn)
        return self._known

    def client(self) -> DataCite:
        s = self.settings
        if not s.can_mint:
            raise Failed("DataCite is not configured: set [publishing] datacite_url, prefix, "
                         "username and password")
        if self._client is None:
            self._client = DataCite(s.datacite_url, s.prefix, s.username, s.password,
                                    timeout=s.timeout_seconds)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- who acts -----------------------------------------------------------------------------

    def _unit(self, sid: str | None, read_only: bool = False
              ) -> AbstractContextManager[Work]:
        """The caller's unit of work; ``sid`` None: the command line, acting as root."""
        if sid is None:
            return self.catalogue.as_system(read_only=read_only)
        return self.catalogue.as_user(sid, read_only=read_only)

    def context(self, now: datetime | None = None) -> Context:
        s = self.settings
        return Context(publisher=s.publisher, publisher_identifier=s.publisher_identifier,
                       rights=s.rights, pi_roles=tuple(s.minter_roles),
                       now=now or datetime.now(UTC).replace(microsecond=0))

    def _in_grouping(self, work: Work) -> bool:
        name = self.settings.minter_grouping
        if not name:
            return False
        t = self.db.tables
        ug, g, u = t["UserGroup"], t["Grouping"], t["User"]
        q = (select(func.count()).select_from(ug.join(g, ug.c.grouping == g.c.id)
                                              .join(u, ug.c.user == u.c.id))
             .where(g.c.name == name, u.c.name == work.user))
        return work.conn.execute(q).scalar_one() > 0

    def _may_mint(self, work: Work, investigations: list[int] = (),  # type: ignore[assignment]
                  instrument: int | None = None) -> None:
        """INSUFFICIENT_PRIVILEGES unless the caller may mint for these investigations (a
        minter role on each) or this instrument (one of its scientists); root and members
        of the minter grouping may mint anything they can read."""
        if work.root or self._in_grouping(work):
            return
        t = self.db.tables
        u = t["User"]
        if instrument is not None:
            s = t["InstrumentScientist"]
            q = (select(func.count()).select_from(s.join(u, s.c.user == u.c.id))
                 .where(s.c.instrument == instrument, u.c.name == work.user))
            if not work.conn.execute(q).scalar_one():
                raise insufficient_privileges(
                    f"Only the instrument's scientists{self._grouping_words()} may mint a DOI "
                    f"for instrument {instrument}")
            return
        roles = [r.lower() for r in self.settings.minter_roles]
        iu = t["InvestigationUser"]
        q = (select(iu.c.investigation).select_from(iu.join(u, iu.c.user == u.c.id))
             .where(iu.c.investigation.in_(investigations), u.c.name == work.user,
                    func.lower(iu.c.role).in_(roles)))
        allowed = {r[0] for r in work.conn.execute(q)}
        refused = [i for i in investigations if i not in allowed]
        if refused:
            raise insufficient_privileges(
                f"Minting needs the role {' or '.join(self.settings.minter_roles)} on "
                f"investigation {refused[0]}{self._grouping_words()}; {work.user} has not")

    def may_mint(self, sid: str | None, investigation_ids: Iterable[int] = (),
                 request: Any = None) -> str | None:
        """Why the caller may not mint for these investigations, and for those a collection
        ``request`` (as for :meth:`draft_collection`) touches; None if they may. The same
        rule minting applies (a minter role on each, the minter grouping, root), asked before
        offering to mint. A request the caller can't make (BAD_PARAMETER, NO_SUCH_OBJECT_FOUND)
        raises, as :meth:`check_collection` does."""
        with self._unit(sid, read_only=True) as work:
            ids = set(investigation_ids)
            if request is not None:
                ids.update(investigations_of(work, from_request(work, _object(request),
                                                                self.context())))
            try:
                self._may_mint(work, sorted(ids))
            except IcatError as e:
                if e.type is ErrorType.INSUFFICIENT_PRIVILEGES:
                    return e.message
                raise
        return None

    def _grouping_words(self) -> str:
        g = self.settings.minter_grouping
        return f" (or members of the grouping {g!r})" if g else ""

    def _may_change(self, work: Work, d: Doi) -> None:
        """The DOI's minter, or whoever may mint what it names."""
        if work.root or d.created_by == work.user:
            return
        if d.kind is DoiKind.INSTRUMENT:
            self._may_mint(work, instrument=d.subject_id)
        else:
            # What it names is read as Cairn (the DataPublication need not be readable by
            # the caller); who may change it is decided by the caller's own roles.
            self._may_mint(work, self._investigations_of(_as_system(work), d))

    def _investigations_of(self, work: Work, d: Doi) -> list[int]:
        if d.kind is DoiKind.INVESTIGATION and d.subject_id is not None:
            return [d.subject_id]
        if d.kind is DoiKind.CONCEPT:
            versions = self.dois.versions(work.conn, d.doi)
            return self._investigations_of(work, versions[-1]) if versions else []
        pub = self._publication(work, d)
        return investigations_of(work, pub)

    # -- checking -----------------------------------------------------------------------------

    def check_investigation(self, sid: str | None, investigation_id: int) -> dict[str, Any]:
        with self._unit(sid, read_only=True) as work:
            _require(work, "Investigation", investigation_id)
            existing = self.dois.of_subject(work.conn, DoiKind.INVESTIGATION, investigation_id)
            pub = from_investigation(work, investigation_id, self.context())
            md = metadata.metadata(work, pub, self.context())
            return self._report(md, f"investigation {pub_name(pub)} (id {investigation_id})",
                                existing)

    def check_instrument(self, sid: str | None, instrument_id: int) -> dict[str, Any]:
        with self._unit(sid, read_only=True) as work:
            _require(work, "Instrument", instrument_id)
            existing = self.dois.of_subject(work.conn, DoiKind.INSTRUMENT, instrument_id)
            md = metadata.instrument(work, instrument_id, self.context())
            return self._report(md, f"instrument {instrument_id}", existing)

    def check_collection(self, sid: str | None, request: Any) -> dict[str, Any]:
        with self._unit(sid, read_only=True) as work:
            pub = from_request(work, _object(request), self.context())
            md = metadata.metadata(work, pub, self.context())
            return self._report(md, "this selection", [])

    def _report(self, md: Metadata, subject: str, existing: list[Doi]) -> dict[str, Any]:
        findings = checks.check(md, subject)
        return {"subject": subject, "mintable": checks.mintable(findings),
                "findings": [{"property": f.property, "level": f.level, "message": f.message,
                              "source": f.source} for f in findings],
                "dois": [d.doi for d in existing],
                "metadata": md.attributes}

    def check_facility(self, minted: bool = False
                       ) -> Iterator[tuple[int, str, list[checks.Finding]]]:
        """Every investigation (those without a DOI, unless ``minted``): its id, name and
        what DataCite would still need; for ``cairn publish check``."""
        inv = self.db.tables["Investigation"]
        q = select(inv.c.id, inv.c.name, inv.c.visitId).order_by(inv.c.id)
        with self.db.read() as conn:
            rows = list(conn.execute(q))
            skip = set() if minted else {
                r[0] for r in conn.execute(select(self.dois.t.c.subject_id).where(
                    self.dois.t.c.kind == DoiKind.INVESTIGATION.value))}
        ctx = self.context()
        for i, name, visit in rows:
            if i in skip:
                continue
            with self.catalogue.as_system(read_only=True) as work:
                md = metadata.metadata(work, from_investigation(work, i, ctx), ctx)
            label = f"{name} {visit}".strip()
            yield i, label, checks.check(md, f"investigation {label!r} (id {i})")

    # -- requests -----------------------------------------------------------------------------

    @retried
    def mint_investigation(self, sid: str | None, investigation_id: int,
                           draft: bool = False) -> dict[str, Any]:
        """A DOI for the whole investigation (again: the one it has)."""
        target = State.DRAFT if draft else State.FINDABLE
        with self._unit(sid) as work:
            _require(work, "Investigation", investigation_id)
            self._may_mint(work, [investigation_id])
            existing = [d for d in self.dois.of_subject(work.conn, DoiKind.INVESTIGATION,
                                                        investigation_id)
                        if d.version in (None, 1)]
            if existing:
                return self._advance(work, existing[0], target)
            pub = from_investigation(work, investigation_id, self.context())
            self._require_complete(work, target, lambda: metadata.metadata(
                work, pub, self.context()), f"investigation {investigation_id}")
            d = self._new(work, DoiKind.INVESTIGATION, self._suffix(f"inv-{investigation_id}"),
                          target, subject_id=investigation_id, request=dump(pub))
            return d.to_json(self.landing_base)

    @retried
    def mint_instrument(self, sid: str | None, instrument_id: int) -> dict[str, Any]:
        with self._unit(sid) as work:
            _require(work, "Instrument", instrument_id)
            self._may_mint(work, instrument=instrument_id)
            existing = self.dois.of_subject(work.conn, DoiKind.INSTRUMENT, instrument_id)
            if existing:
                return self._advance(work, existing[-1], State.FINDABLE)
            self._require_complete(work, State.FINDABLE, lambda: metadata.instrument(
                work, instrument_id, self.context()), f"instrument {instrument_id}")
            d = self._new(work, DoiKind.INSTRUMENT, self._suffix(f"instr-{instrument_id}"),
                          State.FINDABLE, subject_id=instrument_id)
            return d.to_json(self.landing_base)

    @retried
    def draft_collection(self, sid: str | None, request: Any) -> dict[str, Any]:
        """A draft DOI for a user-defined selection; publish it when it reads right."""
        request = _object(request)
        with self._unit(sid) as work:
            pub = from_request(work, request, self.context())
            self._may_mint(work, investigations_of(work, pub))
            d = self._new(work, DoiKind.COLLECTION,
                          self._suffix(f"dc-{secrets.token_hex(5)}"), State.DRAFT,
                          request=dump(pub))
            return d.to_json(self.landing_base)

    @retried
    def publish(self, sid: str | None, doi: str) -> dict[str, Any]:
        with self._unit(sid) as work:
            d = self._get(work, doi)
            self._may_change(work, d)
            if d.withdrawn is not None:
                raise bad_parameter(f"DOI {d.doi} was withdrawn; mint a new version instead")
            return self._advance(work, d, State.FINDABLE)

    @retried
    def new_version(self, sid: str | None, doi: str, changes: Any = None) -> dict[str, Any]:
        """A new DOI for a new version of a published investigation or collection; the
        versions and a concept DOI naming them all link each other."""
        changes = _object(changes or {})
        with self._unit(sid) as work:
            d = self._get(work, doi)
            self._may_change(work, d)
            if d.kind not in (DoiKind.INVESTIGATION, DoiKind.COLLECTION):
                raise bad_parameter(f"DOI {d.doi} names {d.kind.value} {d.subject_id or ''}"
                                    "; only investigations and collections have versions")
            concept = d.concept
            versions = self.dois.versions(work.conn, concept) if concept else [d]
            latest = versions[-1]
            if latest.state is not State.FINDABLE and latest.target is not State.FINDABLE:
                raise bad_parameter(f"The latest version, {latest.doi}, is not published yet;"
                                    " publish or change it instead of making a new version")
            pub = self._publication(_as_system(work), latest)
            pub = revise(work, pub, changes, self.context())  # checked as the caller
            self._may_mint(work, investigations_of(work, pub))
            base = versions[0].doi.split("/", 1)[1]
            if concept is None:
                concept = f"{self.settings.prefix or _prefix(d.doi)}/{base}.all-versions"
                self._new(work, DoiKind.CONCEPT, concept.split("/", 1)[1], State.FINDABLE)
                self.dois.set(work.conn, d.doi, concept=concept, version=1)
                self._queue(work, d.doi)
            n = (latest.version or 1) + 1
            new = self._new(work, d.kind, f"{base}.v{n}", State.DRAFT,
                            subject_id=d.subject_id, request=dump(pub),
                            concept=concept, version=n)
            # the previous version and the concept gain links to the new one
            self._queue(work, latest.doi)
            self._queue(work, concept)
            return new.to_json(self.landing_base)

    @retried
    def withdraw(self, sid: str | None, doi: str, reason: str,
                 replaced_by: str | None = None) -> dict[str, Any]:
        """Hide a published DOI (it keeps resolving, to a tombstone saying why)."""
        if not reason or not reason.strip():
            raise bad_parameter("Say why the DOI is withdrawn (reason): the tombstone shows it")
        with self._unit(sid) as work:
            d = self._get(work, doi)
            self._may_change(work, d)
            if d.state in (State.PENDING, State.DRAFT) and d.target is State.DRAFT:
                raise bad_parameter(f"DOI {d.doi} is a draft: delete it rather than withdraw "
                                    "it (a draft never resolved)")
            self.dois.set(work.conn, d.doi, withdrawn=utcnow(), reason=reason.strip()[:1023],
                          replaced_by=normalize_ref(replaced_by), target=State.REGISTERED)
            self._queue(work, d.doi)
            return self._get(work, d.doi).to_json(self.landing_base)

    @retried
    def delete_draft(self, sid: str | None, doi: str) -> None:
        with self._unit(sid) as work:
            d = self._get(work, doi)
            self._may_change(work, d)
            if d.state not in (State.PENDING, State.DRAFT) or d.target is not State.DRAFT:
                raise bad_parameter(f"DOI {d.doi} is {d.target.value}, not a draft: it can't "
                                    "be deleted (withdraw it instead)")
            self.dois.set(work.conn, d.doi, target=State.PENDING)  # the job deletes it
            self._queue(work, d.doi)

    def state(self, sid: str | None, doi: str) -> dict[str, Any]:
        """A DOI's state, for whoever may change it (its minter, those who may mint what it
        names, root)."""
        with self._unit(sid, read_only=True) as work:
            d = self._get(work, doi)
            self._may_change(work, d)
            return d.to_json(self.landing_base)

    def list(self, sid: str | None) -> list[dict[str, Any]]:
        """The caller's DOIs (root: all)."""
        with self._unit(sid, read_only=True) as work:
            rows = self.dois.all(work.conn, None if work.root else work.user)
            return [d.to_json(self.landing_base) for d in rows]

    # -- request helpers ----------------------------------------------------------------------

    def _get(self, work: Work, doi: str) -> Doi:
        d = self.dois.get(work.conn, doi)
        if d is None:
            raise no_such_object(f"No DOI {normalize(doi)} was minted by this Cairn")
        return d

    def _suffix(self, tail: str) -> str:
        return f"{self.settings.suffix_prefix}{tail}".lower()

    def _new(self, work: Work, kind: DoiKind, suffix: str, target: State, *,
             subject_id: int | None = None, request: dict[str, Any] | None = None,
             concept: str | None = None, version: int | None = None) -> Doi:
        if not self.settings.can_mint:
            raise bad_parameter("This Cairn mints no DOIs: [publishing] datacite_url, prefix, "
                                "username and password are not configured")
        now = utcnow()
        d = Doi(doi=normalize(f"{self.settings.prefix}/{suffix}"), kind=kind,
                state=State.PENDING, target=target, created_by=work.user, created=now,
                updated=now, subject_id=subject_id, request=request, concept=concept,
                version=version)
        if self.dois.get(work.conn, d.doi) is not None:
            raise IcatError(ErrorType.OBJECT_ALREADY_EXISTS, f"DOI {d.doi} exists already")
        self.dois.insert(work.conn, d)
        self._known = True
        self._queue(work, d.doi)
        return d

    def _queue(self, work: Work, doi: str) -> None:
        work.enqueue(SYNC, {"doi": normalize(doi)}, key=normalize(doi))

    def _advance(self, work: Work, d: Doi, target: State) -> dict[str, Any]:
        """Ask an existing DOI to go on to ``target`` (never back from findable)."""
        if _rank(target) > _rank(d.target) and d.withdrawn is None:
            if target in _MINTING:  # the caller may: what DataCite gets is read as Cairn
                self._require_complete(work, target,
                                       lambda: self._metadata(_as_system(work), d), d.doi)
            self.dois.set(work.conn, d.doi, target=target)
            self._queue(work, d.doi)
            d = self._get(work, d.doi)
        return d.to_json(self.landing_base)

    def _require_complete(self, work: Work, target: State, build: Callable[[], Metadata],
                          subject: str) -> None:
        if target not in _MINTING:
            return
        findings = checks.check(build(), subject)
        if not checks.mintable(findings):
            missing = "; ".join(f.message for f in findings if f.level == "mandatory")
            raise bad_parameter(f"DataCite would refuse {subject}: {missing}")

    # -- metadata -----------------------------------------------------------------------------

    def _publication(self, work: Work, d: Doi) -> Publication:
        """The DataPublication of a DOI, or, before it is written, the one it will be."""
        if d.publication_id is not None:
            return data_publication.load(work, d.publication_id)
        if d.request is not None:
            return undump(d.request)
        raise no_such_object(f"DOI {d.doi} has no publication")

    def _metadata(self, work: Work, d: Doi) -> Metadata:
        """What DataCite should hold for ``d``: the catalogue's metadata, with the links
        between versions and the withdrawal that only CAIRN_DOI knows."""
        ctx = self.context(d.created.replace(tzinfo=UTC))
        if d.kind is DoiKind.INSTRUMENT:
            assert d.subject_id is not None
            md = metadata.instrument(work, d.subject_id, ctx)
        elif d.kind is DoiKind.CONCEPT:
            versions = self.dois.versions(work.conn, d.doi)
            if not versions:
                raise no_such_object(f"concept DOI {d.doi} names no version")
            md = self._metadata(work, versions[-1])
            attrs = {k: v for k, v in md.attributes.items() if k != "version"}
            related = [r for r in attrs.get("relatedIdentifiers", [])
                       if r.get("relationType") not in _VERSION_RELATIONS]
            related += [_related(v.doi, "HasVersion") for v in versions]
            attrs["relatedIdentifiers"] = related
            md.attributes = attrs
            md.kind = DoiKind.CONCEPT
            return md
        else:
            md = metadata.metadata(work, self._publication(work, d), ctx)
        attrs = dict(md.attributes)
        if d.concept:
            versions = self.dois.versions(work.conn, d.concept)
            numbers = [v.version for v in versions]
            related = list(attrs.get("relatedIdentifiers", []))
            related.append(_related(d.concept, "IsVersionOf"))
            i = numbers.index(d.version) if d.version in numbers else -1
            if i > 0:
                related.append(_related(versions[i - 1].doi, "IsNewVersionOf"))
            if 0 <= i < len(versions) - 1:
                related.append(_related(versions[i + 1].doi, "IsPreviousVersionOf"))
            attrs["relatedIdentifiers"] = related
            attrs["version"] = str(d.version)
        if d.withdrawn is not None:
            attrs["dates"] = [*attrs.get("dates", []),
                              {"date": d.withdrawn.date().isoformat(), "dateType": "Withdrawn",
                               "dateInformation": d.reason or ""}]
        md.attributes = attrs
        return md

    def attributes(self, work: Work, d: Doi) -> dict[str, Any]:
        """What is sent to DataCite for ``d``."""
        return {**self._metadata(work, d).attributes, "url": self.landing_base + d.doi}

    # -- the jobs -----------------------------------------------------------------------------

    def _sync(self, ctx: JobContext) -> None:
        """Bring one DOI where it is asked to be; safe to repeat at any point."""
        doi = ctx.payload["doi"]
        with self.db.read() as conn:
            d = self.dois.get(conn, doi)
        if d is None:
            return
        client = self.client()
        try:
            if d.target is State.PENDING:  # a draft deleted
                self._delete(client, d)
                return
            with self.catalogue.as_system(read_only=True) as work:
                attrs = self.attributes(work, d)
            publication = d.publication_id is None and d.kind in (DoiKind.INVESTIGATION,
                                                                  DoiKind.COLLECTION)
            if d.state is State.PENDING:
                # The draft: DataCite has the name now. Its state is recorded with the
                # DataPublication, so that a DOI shown as a draft has both.
                answer = client.put(d.doi, attrs, target=State.DRAFT)
                state = State(answer.get("state", "draft"))
                reached = {"state": state, "sent": attrs, "error": None}
                if publication:
                    self._write_publication(d, reached)
                else:
                    with self.db.begin() as conn:
                        self.dois.set(conn, d.doi, **reached)
                d.state, d.sent = state, attrs
            elif publication:
                self._write_publication(d, {})
            if publication:
                with self.catalogue.as_system(read_only=True) as work:
                    attrs = self.attributes(work, d)
            if d.kind is DoiKind.INSTRUMENT:
                self._set_instrument_pid(d)
            event = _event(d.state, d.target)
            if event is None and attrs == d.sent:
                return
            if event in ("publish", "register"):
                with self.catalogue.as_system(read_only=True) as work:
                    findings = checks.check(self._metadata(work, d), d.doi)
                if not checks.mintable(findings):
                    raise Failed("; ".join(f.message for f in findings
                                           if f.level == "mandatory"))
            # The event is chosen from the state DataCite holds the DOI in, not from the one
            # recorded here: a DOI DataCite lost (or holds as a draft) is published again
            # rather than created a draft.
            answer = client.put(d.doi, attrs, target=d.target.value)
        except DataCiteError as e:
            with self.db.begin() as conn:
                self.dois.set(conn, d.doi, error=e.message[:4000])
            if e.retryable:
                raise
            raise Failed(f"DataCite refused {d.doi}: {e.message}") from e
        except Failed as e:
            with self.db.begin() as conn:
                self.dois.set(conn, d.doi, error=e.message[:4000])
            raise
        self._record(d, State(answer.get("state", d.state.value)), attrs)

    def _record(self, d: Doi, state: State, sent: dict[str, Any]) -> None:
        """Note what DataCite answered for ``d``: its state, unless that would take the DOI
        back from where Cairn has it without Cairn asking (only a withdrawal takes a DOI
        back: findable to registered); Failed (the DOI's error says why) when DataCite holds
        it elsewhere than asked, for the next refresh to try again."""
        if _rank(state) < _rank(d.state) and state is not d.target:
            refused = (f"DataCite holds DOI {d.doi} as {state.value} although it was sent to "
                       f"be {d.target.value}; Cairn keeps it {d.state.value} and tries again "
                       "at the next refresh")
            with self.db.begin() as conn:
                self.dois.set(conn, d.doi, error=refused)
            raise Failed(refused)
        short = None if _event(state, d.target) is None else (
            f"DataCite kept DOI {d.doi} {state.value} although it was sent to be "
            f"{d.target.value}; Cairn tries again at the next refresh")
        with self.db.begin() as conn:
            self.dois.set(conn, d.doi, state=state, sent=sent, error=short)
        if short is not None:
            raise Failed(short)
        log.info("DOI %s is %s at DataCite", d.doi, state.value)

    def _delete(self, client: DataCite, d: Doi) -> None:
        client.delete(d.doi)
        with self.catalogue.as_system() as work:
            if d.publication_id is not None:
                data_publication.remove(work, d.publication_id)
            self.dois.delete(work.conn, d.doi)
        log.info("draft DOI %s deleted", d.doi)

    def _write_publication(self, d: Doi, reached: dict[str, Any]) -> None:
        """The DataPublication of a DOI DataCite now has (its pid is the DOI), written in
        one transaction with ``reached`` (what DataCite answered, for CAIRN_DOI)."""
        with self.catalogue.as_system(user=d.created_by) as work:
            fresh = self.dois.get(work.conn, d.doi)
            if fresh is None:
                return
            if fresh.publication_id is not None:  # done by an earlier run
                d.publication_id = fresh.publication_id
                if reached:
                    self.dois.set(work.conn, d.doi, **reached)
                return
            pub = self._publication(work, fresh)
            d.publication_id = data_publication.store(work, pub, fresh.doi)
            self.dois.set(work.conn, d.doi, publication_id=d.publication_id, request=None,
                          **reached)
        d.request = None

    def _set_instrument_pid(self, d: Doi) -> None:
        """An instrument without a PID gets its DOI as one."""
        t = self.db.tables["Instrument"]
        with self.db.read() as conn:
            pid = conn.execute(select(t.c.pid).where(t.c.id == d.subject_id)).scalar()
        if pid:
            return
        from cairn.catalogue.objects import Obj
        from cairn.schema import SCHEMA

        with self.catalogue.as_system() as work:
            work.update(Obj(SCHEMA.entities["Instrument"], id=d.subject_id,
                            values={"pid": f"doi:{d.doi}"}))

    def _refresh_job(self, ctx: JobContext) -> None:
        self.refresh()

    def refresh(self) -> int:
        """Send again every DOI whose metadata the catalogue has changed, or that is not yet
        in the state asked for; how many (none without DataCite: they go when it is
        configured)."""
        if not self.settings.can_mint:
            return 0
        with self.db.read() as conn:
            rows = [d for d in self.dois.all(conn) if d.state is not State.PENDING]
        # DOIs whose job waits (perhaps backing off while DataCite is away) or runs
        busy = set() if self.jobs is None else set(self.jobs.queue.active(SYNC, None))
        changed = []
        for d in rows:
            short = d.target is State.PENDING or _event(d.state, d.target) is not None
            if short and d.doi in busy:
                continue
            if d.target is State.PENDING:  # a draft to delete whose job gave up
                changed.append(d.doi)
                continue
            try:
                with self.catalogue.as_system(read_only=True) as work:
                    attrs = self.attributes(work, d)
            except IcatError as e:  # what it named is gone: keep what DataCite has
                log.warning("DOI %s: its metadata can't be built (%s)", d.doi, e.message)
                continue
            # Also a DOI short of the state asked for whose job gave up (or DataCite did not
            # follow): its job chooses the event from the state DataCite holds it in.
            if attrs != d.sent or short:
                changed.append(d.doi)
        if changed and self.jobs is not None:
            with self.db.begin() as conn:
                for doi in changed:
                    self.jobs.enqueue(conn, SYNC, {"doi": doi}, key=doi)
            self.jobs.wake()
        if changed:
            log.info("publishing: %d DOIs to send again", len(changed))
        return len(changed)

    def mint_released(self) -> int:
        """Mint every investigation released since ``auto_mint_from`` that has no DOI and
        that DataCite would accept (the others wait, and `cairn publish check` lists them).
        A DOI is Cairn's (in CAIRN_DOI, whatever its state: the sync job and the refresh
        take it where it was asked to be) or one minted elsewhere and recorded in
        ``Investigation.doi`` (its landing page is served already): neither gets another."""
        start = self.settings.auto_mint_from
        assert start is not None
        inv, t = self.db.tables["Investigation"], self.dois.t
        since = datetime(start.year, start.month, start.day)
        q = (select(inv.c.id).where(inv.c.releaseDate <= self.db.now(),
                                    inv.c.releaseDate >= since,
                                    func.coalesce(func.trim(inv.c.doi), "") == "",
                                    ~select(t.c.doi).where(and_(
                                        t.c.kind == DoiKind.INVESTIGATION.value,
                                        t.c.subject_id == inv.c.id)).exists())
             .order_by(inv.c.releaseDate).limit(1000))
        with self.db.read() as conn:
            ids = [r[0] for r in conn.execute(q)]
        n = 0
        for i in ids:
            try:
                self.mint_investigation(None, i)
                n += 1
            except IcatError as e:
                log.info("investigation %d is released but can't be minted: %s", i, e.message)
        return n

    # -- landing pages ------------------------------------------------------------------------

    def landing(self, doi: str) -> Landing | None:
        """What the landing page of ``doi`` shows: a DOI of Cairn's, or a DataPublication's
        or an instrument's PID recorded in the catalogue."""
        doi = normalize(doi)
        now = datetime.now(UTC)
        with self.catalogue.as_system(read_only=True) as work:
            d = self.dois.get(work.conn, doi)
            if d is None:
                return self._landing_of_pid(work, doi, now)
            if d.state in (State.PENDING, State.DRAFT):
                return None  # a draft is not public (and does not resolve at DataCite)
            return self._landing(work, d, now)

    def _landing(self, work: Work, d: Doi, now: datetime) -> Landing:
        withdrawn, reason = d.withdrawn, d.reason
        try:
            md = self._metadata(work, d)
        except IcatError:
            # What it named was deleted from the catalogue: a tombstone from what was sent.
            md = Metadata(d.kind, d.sent or {})
            withdrawn = withdrawn or d.updated
            reason = reason or "The data this DOI names are no longer in the catalogue."
        concept = d.doi if d.kind is DoiKind.CONCEPT else d.concept
        versions = [Version(v.doi, v.version or 1, v.state)
                    for v in reversed(self.dois.versions(work.conn, concept))] if concept else []
        return Landing(doi=d.doi, kind=d.kind, state=d.state, metadata=md,
                       url=self.landing_base + d.doi,
                       withdrawn=withdrawn.replace(tzinfo=UTC) if withdrawn else None,
                       reason=reason, replaced_by=d.replaced_by, versions=versions,
                       concept=concept, data_service_url=self.data_service_url, now=now)

    def _landing_of_pid(self, work: Work, doi: str, now: datetime) -> Landing | None:
        """A DOI minted elsewhere and recorded in the catalogue: a DataPublication's pid, an
        instrument's pid or an investigation's doi."""
        t = self.db.tables
        pids = [doi, f"doi:{doi}", f"https://doi.org/{doi}"]
        ctx = self.context()

        def find(entity: str, column: str) -> int | None:
            table = t[entity]
            q = select(table.c.id).where(func.lower(table.c[column]).in_(pids)).order_by(
                table.c.id).limit(1)
            return work.conn.execute(q).scalar()

        if (pub_id := find("DataPublication", "pid")) is not None:
            md = metadata.metadata(work, data_publication.load(work, pub_id), ctx)
            kind = DoiKind.COLLECTION
        elif (ins_id := find("Instrument", "pid")) is not None:
            md = metadata.instrument(work, ins_id, ctx)
            kind = DoiKind.INSTRUMENT
        elif (inv_id := find("Investigation", "doi")) is not None:
            md = metadata.metadata(work, from_investigation(work, inv_id, ctx), ctx)
            kind = DoiKind.INVESTIGATION
        else:
            return None
        return Landing(doi=doi, kind=kind, state=State.FINDABLE, metadata=md,
                       url=self.landing_base + doi, data_service_url=self.data_service_url,
                       now=now)


_VERSION_RELATIONS = {"HasVersion", "IsVersionOf", "IsNewVersionOf", "IsPreviousVersionOf"}


def _related(doi: str, relation: str) -> dict[str, str]:
    return {"relatedIdentifier": doi, "relatedIdentifierType": "DOI", "relationType": relation}


_ORDER = (State.PENDING, State.DRAFT, State.REGISTERED, State.FINDABLE)


def _rank(state: State) -> int:
    """How far along a DOI in ``state`` is (pending, draft, registered, findable)."""
    return _ORDER.index(state)


def _event(state: State, target: State) -> str | None:
    """DataCite's event taking ``state`` to ``target`` (None: nothing to change)."""
    if target is State.FINDABLE and state is not State.FINDABLE:
        return "publish"
    if target is State.REGISTERED:
        return {State.FINDABLE: "hide", State.DRAFT: "register"}.get(state)
    return None


def _as_system(work: Work) -> Work:
    """The caller's transaction read with Cairn's own rights, once the caller's right to act
    has been decided: a DOI's DataPublication (and what hangs off it) and the metadata built
    from it are what DataCite gets whoever asks, and a facility's rules need not let even
    its authors read them (the demo's do not). The same connection, so the same snapshot
    (and no second connection held while the first is); read only."""
    return replace(work, root=True, read_only=True, changes=Changes(), enqueued=False)


def _require(work: Work, entity: str, id: int) -> None:
    """NO_SUCH_OBJECT_FOUND for an id that does not exist (a rule readable by all would let
    it pass ``require_readable``), then INSUFFICIENT_PRIVILEGES unless it is readable."""
    t = work.tables[entity]
    if work.conn.execute(select(t.c.id).where(t.c.id == id)).first() is None:
        raise no_such_object(f"{entity}[id:{id}] does not exist")
    work.require_readable(entity, [id])


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad_parameter("The request must be a JSON object")
    return value


def _prefix(doi: str) -> str:
    return doi.split("/", 1)[0]


def normalize_ref(ref: str | None) -> str | None:
    """What replaces a withdrawn DOI: a DOI (kept bare) or a URL."""
    if ref is None or not ref.strip():
        return None
    r = ref.strip()
    if r.lower().startswith(("http://", "https://")) and "doi.org/" not in r.lower():
        return r[:255]
    d = normalize(r)
    if not d.startswith("10.") or "/" not in d:
        raise bad_parameter(f"replacedBy {ref!r} is neither a DOI nor an http(s) URL")
    return d[:255]


def pub_name(pub: Publication) -> str:
    return repr(pub.title)

