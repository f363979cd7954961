"""What happens to a job after its worker ran it: outcomes, River's retry backoff, attempt errors.

Outcomes are recorded in batches, one statement per batch (``job_set_state_if_running_many``;
``job_set_complete_if_running_many`` for plain completions), and only on rows that are still
``running``, as River's ``JobSetStateIfRunningMany`` does: a job that an operator or the rescuer
already moved on is left alone. A job with a pending remote cancel
(``metadata.cancel_attempted_at``) that would run again is cancelled instead.

Error texts, traces and outputs come from user code: what PostgreSQL cannot store (a NUL byte, which
``text`` and ``jsonb`` refuse, and lone surrogates, which are not UTF-8) is replaced by U+FFFD
before it is written (``storable``), so one handler's odd message cannot fail a batch.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import groupby
from typing import Any

import psycopg

from . import db
from .storable import storable, storable_json

# River's scheduler interval: a job due within this many seconds goes straight to 'available'.
SCHEDULER_INTERVAL = 5.0
RETRY_JITTER = 0.10
MAX_RETRY_DELAY = 292 * 365 * 86400.0  # Go's maximum time.Duration, where River's policy caps
STUCK_JOB_ERROR = "Stuck job rescued by JobRescuer"


@dataclass(frozen=True, slots=True)
class Completed:
    job_id: int
    output: str | None = None  # the handler's result as JSON text: metadata "output", as River records it


@dataclass(frozen=True, slots=True)
class Failed:
    """The handler raised: retry with backoff, or discard once attempts are exhausted."""

    job_id: int
    attempt: int
    max_attempts: int
    error: str
    trace: str | None = None
    errors_count: int = 0  # errors already on the row; the backoff grows with it


@dataclass(frozen=True, slots=True)
class Snoozed:
    """Run again in ``seconds`` without using up the attempt (River's JobSnooze)."""

    job_id: int
    seconds: float


@dataclass(frozen=True, slots=True)
class Cancelled:
    """The handler raised JobCancel: finalized as cancelled whatever attempts remain."""

    job_id: int
    attempt: int
    error: str


@dataclass(frozen=True, slots=True)
class Interrupted:
    """Put back to available without using up the attempt and without an error (shutdown)."""

    job_id: int


Outcome = Completed | Failed | Snoozed | Cancelled | Interrupted


@dataclass(frozen=True, slots=True)
class _Lost:
    """A job taken from its worker (process died, timed out, stuck): retry policy, error recorded."""

    job_id: int
    attempt: int
    max_attempts: int
    error: str
    errors_count: int
    rescue: bool


def outcome_name(outcome: Outcome) -> str:
    """What an outcome does to its job, as the metrics label it: completed, retried, discarded,
    cancelled, snoozed or interrupted (the same rule as ``_plan``'s states)."""
    if isinstance(outcome, Failed):
        return "discarded" if outcome.attempt >= outcome.max_attempts else "retried"
    return _OUTCOME_NAMES[type(outcome)]


_OUTCOME_NAMES: dict[type, str] = {
    Completed: "completed",
    Snoozed: "snoozed",
    Cancelled: "cancelled",
    Interrupted: "interrupted",
}


def retry_delay(errors_count: int, rng: random.Random | None = None) -> float:
    """River's default retry policy: ``(errors_count + 1) ** 4`` seconds, ±10 % jitter.

    ``errors_count`` is the number of errors already on the row, so the first failure waits about
    1 s, then 16 s, 81 s, 256 s, ... (River: ``errorCount = len(job.errors) + 1``).
    """
    base = min(float(errors_count + 1) ** 4, MAX_RETRY_DELAY)
    jitter = (rng or random).uniform(-RETRY_JITTER, RETRY_JITTER)
    return base * (1 + jitter)


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC as Go's ``time.RFC3339Nano`` writes it: fraction trimmed, ``Z``."""
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def attempt_error(at: datetime, attempt: int, error: str, trace: str | None) -> dict[str, Any]:
    """River's ``AttemptError`` as stored in ``river_job.errors`` (texts made ``storable``)."""
    return {
        "at": format_time(at),
        "attempt": attempt,
        "error": storable(error),
        "trace": storable(trace or ""),
    }


def _plan(outcome: Outcome | _Lost, now: datetime) -> tuple[Any, ...]:
    """(id, state, attempt_delta, error, finalize, scheduled_at, snooze, rescue, output) for one outcome."""
    if isinstance(outcome, Completed):
        output = None if outcome.output is None else storable_json(outcome.output)
        return (outcome.job_id, "completed", 0, None, True, None, False, False, output)
    if isinstance(outcome, Failed | _Lost):
        trace = outcome.trace if isinstance(outcome, Failed) else None
        error = json.dumps(attempt_error(now, outcome.attempt, outcome.error, trace))
        rescue = isinstance(outcome, _Lost) and outcome.rescue
        if outcome.attempt >= outcome.max_attempts:
            return (outcome.job_id, "discarded", 0, error, True, None, False, rescue, None)
        delay = retry_delay(outcome.errors_count)
        state = "available" if delay <= SCHEDULER_INTERVAL else "retryable"
        return (outcome.job_id, state, 0, error, False, now + timedelta(seconds=delay), False, rescue, None)
    if isinstance(outcome, Snoozed):
        state = "available" if outcome.seconds <= SCHEDULER_INTERVAL else "scheduled"
        at = now + timedelta(seconds=max(outcome.seconds, 0.0))
        return (outcome.job_id, state, -1, None, False, at, True, False, None)
    if isinstance(outcome, Cancelled):
        error = json.dumps(attempt_error(now, outcome.attempt, outcome.error, None))
        return (outcome.job_id, "cancelled", 0, error, True, None, False, False, None)
    if isinstance(outcome, Interrupted):
        return (outcome.job_id, "available", -1, None, False, None, False, False, None)
    raise TypeError(f"not a job outcome: {outcome!r}")


_COLUMNS = ("id", "state", "attempt_delta", "error", "finalize", "scheduled_at", "snooze", "rescue", "output")


def _id_array(ids: Sequence[int]) -> str:
    """A ``bigint[]`` literal: far cheaper to send than a list dumped element by element."""
    return "{" + ",".join(map(str, ids)) + "}"


def record_outcomes(
    conn: psycopg.Connection[Any], outcomes: Sequence[Outcome | _Lost], now: datetime | None = None
) -> int:
    """Write a batch of outcomes; return how many jobs changed (still running).

    Plain completions (most of any batch) go through ``job_set_complete_if_running_many``, one id
    array; any other outcome through ``job_set_state_if_running_many``. A batch with both sends the
    two statements in one transaction and one round trip (a pipeline).
    """
    if not outcomes:
        return 0
    completed = [o.job_id for o in outcomes if type(o) is Completed and o.output is None]
    if len(completed) == len(outcomes):
        return db.execute(conn, "job_set_complete_if_running_many", {"id": _id_array(completed), "now": now})
    if not completed:
        return _record_states(conn, outcomes, now)
    others = [o for o in outcomes if type(o) is not Completed or o.output is not None]
    with conn.pipeline(), conn.transaction(), conn.cursor() as complete, conn.cursor() as general:
        complete.execute(
            db.query("job_set_complete_if_running_many"), {"id": _id_array(completed), "now": now}
        )
        general.execute(db.query("job_set_state_if_running_many"), _state_params(others, now))
    return complete.rowcount + general.rowcount


def _state_params(outcomes: Sequence[Outcome | _Lost], now: datetime | None) -> dict[str, Any]:
    moment = now or datetime.now(UTC)
    plans = [_plan(outcome, moment) for outcome in outcomes]
    params: dict[str, Any] = {name: [plan[i] for plan in plans] for i, name in enumerate(_COLUMNS)}
    params["now"] = now
    return params


def _record_states(
    conn: psycopg.Connection[Any], outcomes: Sequence[Outcome | _Lost], now: datetime | None
) -> int:
    return db.execute(conn, "job_set_state_if_running_many", _state_params(outcomes, now))


def _lose(
    conn: psycopg.Connection[Any], rows: list[dict[str, Any]], error: str, rescue: bool, now: datetime | None
) -> list[int]:
    lost = [_Lost(r["id"], r["attempt"], r["max_attempts"], error, r["errors_count"], rescue) for r in rows]
    record_outcomes(conn, lost, now)
    return [r["id"] for r in rows]


def record_lost(
    conn: psycopg.Connection[Any], job_ids: Sequence[int], error: str, now: datetime | None = None
) -> int:
    """Jobs whose worker died or timed out: append ``error``, then retry per policy or discard.

    Only rows still running change. Two statements in one transaction (lock, then write).
    """
    if not job_ids:
        return 0
    with conn.transaction():
        rows = db.fetch_all(conn, "job_select_running", {"ids": list(job_ids)})
        return len(_lose(conn, rows, error, False, now))


def rescue_stuck(
    conn: psycopg.Connection[Any], stuck_before: datetime, limit: int = 1000, now: datetime | None = None
) -> list[int]:
    """River's JobRescuer: running jobs attempted before ``stuck_before`` get River's stuck-job error,
    ``river:rescue_count`` + 1, and are retried per policy or discarded (cancelled if a cancel was
    attempted). Returns the ids rescued."""
    with conn.transaction():
        rows = db.fetch_all(conn, "job_select_stuck", {"stuck_before": stuck_before, "limit": limit})
        return _lose(conn, rows, STUCK_JOB_ERROR, True, now)


def rescue_from_dead_nodes(
    conn: psycopg.Connection[Any],
    cluster: str,
    dead_after: float,
    limit: int = 1000,
    now: datetime | None = None,
    *,
    judge_silence: bool = True,
) -> list[int]:
    """Running jobs held by a node of ``cluster`` that stopped heartbeating ``dead_after`` seconds
    ago (a host that crashed or lost power), or that was marked stopped: each gets an error naming
    the host and ``river:rescue_count`` + 1, and is retried per policy or discarded. With
    ``judge_silence`` false only stopped nodes count (the caller cannot tell silence from a database
    that took nobody's heartbeat). Returns the ids rescued."""
    rescued: list[int] = []
    with conn.transaction():
        rows = db.fetch_all(
            conn,
            "job_select_running_on_dead_nodes",
            {
                "cluster": cluster,
                "dead_after": float(dead_after),
                "judge_silence": judge_silence,
                "limit": limit,
            },
        )
        for (node, last_seen), group in groupby(rows, key=lambda r: (r["node"], r["last_seen"])):
            error = f"host {node} stopped: its supervisor was last heard from at {format_time(last_seen)}"
            rescued += _lose(conn, list(group), error, True, now)
    return rescued
