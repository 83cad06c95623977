"""Who may see what in the demo: the Rule and PublicStep rows a facility would set up.

- **Reference tables** (facility, instruments, cycles, types, formats, techniques, users)
  are public: one unrestricted rule each, so every signed-in user reads them.
- **Investigations and everything below them** (datasets, datafiles, samples, parameters,
  keywords, investigation users, ...) are readable along three paths, one rule each:
  the user is on the investigation (InvestigationUser), the user is a scientist of one of
  its instruments (InstrumentScientist), or its embargo is over
  (``releaseDate < CURRENT_TIMESTAMP``).
- **Their own data**: the users on an investigation may also create, update and delete its
  datasets and datafiles (and their parameters), so uploads can be tried as a scientist.
- **Public steps** along the investigation tree: an object below an investigation is readable
  exactly when the investigation is, so an INCLUDE from one to another needs no check (and
  the beamline contacts, Instrument.instrumentScientists, are public).

The READ rules are the ones ``bench/authz_search.py`` measures, word for word, so the
benchmarks run the demo's own rule set.
"""

from __future__ import annotations

from sqlalchemy import select

from cairn.catalogue.objects import Obj
from cairn.catalogue.work import Work
from cairn.schema import SCHEMA

#: Readable by every signed-in user.
PUBLIC_TABLES = ("Facility", "Instrument", "FacilityCycle", "InvestigationType", "DatasetType",
                 "DatafileFormat", "ParameterType", "PermissibleStringValue", "SampleType",
                 "Technique", "User")

#: Entity -> (its variable, FROM text reaching its investigation as ``i``).
BELOW_INVESTIGATION = {
    "Investigation": ("i", "Investigation i"),
    "InvestigationUser": ("x", "InvestigationUser x JOIN x.investigation i"),
    "InvestigationInstrument": ("x", "InvestigationInstrument x JOIN x.investigation i"),
    "InvestigationFacilityCycle": ("x", "InvestigationFacilityCycle x JOIN x.investigation i"),
    "InvestigationParameter": ("x", "InvestigationParameter x JOIN x.investigation i"),
    "Keyword": ("x", "Keyword x JOIN x.investigation i"),
    "Publication": ("x", "Publication x JOIN x.investigation i"),
    "Sample": ("x", "Sample x JOIN x.investigation i"),
    "SampleParameter": ("x", "SampleParameter x JOIN x.sample s JOIN s.investigation i"),
    "Dataset": ("x", "Dataset x JOIN x.investigation i"),
    "DatasetParameter": ("x", "DatasetParameter x JOIN x.dataset ds JOIN ds.investigation i"),
    "Datafile": ("x", "Datafile x JOIN x.dataset ds JOIN ds.investigation i"),
    "DatafileParameter": ("x", "DatafileParameter x JOIN x.datafile df JOIN df.dataset ds "
                               "JOIN ds.investigation i"),
}

#: The three ways to an investigation, as the rest of a rule after its FROM text.
ON_MY = "JOIN i.investigationUsers iu_ JOIN iu_.user u_ WHERE u_.name = :user"
AS_SCIENTIST = ("JOIN i.investigationInstruments ii_ JOIN ii_.instrument in_ "
                "JOIN in_.instrumentScientists is_ JOIN is_.user u_ WHERE u_.name = :user")
RELEASED = "WHERE i.releaseDate < CURRENT_TIMESTAMP"

#: What the users on an investigation may change in it.
OWN_DATA = ("Dataset", "DatasetParameter", "Datafile", "DatafileParameter")

#: (origin, field): INCLUDE steps that need no check.
PUBLIC_STEPS = (
    ("Investigation", "investigationUsers"), ("Investigation", "investigationInstruments"),
    ("Investigation", "investigationFacilityCycles"), ("Investigation", "parameters"),
    ("Investigation", "keywords"), ("Investigation", "publications"),
    ("Investigation", "samples"), ("Investigation", "datasets"),
    ("Sample", "investigation"), ("Sample", "parameters"),
    ("Dataset", "investigation"), ("Dataset", "parameters"), ("Dataset", "datafiles"),
    ("Datafile", "dataset"), ("Datafile", "parameters"),
    ("Instrument", "instrumentScientists"),
)


def rules() -> list[tuple[str, str]]:
    """(what, crudFlags) of every demo rule; none has a grouping."""
    out = [(f"SELECT x FROM {t} x", "R") for t in PUBLIC_TABLES]
    for var, source in BELOW_INVESTIGATION.values():
        out.extend((f"SELECT {var} FROM {source} {how}", "R")
                   for how in (ON_MY, AS_SCIENTIST, RELEASED))
    for entity in OWN_DATA:
        var, source = BELOW_INVESTIGATION[entity]
        out.append((f"SELECT {var} FROM {source} {ON_MY}", "CUD"))
    return out


def install(work: Work) -> tuple[int, int]:
    """Create the demo's rules and public steps that are not there yet, through the same
    validation as any client's; returns how many of each were created."""
    t = work.tables
    rule, step = t["Rule"], t["PublicStep"]
    have_rules = {(w, f) for w, f in work.conn.execute(
        select(rule.c.what, rule.c.crudFlags).where(rule.c.grouping.is_(None)))}
    have_steps = {(o, f) for o, f in work.conn.execute(select(step.c.origin, step.c.field))}
    n_rules = n_steps = 0
    for what, flags in rules():
        if (what, flags) not in have_rules:
            work.create(Obj(SCHEMA.entities["Rule"], values={"what": what, "crudFlags": flags}))
            n_rules += 1
    for origin, field in PUBLIC_STEPS:
        if (origin, field) not in have_steps:
            work.create(Obj(SCHEMA.entities["PublicStep"],
                            values={"origin": origin, "field": field}))
            n_steps += 1
    return n_rules, n_steps
