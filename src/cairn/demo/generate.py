"""The demo generator: fill an empty catalogue with a realistic, deterministic facility.

The facility (LSF, a fictional synchrotron, see :mod:`cairn.demo.vocab`) has six beamlines,
two user cycles a year from 2016 to 2025, users, proposals with several visits, samples,
datasets and datafiles with parameters: what DataGateway-style portals browse ("my
investigations", datasets of an investigation, files of a dataset, parameter filters).

Size: ``scale=1`` is 20 investigations and about 10,000 datafiles; everything that hangs off
an investigation grows linearly with ``scale`` through more investigations (and users), never
through bigger datasets, so ``scale=100`` is about a million datafiles shaped like the ten
thousand of ``scale=1``.

Generation is streamed: one investigation with all its children is generated in memory, then
buffered rows are written in batches (:mod:`cairn.demo.bulk`), so memory stays constant
whatever the scale. The whole load is one transaction: it either completes or leaves the
catalogue empty. The same ``seed`` and ``scale`` always give the same content (apart from
createTime/modTime, which are the load time).

Besides the rows, the load sets up what trying the demo needs: the rules of a facility
(:mod:`cairn.demo.rules`), a password for every demo user (:mod:`cairn.demo.accounts`), and,
given the data service's main storage, every datafile's bytes at its location
(:mod:`cairn.demo.contents`, :mod:`cairn.demo.files`). A datafile's ``fileSize`` and
``checksum`` (CRC32, as ids.server writes it) are then those of its bytes.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from cairn.catalogue.changes import ChangeKind
from cairn.catalogue.service import Catalogue
from cairn.catalogue.work import Work
from cairn.db import sizes
from cairn.db.tables import Tables
from cairn.demo import accounts, rules
from cairn.demo.bulk import BulkWriter, Sink
from cairn.demo.contents import Scan, measure, render
from cairn.demo.files import DemoFiles
from cairn.demo.vocab import (
    BEAMLINES,
    CYCLES,
    DATAFILE_FORMATS,
    DATASET_TYPES,
    DEFAULT_FILE_SIZE,
    DEMO_FILE_SIZES,
    DOI_PREFIX,
    FACILITY,
    FAMILY_NAMES,
    FILE_SIZES,
    FIRST_YEAR,
    GIVEN_NAMES,
    INSTITUTIONS,
    INVESTIGATION_TYPE_DESCRIPTIONS,
    INVESTIGATION_TYPES,
    LAST_YEAR,
    PARAMETER_TYPES,
    SAMPLE_TYPES,
    STAFF_INSTITUTION,
    TECHNIQUE_DESCRIPTIONS,
    Beamline,
    ParamType,
)
from cairn.ids.checksum import crc32_hex
from cairn.ids.locations import add_digest
from cairn.ids.storage import Storage

__all__ = ["DEMO_ENTITIES", "CatalogueNotEmpty", "load_demo"]

INVESTIGATIONS_PER_SCALE = 20
REVISIT_PROBABILITY = 0.15  # share of investigations that are a further visit of a proposal
CO_INVESTIGATORS = (0, 4)
DATASETS = (4, 16)  # per investigation: with ~50 files per dataset, ~500 files per visit
SAMPLES = (1, 3)
KEYWORDS = (2, 4)
STAFF_PER_BEAMLINE = 2
USERS_PER_INVESTIGATION = 1.5
MIN_EXTERNAL_USERS = 8
# Releases on or before this day count as public: fixed so the content doesn't depend on today.
PUBLICATION_HORIZON = datetime(LAST_YEAR, 12, 31)

#: Entities the demo writes, in the order they are loaded; all must be empty beforehand.
DEMO_ENTITIES = (
    "Facility", "Technique", "Instrument", "FacilityCycle", "InvestigationType", "DatasetType",
    "DatafileFormat", "SampleType", "ParameterType", "PermissibleStringValue", "User",
    "Grouping", "UserGroup", "InstrumentScientist", "Investigation", "InvestigationUser",
    "InvestigationInstrument", "InvestigationFacilityCycle", "InvestigationParameter", "Keyword",
    "Sample", "SampleParameter", "Dataset", "DatasetParameter", "DatasetTechnique",
    "DatasetInstrument", "Datafile", "DatafileParameter",
)

_SCAN_TYPES = {"MX": "rotation", "imaging": "tomography"}  # other techniques vary
_PARAM_COLUMNS = ("type", "numericValue", "stringValue", "dateTimeValue", "error",
                  "rangeBottom", "rangeTop")


class CatalogueNotEmpty(ValueError):
    """The demo only loads into an empty catalogue (it numbers rows itself)."""


def load_demo(catalogue: Catalogue, scale: float = 1.0, seed: int = 1,
              user: str = "db/root", progress: Callable[[str], None] | None = None, *,
              storage: Storage | None = None, file_size: int | None = None,
              password: str | None = accounts.DEMO_PASSWORD) -> dict[str, int]:
    """Load the demo facility into an empty catalogue; return the rows inserted per entity.

    One unit of work of the system, written as ``user``: its rows are change events like any
    other write's. Raises :class:`CatalogueNotEmpty` (a ``ValueError``) if any table the demo
    writes already holds rows; nothing is written then.

    ``storage`` (the data service's main storage) receives every datafile's bytes; without
    it only the catalogue is loaded (benchmarks). ``file_size`` is the typical size of a
    datafile in bytes (formats vary around it; default 4 KiB). ``password`` is set for
    every ``db/`` demo user (None: none). The rules and public steps of
    :mod:`cairn.demo.rules` are created unless already there. If the load fails, the files
    it wrote are removed again.

    Datasets and investigations are written with fileSize and fileCount 0, and
    :func:`cairn.db.sizes.bulk_load` makes them the sums of their datafiles.
    """
    if not scale > 0:
        raise ValueError(f"scale must be positive, not {scale!r}")
    file_size = file_size or DEFAULT_FILE_SIZE
    if not file_size > 0:
        raise ValueError(f"file size must be positive, not {file_size!r}")
    files = DemoFiles(storage) if storage is not None else None
    try:
        with catalogue.as_system(user=user) as work:
            _check_empty(work.conn, work.tables)
            writer = BulkWriter(work.conn, work.tables, user, work.now)
            generator = _Generator(writer, random.Random(seed), scale, progress, files,
                                   file_size / DEFAULT_FILE_SIZE, catalogue.settings.data.key)
            with sizes.bulk_load(work.conn), writer, _no_cycle_collection():
                generator.run()
                writer.finish()
            for entity, ids in writer.created().items():
                work.record(entity, ChangeKind.CREATE, ids)
            _ready_to_try(work, generator, files, password)
    except BaseException:
        if files is not None:
            files.abort()  # a failed load leaves no files behind either
        raise
    generator.report(final=True)
    if files is not None and progress is not None:
        progress(f"datafile contents: {files.files:,} files, {files.bytes / 1e6:,.1f} MB "
                 f"written to {storage!r} in {files.seconds:.1f} s")
    return writer.counts()


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """The cyclic garbage collector off while rows are generated and sent.

    A batch's rows are tens of thousands of tuples that live until the batch is sent, so
    they reach the oldest generation, and each full collection then walks all of them: a
    quarter of the load's Python time. The load makes no reference cycles of its own (rows,
    strings, datetimes; each batch freed by reference counting once sent), so memory stays
    flat without the collector; it is turned back on, as it was, when the load ends.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _ready_to_try(work: Work, generator: _Generator, files: DemoFiles | None,
                  password: str | None) -> None:
    """Rules, passwords and every file written: what trying the demo as a user needs."""
    rules.install(work)
    if password:
        accounts.set_passwords(work, generator.user_names, password)
    if files is not None:
        files.finish()


def _check_empty(conn: Connection, tables: Tables) -> None:
    busy = [name for name in DEMO_ENTITIES
            if conn.execute(select(tables[name].c.id).limit(1)).first() is not None]
    if busy:
        raise CatalogueNotEmpty(
            "the demo needs an empty catalogue, but these tables already hold rows: "
            + ", ".join(busy))


@dataclass
class _Cycle:
    id: int
    name: str
    start: datetime
    end: datetime


@dataclass
class _Proposal:
    name: str
    year: int
    beamline: Beamline
    type_id: int
    title: str
    summary: str
    pi: int
    co_investigators: list[int]
    materials: tuple[str, ...]
    visits: int = 0


def _orcid(index: int) -> str:
    """A syntactically valid ORCID iD (ISO 7064 11,2 check digit), unique per index."""
    base = f"00000002{(index * 7_654_321 + 1_234_567) % 10**7:07d}"
    total = 0
    for d in base:
        total = (total + int(d)) * 2
    check = (12 - total % 11) % 11
    s = base + ("X" if check == 10 else str(check))
    return "-".join(s[i:i + 4] for i in range(0, 16, 4))


def _human(n: float) -> str:
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    if n >= 1e4:
        return f"{n / 1e3:.0f}k"
    return f"{n:.0f}"


class _Generator:
    def __init__(self, writer: BulkWriter, rng: random.Random, scale: float,
                 progress: Callable[[str], None] | None, files: DemoFiles | None = None,
                 size_factor: float = 1.0, location_key: str | None = None) -> None:
        self.w = writer
        self.rng = rng
        self.progress = progress
        self.files = files
        self.size_factor = size_factor
        self.location_key = location_key  # the data service's [data] key, if any
        self.user_names: list[str] = []
        self.n_investigations = max(1, round(INVESTIGATIONS_PER_SCALE * scale))
        self.n_external = max(MIN_EXTERNAL_USERS,
                              round(self.n_investigations * USERS_PER_INVESTIGATION))
        self.done = 0
        self.started = time.perf_counter()
        self.last_report = self.started
        s = writer.sink
        self.facility_s = s("Facility", ("name", "fullName", "description", "url",
                                         "daysUntilRelease"))
        self.technique_s = s("Technique", ("name", "description"))
        self.instrument_s = s("Instrument", ("facility", "name", "fullName", "type",
                                             "description", "url", "pid", "startDate"))
        self.cycle_s = s("FacilityCycle", ("facility", "name", "description", "startDate",
                                           "endDate"))
        self.inv_type_s = s("InvestigationType", ("facility", "name", "description"))
        self.ds_type_s = s("DatasetType", ("facility", "name", "description"))
        self.format_s = s("DatafileFormat", ("facility", "name", "version", "type",
                                             "description"))
        self.sample_type_s = s("SampleType", ("facility", "name", "molecularFormula",
                                              "safetyInformation"))
        self.param_type_s = s("ParameterType", (
            "facility", "name", "units", "unitsFullName", "valueType", "description",
            "enforced", "verified", "minimumNumericValue", "maximumNumericValue",
            "applicableToInvestigation", "applicableToSample", "applicableToDataset",
            "applicableToDatafile", "applicableToDataCollection"))
        self.psv_s = s("PermissibleStringValue", ("type", "value"))
        self.user_s = s("User", ("name", "fullName", "givenName", "familyName", "email",
                                 "orcidId", "affiliation"))
        self.grouping_s = s("Grouping", ("name",))
        self.user_group_s = s("UserGroup", ("user", "grouping"))
        self.scientist_s = s("InstrumentScientist", ("user", "instrument"))
        self.inv_s = s("Investigation", (
            "facility", "type", "name", "visitId", "title", "summary", "startDate", "endDate",
            "releaseDate", "doi", "fileSize", "fileCount"))
        self.inv_user_s = s("InvestigationUser", ("user", "investigation", "role"))
        self.inv_instr_s = s("InvestigationInstrument", ("investigation", "instrument"))
        self.inv_cycle_s = s("InvestigationFacilityCycle", ("investigation", "facilityCycle"))
        self.inv_param_s = s("InvestigationParameter", ("investigation", *_PARAM_COLUMNS))
        self.keyword_s = s("Keyword", ("investigation", "name"))
        self.sample_s = s("Sample", ("investigation", "name", "type", "pid"))
        self.sample_param_s = s("SampleParameter", ("sample", *_PARAM_COLUMNS))
        self.ds_s = s("Dataset", (
            "investigation", "name", "type", "sample", "description", "location", "complete",
            "startDate", "endDate", "doi", "fileSize", "fileCount"))
        self.ds_param_s = s("DatasetParameter", ("dataset", *_PARAM_COLUMNS))
        self.ds_technique_s = s("DatasetTechnique", ("dataset", "technique"))
        self.ds_instr_s = s("DatasetInstrument", ("dataset", "instrument"))
        self.df_s = s("Datafile", ("dataset", "name", "location", "fileSize", "checksum",
                                   "datafileCreateTime", "datafileModTime", "datafileFormat"))
        self.df_param_s = s("DatafileParameter", ("datafile", *_PARAM_COLUMNS))
        assert set(writer.sinks) == set(DEMO_ENTITIES)

    # -- reference data -----------------------------------------------------------------

    def run(self) -> None:
        self._reference()
        self._users()
        self._investigations()

    def _reference(self) -> None:
        f = FACILITY
        self.facility = self.facility_s.add((f["name"], f["fullName"], f["description"],
                                             f["url"], f["daysUntilRelease"]))
        self.release_days = f["daysUntilRelease"]
        fac = self.facility
        self.technique = {bl.technique: self.technique_s.add(
            (bl.technique, TECHNIQUE_DESCRIPTIONS[bl.technique])) for bl in BEAMLINES}
        self.instrument = {bl.name: self.instrument_s.add((
            fac, bl.name, f"{bl.name} {bl.full_name}", bl.type, bl.description,
            f"{f['url']}/beamlines/{bl.name.lower()}", f"{DOI_PREFIX}/lsf.{bl.name.lower()}",
            datetime(bl.start_year, 4, 1))) for bl in BEAMLINES}
        self.cycles: list[_Cycle] = []
        for year in range(FIRST_YEAR, LAST_YEAR + 1):
            for k, ((m0, d0), (m1, d1)) in enumerate(CYCLES, 1):
                name = f"{year}-{k}"
                start, end = datetime(year, m0, d0, 8), datetime(year, m1, d1, 8)
                cid = self.cycle_s.add((fac, name, f"LSF user cycle {name}", start, end))
                self.cycles.append(_Cycle(cid, name, start, end))
        self.inv_types = [(self.inv_type_s.add((fac, name, INVESTIGATION_TYPE_DESCRIPTIONS[name])),
                           weight) for name, weight in INVESTIGATION_TYPES]
        self.ds_type = {name: self.ds_type_s.add((fac, name, desc)) for name, desc in DATASET_TYPES}
        self.format: dict[str, tuple[int, str]] = {
            name: (self.format_s.add((fac, name, version, typ, desc)), ext)
            for name, version, typ, desc, ext in DATAFILE_FORMATS}
        self.sample_type = {name: self.sample_type_s.add((fac, name, formula, safety))
                            for name, formula, safety in SAMPLE_TYPES}
        self.ptype: dict[str, tuple[int, ParamType]] = {}
        for pt in PARAMETER_TYPES:
            numeric = pt.value_type == "NUMERIC"
            pid = self.param_type_s.add((
                fac, pt.name, pt.units, pt.units_full, pt.value_type, pt.description,
                pt.enforced, True, pt.low if numeric else None, pt.high if numeric else None,
                "I" in pt.applicable, "S" in pt.applicable, "DS" in pt.applicable,
                "DF" in pt.applicable, False))
            self.ptype[pt.name] = (pid, pt)
            for value in pt.permissible:
                self.psv_s.add((pid, value))

    def _users(self) -> None:
        rng = self.rng
        seen: dict[str, int] = {}

        def person(given: str, family: str, institution: tuple[str, str]) -> int:
            login = (given[0] + family).lower()
            n = seen.get(login, 0) + 1
            seen[login] = n
            if n > 1:
                login = f"{login}{n}"
            email = f"{given}.{family}{n if n > 1 else ''}@{institution[1]}".lower()
            self.user_names.append(f"db/{login}")
            return self.user_s.add((f"db/{login}", f"{given} {family}", given, family, email,
                                    _orcid(self.user_s.next_id), institution[0]))

        staff_group = self.grouping_s.add(("lsf-staff",))
        users_group = self.grouping_s.add(("lsf-users",))
        # The classic ICAT demo user comes first (db/jbloggs, id 1); the skewed pick in
        # _pick_users makes them the busiest user, with a well-filled "My Data" page.
        self.external = [person("Joe", "Bloggs", INSTITUTIONS[0])]
        for bl in BEAMLINES:
            group = self.grouping_s.add((f"{bl.name.lower()}-scientists",))
            for _ in range(STAFF_PER_BEAMLINE):
                uid = person(rng.choice(GIVEN_NAMES), rng.choice(FAMILY_NAMES),
                             STAFF_INSTITUTION)
                self.scientist_s.add((uid, self.instrument[bl.name]))
                self.user_group_s.add((uid, staff_group))
                self.user_group_s.add((uid, group))
        for _ in range(self.n_external - 1):
            self.external.append(person(rng.choice(GIVEN_NAMES), rng.choice(FAMILY_NAMES),
                                        rng.choice(INSTITUTIONS)))
        for uid in self.external:
            self.user_group_s.add((uid, users_group))

    # -- investigations -----------------------------------------------------------------

    def _pick_users(self, k: int) -> list[int]:
        """k distinct external users; low indices are favoured, as a few users do most work."""
        rnd, n = self.rng.random, len(self.external)
        chosen: list[int] = []
        while len(chosen) < min(k, n):
            uid = self.external[int(n * rnd() ** 2)]
            if uid not in chosen:
                chosen.append(uid)
        return chosen

    def _new_proposal(self, year: int, counters: dict[int, int]) -> _Proposal:
        rng = self.rng
        counters[year] = counters.get(year, 0) + 1
        bl = rng.choice(BEAMLINES)
        type_ids, weights = zip(*self.inv_types, strict=True)
        materials = tuple(rng.sample(bl.materials, rng.randint(1, min(2, len(bl.materials)))))
        title = rng.choice(bl.titles).format(m=materials[0])
        people = self._pick_users(1 + rng.randint(*CO_INVESTIGATORS))
        summary = (f"{title}. We propose to use {bl.technique} on {bl.name} "
                   f"({bl.full_name}) to study {' and '.join(materials)}. "
                   f"The results will address open questions in "
                   f"{', '.join(rng.sample(bl.keywords, 2))}.")
        return _Proposal(name=f"{FACILITY['name']}-{year}-{counters[year]:04d}", year=year,
                         beamline=bl, type_id=rng.choices(type_ids, weights)[0], title=title,
                         summary=summary, pi=people[0], co_investigators=people[1:],
                         materials=materials)

    def _investigations(self) -> None:
        rng = self.rng
        counters: dict[int, int] = {}
        previous: list[_Proposal] = []  # proposals of the previous cycle may get another visit
        current: list[_Proposal] = []
        cycle_index = -1
        n, n_cycles = self.n_investigations, len(self.cycles)
        for i in range(n):
            ci = i * n_cycles // n
            if ci != cycle_index:
                cycle_index, previous, current = ci, current or previous, []
            cycle = self.cycles[ci]
            if previous and rng.random() < REVISIT_PROBABILITY:
                proposal = previous.pop(rng.randrange(len(previous)))
            else:
                proposal = self._new_proposal(cycle.start.year, counters)
            proposal.visits += 1
            current.append(proposal)
            self._investigation(proposal, cycle, last_cycle=ci == n_cycles - 1)
            self.done = i + 1
            if self.w.maybe_flush():
                self.report()

    def _investigation(self, p: _Proposal, cycle: _Cycle, last_cycle: bool) -> None:
        rng = self.rng
        bl = p.beamline
        inv = self.inv_s.new_id()
        visit = str(p.visits)
        days = (cycle.end - cycle.start).days
        start = cycle.start + timedelta(days=rng.randrange(days - 6), hours=rng.randint(0, 3))
        end = start + timedelta(days=rng.randint(1, 4), hours=rng.randint(0, 12))
        release = end + timedelta(days=self.release_days)
        doi = f"{DOI_PREFIX}/{p.name.lower()}-{visit}" \
            if release <= PUBLICATION_HORIZON and rng.random() < 0.5 else None

        self.inv_user_s.add((p.pi, inv, "PI"))
        for uid in p.co_investigators:
            self.inv_user_s.add((uid, inv, "CO-INVESTIGATOR"))
        self.inv_instr_s.add((inv, self.instrument[bl.name]))
        self.inv_cycle_s.add((inv, cycle.id))
        self._param(self.inv_param_s, inv, "beamtime_allocated", float(rng.randint(3, 24)))
        self._param(self.inv_param_s, inv, "proposal_panel", bl.panel)
        self._param(self.inv_param_s, inv, "proposal_received",
                    start - timedelta(days=rng.randint(90, 240)))
        for kw in rng.sample(bl.keywords, rng.randint(*KEYWORDS)):
            self.keyword_s.add((inv, kw))

        samples: list[tuple[int, str]] = []
        for k in range(rng.randint(*SAMPLES)):
            material = p.materials[k % len(p.materials)]
            sid = self.sample_s.add((inv, f"{material}-{k + 1:02d}", self.sample_type[material],
                                     f"lsf:sample/{p.name.lower()}-{visit}-{k + 1}"
                                     if rng.random() < 0.5 else None))
            state = "single crystal" if bl.type == "MX" else rng.choice(
                ("powder", "solid", "thin film", "solution"))
            samples.append((sid, state))
            self._param(self.sample_param_s, sid, "sample_state", state)
            self._param(self.sample_param_s, sid, "sample_mass", self._value("sample_mass", bl))
            if rng.random() < 0.5:
                self._param(self.sample_param_s, sid, "sample_received",
                            start - timedelta(days=rng.randint(2, 30)))

        n_ds = rng.randint(*DATASETS)
        slot = int((end - start).total_seconds()) // n_ds
        location = f"{p.name}-{visit}"
        for k in range(n_ds):
            ds_start = start + timedelta(seconds=k * slot + rng.randint(0, 600))
            self._dataset(inv, k, bl, location, ds_start, samples, doi,
                          complete=not (last_cycle and rng.random() < 0.5))
        # fileSize, fileCount: 0 until the datafiles add up (sizes.bulk_load).
        self.inv_s.put(inv, (self.facility, p.type_id, p.name, visit, p.title, p.summary, start,
                             end, release, doi, 0, 0))

    def _dataset(self, inv: int, k: int, bl: Beamline, inv_location: str, ds_start: datetime,
                 samples: list[tuple[int, str]], inv_doi: str | None,
                 complete: bool) -> None:
        """Generate one dataset with its files."""
        rng = self.rng
        x = rng.random()
        if k == 0:  # a visit often starts with a calibration, and has scans before results
            kind = "calibration" if x < 0.6 else "raw"
        else:
            kind = "processed" if x < 0.25 else "calibration" if x < 0.28 else "raw"
        stem = {"raw": "scan", "processed": "processed", "calibration": "calib"}[kind]
        name = f"{stem}_{k + 1:04d}"
        ds = self.ds_s.new_id()
        location = f"{inv_location}/{name}"
        sample_id, state = rng.choice(samples) if samples and kind != "calibration" \
            and rng.random() < 0.8 else (None, None)

        add_param = self._param
        if kind == "raw":
            chosen = bl.scan_params[:3] + tuple(
                rng.sample(bl.scan_params[3:], rng.randint(0, len(bl.scan_params) - 3)))
            for pname in chosen:
                add_param(self.ds_param_s, ds, pname, self._value(pname, bl, ds_start))
            if state is not None:
                add_param(self.ds_param_s, ds, "sample_state", state)
        elif kind == "calibration":
            add_param(self.ds_param_s, ds, "photon_energy", self._value("photon_energy", bl))
            add_param(self.ds_param_s, ds, "exposure_time", self._value("exposure_time", bl))
        elif bl.type == "MX":
            add_param(self.ds_param_s, ds, "resolution", self._value("resolution", bl))
        self.ds_technique_s.add((ds, self.technique[bl.technique]))
        self.ds_instr_s.add((ds, self.instrument[bl.name]))

        t = ds_start
        scan = Scan(bl.name, bl.technique, inv_location, name)
        if kind == "raw":
            t = self._frames(ds, location, name, bl.frame_format, rng.randint(*bl.frames), t,
                             bl.frame_seconds, scan)
            master = self._file(ds, location, f"{name}.nxs", "nexus", t, scan)
            for pname in rng.sample(("photon_energy", "exposure_time", "beam_current",
                                     "temperature"), rng.randint(2, 4)):
                add_param(self.df_param_s, master, pname, self._value(pname, bl))
            self._file(ds, location, f"{name}.log", "log", t, scan)
        elif kind == "calibration":
            t = self._frames(ds, location, name, bl.frame_format, rng.randint(2, 10), t,
                             bl.frame_seconds, scan)
            self._file(ds, location, f"{name}.nxs", "nexus", t, scan)
        else:
            formats = ("mtz", "log") if bl.type == "MX" else ("hdf5", "ascii", "log")
            for j in range(rng.randint(1, 6)):
                fmt = formats[j % len(formats)]
                t += timedelta(seconds=rng.randint(60, 900))  # pipelines run in minutes
                fid = self._file(ds, location, f"{name}_{j + 1:02d}.{self.format[fmt][1]}",
                                 fmt, t, scan)
                if fmt == "mtz":
                    add_param(self.df_param_s, fid, "resolution", self._value("resolution", bl))
        ds_end = t + timedelta(seconds=rng.randint(5, 120))
        doi = f"{inv_doi}/{name}" if inv_doi and kind == "raw" and rng.random() < 0.3 else None
        description = f"{kind.capitalize()} data, {bl.technique}"
        self.ds_s.put(ds, (inv, name, self.ds_type[kind], sample_id, description, location,
                           complete, ds_start, ds_end, doi, 0, 0))

    def _frames(self, ds: int, location: str, stem: str, fmt: str, n: int, t0: datetime,
                step: int, scan: Scan) -> datetime:
        """The per-frame files of a scan (the bulk of the catalogue, so kept tight); the time
        of the last one."""
        fmt_id, ext = self.format[fmt]
        lo, hi = self._sizes(fmt)
        span = hi - lo
        rnd, bits, add = self.rng.random, self.rng.getrandbits, self.df_s.add
        content = self._content
        prefix = f"{location}/{stem}_"
        t = t0
        for j in range(1, n + 1):
            fname = f"{j:05d}.{ext}"
            name = f"{stem}_{fname}"
            t = t0 + timedelta(seconds=j * step)
            size, checksum, stored = content(fmt, name, prefix + fname,
                                             lo + int(rnd() * span), bits(32), t, scan)
            add((ds, name, stored, size, checksum, t, t, fmt_id))
        return t

    def _file(self, ds: int, location: str, name: str, fmt: str, t: datetime,
              scan: Scan) -> int:
        fmt_id = self.format[fmt][0]
        real_lo, real_hi = FILE_SIZES[fmt]
        lo, hi = self._sizes(fmt)
        # Drawn among real sizes, as before files had bytes: the rest of the demo stays the same.
        place = (self.rng.randint(real_lo, real_hi) - real_lo) / (real_hi - real_lo)
        size, checksum, stored = self._content(
            fmt, name, f"{location}/{name}", lo + int(place * (hi - lo)),
            self.rng.getrandbits(32), t, scan)
        return self.df_s.add((ds, name, stored, size, checksum, t, t, fmt_id))

    def _sizes(self, fmt: str) -> tuple[int, int]:
        lo, hi = DEMO_FILE_SIZES[fmt]
        return round(lo * self.size_factor), round(hi * self.size_factor)

    def _content(self, fmt: str, name: str, location: str, size: int, salt: int,
                 t: datetime, scan: Scan) -> tuple[int, str, str]:
        """Write the next datafile's bytes; its size, checksum and catalogue location (with
        the location hash when the data service has a key). Without storage no bytes are
        made (a benchmark's load would spend much of its time on them): the drawn size
        stands, and the salt as checksum."""
        df_id = self.df_s.next_id
        stored = location if self.location_key is None else \
            add_digest(df_id, location, self.location_key)
        if self.files is None:
            return size, f"{salt:08x}", stored
        chunks = render(fmt, df_id, name, size, salt, t, scan)
        self.files.write(location, chunks)
        n, crc = measure(chunks)
        return n, crc32_hex(crc), stored

    def _value(self, pname: str, bl: Beamline, when: datetime | None = None) -> Any:
        pt = self.ptype[pname][1]
        if pt.value_type == "NUMERIC":
            lo, hi = bl.overrides.get(pname, (pt.low, pt.high))
            return round(lo + self.rng.random() * (hi - lo), 3)
        if pt.value_type == "DATE_AND_TIME":
            return when
        if pname == "scan_type" and bl.type in _SCAN_TYPES:
            return _SCAN_TYPES[bl.type]
        return self.rng.choice(pt.permissible)

    def _param(self, sink: Sink, parent: int, pname: str, value: Any) -> None:
        tid, pt = self.ptype[pname]
        match pt.value_type:
            case "NUMERIC" if pname == "beamtime_allocated":
                sink.add((parent, tid, value, None, None, None, None, None))
            case "NUMERIC":  # a measurement: 1 % error, observed range around the value
                err = round(abs(value) * 0.01, 4)
                sink.add((parent, tid, value, None, None, err, round(value - 2 * err, 4),
                          round(value + 2 * err, 4)))
            case "STRING":
                sink.add((parent, tid, None, value, None, None, None, None))
            case _:
                sink.add((parent, tid, None, None, value, None, None, None))

    def report(self, final: bool = False) -> None:
        if self.progress is None:
            return
        t = time.perf_counter()
        if not final and t - self.last_report < 1.0:
            return
        self.last_report = t
        rows = self.w.written
        rate = rows / max(t - self.started, 1e-9)
        files = self.df_s.written
        head = "done: " if final else ""
        self.progress(f"{head}investigations {self.done}/{self.n_investigations}, "
                      f"datafiles {_human(files)}, {_human(rows)} rows, {_human(rate)} rows/s")
