"""Durable jobs: CAIRN_JOB, and the two-level storage queue (CAIRN_IDS_JOB) moved into it.

Revision ID: cairn_0004
Revises: cairn_0003
"""

import json
from datetime import UTC, datetime

from alembic import op
from sqlalchemy import Connection, inspect, select

from cairn.db.legacy import IDS_JOB
from cairn.db.tables import TABLES

revision = "cairn_0004"
down_revision = "cairn_0003"
branch_labels = None
depends_on = None

JOB = TABLES.job
#: The job kind of two-level storage (cairn.ids.twolevel_queue), as it was at this revision.
KIND = "ids.twolevel"


def _names(bind: Connection) -> set[str]:
    return {name.upper() for name in inspect(bind).get_table_names()}


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def upgrade() -> None:
    bind = op.get_bind()
    existing = _names(bind)
    if JOB.name.upper() not in existing:  # absent-only, as cairn_0002
        JOB.create(bind)
    if IDS_JOB.name.upper() not in existing:
        return
    now = _now()
    rows = []
    for r in bind.execute(select(IDS_JOB).order_by(IDS_JOB.c.id)):
        # What a process was running goes first (it never finished), then what was queued
        # behind it: the order in which the queue merges requests of one unit.
        states = [(r.running, now)] if r.running else []
        if r.state != "NONE":
            states.append((r.state, r.not_before))
        for state, not_before in states:
            payload = {"unit": r.unit, "id": r.unit_id, "state": state,
                       "location": r.location}
            rows.append({"kind": KIND, "key": f"{r.unit}:{r.unit_id}", "state": "QUEUED",
                         "payload": json.dumps(payload, separators=(",", ":"),
                                               sort_keys=True),
                         "priority": 0, "not_before": not_before, "created": r.created,
                         "attempts": 0, "max_attempts": None, "cancel": False,
                         "version": 0})
    if rows:
        bind.execute(JOB.insert(), rows)
    IDS_JOB.drop(bind)


def downgrade() -> None:
    from cairn.ids.twolevel_queue import StorageUnit, merge_states

    bind = op.get_bind()
    IDS_JOB.create(bind)
    by_unit: dict[tuple[str, int], dict[str, object]] = {}
    q = (select(JOB).where(JOB.c.kind == KIND, JOB.c.state.in_(["QUEUED", "RUNNING"]))
         .order_by(JOB.c.id))
    for r in bind.execute(q):
        p = json.loads(r.payload)
        unit = (p["unit"], int(p["id"]))
        row = by_unit.setdefault(unit, {"unit": p["unit"], "unit_id": unit[1], "state": None,
                                        "not_before": r.not_before, "created": r.created,
                                        "location": p.get("location")})
        merged = merge_states(StorageUnit(p["unit"]), row["state"], p["state"])  # type: ignore[arg-type]
        row["state"] = merged
    rows = [{**row, "state": row["state"] or "NONE", "running": None, "claimed_by": None,
             "claimed_at": None} for row in by_unit.values() if row["state"] is not None]
    if rows:
        bind.execute(IDS_JOB.insert(), rows)
    JOB.drop(bind)
