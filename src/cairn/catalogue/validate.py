"""Checks a row must pass before it is stored, worded as icat.server words them."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, select

from cairn.authz.rules import compile_rule, derived_columns, interpret
from cairn.errors import ErrorType, IcatError, bad_parameter, validation
from cairn.schema import SCHEMA, Entity

if TYPE_CHECKING:
    from cairn.catalogue.work import Work

PARAMETER_KINDS = {"InvestigationParameter": "Investigation", "DatasetParameter": "Dataset",
                   "DatafileParameter": "Datafile", "SampleParameter": "Sample",
                   "DataCollectionParameter": "DataCollection"}


def check_fields(entity: Entity, row: dict[str, Any]) -> None:
    """Not-null and length checks over the complete row (keys are field names)."""
    for f in entity.fields.values():
        if f.is_many or f.system or f.hidden:
            continue
        v = row.get(f.name)
        if v is None:
            if f.required:
                raise validation(f"{entity.name}: {f.name} cannot be null.")
        elif f.length is not None and isinstance(v, str) and len(v) > f.length:
            raise validation(f"{entity.name}: {f.name} cannot have length > {f.length}")


def _render_key_value(v: Any, is_ref: bool) -> str:
    if is_ref:
        return f"id:{v}"
    if isinstance(v, datetime):
        return v.isoformat(sep=" ")
    return str(v)


def check_unique(work: Work, entity: Entity, row: dict[str, Any], self_id: int | None) -> None:
    """OBJECT_ALREADY_EXISTS when another row has the same natural key."""
    if not entity.key:
        return
    table = work.db.tables[entity.name]
    cond = and_(*[table.c[k] == row.get(k) for k in entity.key])
    query = select(table.c.id).where(cond)
    if self_id is not None:
        query = query.where(table.c.id != self_id)
    if work.conn.execute(query.limit(1)).first() is not None:
        parts = ", ".join(
            f"{k} = '{_render_key_value(row.get(k), entity.fields[k].is_one)}'"
            for k in entity.key)
        raise IcatError(ErrorType.OBJECT_ALREADY_EXISTS, f"{entity.name} exists with {parts}")


def normalise_rule(work: Work, row: dict[str, Any]) -> None:
    """Normalise crudFlags and fill the hidden columns icat.server derives from `what`."""
    flags = row.get("crudFlags")
    if flags is None:
        return
    flags = flags.strip().upper()
    for ch in flags:
        if ch not in "CRUD":
            raise bad_parameter(f"CRUD value {flags} contains {ch}")
    row["crudFlags"] = flags
    meaning = interpret(row.get("what"), flags)
    compile_rule(work.db, meaning)  # unknown fields and type errors refuse the rule now
    row.update(derived_columns(meaning, flags))


def check_public_step(row: dict[str, Any]) -> None:
    origin = SCHEMA.entities.get(row.get("origin") or "")
    fname = row.get("field") or ""
    f = origin.field(fname) if origin else None
    if origin is None or f is None or f.is_attribute:
        raise bad_parameter(f"Field value {fname} does not implement a relationship "
                            f"from {row.get('origin')}")


def check_parameter(work: Work, entity: Entity, row: dict[str, Any]) -> None:
    """A parameter's type must apply to its parent kind, and enforced types bound the value."""
    type_id = row.get("type")
    if type_id is None:
        raise validation("Type of parameter is not set")
    pt = work.db.tables["ParameterType"]
    t = work.conn.execute(select(pt).where(pt.c.id == type_id)).first()
    if t is None:
        return  # the reference check reports the missing object
    m = t._mapping
    kind = PARAMETER_KINDS[entity.name]
    if not m[f"applicableTo{kind}"]:
        article = "an" if kind[0] in "AEIOU" else "a"
        raise validation(f"Parameter of type {m['name']} is not applicable to {article} {kind}")
    if not m["enforced"]:
        return
    if m["valueType"] == "NUMERIC" and row.get("numericValue") is not None:
        v = row["numericValue"]
        lo, hi = m["minimumNumericValue"], m["maximumNumericValue"]
        if lo is not None and v < lo:
            raise validation(f"Parameter of type {m['name']} has value {v} < {lo}")
        if hi is not None and v > hi:
            raise validation(f"Parameter of type {m['name']} has value {v} > {hi}")
    elif m["valueType"] == "STRING" and row.get("stringValue") is not None:
        psv = work.db.tables["PermissibleStringValue"]
        allowed = sorted(r.value for r in work.conn.execute(
            select(psv.c.value).where(psv.c.type == type_id)))
        if allowed and row["stringValue"] not in allowed:
            raise validation(f"Parameter of type {m['name']} has value {row['stringValue']} "
                             f"not in allowed set {allowed}")


def check_entity_rules(work: Work, entity: Entity, row: dict[str, Any]) -> None:
    if entity.name in PARAMETER_KINDS:
        check_parameter(work, entity, row)
    elif entity.name == "Rule":
        normalise_rule(work, row)
    elif entity.name == "PublicStep":
        check_public_step(row)
