"""Recursive-descent parser: JPQL-style search queries and get queries → the AST of ``ast.py``.

icat.server only tokenises the JPQL-style text, checks the FROM variables and hands the rest to
EclipseLink; we parse the whole JPQL subset it accepts (§1.2 of the reference) so the compiler
receives a typed tree. What the parser checks is what needs no schema beyond entity names:
variable scoping (SELECT, FROM, WHERE, …, INCLUDE), enum literals, LIMIT. Field existence and
types are checked when compiling (``compiler.py``, ``typecheck.py``). Which syntax a text is in
is decided by ``frontend.py``.

Grammar (JPQL precedence, lowest first)::

    query     ::= SELECT [DISTINCT] value ("," value)* FROM from [WHERE cond]
                  [GROUP BY value ("," value)*] [HAVING cond] [ORDER BY order ("," order)*]
                  tail                      -- tail: INCLUDE and LIMIT, either order, once each
    cond      ::= and (OR and)* ; and ::= not (AND not)* ; not ::= NOT not | predicate
    predicate ::= [NOT] EXISTS "(" query ")" | value [comparison tail]
    value     ::= term (("+"|"-") term)* ; term ::= unary (("*"|"/") unary)*
    unary     ::= ("-"|"+") unary | primary
    primary   ::= literal | path | :param | {ts} | enum | function | "(" cond ")" | "(" query ")"
"""

from __future__ import annotations

from dataclasses import replace

from cairn.query.ast import (
    And,
    Arith,
    Between,
    Compare,
    EnumConst,
    Exists,
    Expr,
    FromEntity,
    FromItem,
    FromJoin,
    Func,
    Get,
    Include,
    IncludeItem,
    InList,
    InSubquery,
    IsEmpty,
    IsNull,
    Like,
    Limit,
    Literal,
    MemberOf,
    Neg,
    Not,
    Or,
    OrderItem,
    Param,
    Path,
    Select,
    Subquery,
    Timestamp,
    Trim,
)
from cairn.query.errors import expected, no_more_input, semantic
from cairn.query.syntax import check_limit, get_var
from cairn.query.tokens import Token, TokenStream, tokenize
from cairn.schema import SCHEMA

AGGREGATES = frozenset({"COUNT", "MIN", "MAX", "AVG", "SUM"})
#: name -> (min args, max args or None)
FUNCTIONS: dict[str, tuple[int, int | None]] = {
    "CONCAT": (2, None), "SUBSTRING": (2, 3), "LOCATE": (2, 3), "MOD": (2, 2),
    "LOWER": (1, 1), "UPPER": (1, 1), "LENGTH": (1, 1), "ABS": (1, 1), "SQRT": (1, 1),
    "SIZE": (1, 1),
}
NOW = frozenset({"CURRENT_DATE", "CURRENT_TIME", "CURRENT_TIMESTAMP"})
CONDITIONS = (Compare, Like, InList, InSubquery, Between, IsNull, IsEmpty, MemberOf, Exists,
              And, Or, Not)
ENUM_PREFIX = "org.icatproject."


class JpqlParser(TokenStream):
    def __init__(self, text: str, tokens: list[Token]) -> None:
        super().__init__(text, tokens)
        self.scopes: list[set[str]] = []  # FROM variables, outermost query first
        self.clause = "SELECT"  # named in "idVar … referenced in the X clause" messages
        # While a SELECT list is parsed its FROM is not known yet: paths wait here.
        self.pending: list[Path] | None = None

    # -- queries ------------------------------------------------------------------------------

    def search(self) -> Select:
        select = self.query(sub=False)
        include: Include | None = None
        limit: Limit | None = None
        while True:
            if self.at("INCLUDE") and include is None:
                include = self.include(self.include_root(select))
            elif self.at("LIMIT") and limit is None:
                limit = self.limit()
            else:
                break
        if not self.at("EOF"):
            raise no_more_input(self.toks, self.i)
        if include is None and limit is None:
            return select
        return replace(select, limit=limit, include=include)

    def query(self, sub: bool) -> Select:
        self.expect("SELECT")
        distinct = self.accept("DISTINCT") is not None
        saved = self.clause, self.pending
        self.clause, self.pending = "SELECT", []
        items = [self.value()]
        while self.accept("COMMA"):
            items.append(self.value())
        pending, self.pending = self.pending, None
        if not self.at("FROM"):
            raise expected(self.toks, self.i, ("COMMA", "FROM"))
        self.next()
        self.scopes.append(set())
        from_ = self.from_clause()
        for path in pending:
            if not self.defined(path.var):
                raise semantic(f"idVar '{path.var.upper()}' referenced in the SELECT clause "
                               "is not defined in the FROM clause.", path.pos)
        where = having = None
        group_by: list[Expr] = []
        order_by: list[OrderItem] = []
        if self.accept("WHERE"):
            self.clause = "WHERE"
            where = self.condition()
        if self.accept("GROUP"):
            self.clause = "GROUP BY"
            self.expect("BY")
            group_by.append(self.value())
            while self.accept("COMMA"):
                group_by.append(self.value())
        if self.accept("HAVING"):
            self.clause = "HAVING"
            having = self.condition()
        if not sub and self.accept("ORDER"):  # JPQL sub-selects have no ORDER BY
            self.clause = "ORDER BY"
            self.expect("BY")
            order_by.append(self.order_item())
            while self.accept("COMMA"):
                order_by.append(self.order_item())
        if sub:
            self.scopes.pop()
        self.clause, self.pending = saved
        return Select(tuple(items), tuple(from_), distinct, where, tuple(group_by), having,
                      tuple(order_by))

    def subquery(self) -> Select:
        if self.pending is not None:  # JPQL has no sub-selects in a SELECT list
            raise self.fail("Sub-selects are not allowed in the SELECT clause")
        self.enter()
        query = self.query(sub=True)
        self.leave()
        return query

    def order_item(self) -> OrderItem:
        expr = self.value()
        if self.accept("DESC"):
            return OrderItem(expr, True)
        self.accept("ASC")
        return OrderItem(expr)

    # -- FROM ---------------------------------------------------------------------------------

    def from_clause(self) -> list[FromItem]:
        items = [self.range_declaration()]
        while True:
            if self.accept("COMMA"):
                items.append(self.range_declaration())
            elif self.at("JOIN", "INNER", "LEFT"):
                items.append(self.join())
            elif self.at("FETCH"):
                raise semantic("The FETCH keyword is not permitted", self.peek().pos)
            else:
                return items

    def range_declaration(self) -> FromItem:
        """``Entity [AS] v``, ``path [AS] v`` (a correlated or comma join) or ``IN(path) v``."""
        if self.at("IN"):
            start = self.next()
            self.expect("OPENPAREN")
            path = self.from_path(self.expect("NAME"))
            self.expect("CLOSEPAREN")
            return FromJoin(path, self.declare(), "INNER", start.pos)
        tok = self.expect("NAME", "IN")
        if "." in str(tok.value):
            return FromJoin(self.from_path(tok), self.declare(), "INNER", tok.pos)
        entity = SCHEMA.lookup_ci(str(tok.value))
        if entity is None:
            raise semantic(f"No information to determine type of {tok.value} in the FROM clause",
                           tok.pos)
        return FromEntity(entity.name, self.declare(), tok.pos)

    def join(self) -> FromJoin:
        start = self.peek()
        kind: str = "INNER"
        if self.accept("LEFT"):
            kind = "LEFT"
            self.accept("OUTER")
        else:
            self.accept("INNER")
        if self.at("FETCH"):
            raise semantic("The FETCH keyword is not permitted", self.peek().pos)
        self.expect("JOIN")
        if self.at("FETCH"):
            raise semantic("The FETCH keyword is not permitted", self.peek().pos)
        path = self.from_path(self.expect("NAME"))
        return FromJoin(path, self.declare(), "LEFT" if kind == "LEFT" else "INNER", start.pos)

    def from_path(self, tok: Token) -> Path:
        parts = self.split(tok)
        if len(parts) < 2:
            raise self.fail("Expected a path var.field", tok.pos)
        if not self.defined(parts[0].lower()):
            raise semantic(f"idVar '{parts[0].upper()}' referenced in the FROM clause is not "
                           "defined.", tok.pos)
        return Path(parts[0].lower(), tuple(parts[1:]), tok.pos)

    def declare(self) -> str:
        self.accept("AS")
        tok = self.expect("NAME")
        name = str(tok.value)
        if "." in name:
            raise semantic(f"Identification variable {name} must not contain a '.'", tok.pos)
        var = name.lower()
        if self.defined(var):
            raise semantic(f"JPQL indentification variable {name} has already been defined in "
                           "the FROM clause", tok.pos)
        self.scopes[-1].add(var)
        return var

    def defined(self, var: str) -> bool:
        return any(var in scope for scope in self.scopes)

    # -- tail ---------------------------------------------------------------------------------

    def include_root(self, select: Select) -> str | None:
        """The INCLUDE root: the select list's one variable (icat.server's single "id path")."""
        paths: list[Path] = []
        for item in select.items:
            collect_paths(item, paths)
        distinct = {(p.var, p.fields) for p in paths}
        if len(distinct) > 1:
            raise semantic("INCLUDE is only valid for one quantity in the SELECT clause",
                           self.peek().pos)
        if len(distinct) == 1:
            var, fields = distinct.pop()
            return None if fields else var  # a path root never matches, as in icat.server
        return None

    def include(self, root: str | None) -> Include:
        self.expect("INCLUDE")
        if self.at("INTEGER") and self.peek().text == "1":
            self.next()
            if self.at("COMMA"):
                raise semantic('"INCLUDE 1" must not be followed by other things to include.',
                               self.peek().pos)
            return Include(one=True)
        defined = {root} if root else set()
        items = [self.include_item(defined)]
        while self.accept("COMMA"):
            items.append(self.include_item(defined))
        return Include(items=tuple(items))

    def include_item(self, defined: set[str]) -> IncludeItem:
        tok = self.expect("NAME")
        parts = self.split(tok)
        if len(parts) < 2:
            raise semantic(f"Path {tok.value} must contain a '.'", tok.pos)
        alias_tok = None
        if self.accept("AS"):
            alias_tok = self.expect("NAME")
        elif self.at("NAME"):
            alias_tok = self.next()
        if parts[0].lower() not in defined:
            raise semantic(f"variable {parts[0].upper()} mentioned in INCLUDE clause is not "
                           "defined", tok.pos)
        alias = None
        if alias_tok is not None:
            name = str(alias_tok.value)
            if "." in name:
                raise semantic(f"Variable {name} must not contain a '.'", alias_tok.pos)
            alias = name.lower()
            if alias in defined:
                raise semantic(f"variable {name.upper()} mentioned in INCLUDE clause is already "
                               "defined", alias_tok.pos)
            defined.add(alias)
        return IncludeItem(Path(parts[0].lower(), tuple(parts[1:]), tok.pos), alias)

    def limit(self) -> Limit:
        self.expect("LIMIT")
        offset = self.expect("INTEGER")
        self.expect("COMMA")
        count = self.expect("INTEGER", "MULT")
        start = check_limit(offset, "offset")
        return Limit(start, check_limit(count, "count") if count.kind == "INTEGER" else None)

    # -- conditions ---------------------------------------------------------------------------

    def condition(self) -> Expr:
        pos = self.peek().pos
        return self.as_condition(self.or_(), pos)

    def or_(self) -> Expr:
        start = self.peek().pos
        first = self.and_()
        if not self.at("OR"):
            return first
        items = [self.as_condition(first, start)]
        while self.accept("OR"):
            pos = self.peek().pos
            items.append(self.as_condition(self.and_(), pos))
        return Or(tuple(items), start)

    def and_(self) -> Expr:
        start = self.peek().pos
        first = self.not_()
        if not self.at("AND"):
            return first
        items = [self.as_condition(first, start)]
        while self.accept("AND"):
            pos = self.peek().pos
            items.append(self.as_condition(self.not_(), pos))
        return And(tuple(items), start)

    def not_(self) -> Expr:
        if not self.at("NOT"):
            return self.predicate()
        tok = self.next()
        self.enter()
        if self.at_word("EXISTS") and self.peek(1).kind == "OPENPAREN":
            result: Expr = self.exists(True, tok.pos)
        else:
            pos = self.peek().pos
            result = Not(self.as_condition(self.not_(), pos), tok.pos)
        self.leave()
        return result

    def predicate(self) -> Expr:
        start = self.peek()
        if self.at_word("EXISTS") and self.peek(1).kind == "OPENPAREN":
            return self.exists(False, start.pos)
        left = self.additive()
        tok = self.peek()
        pos = start.pos
        if tok.kind == "COMPOP" and tok.value != "LIKE":
            self.next()
            op = "<>" if tok.value == "!=" else str(tok.value)
            return Compare(op, self.as_value(left, pos), self.value(), pos)  # type: ignore[arg-type]
        negated = False
        after = self.peek(1)
        if tok.kind == "NOT" and (after.kind in ("IN", "BETWEEN", "MEMBER")
                                  or (after.kind == "COMPOP" and after.value == "LIKE")):
            self.next()
            negated = True
            tok = self.peek()
        if tok.kind == "COMPOP":  # LIKE
            self.next()
            value = self.as_value(left, pos)
            pattern = self.value()
            escape = None
            if self.accept("ESCAPE"):
                epos = self.peek().pos
                escape = self.as_value(self.primary(), epos)
            return Like(value, pattern, escape, negated, pos)
        if tok.kind == "IN":
            self.next()
            value = self.as_value(left, pos)
            self.expect("OPENPAREN")
            if self.at("SELECT"):
                query = self.subquery()
                self.expect("CLOSEPAREN")
                return InSubquery(value, query, negated, pos)
            items = [self.value()]
            while self.accept("COMMA"):
                items.append(self.value())
            self.expect("CLOSEPAREN")
            return InList(value, tuple(items), negated, pos)
        if tok.kind == "BETWEEN":
            self.next()
            value = self.as_value(left, pos)
            low = self.value()
            self.expect("AND")
            return Between(value, low, self.value(), negated, pos)
        if tok.kind == "MEMBER":
            self.next()
            if self.at_word("OF"):
                self.next()
            ptok = self.expect("NAME")
            path = self.primary_name(ptok)
            if not isinstance(path, Path):
                raise self.fail("Expected a path", ptok.pos)
            return MemberOf(self.as_value(left, pos), path, negated, pos)
        if tok.kind == "IS":
            self.next()
            neg = self.accept("NOT") is not None
            if self.accept("NULL"):
                return IsNull(self.as_value(left, pos), neg, pos)
            if self.at("EMPTY"):
                self.next()
                if not isinstance(left, Path):
                    raise self.fail("IS EMPTY needs a path", pos)
                return IsEmpty(left, neg, pos)
            raise expected(self.toks, self.i, ("NULL", "EMPTY") if neg else
                           ("NOT", "NULL", "EMPTY"))
        return left

    def exists(self, negated: bool, pos: int) -> Exists:
        self.next()  # EXISTS
        self.expect("OPENPAREN")
        if not self.at("SELECT"):
            raise expected(self.toks, self.i, ("SELECT",))
        query = self.subquery()
        self.expect("CLOSEPAREN")
        return Exists(query, negated, pos)

    # -- values -------------------------------------------------------------------------------

    def value(self) -> Expr:
        pos = self.peek().pos
        return self.as_value(self.additive(), pos)

    def additive(self) -> Expr:
        self.enter()
        start = self.peek().pos
        left = self.term()
        while True:
            tok = self.peek()
            if tok.kind in ("PLUS", "MINUS"):
                self.next()
                right = self.term()
            elif tok.kind in ("INTEGER", "REAL") and tok.text.startswith("-"):
                # "o.id -1": the lexer glued '-' to the number; JPQL reads a subtraction
                self.next()
                assert isinstance(tok.value, int | float)
                first = Literal(-tok.value, "integer" if tok.kind == "INTEGER" else "real",
                                tok.pos + 1)
                tok = Token("MINUS", "-", tok.pos, "-")
                right = self.term(first)
            else:
                break
            left = Arith(tok.value, self.as_value(left, start),  # type: ignore[arg-type]
                         self.as_value(right, tok.pos), start)
        self.leave()
        return left

    def term(self, first: Expr | None = None) -> Expr:
        start = self.peek().pos if first is None else first.pos
        left = self.unary() if first is None else first
        while self.at("MULT", "DIV"):
            tok = self.next()
            pos = self.peek().pos
            right = self.as_value(self.unary(), pos)
            left = Arith("*" if tok.kind == "MULT" else "/", self.as_value(left, start), right,
                         start)
        return left

    def unary(self) -> Expr:
        if not self.at("MINUS", "PLUS"):
            return self.primary()
        tok = self.next()
        self.enter()
        pos = self.peek().pos
        expr = self.as_value(self.unary(), pos)
        self.leave()
        if tok.kind == "PLUS":
            return expr
        if isinstance(expr, Literal) and expr.kind in ("integer", "real"):
            return Literal(-expr.value, expr.kind, tok.pos)  # type: ignore[operator]
        return Neg(expr, tok.pos)

    def primary(self) -> Expr:
        tok = self.peek()
        kind = tok.kind
        if kind == "STRING":
            self.next()
            assert isinstance(tok.value, str)
            return Literal(tok.value, "string", tok.pos)
        if kind in ("INTEGER", "REAL"):
            self.next()
            assert isinstance(tok.value, int | float)
            return Literal(tok.value, "integer" if kind == "INTEGER" else "real", tok.pos)
        if kind in ("TRUE", "FALSE"):
            self.next()
            return Literal(kind == "TRUE", "boolean", tok.pos)
        if kind == "NULL":
            self.next()
            return Literal(None, "null", tok.pos)
        if kind == "PARAMETER":
            self.next()
            return Param(str(tok.value), tok.pos)
        if kind == "TIMESTAMP":
            self.next()
            return Timestamp(tok.value, tok.pos)  # type: ignore[arg-type]
        if kind in NOW:
            self.next()
            return Func(kind, (), False, tok.pos)
        if kind in AGGREGATES or kind in FUNCTIONS:
            return self.function()
        if kind == "TRIM":
            return self.trim()
        if kind == "OBJECT":  # OBJECT(v) is v
            self.next()
            self.expect("OPENPAREN")
            var = self.primary_name(self.expect("NAME"))
            if not isinstance(var, Path) or var.fields:
                raise self.fail("OBJECT needs an identification variable", var.pos)
            self.expect("CLOSEPAREN")
            return var
        if kind == "NAME":
            self.next()
            if self.at("OPENPAREN"):
                raise self.fail(f"Unknown function {tok.value}", tok.pos)
            return self.primary_name(tok)
        if kind == "OPENPAREN":
            self.next()
            if self.at("SELECT"):
                query = self.subquery()
                self.expect("CLOSEPAREN")
                return Subquery(query, tok.pos)
            expr = self.or_()
            self.expect("CLOSEPAREN")
            return expr
        raise self.fail("Expected an expression")

    def primary_name(self, tok: Token) -> Expr:
        """A NAME already consumed: an enum literal or a path ``var.f1.f2``."""
        name = str(tok.value)
        if name.lower().startswith(ENUM_PREFIX):
            return self.enum_literal(tok)
        parts = self.split(tok)
        path = Path(parts[0].lower(), tuple(parts[1:]), tok.pos)
        if self.pending is not None:
            self.pending.append(path)
        elif not self.defined(path.var):
            raise semantic(f"idVar '{parts[0].upper()}' referenced in the {self.clause} clause "
                           "is not defined in the FROM clause.", tok.pos)
        return path

    def enum_literal(self, tok: Token) -> EnumConst:
        name = str(tok.value)
        parts = name.split(".")
        if len(parts) != 4:
            raise semantic(f"Enum literal {name} must contain exactly 4 parts", tok.pos)
        enum, const = parts[2], parts[3]
        if enum not in SCHEMA.enums:
            raise semantic(f"Enum literal {name}: {enum} is not an ICAT enum type", tok.pos)
        if const not in SCHEMA.enums[enum]:
            raise semantic(f"Enum literal {name}: {const} is not a value of {enum} "
                           f"({', '.join(SCHEMA.enums[enum])})", tok.pos)
        return EnumConst(enum, const, tok.pos)

    def function(self) -> Func:
        tok = self.next()
        name = tok.kind
        self.expect("OPENPAREN")
        self.enter()
        distinct = False
        if name in AGGREGATES:
            distinct = self.accept("DISTINCT") is not None
        args = [self.value()]
        while self.accept("COMMA"):
            args.append(self.value())
        self.leave()
        low, high = FUNCTIONS.get(name, (1, 1))
        if len(args) < low or (high is not None and len(args) > high):
            want = str(low) if low == high else f"{low} to {high}" if high else f"{low} or more"
            raise self.fail(f"{name} takes {want} argument{'s' if want != '1' else ''}, "
                            f"not {len(args)},", tok.pos)
        self.expect("CLOSEPAREN")
        return Func(name, tuple(args), distinct, tok.pos)

    def trim(self) -> Trim:
        tok = self.next()
        self.expect("OPENPAREN")
        self.enter()
        spec = "BOTH"
        char = None
        if self.at("LEADING", "TRAILING", "BOTH"):
            spec = self.next().kind
            if not self.accept("FROM"):
                char = self.value()
                self.expect("FROM")
            expr = self.value()
        else:
            expr = self.value()
            if self.accept("FROM"):
                char, expr = expr, self.value()
        self.leave()
        self.expect("CLOSEPAREN")
        return Trim(expr, spec, char, tok.pos)  # type: ignore[arg-type]

    # -- helpers ------------------------------------------------------------------------------

    def as_value(self, expr: Expr, pos: int) -> Expr:
        if isinstance(expr, CONDITIONS):
            raise self.fail("Expected a value rather than a condition", pos)
        return expr

    def as_condition(self, expr: Expr, pos: int) -> Expr:
        """Conditions, and what may hold a boolean: paths, parameters, sub-selects, TRUE/FALSE."""
        if isinstance(expr, (*CONDITIONS, Path, Param, Subquery)) or (
                isinstance(expr, Literal) and expr.kind == "boolean"):
            return expr
        raise self.fail("Expected a condition", pos)


def collect_paths(expr: object, out: list[Path]) -> None:
    """Every Path inside ``expr`` (not inside sub-selects, which have their own scope); no
    recursion, as a long chain of ``+`` is a deep tree."""
    stack = [expr]
    while stack:
        e = stack.pop()
        if isinstance(e, Path):
            out.append(e)
        elif isinstance(e, (Func, And, Or)):
            stack.extend(reversed(e.args if isinstance(e, Func) else e.items))
        elif isinstance(e, (Arith, Compare)):
            stack += [e.right, e.left]
        elif isinstance(e, (Neg, Not)):
            stack.append(e.expr)
        elif isinstance(e, Trim):
            stack += [e.char, e.expr]


# -- entry points (the syntax is chosen by frontend.py) ---------------------------------------


def parse_jpql(text: str) -> Select:
    """A JPQL-style search query (``SELECT …``)."""
    return JpqlParser(text, tokenize(text)).search()


def parse_jpql_get(text: str) -> Get:
    """The query of a get: ``Entity`` or ``Entity [AS] v [INCLUDE …]``."""
    p = JpqlParser(text, tokenize(text))
    tok = p.expect("NAME")
    entity = SCHEMA.lookup_ci(str(tok.value))
    if entity is None:
        raise semantic(f"{tok.value} is not an ICAT entity", tok.pos)
    var = get_var(entity.name)
    include = None
    if p.accept("AS") or p.at("NAME"):
        vtok = p.expect("NAME")
        if "." in str(vtok.value):
            raise semantic(f"Variable {vtok.value} must not contain a '.'", vtok.pos)
        var = str(vtok.value).lower()
        if p.at("INCLUDE"):
            include = p.include(var)
    if not p.at("EOF"):
        raise semantic(f"Trailing tokens at end of query {p.peek().text}...", p.peek().pos)
    return Get(entity.name, var, include)
