"""Putting jobs into ``river_job``: validation as River does it, ``INSERT ... unnest`` and COPY.

``insert_many`` is River's JobInsertFastMany (unique conflicts answered with the existing row);
``insert_many_copy`` is River's InsertManyFast (COPY, no unique handling). Both send one
``river_insert`` per queue that received an available job, in the same transaction.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.copy import QueuedLibpqWriter

from . import db
from .errors import InvalidJob
from .job_options import KIND_RULE, QUEUE_NAME_RULE, is_valid_kind, is_valid_queue_name
from .job_row import JobRow, run_all, schema_guard
from .storable import unstorable_in
from .unique import UniqueOpts, unique_key

# River's tag pattern (Go's \w is ASCII): no commas. Kinds and queues: ``job_options``.
_TAG_RE = re.compile(r"\A\w[\w\-]+\w\Z", re.ASCII)
_JSON = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


_VALID_KINDS: set[str] = set()
_VALID_QUEUES: set[str] = set()
_CACHE_LIMIT = 10_000


def _check_kind(kind: object) -> None:
    if not is_valid_kind(kind):
        raise InvalidJob(f"kind: {kind!r} is not a valid job kind ({KIND_RULE})")
    if len(_VALID_KINDS) < _CACHE_LIMIT:
        _VALID_KINDS.add(str(kind))


def _check_queue(name: object) -> None:
    if not is_valid_queue_name(name):
        raise InvalidJob(f"queue: {name!r} is not a valid queue name ({QUEUE_NAME_RULE})")
    if len(_VALID_QUEUES) < _CACHE_LIMIT:
        _VALID_QUEUES.add(str(name))


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
        """Raise ``InvalidJob`` naming the first field River would refuse."""
        # Fast path first: bulk inserts validate every spec (``type(x) is int`` also refuses bool).
        if self.kind not in _VALID_KINDS:
            _check_kind(self.kind)
        if type(self.args) is not dict and not isinstance(self.args, Mapping):
            raise InvalidJob(f"args: must be a JSON object, got {type(self.args).__name__}")
        if self.queue not in _VALID_QUEUES:
            _check_queue(self.queue)
        if type(self.priority) is not int or not 1 <= self.priority <= 4:
            raise InvalidJob(f"priority: must be 1 to 4, got {self.priority!r}")
        if type(self.max_attempts) is not int or not 1 <= self.max_attempts <= 32767:
            raise InvalidJob(f"max_attempts: must be 1 to 32767, got {self.max_attempts!r}")
        if self.scheduled_at is not None:
            if not isinstance(self.scheduled_at, datetime):
                raise InvalidJob(f"scheduled_at: must be a datetime, got {type(self.scheduled_at).__name__}")
            if self.scheduled_at.tzinfo is None:
                raise InvalidJob("scheduled_at: must be timezone-aware")
        if isinstance(self.tags, str) or not isinstance(self.tags, Sequence):
            raise InvalidJob(f"tags: must be a list of strings, got {type(self.tags).__name__}")
        for tag in self.tags:
            if not isinstance(tag, str) or len(tag) > 255 or not _TAG_RE.match(tag):
                raise InvalidJob(f"tags: {tag!r} is not a valid tag (letters, digits, _ and -; no commas)")
        if not isinstance(self.metadata, Mapping):
            raise InvalidJob(f"metadata: must be a JSON object, got {type(self.metadata).__name__}")
        if type(self.pending) is not bool:
            raise InvalidJob(f"pending: must be True or False, got {self.pending!r}")
        if self.unique is not None:
            if not isinstance(self.unique, UniqueOpts):
                raise InvalidJob(f"unique: must be a UniqueOpts, got {type(self.unique).__name__}")
            self.unique.validate()


@dataclass(slots=True)
class InsertResult:
    """River's ``JobInsertResult``: the job's row, or for a unique duplicate the row that holds its key."""

    job: JobRow
    unique_skipped_as_duplicate: bool


def _dump(value: Mapping[str, Any], name: str) -> str:
    if not value:
        return "{}"
    try:
        text = _JSON.encode(value)
    except (TypeError, ValueError) as exc:
        raise InvalidJob(f"{name}: not JSON-serialisable: {exc}") from exc
    if problem := unstorable_in(value, text, name):
        raise InvalidJob(problem)
    return text


def insert(conn: psycopg.Connection[Any], spec: JobSpec) -> InsertResult:
    """Insert one job (River's Insert/InsertTx); see ``insert_many``."""
    return insert_many(conn, [spec])[0]


def insert_many(conn: psycopg.Connection[Any], specs: Sequence[JobSpec]) -> list[InsertResult]:
    """Insert jobs in one statement (River's InsertMany), results in input order.

    A unique job whose key a row in one of its ``unique_states`` already holds is not inserted: its
    result carries that row and ``unique_skipped_as_duplicate``. So does a later spec of the same
    batch with the same key. Every spec is validated before any SQL runs.
    """
    if not specs:
        return []
    batch = _Batch(specs)
    return batch.results(run_all(conn, "job_insert_many", batch.columns))


async def insert_many_async(
    conn: psycopg.AsyncConnection[Any], specs: Sequence[JobSpec]
) -> list[InsertResult]:
    """``insert_many`` on an asyncio connection: the same statement, validation and results."""
    if not specs:
        return []
    batch = _Batch(specs)
    try:
        rows = await db.fetch_all_async(conn, "job_insert_many", batch.columns)
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedObject) as exc:
        raise schema_guard(exc) from exc  # type: ignore[arg-type]
    return batch.results(rows)


_INSERT_COLUMNS = (
    "args", "kind", "max_attempts", "metadata", "priority", "queue",
    "scheduled_at", "pending", "tags", "unique_key", "unique_states",
)  # fmt: skip


class _Batch:
    """``job_insert_many``'s parameter arrays for ``specs`` (validated), and how to answer each spec.

    A spec whose unique key an earlier spec of the batch has is not sent: it is answered with that
    earlier spec's row, as a duplicate.
    """

    def __init__(self, specs: Sequence[JobSpec]) -> None:
        now = datetime.now(UTC)
        columns: dict[str, list[Any]] = {name: [] for name in _INSERT_COLUMNS}
        first_of_key: dict[bytes, int] = {}
        sent: list[int] = []  # for each spec, the row that answers it (-1 - row: a duplicate of it)
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
        self.columns = columns
        self._sent = sent

    def results(self, rows: Sequence[Mapping[str, Any]]) -> list[InsertResult]:
        results = [InsertResult(JobRow.from_row(r), bool(r["unique_skipped_as_duplicate"])) for r in rows]
        return [results[i] if i >= 0 else InsertResult(results[-1 - i].job, True) for i in self._sent]


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
            raise InvalidJob(
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
    next is built. A bad spec raises ``InvalidJob`` and nothing is inserted.
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
        raise schema_guard(exc) from exc  # type: ignore[arg-type]
    return len(specs)
