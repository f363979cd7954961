"""The queue core: River job rows in, out and through their states.

Every function runs in the caller's connection. On an autocommit connection each call is its own
transaction; inside ``conn.transaction()`` the jobs and their ``river_insert`` notifications exist
only if the caller commits (River's ``InsertTx``). Each batch is one statement (``unnest`` arrays
or COPY), so no job costs a round trip of its own. SQL: ``sql/jobs.sql``.

Outcomes and backoff live in ``retry``, unique keys in ``unique``, batching in ``completer``; the
public names are re-exported here.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.copy import QueuedLibpqWriter

from . import db
from .completer import Completer
from .errors import JobNotFound, RiverSupervisorError, SchemaMissing, UsageError
from .retry import (
    Cancelled,
    Completed,
    Failed,
    Interrupted,
    Outcome,
    Snoozed,
    attempt_error,
    format_time,
    record_lost,
    record_outcomes,
    rescue_stuck,
    retry_delay,
)
from .unique import DEFAULT_UNIQUE_STATES, UniqueOpts, unique_key

__all__ = [
    "DEFAULT_UNIQUE_STATES",
    "Cancelled",
    "Completed",
    "Completer",
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
    "fetch",
    "format_time",
    "get",
    "insert",
    "insert_many",
    "insert_many_copy",
    "list_jobs",
    "queue_counts",
    "record_lost",
    "record_outcomes",
    "rescue_stuck",
    "retry",
    "retry_delay",
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
# River's patterns (Go's \w is ASCII): kinds since v0.22, tags without commas.
_KIND_RE = re.compile(r"\A\w[\w\-\[\]<>/.·:+]+\Z", re.ASCII)
_TAG_RE = re.compile(r"\A\w[\w\-]+\w\Z", re.ASCII)
_QUEUE_RE = re.compile(r"\A[^\s\\]+\Z")  # no whitespace or backslash: safe in COPY text rows
_JSON = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


_VALID_KINDS: set[str] = set()
_VALID_QUEUES: set[str] = set()
_CACHE_LIMIT = 10_000


def _check_kind(kind: object) -> None:
    if not isinstance(kind, str) or len(kind) >= 128 or not _KIND_RE.match(kind):
        raise UsageError(f"kind: {kind!r} is not a valid job kind (River's pattern, < 128 chars)")
    if len(_VALID_KINDS) < _CACHE_LIMIT:
        _VALID_KINDS.add(kind)


def _check_queue(name: object) -> None:
    if not isinstance(name, str) or not 0 < len(name) < 128 or not _QUEUE_RE.match(name):
        raise UsageError(f"queue: {name!r} must be 1-127 printable characters without spaces")
    if len(_VALID_QUEUES) < _CACHE_LIMIT:
        _VALID_QUEUES.add(name)


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A job to insert, with River's defaults."""

    kind: str
    args: Mapping[str, Any] = field(default_factory=dict)
    queue: str = "default"
    priority: int = 1
    max_attempts: int = 25
    scheduled_at: datetime | None = None
    tags: Sequence[str] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    unique: UniqueOpts | None = None
    pending: bool = False

    def validate(self) -> None:
        """Raise ``UsageError`` naming the first field River would refuse."""
        # Fast path first: bulk inserts validate every spec (``type(x) is int`` also refuses bool).
        if self.kind not in _VALID_KINDS:
            _check_kind(self.kind)
        if type(self.args) is not dict and not isinstance(self.args, Mapping):
            raise UsageError(f"args: must be a JSON object, got {type(self.args).__name__}")
        if self.queue not in _VALID_QUEUES:
            _check_queue(self.queue)
        if type(self.priority) is not int or not 1 <= self.priority <= 4:
            raise UsageError(f"priority: must be 1 to 4, got {self.priority!r}")
        if type(self.max_attempts) is not int or not 1 <= self.max_attempts <= 32767:
            raise UsageError(f"max_attempts: must be 1 to 32767, got {self.max_attempts!r}")
        if self.scheduled_at is not None and self.scheduled_at.tzinfo is None:
            raise UsageError("scheduled_at: must be timezone-aware")
        if isinstance(self.tags, str):
            raise UsageError("tags: must be a list of strings, not a string")
        for tag in self.tags:
            if not isinstance(tag, str) or len(tag) > 255 or not _TAG_RE.match(tag):
                raise UsageError(f"tags: {tag!r} is not a valid tag (letters, digits, _ and -; no commas)")
        if not isinstance(self.metadata, Mapping):
            raise UsageError(f"metadata: must be a JSON object, got {type(self.metadata).__name__}")
        if self.unique is not None:
            self.unique.validate()


@dataclass(frozen=True, slots=True)
class JobRow:
    """A ``river_job`` row."""

    id: int
    kind: str
    args: dict[str, Any]
    queue: str
    priority: int
    state: str
    attempt: int
    max_attempts: int
    attempted_at: datetime | None
    attempted_by: list[str]
    created_at: datetime
    finalized_at: datetime | None
    scheduled_at: datetime
    errors: list[dict[str, Any]]
    metadata: dict[str, Any]
    tags: list[str]
    unique_key: bytes | None
    unique_states: int | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> JobRow:
        return cls(
            id=row["id"],
            kind=row["kind"],
            args=row["args"] if row["args"] is not None else {},
            queue=row["queue"],
            priority=row["priority"],
            state=row["state"],
            attempt=row["attempt"],
            max_attempts=row["max_attempts"],
            attempted_at=row["attempted_at"],
            attempted_by=list(row["attempted_by"] or []),
            created_at=row["created_at"],
            finalized_at=row["finalized_at"],
            scheduled_at=row["scheduled_at"],
            errors=list(row["errors"] or []),
            metadata=row["metadata"] if row["metadata"] is not None else {},
            tags=list(row["tags"] or []),
            unique_key=bytes(row["unique_key"]) if row["unique_key"] is not None else None,
            unique_states=row["unique_states_int"],
        )

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values: ISO 8601 times with offset, the unique key in hex."""
        out: dict[str, Any] = {}
        for name in self.__slots__:  # type: ignore[attr-defined]
            value = getattr(self, name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, bytes):
                value = value.hex()
            out[name] = value
        return out


@dataclass(slots=True)
class InsertResult:
    job: JobRow
    unique_skipped_as_duplicate: bool


def channel(topic: str, schema: str) -> str:
    """River's notification channel for ``topic`` in ``schema``: ``<schema>.<topic>``."""
    return f"{schema}.{topic}"


def _dump(value: Mapping[str, Any], name: str) -> str:
    if not value:
        return "{}"
    try:
        return _JSON.encode(value)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{name}: not JSON-serialisable: {exc}") from exc


def _schema_guard(exc: psycopg.errors.UndefinedTable | psycopg.errors.UndefinedFunction) -> SchemaMissing:
    return SchemaMissing(f"river_job is missing ({exc.diag.message_primary}): run river-supervisor migrate")


def _run_all(conn: psycopg.Connection[Any], name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    try:
        return db.fetch_all(conn, name, params)
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedObject) as exc:
        raise _schema_guard(exc) from exc  # type: ignore[arg-type]


# --- insert -------------------------------------------------------------------------------------


def insert(conn: psycopg.Connection[Any], spec: JobSpec) -> InsertResult:
    """Insert one job (River's Insert/InsertTx); see ``insert_many``."""
    return insert_many(conn, [spec])[0]


def insert_many(conn: psycopg.Connection[Any], specs: Sequence[JobSpec]) -> list[InsertResult]:
    """Insert jobs in one statement (River's InsertMany), results in input order.

    A unique job whose key a row in one of its ``unique_states`` already holds is not inserted: its
    result carries that row and ``unique_skipped_as_duplicate``. So does a later spec of the same
    batch with the same key.
    """
    if not specs:
        return []
    now = datetime.now(UTC)
    columns: dict[str, list[Any]] = {
        name: []
        for name in (
            "args", "kind", "max_attempts", "metadata", "priority", "queue",
            "scheduled_at", "pending", "tags", "unique_key", "unique_states",
        )
    }  # fmt: skip
    first_of_key: dict[bytes, int] = {}
    sent: list[int] = []  # for each spec, the index of the row that answers it
    for spec in specs:
        spec.validate()
        key = states = None
        if spec.unique is not None:
            key = unique_key(
                spec.unique, kind=spec.kind, args=spec.args, queue=spec.queue,
                scheduled_at=spec.scheduled_at, now=now,
            )  # fmt: skip
            states = spec.unique.states_bitmask()
            if key in first_of_key:
                sent.append(-1 - first_of_key[key])
                continue
            first_of_key[key] = len(columns["kind"])
        sent.append(len(columns["kind"]))
        columns["args"].append(_dump(spec.args, "args"))
        columns["kind"].append(spec.kind)
        columns["max_attempts"].append(spec.max_attempts)
        columns["metadata"].append(_dump(spec.metadata, "metadata"))
        columns["priority"].append(spec.priority)
        columns["queue"].append(spec.queue)
        columns["scheduled_at"].append(spec.scheduled_at)
        columns["pending"].append(spec.pending)
        columns["tags"].append(",".join(spec.tags))
        columns["unique_key"].append(key)
        columns["unique_states"].append(states)
    rows = _run_all(conn, "job_insert_many", columns)
    results = [InsertResult(JobRow.from_row(r), bool(r["unique_skipped_as_duplicate"])) for r in rows]
    return [results[i] if i >= 0 else InsertResult(results[-1 - i].job, True) for i in sent]


def _copy_json(value: Mapping[str, Any], name: str) -> str:
    # JSON from the encoder is ASCII with control characters escaped: only backslashes need
    # doubling for COPY's text format. Kinds and queues are validated free of specials.
    text = _dump(value, name)
    return text.replace("\\", "\\\\") if "\\" in text else text


def _copy_rows(specs: Sequence[JobSpec], now: datetime, queues: set[str]) -> str:
    now_text = now.isoformat()
    lines: list[str] = []
    for spec in specs:
        spec.validate()
        if spec.unique is not None:
            raise UsageError(
                f"unique: insert_many_copy cannot insert unique jobs ({spec.kind}); use insert_many"
            )
        scheduled_at = spec.scheduled_at
        if spec.pending:
            state = "pending"
        elif scheduled_at is not None and scheduled_at > now:
            state = "scheduled"
        else:
            state = "available"
            queues.add(spec.queue)
        lines.append(
            f"{_copy_json(spec.args, 'args')}\t{spec.kind}\t{spec.max_attempts}\t"
            f"{_copy_json(spec.metadata, 'metadata')}\t{spec.priority}\t{spec.queue}\t"
            f"{scheduled_at.isoformat() if scheduled_at is not None else now_text}\t{state}\t"
            f"{{{','.join(spec.tags)}}}\n"
        )
    return "".join(lines)


COPY_CHUNK = 2_000


def insert_many_copy(conn: psycopg.Connection[Any], specs: Sequence[JobSpec]) -> int:
    """Bulk insert with COPY (River's InsertManyFast): fastest, no unique handling, returns the count.

    One transaction (a savepoint inside the caller's): the rows and one ``river_insert`` per queue.
    Rows are sent in chunks by psycopg's writer thread, so the server inserts one chunk while the
    next is built. A bad spec raises ``UsageError`` and nothing is inserted.
    """
    if not specs:
        return 0
    now = datetime.now(UTC)
    queues: set[str] = set()
    first = _copy_rows(specs[:COPY_CHUNK], now, queues)  # fail before opening anything
    try:
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy(db.query("job_insert_copy"), writer=QueuedLibpqWriter(cur)) as copy:
                copy.write(first)
                for start in range(COPY_CHUNK, len(specs), COPY_CHUNK):
                    copy.write(_copy_rows(specs[start : start + COPY_CHUNK], now, queues))
            if queues:
                cur.execute(db.query("job_notify_insert"), {"queues": sorted(queues)})
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedObject) as exc:
        raise _schema_guard(exc) from exc  # type: ignore[arg-type]
    return len(specs)


# --- work ---------------------------------------------------------------------------------------


def fetch(conn: psycopg.Connection[Any], queue: str, limit: int, worker_id: str) -> list[JobRow]:
    """Take up to ``limit`` due jobs of ``queue`` for ``worker_id`` (River's JobGetAvailable).

    One statement: ``FOR UPDATE SKIP LOCKED`` in River's order (priority, scheduled_at, id), so
    concurrent fetchers never get the same job; the jobs come back running, attempt + 1.
    """
    if limit <= 0:
        return []
    rows = _run_all(conn, "job_fetch", {"queue": queue, "limit": limit, "worker_id": worker_id})
    return [JobRow.from_row(r) for r in rows]


# --- maintenance (called by the leader's services) -----------------------------------------------


def schedule_due(
    conn: psycopg.Connection[Any], now: datetime | None = None, limit: int = 10_000
) -> dict[str, int]:
    """River's JobScheduler: scheduled/retryable jobs due by ``now`` become available.

    A unique job whose key is now held elsewhere is discarded (metadata ``unique_key_conflict``).
    Sends ``river_insert`` per queue. Returns ``{queue: jobs made available}``.
    """
    rows = _run_all(conn, "job_schedule", {"now": now or datetime.now(UTC), "limit": limit})
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
    rows = _run_all(conn, "job_get", {"id": job_id})
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
) -> list[JobRow]:
    """Jobs in id order, filtered (empty filter: any); page with ``after_id`` = last id seen."""
    unknown = [s for s in states if s not in JOB_STATES]
    if unknown:
        raise UsageError(f"state: unknown job state {unknown[0]!r} (one of {', '.join(JOB_STATES)})")
    params = {
        "states": list(states),
        "kinds": list(kinds),
        "queues": list(queues),
        "limit": limit,
        "after_id": after_id,
    }
    return [JobRow.from_row(r) for r in _run_all(conn, "job_list", params)]


def retry(conn: psycopg.Connection[Any], job_id: int) -> JobRow:
    """River's JobRetry: any state but running becomes available now (a running job is unchanged)."""
    try:
        rows = _run_all(conn, "job_retry", {"id": job_id})
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
    rows = _run_all(conn, "job_cancel", {"id": job_id})
    if not rows:
        raise JobNotFound(job_id)
    return JobRow.from_row(rows[0])


def queue_counts(conn: psycopg.Connection[Any]) -> dict[str, dict[str, int]]:
    """``{queue: {state: jobs}}`` for the states present."""
    counts: dict[str, dict[str, int]] = {}
    for row in _run_all(conn, "job_count_by_queue_and_state", {}):
        counts.setdefault(row["queue"], {})[row["state"]] = int(row["jobs"])
    return counts


def in_seconds(seconds: float, now: datetime | None = None) -> datetime:
    """An aware UTC time ``seconds`` from now, for ``JobSpec.scheduled_at``."""
    return (now or datetime.now(UTC)) + timedelta(seconds=seconds)


def running_by_worker(conn: psycopg.Connection[Any], worker_id: str) -> list[int]:
    """Ids of jobs still ``running`` whose latest attempt belongs to ``worker_id``."""
    return [row["id"] for row in _run_all(conn, "job_running_ids_by_worker", {"worker_id": worker_id})]
