"""Enqueue jobs from application code: ``river_supervisor.enqueue`` and friends.

```python
import psycopg
import river_supervisor

with psycopg.connect(url) as conn, conn.transaction():
    order_id = create_order(conn)  # the application's own writes
    river_supervisor.enqueue(conn, "billing.charge", {"order": order_id}, queue="billing")
```

The job is inserted on the caller's connection, in the caller's transaction (River's
``InsertTx``): it becomes visible, and its ``river_insert`` notification wakes an idle worker,
only when the caller commits; a rollback leaves nothing. On an autocommit connection the insert
commits on its own. ``enqueue_async`` / ``enqueue_many_async`` do the same on a psycopg
``AsyncConnection``. A job of a kind a plugin declared can be enqueued through its declaration,
with the declared options: ``charge.enqueue(conn, customer=42)`` (``plugins.DeclaredJob``).

Every job is validated before any SQL runs; a bad one raises ``InvalidJob`` whose message names
the field, the same one-line message ``river-supervisor enqueue`` prints. The insert itself is the
queue core's (``insert.insert_many``: one statement, unique keys, River's notification).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict, Unpack

import psycopg

from .errors import InvalidJob
from .insert import InsertResult, JobSpec, insert_many, insert_many_async
from .unique import UniqueOpts

# The application's API in one place (InsertResult, InvalidJob, JobSpec and UniqueOpts are the queue
# core's). The package re-exports them; UniqueOpts and InvalidJob from their own psycopg-free modules.
__all__ = [
    "EnqueueOptions",
    "InsertResult",
    "InvalidJob",
    "JobSpec",
    "UniqueOpts",
    "enqueue",
    "enqueue_async",
    "enqueue_many",
    "enqueue_many_async",
    "job_spec",
]

# What to pass instead of a framework's own connection object (the README's recipes).
_WHERE_TO_FIND_IT = (
    "from SQLAlchemy pass sa_conn.connection.driver_connection,"
    " from Django django.db.connection.connection (psycopg 3 backend)"
)


class EnqueueOptions(TypedDict, total=False):
    """River's insert options, keywords of ``enqueue``, ``enqueue_async`` and ``job_spec``."""

    queue: str
    priority: int
    max_attempts: int
    scheduled_at: datetime | None
    scheduled_in: float | timedelta | None
    tags: Sequence[str]
    metadata: Mapping[str, Any] | None
    unique: UniqueOpts | None
    pending: bool


def job_spec(
    kind: str,
    args: Mapping[str, Any] | None = None,
    *,
    queue: str = "default",
    priority: int = 1,
    max_attempts: int = 25,
    scheduled_at: datetime | None = None,
    scheduled_in: float | timedelta | None = None,
    tags: Sequence[str] = (),
    metadata: Mapping[str, Any] | None = None,
    unique: UniqueOpts | None = None,
    pending: bool = False,
) -> JobSpec:
    """A validated job (River's defaults) for ``enqueue_many``; raises ``InvalidJob``.

    ``scheduled_in`` (seconds or a ``timedelta``) is ``scheduled_at`` relative to now; give one or
    neither. A job scheduled in the future is inserted ``scheduled``, with ``pending`` ``pending``.
    """
    if scheduled_in is not None:
        if scheduled_at is not None:
            raise InvalidJob("scheduled_in: give scheduled_at or scheduled_in, not both")
        scheduled_at = datetime.now(UTC) + _delay(scheduled_in)
    spec = JobSpec(
        kind=kind,
        args={} if args is None else args,
        queue=queue,
        priority=priority,
        max_attempts=max_attempts,
        scheduled_at=scheduled_at,
        tags=tuple(tags) if isinstance(tags, list | tuple) else tags,
        metadata={} if metadata is None else metadata,
        unique=unique,
        pending=pending,
    )
    spec.validate()
    return spec


def enqueue(
    conn: psycopg.Connection[Any],
    kind: str,
    args: Mapping[str, Any] | None = None,
    **options: Unpack[EnqueueOptions],
) -> InsertResult:
    """Insert one job on ``conn`` (in its open transaction, if any); options as ``job_spec``.

    Returns River's insert result: ``.job`` is the row (``.job.id``), and
    ``.unique_skipped_as_duplicate`` says a unique job was not inserted because ``.job`` holds its key.
    """
    spec = job_spec(kind, args, **options)
    return insert_many(_sync(conn), [spec])[0]


def enqueue_many(conn: psycopg.Connection[Any], specs: Iterable[JobSpec]) -> list[InsertResult]:
    """Insert jobs (``job_spec(...)``, a declaration's ``.spec(...)``) in one statement; results in order."""
    return insert_many(_sync(conn), _specs(specs))


async def enqueue_async(
    conn: psycopg.AsyncConnection[Any],
    kind: str,
    args: Mapping[str, Any] | None = None,
    **options: Unpack[EnqueueOptions],
) -> InsertResult:
    """``enqueue`` on a psycopg ``AsyncConnection``."""
    spec = job_spec(kind, args, **options)
    return (await insert_many_async(_async(conn), [spec]))[0]


async def enqueue_many_async(
    conn: psycopg.AsyncConnection[Any], specs: Iterable[JobSpec]
) -> list[InsertResult]:
    """``enqueue_many`` on a psycopg ``AsyncConnection``."""
    return await insert_many_async(_async(conn), _specs(specs))


def _delay(value: float | timedelta) -> timedelta:
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise InvalidJob(f"scheduled_in: must be seconds or a timedelta, got {type(value).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidJob(f"scheduled_in: must be 0 or more seconds, got {value!r}")
    return timedelta(seconds=seconds)


def _specs(specs: Iterable[JobSpec]) -> list[JobSpec]:
    found = list(specs)
    for index, spec in enumerate(found):
        if not isinstance(spec, JobSpec):
            raise InvalidJob(
                f"jobs[{index}]: expected a job from river_supervisor.job_spec(...),"
                f" got {type(spec).__name__}"
            )
    return found


def _sync(conn: object) -> psycopg.Connection[Any]:
    if isinstance(conn, psycopg.Connection):
        return conn
    if isinstance(conn, psycopg.AsyncConnection):
        raise TypeError("conn: an AsyncConnection; use enqueue_async / enqueue_many_async")
    raise TypeError(f"conn: expected a psycopg.Connection, got {type(conn).__name__}; {_WHERE_TO_FIND_IT}")


def _async(conn: object) -> psycopg.AsyncConnection[Any]:
    if isinstance(conn, psycopg.AsyncConnection):
        return conn
    if isinstance(conn, psycopg.Connection):
        raise TypeError("conn: a (sync) psycopg.Connection; use enqueue / enqueue_many")
    raise TypeError(f"conn: expected a psycopg.AsyncConnection, got {type(conn).__name__}")
