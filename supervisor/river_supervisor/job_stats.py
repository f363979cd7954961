"""Counts and durations of finished jobs, kept by each worker and summed by the parent.

A worker ``record``s every job it ran (kind, queue, outcome, seconds) and sends ``take()``, the
totals since the last one, to the parent with its "done" message: a few keys per batch, never a
message per job. The parent ``merge``s them into its own ``JobStats`` and the metrics endpoint
renders them (a counter by kind, queue and outcome; a duration histogram by kind). Plain data
only, so it pickles across the worker's pipe. Pure (layer 1): no database, no prometheus_client.
"""

from __future__ import annotations

import bisect
import threading

__all__ = ["DURATION_BUCKETS", "JobStats", "Key", "Totals"]

# Upper bounds (seconds) of the duration histogram's buckets; +Inf is implied. Prometheus's
# defaults, stretched to the minutes a batch job may take.
DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
)  # fmt: skip

Key = tuple[str, str, str]  # (kind, queue, outcome)
# [jobs, seconds in total, jobs per bucket (not cumulative), the last one for +Inf]
Totals = list[float]


def _empty() -> Totals:
    return [0, 0.0] + [0] * (len(DURATION_BUCKETS) + 1)


class JobStats:
    """Totals per (kind, queue, outcome); ``record`` may be called from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: dict[Key, Totals] = {}

    def record(self, kind: str, queue: str, outcome: str, seconds: float) -> None:
        bucket = bisect.bisect_left(DURATION_BUCKETS, seconds)  # le: a job of exactly 1.0 s is in "1.0"
        with self._lock:
            totals = self._totals.get((kind, queue, outcome))
            if totals is None:
                totals = self._totals[(kind, queue, outcome)] = _empty()
            totals[0] += 1
            totals[1] += seconds
            totals[2 + bucket] += 1

    def take(self) -> dict[Key, Totals]:
        """The totals since the last ``take`` (empty if nothing ran), and start again from zero."""
        with self._lock:
            taken, self._totals = self._totals, {}
        return taken

    def merge(self, delta: dict[Key, Totals]) -> None:
        """Add a worker's ``take()``."""
        with self._lock:
            for key, values in delta.items():
                totals = self._totals.get(key)
                if totals is None:
                    self._totals[key] = list(values)
                else:
                    for index, value in enumerate(values):
                        totals[index] += value

    def snapshot(self) -> dict[Key, Totals]:
        """A copy of the totals, for rendering outside the lock."""
        with self._lock:
            return {key: list(values) for key, values in self._totals.items()}
