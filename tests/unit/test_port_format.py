"""The dump format's pieces: headers, values, python-icat keys, format detection."""

from __future__ import annotations

import io
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from cairn.errors import ErrorType, IcatError
from cairn.port.dumpfile import read_records
from cairn.port.icatdump import key_ref
from cairn.port.layout import export_layout, parse_header
from cairn.port.records import Label, Lookup
from cairn.port.sniff import kind_of
from cairn.port.values import BadValue, Splitter, parse_timestamp, quote, split, timestamp_text
from cairn.schema import SCHEMA

UTC = ZoneInfo("UTC")


def test_export_headers_are_icat_servers() -> None:
    def header(name: str, every: bool = False) -> str:
        return export_layout(SCHEMA.entities[name], every).header()

    assert header("InvestigationType") == "InvestigationType(description:0,facility(name:1),name:2)"
    assert header("DataCollection") == "DataCollection(?:0,doi:1)"
    assert header("Job") == ("Job(?:0,application(facility(name:1),name:2,version:3),"
                             "arguments:4,inputDataCollection(?:5),outputDataCollection(?:6))")
    assert header("Rule") == "Rule(?:0,crudFlags:1,grouping(name:2),what:3)"
    assert header("DatasetParameter") == (
        "DatasetParameter(dataset(investigation(facility(name:0),name:1,visitId:2),name:3),"
        "dateTimeValue:4,error:5,numericValue:6,rangeBottom:7,rangeTop:8,stringValue:9,"
        "type(facility(name:10),name:11,units:12))")
    assert header("Facility", every=True) == (
        "Facility(createId:0,createTime:1,modId:2,modTime:3,daysUntilRelease:4,"
        "description:5,fullName:6,name:7,url:8)")
    assert header("DataCollectionDatafile", every=True) == (
        "DataCollectionDatafile(createId:0,createTime:1,modId:2,modTime:3,"
        "dataCollection(?:4),datafile(dataset(investigation(facility(name:5),name:6,"
        "visitId:7),name:8),name:9))")


def test_every_export_header_reads_back_as_itself() -> None:
    for entity in SCHEMA.entities.values():
        for every in (False, True):
            text = export_layout(entity, every).header()
            assert parse_header(text).header() == text


def test_headers_as_people_write_them() -> None:
    # Spaces, a missing comma, shared columns and a lookup by a field that is not a key.
    layout = parse_header("Dataset (investigation(facility(name:0), name:1, visitId:2) , "
                          "name:3, type(facility(name:0), name:4), complete:5 "
                          "sample(investigation(facility(name:0), name:1, visitId:2), name:6))")
    assert layout.width == 7
    assert [c.field.name for c in layout.columns] == ["name", "complete"]
    assert parse_header("Sample(type(molecularFormula:0), name:1)").references[0].indexes() == [0]


@pytest.mark.parametrize(("header", "message"), [
    ("Fred(name:0)", "Fred is not an ICAT entity"),
    ("Dataset(colour:0)", "colour is not a field of Dataset"),
    ("Dataset(datafiles:0)", "one-to-many"),
    ("Dataset(investigation:0)", "is a relationship"),
    ("Dataset(name(x:0))", "is an attribute"),
    ("Job(inputDataCollection(?:0, doi:1))", "either a label"),
    ("Dataset(name:0", "Unexpected end"),
    ("Dataset(name:x)", "A column number expected"),
])
def test_bad_headers_say_what_is_wrong(header: str, message: str) -> None:
    with pytest.raises(IcatError) as e:
        parse_header(header)
    assert e.value.type == ErrorType.BAD_PARAMETER
    assert message in e.value.message


def test_values_split_unescape_and_null() -> None:
    line = '"a\\tb \\"q\\" \\\\ \\n", 15 , NULL,null, "NULL", 1.5e3, true, NUMERIC'
    expected = ["a\tb \"q\" \\ \n", "15", None, None, "NULL", "1.5e3", "true", "NUMERIC"]
    assert split(line) == expected
    assert Splitter()(line) == expected
    simple = '"LSF","x,y",12,NULL,2016-03-30T09:05:55.000Z'
    assert Splitter()(simple) == ["LSF", "x,y", "12", None, "2016-03-30T09:05:55.000Z"]


@pytest.mark.parametrize("line", ['"a",', '"a" "b"', '"unterminated', '"a",,3', '"\\q"'])
def test_malformed_lines_are_refused(line: str) -> None:
    with pytest.raises(BadValue):
        Splitter()(line)


def test_strings_quote_back_to_themselves() -> None:
    text = 'tab\tnewline\nreturn\rquote"backslash\\formfeed\fbackspace\b'
    assert split(quote(text)) == [text]


def test_timestamps_with_and_without_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    assert parse_timestamp("2014-05-16T16:58:26.12+12:30", UTC) == \
        datetime(2014, 5, 16, 4, 28, 26, 120000)
    assert parse_timestamp("2014-05-16T06:05:26Z", berlin) == datetime(2014, 5, 16, 8, 5, 26)
    assert parse_timestamp("2014-05-16T06:05:26", berlin) == datetime(2014, 5, 16, 6, 5, 26)
    assert parse_timestamp("2014-05-16T06:05:26.1234567Z", UTC).microsecond == 123456
    with pytest.raises(BadValue):
        parse_timestamp("16/05/2014", UTC)
    assert timestamp_text(datetime(2014, 5, 16, 6, 5, 26, 120999), UTC) == \
        "2014-05-16T06:05:26.120Z"
    assert timestamp_text(datetime(2014, 7, 1, 12), berlin) == "2014-07-01T12:00:00.000+02:00"


def _records(text: str) -> list:  # type: ignore[type-arg]
    return list(read_records(io.BytesIO(text.encode()), UTC))


def test_a_dump_reads_into_records() -> None:
    recs = _records('# a comment\n\n1.0\n\nDataCollection(?:0, doi:1)\n"a", "doi:1"\n\n'
                    'Job(application(facility(name:0), name:1, version:2), '
                    'inputDataCollection(?:3), outputDataCollection(?:4))\n'
                    '"F", "prog", "1.2", "a", NULL\n')
    dc, job = recs
    assert (dc.entity.name, dc.label, dc.values, dc.line) == (
        "DataCollection", "a", {"doi": "doi:1"}, 6)
    assert job.refs["inputDataCollection"] == Label("DataCollection", "a")
    assert job.refs["outputDataCollection"] is None
    assert job.refs["application"] == Lookup.of("Application", {
        "facility": Lookup.of("Facility", {"name": "F"}), "name": "prog", "version": "1.2"})
    assert job.line == 9


def test_null_in_a_reference_makes_it_none() -> None:
    (ds,) = _records("1.0\nDataset(investigation(facility(name:0),name:1,visitId:2),name:3,"
                     "sample(investigation(facility(name:4),name:5,visitId:6),name:7))\n"
                     '"F","i","1","d",NULL,NA,NA,NA\n')
    assert ds.refs["sample"] is None
    assert ds.values == {"name": "d"}


@pytest.mark.parametrize(("text", "kind", "message", "line"), [
    ("", ErrorType.VALIDATION, "No version of file encountered", -1),
    ("# c\n4.3\n", ErrorType.VALIDATION, "Version of file must be 1.0 at line 2", 2),
    ("1.0\nInvestigation(startDate:0)\nyesterday\n", ErrorType.BAD_PARAMETER,
     "Investigation.startDate: a timestamp as 2014-05-16T06:05:26.120Z expected, not "
     "yesterday at line 3", 3),
    ("1.0\nFacility(name:0,fullName:1)\n\"x\"\n", ErrorType.BAD_PARAMETER,
     "data column 1 does not exist", 3),
    ("1.0\nFacility(daysUntilRelease:0)\n1.5\n", ErrorType.BAD_PARAMETER,
     "an integer expected, not 1.5 at line 3", 3),
    ("1.0\nParameterType(valueType:0)\nNUMBER\n", ErrorType.BAD_PARAMETER,
     "NUMBER is not one of DATE_AND_TIME, NUMERIC, STRING", 3),
])
def test_errors_name_the_line(text: str, kind: ErrorType, message: str, line: int) -> None:
    with pytest.raises(IcatError) as e:
        _records(text)
    assert e.value.type == kind
    assert message in e.value.message
    assert e.value.offset == line


def test_python_icat_keys() -> None:
    ref = key_ref("Dataset_investigation-(facility-(name-ESNF)_name-08100122=2DEF_visitId-"
                  "1=2E1=2DP)_name-e201215", UTC)
    assert ref == Lookup.of("Dataset", {
        "investigation": Lookup.of("Investigation", {
            "facility": Lookup.of("Facility", {"name": "ESNF"}),
            "name": "08100122-EF", "visitId": "1.1-P"}),
        "name": "e201215"})
    assert key_ref("User_name-db=2Fahau", UTC) == Lookup.of("User", {"name": "db/ahau"})
    assert key_ref("DataCollection_00000001", UTC) == Label("DataCollection",
                                                            "DataCollection_00000001")
    shift = key_ref("Shift_investigation-(facility-(name-F)_name-i_visitId-1)_startDate-"
                    "2010=2D10=2D09=2006=3A00=3A00=2B00=3A00_endDate-2010=2D10=2D13=2006="
                    "3A00=3A00=2B00=3A00", UTC)
    assert isinstance(shift, Lookup)
    assert dict(shift.fields)["startDate"] == datetime(2010, 10, 9, 6)


@pytest.mark.parametrize(("head", "kind"), [
    (b"# ICAT Export file written by db/root\n1.0\n", "dump"),
    (b"\n\n1.0\nFacility(name:0)\n", "dump"),
    (b'<?xml version="1.0" encoding="utf-8"?>\n<icatdata>', "xml"),
    (b"%YAML 1.1\n# Date: today\n---\nfacility:\n", "yaml"),
    (b"# comment\n---\nuser:\n", "yaml"),
])
def test_formats_are_told_apart(head: bytes, kind: str) -> None:
    assert kind_of(head) == kind
