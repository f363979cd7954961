"""Sentry Crons for periodic jobs: which schedules have a monitor, and the check-ins around a run.

A schedule with ``monitor = true`` gets a Sentry monitor (its slug made from the schedule id);
the parent lists them once (``monitors_for``) and hands them to its workers in plain data, and a
worker checks in around each run of a job enqueued for such a schedule: ``in_progress`` when the
handler starts, ``ok`` or ``error`` with the duration when it ends (a snooze sends nothing: the
run is not over).

Owns: the Crons monitors and check-ins. May import: ``alerts`` (the only Sentry user), ``schedules``
and the queue core's outcome types.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from . import alerts
from .plugins import Job
from .queue import Completed, Outcome, Snoozed
from .schedules import EffectiveSchedule, monitor_config

# (periodic id, Sentry monitor slug, monitor_config): picklable, it crosses into the workers.
Monitors = tuple[tuple[str, str, dict[str, Any]], ...]


def monitors_for(schedules: Iterable[EffectiveSchedule]) -> Monitors:
    """(periodic id, Sentry monitor slug, monitor_config) of each schedule with ``monitor = true``."""
    return tuple(
        (s.id, re.sub(r"[^a-z0-9_-]+", "-", s.id.lower()).strip("-") or "periodic", monitor_config(s))
        for s in schedules
        if s.monitor
    )


@dataclass(frozen=True, slots=True)
class _Open:
    slug: str
    config: dict[str, Any]
    check_in_id: str | None


class CronCheckins:
    """A worker's check-ins: ``start`` when a handler starts, ``finish`` with its outcome."""

    def __init__(self, monitors: Monitors) -> None:
        self._monitors = {periodic_id: (slug, config) for periodic_id, slug, config in monitors}

    def start(self, job: Job) -> _Open | None:
        """Check in ``in_progress`` if ``job`` was enqueued for a monitored schedule."""
        if not self._monitors:
            return None
        monitor = self._monitors.get(str(job.metadata.get("river:periodic_job_id")))
        if monitor is None:
            return None
        slug, config = monitor
        return _Open(slug, config, alerts.checkin(slug, "in_progress", config))

    @staticmethod
    def finish(opened: _Open | None, outcome: Outcome, took: float) -> None:
        """Close a ``start``'s check-in: ok (completed) or error, with ``took`` seconds."""
        if opened is None or isinstance(outcome, Snoozed):
            return
        status: alerts.CheckInStatus = "ok" if isinstance(outcome, Completed) else "error"
        alerts.checkin(opened.slug, status, opened.config, opened.check_in_id, took)
