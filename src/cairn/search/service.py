"""Free-text search as icat.server's REST interface offers it (``/icat/search/documents``,
``/icat/facet/documents``, ``/icat/lucene/data``, ``/icat/lucene/db``), on the catalogue's
core API: the caller's unit of work, change events for indexing, jobs for rebuilds."""

from __future__ import annotations

import logging
from typing import Any

from cairn.catalogue.service import Catalogue
from cairn.catalogue.work import Work
from cairn.db.engine import Database
from cairn.errors import ErrorType, IcatError, bad_parameter, insufficient_privileges
from cairn.jobs import JobQueue, Kind, Scheduler
from cairn.jobs.model import FINISHED
from cairn.schema import SCHEMA
from cairn.search.execute import Search
from cairn.search.indexer import REBUILD, Indexer, SearchIndex, any_row
from cairn.search.request import (
    SearchRequest,
    load_json,
    parse_count,
    parse_facets,
    parse_query,
    parse_sort,
    parse_target,
)
from cairn.search.sources import sources
from cairn.search.units import Units

log = logging.getLogger(__name__)


class SearchService:
    def __init__(self, catalogue: Catalogue, db: Database, entities: list[str], *,
                 units: dict[str, str] | None = None, max_labels: int = 100,
                 jobs: Scheduler | None = None) -> None:
        self.catalogue = catalogue
        self.db = db
        self.jobs = jobs
        self.index = SearchIndex(db, entities)
        self.units = Units(units)
        self.max_labels = max_labels
        self.indexer = Indexer(self.index)

    def start(self) -> None:
        """Create missing document tables, follow the catalogue, and index what was there
        before its table existed."""
        for entity in self.index.drop_others():
            log.info("search: %s is no longer indexed; its documents are dropped", entity)
        created = self.index.ensure()
        unfilled = self.index.ensure_keys()
        self.catalogue.listeners.add(self.indexer)
        queue = JobQueue(self.db)
        # a key table being filled already (a restart mid-way) is left to that job
        filling = {e for e, jobs in queue.active(REBUILD, unfilled).items()
                   if any(j.payload.get("keys_only") for j in jobs)} if unfilled else set()
        todo = [(e, {"entity": e}) for e in created] + [
            (e, {"entity": e, "keys_only": True}) for e in unfilled
            if e not in created and e not in filling]
        if not todo:
            return
        with self.db.begin() as conn:
            for entity, payload in todo:
                if any_row(conn, self.db.tables[entity]):
                    # a tool without a scheduler queues it for the next `cairn serve`
                    queue.enqueue(conn, REBUILD, payload, key=entity,
                                  max_attempts=self.index.rebuild_kind().max_attempts)
                    log.info("search: %s %s from scratch (a search.rebuild job)", entity,
                             "sort keys are filled" if payload.get("keys_only")
                             else "is indexed")
        if self.jobs is not None:
            self.jobs.wake()

    def job_kinds(self) -> list[Kind]:
        return [self.index.rebuild_kind()]

    # -- searching ---------------------------------------------------------------------------

    def _indexed(self, target: str) -> None:
        if target not in self.index.docs:
            raise bad_parameter(f"{target} is not indexed for free-text search here "
                                f"([search] entities = {sorted(self.index.docs)})")

    def search_documents(self, sid: str | None, query: str | None,
                         search_after: str | None = None, min_count: str | None = None,
                         max_count: str | None = None, sort: str | None = None,
                         restrict: bool = False, *, rank_limit: int | None = None
                         ) -> dict[str, Any]:
        """A page of documents (``/icat/search/documents``). ``rank_limit`` (the portal's,
        never REST's): when more documents than that would be scored for relevance, the
        page is in id order instead, as a search without words is, and the answer says
        ``"unranked": true``."""
        if query is None:
            raise bad_parameter("query is not set")
        req = parse_query(query)
        after = load_json(search_after, "search_after") if search_after else None
        if after is not None and not isinstance(after, dict):
            raise bad_parameter("search_after must be the JSON object a previous page "
                                "returned")
        order = parse_sort(sort)
        parse_count(min_count, "minCount", 10)
        limit = parse_count(max_count, "maxCount", 100) or 100
        with self.catalogue.as_user(sid, read_only=True) as work:
            if restrict and req.user is None:
                req = _with_user(req, work.user)
            self._indexed(req.target)
            if limit > work.max_entities:
                raise IcatError(ErrorType.VALIDATION,
                                f"attempt to return more than {work.max_entities} entities")
            s = Search(work, self.index, self.units, req, max_labels=self.max_labels,
                       rank_limit=rank_limit)
            dims: dict[str, Any] = {}
            if req.facets:
                hits, dims = s.page_and_facets(order, after, limit + 1, req.facets)
            else:
                hits = s.page(order, after, limit + 1)
            more = len(hits) > limit
            hits = hits[:limit]
            self.index.backend.finish(work.conn)
            docs = sources(work, req.target, [h.id for h in hits])
            out: dict[str, Any] = {}
            if more:
                last = hits[-1]
                after_out: dict[str, Any] = {"doc": last.id, "shardIndex": -1}
                if last.score is not None and not order:
                    after_out["score"] = last.score
                after_out["fields"] = list(last.keys)
                out["search_after"] = after_out
            if dims:
                out["dimensions"] = dims
            out["results"] = [
                {"id": h.id, **({"score": h.score} if not order else {}),
                 "source": docs.get(h.id, {})} for h in hits]
            if s.unranked:
                out["unranked"] = True
            return out

    def facets(self, sid: str | None, query: str | None, restrict: bool = False
               ) -> dict[str, Any]:
        """The ``dimensions`` of a search's ``facets`` over everything it finds, without a
        page: what ``search_documents`` returns beside its page, for a caller that shows
        the page first and the counts when they come (the portal)."""
        if query is None:
            raise bad_parameter("query is not set")
        req = parse_query(query)
        with self.catalogue.as_user(sid, read_only=True) as work:
            if restrict and req.user is None:
                req = _with_user(req, work.user)
            self._indexed(req.target)
            s = Search(work, self.index, self.units, req, max_labels=self.max_labels)
            dims = s.facets(req.facets) if req.facets else {}
        return {"dimensions": dims} if dims else {}

    def facet_documents(self, sid: str | None, query: str | None) -> dict[str, Any]:
        """Facets of the documents a ``filter`` selects (e.g. the parameter types of known
        investigations), counted over what the caller may read."""
        if query is None:
            raise bad_parameter("query is not set")
        q = load_json(query, "query")
        if not isinstance(q, dict):
            raise bad_parameter("query must be a JSON object")
        target = parse_target(q)
        flt = q.get("filter") or {}
        if not isinstance(flt, dict):
            raise bad_parameter("filter must be a JSON object")
        facets = parse_facets(q.get("facets"))
        with self.catalogue.as_user(sid, read_only=True) as work:
            s = Search(work, self.index, self.units, SearchRequest(target=target),
                       max_labels=self.max_labels)
            dims = s.own_facets(facets, flt)
        return {"dimensions": dims} if dims else {}

    def lucene_data(self, sid: str | None, query: str | None, max_count: str | None
                    ) -> list[dict[str, Any]]:
        if query is None:
            raise bad_parameter("query is not set")
        req = parse_query(query)
        limit = parse_count(max_count, "maxCount", 100) or 100
        with self.catalogue.as_user(sid, read_only=True) as work:
            self._indexed(req.target)
            hits = Search(work, self.index, self.units, req).page([], None, limit)
            return [{"id": h.id, "score": h.score} for h in hits]

    # -- population (root only) --------------------------------------------------------------

    def _root(self, work: Work) -> None:
        if not self.catalogue.is_root(work.user):
            raise insufficient_privileges("user must be in rootUserNames")

    def populate(self, sid: str | None, entity: str, min_id: int | None = None,
                 max_id: int | None = None, delete: bool = False) -> None:
        with self.catalogue.as_user(sid) as work:
            self._root(work)
            if entity not in SCHEMA.entities:
                raise bad_parameter(f"{entity} is not an ICAT entity")
            if entity not in self.index.docs:
                raise bad_parameter(f"{entity} is not indexed here ([search] entities = "
                                    f"{sorted(self.index.docs)})")
            if self.jobs is not None and self.jobs.queue.active(REBUILD, [entity]):
                raise IcatError(ErrorType.OBJECT_ALREADY_EXISTS,
                                f"population of {entity} already requested")
            payload: dict[str, Any] = {"entity": entity}
            for k, v in (("min_id", min_id), ("max_id", max_id)):
                if v is not None:
                    payload[k] = v
            if delete:
                payload["delete"] = True
            work.enqueue(REBUILD, payload, key=entity)

    def populating(self, sid: str | None) -> list[str]:
        with self.catalogue.as_user(sid, read_only=True) as work:
            self._root(work)
        if self.jobs is None:
            return []
        active = self.jobs.queue.active(REBUILD, None)
        return sorted(active)

    def commit(self, sid: str | None) -> None:
        """Documents are committed with the catalogue's own transactions: nothing waits."""
        with self.catalogue.as_user(sid, read_only=True) as work:
            self._root(work)

    def stop(self, sid: str | None) -> None:
        """Stop every population (icat.server's DELETE /lucene/db); the index stays."""
        with self.catalogue.as_user(sid, read_only=True) as work:
            self._root(work)
        if self.jobs is None:
            return
        for jobs in self.jobs.queue.active(REBUILD, None).values():
            for job in jobs:
                if job.state not in FINISHED:
                    self.jobs.queue.cancel(job.id)

    def reindex(self, entities: list[str] | None = None, delete: bool = False) -> list[int]:
        """Request a rebuild of each of ``entities`` (default: every indexed one); job ids."""
        if self.jobs is None:
            raise RuntimeError("reindexing needs a job scheduler")
        todo = entities or list(self.index.docs)
        for e in todo:
            if e not in self.index.docs:
                raise bad_parameter(f"{e} is not indexed here ([search] entities = "
                                    f"{sorted(self.index.docs)})")
        payload: dict[str, Any] = {"delete": True} if delete else {}
        return [self.jobs.submit(REBUILD, {"entity": e, **payload}, key=e) for e in todo]

    def status(self) -> dict[str, Any]:
        """Per indexed entity: documents indexed, and the rebuild in progress, if any."""
        active = self.jobs.queue.active(REBUILD, None) if self.jobs else {}
        out = {}
        for entity in self.index.docs:
            jobs = active.get(entity, [])
            out[entity] = {"documents": self.index.count(entity),
                           "rebuilding": [{"id": j.id, "state": j.state.value,
                                           "progress": j.progress, "total": j.progress_total}
                                          for j in jobs]}
        return out


def _with_user(req: SearchRequest, user: str) -> SearchRequest:
    from dataclasses import replace
    return replace(req, user=user)

