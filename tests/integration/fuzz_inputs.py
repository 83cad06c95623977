"""Hostile inputs for the surface fuzzer (test_fuzz_surfaces.py), drawn with hypothesis: query
text, JSON entities, SOAP envelopes, data-service parameters and headers, and dump files.

Each generator knows enough of its surface to get past the first check most of the time
(schema entities and fields, the shapes of icat.server's requests), then mixes in what a
hostile client sends: wrong types, numbers beyond 64 bits, lone surrogates where the format
allows them, broken tokens, control characters, very long and very deep inputs, and
byte-level corruption.
"""

from __future__ import annotations

import json
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from hypothesis import strategies as st

from cairn.query import limits
from cairn.schema import SCHEMA, Entity
from tests.integration.query_corpus.corpus import CASES
from tests.integration.surfaces import envelope
from tests.query_mutations import mutate

ENTITIES = sorted(SCHEMA.entities)
HUGE = [2**63, -(2**63) - 1, 2**70, 10**30, 2**63 - 1, -(2**63)]
#: Text that breaks tokens, formats and encodings (no lone surrogates: HTTP cannot carry
#: them, and JSON gets its own below).
NASTY = ["", "'", "''", '"', "\\", "\x00", "\x01\x7f", "\u00e9", "\u202e", "\ufeff", "\uffff",
         "\U0001f600", "%", "%00", "&amp;", "<x>", "]]>", "${x}", "NaN", "-0", "1e999",
         "9" * 40, "x" * 300, "SELECT", "\r\n", "\t"]
SURROGATES = ["\\ud800", "\\udfff", "\\ud83d", "\\ude00x", "\\uD800\\uD800"]

text = st.one_of(st.sampled_from(NASTY), st.text(max_size=20))
integer = st.one_of(st.integers(-3, 40), st.sampled_from(HUGE), st.integers())


def pick(data: st.DataObject, items: list[Any]) -> Any:
    return data.draw(st.sampled_from(items))


def chance(data: st.DataObject, p: float) -> bool:
    """True with probability ``p``, near enough: hypothesis draws floats and small integers
    at their bounds far more often than uniformly, which a sample of percents avoids; and its
    simplest draw (the first percent) is False, as are the first choices below (no damage):
    hypothesis draws and shrinks towards them."""
    return bool(data.draw(st.sampled_from(range(100))) >= 100 - p * 100)


# -- query text -------------------------------------------------------------------------------

SEEDS = sorted({c.query for c in CASES if c.get_id is None})
GET_SEEDS = sorted({c.query for c in CASES if c.get_id is not None})
BROKEN = ["'", "(", ")", ",", "{ts", "{ts 2024-13-45 99:99:99}", ":x", "..", "1e", "1.2.3",
          "-", "--1", "!", "<->", "[", "]", "SELECT", "FROM", "WHERE", "LIMIT", "INCLUDE",
          "HAVING", "GROUP BY", "ORDER BY", "\u00e9", "\x00", "NULL", "TRUE", "*", "/",
          "9223372036854775808", "-9223372036854775809", "1e309", "org.icatproject.X.Y",
          "COUNT(", "MEMBER OF", "IS EMPTY", "EXISTS", "$", "_", ":user", "'\\'"]
COMPOPS = ["=", "<>", "!=", "<", "<=", ">", ">=", "LIKE", "NOT LIKE"]
FUNCS = ["UPPER", "LOWER", "LENGTH", "ABS", "SQRT", "TRIM", "CONCAT", "SUBSTRING", "LOCATE",
         "MOD", "SIZE", "COUNT", "MIN", "MAX", "SUM", "AVG"]


class QueryGen:
    """A schema-aware generator of JPQL-style queries whose tokens are, now and then, replaced
    by broken ones; sizes reach past the limits of :mod:`cairn.query.limits`."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data
        self.vars: dict[str, Entity] = {}
        self.broken = data.draw(st.sampled_from([0.0, 0.0, 0.02, 0.1]))

    def tok(self, good: str) -> str:
        return pick(self.data, BROKEN) if chance(self.data, self.broken) else good

    def path(self) -> str:
        var = pick(self.data, sorted(self.vars))
        entity, text = self.vars[var], var
        for _ in range(self.data.draw(st.integers(0, 3))):
            fields = [f for f in entity.fields.values() if not f.hidden]
            f = pick(self.data, fields)
            text += "." + f.name
            if f.is_attribute or f.is_many:
                break
            entity = SCHEMA.entities[f.type]
        return self.tok(text)

    def literal(self) -> str:
        d = self.data
        return self.tok(pick(d, [str(d.draw(integer)), f"'{d.draw(text).replace(chr(39), '')}'",
                                 "NULL", "TRUE", "FALSE", "{ts 2020-01-01 00:00:00}",
                                 f"{d.draw(st.floats(allow_nan=False, allow_infinity=False))}",
                                 ":user", "CURRENT_TIMESTAMP", "org.icatproject.StudyStatus.NEW",
                                 "'2020-01-01T00:00:00Z'", "-" + str(d.draw(integer))]))

    def value(self, depth: int = 0) -> str:
        d = self.data
        r = pick(d, range(10 if depth < 3 else 5))
        if r < 3:
            return self.path()
        if r < 5:
            return self.literal()
        if r < 7:
            fn = pick(d, FUNCS)
            args = ", ".join(self.value(depth + 1) for _ in range(d.draw(st.integers(0, 3))))
            return f"{self.tok(fn)}({args})"
        if r < 9:
            return f"({self.value(depth + 1)} {self.tok(pick(d, ['+', '-', '*', '/']))} " \
                   f"{self.value(depth + 1)})"
        return f"(SELECT {self.tok('COUNT')}(x) FROM {pick(d, ENTITIES)} x)"

    def condition(self, depth: int = 0) -> str:
        d = self.data
        r = pick(d, range(10 if depth < 3 else 6))
        if r < 3:
            return f"{self.value()} {self.tok(pick(d, COMPOPS))} {self.value()}"
        if r == 3:
            items = ", ".join(self.literal() for _ in range(d.draw(st.integers(0, 4))))
            return f"{self.value()} {self.tok('IN')} ({items})"
        if r == 4:
            return f"{self.value()} IS {self.tok(pick(d, ['NULL', 'NOT NULL', 'EMPTY']))}"
        if r == 5:
            return f"{self.value()} BETWEEN {self.literal()} AND {self.literal()}"
        if r < 8:
            op = self.tok(pick(d, ["AND", "OR"]))
            return f"({self.condition(depth + 1)} {op} {self.condition(depth + 1)})"
        if r == 8:
            return f"NOT {self.condition(depth + 1)}"
        v = f"s{len(self.vars)}"
        self.vars[v] = SCHEMA.entities[pick(d, ENTITIES)]
        return f"EXISTS (SELECT {v} FROM {self.vars[v].name} {v} WHERE {self.condition(depth + 1)})"

    def query(self) -> str:
        d = self.data
        root = pick(d, ENTITIES)
        self.vars = {"o": SCHEMA.entities[root]}
        froms = [f"{self.tok(root)} o"]
        for k in range(d.draw(st.integers(0, 2))):
            rels = [f for f in self.vars["o"].fields.values() if not f.is_attribute]
            if rels:
                f = pick(d, rels)
                self.vars[f"j{k}"] = SCHEMA.entities[f.type]
                froms.append(f"{pick(d, ['JOIN', 'LEFT JOIN'])} o.{f.name} j{k}")
        items = pick(d, [["o"], [self.value()], [self.path(), f"COUNT({self.path()})"],
                         [self.value(), self.value()]])
        q = f"SELECT {self.tok(pick(d, ['', 'DISTINCT ']))}{', '.join(items)} " \
            f"FROM {' '.join(froms)}"
        if not chance(d, 0.3):
            q += f" WHERE {self.condition()}"
        if chance(d, 0.2):
            q += f" GROUP BY {self.path()}"
        if chance(d, 0.15):
            q += f" HAVING {self.condition(2)}"
        if chance(d, 0.3):
            q += f" ORDER BY {self.value()} {pick(d, ['', 'ASC', 'DESC'])}"
        if chance(d, 0.2):
            q += f" INCLUDE {self.tok(pick(d, ['1', 'o.' + self.path().split('.')[-1]]))}"
        if chance(d, 0.2):
            q += f" LIMIT {d.draw(integer)}, {pick(d, ['*', str(d.draw(integer))])}"
        return q


def _long(data: st.DataObject) -> str:
    """A query made of one construct repeated near or far past its limit."""
    n = data.draw(st.sampled_from([1, 2, 10, 50, 1_000]))
    around = data.draw(st.integers(-2, 2))
    shapes = {
        "or": (limits.MAX_CONDITIONS, lambda k: "SELECT o FROM Dataset o WHERE "
               + " OR ".join(["o.id = 1"] * k)),
        "plus": (limits.MAX_OPERATORS, lambda k: "SELECT o.id FROM Dataset o WHERE o.id = "
                 + "+".join(["1"] * (k + 1))),
        "nest": (limits.MAX_NESTING, lambda k: "SELECT o FROM Dataset o WHERE "
                 + "(" * k + "o.id = 1" + ")" * k),
        "upper": (limits.MAX_NESTING // 2, lambda k: "SELECT " + "UPPER(" * k + "o.name"
                  + ")" * k + " FROM Dataset o"),
        "from": (limits.MAX_TABLES, lambda k: "SELECT o FROM Dataset o "
                 + " ".join(f"JOIN o.investigation i{j}" for j in range(k - 1))),
        "in": (limits.MAX_VALUES // 100, lambda k: "SELECT o FROM Dataset o WHERE o.id IN ("
               + ", ".join(map(str, range(k))) + ")"),
        "items": (limits.MAX_COLUMNS // 10, lambda k: "SELECT " + ", ".join(["o.id"] * k)
                  + " FROM Dataset o"),
    }
    limit, make = shapes[pick(data, sorted(shapes))]
    k = max(1, limit + around if n == 1 else limit * n // 10 + around)
    return make(k)


def query_text(data: st.DataObject) -> str:
    """A search query: generated, a mutated corpus query, random text or a long one."""
    kind = pick(data, ["generated"] * 7 + ["corpus"] * 3 + ["mutated"] * 5 + ["random"] * 2
                + ["long"] * 3)
    if kind == "generated":
        return QueryGen(data).query()
    if kind == "corpus":
        return pick(data, SEEDS)
    if kind == "mutated":
        return mutate(pick(data, SEEDS), data,
                      lambda toks, i, d: toks.insert(i, d.draw(st.sampled_from(BROKEN))))
    if kind == "random":
        return pick(data, ["SELECT ", "", "Dataset ", "SELECT o FROM Dataset o WHERE "]) \
            + data.draw(st.text(max_size=60))
    return _long(data)


def get_query(data: st.DataObject) -> str:
    seed = pick(data, GET_SEEDS)
    return mutate(seed, data, lambda t, i, d: t.insert(i, d.draw(st.sampled_from(BROKEN)))) \
        if chance(data, 0.5) else seed


# -- JSON entities ----------------------------------------------------------------------------

json_value = st.recursive(
    st.none() | st.booleans() | integer | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8)


def field_value(data: st.DataObject, entity: Entity, name: str, depth: int) -> Any:
    """Mostly a value of the field's type, sometimes anything."""
    f = entity.fields[name]
    if chance(data, 0.2):
        return data.draw(json_value)
    if f.is_one:
        return {"id": data.draw(integer)} if not chance(data, 0.2) or depth > 1 else \
            entity_object(data, SCHEMA.entities[f.type], depth + 1)
    if f.is_many:
        return [entity_object(data, SCHEMA.entities[f.type], depth + 1)
                for _ in range(data.draw(st.integers(0, 2 if depth < 2 else 0)))]
    match f.type:
        case "String":
            return data.draw(text) + ("y" * (f.length or 0) if chance(data, 0.05) else "")
        case "Long" | "Integer":
            return data.draw(integer)
        case "Double":
            return data.draw(st.floats(allow_nan=False) | integer)
        case "boolean":
            return data.draw(st.booleans())
        case "Date":
            return pick(data, ["2024-01-31T12:00:00.000Z", "2024-02-30T00:00:00Z", "0000-01-01",
                               "9999-12-31T23:59:59.999+14:00", "yesterday", "2024-01-31"])
    return pick(data, [*SCHEMA.enums[f.type], "nope", ""])


def entity_object(data: st.DataObject, entity: Entity, depth: int = 0) -> dict[str, Any]:
    """Fields of the entity, now and then one the server sets (createId, modTime...)."""
    names = [f.name for f in entity.fields.values()
             if not f.hidden and (not f.system or chance(data, 0.05))]
    chosen = data.draw(st.lists(st.sampled_from(names), max_size=5, unique=True))
    out = {n: field_value(data, entity, n, depth) for n in chosen}
    if chance(data, 0.1):
        out[data.draw(text)] = data.draw(json_value)
    return out


def entities_json(data: st.DataObject) -> str:
    """The ``entities`` of a REST write: JSON text, valid or not."""
    items = [{pick(data, [*ENTITIES, "Nope", "facility"]):
              entity_object(data, SCHEMA.entities[pick(data, ENTITIES)])}
             for _ in range(data.draw(st.integers(0, 3)))]
    # An entity's own fields: the wrapper's name and the fields agree most of the time.
    for item in items:
        (name,) = item
        if name in SCHEMA.entities and not chance(data, 0.2):
            item[name] = entity_object(data, SCHEMA.entities[name])
    body: Any = items if len(items) != 1 or chance(data, 0.5) else items[0]
    return corrupt_json(data, json.dumps(body))


def corrupt_json(data: st.DataObject, text_: str) -> str:
    """Now and then: a lone surrogate, a non-JSON number, deep nesting or a cut."""
    r = pick(data, range(10))
    if r == 6 and '"' in text_:
        i = text_.index('"') + 1
        return text_[:i] + pick(data, SURROGATES) + text_[i:]
    if r == 7:
        return text_.replace("1", pick(data, ["NaN", "Infinity", "1e999", "-0", "01", "1."]), 1)
    if r == 8:
        n = pick(data, [50, 999, 5_000, 100_000])
        return "[" * n + text_ + "]" * n
    if r == 9 and text_:
        return text_[:data.draw(st.integers(0, len(text_) - 1))]
    return text_


# -- SOAP envelopes ---------------------------------------------------------------------------

OPERATIONS = ["login", "logout", "refresh", "getUserName", "getRemainingMinutes",
              "getProperties", "getApiVersion", "getEntityNames", "getEntityInfo",
              "getAuthenticatorInfo", "search", "get", "create", "createMany", "update",
              "delete", "deleteMany", "isAccessAllowed", "dummy", "nope"]


def bean_xml(data: st.DataObject, tag: str, entity: Entity, depth: int = 0) -> str:
    type_attr = f" xsi:type={quoteattr('n:' + entity.name[0].lower() + entity.name[1:])}" \
        if depth == 0 else ""
    parts = []
    for f in data.draw(st.lists(st.sampled_from(list(entity.fields.values())), max_size=4)):
        if f.is_many and depth < 2:
            parts.append(bean_xml(data, f.name, SCHEMA.entities[f.type], depth + 1))
        elif f.is_one:
            parts.append(f"<{f.name}><id>{escape(str(data.draw(integer)))}</id></{f.name}>")
        else:
            v = data.draw(text | integer.map(str) | st.sampled_from(
                ["true", "2024-01-31T12:00:00Z", "2024-01-31", "NaN", "INF", "1e999"]))
            parts.append(f"<{f.name}>{escape(str(v))}</{f.name}>")
    return f"<{tag}{type_attr}>{''.join(parts)}</{tag}>"


def soap_body(data: st.DataObject, sid: str) -> bytes:
    op = pick(data, OPERATIONS)
    inner = [f"<sessionId>{escape(pick(data, [sid, sid, 'nope', '']))}</sessionId>"]
    if op == "login":
        inner = [f"<plugin>{escape(pick(data, ['simple', 'db', 'anon', 'x']))}</plugin>"
                 "<credentials><entry><key>username</key><value>root</value></entry>"
                 f"<entry><key>password</key><value>{escape(data.draw(text))}</value></entry>"
                 "</credentials>"]
    elif op in ("search", "get"):
        q = query_text(data) if op == "search" else get_query(data)
        inner.append(f"<query>{escape(q)}</query>")
        if op == "get":
            inner.append(f"<primaryKey>{escape(str(data.draw(integer)))}</primaryKey>")
    elif op in ("create", "update", "delete", "isAccessAllowed"):
        inner.append(bean_xml(data, "bean", SCHEMA.entities[pick(data, ENTITIES)]))
        if op == "isAccessAllowed":
            inner.append(f"<accessType>{pick(data, ['CREATE', 'READ', 'x'])}</accessType>")
    elif op in ("createMany", "deleteMany"):
        inner += [bean_xml(data, "beans", SCHEMA.entities[pick(data, ENTITIES)])
                  for _ in range(data.draw(st.integers(0, 3)))]
    elif op == "getEntityInfo":
        inner.append(f"<beanName>{escape(pick(data, [*ENTITIES, 'x', '']))}</beanName>")
    body = envelope(op, "".join(inner))
    r = pick(data, range(10))
    if r == 7:  # bytes that are not UTF-8, or a cut
        i = data.draw(st.integers(0, len(body)))
        return body[:i] + pick(data, [b"\xff", b"\xed\xa0\x80", b"\x00", b"&#xD800;", b""])
    if r == 8:
        return b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>' + body
    if r == 9:
        n = pick(data, [100, 10_000, 300_000])
        return body.replace(b"</S:Body>", b"<a>" * n + b"</a>" * n + b"</S:Body>")
    return body


# -- the data service -------------------------------------------------------------------------

IDS_CALLS = {"getData": "GET", "getSize": "GET", "getStatus": "GET", "getDatafileIds": "GET",
             "isPrepared": "GET", "prepareData": "POST", "getLink": "POST", "archive": "POST",
             "restore": "POST", "write": "POST", "reset": "POST", "delete": "DELETE",
             "put": "PUT", "getServiceStatus": "GET", "ping": "GET", "nope": "GET"}


def id_list(data: st.DataObject, real: list[int]) -> str:
    ids = data.draw(st.lists(st.sampled_from(real) if real and chance(data, 0.6) else integer,
                             max_size=4))
    sep = pick(data, [",", ",", ", ", ";", ",,", " "])
    out = sep.join(map(str, ids))
    return out + pick(data, ["", "", ",", "x", " "]) if chance(data, 0.2) else out


def ids_request(data: st.DataObject, sid: str, real: dict[str, list[int]]
                ) -> tuple[str, str, dict[str, str], dict[str, str], bytes]:
    """(method, call, parameters, headers, body) of a data-service call."""
    call = pick(data, sorted(IDS_CALLS))
    params: dict[str, str] = {}
    if not chance(data, 0.1):
        params["sessionId"] = pick(data, [sid, sid, sid, "nope", ""])
    for key in ("investigationIds", "datasetIds", "datafileIds"):
        if chance(data, 0.4):
            params[key] = id_list(data, real.get(key, []))
    for key, values in (("preparedId", ["nope", "", "0" * 36, "../../etc"]),
                        ("zip", ["true", "false", "x"]), ("compress", ["true", "x"]),
                        ("outname", ["a.zip", "../x", "\u00e9", ""]),
                        ("offset", ["0", "-1", str(2**70), "x"]),
                        ("name", ["f.txt", "", "a/b", "\u00e9", "x" * 300]),
                        ("datasetId", [str(i) for i in real.get("datasetIds", [])] + ["x"]),
                        ("datafileFormatId", ["1", str(2**70), "x"]),
                        ("datafileCreateTime", ["0", "-1", str(2**70), "x"])):
        if chance(data, 0.25):
            params[key] = pick(data, [*values, data.draw(text), str(data.draw(integer))])
    headers: dict[str, str] = {}
    if chance(data, 0.4):
        a, b = data.draw(integer), data.draw(integer)
        headers["Range"] = pick(data, [f"bytes={a}-{b}", f"bytes=-{b}", f"bytes={a}-",
                                       f"bytes={a}-{b},{b}-", "bytes=", "items=0-1",
                                       f"bytes={a}-{b}" * 50, data.draw(text)])
    if chance(data, 0.1):
        headers["If-Range"] = data.draw(text)
    body = data.draw(st.binary(max_size=64)) if IDS_CALLS[call] == "PUT" else b""
    return IDS_CALLS[call], call, params, {k: _header(v) for k, v in headers.items()}, body


def _header(value: str) -> str:
    """What an HTTP client lets a header carry: printable ASCII (others become ?), not
    empty, no space at either end."""
    return "".join(c if " " <= c <= "~" else "?" for c in value).strip() or "?"


# -- dump files -------------------------------------------------------------------------------


def dump_file(data: st.DataObject, seed: str) -> str:
    """An export mutated line by line, or random text."""
    if chance(data, 0.1):
        return data.draw(st.text(max_size=200))
    lines = seed.splitlines()
    for _ in range(data.draw(st.integers(1, 4))):
        if not lines:
            break
        i = data.draw(st.integers(0, len(lines) - 1))
        op = pick(data, ["delete", "duplicate", "swap", "edit", "insert"])
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = data.draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "edit":
            words = lines[i].split(" ")
            k = data.draw(st.integers(0, len(words) - 1))
            words[k] = pick(data, [str(data.draw(integer)), data.draw(text), "null", '"',
                                   "2024-02-30T00:00:00.000Z", '"x"', "NaN", ""])
            lines[i] = " ".join(words)
        else:
            lines.insert(i, pick(data, ["# comment", "", "Facility", "Nope", data.draw(text),
                                        "Dataset(name:0,investigation(name:0))"]))
    return "\n".join(lines) + pick(data, ["\n", "", "\r\n"])
