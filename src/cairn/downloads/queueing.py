"""Queued (large) downloads: who may queue them, and how a whole visit, a data collection
or a list of file locations becomes downloads (TopCat's §4.5).

Everything here reads in the caller's unit of work: what the caller may not read is left out
(as TopCat's queries with the user's session leave it out), and the downloads made of it are
prepared later without checks, on the strength of this one. So a dataset is queued whole
only when the caller may read every one of its files; otherwise its readable files are
queued one by one. File counts are counted here (located datafiles, one grouped statement per
``max_ids_in_query`` datasets), not taken from ``Dataset.fileCount``. Every value from the
request reaches SQL as a bound parameter.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, select

from cairn.catalogue.work import Work
from cairn.config import DownloadSettings
from cairn.errors import no_such_object
from cairn.jobs.model import chunks

#: A download item: ("investigation" | "dataset" | "datafile", id).
Item = tuple[str, int]


def priority(work: Work, settings: DownloadSettings, user: str) -> int:
    """The queue priority of ``user`` (lower goes first; <= 0: may not queue).

    The first that applies: ``user`` by name; then the best of ``grouping`` (membership),
    ``instrument_scientist`` (of any instrument) and ``investigation_role`` (a role by name,
    else ``*``, for any investigation the user is on), where the best is the lowest positive
    one (only non-positive ones: the lowest, i.e. forbidden); then ``authenticator`` (the
    mnemonic before ``/`` in the user name); then ``default``."""
    p = settings.priorities
    if user in p.user:
        return p.user[user]
    t = work.tables
    users = t["User"]
    found: list[int] = []
    if p.grouping:
        ug, g = t["UserGroup"], t["Grouping"]
        names = work.conn.execute(
            select(g.c.name).distinct().join(ug, ug.c.grouping == g.c.id)
            .join(users, ug.c.user == users.c.id)
            .where(users.c.name == user, g.c.name.in_(sorted(p.grouping)))).scalars()
        found.extend(p.grouping[n] for n in names)
    if p.instrument_scientist is not None:
        sci = t["InstrumentScientist"]
        if work.conn.execute(select(sci.c.id).join(users, sci.c.user == users.c.id)
                             .where(users.c.name == user).limit(1)).first() is not None:
            found.append(p.instrument_scientist)
    if p.investigation_role:
        iu = t["InvestigationUser"]
        roles = work.conn.execute(select(iu.c.role).distinct()
                                  .join(users, iu.c.user == users.c.id)
                                  .where(users.c.name == user)).scalars()
        for role in roles:
            value = p.investigation_role.get(role) if role in p.investigation_role \
                else p.investigation_role.get("*")
            if value is not None:
                found.append(value)
    if found:
        positive = [v for v in found if v > 0]
        return min(positive) if positive else min(found)
    mnemonic, slash, _ = user.partition("/")
    if slash and mnemonic in p.authenticator:
        return p.authenticator[mnemonic]
    return p.default


def visit_parts(work: Work, facility: str, visit_id: str, part_files: int
                ) -> list[list[Item]]:
    """The datasets of the facility's investigations with that visitId that the caller may
    read, in id order, packed into parts of at most ``part_files`` files (:func:`pack`).
    NO_SUCH_OBJECT_FOUND if the caller may read no such investigation."""
    inv, fac = work.tables["Investigation"], work.tables["Facility"]
    q = (select(inv.c.id).join(fac, inv.c.facility == fac.c.id)
         .where(fac.c.name == facility, inv.c.visitId == visit_id).order_by(inv.c.id))
    investigations = list(_run(work, _readable(work, "Investigation", inv.c.id, q)).scalars())
    if not investigations:
        raise no_such_object(f"No investigation of facility {facility} with visitId "
                             f"{visit_id} was found")
    return pack(_units(work, _datasets_of(work, investigations), []), part_files)


def collection_parts(work: Work, data_collection_id: int, part_files: int
                     ) -> list[list[Item]]:
    """The data collection's datasets and those of its investigations (in id order), then
    its datafiles not in them, as far as the caller may read them, packed as
    :func:`visit_parts` packs. NO_SUCH_OBJECT_FOUND or INSUFFICIENT_PRIVILEGES for the
    collection itself."""
    t = work.tables
    dc = t["DataCollection"]
    if work.conn.execute(select(dc.c.id).where(dc.c.id == data_collection_id)).first() is None:
        raise no_such_object(f"DataCollection[id:{data_collection_id}] not found.")
    work.require_readable("DataCollection", [data_collection_id])
    ds, di, dfs = (t["DataCollectionDataset"], t["DataCollectionInvestigation"],
                   t["DataCollectionDatafile"])
    dataset, investigation = t["Dataset"], t["Investigation"]
    named = select(dataset.c.id).join(ds, ds.c.dataset == dataset.c.id) \
        .where(ds.c.dataCollection == data_collection_id)
    datasets = set(_run(work, _readable(work, "Dataset", dataset.c.id, named)).scalars())
    invs = select(investigation.c.id).join(di, di.c.investigation == investigation.c.id) \
        .where(di.c.dataCollection == data_collection_id)
    investigations = list(_run(work, _readable(work, "Investigation", investigation.c.id,
                                               invs)).scalars())
    datasets.update(_datasets_of(work, investigations))
    datafile = t["Datafile"]
    files = select(datafile.c.id, datafile.c.dataset).join(dfs, dfs.c.datafile == datafile.c.id) \
        .where(dfs.c.dataCollection == data_collection_id, datafile.c.location.is_not(None))
    datafiles = {int(r.id) for r in _run(work, _readable(work, "Datafile", datafile.c.id, files))
                 if r.dataset not in datasets}
    return pack(_units(work, sorted(datasets), sorted(datafiles)), part_files)


def files_items(work: Work, locations: Sequence[str]) -> tuple[list[Item], list[str]]:
    """The datafiles at these locations (``Datafile.location`` exactly as catalogued) that
    the caller may read, in id order, and the locations that matched none of them (in the
    order given): not catalogued and not readable are not told apart."""
    df = work.tables["Datafile"]
    wanted = list(dict.fromkeys(locations))
    found: dict[str, set[int]] = {}
    for batch in chunks(wanted, work.max_ids):
        q = select(df.c.id, df.c.location).where(df.c.location.in_(batch))
        for r in _run(work, _readable(work, "Datafile", df.c.id, q)):
            found.setdefault(r.location, set()).add(int(r.id))
    ids = sorted({i for got in found.values() for i in got})
    return [("datafile", i) for i in ids], [loc for loc in wanted if loc not in found]


def part_names(file_name: str, n: int) -> list[str]:
    """``<name>_part_<k>_of_<n>``, k from 1 zero-padded to the width of n (one part too, as
    TopCat names it)."""
    width = len(str(n))
    return [f"{file_name}_part_{k:0{width}d}_of_{n}" for k in range(1, n + 1)]


def pack(units: Iterable[tuple[Item, int]], part_files: int) -> list[list[Item]]:
    """Items with their file counts, in order, into parts of at most ``part_files`` files: an
    item is never split, so one larger than that gets a part of its own. Items without files
    (empty datasets) join whatever part is open, as they add nothing to it."""
    parts: list[list[Item]] = []
    current: list[Item] = []
    files = 0
    for item, n in units:
        if current and n > 0 and files + n > part_files:
            parts.append(current)
            current, files = [], 0
        current.append(item)
        files += n
    if current:
        parts.append(current)
    return parts


# -- reading ------------------------------------------------------------------------------------

def _readable(work: Work, entity: str, id_column: ColumnElement[Any], q: Select[Any]
              ) -> Select[Any]:
    cond = work.readable_condition(entity, id_column)
    return q if cond is None else q.where(cond)


def _run(work: Work, q: Select[Any]) -> Any:
    # Authorization conditions need the caller's :user and clock.
    return work.conn.execute(q, dict(work.params))


def _datasets_of(work: Work, investigations: Sequence[int]) -> list[int]:
    """The readable datasets of the investigations, in id order."""
    ds = work.tables["Dataset"]
    out: list[int] = []
    for batch in chunks(investigations, work.max_ids):
        q = select(ds.c.id).where(ds.c.investigation.in_(batch))
        out.extend(_run(work, _readable(work, "Dataset", ds.c.id, q)).scalars())
    return sorted(out)


def _units(work: Work, datasets: Sequence[int], datafiles: Sequence[int]
           ) -> list[tuple[Item, int]]:
    """Datasets with their located file counts, then datafiles (one file each). A dataset
    holding files the caller may not read is replaced by the files they may; one holding
    none they may read is left out."""
    df = work.tables["Datafile"]
    cond = work.readable_condition("Datafile", df.c.id)
    readable = func.count() if cond is None else func.sum(case((cond, 1), else_=0))
    counts: dict[int, tuple[int, int]] = {}
    for batch in chunks(datasets, work.max_ids):
        q = (select(df.c.dataset, func.count(), readable)
             .where(df.c.dataset.in_(batch), df.c.location.is_not(None))
             .group_by(df.c.dataset))
        counts.update((int(r[0]), (int(r[1]), int(r[2] or 0))) for r in _run(work, q))
    units: list[tuple[Item, int]] = []
    for ds_id in datasets:
        total, mine = counts.get(ds_id, (0, 0))
        if mine == total:
            units.append((("dataset", ds_id), total))
        elif mine:
            q = select(df.c.id).where(df.c.dataset == ds_id, df.c.location.is_not(None)) \
                .order_by(df.c.id)
            units.extend((("datafile", int(i)), 1)
                         for i in _run(work, _readable(work, "Datafile", df.c.id, q)).scalars())
    units.extend((("datafile", i), 1) for i in datafiles)
    return units
