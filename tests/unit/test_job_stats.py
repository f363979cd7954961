"""``job_stats``: what a worker counts and the parent sums, and the outcome names the metrics use."""

from __future__ import annotations

import pickle

from river_supervisor import queue
from river_supervisor.job_stats import DURATION_BUCKETS, JobStats


def test_a_worker_sends_its_totals_once_and_the_parent_sums_them() -> None:
    worker, parent = JobStats(), JobStats()
    worker.record("a.kind", "default", "completed", 0.003)
    worker.record("a.kind", "default", "completed", 1.0)  # on a bound: counted in that bucket (le)
    worker.record("a.kind", "default", "discarded", 5000.0)  # beyond the last bound: +Inf
    delta = pickle.loads(pickle.dumps(worker.take()))  # it crosses the worker's pipe
    assert worker.take() == {}
    parent.merge(delta)
    parent.merge(delta)
    totals = parent.snapshot()
    completed = totals[("a.kind", "default", "completed")]
    assert completed[0] == 4 and abs(completed[1] - 2.006) < 1e-9
    buckets = completed[2:]
    assert buckets[0] == 2 and buckets[DURATION_BUCKETS.index(1.0)] == 2 and sum(buckets) == 4
    assert totals[("a.kind", "default", "discarded")][2:][-1] == 2


def test_outcome_names_follow_what_the_outcome_does_to_the_job() -> None:
    assert queue.outcome_name(queue.Completed(job_id=1)) == "completed"
    assert queue.outcome_name(queue.Failed(job_id=1, attempt=1, max_attempts=2, error="x")) == "retried"
    assert queue.outcome_name(queue.Failed(job_id=1, attempt=2, max_attempts=2, error="x")) == "discarded"
    assert queue.outcome_name(queue.Cancelled(job_id=1, attempt=1, error="x")) == "cancelled"
    assert queue.outcome_name(queue.Snoozed(job_id=1, seconds=5)) == "snoozed"
