"""Sorting, filtering and keyset paging of the portal's tables, all of it in the query string.

A :class:`Listing` says how one table of entities may be ordered (its :class:`Column`\\ s), which
attributes its filter box searches, and under which query parameters its state travels, so a
page can hold two tables (``prefix``). :meth:`Listing.fetch` reads that state from the
request's query string, asks the catalogue for one page and returns a :class:`Page`, which
also makes the links of the table: sort headers (with ``aria-sort``), next and previous.

Paging is by keyset, never by offset or count: a page is the first rows *after* (or, going
back, *before*) the last row seen, in the order ``column, id``, so the database reads one
index range whatever the page's depth, and a row added or removed meanwhile never shifts a
page. The cursor is that row's id and sort value::

    ?sort=title&order=asc&after=1234&at=Crystal%20structure   (``at`` absent: NULL)

NULLs sort first ascending and last descending, as the catalogue orders them on every
database; the conditions below follow that. Everything is ICAT query text run through the
catalogue as the visitor, so the rules apply to every row and to every page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from cairn.errors import ErrorType, IcatError
from cairn.web.portal.pages import query_string
from cairn.web.portal.signin import quoted

Kind = Literal["text", "number", "date"]

#: The longest filter text taken (a title search needs no more).
MAX_FILTER = 200


def contains(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, lower-cased, its wildcards escaped (the
    catalogue escapes with a backslash on every database)."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return quoted(f"%{escaped}%")


@dataclass(frozen=True)
class Column:
    """A column a table can be sorted by: an attribute of the listed entity."""

    key: str  #: its name in the query string (``?sort=<key>``)
    field: str  #: the attribute (``startDate``)
    kind: Kind = "text"  #: how the cursor's value is read back
    descending: bool = False  #: the direction of its first click (newest, largest first)
    nullable: bool = True

    def parse(self, raw: str) -> Any:
        """A cursor value from the query string; BAD_PARAMETER if it is not of its kind."""
        try:
            if self.kind == "number":
                return float(raw) if any(c in raw for c in ".eE") else int(raw)
            if self.kind == "date":
                return datetime.fromisoformat(raw)
        except ValueError:
            raise IcatError(ErrorType.BAD_PARAMETER,
                            f"{raw!r} is not a {self.kind} to page from") from None
        return raw

    @staticmethod
    def text(value: Any) -> str:
        """A value as the cursor writes it."""
        return value.isoformat() if isinstance(value, datetime) else str(value)


@dataclass(frozen=True)
class Cursor:
    """Where a page starts: the id and sort value of the row it follows (or precedes)."""

    id: int
    value: Any  # None: NULL
    backwards: bool  # a ``before`` cursor: the page ends just before this row


@dataclass(frozen=True)
class State:
    """A table's state read from the query string."""

    column: Column
    descending: bool
    text: str  # the filter box
    cursor: Cursor | None


@dataclass(frozen=True)
class Listing:
    """How one table of a page is sorted, filtered and paged."""

    var: str  #: the listed entity's variable in the query (``i``)
    columns: tuple[Column, ...]
    default: str  #: the column sorted by unless the query string says otherwise
    filters: tuple[str, ...] = ()  #: attributes the filter box searches (contains, any case)
    prefix: str = ""  #: before every parameter name, when a page has two tables

    def param(self, name: str) -> str:
        return self.prefix + name

    def column(self, key: str) -> Column:
        for c in self.columns:
            if c.key == key:
                return c
        raise IcatError(ErrorType.BAD_PARAMETER,
                        f"This table cannot be sorted by {key!r}: choose one of "
                        + ", ".join(c.key for c in self.columns))

    def state(self, args: Mapping[str, str]) -> State:
        """The table's state from the query string; BAD_PARAMETER for what cannot be read."""
        column = self.column(args.get(self.param("sort")) or self.default)
        order = args.get(self.param("order")) or ("desc" if column.descending else "asc")
        if order not in ("asc", "desc"):
            raise IcatError(ErrorType.BAD_PARAMETER, "order must be asc or desc")
        typed = args.get(self.param("q")) or ""
        text = " ".join("".join(c if c.isprintable() else " " for c in typed).split())
        text = text[:MAX_FILTER]
        cursor = None
        for name, backwards in (("after", False), ("before", True)):
            raw = args.get(self.param(name))
            if raw:
                try:
                    ident = int(raw)
                except ValueError:
                    raise IcatError(ErrorType.BAD_PARAMETER,
                                    f"{name} must be a row id, not {raw!r}") from None
                at = args.get(self.param("at"))
                if at is not None and "\x00" in at:  # no stored value holds one
                    raise IcatError(ErrorType.BAD_PARAMETER, "at holds a NUL character")
                value = None if at is None or column.key == "id" else column.parse(at)
                if column.key == "id":
                    value = ident
                cursor = Cursor(ident, value, backwards)
                break
        return State(column, order == "desc", text, cursor)

    # -- the query ------------------------------------------------------------------------

    def _path(self, column: Column) -> str:
        return f"{self.var}.{column.field}"

    def order_by(self, column: Column, descending: bool) -> str:
        way = "DESC" if descending else "ASC"
        if column.key == "id":
            return f"ORDER BY {self.var}.id {way}"
        return f"ORDER BY {self._path(column)} {way}, {self.var}.id {way}"

    def beyond(self, column: Column, descending: bool, cursor: Cursor) -> str:
        """The rows that come after ``cursor`` in the order ``column`` (``descending``),
        ``id``: NULLs first ascending, last descending."""
        v, ident = self.var, int(cursor.id)
        path, value = self._path(column), cursor.value
        more = "<" if descending else ">"
        if column.key == "id":
            return f"{v}.id {more} {ident}"
        if value is None:
            if not column.nullable:  # a NULL where none can be: start from the first row
                return f"{v}.id IS NOT NULL"
            if descending:
                return f"({path} IS NULL AND {v}.id < {ident})"
            return f"(({path} IS NULL AND {v}.id > {ident}) OR {path} IS NOT NULL)"
        literal = quoted(Column.text(value))
        main = f"{path} {more} {literal} OR ({path} = {literal} AND {v}.id {more} {ident})"
        if descending and column.nullable:
            main += f" OR {path} IS NULL"
        return f"({main})"

    def matching(self, text: str) -> str | None:
        if not text or not self.filters:
            return None
        pattern = contains(text)
        return "(" + " OR ".join(f"LOWER({self.var}.{f}) LIKE {pattern}"
                                 for f in self.filters) + ")"

    def query(self, source: str, where: Sequence[str], order: str, limit: int,
              include: str = "", select: str | None = None) -> str:
        conditions = " AND ".join(f"({w})" for w in where)
        text = f"SELECT {select or self.var} FROM {source}"
        if conditions:
            text += f" WHERE {conditions}"
        text += f" {order} LIMIT 0, {int(limit)}"
        if include:
            text += f" INCLUDE {include}"
        return text

    def fetch(self, args: Mapping[str, str], size: int, search: Callable[[str], list[Any]],
              source: str, where: Sequence[str] = (), include: str = "",
              select: str | None = None, total: int | None = None) -> Page:
        """One page of the table: ``source`` is the FROM clause (the listed entity as
        :attr:`var`), ``where`` the conditions every row meets, ``include`` what to bring
        with each row; ``search`` runs query text as the visitor. ``total``, when the
        caller knows it cheaply (a dataset's fileCount), is shown with the page."""
        state = self.state(args)
        base = [*where]
        if (m := self.matching(state.text)) is not None:
            base.append(m)
        column, desc, cursor = state.column, state.descending, state.cursor

        def run(conditions: list[str], descending: bool) -> list[Any]:
            return list(search(self.query(source, conditions, self.order_by(column, descending),
                                          size + 1, include, select)))

        has_previous = has_next = False
        if cursor is not None and cursor.backwards:
            rows = run([*base, self.beyond(column, not desc, cursor)], not desc)
            if rows:  # at most a page before it: the first page ends just before it too
                has_previous, has_next = len(rows) > size, True
                rows = list(reversed(rows[:size]))
            else:  # nothing before it (a stale link): the first page
                cursor = None
        if cursor is None or not cursor.backwards:
            conditions = base if cursor is None else [*base, self.beyond(column, desc, cursor)]
            rows = run(conditions, desc)
            has_next = len(rows) > size
            rows = rows[:size]
            has_previous = cursor is not None
        return Page(self, state, rows, args, has_previous, has_next, total)


@dataclass
class Page:
    """One page of a table, and the links that sort it and move through it."""

    listing: Listing
    state: State
    rows: list[Any]
    args: Mapping[str, str]
    has_previous: bool
    has_next: bool
    total: int | None = None

    @property
    def text(self) -> str:
        return self.state.text

    @property
    def filtered(self) -> bool:
        return bool(self.state.text)

    @property
    def sort(self) -> str:
        return self.state.column.key

    @property
    def descending(self) -> bool:
        return self.state.descending

    def _href(self, **changes: Any) -> str:
        p = self.listing.param
        base = {k: v for k, v in self.args.items()}
        return query_string(base, **{p(k): v for k, v in changes.items()})

    def _cursor(self, row: Any, name: str) -> str:
        value = row.values.get(self.state.column.field) if self.sort != "id" else None
        return self._href(after=row.id if name == "after" else None,
                          before=row.id if name == "before" else None,
                          at=None if value is None else Column.text(value))

    @property
    def next_href(self) -> str | None:
        return self._cursor(self.rows[-1], "after") if self.has_next and self.rows else None

    @property
    def previous_href(self) -> str | None:
        if not self.has_previous:
            return None
        if not self.rows:
            return self.first_href
        return self._cursor(self.rows[0], "before")

    @property
    def first_href(self) -> str:
        return self._href(after=None, before=None, at=None)

    @property
    def clear_href(self) -> str:
        """The table without its filter (from its first page)."""
        return self._href(q=None, after=None, before=None, at=None)

    @property
    def paged(self) -> bool:
        """Whether the table needs paging links at all."""
        return self.has_next or self.has_previous

    def sort_href(self, key: str) -> str:
        """Sort by ``key``: its usual direction first, the other way when already sorted so."""
        column = self.listing.column(key)
        if key == self.sort:
            order = "asc" if self.descending else "desc"
        else:
            order = "desc" if column.descending else "asc"
        return self._href(sort=key, order=order, after=None, before=None, at=None)

    def aria_sort(self, key: str) -> str | None:
        if key != self.sort:
            return None
        return "descending" if self.descending else "ascending"

    def kept_fields(self) -> list[tuple[str, str]]:
        """The query parameters the filter form sends along unchanged (this table's sort and
        other tables' state), without this table's filter and cursor."""
        p = self.listing.param
        dropped = {p("q"), p("after"), p("before"), p("at")}
        return [(k, v) for k, v in self.args.items() if k not in dropped]

    @property
    def filter_name(self) -> str:
        return self.listing.param("q")
