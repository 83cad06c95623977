"""Identification variables, their table aliases and the joins between them.

A :class:`Scope` is one SELECT (the query or a sub-select). Each variable is a :class:`Node`:
an alias of its entity's table, living in one join :class:`Tree` (one per FROM-list item).
Path navigation (``ds.investigation.name``) adds implicit inner joins, JPQL style, reusing
one join per distinct path within a scope. A sub-select navigating from a variable of an
enclosing query starts a new tree correlated to it by a WHERE predicate, so the enclosing
query's rows are never multiplied.

Aliases come from an :class:`Aliases`: for a cached search, the k-th alias of a table in a
statement is the same object in every statement (see there), so compiling makes no new
aliases, and no cyclic garbage when its statement is dropped.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, Table
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from cairn.db.tables import Tables
from cairn.query import ast
from cairn.query.coerce import error
from cairn.schema import SCHEMA, Entity, Field

#: Aliases per table kept in a pool (:class:`Aliases`); a statement needing more gets fresh
#: ones. Bounds a pool at 53 entities x 8 aliases (20-40 kB each, ~17 MB); in practice a few
#: dozen (the tables searches name).
POOLED_PER_TABLE = 8

#: A compiler's shared aliases: (table name, k) -> the k-th alias of that table in a statement.
AliasPool = dict[tuple[str, int], Any]

#: Pools of statements built outside the query compiler (free-text search), per Tables (by
#: id, dropped with it): the compiler's own pool is its own, so that nothing built from one
#: pool nests a statement built from the other.
_SHARED: dict[int, AliasPool] = {}


def shared_pool(tables: Tables) -> AliasPool:
    """The alias pool for standalone statements over ``tables`` built outside the compiler
    (see :class:`Aliases`); bounded as every pool is, by :data:`POOLED_PER_TABLE`."""
    pool = _SHARED.get(id(tables))
    if pool is None:
        pool = _SHARED.setdefault(id(tables), {})
        weakref.finalize(tables, _SHARED.pop, id(tables), None)
    return pool


class Aliases:
    """Where one statement's table aliases come from (shared by its scopes, sub-selects
    included, so every alias in it is a different object).

    Without a pool each is a new anonymous alias. With one, the k-th alias of a table is the
    same object in every statement: an alias is an immutable selectable named only when a
    statement is compiled to SQL (anonymous, numbered within that statement), so sharing one
    between statements changes no SQL text, while each alias made afresh was ~150 objects in
    reference cycles (its proxied columns, their foreign keys and event dispatchers) for the
    collector to find once the statement was dropped. Only for statements that stand alone
    (a search): a statement nesting another built from the same pool would see one alias
    inside and outside, and SQLAlchemy would correlate the two.
    """

    def __init__(self, tables: Tables, pool: AliasPool | None = None) -> None:
        self.tables = tables
        self.pool = pool
        self.used: dict[str, int] = {}  # aliases handed out per table

    def new(self, entity: Entity) -> Any:
        table: Table = self.tables[entity.name]
        if self.pool is None:
            return table.alias()
        k = self.used.get(entity.name, 0)
        self.used[entity.name] = k + 1
        if k >= POOLED_PER_TABLE:
            return table.alias()
        alias = self.pool.get((entity.name, k))
        if alias is None:  # setdefault: two threads racing keep the same one
            alias = self.pool.setdefault((entity.name, k), table.alias())
        return alias


class Node:
    """One alias of an entity's table: a variable or an implicit/generated join."""

    __slots__ = ("_scope", "alias", "entity", "tree")

    def __init__(self, entity: Entity, alias: Any, scope: Scope, tree: Tree) -> None:
        self.entity = entity
        self.alias = alias  # an aliased Table (columns keyed by ICAT field names)
        # Weakly: its scope holds it, and that cycle was garbage for the collector to find
        # after every compile (the scope lives as long as the compile, which alone asks).
        self._scope = weakref.ref(scope)
        self.tree = tree

    @property
    def scope(self) -> Scope | None:
        return self._scope()

    @property
    def id(self) -> ColumnElement[Any]:
        return self.alias.c.id


@dataclass(eq=False)
class Tree:
    """A FROM-list item: a root alias followed by joins (alias, ON clause, outer?)."""

    root: Any
    joins: list[tuple[Any, ColumnElement[bool], bool]] = field(default_factory=list)

    def from_clause(self) -> FromClause:
        out = self.root
        for alias, on, outer in self.joins:
            out = out.join(alias, on, isouter=outer)
        return out


@dataclass(frozen=True)
class ResolvedPath:
    """What a path denotes.

    * an attribute: ``column`` and ``field`` are set, ``owner`` is the id of the entity
      holding it (for authorization: ``ds.investigation.name`` exposes an Investigation);
    * an entity: ``entity`` and ``id`` are set (the id column; for a path ending in a
      many-to-one field, the foreign key itself, so no join is needed just to compare).
    """

    column: ColumnElement[Any] | None = None
    field: Field | None = None
    entity: Entity | None = None
    id: ColumnElement[Any] | None = None
    owner: tuple[Entity, ColumnElement[Any]] | None = None


class Scope:
    def __init__(self, tables: Tables, parent: Scope | None = None,
                 aliases: Aliases | None = None) -> None:
        self.tables = tables
        self.parent = parent
        # one source per statement: a sub-select takes its enclosing SELECT's
        self.source: Aliases = aliases or (parent.source if parent is not None else Aliases(tables))
        self.vars: dict[str, Node] = {}
        self.order: list[str] = []  # variables in FROM order
        self.trees: list[Tree] = []
        self.paths: dict[tuple[int, str], Node] = {}  # (owner node id, field) -> join
        self.correlations: list[ColumnElement[bool]] = []  # WHERE terms of outer trees
        self.generated: list[Node] = []  # implicit joins along one-to-many fields
        self.outer: set[int] = set()  # ids of aliases a LEFT JOIN may leave NULL

    # -- aliases ----------------------------------------------------------------------------

    def alias(self, entity: Entity) -> Any:
        # Anonymous: SQLAlchemy names it when the statement is compiled, unique within that
        # statement, so authorization can nest compiled rules inside a query safely.
        return self.source.new(entity)

    def _new_tree(self, entity: Entity) -> Node:
        alias = self.alias(entity)
        tree = Tree(alias)
        self.trees.append(tree)
        return Node(entity, alias, self, tree)

    # -- FROM clause ------------------------------------------------------------------------

    def declare(self, var: str, node: Node, pos: int) -> None:
        if var in self.vars:
            raise error(f"JPQL indentification variable {var} has already been defined in "
                        "the FROM clause", pos)
        self.vars[var] = node
        self.order.append(var)

    def add_entity(self, item: ast.FromEntity) -> None:
        entity = SCHEMA.get(item.entity) or SCHEMA.lookup_ci(item.entity)
        if entity is None:
            raise error(f"{item.entity} is not an ICAT entity", item.pos)
        self.declare(item.var, self._new_tree(entity), item.pos)

    def add_join(self, item: ast.FromJoin) -> None:
        path = item.path
        pos = path.pos if path.pos >= 0 else item.pos
        node = self.lookup(path.var)
        if node is None:
            raise error(f"idVar '{path.var.upper()}' referenced in the FROM clause is not "
                        "defined.", pos)
        if not path.fields:
            raise error(f"A path with at least one relationship field is needed to join "
                        f"{item.var}", pos)
        for name in path.fields:
            f = node.entity.fields.get(name)
            if f is None or f.is_attribute:
                raise error(f"{node.entity.name} has no relationship field {name}", pos)
            node = self._join(node, f, outer=item.kind == "LEFT", reuse=False)
        self.declare(item.var, node, item.pos)

    # -- navigation -------------------------------------------------------------------------

    def lookup(self, var: str) -> Node | None:
        s: Scope | None = self
        while s is not None:
            if var in s.vars:
                return s.vars[var]
            s = s.parent
        return None

    def _join(self, node: Node, f: Field, outer: bool = False, reuse: bool = True) -> Node:
        """The node reached from ``node`` along relationship ``f``; an implicit inner join is
        shared by every use of the same path in this scope."""
        key = (id(node), f.name)
        if reuse and key in self.paths:
            return self.paths[key]
        target = SCHEMA.entities[f.type]
        if node.scope is self:
            alias = self.alias(target)
            new = Node(target, alias, self, node.tree)
            node.tree.joins.append((alias, self._on(node, f, alias), outer))
            if outer or id(node.alias) in self.outer:
                self.outer.add(id(alias))
        else:
            # A sub-select navigating from an enclosing query's variable: new correlated tree.
            new = self._new_tree(target)
            self.correlations.append(self._on(node, f, new.alias))
        if reuse:
            self.paths[key] = new
            if f.is_many:  # multiplies rows: its id must take part in the row order
                self.generated.append(new)
        return new

    @staticmethod
    def _on(node: Node, f: Field, alias: Any) -> ColumnElement[bool]:
        if f.is_one:
            return alias.c.id == node.alias.c[f.name]
        back = SCHEMA.inverse(f)
        return alias.c[back.name] == node.alias.c.id

    def resolve(self, path: ast.Path, clause: str, many_joins: bool = False) -> ResolvedPath:
        """Resolve ``var.f1...fn``.

        A one-to-many field is only a value at the end of a SELECT path (``many_joins``: then
        it becomes a generated join); elsewhere IS EMPTY, MEMBER OF and SIZE handle them.
        """
        node = self.lookup(path.var)
        if node is None:
            raise error(f"idVar '{path.var.upper()}' referenced in the {clause} clause is not "
                        "defined in the FROM clause.", path.pos)
        fields = path.fields
        for i, name in enumerate(fields):
            f = node.entity.fields.get(name)
            if f is None:
                raise error(f"{node.entity.name} has no field {name}", path.pos)
            last = i == len(fields) - 1
            if f.is_attribute:
                if not last:
                    raise error(f"{node.entity.name}.{name} is not a relationship and cannot be "
                                f"followed by .{fields[i + 1]}", path.pos)
                return ResolvedPath(column=node.alias.c[name], field=f,
                                owner=(node.entity, node.id))
            if last and f.is_one:
                target = SCHEMA.entities[f.type]
                fk = node.alias.c[name]
                return ResolvedPath(entity=target, id=fk, owner=(target, fk))
            if last and f.is_many and not many_joins:
                raise error(f"{node.entity.name}.{name} is a collection; use IS EMPTY, MEMBER "
                            "OF, SIZE or a JOIN", path.pos)
            node = self._join(node, f)
        return ResolvedPath(entity=node.entity, id=node.id, owner=(node.entity, node.id))

    def entity_field(self, path: ast.Path, clause: str = "SELECT") -> Field:
        """The last field of a non-empty path, checked against the schema without joining."""
        node = self.lookup(path.var)
        if node is None:
            raise error(f"idVar '{path.var.upper()}' referenced in the {clause} clause is not "
                        "defined in the FROM clause.", path.pos)
        entity = node.entity
        f: Field | None = None
        for i, name in enumerate(path.fields):
            f = entity.fields.get(name)
            if f is None:
                raise error(f"{entity.name} has no field {name}", path.pos)
            if i < len(path.fields) - 1:
                if f.is_attribute:
                    raise error(f"{entity.name}.{name} is not a relationship and cannot be "
                                f"followed by .{path.fields[i + 1]}", path.pos)
                entity = SCHEMA.entities[f.type]
        assert f is not None, "entity_field needs a path with fields"
        return f

    def node_of(self, path: ast.Path, clause: str) -> Node:
        """The joined alias a path to an entity denotes (selecting an entity needs its row)."""
        node = self.lookup(path.var)
        if node is None:
            raise error(f"idVar '{path.var.upper()}' referenced in the {clause} clause is not "
                        "defined in the FROM clause.", path.pos)
        for name in path.fields:
            f = node.entity.fields.get(name)
            if f is None:
                raise error(f"{node.entity.name} has no field {name}", path.pos)
            if f.is_attribute:
                raise error(f"{node.entity.name}.{name} is not an entity", path.pos)
            node = self._join(node, f)
        return node

    def collection(self, path: ast.Path, clause: str) -> tuple[ColumnElement[Any], Field]:
        """For ``owner_path.manyField``: the owner's id and the one-to-many field."""
        if not path.fields:
            raise error(f"{path.var} is not a collection-valued path", path.pos)
        owner = self.resolve(ast.Path(path.var, path.fields[:-1], path.pos), clause)
        if owner.entity is None or owner.id is None:
            raise error(f"{'.'.join((path.var, *path.fields))} is not a collection-valued path",
                        path.pos)
        f = owner.entity.fields.get(path.fields[-1])
        if f is None:
            raise error(f"{owner.entity.name} has no field {path.fields[-1]}", path.pos)
        if not f.is_many:
            raise error(f"{owner.entity.name}.{f.name} is not a collection-valued path",
                        path.pos)
        return owner.id, f

    def from_clauses(self) -> list[FromClause]:
        return [t.from_clause() for t in self.trees]

    def aliases(self) -> list[Any]:
        """Every table alias of this SELECT's own FROM clause (variables and joins)."""
        return [a for t in self.trees for a in (t.root, *(j[0] for j in t.joins))]

    def table_count(self) -> int:
        """How many tables this SELECT joins (:data:`cairn.query.limits.MAX_TABLES`)."""
        return sum(1 + len(t.joins) for t in self.trees)

    def never_null(self, expr: ColumnElement[Any]) -> bool:
        """A NOT NULL column of an alias no LEFT JOIN can leave empty (ids mostly)."""
        return (isinstance(expr, Column) and expr.nullable is False
                and id(expr.table) not in self.outer)

    def var_ids(self) -> list[ColumnElement[Any]]:
        """Ids of the FROM variables, in FROM order (for a deterministic row order)."""
        return [self.vars[v].id for v in self.order]
