from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import orjson
import pytest

from cairn.catalogue.objects import Obj
from cairn.errors import ErrorType, IcatError
from cairn.schema import SCHEMA
from cairn.web.entity_json import (
    Encoding,
    entity_json,
    format_date,
    parse_date,
    parse_entities,
    render,
    results,
    results_json,
    wrap,
)

UTC_ZONE = ZoneInfo("UTC")


def test_parse_nested_write() -> None:
    text = ('[{"Investigation": {"name": "i", "startDate": "2024-03-01T09:00:00.000+01:00",'
            ' "facility": {"id": 3}, "datasets": [{"name": "d", "complete": true}]}},'
            ' {"Facility": {"id": 3, "daysUntilRelease": 10}}]')
    inv, fac = parse_entities(text, UTC_ZONE)
    assert inv.entity.name == "Investigation" and inv.id is None
    assert inv.values["startDate"] == datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
    facility = inv.ones["facility"]
    assert facility is not None and facility.id == 3 and not facility.values
    (ds,) = inv.manys["datasets"]
    assert ds.entity.name == "Dataset" and ds.values == {"name": "d", "complete": True}
    assert fac.id == 3 and fac.values == {"daysUntilRelease": 10}


def test_enum_values_are_case_insensitive() -> None:
    (pt,) = parse_entities('{"ParameterType": {"valueType": "numeric"}}', UTC_ZONE)
    assert pt.values["valueType"] == "NUMERIC"


@pytest.mark.parametrize(("text", "message", "offset"), [
    ('{"Datafile": {"fileSize": true}}',
     "Field fileSize of Datafile must be an integer between", 0),
    ('{"Datafile": {"fileSize": 9223372036854775808}}', "must be an integer between", 0),
    ('[{"Facility": {}}, {"Datafile": {"dataset": 5}}]',
     "The value of Dataset must be a JSON object", 1),
    ('{"Datafile": {"parameters": {"x": 1}}}',
     "One-to-many field parameters of Datafile must be an array", 0),
    ('{"Rule": {"bean": "Dataset"}}', "Field bean not found in Rule", 0),  # hidden column
    ('{"Datafile": {"id": "7"}}', "The id of Datafile must be an integer", 0),
])
def test_parse_errors(text: str, message: str, offset: int) -> None:
    with pytest.raises(IcatError) as e:
        parse_entities(text, UTC_ZONE)
    assert e.value.type == ErrorType.BAD_PARAMETER
    assert message in e.value.message
    assert e.value.offset == offset


def test_dates_without_zone_are_in_the_server_zone() -> None:
    paris = ZoneInfo("Europe/Paris")
    d = parse_date("2024-07-01T12:00:00", paris)
    assert d.utcoffset() == timedelta(hours=2)
    assert format_date(d, UTC_ZONE) == "2024-07-01T10:00:00.000Z"
    assert format_date(d, paris) == "2024-07-01T12:00:00.000+02:00"
    tz = timezone(timedelta(hours=-5, minutes=-30))
    assert format_date(datetime(2020, 1, 2, 3, 4, 5, 678000, tzinfo=tz), tz) == \
        "2020-01-02T03:04:05.678-05:30"


def test_render_order_and_omissions() -> None:
    ds = SCHEMA.entities["Dataset"]
    inv = SCHEMA.entities["Investigation"]
    now = datetime(2024, 1, 1, tzinfo=UTC)
    o = Obj(entity=ds, id=5, values={"name": "d", "description": None, "createId": "u",
                                     "createTime": now, "modId": "u", "modTime": now,
                                     "complete": False})
    o.ones["investigation"] = Obj(entity=inv, id=9, values={"name": "i"})
    body = wrap(o, UTC_ZONE)
    assert list(body) == ["Dataset"]
    d = body["Dataset"]
    assert list(d)[:5] == ["id", "createId", "createTime", "modId", "modTime"]
    assert "description" not in d  # nulls are omitted
    assert d["complete"] is False
    assert d["investigation"]["id"] == 9 and "Investigation" not in d["investigation"]
    assert d["datafiles"] == [] and d["parameters"] == []  # MANY fields always present
    assert "type" not in d  # many-to-one not included
    names = list(d)[5:]
    assert names == sorted(names)
    assert "bean" not in render(Obj(entity=SCHEMA.entities["Rule"], id=1), UTC_ZONE)


def _parameter(id: int, ptype: Obj, value: float) -> Obj:
    p = Obj(entity=SCHEMA.entities["DatasetParameter"], id=id, values={"numericValue": value})
    p.ones["type"] = ptype
    return p


def test_objects_met_again_encode_once_and_identically() -> None:
    """A type shared by many parameters is encoded once (as an orjson fragment) and the bytes
    are exactly those of encoding the plain rendering."""
    ptype = Obj(entity=SCHEMA.entities["ParameterType"], id=7,
                values={"name": "temperature", "units": "K",
                        "createTime": datetime(2024, 1, 2, 3, 4, 5)})
    ds = Obj(entity=SCHEMA.entities["Dataset"], id=1, values={"name": "d", "complete": True})
    ds.manys["parameters"] = [_parameter(i, ptype, float(i)) for i in range(10, 14)]
    page = [ds, 42, [ds, "x"]]
    plain = results(page, UTC_ZONE)
    assert results_json(page, UTC_ZONE) == orjson.dumps(plain)
    assert entity_json(ds, UTC_ZONE) == orjson.dumps(wrap(ds, UTC_ZONE))
    decoded = orjson.loads(results_json(page, UTC_ZONE))
    types = [p["type"] for p in decoded[0]["Dataset"]["parameters"]]
    assert len(types) == 4 and all(t == types[0] for t in types)
    assert types[0]["createTime"] == "2024-01-02T03:04:05.000Z"
    assert decoded[2][0] == decoded[0]  # the same object in a later row, in full again
    seen = Encoding()
    first, again = render(ptype, UTC_ZONE, seen), render(ptype, UTC_ZONE, seen)
    assert isinstance(first, dict) and isinstance(again, orjson.Fragment)
    assert render(ptype, UTC_ZONE, seen) is again  # encoded once, shared
    assert render(ptype, UTC_ZONE, {}) == first  # plain rendering never makes fragments
