"""The leader's maintenance services against PostgreSQL: each does its work, fenced by the term."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from river_supervisor.config import MaintenanceConfig
from river_supervisor.errors import NotLeader
from river_supervisor.maintenance import JobCleaner, JobRescuer, JobScheduler

from tests.integration.test_periodic import take_lease


def insert(db: psycopg.Connection, state: str, **columns: object) -> int:
    fields = {"kind": "m.job", "args": "{}", "state": state, **columns}
    names = ", ".join(fields)
    marks = ", ".join(["%s"] * len(fields))
    return db.execute(
        f"insert into river_job ({names}) values ({marks}) returning id", list(fields.values())
    ).fetchone()["id"]


def state(db: psycopg.Connection, job_id: int) -> str | None:
    row = db.execute("select state::text as s from river_job where id = %s", (job_id,)).fetchone()
    return row["s"] if row else None


def test_scheduler_makes_due_retries_available_and_leaves_future_ones(db: psycopg.Connection) -> None:
    now = datetime.now(UTC)
    due = insert(db, "retryable", scheduled_at=now - timedelta(seconds=1))
    later = insert(db, "scheduled", scheduled_at=now + timedelta(hours=1))
    JobScheduler().tick(db, take_lease(db, "node-a"), now)
    assert (state(db, due), state(db, later)) == ("available", "scheduled")


def test_rescuer_retries_jobs_stuck_running_past_rescue_after(db: psycopg.Connection) -> None:
    now = datetime.now(UTC)
    stuck = insert(db, "running", attempt=1, attempted_at=now - timedelta(hours=2))
    fresh = insert(db, "running", attempt=1, attempted_at=now - timedelta(minutes=1))
    JobRescuer(MaintenanceConfig(rescue_after=3600)).tick(db, take_lease(db, "node-a"), now)
    assert state(db, stuck) in {"available", "retryable"}
    assert state(db, fresh) == "running"
    row = db.execute("select errors, metadata from river_job where id = %s", (stuck,)).fetchone()
    assert row["metadata"]["river:rescue_count"] == 1 and len(row["errors"]) == 1


def test_cleaner_deletes_only_finalized_jobs_past_retention(db: psycopg.Connection) -> None:
    now = datetime.now(UTC)
    old = insert(db, "completed", finalized_at=now - timedelta(days=2))
    recent = insert(db, "completed", finalized_at=now - timedelta(hours=1))
    discarded = insert(db, "discarded", finalized_at=now - timedelta(days=2))
    JobCleaner(MaintenanceConfig()).tick(db, take_lease(db, "node-a"), now)
    assert (state(db, old), state(db, recent), state(db, discarded)) == (None, "completed", "discarded")


def test_a_superseded_term_changes_nothing(db: psycopg.Connection) -> None:
    now = datetime.now(UTC)
    due = insert(db, "retryable", scheduled_at=now - timedelta(seconds=1))
    stale = take_lease(db, "node-a")
    take_lease(db, "node-b")  # a takeover
    with pytest.raises(NotLeader):
        JobScheduler().tick(db, stale, now)
    assert state(db, due) == "retryable"
