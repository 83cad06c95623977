"""Free-text search under the authorization rules, on every backend.

Cairn authorizes search results in the statement that finds them, so what the search
endpoints answer must agree exactly with what the query engine (``GET /icat/entityManager``,
the established authority on reading) lets each user read:

(a) the results of ``/icat/search/documents`` are the readable documents among those that
    match, where "match" is what root finds and "readable" is what ``SELECT x FROM T x`` run as
    the user gives;
(b) paging with ``maxCount`` = 1, 2, ... and ``search_after`` visits exactly those documents,
    each once, in the order of one big page, every page full but the last, for the default
    (relevance) order and for explicit sorts;
(c) facet counts (the target's own dimensions, ``<T>Parameter.type.name`` and
    ``InvestigationInstrument.instrument.name``) count distinct readable documents per label,
    and only readable child rows give a label; the counts cover the whole result set whatever
    the page size;
(d) ``/icat/lucene/data`` finds the same documents, and a short page is full;
(e) ``/icat/facet/documents`` counts only child rows the user may read;
(f) a user who may read none of the matching documents gets ``{"results": []}``, no
    ``dimensions``, and no error;
(g) ``restrict=true`` keeps the investigations the user is on (InvestigationUser) or is an
    instrument scientist for;
and (h) ``source`` shows nothing of a related row the user may not read, and labels of related
rows the user may not read are not counted in facets either.

The catalogue is the authorization matrix' (:func:`build_catalogue`, every rule kept) with, as
root: summaries, two more investigations (E, on instruments X and Y with jdoe as PI; F, public
after its release date), more datasets and datafiles with descriptions, samples (some created
by users, so the ``own:Sample`` rule gives them to their creators), parameters, and four
read rules for the child entities that the matrix leaves without any (see :data:`EXTRA_RULES`),
so that facets on children have something to tell apart. DatafileParameter keeps no rule: no
non-root user may read any, and none may be counted for them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.integration.authz_fixtures import (
    FUTURE,
    PAST,
    ROOT,
    USERS,
    Catalogue,
    Rest,
    build_catalogue,
    ids_of,
)
from tests.integration.server import Server

TARGETS = ("Investigation", "Dataset", "Datafile")
EVERYTHING = "*"
#: Selective texts: a word, and a prefix with an exclusion (Lucene: should ``neutr*``, must
#: not ``event``).
NEUTRON = "neutron"
#: A word in related rows alone: sample names (and a sample type), which files reach through
#: their datasets, the key their read rules follow too.
POWDER = "powder"
SELECTIVE = (NEUTRON, "neutr* -event", POWDER)
TEXTS = (EVERYTHING, *SELECTIVE)
#: What root finds for each selective text (symbolic names): ``neutron`` is only in summaries
#: and descriptions, fields of the documents themselves, nowhere a target's default fields
#: reach through a related row; ``powder`` only there.
ROOT_MATCHES: dict[str, dict[str, tuple[str, ...]]] = {
    NEUTRON: {
        "Investigation": ("inv:A", "inv:C", "inv:D", "inv:E", "inv:F"),
        "Dataset": ("ds:A3", "ds:A4", "ds:B2", "ds:C2", "ds:E1", "ds:F1"),
        "Datafile": ("df:a3-1", "df:a4-1", "df:b2-1", "df:c2-1", "df:c2-2", "df:d2-1",
                     "df:e1-1", "df:e1-2", "df:f1-1", "df:f1-2", "df:f1-3"),
    },
    "neutr* -event": {
        "Investigation": ("inv:A", "inv:C", "inv:D", "inv:E", "inv:F"),
        "Dataset": ("ds:A3", "ds:A4", "ds:B2", "ds:C2", "ds:E1", "ds:F1"),
        "Datafile": ("df:a4-1", "df:c2-1", "df:c2-2", "df:d2-1", "df:e1-2", "df:f1-1",
                     "df:f1-2"),
    },
    POWDER: {
        "Investigation": ("inv:A", "inv:B"),
        "Dataset": ("ds:A3", "ds:A4", "ds:B2"),
        "Datafile": ("df:a3-1", "df:a3-2", "df:a4-1", "df:b2-1"),
    },
}
#: Texts matching only documents that some users may not read at all (case (f)).
NARROW = {"Investigation": "alpha", "Dataset": "a1", "Datafile": "a1"}
SORTS: tuple[dict[str, str] | None, ...] = (None, {"name": "asc"}, {"date": "desc"})

PARAMETER = {"Investigation": "InvestigationParameter", "Dataset": "DatasetParameter",
             "Datafile": "DatafileParameter"}
#: The facet dimensions a facet ``{"target": T}`` without dimensions brings (icat.lucene's).
OWN_DIMENSIONS = {"Investigation": ("type.name",),
                  "Dataset": ("type.name", "sample.type.name"),
                  "Datafile": ("datafileFormat.name", "sample.type.name")}

#: Read rules for child entities the matrix has none for (added; the matrix' rules all stay).
EXTRA_RULES = (
    # Instrument X's investigation instruments are public, Y's are nobody's (but root's).
    "SELECT ii FROM InvestigationInstrument ii JOIN ii.instrument inst WHERE inst.name = 'X'",
    # Investigation parameters: the investigation's users, and everybody for 'category'.
    "InvestigationParameter <-> Investigation <-> InvestigationUser <-> User [name = :user]",
    "SELECT p FROM InvestigationParameter p JOIN p.type t WHERE t.name = 'category'",
    # One sample type is public; 'crystal' is nobody's.
    "SELECT st FROM SampleType st WHERE st.name = 'powder'",
)

Json = dict[str, Any]


# -- the catalogue -------------------------------------------------------------------------------


def _datafile(cat: Catalogue, name: str, description: str, fmt: str = "dff",
              params: Iterable[Json] = ()) -> Json:
    return {"name": name, "description": description, "fileSize": 1,
            "datafileFormat": {"id": cat[fmt]}, "parameters": list(params)}


def extend(cat: Catalogue) -> None:
    """Add text, samples, parameters and child rules to the matrix catalogue (as root, but
    for samples that users create to own them)."""
    rest, ids = cat.rest, cat.ids
    fac = {"id": ids["fac"]}
    for what in EXTRA_RULES:
        rest.add_rule(what, "R")
    ids["pt:category"] = rest.create(
        "ParameterType", name="category", units="N/A", valueType="STRING", facility=fac,
        applicableToInvestigation=True, applicableToDataset=True, applicableToDatafile=True)
    ids["pt:pressure"] = rest.create(
        "ParameterType", name="pressure", units="bar", valueType="NUMERIC", facility=fac,
        applicableToInvestigation=True, applicableToDataset=True, applicableToDatafile=True)
    ids["dff:hdf5"] = rest.create("DatafileFormat", name="hdf5", version="5", facility=fac)
    for st in ("powder", "crystal"):
        ids[f"st:{st}"] = rest.create("SampleType", name=st, molecularFormula=st.upper(),
                                      facility=fac)

    summaries = {"A": "Neutron diffraction of proteins", "B": "X-ray imaging of alloys",
                 "C": "Neutron spectroscopy", "D": "Neutron diffraction on a cold source"}
    for name, summary in summaries.items():
        assert rest.ok_write(ROOT, {"Investigation": {"id": ids[f"inv:{name}"],
                                                      "summary": summary}}) == []

    def investigation(name: str, title: str, summary: str, start: str, release: str,
                      instruments: list[str], users: list[tuple[str, str]]) -> int:
        return rest.create(
            "Investigation", name=name, visitId="1", title=title, summary=summary,
            startDate=start, releaseDate=release, facility=fac, type={"id": ids["it"]},
            investigationInstruments=[{"instrument": {"id": ids[f"inst:{i}"]}}
                                      for i in instruments],
            investigationUsers=[{"user": {"id": ids[f"user:{u}"]}, "role": role}
                                for u, role in users])

    ids["inv:E"] = investigation("E", "Epsilon", "Neutron reflectometry",
                                 "2023-01-01T00:00:00.000Z", FUTURE, ["X", "Y"], [("jdoe", "PI")])
    ids["inv:F"] = investigation("F", "Zeta", "Neutron imaging", "2005-01-01T00:00:00.000Z",
                                 PAST, ["Y"], [])

    def inv_param(inv: str, type_: str, value: str | float) -> None:
        body: Json = {"investigation": {"id": ids[f"inv:{inv}"]},
                      "type": {"id": ids[f"pt:{type_}"]}}
        body["stringValue" if isinstance(value, str) else "numericValue"] = value
        rest.create("InvestigationParameter", **body)

    for inv, type_, value in (("A", "category", "bio"), ("A", "pressure", 1.0),
                              ("B", "category", "chem"), ("C", "category", "bio"),
                              ("C", "pressure", 2.0), ("D", "pressure", 3.0),
                              ("E", "category", "chem"), ("E", "pressure", 4.0),
                              ("F", "category", "bio")):
        inv_param(inv, type_, value)

    def sample(owner: str, name: str, inv: str, type_: str) -> None:
        (sid,) = rest.ok_write(owner, {"Sample": {
            "name": name, "investigation": {"id": ids[f"inv:{inv}"]},
            "type": {"id": ids[f"st:{type_}"]}}})
        ids[f"s:{name}"] = int(sid)

    sample(ROOT, "root-powder", "A", "powder")
    sample("jdoe", "jdoe-powder", "A", "powder")
    sample("jdoe", "jdoe-crystal", "C", "crystal")
    sample("jbotu", "jbotu-powder", "B", "powder")

    def dataset(inv: str, name: str, typ: str, description: str, files: list[Json],
                sample: str | None = None, params: Iterable[Json] = ()) -> None:
        body: Json = {"name": name, "description": description,
                      "investigation": {"id": ids[f"inv:{inv}"]},
                      "type": {"id": ids[f"dst:{typ}"]}, "datafiles": files,
                      "parameters": list(params)}
        if sample is not None:
            body["sample"] = {"id": ids[f"s:{sample}"]}
        rest.create("Dataset", **body)

    def num(type_: str, value: float) -> Json:
        return {"type": {"id": ids[f"pt:{type_}"]}, "numericValue": value}

    def text(type_: str, value: str) -> Json:
        return {"type": {"id": ids[f"pt:{type_}"]}, "stringValue": value}

    dataset("A", "A3", "raw", "neutron scan", [
        _datafile(cat, "a3-1", "neutron event file"),
        _datafile(cat, "a3-2", "instrument log", "dff:hdf5")],
        sample="root-powder", params=[num("pressure", 5.0)])
    dataset("A", "A4", "proc", "neutron reduction", [
        _datafile(cat, "a4-1", "neutron reduced", "dff:hdf5")], sample="jdoe-powder")
    dataset("B", "B2", "raw", "neutron scan", [_datafile(cat, "b2-1", "neutron event file")],
            sample="jbotu-powder", params=[text("category", "calib")])
    dataset("C", "C2", "raw", "neutron calibration", [
        _datafile(cat, "c2-1", "neutron", params=[num("pressure", 1.5)]),
        _datafile(cat, "c2-2", "neutron histogram", "dff:hdf5"),
        _datafile(cat, "c2-3", "notes")],
        sample="jdoe-crystal", params=[num("pressure", 6.0)])
    dataset("D", "D2", "proc", "alignment notes", [_datafile(cat, "d2-1", "neutron")])
    dataset("E", "E1", "raw", "neutron scan", [
        _datafile(cat, "e1-1", "neutron event file"),
        _datafile(cat, "e1-2", "neutron histogram")], params=[num("pressure", 7.0)])
    dataset("E", "E2", "proc", "background", [_datafile(cat, "e2-1", "background")])
    dataset("F", "F1", "raw", "neutron scan", [
        _datafile(cat, "f1-1", "neutron", params=[text("category", "x")]),
        _datafile(cat, "f1-2", "neutron histogram", "dff:hdf5"),
        _datafile(cat, "f1-3", "neutron event file")], params=[text("category", "calib")])

    for row in rest.ok_search(ROOT, "SELECT ds.id, ds.name FROM Dataset ds"):
        ids[f"ds:{row[1]}"] = row[0]
    for row in rest.ok_search(ROOT, "SELECT df.id, df.name FROM Datafile df"):
        ids[f"df:{row[1]}"] = row[0]


# -- what the query engine says ------------------------------------------------------------------

Link = tuple[str, int]  # (entity, id) of a related row


@dataclass
class World:
    """The catalogue and, computed through entityManager queries (cached), its structure as
    root sees it and what each user may read."""

    cat: Catalogue
    http: httpx.Client
    _readable: dict[tuple[str, str], frozenset[int]] = field(default_factory=dict)
    _rows: dict[str, list[list[Any]]] = field(default_factory=dict)
    _matches: dict[tuple[str, str], frozenset[int]] = field(default_factory=dict)

    @property
    def rest(self) -> Rest:
        return self.cat.rest

    # -- entityManager -----------------------------------------------------------------------

    def readable(self, user: str, entity: str) -> frozenset[int]:
        """The ids of ``entity`` that ``SELECT x FROM entity x`` gives ``user``."""
        key = (user, entity)
        if key not in self._readable:
            self._readable[key] = frozenset(
                ids_of(self.rest.ok_search(user, f"SELECT x FROM {entity} x")))
        return self._readable[key]

    def can_read(self, user: str, links: Iterable[Link]) -> bool:
        return all(i in self.readable(user, e) for e, i in links)

    def rows(self, query: str) -> list[list[Any]]:
        """A query as root, each result as a list (of one item for a single-item select)."""
        if query not in self._rows:
            self._rows[query] = [list(r) if isinstance(r, list) else [r]
                                 for r in self.rest.ok_search(ROOT, query)]
        return self._rows[query]

    def all_ids(self, entity: str) -> frozenset[int]:
        return self.readable(ROOT, entity)

    # structure (as root) ---------------------------------------------------------------------

    def dataset_of(self, df: int) -> int:
        return int(dict((r[0], r[1]) for r in self.rows(
            "SELECT df.id, ds.id FROM Datafile df JOIN df.dataset ds"))[df])

    def investigation_of(self, target: str, doc: int) -> int:
        if target == "Investigation":
            return doc
        if target == "Datafile":
            doc = self.dataset_of(doc)
        return int(dict((r[0], r[1]) for r in self.rows(
            "SELECT ds.id, i.id FROM Dataset ds JOIN ds.investigation i"))[doc])

    def sample_of(self, target: str, doc: int) -> int | None:
        """The sample of a dataset, or of a datafile's dataset."""
        if target == "Datafile":
            doc = self.dataset_of(doc)
        return dict((r[0], r[1]) for r in self.rows(
            "SELECT ds.id, s.id FROM Dataset ds JOIN ds.sample s")).get(doc)

    def sample_type(self, sample: int) -> tuple[int, str]:
        return {r[0]: (r[1], r[2]) for r in self.rows(
            "SELECT s.id, t.id, t.name FROM Sample s JOIN s.type t")}[sample]

    def own_label(self, target: str, dim: str, doc: int) -> tuple[list[Link], str] | None:
        """The label a document has in one of its own facet dimensions, with the related rows
        it comes from (which the user must be able to read for the label to count)."""
        if dim == "sample.type.name":
            s = self.sample_of(target, doc)
            if s is None:
                return None
            st, name = self.sample_type(s)
            links: list[Link] = [("Sample", s), ("SampleType", st)]
            if target == "Datafile":
                links.insert(0, ("Dataset", self.dataset_of(doc)))
            return links, name
        relation, entity = {("Investigation", "type.name"): ("type", "InvestigationType"),
                            ("Dataset", "type.name"): ("type", "DatasetType"),
                            ("Datafile", "datafileFormat.name"):
                                ("datafileFormat", "DatafileFormat")}[target, dim]
        rows = self.rows(f"SELECT x.id, t.id, t.name FROM {target} x JOIN x.{relation} t")
        by_doc = {r[0]: (r[1], r[2]) for r in rows}
        if doc not in by_doc:
            return None
        tid, name = by_doc[doc]
        return [(entity, tid)], name

    def parameters(self, target: str) -> list[tuple[int, int, str, Any]]:
        """(parameter id, owner id, type name, value) of the target's parameters."""
        entity, owner = PARAMETER[target], target.lower()
        return [(r[0], r[1], r[2], r[3] if r[3] is not None else r[4]) for r in self.rows(
            f"SELECT p.id, o.id, t.name, p.stringValue, p.numericValue FROM {entity} p "
            f"JOIN p.{owner} o JOIN p.type t")]

    def instruments(self) -> list[tuple[int, int, int, str]]:
        """(investigation instrument id, investigation id, instrument id, instrument name)."""
        return [(r[0], r[1], r[2], r[3]) for r in self.rows(
            "SELECT ii.id, i.id, inst.id, inst.name FROM InvestigationInstrument ii "
            "JOIN ii.investigation i JOIN ii.instrument inst")]

    def mine(self, user: str) -> frozenset[int]:
        """Investigations ``user`` is on, or is an instrument scientist for (as root)."""
        name = f"simple/{user}"
        on = self.rows("SELECT i.id FROM Investigation i JOIN i.investigationUsers iu "
                       f"JOIN iu.user u WHERE u.name = '{name}'")
        sci = self.rows("SELECT i.id FROM Investigation i JOIN i.investigationInstruments ii "
                        "JOIN ii.instrument inst JOIN inst.instrumentScientists s "
                        f"JOIN s.user u WHERE u.name = '{name}'")
        return frozenset(int(r[0]) for r in [*on, *sci])

    # -- search endpoints ---------------------------------------------------------------------

    def search(self, user: str, query: Json, **params: str) -> httpx.Response:
        return self.http.get("/icat/search/documents", params={
            "sessionId": self.rest.session(user), "query": json.dumps(query), **params})

    def ok_search(self, user: str, query: Json, **params: str) -> Json:
        r = self.search(user, query, **params)
        assert r.status_code == 200, (user, query, params, r.text)
        body = r.json()
        assert isinstance(body, dict), body
        return body

    def everything(self, user: str, query: Json, **params: str) -> Json:
        """One page that holds every result."""
        body = self.ok_search(user, query, maxCount="1000", **params)
        assert "search_after" not in body, body
        return body

    def matching(self, target: str, text: str) -> frozenset[int]:
        """What the text finds as root."""
        key = (target, text)
        if key not in self._matches:
            body = self.everything(ROOT, {"target": target, "text": text})
            self._matches[key] = frozenset(r["id"] for r in body["results"])
        return self._matches[key]

    def expected(self, user: str, target: str, text: str) -> frozenset[int]:
        return self.matching(target, text) & self.readable(user, target)

    def pages(self, user: str, query: Json, max_count: int, sort: dict[str, str] | None = None,
              **params: str) -> list[list[int]]:
        """Result ids page by page, following ``search_after`` until a page has none."""
        out: list[list[int]] = []
        after: Any = None
        extra = dict(params)
        if sort is not None:
            extra["sort"] = json.dumps(sort)
        for _ in range(200):
            if after is not None:
                extra["search_after"] = json.dumps(after)
            body = self.ok_search(user, query, maxCount=str(max_count), **extra)
            out.append([int(r["id"]) for r in body["results"]])
            after = body.get("search_after")
            if after is None:
                return out
        raise AssertionError(f"paging {query} as {user} did not end")

    def facet_documents(self, user: str, query: Json) -> httpx.Response:
        return self.http.get("/icat/facet/documents", params={
            "sessionId": self.rest.session(user), "query": json.dumps(query)})

    def lucene_data(self, user: str, query: Json, max_count: int) -> httpx.Response:
        return self.http.get("/icat/lucene/data", params={
            "sessionId": self.rest.session(user), "query": json.dumps(query),
            "maxCount": str(max_count)})

    # -- expected facets ----------------------------------------------------------------------

    def own_facet(self, user: str, target: str, dim: str, docs: Iterable[int]
                  ) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for d in docs:
            got = self.own_label(target, dim, d)
            if got is not None and self.can_read(user, got[0]):
                counts[got[1]] += 1
        return dict(counts)

    def parameter_facet(self, user: str, target: str, docs: Iterable[int]) -> dict[str, int]:
        """Distinct documents per type name of their parameters the user may read."""
        wanted = set(docs)
        readable = self.readable(user, PARAMETER[target])
        labels: dict[str, set[int]] = {}
        for pid, owner, type_name, _ in self.parameters(target):
            if owner in wanted and pid in readable:
                labels.setdefault(type_name, set()).add(owner)
        return {k: len(v) for k, v in labels.items()}

    def instrument_facet(self, user: str, target: str, docs: Iterable[int]) -> dict[str, int]:
        """Distinct documents per instrument name of the investigation instruments (of their
        investigation) the user may read."""
        readable = self.readable(user, "InvestigationInstrument")
        by_inv: dict[int, set[str]] = {}
        for ii, inv, _, name in self.instruments():
            if ii in readable:
                by_inv.setdefault(inv, set()).add(name)
        counts: Counter[str] = Counter()
        for d in docs:
            counts.update(by_inv.get(self.investigation_of(target, d), set()))
        return dict(counts)

    def expected_facets(self, user: str, target: str, docs: frozenset[int]
                        ) -> dict[str, dict[str, int]]:
        """The dimensions of :func:`facets_of` ``target``, empty ones left out."""
        out = {f"{target}.{dim}": self.own_facet(user, target, dim, docs)
               for dim in OWN_DIMENSIONS[target]}
        out[f"{PARAMETER[target]}.type.name"] = self.parameter_facet(user, target, docs)
        out["InvestigationInstrument.instrument.name"] = self.instrument_facet(user, target,
                                                                              docs)
        return {k: v for k, v in out.items() if v}


def facets_of(target: str) -> list[Json]:
    return [{"target": target},
            {"target": PARAMETER[target], "dimensions": [{"dimension": "type.name"}]},
            {"target": "InvestigationInstrument",
             "dimensions": [{"dimension": "instrument.name"}]}]


def sample_dimension(target: str) -> str:
    return f"{target}.sample.type.name"


def without_sample_labels(target: str, dims: dict[str, Any]) -> dict[str, Any]:
    """The dimensions but the target's ``sample.type.name`` (checked on its own, by
    :func:`test_facet_labels_of_unreadable_related_rows`)."""
    return {k: v for k, v in dims.items() if k != sample_dimension(target)}


def page_sizes(n: int) -> list[int]:
    return sorted({k for k in (1, 2, 3, n - 1, n, n + 1) if k >= 1})


PREFIX = {"Investigation": "inv", "Dataset": "ds", "Datafile": "df"}


def names(world: World, target: str, ids: Iterable[int]) -> list[str]:
    """Symbolic names of ids of a target, for readable failure messages."""
    back = {v: k for k, v in world.cat.ids.items() if k.split(":")[0] == PREFIX[target]}
    return sorted(back.get(i, str(i)) for i in ids)


@pytest.fixture(scope="module")
def world(server: Server) -> World:
    cat = build_catalogue(server)
    extend(cat)
    return World(cat, server.http)


# -- the tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_root_matches(world: World, target: str) -> None:
    """The baseline: root finds everything with ``*``, and what the fixture put the words in
    with the selective texts."""
    assert world.matching(target, EVERYTHING) == world.all_ids(target)
    for text in SELECTIVE:
        got = world.matching(target, text)
        want = frozenset(world.cat.resolve(ROOT_MATCHES[text][target]))
        assert got == want, (text, names(world, target, got), names(world, target, want))


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("user", USERS)
def test_results_are_the_readable_matches(world: World, user: str, target: str,
                                          text: str) -> None:
    """(a) One page with everything: the readable ones among the matching documents, each
    once, with a score."""
    body = world.everything(user, {"target": target, "text": text})
    got = [int(r["id"]) for r in body["results"]]
    want = world.expected(user, target, text)
    assert len(got) == len(set(got)), got
    assert set(got) == want, (names(world, target, got), names(world, target, want))
    for r in body["results"]:
        assert isinstance(r["score"], float), r
        assert r["source"]["id"] == r["id"], r


#: (text, sort) of the paging tests: every text by relevance, and the explicit sorts for a
#: text of each way a page is found (every row, a word of the documents, a word of related
#: rows alone); the wildcard with an exclusion pages as the plain word does.
PAGED = [(text, sort) for text in TEXTS for sort in SORTS
         if sort is None or text != "neutr* -event"]


@pytest.mark.parametrize(("text", "sort"), PAGED,
                         ids=[f"{t}-{json.dumps(s) if s else 'relevance'}" for t, s in PAGED])
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("user", USERS)
def test_paging(world: World, user: str, target: str, text: str,
                sort: dict[str, str] | None) -> None:
    """(b) maxCount = 1, 2, 3, n-1, n, n+1 with search_after: every readable match once, in
    the order of one big page, every page full but the last, no page after the last."""
    query = {"target": target, "text": text}
    want = world.expected(user, target, text)
    extra = {"sort": json.dumps(sort)} if sort is not None else {}
    whole = [int(r["id"]) for r in world.everything(user, query, **extra)["results"]]
    assert set(whole) == want
    for k in page_sizes(len(want)):
        pages = world.pages(user, query, k, sort)
        flat = [i for p in pages for i in p]
        assert flat == whole, (k, pages, whole)
        assert all(len(p) == k for p in pages[:-1]), (k, pages)
        if want:
            assert 1 <= len(pages[-1]) <= k, (k, pages)
        else:
            assert pages == [[]]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("user", USERS)
def test_facets(world: World, user: str, target: str, text: str) -> None:
    """(c) Facet counts over the whole authorized result set, on a page of every result and
    on a page of one: distinct readable documents per label; only child rows the user may
    read give labels."""
    assert_facets(world, user, target, text)


def assert_facets(world: World, user: str, target: str, text: str) -> None:
    """The facets of a search (:func:`facets_of`) are what the query engine says."""
    query = {"target": target, "text": text, "facets": facets_of(target)}
    want = world.expected_facets(user, target, world.expected(user, target, text))
    for max_count in ("1000", "1"):
        body = world.ok_search(user, query, maxCount=max_count)
        got = body.get("dimensions", {})
        assert without_sample_labels(target, got) == without_sample_labels(target, want), (
            max_count, got, want)


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("user", USERS)
def test_lucene_data(world: World, user: str, target: str, text: str) -> None:
    """(d) The deprecated /icat/lucene/data finds the same documents; a short page is full
    and holds only readable matches."""
    query = {"target": target, "text": text}
    want = world.expected(user, target, text)
    r = world.lucene_data(user, query, 1000)
    assert r.status_code == 200, r.text
    got = [int(x["id"]) for x in r.json()]
    assert len(got) == len(set(got)), got
    assert set(got) == want, (names(world, target, got), names(world, target, want))
    for k in page_sizes(len(want)):
        r = world.lucene_data(user, query, k)
        assert r.status_code == 200, r.text
        short = [int(x["id"]) for x in r.json()]
        assert len(short) == min(k, len(want)), (k, short, names(world, target, want))
        assert set(short) <= want


def _facet_documents_query(world: World, target: str, scope: str) -> tuple[Json, list[int]]:
    ids = sorted(world.all_ids(target))
    if scope == "some":
        ids = ids[::2]
    facets: list[Json] = [{"target": PARAMETER[target],
                           "dimensions": [{"dimension": "type.name"}]}]
    if target == "Investigation":
        facets.append({"target": "InvestigationInstrument",
                       "dimensions": [{"dimension": "instrument.name"}]})
    return ({"target": target, "facets": facets, "filter": {f"{target.lower()}.id": ids}},
            ids)


@pytest.mark.parametrize("scope", ["all", "some"])
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("user", USERS)
def test_facet_documents(world: World, user: str, target: str, scope: str) -> None:
    """(e) /icat/facet/documents counts the child rows of the filtered documents that the user
    may read (the documents' own readability aside), and no other."""
    query, ids = _facet_documents_query(world, target, scope)
    wanted = set(ids)
    readable = world.readable(user, PARAMETER[target])
    params = Counter(t for pid, owner, t, _ in world.parameters(target)
                     if owner in wanted and pid in readable)
    want: dict[str, dict[str, int]] = {f"{PARAMETER[target]}.type.name": dict(params)}
    if target == "Investigation":
        ii_readable = world.readable(user, "InvestigationInstrument")
        want["InvestigationInstrument.instrument.name"] = dict(Counter(
            name for ii, inv, _, name in world.instruments()
            if inv in wanted and ii in ii_readable))
    want = {k: v for k, v in want.items() if v}
    r = world.facet_documents(user, query)
    assert r.status_code == 200, r.text
    assert r.json().get("dimensions", {}) == want, (r.json(), want)
    if not want:
        assert r.json() == {}, r.json()


@pytest.mark.parametrize("target", TARGETS)
def test_nothing_readable_matches(world: World, target: str) -> None:
    """(f) Users who may read none of what the text finds: exactly ``{"results": []}`` (with
    facets asked for: no dimensions), an empty lucene/data list, and facet/documents of an
    entity without any rule for them (DatafileParameter) is empty, not an error."""
    text = NARROW[target]
    assert world.matching(target, text), "the narrow text finds something as root"
    blind = [u for u in USERS if not world.expected(u, target, text)]
    assert blind, "some user may read none of what the narrow text finds"
    for user in blind:
        body = world.ok_search(user, {"target": target, "text": text,
                                      "facets": facets_of(target)})
        assert body == {"results": []}, (user, body)
        for k in (1, 10):
            body = world.ok_search(user, {"target": target, "text": text}, maxCount=str(k))
            assert body == {"results": []}, (user, k, body)
        r = world.lucene_data(user, {"target": target, "text": text}, 10)
        assert r.status_code == 200 and r.json() == [], (user, r.text)
    for user in USERS[1:]:
        assert not world.readable(user, "DatafileParameter")
        r = world.facet_documents(user, {
            "target": "Datafile", "facets": [{"target": "DatafileParameter"}],
            "filter": {"datafile.id": sorted(world.all_ids("Datafile"))}})
        assert r.status_code == 200 and r.json() == {}, (user, r.text)


@pytest.mark.parametrize("text", [EVERYTHING, NEUTRON])
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("user", USERS)
def test_restrict(world: World, user: str, target: str, text: str) -> None:
    """(g) restrict=true: only documents of investigations the user is on or is an instrument
    scientist for (and may read); pages are full and facets count those documents only."""
    mine = world.mine(user)
    want = frozenset(d for d in world.expected(user, target, text)
                     if world.investigation_of(target, d) in mine)
    query = {"target": target, "text": text, "facets": facets_of(target)}
    body = world.everything(user, query, restrict="true")
    got = [int(r["id"]) for r in body["results"]]
    assert len(got) == len(set(got)) and set(got) == want, (
        names(world, target, got), names(world, target, want))
    assert without_sample_labels(target, body.get("dimensions", {})) == without_sample_labels(
        target, world.expected_facets(user, target, want))
    for k in (1, 2):
        pages = world.pages(user, {"target": target, "text": text}, k, restrict="true")
        assert [i for p in pages for i in p] == got
        assert all(len(p) == k for p in pages[:-1]), pages


def test_restrict_users(world: World) -> None:
    """The fixture gives restrict something to tell apart: jdoe is on A and E, jbotu on A
    and B, acord is the scientist of X (B, C, E); the others are on nothing."""
    assert world.mine("jdoe") == frozenset(world.cat.resolve(["inv:A", "inv:E"]))
    assert world.mine("jbotu") == frozenset(world.cat.resolve(["inv:A", "inv:B"]))
    assert world.mine("acord") == frozenset(world.cat.resolve(["inv:B", "inv:C", "inv:E"]))
    for user in ("root", "nbour", "rbeck", "ahau"):
        assert world.mine(user) == frozenset()


# -- related rows the user may not read ------------------------------------------------------


def _check_related(world: World, user: str, source: Json, prefix: str,
                   needed: list[Link] | None, sufficient: list[Link] | None = None
                   ) -> list[str]:
    """Problems with the ``prefix`` keys of ``source``: shown though a row of ``needed`` (the
    related row itself) is unreadable, or missing though every row of ``sufficient`` (the path
    to it, default ``needed``) is readable. ``needed`` None: there is no related row."""
    keys = [k for k in source if k == prefix or k.startswith(prefix + ".")]
    if needed is None:
        return [f"{keys} shown for no related row"] if keys else []
    if keys and not world.can_read(user, needed):
        return [f"{keys} shown though {needed} is not readable"]
    if not keys and world.can_read(user, sufficient if sufficient is not None else needed):
        return [f"{prefix}.* missing though {sufficient or needed} is readable"]
    return []


def _children_problems(world: World, user: str, target: str, doc: int, source: Json
                       ) -> list[str]:
    problems = []
    inv = world.investigation_of(target, doc)
    ii_readable = world.readable(user, "InvestigationInstrument")
    shown = sorted(x.get("instrument.id", -1) for x in source.get("investigationinstrument", []))
    want = sorted(inst for ii, i, inst, _ in world.instruments()
                  if i == inv and ii in ii_readable)
    if shown != want:
        problems.append(f"investigationinstrument {shown} != readable {want}")
    if target == "Investigation":
        p_readable = world.readable(user, "InvestigationParameter")
        got_p = sorted((x.get("type.name"), x.get("stringValue", x.get("numericValue")))
                       for x in source.get("investigationparameter", []))
        want_p = sorted((t, v) for pid, owner, t, v in world.parameters(target)
                        if owner == doc and pid in p_readable)
        if got_p != want_p:
            problems.append(f"investigationparameter {got_p} != readable {want_p}")
        s_readable = world.readable(user, "Sample")
        st_readable = world.readable(user, "SampleType")
        samples = {r[0]: r[1] for r in world.rows(
            "SELECT s.id, i.id FROM Sample s JOIN s.investigation i")}
        got_s = sorted(x.get("sample.id", -1) for x in source.get("sample", []))
        want_s = sorted(s for s, i in samples.items() if i == doc and s in s_readable)
        if got_s != want_s:
            problems.append(f"sample {got_s} != readable {want_s}")
        for x in source.get("sample", []):
            st, _ = world.sample_type(x["sample.id"])
            if "type.name" in x and st not in st_readable:
                problems.append(f"sample {x} shows the name of an unreadable SampleType")
    return problems


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("user", USERS)
def test_sources_hide_unreadable_related_rows(world: World, user: str, target: str) -> None:
    """(h) ``source``: fields of a related row (investigation, dataset, sample, sample type)
    only where the user may read it, and joined child documents (investigation instruments,
    investigation parameters, samples) only for rows the user may read."""
    body = world.everything(user, {"target": target, "text": EVERYTHING})
    problems: dict[str, list[str]] = {}
    for r in body["results"]:
        doc, src = int(r["id"]), r["source"]
        out: list[str] = []
        inv = world.investigation_of(target, doc)
        sample = world.sample_of(target, doc) if target != "Investigation" else None
        sample_links: list[Link] | None = None
        type_links: list[Link] | None = None
        if sample is not None:
            sample_links = [("Sample", sample)]
            type_links = [*sample_links, ("SampleType", world.sample_type(sample)[0])]
        if target == "Dataset":
            out += _check_related(world, user, src, "investigation", [("Investigation", inv)])
            out += _check_related(world, user, src, "visitId", [("Investigation", inv)])
            out += _check_related(world, user, src, "sample.type", type_links)
            src_s = {k: v for k, v in src.items() if not k.startswith("sample.type")}
            out += _check_related(world, user, src_s, "sample", sample_links)
            if "investigation.id" in src:
                assert src["investigation.id"] == inv
        elif target == "Datafile":
            # Shown only where the related row is readable; required where the path to it
            # (through the datafile's dataset) is readable too.
            ds: list[Link] = [("Dataset", world.dataset_of(doc))]
            inv_links: list[Link] = [("Investigation", inv)]
            out += _check_related(world, user, src, "dataset", ds)
            out += _check_related(world, user, src, "investigation", inv_links,
                                  [*ds, *inv_links])
            out += _check_related(world, user, src, "visitId", inv_links, [*ds, *inv_links])
            out += _check_related(world, user, src, "sample.type", type_links,
                                  None if type_links is None else [*ds, *type_links])
            src_s = {k: v for k, v in src.items() if not k.startswith("sample.type")}
            out += _check_related(world, user, src_s, "sample", sample_links,
                                  None if sample_links is None else [*ds, *sample_links])
        out += _children_problems(world, user, target, doc, src)
        if out:
            problems[names(world, target, [doc])[0]] = out
    assert not problems, problems


def test_fixture_has_unreadable_related_labels(world: World) -> None:
    """What the next test relies on: jdoe may read her own samples but not root's, and the
    'powder' sample type but not 'crystal'; the others may read no sample."""
    jdoe_samples = world.readable("jdoe", "Sample")
    assert jdoe_samples == frozenset(world.cat.resolve(["s:jdoe-powder", "s:jdoe-crystal"]))
    assert world.readable("jdoe", "SampleType") == frozenset([world.cat["st:powder"]])
    for user in ("acord", "nbour", "rbeck", "ahau"):
        assert world.readable(user, "Sample") == frozenset()


@pytest.mark.parametrize("target", ["Investigation", "Dataset", "Datafile"])
@pytest.mark.parametrize("user", USERS)
def test_facet_labels_of_unreadable_related_rows(world: World, user: str, target: str
                                                 ) -> None:
    """(h) A label taken from a related row the user may not read (the sample type of a
    dataset's sample that the user may not read, or whose type the user may not read) is not
    counted: ``source`` leaves the same field out, and a facet must not tell it either. The
    same holds for /icat/facet/documents on Sample type.name."""
    if target != "Investigation":
        docs = world.expected(user, target, EVERYTHING)
        body = world.everything(user, {"target": target, "text": EVERYTHING,
                                       "facets": [{"target": target}]})
        got = body.get("dimensions", {}).get(sample_dimension(target), {})
        want = world.own_facet(user, target, "sample.type.name", docs)
        assert got == want, (got, want)
    else:
        readable_s = world.readable(user, "Sample")
        readable_st = world.readable(user, "SampleType")
        counts: Counter[str] = Counter()
        for s, _inv in world.rows("SELECT s.id, i.id FROM Sample s JOIN s.investigation i"):
            st, name = world.sample_type(s)
            if s in readable_s and st in readable_st:
                counts[name] += 1
        r = world.facet_documents(user, {
            "target": "Investigation",
            "facets": [{"target": "Sample", "dimensions": [{"dimension": "type.name"}]}],
            "filter": {"investigation.id": sorted(world.all_ids("Investigation"))}})
        assert r.status_code == 200, r.text
        assert r.json().get("dimensions", {}).get("Sample.type.name", {}) == dict(counts), (
            r.json(), dict(counts))
