"""The SQL tables derived from the declaration follow icat.server's layout, now and at 6.1."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import MetaData, String, Table, UniqueConstraint
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.schema import CreateTable

from cairn.db import migrate
from cairn.db.tables import TABLES, build_tables
from cairn.schema import SCHEMA, Schema

NO_KEY = {"DATACOLLECTION", "JOB", "PUBLICATION", "RULE_", "STUDY"}


def unique_columns(table: Table) -> dict[str, list[str]]:
    return {str(u.name): [c.name for c in u.columns]
            for u in table.constraints if isinstance(u, UniqueConstraint)}


def fk_target(table: Table, column: str) -> str:
    (fk,) = [fk for fk in table.foreign_key_constraints if [c.name for c in fk.columns] == [column]]
    return fk.referred_table.name


def test_53_entities_one_table_each() -> None:
    assert len(SCHEMA.entities) == 53
    assert len(TABLES.entity) == 53
    names = {t.name for t in TABLES.entity.values()}
    assert len(names) == 53
    assert all(n == n.upper() for n in names)
    assert {"USER_", "RULE_", "GROUPING", "DATAFILE", "SUBJECT"} <= names
    assert "USER" not in names and "RULE" not in names
    assert TABLES["User"].name == "USER_" and TABLES["Rule"].name == "RULE_"
    assert TABLES.session.name == "SESSION_" and TABLES.passwd.name == "PASSWD"


def test_identifiers_are_unquoted_except_shift_comment() -> None:
    comment = TABLES["Shift"].c.comment
    assert comment.name == "COMMENT" and comment.name.quote is True
    ddl = str(CreateTable(TABLES["Shift"]).compile(dialect=postgresql.dialect()))
    assert '"COMMENT" VARCHAR' in ddl
    assert "CREATE TABLE SHIFT (" in ddl and '"STARTDATE"' not in ddl  # the rest fold to lower
    assert "`COMMENT`" in str(CreateTable(TABLES["Shift"]).compile(dialect=mysql.dialect()))
    quoted = [(t.name, c.name) for t in TABLES.entity.values() for c in t.columns
              if c.name.quote]
    assert quoted == [("SHIFT", "COMMENT")]


def test_key_is_unique_constraint_unq_table_0_in_key_order() -> None:
    assert unique_columns(TABLES["InvestigationUser"]) == {
        "UNQ_INVESTIGATIONUSER_0": ["USER_ID", "INVESTIGATION_ID", "ROLE"]}
    assert unique_columns(TABLES["PermissibleStringValue"]) == {
        "UNQ_PERMISSIBLESTRINGVALUE_0": ["VALUE", "PARAMETERTYPE_ID"]}
    assert unique_columns(TABLES["Shift"]) == {
        "UNQ_SHIFT_0": ["INVESTIGATION_ID", "STARTDATE", "ENDDATE"]}
    for name, entity in SCHEMA.entities.items():
        table = TABLES[name]
        if table.name in NO_KEY:
            assert entity.key == () and unique_columns(table) == {}
            continue
        wanted = [entity.fields[f].column for f in entity.key]
        assert unique_columns(table) == {f"UNQ_{table.name}_0": wanted}
        assert all(not table.c[f].nullable for f in entity.key), name  # no NULL loophole


@pytest.mark.parametrize(("entity", "column", "target"), [
    ("Datafile", "DATAFILEFORMAT_ID", "DATAFILEFORMAT"),
    ("Sample", "SAMPLETYPE_ID", "SAMPLETYPE"),
    ("Dataset", "TYPE_ID", "DATASETTYPE"),
    ("UserGroup", "GROUP_ID", "GROUPING"),
    ("InvestigationGroup", "GROUP_ID", "GROUPING"),
    ("Rule", "GROUPING_ID", "GROUPING"),
    ("UserGroup", "USER_ID", "USER_"),
    ("DatasetParameter", "PARAMETER_TYPE_ID", "PARAMETERTYPE"),
    ("DatafileParameter", "PARAMETER_TYPE_ID", "PARAMETERTYPE"),
    ("PermissibleStringValue", "PARAMETERTYPE_ID", "PARAMETERTYPE"),
    ("Affiliation", "DATAPUBLICATIONUSER_ID", "DATAPUBLICATIONUSER"),
    ("DataPublication", "DATACOLLECTION_ID", "DATACOLLECTION"),
    ("RelatedDatafile", "SOURCE_DATAFILE_ID", "DATAFILE"),
    ("InvestigationFunding", "FUNDING_ID", "FUNDINGREFERENCE"),
])
def test_foreign_key_columns(entity: str, column: str, target: str) -> None:
    table = TABLES[entity]
    assert fk_target(table, column) == target
    fk = next(fk for fk in table.foreign_key_constraints if fk.columns[0].name == column)
    assert fk.name == f"FK_{table.name}_{column}"
    assert fk.ondelete is None  # icat.server cascades in code, never in the database


def test_irregular_column_names_and_types() -> None:
    assert TABLES["Dataset"].c.endDate.name == "END_DATE"
    assert TABLES["Dataset"].c.startDate.name == "STARTDATE"
    assert TABLES["Investigation"].c.endDate.name == "ENDDATE"
    assert TABLES["DataPublicationDate"].c.date.name == "DATE_"
    assert TABLES["DatasetParameter"].c.stringValue.name == "STRING_VALUE"
    assert TABLES["DatasetParameter"].c.stringValue.type.length == 4000
    assert TABLES["Rule"].c.what.type.length == 1024
    assert TABLES["Datafile"].c.location.type.length == 511
    assert [c.name for c in TABLES["Datafile"].indexes
            if c.name == "INDEX_DATAFILE_location"] == ["INDEX_DATAFILE_location"]
    for table in TABLES.entity.values():
        assert [c.name for c in table.primary_key.columns] == ["ID"]
        cols = {c.name: c for c in table.columns}
        assert [cols[c].nullable for c in ("CREATE_ID", "CREATE_TIME", "MOD_ID", "MOD_TIME")] \
            == [False] * 4


def test_model_at_6_1() -> None:
    old = SCHEMA.at_version("6.1")
    assert len(old.entities) == 52
    assert "Subject" not in old.entities
    assert "startDate" not in old.entities["Instrument"].fields
    assert "endDate" not in old.entities["Instrument"].fields
    assert "internalId" not in old.entities["DataPublication"].fields
    assert "subjects" not in old.entities["DataPublication"].fields
    assert "acknowledgement" not in old.entities["FundingReference"].fields
    assert old.entities["Datafile"].fields["location"].length == 255
    assert old.entities["Dataset"].fields["location"].length == 255
    tables = build_tables(old, MetaData())
    assert tables["Datafile"].c.location.type.length == 255
    assert "STARTDATE" not in tables["Instrument"].c
    # Nothing else differs: what did not change in 6.2 is identical.
    assert old.entities["Investigation"] == SCHEMA.entities["Investigation"]


def _changes(old: str | None, new: str) -> set[tuple[str, str, str | None, int | None]]:
    out: set[tuple[str, str, str | None, int | None]] = set()
    for c in migrate.model_changes(migrate.tables_at(old) if old else None, migrate.tables_at(new)):
        if isinstance(c, migrate.AddTable):
            out.add(("table", c.table.name, None, None))
        elif isinstance(c, migrate.AddColumn):
            out.add(("column", c.table.name, c.column.name, None))
        else:
            assert isinstance(c.column.type, String)
            out.add(("widen", c.table.name, c.column.name, c.column.type.length))
    return out


def test_changes_6_1_to_6_2_are_derived_from_the_declaration() -> None:
    assert _changes("6.1", "6.2") == {
        ("table", "SUBJECT", None, None),
        ("column", "INSTRUMENT", "STARTDATE", None),
        ("column", "INSTRUMENT", "ENDDATE", None),
        ("column", "DATAPUBLICATION", "INTERNALID", None),
        ("column", "FUNDINGREFERENCE", "ACKNOWLEDGEMENT", None),
        ("widen", "DATAFILE", "LOCATION", 511),
        ("widen", "DATASET", "LOCATION", 511),
    }
    ack = next(c for c in migrate.model_changes(migrate.tables_at("6.1"), migrate.tables_at("6.2"))
               if isinstance(c, migrate.AddColumn) and c.column.name == "ACKNOWLEDGEMENT")
    assert ack.column.type.length == 1023 and ack.column.nullable


def test_changes_from_nothing_create_every_table_and_current_model_is_6_2() -> None:
    created = _changes(None, "6.1")
    assert {kind for kind, *_ in created} == {"table"}
    assert len(created) == 53  # 52 entities + SESSION_
    assert migrate.model_changes(migrate.tables_at("6.2"), TABLES) == []


def _changed(entity: str, field: str, **values: object) -> Schema:
    e = SCHEMA.entities[entity]
    f = dataclasses.replace(e.fields[field], **values)  # type: ignore[arg-type]
    return dataclasses.replace(SCHEMA, entities={
        **SCHEMA.entities, entity: dataclasses.replace(e, fields={**e.fields, field: f})})


@pytest.mark.parametrize(("schema", "message"), [
    (_changed("Datafile", "location", length=100), "narrowed"),
    (_changed("Datafile", "doi", required=True), "nullability"),
    (_changed("Datafile", "fileSize", type="Double"), "type"),
])
def test_changes_that_need_a_hand_written_step_are_refused(schema: Schema, message: str) -> None:
    with pytest.raises(migrate.UnsupportedChange, match=message):
        migrate.model_changes(TABLES, build_tables(schema, MetaData()))


def test_new_not_null_column_and_removed_table_are_refused() -> None:
    with pytest.raises(migrate.UnsupportedChange, match="NOT NULL"):
        migrate.model_changes(migrate.tables_at("6.1"),
                              build_tables(_changed("Instrument", "startDate", required=True),
                                           MetaData()))
    with pytest.raises(migrate.UnsupportedChange, match="SUBJECT"):
        migrate.model_changes(TABLES, migrate.tables_at("6.1"))
