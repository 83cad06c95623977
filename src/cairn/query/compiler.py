"""Compile a query's syntax tree into one SQLAlchemy Core statement.

Everything the user wrote becomes a bound parameter; only names from the schema and our own
keywords reach the SQL text. The result (:class:`CompiledQuery`) does not depend on the
caller, so it is cached by query text and shared between threads; the caller's name (``:user``)
and the clock are bound at execution, and authorization adds its predicates through
:meth:`CompiledQuery.statement`.

Semantics follow icat.server (JPQL through EclipseLink on MySQL), made identical on SQLite,
PostgreSQL and MariaDB:

* variables are table aliases; dotted paths are implicit inner joins (:mod:`.scope`);
* a path to an entity compares, groups and orders by its id;
* quoted literals take the type of what they are compared with (:mod:`.coerce`), and
  ill-typed expressions are refused (:mod:`.typecheck`, asked about each node before its SQL
  is made);
* without ORDER BY rows come in id order (and ties in any ORDER BY are broken by ids), NULLs
  sort first ascending, so paging is stable and every backend returns the same list;
* SELECT DISTINCT is a GROUP BY of the selected columns, which lets ORDER BY name columns
  that are not selected (as MariaDB allows and PostgreSQL does not).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Double,
    Integer,
    String,
    Time,
    and_,
    bindparam,
    case,
    cast,
    distinct,
    exists,
    false,
    func,
    literal,
    literal_column,
    not_,
    null,
    or_,
    select,
    true,
)
from sqlalchemy.sql.elements import ColumnElement, Null
from sqlalchemy.sql.selectable import FromClause, Select

from cairn.db.tables import OrdinalEnum, Tables
from cairn.query import ast, grouping, limits, typecheck
from cairn.query.coerce import INTEGRAL, NUMERIC, error
from cairn.query.includes import IncludeTree, include_tree
from cairn.query.lookups import Lookup
from cairn.query.lookups import find as find_lookups
from cairn.query.scope import Aliases, AliasPool, Node, Scope, Tree
from cairn.query.sqlfuncs import TRIMS, CharLength, DateText, Locate, order_key
from cairn.query.typecheck import AGGREGATES, PENDING, Const
from cairn.schema import SCHEMA, Entity

#: Runtime parameters a statement may need; values are supplied by the executor.
USER = "user"
NOW = {"CURRENT_TIMESTAMP": "_current_timestamp", "CURRENT_DATE": "_current_date",
       "CURRENT_TIME": "_current_time"}
_NOW_TYPES: dict[str, Callable[[], Any]] = {
    "CURRENT_TIMESTAMP": DateTime, "CURRENT_DATE": Date, "CURRENT_TIME": Time}


# -- what the compiler hands out --------------------------------------------------------------


@dataclass(frozen=True)
class IdPath:
    """An entity exposed by the SELECT clause and the column holding its id (§2.5)."""

    entity: str
    column: ColumnElement[Any]


#: Authorization hook: a predicate restricting one exposed id path, or None for no restriction.
Restrict = Callable[[IdPath], ColumnElement[bool] | None]


@dataclass(frozen=True)
class Item:
    """One quantity of the SELECT clause: ``width`` columns turned back into one value."""

    entity: Entity | None  # an entity result (columns = its id, attributes, foreign keys)
    typ: str | None  # ICAT type of a scalar ("Long", "Date", "StudyStatus"...; None unknown)
    keys: tuple[str, ...] = ()  # entity results: the field name of each column


@dataclass(eq=False)
class CompiledQuery:
    """A query ready to run. Immutable once built; share freely."""

    items: tuple[Item, ...]
    columns: tuple[ColumnElement[Any], ...]  # every selected column, in item order
    froms: tuple[FromClause, ...]
    where: tuple[ColumnElement[bool], ...]
    group_by: tuple[ColumnElement[Any], ...]
    having: ColumnElement[bool] | None
    order_by: tuple[ColumnElement[Any], ...]
    distinct: bool  # plain SELECT DISTINCT (only when it can't be a GROUP BY)
    aggregate: bool  # rows are groups (aggregates or GROUP BY)
    limit: ast.Limit | None
    id_paths: tuple[IdPath, ...]
    include: IncludeTree
    is_count: bool  # COUNT over one id path: icat.server answers [0] when nothing is readable
    params: frozenset[str]  # runtime parameters used (USER, NOW values)
    root_entity: str  # the entity of the first FROM variable

    @property
    def entity(self) -> Entity | None:
        """The entity type when the result is a list of entities."""
        return self.items[0].entity if len(self.items) == 1 else None

    def statement(self, restrict: Restrict | None = None,
                  known: Sequence[ColumnElement[bool]] = ()) -> Select[Any]:
        """The SELECT, with authorization predicates for the exposed id paths if given, and
        the ``known`` conditions (:mod:`cairn.query.lookups`)."""
        if restrict is None and not known:
            return self._plain
        extra = [] if restrict is None else [
            p for p in (restrict(ip) for ip in self.id_paths) if p is not None]
        return self._build([*extra, *known])

    @cached_property
    def lookups(self) -> tuple[Lookup, ...]:
        """Conditions on a joined parameter type to look up before the search runs."""
        return find_lookups(self.froms, self.where, self.params)

    @cached_property
    def _plain(self) -> Select[Any]:
        return self._build([])

    def _build(self, extra: list[ColumnElement[bool]]) -> Select[Any]:
        cols = [c.label(f"c{i}") for i, c in enumerate(self.columns)]
        stmt = select(*cols).select_from(*self.froms)
        where = [*self.where, *extra]
        if where:
            stmt = stmt.where(and_(*where))
        if self.group_by:
            stmt = stmt.group_by(*self.group_by)
        if self.having is not None:
            stmt = stmt.having(self.having)
        if self.distinct:
            stmt = stmt.distinct()
        if self.order_by:
            stmt = stmt.order_by(*self.order_by)
        return stmt


@dataclass(frozen=True)
class CompiledGet:
    entity: Entity
    include: IncludeTree


# -- authorization hook: conditions on a row of an enclosing statement ------------------------


@dataclass(frozen=True)
class Alternative:
    """One way for a row to qualify (a rule, in authorization): ``EXISTS (SELECT 1 FROM
    <from_> WHERE <where>)`` where ``names`` maps this alternative's own variable names onto the
    row's and the shared joins' names (see :meth:`Compiler.row_condition`)."""

    names: Mapping[str, str]
    from_: tuple[ast.FromItem, ...]
    where: ast.Expr | None


@dataclass(frozen=True)
class RowCondition:
    sql: ColumnElement[bool]
    params: frozenset[str]  # runtime parameters used (USER, NOW values)


# -- values -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Val:
    """A compiled expression and its type (:mod:`.typecheck`; "entity" = an entity's id)."""

    sql: ColumnElement[Any]
    typ: str | None
    entity: Entity | None = None


#: The SQL type a typed constant is bound as, by its own type (enums: by their ordinal).
_BIND_TYPES: dict[str, Callable[[], Any]] = {
    "Integer": Integer, "Long": BigInteger, "Double": Double, "boolean": Boolean,
    "Date": DateTime, "String": String}
_SUBQUERY_NODES = (ast.Subquery, ast.InSubquery, ast.Exists)


def walk(node: Any, into_subqueries: bool = False) -> Iterator[Any]:
    """Every AST node under ``node`` (sub-selects only if asked), in pre-order; without
    recursion, as a long chain of ``+`` is a deep tree."""
    stack = [node]
    while stack:
        node = stack.pop()
        yield node
        if not into_subqueries and isinstance(node, _SUBQUERY_NODES):
            children: list[Any] = [getattr(node, "expr", None)]
        elif hasattr(node, "__dataclass_fields__"):
            children = [getattr(node, f) for f in node.__dataclass_fields__]
        else:
            continue
        found: list[Any] = []
        for c in children:
            if isinstance(c, tuple):
                found.extend(x for x in c if hasattr(x, "__dataclass_fields__"))
            elif hasattr(c, "__dataclass_fields__"):
                found.append(c)
        stack.extend(reversed(found))


def _path_text(p: ast.Path) -> str:
    return ".".join((p.var, *p.fields))


# -- the compiler -----------------------------------------------------------------------------


@dataclass
class _Ctx:
    """Per-SELECT state: its scope and whether aggregates were seen in it."""

    scope: Scope
    aggregated: bool = False
    params: set[str] = field(default_factory=set)


class Compiler:
    """Turns :mod:`ast` nodes into SQLAlchemy Core for one database.

    ``zone`` is the zone the database's naive timestamps are in (``Database.zone``): a date
    literal written with an offset is converted to it. ``dialect`` is the SQLAlchemy dialect
    name; only NULL ordering depends on it.
    """

    def __init__(self, tables: Tables, dialect: str, zone: ZoneInfo) -> None:
        self.tables = tables
        self.dialect = dialect
        self.zone = zone
        self._pool: AliasPool = {}  # the aliases of standalone statements (Aliases)

    # -- entry points -----------------------------------------------------------------------

    def compile(self, sel: ast.Select, standalone: bool = False) -> CompiledQuery:
        """``sel`` compiled. ``standalone``: its statement will never be nested in another
        one compiled so (a search, not a rule), so it may take its aliases from the
        compiler's pool and make none (:class:`.scope.Aliases`)."""
        aliases = Aliases(self.tables, self._pool if standalone else None)
        ctx = _Ctx(Scope(self.tables, aliases=aliases))
        scope, params = ctx.scope, ctx.params
        for item in sel.from_:
            self._from(scope, item)
        if not scope.vars:
            raise error("The FROM clause declares no variable", -1)

        # SELECT: entities become their full row, everything else one column.
        items: list[Item] = []
        columns: list[ColumnElement[Any]] = []
        constant: list[bool] = []  # per column: the same on every row
        primary: list[ColumnElement[Any]] = []  # leading sort keys: the selected ids
        shown: list[tuple[str, ast.Expr, ColumnElement[Any]]] = []  # for the grouping check
        for expr in sel.items:
            if isinstance(expr, ast.Path) and self._is_entity_path(scope, expr):
                node = scope.node_of(expr, "SELECT")
                keys = tuple(f.name for f in node.entity.fields.values()
                             if not f.is_many and not f.hidden)
                items.append(Item(node.entity, None, keys))
                columns.extend(node.alias.c[k] for k in keys)
                shown.extend(("SELECT", expr, node.alias.c[k]) for k in keys)
                constant.extend(False for _ in keys)
                primary.append(node.id)
            else:
                v = self._value(ctx, expr, None, "SELECT")
                items.append(Item(None, v.typ))
                columns.append(v.sql)
                shown.append(("SELECT", expr, v.sql))
                constant.append(_constant(expr))
                first = next((p for p in walk(expr) if isinstance(p, ast.Path)), None)
                if first is not None:
                    root = scope.lookup(first.var)
                    if root is not None and root.scope is scope:
                        primary.append(root.id)
        limits.check_columns(len(columns))
        selects_aggregate = ctx.aggregated
        id_paths, n_paths = self._id_paths(scope, sel.items)
        is_count = n_paths == 1 and any(
            isinstance(n, ast.Func) and n.name == "COUNT" for e in sel.items for n in walk(e))

        include = IncludeTree()
        if sel.include is not None:
            if n_paths > 1:
                raise error("INCLUDE is only valid for one quantity in the SELECT clause", -1)
            if len(items) == 1 and items[0].entity is not None:
                path = sel.items[0]
                assert isinstance(path, ast.Path)
                include = include_tree(items[0].entity, sel.include,
                                       None if path.fields else path.var)

        where: list[ColumnElement[bool]] = []
        if sel.where is not None:
            where.append(self._cond(ctx, sel.where, "WHERE"))
        group_by: list[ColumnElement[Any]] = []
        for g in sel.group_by:
            if isinstance(g, ast.Path) and self._is_entity_path(scope, g):
                group_by.append(scope.node_of(g, "GROUP BY").id)
            else:
                group_by.append(self._value(ctx, g, None, "GROUP BY").sql)
        having = None
        if sel.having is not None:
            grouping.check_having(bool(group_by), selects_aggregate, sel.having.pos)
            having = self._cond(ctx, sel.having, "HAVING")
            shown.append(("HAVING", sel.having, having))
        aggregate = bool(group_by) or ctx.aggregated or having is not None
        # DISTINCT rows of aggregates are few; a GROUP BY can't hold a sub-select everywhere.
        # ... and GROUP BY of constants only is refused by PostgreSQL.
        plain_distinct = sel.distinct and (aggregate or all(constant) or any(
            isinstance(n, ast.Subquery) for e in sel.items for n in walk(e)))
        grouped_distinct = sel.distinct and not plain_distinct

        order_by: list[ColumnElement[Any]] = []
        seen: list[ColumnElement[Any]] = []

        def add(expr: ColumnElement[Any], descending: bool) -> None:
            if any(expr.compare(s) for s in seen):
                return
            seen.append(expr)
            order_by.append(order_key(expr, descending, self.dialect,
                                      nullable=not scope.never_null(expr)))

        # An aggregate without GROUP BY is one row: an ORDER BY would only upset PostgreSQL.
        user_order = () if ctx.aggregated and not group_by else sel.order_by
        for o in user_order:
            e = o.expr
            if _constant(e):
                raise error("ORDER BY needs a path, not a constant", getattr(e, "pos", -1))
            typ: str | None = "entity"
            if isinstance(e, ast.Path) and self._is_entity_path(scope, e) and (
                    aggregate or grouped_distinct):
                sql = scope.node_of(e, "ORDER BY").id
            else:
                v = self._value(ctx, e, None, "ORDER BY")
                sql, typ = v.sql, v.typ
            shown.append(("ORDER BY", e, sql))
            if grouped_distinct:
                # A selected column is grouped by (use that very expression, so PostgreSQL
                # sees the same bound parameters); anything else is aggregated per group
                # (booleans as 0 and 1: PostgreSQL has no MIN or MAX of them).
                same = next((c for c in columns if sql.compare(c)), None)
                key = cast(sql, Integer()) if typ == "boolean" else sql
                per_group = func.max(key) if o.descending else func.min(key)
                sql = same if same is not None else per_group
            add(sql, o.descending)
        aggregate = aggregate or ctx.aggregated  # ORDER BY may aggregate too
        if aggregate:
            self._check_grouped(scope, shown, group_by)

        # Ties (and queries without ORDER BY) are ordered by ids: the selected ones first,
        # then every FROM variable and generated join, so all backends agree on the order.
        # Where only entities are selected, rows with the same selected ids are the same
        # result whatever they joined: those ids order them fully, and a database that can
        # sort by several tables only by sorting every row (MariaDB) may walk the first
        # table's key and stop after the page.
        ids = [*primary, *scope.var_ids(), *(n.id for n in scope.generated)]
        if all(item.entity is not None for item in items):
            ids = primary
        if plain_distinct or (aggregate and not group_by):
            pass  # DISTINCT aggregates, or one row
        elif aggregate or grouped_distinct:
            grouped_by = columns if grouped_distinct else group_by
            for i in ids:
                add(i if any(i.compare(g) for g in grouped_by) else func.min(i), False)
        else:
            for i in ids:
                add(i, False)

        if grouped_distinct:
            group_by = [c for c, k in zip(columns, constant, strict=True) if not k]
        where.extend(scope.correlations)
        limits.check_tables(scope.table_count())
        return CompiledQuery(
            items=tuple(items), columns=tuple(columns), froms=tuple(scope.from_clauses()),
            where=tuple(where), group_by=tuple(group_by), having=having,
            order_by=tuple(order_by), distinct=plain_distinct, aggregate=aggregate,
            limit=sel.limit, id_paths=tuple(id_paths), include=include, is_count=is_count,
            params=frozenset(params), root_entity=scope.vars[scope.order[0]].entity.name)

    def compile_get(self, get: ast.Get) -> CompiledGet:
        entity = SCHEMA.get(get.entity) or SCHEMA.lookup_ci(get.entity)
        if entity is None:
            raise error(f"{get.entity} is not an ICAT entity", -1)
        return CompiledGet(entity, include_tree(entity, get.include, get.var))

    def row_condition(self, entity: Entity, column: ColumnElement[Any], var: str,
                      shared: Sequence[ast.FromJoin], alternatives: Sequence[Alternative]
                      ) -> RowCondition:
        """"The ``entity`` whose id is ``column`` satisfies one of ``alternatives``".

        When ``column`` is the id of a table (alias) of ``entity`` in the enclosing statement,
        ``var`` denotes that very row: its attributes are read from it and joins from it are
        correlated through its foreign keys. Otherwise (a foreign key exposing an entity) a
        new alias is matched on the id. ``shared`` joins (declared in terms of ``var``) are made
        once for every alternative, inside one ``EXISTS``; the caller promises they multiply
        nothing (inner joins along many-to-one fields).
        """
        params: set[str] = set()
        top = Scope(self.tables)
        table = self.tables[entity.name]
        if column.key == "id" and getattr(column.table, "element", column.table) is table:
            top.declare(var, Node(entity, column.table, top, Tree(column.table)), -1)
            inner = Scope(self.tables, parent=top)
            keyed: list[ColumnElement[bool]] = []
        else:
            inner = Scope(self.tables, parent=top)
            alias = table.alias()
            tree = Tree(alias)
            inner.trees.append(tree)
            inner.declare(var, Node(entity, alias, inner, tree), -1)
            keyed = [alias.c.id == column]
        for join in shared:
            self._from(inner, join)
        conds: list[ColumnElement[bool]] = []
        for alt in alternatives:
            ctx = _Ctx(Scope(self.tables, parent=inner), params=params)
            for own, name in alt.names.items():
                node = inner.lookup(name)
                assert node is not None, name
                ctx.scope.vars[own] = node
            for item in alt.from_:
                self._from(ctx.scope, item)
            where = [self._cond(ctx, alt.where, "WHERE")] if alt.where is not None else []
            where.extend(ctx.scope.correlations)
            if ctx.scope.trees:
                # Everything but its own FROM comes from outside, at any depth: left to
                # auto-correlation (which looks only at the statement directly around it), an
                # EXISTS two levels down would list the enclosing row's table in its own FROM
                # and test any row of it instead.
                froms = ctx.scope.from_clauses()
                stmt: Select[Any] = (select(literal_column("1")).select_from(*froms)
                                     .correlate_except(*froms))
                conds.append(exists(stmt.where(*where)) if where else exists(stmt))
            else:
                conds.append(and_(*where) if where else true())
        cond = or_(*conds) if len(conds) != 1 else conds[0]
        if inner.trees:
            froms = inner.from_clauses()
            stmt = select(literal_column("1")).select_from(*froms).correlate_except(*froms)
            cond = exists(stmt.where(*keyed, *inner.correlations, cond))
        return RowCondition(cond, frozenset(params))

    # -- FROM -------------------------------------------------------------------------------

    @staticmethod
    def _from(scope: Scope, item: ast.FromItem) -> None:
        if isinstance(item, ast.FromEntity):
            scope.add_entity(item)
        else:
            scope.add_join(item)

    @staticmethod
    def _is_entity_path(scope: Scope, path: ast.Path) -> bool:
        return not path.fields or not scope.entity_field(path).is_attribute

    def _id_paths(self, scope: Scope, exprs: tuple[ast.Expr, ...]
                  ) -> tuple[list[IdPath], int]:
        """The entities the SELECT clause exposes (icat.server's "id paths", §2.5)."""
        out: list[IdPath] = []
        texts: set[str] = set()
        for e in exprs:
            for p in walk(e):
                if not isinstance(p, ast.Path):
                    continue
                texts.add(_path_text(p).lower())
                node = scope.lookup(p.var)
                if node is None or node.scope is not scope:
                    continue
                if p.fields and scope.entity_field(p).is_many:
                    if isinstance(e, ast.Path) and e is p:  # a generated join
                        n = scope.node_of(p, "SELECT")
                        owner = (n.entity, n.id)
                    else:  # SIZE(ds.datafiles): the owner is exposed
                        r = scope.resolve(ast.Path(p.var, p.fields[:-1], p.pos), "SELECT")
                        owner = r.owner  # type: ignore[assignment]
                else:
                    r = scope.resolve(p, "SELECT")
                    owner = r.owner  # type: ignore[assignment]
                if owner is not None and not any(
                        ip.entity == owner[0].name and ip.column.compare(owner[1]) for ip in out):
                    out.append(IdPath(owner[0].name, owner[1]))
        return out, len(texts)

    @staticmethod
    def _check_grouped(scope: Scope, shown: list[tuple[str, ast.Expr, ColumnElement[Any]]],
                       group_by: list[ColumnElement[Any]]) -> None:
        """In an aggregated SELECT, every value shown, tested in HAVING or ordered by is one
        per group (:mod:`.grouping`)."""
        aliases = scope.aliases()
        for clause, expr, sql in shown:
            grouping.check_grouped(clause, expr, sql, group_by, aliases)

    # -- sub-selects ------------------------------------------------------------------------

    def _subselect(self, ctx: _Ctx, sel: ast.Select) -> tuple[Select[Any], Val]:
        """A sub-select in the scope of ``ctx``; its single item's value describes it."""
        sub = _Ctx(Scope(self.tables, parent=ctx.scope), params=ctx.params)
        for item in sel.from_:
            self._from(sub.scope, item)
        if len(sel.items) != 1:
            raise error("A sub-select must select exactly one item", -1)
        expr = sel.items[0]
        if isinstance(expr, ast.Path) and self._is_entity_path(sub.scope, expr):
            r = sub.scope.resolve(expr, "SELECT", many_joins=True)
            v = Val(r.id, "entity", r.entity)  # type: ignore[arg-type]
        else:
            v = self._value(sub, expr, None, "SELECT")
        where = []
        if sel.where is not None:
            where.append(self._cond(sub, sel.where, "WHERE"))
        group_by = [self._value(sub, g, None, "GROUP BY").sql for g in sel.group_by]
        shown: list[tuple[str, ast.Expr, ColumnElement[Any]]] = [("SELECT", expr, v.sql)]
        having = None
        if sel.having is not None:
            grouping.check_having(bool(group_by), sub.aggregated, sel.having.pos)
            having = self._cond(sub, sel.having, "HAVING")
            shown.append(("HAVING", sel.having, having))
        if group_by or sub.aggregated:
            self._check_grouped(sub.scope, shown, group_by)
        where.extend(sub.scope.correlations)
        limits.check_tables(sub.scope.table_count())
        # Last: the clauses above may have added implicit joins.
        stmt = select(v.sql).select_from(*sub.scope.from_clauses())
        if where:
            stmt = stmt.where(and_(*where))
        if group_by:
            stmt = stmt.group_by(*group_by)
        if having is not None:
            stmt = stmt.having(having)
        if sel.distinct:
            stmt = stmt.distinct()
        return stmt, v

    # -- conditions -------------------------------------------------------------------------

    def _cond(self, ctx: _Ctx, node: ast.Expr, clause: str) -> ColumnElement[bool]:
        match node:
            case ast.And(items=items):
                return and_(*(self._cond(ctx, i, clause) for i in items))
            case ast.Or(items=items):
                return or_(*(self._cond(ctx, i, clause) for i in items))
            case ast.Not(expr=e):
                return not_(self._cond(ctx, e, clause))
            case ast.Compare(op=op, left=left, right=right):
                lv, rv = self._pair(ctx, left, right, clause)
                typecheck.comparable(lv.typ, rv.typ,
                                     right if isinstance(left, PENDING) else left)
                return _compare(op, lv.sql, rv.sql)
            case ast.Like():
                v = self._value(ctx, node.expr, None, clause)
                pat = self._value(ctx, node.pattern, "String", clause)
                typecheck.pattern(pat.typ, node.pattern)
                typecheck.text(v.typ, node.expr, "LIKE")
                escape = typecheck.escape(node)
                typecheck.check_pattern(node, escape or "\\")
                if escape is None and self.dialect == "sqlite":
                    # MariaDB and PostgreSQL escape with backslash by default: SQLite too
                    escape = "\\"
                like = _nullable(_as_text(v)).like(_nullable(pat.sql), escape=escape)
                return not_(like) if node.negated else like
            case ast.InList():
                v = self._value(ctx, node.expr, None, clause)
                members = []
                for i in node.items:
                    iv = self._value(ctx, i, v.typ, clause)
                    typecheck.comparable(v.typ, iv.typ, i)
                    members.append(iv.sql)
                return v.sql.not_in(members) if node.negated else v.sql.in_(members)
            case ast.InSubquery():
                v = self._value(ctx, node.expr, None, clause)
                sub, sv = self._subselect(ctx, node.query)
                typecheck.comparable(v.typ, sv.typ, node.expr)
                return v.sql.not_in(sub) if node.negated else v.sql.in_(sub)
            case ast.Between():
                v = self._value(ctx, node.expr, None, clause)
                lo = self._value(ctx, node.low, v.typ, clause)
                hi = self._value(ctx, node.high, v.typ, clause)
                typecheck.comparable(v.typ, lo.typ, node.low)
                typecheck.comparable(v.typ, hi.typ, node.high)
                between = _nullable(v.sql).between(_nullable(lo.sql), _nullable(hi.sql))
                return not_(between) if node.negated else between
            case ast.IsNull():
                v = self._value(ctx, node.expr, None, clause)
                return v.sql.is_not(None) if node.negated else v.sql.is_(None)
            case ast.IsEmpty():
                owner_id, f = ctx.scope.collection(node.path, clause)
                child = self._child(ctx.scope, f)
                found = exists().where(child.c[SCHEMA.inverse(f).name] == owner_id)
                return found if node.negated else not_(found)
            case ast.MemberOf():
                owner_id, f = ctx.scope.collection(node.path, clause)
                member = self._value(ctx, node.expr, "entity", clause)
                child = self._child(ctx.scope, f)
                found = exists().where(child.c[SCHEMA.inverse(f).name] == owner_id,
                                       child.c.id == member.sql)
                return not_(found) if node.negated else found
            case ast.Exists():
                sub, _ = self._subselect(ctx, node.query)
                return not_(sub.exists()) if node.negated else sub.exists()
            case ast.Literal(kind="boolean", value=b):
                return true() if b else false()
            case _:
                v = self._value(ctx, node, None, clause)
                typecheck.condition(v.typ, node)
                return v.sql == true()

    @staticmethod
    def _child(scope: Scope, f: Any) -> Any:
        return scope.alias(SCHEMA.entities[f.type])

    def _pair(self, ctx: _Ctx, left: ast.Expr, right: ast.Expr, clause: str
              ) -> tuple[Val, Val]:
        """Compile two operands; a literal takes its type from the other side."""
        if isinstance(left, PENDING) and not isinstance(right, PENDING):
            rv = self._value(ctx, right, None, clause)
            return self._value(ctx, left, rv.typ, clause), rv
        lv = self._value(ctx, left, None, clause)
        return lv, self._value(ctx, right, lv.typ, clause)

    # -- values -----------------------------------------------------------------------------

    def _value(self, ctx: _Ctx, node: ast.Expr, expect: str | None, clause: str) -> Val:
        """``node`` as SQL and its type; ``expect`` is the type a literal should take."""
        scope = ctx.scope
        match node:
            case ast.Path():
                r = scope.resolve(node, clause)
                if r.column is not None:
                    assert r.field is not None
                    return Val(r.column, r.field.type)
                assert r.id is not None
                return Val(r.id, "entity", r.entity)
            case ast.Literal():
                return self._const(typecheck.literal(node, expect))
            case ast.Timestamp(value=value):
                return Val(literal(value, DateTime()), "Date")
            case ast.EnumConst():
                return self._const(typecheck.enum(node, expect))
            case ast.Param():
                typ = typecheck.param(node)
                ctx.params.add(USER)
                return Val(bindparam(USER, type_=String()), typ)
            case ast.Func():
                return self._func(ctx, node, clause)
            case ast.Trim():
                v = self._value(ctx, node.expr, "String", clause)
                typecheck.string(v.typ, node.expr, "TRIM")
                args = [_as_string(v)]
                char = typecheck.trim_char(node)
                if char is not None:
                    args.append(literal(char, String()))
                return Val(TRIMS[node.spec](*args), "String")
            case ast.Arith(op=op):
                lv, rv = self._pair(ctx, node.left, node.right, clause)
                typ = typecheck.arith(op, lv.typ, rv.typ, node)
                left, right = _as_number(lv), _as_number(rv)
                if op == "/":  # by zero: NULL, as on MySQL and SQLite (PostgreSQL fails)
                    return Val(cast(left, Double()) / _nonzero(right), typ)
                sql = {"+": left + right, "-": left - right, "*": left * right}[op]
                return Val(sql, typ)
            case ast.Neg(expr=e):
                v = self._value(ctx, e, expect, clause)
                typecheck.numeric(v.typ, e)
                return Val(-_as_number(v), v.typ)
            case ast.Subquery(query=q):
                sub, v = self._subselect(ctx, q)
                return Val(sub.scalar_subquery(), v.typ, v.entity)
            case _:
                return Val(self._cond(ctx, node, clause), "boolean")

    def _const(self, c: Const) -> Val:
        """A typed literal as a bound value; a date with a zone is converted to the
        database's (naive, as stored)."""
        if c.own is None:
            return Val(null(), c.typ)
        value = c.value
        if isinstance(value, datetime) and value.tzinfo is not None:
            value = value.astimezone(self.zone).replace(tzinfo=None)
        bind = _BIND_TYPES.get(c.own)
        return Val(literal(value, bind() if bind is not None
                           else OrdinalEnum(tuple(SCHEMA.enums[c.own]))), c.typ)

    def _func(self, ctx: _Ctx, node: ast.Func, clause: str) -> Val:
        name, args = node.name.upper(), node.args
        if name in AGGREGATES:
            return self._aggregate(ctx, node, name, clause)
        sig = typecheck.signature(name, node)
        if name == "SIZE":
            path = typecheck.collection(name, node)
            owner_id, f = ctx.scope.collection(path, clause)
            child = self._child(ctx.scope, f)
            count = (select(func.count()).select_from(child)
                     .where(child.c[SCHEMA.inverse(f).name] == owner_id))
            return Val(count.scalar_subquery(), sig.result)
        if name in NOW:
            ctx.params.add(NOW[name])
            now: ColumnElement[Any] = bindparam(NOW[name], type_=_NOW_TYPES[name]())
            # MariaDB hands a bound time back as text unless told it is a TIME
            if name == "CURRENT_TIME" and self.dialect != "sqlite":
                now = cast(now, Time())
            return Val(now, sig.result)
        vals: list[Val] = []
        for i, arg in enumerate(args):
            want = sig.arg(i)
            v = self._value(ctx, arg, want, clause)
            typecheck.argument(want, v.typ, arg, name)
            vals.append(v)
        sql: ColumnElement[Any]
        match name:
            case "CONCAT":
                sql = _as_string(vals[0])
                for v in vals[1:]:
                    sql = sql.concat(_as_string(v))
            case "SUBSTRING":
                s = _as_string(vals[0])
                rest = [cast(_as_integer(v), Integer()) for v in vals[1:]]
                # Positions count from 1: a start below 1 or a negative length gives NULL
                # (each database has its own idea of them).
                bad = or_(rest[0] < 1, *(n < 0 for n in rest[1:]))
                sql = case((bad, null()), else_=func.substr(s, *rest))
            case "LOWER" | "UPPER":
                sql = getattr(func, name.lower())(_as_string(vals[0]))
            case "LENGTH":
                sql = CharLength(_as_string(vals[0]))
            case "LOCATE":
                parts = [_as_string(v) for v in vals[:2]]
                if len(vals) == 2:
                    sql = Locate(*parts)
                else:
                    start = cast(_as_integer(vals[2]), Integer())
                    # A start below 1 finds nothing (as on MySQL), everywhere.
                    sql = case((start < 1, literal(0, Integer())), else_=Locate(*parts, start))
            case "ABS":
                sql = func.abs(_as_number(vals[0]))
            case "SQRT":
                # of a negative number: NULL, as on MySQL
                root: ColumnElement[Any] = cast(_as_number(vals[0]), Double())
                sql = func.sqrt(case((root < 0, null()), else_=root))
            case _:  # MOD
                sql = _as_integer(vals[0]) % _nonzero(_as_integer(vals[1]))
        return Val(sql, sig.result or vals[0].typ)

    def _aggregate(self, ctx: _Ctx, node: ast.Func, name: str, clause: str) -> Val:
        typecheck.aggregate(name, node, clause)
        ctx.aggregated = True
        v = self._value(ctx, node.args[0], None, clause)
        typ = typecheck.aggregate_type(name, v.typ, node)
        sql = v.sql
        if isinstance(sql, Null):  # PostgreSQL can't choose SUM(unknown)
            sql = cast(sql, BigInteger())
        arg = distinct(sql) if node.distinct else sql
        match name:
            case "COUNT":
                return Val(func.count(arg), typ)
            case "MIN" | "MAX":
                return Val(getattr(func, name.lower())(arg), typ, v.entity)
            case "SUM":
                return Val(func.sum(arg), typ)
            case _:
                return Val(func.avg(cast(sql, Double()) if not node.distinct
                                    else distinct(cast(sql, Double()))), typ)


def _constant(e: ast.Expr) -> bool:
    """An expression without any path: the same value on every row."""
    return not any(isinstance(n, ast.Path) for n in walk(e, into_subqueries=True))


def _as_number(v: Val) -> ColumnElement[Any]:
    """An operand of arithmetic: PostgreSQL can't choose an operator for a bare NULL."""
    if isinstance(v.sql, Null):
        return cast(v.sql, Double() if v.typ == "Double" else BigInteger())
    return v.sql


def _as_integer(v: Val) -> ColumnElement[Any]:
    return cast(v.sql, BigInteger()) if isinstance(v.sql, Null) else v.sql


def _as_string(v: Val) -> ColumnElement[Any]:
    """An argument of a string function: a whole number as its digits."""
    if v.typ in INTEGRAL or isinstance(v.sql, Null):
        return cast(v.sql, String())
    return v.sql


def _as_text(v: Val) -> ColumnElement[Any]:
    """What LIKE matches: strings as they are; numbers and dates as their text (PostgreSQL
    has no LIKE for them), dates as ``yyyy-mm-dd hh:mm:ss`` everywhere."""
    if v.typ in ("String", None):
        return v.sql
    if v.typ in NUMERIC:
        return cast(v.sql, String())
    return DateText(v.sql)


def _nullable(e: ColumnElement[Any]) -> ColumnElement[Any]:
    """The NULL keyword itself where SQLAlchemy refuses ``null()`` (``x < NULL``)."""
    return literal_column("NULL") if isinstance(e, Null) else e


def _nonzero(e: ColumnElement[Any]) -> ColumnElement[Any]:
    """A divisor: NULL instead of zero."""
    return func.nullif(e, literal(0, Integer()), type_=e.type)


def _compare(op: str, left: ColumnElement[Any], right: ColumnElement[Any]
             ) -> ColumnElement[bool]:
    if op not in ("=", "<>", "!="):
        left, right = _nullable(left), _nullable(right)
    match op:
        case "=":
            return left == right
        case "<>" | "!=":
            return left != right
        case "<":
            return left < right
        case "<=":
            return left <= right
        case ">":
            return left > right
        case ">=":
            return left >= right
    raise error(f"Unknown comparison operator {op}", -1)


def now_values(now: datetime) -> dict[str, Any]:
    """Values of the CURRENT_* parameters for a unit of work's clock reading (naive, in the
    database's zone, as stored)."""
    return {NOW["CURRENT_TIMESTAMP"]: now, NOW["CURRENT_DATE"]: now.date(),
            NOW["CURRENT_TIME"]: now.time()}


