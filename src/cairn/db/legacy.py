"""Tables Cairn no longer uses, declared as they were, for the migrations that made them and
the one that moves their rows on (a revision must keep working after the table is gone
from :mod:`cairn.db.tables`)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

from cairn.db.tables import ID_TYPE, ident

METADATA = MetaData()

#: The two-level storage queue of cairn_0002 (and cairn_0003's RUNNING and LOCATION), one
#: row per storage unit; cairn_0004 moves its rows into CAIRN_JOB.
IDS_JOB = Table(
    ident("CAIRN_IDS_JOB"), METADATA,
    Column(ident("ID"), ID_TYPE, Identity(start=1), primary_key=True, autoincrement=True,
           key="id"),
    Column(ident("UNIT"), String(8), nullable=False, key="unit"),  # DATASET | DATAFILE
    Column(ident("UNIT_ID"), BigInteger(), nullable=False, key="unit_id"),
    # The queued request (a state of ids.server's machine), NONE when nothing is queued
    # behind the running job.
    Column(ident("STATE"), String(32), nullable=False, key="state"),
    Column(ident("NOT_BEFORE"), DateTime(), nullable=False, key="not_before"),
    Column(ident("CLAIMED_BY"), String(64), key="claimed_by"),
    Column(ident("CLAIMED_AT"), DateTime(), key="claimed_at"),
    Column(ident("CREATED"), DateTime(), nullable=False, key="created"),
    Column(ident("RUNNING"), String(32), key="running"),  # cairn_0003
    Column(ident("LOCATION"), String(255), key="location"),  # cairn_0003
    UniqueConstraint("unit", "unit_id", name=ident("UNQ_CAIRN_IDS_JOB_0")))
