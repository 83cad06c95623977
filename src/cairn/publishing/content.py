"""What a publication's content holds: the investigations, datasets and datafiles of its
DataCollection, each counted once (:class:`Content`), with the summary of their files (counts,
bytes and formats), the date the data become public and the data-service selection, as far as
the caller may read them; and every investigation the content comes from
(:func:`investigations_of`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select

from cairn.catalogue.work import Work
from cairn.publishing.model import Files
from cairn.publishing.objects import utc
from cairn.publishing.publication import Publication
from cairn.schema import SCHEMA

E = SCHEMA.entities

#: At most this many formats are listed (the most used ones).
MAX_FORMATS = 20


def investigations_of(work: Work, publication: Publication) -> list[int]:
    """Every investigation a publication's content comes from (those of its datasets and
    datafiles too), ascending."""
    t = work.tables
    ds, df = t["Dataset"], t["Datafile"]
    found = set(publication.investigation_ids)
    for column, select_from, ids in (
            (ds.c.id, ds, publication.dataset_ids),
            (df.c.id, df.join(ds, df.c.dataset == ds.c.id), publication.datafile_ids)):
        q = select(ds.c.investigation).select_from(select_from)
        found.update(int(r[0]) for r in _rows(work, q, column, ids))
    return sorted(found)


def _rows(work: Work, q: Select[Any], column: ColumnElement[Any], ids: Iterable[int]
          ) -> Iterator[Any]:
    """The rows of ``q`` where ``column`` is one of ``ids`` (in batches)."""
    for batch in work.chunks(sorted(set(ids))):
        yield from work.conn.execute(q.where(column.in_(batch)))


@dataclass
class _Investigation:
    name_visit: str
    release: datetime | None


class Content:
    """What a publication's DataCollection holds, without counting anything twice (a dataset
    of a selected investigation, a datafile of a selected dataset), as far as the caller may
    read it."""

    def __init__(self, work: Work, pub: Publication) -> None:
        self.work = work
        t = work.tables
        self.inv, self.ds, self.df = t["Investigation"], t["Dataset"], t["Datafile"]
        inv_ids = set(pub.investigation_ids)
        ds_parent = dict(_rows(work, select(self.ds.c.id, self.ds.c.investigation),
                               self.ds.c.id, pub.dataset_ids))
        df_parents = {r[0]: (r[1], r[2]) for r in _rows(
            work, select(self.df.c.id, self.df.c.dataset, self.ds.c.investigation)
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
                                      else utc(work, r.releaseDate))
            for r in _rows(work, select(self.inv.c.id, self.inv.c.name, self.inv.c.visitId,
                                        self.inv.c.releaseDate), self.inv.c.id, involved)}
        self.selected = sorted(inv_ids & set(self.investigations))

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
