"""Running one job without a database: rows decoded by column name, handlers into outcomes, timeouts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from river_supervisor import executor
from river_supervisor.plugins import Job, JobCancel, JobContext, JobOptions, JobSnooze
from river_supervisor.queue import WORK_COLUMNS, Cancelled, Completed, Failed, Snoozed
from river_supervisor.testing import make_job, run_job

CONTEXT = JobContext(node="n", worker_id="n/w0.1")


def _row(**values: Any) -> tuple[Any, ...]:
    """A ``fetch_for_work`` row: the columns in ``WORK_COLUMNS`` order, whatever that order is."""
    defaults: dict[str, Any] = {
        "id": 7,
        "kind": "a.kind",
        "args": '{"x": 1}',
        "queue": "default",
        "priority": 2,
        "attempt": 3,
        "max_attempts": 5,
        "metadata": "{}",
        "scheduled_at": datetime(2026, 1, 1, tzinfo=UTC),
        "tags": ["t"],
        "errors_count": 2,
    }
    defaults.update(values)
    assert set(defaults) == set(WORK_COLUMNS)
    return tuple(defaults[name] for name in WORK_COLUMNS)


def test_rows_are_decoded_by_column_name() -> None:
    [(job, errors)] = executor.decode([_row(metadata='{"river:periodic_job_id": "p"}')], CONTEXT)
    assert (job.id, job.kind, job.args, job.queue, job.priority) == (7, "a.kind", {"x": 1}, "default", 2)
    assert (job.attempt, job.max_attempts, job.tags, errors) == (3, 5, ("t",), 2)
    assert job.metadata == {"river:periodic_job_id": "p"} and job.context is CONTEXT
    [(bare, _)] = executor.decode([_row(args=None, metadata=None, tags=None)], CONTEXT)
    assert (bare.args, bare.metadata, bare.tags) == ({}, {}, ())


def test_a_handler_becomes_its_outcome_and_never_raises() -> None:
    job = make_job("a.kind", attempt=2, max_attempts=3)

    def boom(job: Job) -> None:
        raise ValueError("nope")

    def snooze(job: Job) -> None:
        raise JobSnooze(30)

    def cancel(job: Job) -> None:
        raise JobCancel("no longer wanted")

    done = executor.run(job, lambda job: {"ok": True})
    assert done.outcome == Completed(job.id, output='{"ok":true}') and done.result == {"ok": True}
    failed = executor.run(job, boom, errors_count=1)
    assert isinstance(failed.outcome, Failed) and failed.outcome.error == "ValueError: nope"
    assert failed.outcome.errors_count == 1 and "boom" in (failed.outcome.trace or "")
    assert isinstance(failed.failure, ValueError)
    snoozed = executor.run(job, snooze)
    assert snoozed.outcome == Snoozed(job.id, 30.0) and snoozed.failure is None
    assert isinstance(snoozed.raised, JobSnooze)
    cancelled = executor.run(job, cancel)
    assert cancelled.outcome == Cancelled(job.id, 2, "JobCancel: no longer wanted")
    assert cancelled.failure is None
    unknown = executor.run(job, None)
    assert isinstance(unknown.outcome, Failed) and "not registered" in unknown.outcome.error
    assert unknown.raised is None


def test_a_result_the_row_cannot_keep_is_not_recorded_but_the_job_completes() -> None:
    job = make_job("a.kind")
    assert executor.run(job, lambda job: {1, 2}).outcome == Completed(job.id, output=None)
    assert executor.run(job, lambda job: float("nan")).outcome == Completed(job.id, output=None)
    big = "x" * (executor.OUTPUT_LIMIT + 1)
    assert executor.run(job, lambda job: big).outcome == Completed(job.id, output=None)


def test_async_handlers_run_to_completion() -> None:
    async def handler(job: Job) -> int:
        await asyncio.sleep(0)
        return job.attempt

    assert executor.run(make_job("a.kind", attempt=4), handler).outcome.output == "4"


def test_testing_run_job_goes_through_the_executor_and_propagates_what_the_handler_raises() -> None:
    def handler(job: Job) -> int:
        if job.args.get("snooze"):
            raise JobSnooze(5)
        return int(job.args["n"]) * 2

    assert run_job(handler, {"n": 21}, kind="a.kind") == 42
    with pytest.raises(JobSnooze):
        run_job(handler, {"snooze": True}, kind="a.kind")


def test_a_kinds_timeout_is_its_own_else_the_default_and_zero_means_none() -> None:
    class Entry:
        def __init__(self, options: JobOptions) -> None:
            self.options = options

    handlers = {"slow": Entry(JobOptions(timeout=600.0)), "plain": Entry(JobOptions())}
    timeouts = executor.Timeouts.of(handlers, 30.0)
    assert (timeouts("slow"), timeouts("plain"), timeouts("unknown")) == (600.0, 30.0, 30.0)
    unlimited = executor.Timeouts.of(handlers, 0.0)
    assert (unlimited("slow"), unlimited("plain"), unlimited("unknown")) == (600.0, None, None)
