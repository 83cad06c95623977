"""What a Rule row means: its `what` parsed and checked, and the columns derived from it.

A rule's ``what`` is ICAT query text (JPQL style or concise) selecting one variable, or one
attribute of it for attribute-level UPDATE rules. icat.server stores ten derived columns
(bean, c, r, u, d, restricted, attribute, crudJPQL, includeJPQL, searchJPQL); Cairn fills them
the same way so a Java server sharing the database authorizes identically, but Cairn itself
compiles rules from ``what`` (through the same parser and compiler as every query).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cairn.db.engine import Database
from cairn.errors import IcatError, bad_parameter
from cairn.query import ast, parse_query, to_text
from cairn.query.compiler import Alternative, CompiledQuery, walk
from cairn.query.execute import queries_for
from cairn.schema import SCHEMA, Entity

JPQL_LIMIT = 1024  # length of the derived JPQL columns


@dataclass(frozen=True)
class RuleMeaning:
    bean: str  # the entity the rule is about
    var: str  # its identification variable in `what`
    attribute: str | None  # set for attribute-level UPDATE rules
    select: ast.Select  # `what` as a tree
    restricted: bool  # has a WHERE clause (joins alone do not restrict)


def variable_types(sel: ast.Select) -> dict[str, Entity]:
    """Entity type of every FROM variable of a select (joins walk relationship fields)."""
    types: dict[str, Entity] = {}
    for item in sel.from_:
        if isinstance(item, ast.FromEntity):
            types[item.var] = SCHEMA.entities[item.entity]
            continue
        entity = types.get(item.path.var)
        if entity is None:
            raise bad_parameter(f"Variable {item.path.var} is not defined in the rule")
        for name in item.path.fields:
            f = entity.fields.get(name)
            if f is None or f.is_attribute:
                raise bad_parameter(f"{entity.name} has no relationship field {name}")
            entity = SCHEMA.entities[f.type]
        types[item.var] = entity
    return types


def interpret(what: str | None, crud_flags: str) -> RuleMeaning:
    """Parse and check a rule's `what`; BAD_PARAMETER with icat.server's messages."""
    if what is None:
        raise bad_parameter("'what' must not be null")
    try:
        sel = parse_query(what)
    except IcatError as e:
        raise bad_parameter(f"Rule 'what' is not a valid query: {e.message}") from None
    if (len(sel.items) != 1 or not isinstance(sel.items[0], ast.Path) or sel.distinct
            or sel.group_by or sel.having or sel.order_by or sel.limit or sel.include):
        raise bad_parameter(f"Rule 'what' must be of the form SELECT v[.attribute] FROM ... "
                            f"[WHERE ...]: {what}")
    item = sel.items[0]
    assert isinstance(item, ast.Path)
    types = variable_types(sel)
    bean = types.get(item.var)
    if bean is None:
        raise bad_parameter(f"idVar '{item.var}' referenced in the SELECT clause is not "
                            "defined in the FROM clause.")
    attribute = None
    if len(item.fields) > 1:
        raise bad_parameter(f"Rule 'what' may select a variable or one of its attributes, "
                            f"not {'.'.join((item.var, *item.fields))}")
    if item.fields:
        attribute = item.fields[0]
        f = bean.field(attribute)
        if f is None or f.is_many:
            raise bad_parameter(f"{bean.name} has no attribute {attribute}")
        if crud_flags != "U":
            raise bad_parameter("Attribute selection in rules is only allowed for Update")
    return RuleMeaning(bean=bean.name, var=item.var, attribute=attribute, select=sel,
                       restricted=sel.where is not None)


#: The name the rule's own variable takes when a rule is anchored on a row (see :func:`anchor`).
ROW = "#"


@dataclass(frozen=True)
class AnchoredRule:
    """A rule as a condition on a row of its entity rather than a set of ids.

    ``shared`` are the inner joins along many-to-one fields from the row (each reaches at most
    one row, so rules with the same ones can share them): a canonical name (``#`` and the
    fields from the row, ``#dataset.investigation``) with the join declaring it. The rest of
    the rule is ``alternative``, its own names mapped onto those.
    """

    shared: tuple[ast.FromJoin, ...]
    alternative: Alternative
    types: tuple[tuple[str, str], ...] = ()  # canonical name -> its entity's name

    @property
    def key(self) -> frozenset[str]:
        return frozenset(j.var for j in self.shared)

    def as_set(self) -> Alternative:
        """The alternative as a set of ids, not a condition correlated to the row.

        ``JOIN i.investigationUsers iu_ JOIN iu_.user u_ WHERE u_.name = :user`` on the row's
        investigation ``i`` becomes ``i IN (SELECT i2 FROM Investigation i2 JOIN
        i2.investigationUsers iu_ ... WHERE ...)``: the same rows, but a statement whose rule
        sub-selects do not refer to the row lets PostgreSQL hash each set once and scan in
        parallel (a correlated sub-plan forbids parallel workers), which is what counting a
        whole table needs; a page of a few rows is cheaper with the correlated form. Only an
        alternative reaching exactly one of the row's related rows (not the row itself:
        its table's ids would be hashed whole) through joins of its own is rewritten; any
        other is returned as it is.
        """
        alt = self.alternative
        if not alt.from_:
            return alt  # a condition on the row or its related rows alone: no sub-select
        nodes = [n for root in (*alt.from_, alt.where) if root is not None
                 for n in walk(root, into_subqueries=True)]
        used = {n.var for n in nodes if isinstance(n, ast.Path)}
        declared = {n.var for n in nodes if isinstance(n, ast.FromEntity | ast.FromJoin)}
        outer = used & set(alt.names)
        if len(outer) != 1 or declared & set(alt.names):
            return alt
        (var,) = outer
        entity = dict(self.types).get(alt.names[var])
        if entity is None or alt.names[var] == ROW:
            return alt
        fresh = _fresh(var, used | declared | set(alt.names))
        sub = ast.Select(
            items=(ast.Path(fresh),),
            from_=(ast.FromEntity(entity, fresh),
                   *(_renamed(item, var, fresh) for item in alt.from_)),
            where=None if alt.where is None else _renamed(alt.where, var, fresh))
        return Alternative({var: alt.names[var]}, (), ast.InSubquery(ast.Path(var), sub))

    def rebased(self, path: tuple[str, ...]) -> Rebased | None:
        """The rule as a condition on the row its own reaches along the many-to-one fields
        ``path``: ``DatasetParameter x JOIN x.dataset ds JOIN ds.investigation i ...`` through
        ``dataset`` is ``Dataset ds JOIN ds.investigation i ...``. None when the rule reads
        anything of the rows before that one (a parameter's own value) or off the path (its
        type). Two rules rebased to equal forms select the same rows there; variables are
        named for what they stand for, so forms differing in names alone are equal."""
        depth = len(path)

        def moved(canonical: str) -> str | None:
            """The name of a related row from the new row; "" for one before it."""
            fields = tuple(canonical[1:].split(".")) if canonical != ROW else ()
            if len(fields) < depth:
                return "" if fields == path[:len(fields)] else None
            if fields[:depth] != path:
                return None
            return ROW + ".".join(fields[depth:])

        alt = self.alternative
        nodes = [n for root in (*alt.from_, alt.where) if root is not None
                 for n in walk(root, into_subqueries=True)]
        used = {n.var for n in nodes if isinstance(n, ast.Path)}
        names: dict[str, str] = {}
        for var, canonical in alt.names.items():
            new = moved(canonical)
            if new is None or (new == "" and var in used):
                return None
            names[var] = new
        shared = [moved(j.var) for j in self.shared]
        if None in shared:
            return None
        # the rule's other variables by the order they are declared in
        declared = [n.var for n in nodes
                    if isinstance(n, ast.FromEntity | ast.FromJoin) and n.var not in names]
        names.update((var, f"${i}") for i, var in enumerate(dict.fromkeys(declared)))
        return Rebased(frozenset(s for s in shared if s and s != ROW),
                       _rewritten(alt.from_, names, unplaced=True),
                       _rewritten(alt.where, names, unplaced=True))


@dataclass(frozen=True)
class Rebased:
    """A rule as a condition on a related row (:meth:`AnchoredRule.rebased`): the related
    rows it joins (named by their fields from that row) and the rest of the rule."""

    shared: frozenset[str]
    from_: tuple[ast.FromItem, ...]
    where: ast.Expr | None


def implies(ours: Sequence[AnchoredRule | None], up: tuple[str, ...],
            theirs: Sequence[AnchoredRule | None], down: tuple[str, ...]) -> bool:
    """Whether a row that one of the rules ``ours`` selects makes every row that one of
    ``theirs`` may select, and that reaches the same related row, selected too: each of
    ours, rebased along ``up`` (from its rows to the related row), is one of theirs rebased
    along ``down``. A dataset's parameters (``theirs``, ``down`` = ``dataset``) under the
    same rules as the dataset (``ours``, no step); an investigation instrument of the
    dataset's investigation (both ``investigation``). A rule that can't be anchored or
    rebased (None) decides nothing: then False, unless ours are none (no row is selected)."""
    forms = {r.rebased(down) for r in theirs if r is not None} - {None}
    return all(r is not None and r.rebased(up) in forms for r in ours)


def as_one_set(members: Sequence[AnchoredRule]) -> Alternative | None:
    """Rules sharing their joins (one :attr:`AnchoredRule.key`) as one uncorrelated set of
    the ids the row's first many-to-one field may hold, or None when they do not fit.

    ``EXISTS (SELECT 1 FROM DATASET ds JOIN INVESTIGATION i ... WHERE ds.ID = x.DATASET_ID
    AND (a OR b))`` becomes ``x.dataset IN (SELECT ds FROM Dataset ds JOIN ds.investigation i
    WHERE a OR b)``, with ``a``, ``b`` the rules' own conditions as sets
    (:meth:`AnchoredRule.as_set`): the same rows, as long as no rule tests the row itself.
    A whole-table read then needs the readable datasets once, not a look-up per row.
    """
    shared = members[0].shared
    firsts = [j for j in shared if j.path.var == ROW]
    if len(firsts) != 1 or len(firsts[0].path.fields) != 1:
        return None
    first = firsts[0]
    entity = dict(members[0].types).get(first.var)
    if entity is None:
        return None
    conds: list[ast.Expr] = []
    for rule in members:
        alt = rule.as_set()
        if alt.from_:
            return None
        if alt.where is None:  # the joins alone: every row reaching them qualifies
            conds = []
            break
        where = alt.where
        used = {n.var for n in walk(where, into_subqueries=True) if isinstance(n, ast.Path)}
        for var in used & set(alt.names):
            if alt.names[var] == ROW:
                return None
            where = _renamed(where, var, alt.names[var])
        conds.append(where)
    sub = ast.Select(items=(ast.Path(first.var),),
                     from_=(ast.FromEntity(entity, first.var),
                            *(j for j in shared if j is not first)),
                     where=None if not conds else conds[0] if len(conds) == 1
                     else ast.Or(tuple(conds)))
    return Alternative({ROW: ROW}, (), ast.InSubquery(ast.Path(ROW, first.path.fields), sub))


def _fresh(var: str, taken: set[str]) -> str:
    n = 2
    while f"{var}{n}" in taken:
        n += 1
    return f"{var}{n}"


def _renamed(node: Any, old: str, new: str) -> Any:
    """``node`` with the variable ``old`` called ``new`` (the caller made sure no sub-select
    declares ``old`` again)."""
    return _rewritten(node, {old: new})


def _rewritten(node: Any, names: dict[str, str], *, unplaced: bool = False) -> Any:
    """``node`` with each variable of ``names`` renamed, and (``unplaced``) every position
    in the rule's text forgotten, so that nodes equal but for where they stood compare
    equal."""
    if isinstance(node, tuple):
        return tuple(_rewritten(n, names, unplaced=unplaced) for n in node)
    if not dataclasses.is_dataclass(node) or isinstance(node, type):
        return node
    changes = {f.name: _rewritten(getattr(node, f.name), names, unplaced=unplaced)
               for f in dataclasses.fields(node)}
    if unplaced and "pos" in changes:
        changes["pos"] = -1
    if isinstance(node, ast.Path | ast.FromEntity | ast.FromJoin) and node.var in names:
        changes["var"] = names[node.var]
    return dataclasses.replace(node, **changes)


def anchor(meaning: RuleMeaning) -> AnchoredRule | None:
    """The rule rewritten around its selected variable, or None when that variable is not a
    FROM entity of its own (``SELECT ds FROM Investigation i JOIN i.datasets ds``)."""
    sel, var = meaning.select, meaning.var
    if not any(isinstance(f, ast.FromEntity) and f.var == var for f in sel.from_):
        return None
    names = {var: ROW}
    entity = {var: SCHEMA.entities[meaning.bean]}
    shared: dict[str, ast.FromJoin] = {}
    rest: list[ast.FromItem] = []
    for item in sel.from_:
        if isinstance(item, ast.FromEntity) and item.var == var:
            continue
        if isinstance(item, ast.FromJoin) and item.kind == "INNER" \
                and item.path.var in names and item.var not in names:
            e: Entity | None = entity[item.path.var]
            for name in item.path.fields:
                f = e.fields.get(name) if e is not None else None
                e = SCHEMA.entities[f.type] if f is not None and f.is_one else None
            if e is not None:
                parent = names[item.path.var]
                canonical = ".".join((parent, *item.path.fields)).replace("#.", "#", 1)
                names[item.var] = canonical
                entity[item.var] = e
                shared[canonical] = ast.FromJoin(ast.Path(parent, item.path.fields), canonical)
                continue
        rest.append(item)
    types = {name: entity[var].name for var, name in names.items()}
    return AnchoredRule(tuple(shared.values()), Alternative(names, tuple(rest), sel.where),
                        tuple(types.items()))


def compile_rule(db: Database, meaning: RuleMeaning) -> CompiledQuery:
    """``SELECT v.id FROM ... WHERE ...`` of a rule, checked against the schema (unknown
    fields, wrong types: BAD_PARAMETER)."""
    sel = dataclasses.replace(meaning.select, items=(ast.Path(meaning.var, ("id",)),))
    try:
        return queries_for(db).compile(sel)
    except IcatError as e:
        raise bad_parameter(f"Rule 'what' is not a valid query: {e.message}") from None


def derived_columns(meaning: RuleMeaning, crud_flags: str) -> dict[str, Any]:
    """The hidden RULE_ columns icat.server reads (JPQL over entity names, not SQL)."""
    sel, v = meaning.select, meaning.var
    vid = ast.Path(v, ("id",))
    base = dataclasses.replace(sel, items=(vid,), where=None)
    search = dataclasses.replace(base, where=sel.where)

    def with_key(key: ast.Expr) -> ast.Select:
        where: ast.Expr = key if sel.where is None else ast.And((key, sel.where))
        return dataclasses.replace(base, where=where)

    crud = dataclasses.replace(
        with_key(ast.Compare("=", vid, ast.Param("pkid"))),
        items=(ast.Func("COUNT", (vid,)),))
    include = with_key(ast.InList(vid, (ast.Param("pkids"),)))
    out: dict[str, Any] = {"bean": meaning.bean, "restricted": meaning.restricted,
           "attribute": meaning.attribute,
           "crudJPQL": to_text(crud), "includeJPQL": to_text(include),
           "searchJPQL": to_text(search)}
    for ch in "CRUD":
        out[ch.lower()] = ch in crud_flags
    for key in ("crudJPQL", "includeJPQL", "searchJPQL"):
        if len(out[key]) > JPQL_LIMIT:
            raise bad_parameter(f"Rule 'what' is too long once expanded to {key} "
                                f"({len(out[key])} > {JPQL_LIMIT} characters)")
    return out
