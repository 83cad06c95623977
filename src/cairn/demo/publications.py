"""The demo's published data: a few investigations with DOIs, and a decommissioned beamline
whose PID resolves to a tombstone, so the landing pages can be opened on a fresh demo.

The demo reaches no DataCite: its DOIs (DataCite's test prefix 10.5072, which never resolves)
are recorded as already findable, with the metadata Cairn would have sent. Nothing is sent
later either, unless a facility configures DataCite on this database.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from cairn.catalogue.objects import Obj
from cairn.catalogue.service import Catalogue
from cairn.catalogue.work import Work
from cairn.demo.vocab import DOI_PREFIX
from cairn.publishing import data_publication
from cairn.publishing.investigation import from_investigation
from cairn.publishing.model import Kind, State
from cairn.publishing.service import PublishingService
from cairn.publishing.store import Doi, utcnow
from cairn.schema import SCHEMA

#: Investigations published.
PUBLISHED = 3
#: The retired beamline: commissioned, decommissioned, and what it was.
RETIRED = ("I04-1", "I04-1 Fixed-wavelength MX (retired)", datetime(2009, 9, 1),
           datetime(2023, 12, 15),
           "A fixed-wavelength macromolecular crystallography beamline, replaced by I03's "
           "upgraded endstation in December 2023.")


def publish_demo(catalogue: Catalogue, user: str) -> list[str]:
    """Record the demo's DOIs; returns them (investigations first, then the instrument)."""
    settings = catalogue.settings
    service = PublishingService(catalogue, settings.publishing, settings.public_url)
    inv = catalogue.db.tables["Investigation"]
    dois: list[str] = []
    with catalogue.as_system(user=user) as work:
        q = (select(inv.c.id, inv.c.doi)
             .where(inv.c.doi.is_not(None), inv.c.releaseDate <= work.now)
             .order_by(inv.c.id).limit(PUBLISHED))
        ctx = service.context()
        for investigation, doi in work.conn.execute(q).all():
            pub = from_investigation(work, investigation, ctx)
            publication = data_publication.store(work, pub, doi)
            dois.append(_record(service, work, Kind.INVESTIGATION, doi, investigation,
                                publication))
        facility = work.conn.execute(select(catalogue.db.tables["Facility"].c.id)).scalar_one()
        name, full, start, end, description = RETIRED
        pid = f"{DOI_PREFIX}/lsf.{name.lower()}"
        instrument = work.create(Obj(SCHEMA.entities["Instrument"], values={
            "name": name, "fullName": full, "type": "MX", "description": description,
            "pid": f"doi:{pid}", "startDate": start, "endDate": end},
            ones={"facility": Obj(SCHEMA.entities["Facility"], id=facility)}))
        dois.append(_record(service, work, Kind.INSTRUMENT, pid, instrument, None))
    return dois


def _record(service: PublishingService, work: Work, kind: Kind, doi: str, subject: int,
            publication: int | None) -> str:
    """A CAIRN_DOI row as a minted, findable DOI whose metadata DataCite has."""
    now = utcnow()
    d = Doi(doi=doi.lower(), kind=kind, state=State.FINDABLE, target=State.FINDABLE,
            created_by=work.user, created=now, updated=now, subject_id=subject,
            publication_id=publication)
    service.dois.insert(work.conn, d)
    service.dois.set(work.conn, d.doi, sent=service.attributes(work, d))
    return d.doi
