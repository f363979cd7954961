"""The queue core: River job rows in, out and through their states.

Every function runs in the caller's connection. On an autocommit connection each call is its own
transaction; inside ``conn.transaction()`` the jobs and their ``river_insert`` notifications exist
only if the caller commits (River's ``InsertTx``). Each batch is one statement (``unnest`` arrays
or COPY), so no job costs a round trip of its own. SQL: ``sql/jobs.sql``.

Inserting lives in ``insert``, the row type in ``job_row``, outcomes and backoff in ``retry``, unique
keys in ``unique``, batching in ``completer``, what a dead worker's jobs become in ``fates``; the
public names are re-exported here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from . import db
from .completer import Completer
from .errors import JobNotFound, RiverSupervisorError, UsageError
from .fates import EndedWorker, end_sessions, running_by_worker
from .insert import InsertResult, JobSpec, insert, insert_many, insert_many_copy
from .job_row import JobRow, run_all, schema_guard
from .retry import (
    Cancelled,
    Completed,
    Failed,
    Interrupted,
    Outcome,
    Snoozed,
    attempt_error,
    format_time,
    outcome_name,
    record_lost,
    record_outcomes,
    rescue_from_dead_nodes,
    rescue_stuck,
    retry_delay,
)
from .unique import DEFAULT_UNIQUE_STATES, UniqueOpts

__all__ = [
    "DEFAULT_UNIQUE_STATES",
    "Cancelled",
    "Completed",
    "Completer",
    "EndedWorker",
    "Failed",
    "InsertResult",
    "Interrupted",
    "JobRow",
    "JobSpec",
    "Outcome",
    "Snoozed",
    "UniqueOpts",
    "attempt_error",
    "cancel",
    "channel",
    "clean",
    "count_listed",
    "end_sessions",
    "fetch",
    "fetch_for_work",
    "format_time",
    "get",
    "insert",
    "insert_many",
    "insert_many_copy",
    "list_jobs",
    "outcome_name",
    "queue_counts",
    "queue_gauges",
    "record_lost",
    "record_outcomes",
    "rescue_from_dead_nodes",
    "rescue_stuck",
    "retry",
    "retry_delay",
    "running_by_worker",
    "schedule_due",
]

log = logging.getLogger(__name__)

JOB_STATES = (
    "available",
    "cancelled",
    "completed",
    "discarded",
    "pending",
    "retryable",
    "running",
    "scheduled",
)
TOPIC_INSERT = "river_insert"
TOPIC_CONTROL = "river_control"


def channel(topic: str, schema: str) -> str:
    """River's notification channel for ``topic`` in ``schema``: ``<schema>.<topic>``."""
    return f"{schema}.{topic}"


# --- work ---------------------------------------------------------------------------------------


def fetch(
    conn: psycopg.Connection[Any],
    queue: str,
    limit: int,
    worker_id: str,
    kinds: Sequence[str] | None = None,
) -> list[JobRow]:
    """Take up to ``limit`` due jobs of ``queue`` for ``worker_id`` (River's JobGetAvailable).

    One statement: ``FOR UPDATE SKIP LOCKED`` in River's order (priority, scheduled_at, id), so
    concurrent fetchers never get the same job; the jobs come back running, attempt + 1.
    ``kinds``: only jobs of these kinds (``None``: any).
    """
    if limit <= 0:
        return []
    only = None if kinds is None else list(kinds)
    params = {"queue": queue, "limit": limit, "worker_id": worker_id, "kinds": only}
    rows = run_all(conn, "job_fetch", params)
    return [JobRow.from_row(r) for r in rows]


# Columns of ``fetch_for_work`` rows, in order (the statement's own names, checked on every fetch).
# args and metadata are JSON text.
WORK_COLUMNS = (
    "id",
    "kind",
    "args",
    "queue",
    "priority",
    "attempt",
    "max_attempts",
    "metadata",
    "scheduled_at",
    "tags",
    "errors_count",
)


def fetch_for_work(
    conn: psycopg.Connection[Any], queue: str, limit: int, worker_id: str, kinds: Sequence[str]
) -> list[tuple[Any, ...]]:
    """``fetch`` for a worker: the same jobs, as plain tuples of ``WORK_COLUMNS`` (cheap to decode:
    ``executor.decode`` reads them by column name).

    Only jobs of ``kinds`` (the kinds this host has handlers for): the others wait for a host that
    can run them.
    """
    if limit <= 0 or not kinds:
        return []
    params = {"queue": queue, "limit": limit, "worker_id": worker_id, "kinds": list(kinds)}
    try:
        with conn.cursor(row_factory=tuple_row) as cur:
            cur.execute(db.query("job_fetch_for_work"), params)
            if cur.description is not None and tuple(c.name for c in cur.description) != WORK_COLUMNS:
                raise RuntimeError(f"job_fetch_for_work returns {cur.description}, not {WORK_COLUMNS}")
            return cur.fetchall()
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedObject) as exc:
        raise schema_guard(exc) from exc  # type: ignore[arg-type]


# --- maintenance (called by the leader's services) -----------------------------------------------


def schedule_due(
    conn: psycopg.Connection[Any], now: datetime | None = None, limit: int = 10_000
) -> dict[str, int]:
    """River's JobScheduler: scheduled/retryable jobs due by ``now`` become available.

    A unique job whose key is now held elsewhere is discarded (metadata ``unique_key_conflict``).
    Sends ``river_insert`` per queue. Returns ``{queue: jobs made available}``.
    """
    rows = run_all(conn, "job_schedule", {"now": now or datetime.now(UTC), "limit": limit})
    made = {r["queue"]: int(r["jobs"]) for r in rows if r["state"] == "available"}
    discarded = sum(int(r["jobs"]) for r in rows if r["state"] == "discarded")
    if discarded:
        log.info(
            "discarded %d scheduled jobs on unique key conflicts",
            discarded,
            extra={"event": "queue.scheduler_discarded", "jobs": discarded},
        )
    return made


def clean(
    conn: psycopg.Connection[Any],
    completed_before: datetime,
    cancelled_before: datetime,
    discarded_before: datetime,
    limit: int = 10_000,
) -> int:
    """River's JobCleaner: delete finalized jobs older than their retention; returns how many."""
    params = {
        "completed_before": completed_before,
        "cancelled_before": cancelled_before,
        "discarded_before": discarded_before,
        "limit": limit,
    }
    return db.execute(conn, "job_clean", params)


# --- operator actions ---------------------------------------------------------------------------


def get(conn: psycopg.Connection[Any], job_id: int) -> JobRow:
    rows = run_all(conn, "job_get", {"id": job_id})
    if not rows:
        raise JobNotFound(job_id)
    return JobRow.from_row(rows[0])


def list_jobs(
    conn: psycopg.Connection[Any],
    *,
    states: Sequence[str] = (),
    kinds: Sequence[str] = (),
    queues: Sequence[str] = (),
    limit: int = 50,
    after_id: int | None = None,
    before_id: int | None = None,
    newest_first: bool = False,
) -> list[JobRow]:
    """Jobs in id order (``newest_first``: descending), filtered (empty filter: any), between the
    ids ``after_id`` and ``before_id`` (exclusive): page on with the last id seen."""
    params = _list_params(states, kinds, queues, after_id, before_id)
    rows = run_all(conn, "job_list_newest" if newest_first else "job_list", {**params, "limit": limit})
    return [JobRow.from_row(r) for r in rows]


def count_listed(
    conn: psycopg.Connection[Any],
    *,
    states: Sequence[str] = (),
    kinds: Sequence[str] = (),
    queues: Sequence[str] = (),
    after_id: int | None = None,
    before_id: int | None = None,
    cap: int = 10_000,
) -> int:
    """How many jobs ``list_jobs`` with these filters and bounds would find, at most ``cap``."""
    params = _list_params(states, kinds, queues, after_id, before_id)
    return int(run_all(conn, "job_count_listed", {**params, "cap": cap})[0]["jobs"])


def _list_params(
    states: Sequence[str],
    kinds: Sequence[str],
    queues: Sequence[str],
    after_id: int | None,
    before_id: int | None,
) -> dict[str, Any]:
    unknown = [s for s in states if s not in JOB_STATES]
    if unknown:
        raise UsageError(f"state: unknown job state {unknown[0]!r} (one of {', '.join(JOB_STATES)})")
    return {
        "states": list(states),
        "kinds": list(kinds),
        "queues": list(queues),
        "after_id": after_id,
        "before_id": before_id,
    }


def retry(conn: psycopg.Connection[Any], job_id: int) -> JobRow:
    """River's JobRetry: any state but running becomes available now (a running job is unchanged)."""
    try:
        rows = run_all(conn, "job_retry", {"id": job_id})
    except psycopg.errors.UniqueViolation as exc:
        raise RiverSupervisorError(
            f"job {job_id}: cannot retry, another job holds its unique key in a unique state"
        ) from exc
    if not rows:
        raise JobNotFound(job_id)
    return JobRow.from_row(rows[0])


def cancel(conn: psycopg.Connection[Any], job_id: int) -> JobRow:
    """River's JobCancel: a job not yet finalized is cancelled now, or, if running, marked
    ``cancel_attempted_at`` and its worker told on ``river_control``."""
    rows = run_all(conn, "job_cancel", {"id": job_id})
    if not rows:
        raise JobNotFound(job_id)
    return JobRow.from_row(rows[0])


def queue_counts(conn: psycopg.Connection[Any]) -> dict[str, dict[str, int]]:
    """``{queue: {state: jobs}}`` for the states present."""
    counts: dict[str, dict[str, int]] = {}
    for row in run_all(conn, "job_count_by_queue_and_state", {}):
        counts.setdefault(row["queue"], {})[row["state"]] = int(row["jobs"])
    return counts


def queue_gauges(conn: psycopg.Connection[Any]) -> dict[str, dict[str, float]]:
    """``{queue: {"available", "running", "retryable", "oldest_available_age"}}`` for the queues with
    such jobs (seconds; 0 when none is available), as the metrics endpoint shows them."""
    return {
        row["queue"]: {key: float(value) for key, value in row.items() if key != "queue"}
        for row in run_all(conn, "job_queue_gauges", {})
    }
