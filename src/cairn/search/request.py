"""A search request as icat.server 6.x takes it (``query``, ``search_after``, ``sort``), parsed
and checked: every mistake is a BAD_PARAMETER naming what to fix, never an INTERNAL."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cairn.errors import bad_parameter
from cairn.search.targets import TARGETS


@dataclass(frozen=True)
class ParameterQuery:
    """One entry of ``parameters``: a name and units (ICAT wildcards ``*`` allowed) and one
    kind of value: a string, a date range or a numeric range."""

    name: str
    units: str
    string_value: str | None = None
    lower_date: datetime | None = None
    upper_date: datetime | None = None
    lower_number: float | None = None
    upper_number: float | None = None


@dataclass(frozen=True)
class Range:
    key: str
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Dimension:
    name: str
    ranges: tuple[Range, ...] = ()


@dataclass(frozen=True)
class FacetRequest:
    target: str
    dimensions: tuple[Dimension, ...] = ()  # none: every facet field of the target


@dataclass(frozen=True)
class SearchRequest:
    target: str
    text: str | None = None
    user: str | None = None
    user_full_name: str | None = None
    lower: datetime | None = None  # aware (UTC)
    upper: datetime | None = None
    parameters: tuple[ParameterQuery, ...] = ()
    samples: tuple[str, ...] = ()
    filter: dict[str, Any] = field(default_factory=dict)
    facets: tuple[FacetRequest, ...] = ()


def load_json(value: str | None, what: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError as e:
        raise bad_parameter(f"{what} is not valid JSON: {e}") from None


def _str(obj: dict[str, Any], key: str, where: str) -> str | None:
    v = obj.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise bad_parameter(f"{where}{key} must be a string, not {json.dumps(v)}")
    return v


def parse_date(value: Any, what: str, *, upper: bool = False) -> datetime | None:
    """``yyyyMMddHHmm`` (UTC) or epoch milliseconds; an upper bound given to the minute
    includes the whole minute."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise bad_parameter(f"{what} must be yyyyMMddHHmm or epoch milliseconds")
    if isinstance(value, int | float):
        if not math.isfinite(value) or abs(value) > 253402300799999:
            raise bad_parameter(f"{what} is out of range: {value}")
        return datetime.fromtimestamp(value / 1000, UTC)
    if isinstance(value, str) and value.isdigit() and len(value) in (12, 13):
        try:
            d = datetime.strptime(value[:12], "%Y%m%d%H%M").replace(tzinfo=UTC)
        except ValueError:
            # DataGateway marks an open end with "0000001010000" / "9000012312359"
            if value.startswith("0000") or value[:4] >= "9000":
                return None
            raise bad_parameter(f"Could not parse date {value} using expected format "
                                "yyyyMMddHHmm") from None
        return d + timedelta(seconds=59, microseconds=999000) if upper else d
    raise bad_parameter(f"{what} must be yyyyMMddHHmm or epoch milliseconds, not "
                        f"{json.dumps(value)}")


def _number(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_parameter(f"{what} must be a number, not {json.dumps(value)}")
    if not math.isfinite(value):
        raise bad_parameter(f"{what} must be a finite number")
    return float(value)


def _parameters(raw: Any) -> tuple[ParameterQuery, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise bad_parameter("parameters must be a list of objects")
    out = []
    for p in raw:
        if not isinstance(p, dict):
            raise bad_parameter("parameters must be a list of objects")
        name = _str(p, "name", "parameter ")
        if name is None:
            raise bad_parameter("name not set in one of parameters")
        units = _str(p, "units", f"parameter '{name}' ")
        if units is None:
            raise bad_parameter(f"units not set in parameter '{name}'")
        w = f"parameter '{name}' "
        if "stringValue" in p:
            out.append(ParameterQuery(name, units, string_value=_str(p, "stringValue", w)))
        elif "lowerDateValue" in p and "upperDateValue" in p:
            out.append(ParameterQuery(
                name, units,
                lower_date=parse_date(p["lowerDateValue"], f"{w}lowerDateValue"),
                upper_date=parse_date(p["upperDateValue"], f"{w}upperDateValue",
                                      upper=True)))
        elif "lowerNumericValue" in p and "upperNumericValue" in p:
            out.append(ParameterQuery(
                name, units,
                lower_number=_number(p["lowerNumericValue"], f"{w}lowerNumericValue"),
                upper_number=_number(p["upperNumericValue"], f"{w}upperNumericValue")))
        else:
            raise bad_parameter(f"value not set in parameter '{name}'")
    return tuple(out)


def _ranges(raw: Any, where: str) -> tuple[Range, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise bad_parameter(f"{where}ranges must be a list")
    out = []
    for r in raw:
        if not isinstance(r, dict):
            raise bad_parameter(f"{where}ranges must be a list of objects")
        low = _number(r.get("from"), f"{where}range from")
        high = _number(r.get("to"), f"{where}range to")
        key = r.get("key")
        if key is None:
            key = f"{_num(low)}-{_num(high)}"
        elif not isinstance(key, str):
            key = json.dumps(key)
        out.append(Range(key, low, high))
    return tuple(out)


def _num(v: float | None) -> str:
    if v is None:
        return "*"
    return str(int(v)) if v.is_integer() else str(v)


def parse_facets(raw: Any) -> tuple[FacetRequest, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise bad_parameter("facets must be a list of objects")
    out = []
    for f in raw:
        if not isinstance(f, dict):
            raise bad_parameter("facets must be a list of objects")
        target = _str(f, "target", "facet ")
        if not target:
            raise bad_parameter("target not set in one of facets")
        dims = []
        raw_dims = f.get("dimensions")
        if raw_dims is not None and not isinstance(raw_dims, list):
            raise bad_parameter(f"facet {target}: dimensions must be a list")
        for d in raw_dims or ():
            if not isinstance(d, dict) or not isinstance(d.get("dimension"), str):
                raise bad_parameter(f"facet {target}: each dimension must be an object with "
                                    "a string 'dimension'")
            dims.append(Dimension(d["dimension"], _ranges(d.get("ranges"),
                                                          f"facet {target}: ")))
        out.append(FacetRequest(target, tuple(dims)))
    return tuple(out)


def parse_target(q: dict[str, Any]) -> str:
    target = q.get("target")
    if target is None:
        raise bad_parameter("target must be set in query: Investigation, Dataset or "
                            "Datafile")
    if target not in TARGETS:
        raise bad_parameter(f"target:{target} is not expected")
    return str(target)


def parse_query(raw: str | None) -> SearchRequest:
    q = load_json(raw, "query")
    if q is None:
        raise bad_parameter("query is not set")
    if not isinstance(q, dict):
        raise bad_parameter("query must be a JSON object")
    target = parse_target(q)
    samples = q.get("samples") or []
    if not isinstance(samples, list) or not all(isinstance(s, str) for s in samples):
        raise bad_parameter("samples must be a list of strings")
    flt = q.get("filter") or {}
    if not isinstance(flt, dict):
        raise bad_parameter("filter must be a JSON object")
    return SearchRequest(
        target=target,
        text=_str(q, "text", ""),
        user=_str(q, "user", ""),
        user_full_name=_str(q, "userFullName", ""),
        lower=parse_date(q.get("lower"), "lower"),
        upper=parse_date(q.get("upper"), "upper", upper=True),
        parameters=_parameters(q.get("parameters")),
        samples=tuple(samples),
        filter=flt,
        facets=parse_facets(q.get("facets")))


def parse_sort(raw: str | None) -> list[tuple[str, bool]]:
    """``{"field": "asc"|"desc", ...}`` as (field, descending) in the order given."""
    s = load_json(raw, "sort")
    if not s:
        return []
    if not isinstance(s, dict):
        raise bad_parameter('sort must be a JSON object such as {"date": "desc"}')
    out = []
    for k, v in s.items():
        if not isinstance(v, str) or v.lower() not in ("asc", "desc"):
            raise bad_parameter(f"sort order of {k} must be asc or desc, not {json.dumps(v)}")
        out.append((k, v.lower() == "desc"))
    return out


def parse_count(raw: str | None, name: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        n = int(raw)
    except ValueError:
        raise bad_parameter(f"{name} must be a whole number, not {raw!r}") from None
    if n < 0 or n > 2**31:
        raise bad_parameter(f"{name} must be between 0 and {2**31}")
    return n
