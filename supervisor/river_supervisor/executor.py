"""Running one job: a fetched row decoded into a ``Job``, its handler run, the result made an outcome.

The one path by which a handler runs, in a worker and in a plugin's tests (``testing.run_job``):
``run`` calls it (``async def`` handlers too, through ``plugins.call_handler``), never raises, and
says what the queue core must record (``Completed`` with the result as JSON, ``Failed``,
``Snoozed``, ``Cancelled``) and what the handler raised. ``job_timeout`` is the one rule for how
long a kind may run (its ``JobOptions.timeout``, else the configured default).

Owns: job execution and the decoding of ``queue.WORK_COLUMNS`` rows. May import: ``plugins`` and the
queue core's outcome types and row columns (``queue``); no connection, no Sentry, no process handling.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import plugins
from .queue import WORK_COLUMNS, Cancelled, Completed, Failed, Outcome, Snoozed

log = logging.getLogger(__name__)

OUTPUT_LIMIT = 1024 * 1024  # a handler's JSON result above this is not kept in the row

# Positions of the columns in a ``queue.fetch_for_work`` row, by name (``WORK_COLUMNS`` is the order).
_COLUMN = {name: index for index, name in enumerate(WORK_COLUMNS)}
_ID, _KIND, _ARGS, _QUEUE, _PRIORITY, _ATTEMPT, _MAX_ATTEMPTS, _METADATA, _SCHEDULED_AT, _TAGS, _ERRORS = (
    _COLUMN[name]
    for name in (
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
)


def job_timeout(options: plugins.JobOptions | None, default: float) -> float | None:
    """Seconds a job of a kind with ``options`` may run (``None``: no limit); ``default`` when the
    kind sets none (0 or less: no limit)."""
    timeout = getattr(options, "timeout", None)
    if timeout is None:
        timeout = default
    return timeout if timeout and timeout > 0 else None


@dataclass(frozen=True, slots=True)
class Timeouts:
    """The timeout of each job kind a worker may run, as the parent enforces it."""

    by_kind: Mapping[str, float | None]
    default: float | None  # a kind no plugin here registers

    @classmethod
    def of(cls, handlers: Mapping[str, Any], default: float) -> Timeouts:
        """From ``discovery.PluginSet.handlers`` and the configured ``job_timeout``."""
        by_kind = {kind: job_timeout(entry.options, default) for kind, entry in handlers.items()}
        return cls(by_kind, job_timeout(None, default))

    def __call__(self, kind: str) -> float | None:
        return self.by_kind.get(kind, self.default)


def decode(rows: Iterable[Sequence[Any]], context: plugins.JobContext) -> list[tuple[plugins.Job, int]]:
    """``(Job, errors already on the row)`` from ``queue.fetch_for_work`` rows (JSON still text)."""
    job = plugins.Job
    loads = json.loads
    return [
        (
            job(
                id=row[_ID],
                kind=row[_KIND],
                args=loads(row[_ARGS]) if row[_ARGS] is not None else {},
                attempt=row[_ATTEMPT],
                max_attempts=row[_MAX_ATTEMPTS],
                queue=row[_QUEUE],
                metadata=loads(row[_METADATA]) if row[_METADATA] not in (None, "{}") else {},
                scheduled_at=row[_SCHEDULED_AT],
                tags=tuple(row[_TAGS]) if row[_TAGS] else (),
                priority=row[_PRIORITY],
                context=context,
            ),
            row[_ERRORS],
        )
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class Ran:
    """What running one job gave: the outcome to record, and what its handler returned or raised."""

    outcome: Outcome
    result: Any = None
    raised: BaseException | None = None  # JobSnooze and JobCancel included

    @property
    def failure(self) -> BaseException | None:
        """The error to report (a failed handler), not a snooze or a cancel."""
        return self.raised if isinstance(self.outcome, Failed) else None


def run(job: plugins.Job, handler: Callable[[plugins.Job], Any] | None, errors_count: int = 0) -> Ran:
    """Run ``job``'s handler (``None``: no plugin here registers its kind); never raises.

    ``errors_count`` is the number of errors already on the job's row (the retry backoff grows with it).
    """
    if handler is None:
        error = f"job kind {job.kind!r} is not registered by any plugin on this host"
        return Ran(Failed(job.id, job.attempt, job.max_attempts, error, errors_count=errors_count))
    try:
        result = plugins.call_handler(handler, job)
    except plugins.JobSnooze as exc:
        return Ran(Snoozed(job_id=job.id, seconds=float(exc.seconds)), raised=exc)
    except plugins.JobCancel as exc:
        return Ran(Cancelled(job_id=job.id, attempt=job.attempt, error=_error_text(exc)), raised=exc)
    except BaseException as exc:  # any failure of user code ends in the job row
        failed = Failed(
            job_id=job.id,
            attempt=job.attempt,
            max_attempts=job.max_attempts,
            error=_error_text(exc),
            trace=traceback.format_exc(),
            errors_count=errors_count,
        )
        return Ran(failed, raised=exc)
    return Ran(Completed(job_id=job.id, output=_output(job, result)), result=result)


def handler_of(handlers: Mapping[str, Any], kind: str) -> Callable[[plugins.Job], Any] | None:
    """The handler registered for ``kind`` in ``discovery.PluginSet.handlers`` (None: none)."""
    entry = handlers.get(kind)
    return entry.handler if entry is not None else None


def _error_text(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _output(job: plugins.Job, result: Any) -> str | None:
    """A handler's return value as JSON text for the row's metadata "output" (None: nothing)."""
    if result is None:
        return None
    try:
        text = json.dumps(result, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        log.warning(
            "job %d (%s): its result is not JSON (%s); not recorded",
            job.id,
            job.kind,
            exc,
            extra={"event": "job.output_dropped", "job_id": job.id},
        )
        return None
    if len(text) > OUTPUT_LIMIT:
        log.warning(
            "job %d (%s): its result is %d bytes of JSON, over %d; not recorded",
            job.id,
            job.kind,
            len(text),
            OUTPUT_LIMIT,
            extra={"event": "job.output_dropped", "job_id": job.id},
        )
        return None
    return text
