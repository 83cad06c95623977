"""The concise (old) syntax → the same ``Select``/``Get`` trees as the JPQL style.

icat.server rewrites ``3,5 Dataset.id ORDER BY id [name LIKE 'A%'] <-> Investigation[…]`` into
JPQL text and parses that; we build the tree directly, with the same shapes the equivalent
JPQL would give. Every entity gets the variable ``entity$`` (icat.server's ``Entity$``,
lower-cased like all variables), the other entities are INNER JOINed along the unique
relationship path found from the first one, and each ``[condition]`` is relative to the entity
it follows. Grammar (§1.5 of the reference)::

    concise  ::= [range] result [orderInc] ["[" cond "]"] ("<->" Entity ["[" cond "]"])*
    range    ::= INTEGER "," [INTEGER] | "," [INTEGER]
    result   ::= [DISTINCT] Entity["." path] | AGG "(" Entity["." path] ")"
    orderInc ::= order [include] | include [order]     -- include only for a bare Entity
    cond     ::= term (OR term)* ; term ::= factor (AND factor)*
    factor   ::= [NOT] ("(" cond ")" | pred)
    pred     ::= val COMPOP val | name IN "(" lit ("," lit)* ")" | name BETWEEN val AND val
"""

from __future__ import annotations

from cairn.query.ast import (
    And,
    Between,
    Compare,
    EnumConst,
    Expr,
    FromEntity,
    FromItem,
    FromJoin,
    Func,
    Get,
    Include,
    IncludeItem,
    InList,
    Like,
    Limit,
    Literal,
    Not,
    Or,
    OrderItem,
    Param,
    Path,
    Select,
    Timestamp,
)
from cairn.query.errors import TYPE_NAMES, semantic
from cairn.query.syntax import check_limit, get_var
from cairn.query.tokens import Token, TokenStream, tokenize
from cairn.schema import SCHEMA, SYSTEM_FIELDS, Entity, Field

AGGREGATES = ("COUNT", "MAX", "MIN", "AVG", "SUM")
VALUES = ("NAME", "STRING", "INTEGER", "REAL", "PARAMETER", "TIMESTAMP")
LITERALS = ("STRING", "INTEGER", "REAL", "PARAMETER", "TIMESTAMP")
#: ``5 < id`` is normalised to ``id > 5`` (icat.server keeps the operator: a bug we don't copy).
FLIPPED = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}


def parse_concise(text: str) -> Select:
    return ConciseParser(text).search()


def parse_old_get(text: str) -> Get:
    """``Entity INCLUDE 1`` or ``Entity INCLUDE Type, Type`` (a get in the old style)."""
    p = ConciseParser(text)
    tok = p.expect("NAME")
    entity = p.entity(tok)
    var = get_var(entity.name)
    include = p.include(entity, var) if p.at("INCLUDE") else None
    if not p.at("EOF"):
        raise semantic(f"Trailing tokens at end of query {p.peek().text}...", p.peek().pos)
    return Get(entity.name, var, include)


def relationships(entity: Entity) -> list[Field]:
    """icat.server's "related entities": every ONE and MANY field, in declaration order."""
    return [f for f in entity.fields.values() if (f.is_one or f.is_many) and not f.hidden]


class ConciseParser(TokenStream):
    def __init__(self, text: str) -> None:
        super().__init__(text, tokenize(text, concise=True))

    def search(self) -> Select:
        tok = self.expect("NAME", "DISTINCT", "INTEGER", "COMMA", *AGGREGATES)
        aggregate = None
        offset: Token | None = None
        count: Token | None = None
        distinct = False
        if tok.kind in AGGREGATES:
            aggregate = tok
            self.expect("OPENPAREN")
            result = self.expect("NAME")
            self.expect("CLOSEPAREN")
        else:
            if tok.kind in ("INTEGER", "COMMA"):
                if tok.kind == "INTEGER":
                    offset = tok
                    self.expect("COMMA")
                tok = self.expect("NAME", "DISTINCT", "INTEGER")
                if tok.kind == "INTEGER":
                    count = tok
                    tok = self.expect("NAME", "DISTINCT")
            if tok.kind == "DISTINCT":
                distinct = True
                tok = self.expect("NAME")
            result = tok
        parts = self.split(result)
        entity = self.entity(result, parts[0])
        var = get_var(entity.name)
        order: list[OrderItem] = []
        include = None
        if aggregate is None:
            bare = len(parts) == 1  # INCLUDE only makes sense for entities
            if self.at("ORDER"):
                order = self.order(var)
                if bare and self.at("INCLUDE"):
                    include = self.include(entity, var)
            else:
                if bare and self.at("INCLUDE"):
                    include = self.include(entity, var)
                if self.at("ORDER"):
                    order = self.order(var)
        conditions: list[Expr] = []
        if self.accept("BRA"):
            conditions.append(self.condition(entity, var))
            self.expect("KET")
        others: list[tuple[Entity, Token]] = []
        while not self.at("EOF"):
            self.expect("ENTSEP")
            etok = self.expect("NAME")
            other = self.entity(etok)
            others.append((other, etok))
            if self.accept("BRA"):
                conditions.append(self.condition(other, get_var(other.name)))
                self.expect("KET")

        item: Expr = Path(var, tuple(parts[1:]), result.pos)
        if aggregate is not None:
            item = Func(aggregate.kind, (item,), False, aggregate.pos)
        from_: list[FromItem] = [FromEntity(entity.name, var, result.pos)]
        from_ += join_path(entity, others)
        where = None
        if len(conditions) == 1:
            where = conditions[0]
        elif conditions:
            where = And(tuple(conditions), conditions[0].pos)
        return Select((item,), tuple(from_), distinct, where, order_by=tuple(order),
                      limit=self.limit(offset, count), include=include)

    # -- pieces -------------------------------------------------------------------------------

    def entity(self, tok: Token, name: str | None = None) -> Entity:
        name = str(tok.value) if name is None else name
        entity = SCHEMA.lookup_ci(name)
        if entity is None:
            raise semantic(f"{name} is not an ICAT entity", tok.pos)
        return entity

    def limit(self, offset: Token | None, count: Token | None) -> Limit | None:
        if offset is None and count is None:
            return None
        start = 0 if offset is None else check_limit(offset, "offset")
        return Limit(start, None if count is None else check_limit(count, "count"))

    def order(self, var: str) -> list[OrderItem]:
        self.expect("ORDER")
        self.expect("BY")
        items = [self.sort(var)]
        while self.accept("COMMA"):
            items.append(self.sort(var))
        return items

    def sort(self, var: str) -> OrderItem:
        tok = self.expect("NAME")
        path = Path(var, tuple(self.split(tok)), tok.pos)
        if self.accept("DESC"):
            return OrderItem(path, True)
        self.accept("ASC")
        return OrderItem(path)

    def include(self, entity: Entity, var: str) -> Include | None:
        """``INCLUDE 1`` or ``INCLUDE Type, …`` resolved into the paths icat.server derives."""
        start = self.expect("INCLUDE")
        tok = self.expect("NAME", "INTEGER")
        if tok.kind == "INTEGER":
            if tok.text != "1":
                raise semantic("Only integer value allowed in the INCLUDE list is 1", tok.pos)
            return Include(one=True)
        names = [tok]
        while self.at("COMMA"):
            self.next()
            names.append(self.expect("NAME"))
        types: dict[str, int] = {}
        for name in names:
            types.setdefault(self.entity(name).name, name.pos)
        items = include_types(entity, var, types, start.pos)
        # e.g. "Dataset INCLUDE Dataset": icat.server derives an empty INCLUDE, i.e. none
        return Include(items=items) if items else None

    # -- conditions ---------------------------------------------------------------------------

    def condition(self, entity: Entity, var: str) -> Expr:
        start = self.peek().pos
        items = [self.term(entity, var)]
        while self.accept("OR"):
            items.append(self.term(entity, var))
        return items[0] if len(items) == 1 else Or(tuple(items), start)

    def term(self, entity: Entity, var: str) -> Expr:
        start = self.peek().pos
        items = [self.factor(entity, var)]
        while self.accept("AND"):
            items.append(self.factor(entity, var))
        return items[0] if len(items) == 1 else And(tuple(items), start)

    def factor(self, entity: Entity, var: str) -> Expr:
        start = self.peek().pos
        negated = self.accept("NOT") is not None
        if self.accept("OPENPAREN"):
            self.enter()
            expr = self.condition(entity, var)
            self.leave()
            self.expect("CLOSEPAREN")
        else:
            expr = self.predicate(entity, var)
        return Not(expr, start) if negated else expr

    def predicate(self, entity: Entity, var: str) -> Expr:
        first = self.expect(*VALUES)
        op = self.expect("COMPOP", "IN", "BETWEEN")
        if op.kind == "COMPOP":
            second = self.expect(*VALUES)
            attr = self.attribute(first, entity, var)
            opv = str(op.value)
            if attr is not None:
                value_tok = second
            else:
                attr = self.attribute(second, entity, var)
                if attr is None:
                    raise semantic("Attribute comparisons require one attribute name and one "
                                   f"value: {_shown(first)} {opv} {_shown(second)}", first.pos)
                value_tok = first
                opv = FLIPPED.get(opv, opv)
            value = self.value(value_tok)
            if opv == "LIKE":
                return Like(attr, value, pos=first.pos)
            return Compare("<>" if opv == "!=" else opv, attr, value, first.pos)  # type: ignore[arg-type]
        if first.kind != "NAME":
            raise semantic(f'"{op.kind}" comparisons require a name on the LHS rather than '
                           f"{TYPE_NAMES.get(first.kind, first.kind)}", first.pos)
        path = Path(var, tuple(self.split(first)), first.pos)
        if op.kind == "IN":
            self.expect("OPENPAREN")
            items = [self.value(self.expect(*LITERALS))]
            while self.expect("COMMA", "CLOSEPAREN").kind == "COMMA":
                items.append(self.value(self.expect(*LITERALS)))
            return InList(path, tuple(items), pos=first.pos)
        low = self.value(self.expect(*VALUES))
        self.expect("AND")
        high = self.value(self.expect(*VALUES))
        return Between(path, low, high, pos=first.pos)

    def attribute(self, tok: Token, entity: Entity, var: str) -> Path | None:
        """A NAME whose first step is a field of ``entity``, as a path from its variable."""
        if tok.kind != "NAME":
            return None
        parts = self.split(tok)
        # hidden fields count: icat.server's own tests query ``Rule [bean='Investigation']``
        if parts[0] in SYSTEM_FIELDS or parts[0] in entity.fields:
            return Path(var, tuple(parts), tok.pos)
        return None

    def value(self, tok: Token) -> Expr:
        """A literal; a bare NAME is TRUE/FALSE or an enum constant of the compared attribute."""
        if tok.kind == "NAME":
            upper = str(tok.value).upper()
            if upper in ("TRUE", "FALSE"):
                return Literal(upper == "TRUE", "boolean", tok.pos)
            return EnumConst(None, str(tok.value), tok.pos)
        if tok.kind == "STRING":
            assert isinstance(tok.value, str)
            return Literal(tok.value, "string", tok.pos)
        if tok.kind in ("INTEGER", "REAL"):
            assert isinstance(tok.value, int | float)
            return Literal(tok.value, "integer" if tok.kind == "INTEGER" else "real", tok.pos)
        if tok.kind == "PARAMETER":
            return Param(str(tok.value), tok.pos)
        return Timestamp(tok.value, tok.pos)  # type: ignore[arg-type]


def _shown(tok: Token) -> str:
    return str(tok.value) if tok.kind == "STRING" else tok.text


# -- the entity graph (icat.server's DagHandler) ---------------------------------------------


def join_path(start: Entity, others: list[tuple[Entity, Token]]) -> list[FromJoin]:
    """INNER JOINs reaching every entity of ``others`` from ``start``, each in exactly one way.

    Depth-first along every relationship (ONE and MANY, so both directions) whose target is
    wanted, never straight back to the entity just left; meeting a wanted entity twice is a
    loop. Joins come out in the order icat.server writes them (pre-order).
    """
    where: dict[str, int] = {}  # entity -> position of its first mention
    for entity, tok in others:
        where.setdefault(entity.name, tok.pos)
    wanted = {start.name, *where}
    used = {start.name}
    joins: list[FromJoin] = []
    first = others[0][1].pos if others else -1

    def follow(previous: str | None, entity: Entity, var: str) -> None:
        for field in relationships(entity):
            target = field.type
            if target not in wanted or target == previous:
                continue
            if target in used:
                raise semantic(f"Can't have loop in graph of entities. '{target}' was "
                               f"encountered twice following {previous or ''} -> {entity.name}"
                               f" -> {target}", where.get(target, first))
            used.add(target)
            target_var = get_var(target)
            joins.append(FromJoin(Path(var, (field.name,)), target_var, "INNER"))
            follow(entity.name, SCHEMA.entities[target], target_var)

    follow(None, start, get_var(start.name))
    missing = [name for name in where if name not in used]
    if missing:
        raise semantic(f"Unable to reach {', '.join(missing)}", where[missing[0]])
    return joins


def include_types(start: Entity, var: str, types: dict[str, int],
                  pos: int) -> tuple[IncludeItem, ...]:
    """The INCLUDE paths for a list of entity types (icat.server's OldInclude + DagHandler).

    From the result type follow any relationship to a listed type; after a ONE step only ONE
    steps may follow; every listed type must be reached exactly once. The last step to type T
    is aliased ``t_$`` (icat.server's ``T_$``).
    """
    wanted = {start.name, *types}
    used = {start.name}

    def check(previous: str | None, entity: Entity, cascade: bool) -> None:
        for field in relationships(entity):
            if not (field.is_one or cascade):
                continue
            target = field.type
            if target not in wanted or target == previous:
                continue
            if target in used:
                raise semantic(f"Can't have loop in graph of entities. '{target}' was "
                               f"encountered twice following {previous or ''} -> {entity.name}"
                               f" -> {target} in list of INCLUDES.", types.get(target, pos))
            used.add(target)
            check(entity.name, SCHEMA.entities[target], field.is_many)

    check(None, start, True)
    missing = [name for name in types if name not in used]
    if missing:
        raise semantic(f"Unable to reach {', '.join(missing)} in list of INCLUDES.",
                       types[missing[0]])

    items: list[IncludeItem] = []
    aliases: set[str] = set()

    def emit(entity: Entity, here: str, remaining: frozenset[str], cascade: bool) -> None:
        for field in relationships(entity):
            if not (field.is_one or cascade) or field.type not in remaining:
                continue
            alias = field.type.lower() + "_$"
            if alias in aliases:  # what icat.server's INCLUDE parser would then reject
                raise semantic(f"variable {alias.upper()} mentioned in INCLUDE clause is "
                               "already defined", pos)
            aliases.add(alias)
            items.append(IncludeItem(Path(here, (field.name,)), alias))
            emit(SCHEMA.entities[field.type], alias, remaining - {field.type}, field.is_many)

    emit(start, var, frozenset(types), True)
    return tuple(items)

