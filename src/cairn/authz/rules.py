"""What a Rule row means: its `what` parsed and checked, and the columns derived from it.

A rule's ``what`` is ICAT query text (JPQL style or concise) selecting one variable, or one
attribute of it for attribute-level UPDATE rules. icat.server stores ten derived columns
(bean, c, r, u, d, restricted, attribute, crudJPQL, includeJPQL, searchJPQL); Cairn fills them
the same way so a Java server sharing the database authorizes identically, but Cairn itself
compiles rules from ``what`` (through the same parser and compiler as every query).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from cairn.db.engine import Database
from cairn.errors import IcatError, bad_parameter
from cairn.query import ast, parse_query, to_text
from cairn.query.compiler import Alternative, CompiledQuery
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

    @property
    def key(self) -> frozenset[str]:
        return frozenset(j.var for j in self.shared)


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
    return AnchoredRule(tuple(shared.values()), Alternative(names, tuple(rest), sel.where))


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
