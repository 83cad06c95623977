"""Data selections: ``investigationIds``/``datasetIds``/``datafileIds`` into datasets and
datafiles, with the caller's READ permission decided in SQL.

ids.server resolves a selection with a dozen ICAT searches per dataset (and bisects id ranges
when a dataset holds more than ``maxEntities`` files). Here it is a handful of statements per
``max_ids_in_query`` ids, each carrying the caller's READ condition from the catalogue's
core API (:meth:`~cairn.catalogue.work.Work.readable_condition`):

- explicitly named objects must exist (404 NO_SUCH_OBJECT_FOUND) and be readable, together
  with their dataset, investigation and facility (403 INSUFFICIENT_PRIVILEGES), as ids.server's
  ``get ... INCLUDE ds.investigation.facility`` demands; a named datafile without location is
  404, as ids.server;
- what a dataset or investigation contains is filtered silently: only the datasets and the
  located datafiles the caller may read (ids.server's user-session searches do the same).

Unlike ids.server, an investigation id that does not exist is 404 and an unreadable one is
403, as for datasets (ids.server silently selects nothing for both).

Everything comes back in id order, so zips, prepared snapshots and ETags are stable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, func, select

from cairn.catalogue.work import Work
from cairn.errors import bad_parameter, no_such_object
from cairn.ids.download import must_zip
from cairn.ids.locations import strip_digest
from cairn.ids.mapper import DfInfo, DsInfo

_SPLIT = re.compile(r"\s*,\s*")
_LONG = re.compile(r"[+-]?[0-9]{1,19}", re.ASCII)
_MIN_LONG, _MAX_LONG = -(1 << 63), (1 << 63) - 1


def parse_ids(name: str, text: str | None) -> list[int]:
    """A comma-separated list of longs as ids.server reads it (``DataSelection.getValidIds``).

    None is the empty list. Tokens are split at commas with optional whitespace around them
    and each must be a Java long (optional sign, ASCII digits); trailing empty tokens are
    dropped as Java's ``String.split`` drops them, so ``"1,2,"`` is fine but ``""``,
    ``",1"`` and ``"1,,2"`` are BAD_PARAMETER.
    """
    if text is None:
        return []
    parts = _SPLIT.split(text)
    if len(parts) > 1:
        while parts and parts[-1] == "":
            parts.pop()
    ids = []
    for part in parts:
        if not _LONG.fullmatch(part) or not _MIN_LONG <= int(part) <= _MAX_LONG:
            shown = text if len(text) <= 200 else text[:200] + "..."
            raise bad_parameter(f"The {name} parameter '{shown}' is not a valid string "
                                "representation of a comma separated list of longs")
        ids.append(int(part))
    return ids


@dataclass(frozen=True)
class Selection:
    """What a request names, before it is resolved."""

    investigation_ids: tuple[int, ...] = ()
    dataset_ids: tuple[int, ...] = ()
    datafile_ids: tuple[int, ...] = ()

    @classmethod
    def parse(cls, investigation_ids: str | None, dataset_ids: str | None,
              datafile_ids: str | None) -> Selection:
        # ids.server's order of validation: datafiles, datasets, investigations.
        dfs = parse_ids("datafileIds", datafile_ids)
        dss = parse_ids("datasetIds", dataset_ids)
        invs = parse_ids("investigationIds", investigation_ids)
        return cls(tuple(invs), tuple(dss), tuple(dfs))

    @property
    def must_zip(self) -> bool:
        """ids.server zips anything but exactly one datafile id (an empty selection too)."""
        return must_zip(self.investigation_ids, self.dataset_ids, self.datafile_ids)


@dataclass
class ResolvedSelection:
    """A resolved selection: datasets and located datafiles, in id order."""

    datasets: dict[int, DsInfo] = field(default_factory=dict)
    datafiles: list[DfInfo] = field(default_factory=list)
    #: Datasets named (or in a named investigation) holding no located datafile the caller
    #: may read: always "online" in two-level storage, as in ids.server.
    empty_datasets: set[int] = field(default_factory=set)

    @property
    def dataset_list(self) -> list[DsInfo]:
        return list(self.datasets.values())


@dataclass
class _Roots:
    """The first stage: named objects checked, datasets whose content is selected known."""

    datasets: dict[int, DsInfo]
    #: Datasets selected whole (named, or in a named investigation).
    whole: list[int]
    #: Named datafiles outside the whole datasets.
    extra: list[DfInfo]


class Resolver:
    """Resolves selections inside one unit of work, with its caller's permissions (a system
    unit checks nothing: ids.server's reader account, used for ``getStatus`` without a
    session).
    """

    def __init__(self, work: Work, key: str | None = None) -> None:
        self.work = work
        self.key = key
        t = work.tables
        self.df, self.ds = t["Datafile"], t["Dataset"]
        self.inv, self.fac = t["Investigation"], t["Facility"]

    # -- public ----------------------------------------------------------------------------

    def resolve(self, sel: Selection) -> ResolvedSelection:
        roots = self._roots(sel)
        files: dict[int, DfInfo] = {d.id: d for d in roots.extra}
        seen: set[int] = set()
        for row in self._contents(roots.whole, self._df_columns()):
            files[row.id] = self._dfinfo(row)
            seen.add(row.dataset)
        empty = set(roots.whole) - seen
        return ResolvedSelection(roots.datasets, [files[i] for i in sorted(files)], empty)

    def size(self, sel: Selection) -> int:
        """Sum of ``Datafile.fileSize`` over the located datafiles (null counts as 0)."""
        roots = self._roots(sel)
        total = sum(d.size or 0 for d in roots.extra)
        df = self.df
        for batch in self.work.chunks(roots.whole):
            q = select(func.coalesce(func.sum(df.c.fileSize), 0)).where(
                df.c.dataset.in_(batch), df.c.location.is_not(None))
            total += int(self._execute(self._readable_df(q)).scalar_one())
        return total

    def datafile_ids(self, sel: Selection) -> list[int]:
        roots = self._roots(sel)
        ids = {d.id for d in roots.extra}
        ids.update(r.id for r in self._contents(roots.whole, [self.df.c.id, self.df.c.dataset]))
        return sorted(ids)

    def validate(self, sel: Selection) -> None:
        """Only the checks on the named objects (single-level ``getStatus``)."""
        self._roots(sel)

    def named(self, sel: Selection) -> dict[int, DsInfo]:
        """The datasets of the named objects, checked (put's dataset)."""
        return self._roots(sel).datasets

    # -- stage 1: named objects ------------------------------------------------------------

    def _roots(self, sel: Selection) -> _Roots:
        datasets: dict[int, DsInfo] = {}
        named_files = self._named_datafiles(sorted(set(sel.datafile_ids)), datasets)
        whole = self._named_datasets(sorted(set(sel.dataset_ids)), datasets)
        whole.update(self._investigation_datasets(sorted(set(sel.investigation_ids)), datasets))
        extra = [d for d in named_files if d.dataset_id not in whole]
        return _Roots(dict(sorted(datasets.items())), sorted(whole), extra)

    def _ds_columns(self) -> list[Any]:
        ds, inv, fac = self.ds, self.inv, self.fac
        return [ds.c.id.label("ds_id"), ds.c.name.label("ds_name"),
                ds.c.location.label("ds_location"), inv.c.id.label("inv_id"),
                inv.c.name.label("inv_name"), inv.c.visitId.label("visit_id"),
                fac.c.id.label("fac_id"), fac.c.name.label("fac_name")]

    def _ds_join(self, q: Select[Any]) -> Select[Any]:
        return q.join(self.inv, self.ds.c.investigation == self.inv.c.id) \
                .join(self.fac, self.inv.c.facility == self.fac.c.id)

    @staticmethod
    def _dsinfo(row: Any) -> DsInfo:
        return DsInfo(id=row.ds_id, name=row.ds_name, investigation_id=row.inv_id,
                      investigation_name=row.inv_name, visit_id=row.visit_id,
                      facility_id=row.fac_id, facility_name=row.fac_name,
                      location=row.ds_location)

    def _df_columns(self) -> list[Any]:
        df = self.df
        return [df.c.id, df.c.name, df.c.location, df.c.dataset, df.c.fileSize,
                df.c.checksum, df.c.datafileModTime, df.c.modTime, df.c.createId, df.c.modId]

    def _dfinfo(self, row: Any) -> DfInfo:
        db = self.work.db
        mod_time = db.from_db(row.datafileModTime) if row.datafileModTime is not None else None
        version = db.from_db(row.modTime).isoformat() if row.modTime is not None else ""
        return DfInfo(id=row.id, name=row.name,
                      location=strip_digest(row.id, row.location, self.key),
                      dataset_id=row.dataset, size=row.fileSize, checksum=row.checksum,
                      mod_time=mod_time, version=version, create_id=row.createId or "",
                      mod_id=row.modId or "")

    def _named_datafiles(self, ids: list[int], datasets: dict[int, DsInfo]) -> list[DfInfo]:
        if not ids:
            return []
        rows: dict[int, Any] = {}
        for batch in self.work.chunks(ids):
            q = self._ds_join(select(*self._df_columns(), *self._ds_columns())
                              .join(self.ds, self.df.c.dataset == self.ds.c.id)) \
                .where(self.df.c.id.in_(batch))
            rows.update((r.id, r) for r in self.work.conn.execute(q))
        _require_all("Datafile", ids, rows)
        self._require_read("Datafile", ids)
        for i in ids:
            if rows[i].location is None:
                raise no_such_object(f"Datafile[id:{i}] has no location: the data service "
                                     "holds no file for it")
        self._require_parents(rows.values())
        for r in rows.values():
            datasets.setdefault(r.ds_id, self._dsinfo(r))
        return [self._dfinfo(rows[i]) for i in ids]

    def _named_datasets(self, ids: list[int], datasets: dict[int, DsInfo]) -> set[int]:
        if not ids:
            return set()
        rows: dict[int, Any] = {}
        for batch in self.work.chunks(ids):
            q = self._ds_join(select(*self._ds_columns())).where(self.ds.c.id.in_(batch))
            rows.update((r.ds_id, r) for r in self.work.conn.execute(q))
        _require_all("Dataset", ids, rows)
        self._require_parents(rows.values())
        for r in rows.values():
            datasets[r.ds_id] = self._dsinfo(r)
        return set(ids)

    def _investigation_datasets(self, ids: list[int],
                                datasets: dict[int, DsInfo]) -> set[int]:
        if not ids:
            return set()
        inv, fac = self.inv, self.fac
        rows: dict[int, Any] = {}
        for batch in self.work.chunks(ids):
            named = select(inv.c.id, fac.c.id.label("fac_id")) \
                .join(fac, inv.c.facility == fac.c.id).where(inv.c.id.in_(batch))
            rows.update((r.id, r) for r in self.work.conn.execute(named))
        _require_all("Investigation", ids, rows)
        self._require_read("Investigation", ids)
        self._require_read("Facility", {r.fac_id for r in rows.values()})
        found: set[int] = set()
        for batch in self.work.chunks(ids):
            q: Select[Any] = self._ds_join(select(*self._ds_columns())) \
                .where(self.ds.c.investigation.in_(batch))
            pred = self.work.readable_condition("Dataset", self.ds.c.id)
            if pred is not None:
                q = q.where(pred)
            for r in self._execute(q):
                datasets[r.ds_id] = self._dsinfo(r)
                found.add(r.ds_id)
        return found

    def _require_parents(self, rows: Iterable[Any]) -> None:
        """READ on the dataset, investigation and facility of each row (ds_id, inv_id,
        fac_id), as ids.server's ``INCLUDE ds.investigation.facility`` needs."""
        rows = list(rows)
        self._require_read("Dataset", {r.ds_id for r in rows})
        self._require_read("Investigation", {r.inv_id for r in rows})
        self._require_read("Facility", {r.fac_id for r in rows})

    def _require_read(self, entity: str, ids: Iterable[int]) -> None:
        self.work.require_readable(entity, ids)

    def _execute(self, q: Select[Any]) -> Any:
        """Run a statement that may hold authorization conditions (which need the caller's
        ``:user`` and clock)."""
        return self.work.conn.execute(q, dict(self.work.params))

    # -- stage 2: contents of whole datasets -----------------------------------------------

    def _readable_df(self, q: Select[Any]) -> Select[Any]:
        pred = self.work.readable_condition("Datafile", self.df.c.id)
        return q if pred is None else q.where(pred)

    def _contents(self, dataset_ids: Sequence[int], columns: list[Any]) -> Iterator[Any]:
        """Rows of the located, readable datafiles of the datasets, in id order."""
        df = self.df
        for batch in self.work.chunks(dataset_ids):
            q = select(*columns).where(df.c.dataset.in_(batch), df.c.location.is_not(None))
            yield from self._execute(self._readable_df(q).order_by(df.c.id))


def _require_all(entity: str, ids: list[int], found: dict[int, Any]) -> None:
    for i in ids:
        if i not in found:
            raise no_such_object(f"{entity}[id:{i}] not found.")
