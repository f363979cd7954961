"""One log line per finished job, as River's, Oban's and Celery's workers write them.

Logger ``river_supervisor.joblog``: a completed, snoozed or cancelled job at INFO, a failed one
(retried or discarded) at WARNING with the first line of its error, so ``--log-level WARNING``
keeps the failures and drops the rest. Each line names the kind, id, queue, attempt, outcome and
duration (also in ``extra`` for ``--log-format json``). Args never appear: they may hold personal
data, and stay out of logs as they stay out of Sentry.
"""

from __future__ import annotations

import logging

from . import queue
from .errors import first_line
from .plugins import Job

log = logging.getLogger(__name__)


def job_finished(job: Job, outcome: queue.Outcome, seconds: float) -> None:
    """Log ``job``'s end (never raises: a log line must not cost a job its outcome)."""
    name = queue.outcome_name(outcome)
    failed = isinstance(outcome, queue.Failed | queue.Cancelled)
    level = logging.WARNING if isinstance(outcome, queue.Failed) else logging.INFO
    if not log.isEnabledFor(level):
        return
    extra = {
        "event": "job.finished",
        "job_id": job.id,
        "kind": job.kind,
        "queue": job.queue,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "outcome": name,
        "duration_s": round(seconds, 6),
    }
    error = _first_line(outcome.error) if failed else ""  # type: ignore[union-attr]
    log.log(
        level,
        "job %s %d (queue %s, attempt %d/%d) %s in %.3fs%s",
        job.kind,
        job.id,
        job.queue,
        job.attempt,
        job.max_attempts,
        name,
        seconds,
        f": {error}" if error else "",
        extra=extra,
    )


def _first_line(text: str) -> str:
    line = first_line(text)
    return line if len(line) <= 200 else line[:199] + "…"  # one log line, not a stored trace
