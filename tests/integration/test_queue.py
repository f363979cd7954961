"""The queue core against a real PostgreSQL: River-compatible rows, notifications, fetch, outcomes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from river_supervisor import db as rdb
from river_supervisor import queue
from river_supervisor.errors import JobNotFound, UsageError
from river_supervisor.queue import (
    Cancelled,
    Completed,
    Failed,
    Interrupted,
    JobSpec,
    Snoozed,
    UniqueOpts,
)

PROTOCOL = json.loads((Path(__file__).parents[1] / "conformance" / "protocol.json").read_text())
PAYLOADS = {n["name"]: n for n in PROTOCOL["notifications"]}


@pytest.fixture
def listener(database_url: str) -> Iterator[psycopg.Connection]:
    conn = psycopg.connect(database_url, autocommit=True)
    schema = conn.execute("select current_schema()").fetchone()[0]
    for topic in ("river_insert", "river_control"):
        conn.execute(f'LISTEN "{queue.channel(topic, schema)}"')
    yield conn
    conn.close()


def notifications(
    conn: psycopg.Connection, expected: int | None = None, timeout: float = 2.0
) -> list[tuple[str, Any]]:
    """The next ``expected`` notifications (or all within ``timeout`` when ``expected`` is None)."""
    got = conn.notifies(timeout=timeout, stop_after=expected)
    return [(n.channel.split(".", 1)[1], json.loads(n.payload)) for n in got]


def row(conn: psycopg.Connection, job_id: int) -> dict[str, Any]:
    found = conn.execute("select * from river_job where id = %s", (job_id,)).fetchone()
    assert found is not None
    return found


# --- insert -------------------------------------------------------------------------------------


def test_inserted_job_is_a_valid_river_row_with_rivers_defaults(db: psycopg.Connection) -> None:
    result = queue.insert(db, JobSpec("bar.noop", {"n": 7}))
    assert not result.unique_skipped_as_duplicate
    stored = row(db, result.job.id)
    assert stored["state"] == "available"
    assert stored["attempt"] == 0
    assert stored["max_attempts"] == 25
    assert stored["priority"] == 1
    assert stored["queue"] == "default"
    assert stored["args"] == {"n": 7}
    assert stored["metadata"] == {}
    assert stored["tags"] == []
    assert stored["attempted_at"] is None and stored["attempted_by"] is None
    assert stored["errors"] is None and stored["finalized_at"] is None
    assert stored["unique_key"] is None and stored["unique_states"] is None
    assert stored["scheduled_at"] <= datetime.now(UTC)
    assert result.job.id == stored["id"] and result.job.args == {"n": 7}


def test_insert_in_the_future_is_scheduled_and_pending_is_pending(db: psycopg.Connection) -> None:
    later = queue.insert(db, JobSpec("bar.noop", scheduled_at=datetime.now(UTC) + timedelta(hours=1)))
    pending = queue.insert(db, JobSpec("bar.noop", pending=True, tags=["t-1", "b2b"], metadata={"m": 1}))
    assert later.job.state == "scheduled"
    assert pending.job.state == "pending"
    assert pending.job.tags == ["t-1", "b2b"] and pending.job.metadata == {"m": 1}


@pytest.mark.parametrize(
    "spec, field_name",
    [
        (JobSpec("x"), "kind"),
        (JobSpec("has space"), "kind"),
        (JobSpec("ok.kind", args=[1, 2]), "args"),  # type: ignore[arg-type]
        (JobSpec("ok.kind", priority=5), "priority"),
        (JobSpec("ok.kind", max_attempts=0), "max_attempts"),
        (JobSpec("ok.kind", tags=["a,b"]), "tags"),
        (JobSpec("ok.kind", args={"x": float("nan")}), "args"),
        (JobSpec("ok.kind", queue=""), "queue"),
        (JobSpec("ok.kind", unique=UniqueOpts(by_state=("completed",))), "by_state"),
    ],
)
def test_bad_job_is_refused_naming_the_field(db: psycopg.Connection, spec: JobSpec, field_name: str) -> None:
    with pytest.raises(UsageError, match=field_name):
        queue.insert(db, spec)
    assert db.execute("select count(*) as n from river_job").fetchone()["n"] == 0


def test_committed_insert_notifies_with_rivers_payload(
    db: psycopg.Connection, listener: psycopg.Connection
) -> None:
    with db.transaction():
        queue.insert_many(db, [JobSpec("bar.noop", queue="priority"), JobSpec("bar.noop", queue="priority")])
    got = notifications(listener, 1)
    assert got == [("river_insert", PAYLOADS["insert"]["payload"])]
    assert notifications(listener, timeout=0.2) == []  # one per queue, not per job


def test_rolled_back_insert_leaves_no_job_and_no_notification(
    db: psycopg.Connection, listener: psycopg.Connection
) -> None:
    class Abort(Exception):
        pass

    with pytest.raises(Abort), db.transaction():
        queue.insert(db, JobSpec("bar.noop"))
        raise Abort
    assert db.execute("select count(*) as n from river_job").fetchone()["n"] == 0
    assert notifications(listener, timeout=0.3) == []


def test_copy_insert_writes_river_rows_and_notifies_once_per_queue(
    db: psycopg.Connection, listener: psycopg.Connection
) -> None:
    specs = [JobSpec("bar.noop", {"i": i, "s": "tab\there\\"}, queue=f"q{i % 2}") for i in range(500)]
    assert queue.insert_many_copy(db, specs) == 500
    counts = queue.queue_counts(db)
    assert counts == {"q0": {"available": 250}, "q1": {"available": 250}}
    sample = db.execute("select args, metadata, tags from river_job order by id limit 1").fetchone()
    assert sample == {"args": {"i": 0, "s": "tab\there\\"}, "metadata": {}, "tags": []}
    assert sorted(p["queue"] for _, p in notifications(listener, 2)) == ["q0", "q1"]


def test_copy_insert_refuses_unique_jobs(db: psycopg.Connection) -> None:
    with pytest.raises(UsageError, match="unique"):
        queue.insert_many_copy(db, [JobSpec("bar.noop", unique=UniqueOpts(by_args=True))])


# --- unique -------------------------------------------------------------------------------------


def test_unique_duplicate_is_skipped_and_returns_the_existing_job(db: psycopg.Connection) -> None:
    spec = JobSpec("bar.unique", {"n": 1}, unique=UniqueOpts(by_args=True))
    first = queue.insert(db, spec)
    second = queue.insert(db, spec)
    other = queue.insert(db, JobSpec("bar.unique", {"n": 2}, unique=UniqueOpts(by_args=True)))
    assert not first.unique_skipped_as_duplicate and second.unique_skipped_as_duplicate
    assert second.job.id == first.job.id and other.job.id != first.job.id
    assert first.job.unique_states == 245 and first.job.unique_key is not None
    stored = db.execute("select unique_states::text as s from river_job where id = %s", (first.job.id,))
    assert stored.fetchone()["s"] == "11110101"


def test_unique_duplicates_within_one_batch_insert_once(db: psycopg.Connection) -> None:
    spec = JobSpec("bar.unique", {"n": 1}, unique=UniqueOpts(by_args=True))
    results = queue.insert_many(db, [spec, JobSpec("bar.noop"), spec])
    assert [r.unique_skipped_as_duplicate for r in results] == [False, False, True]
    assert results[2].job.id == results[0].job.id
    assert db.execute("select count(*) as n from river_job").fetchone()["n"] == 2


def test_unique_states_decide_whether_a_finished_job_blocks(db: psycopg.Connection) -> None:
    default = UniqueOpts(by_args=True)
    narrow = UniqueOpts(by_args=True, by_state=("available", "pending", "running", "scheduled"))
    for opts in (default, narrow):
        first = queue.insert(db, JobSpec("bar.unique", {"o": str(opts)}, unique=opts))
        (job,) = queue.fetch(db, "default", 10, "w1")
        queue.record_outcomes(db, [Completed(job.id)])
        again = queue.insert(db, JobSpec("bar.unique", {"o": str(opts)}, unique=opts))
        # River's default states include completed: a completed job still blocks a duplicate.
        assert again.unique_skipped_as_duplicate is (opts is default)
        assert (again.job.id == first.job.id) is (opts is default)


# --- fetch --------------------------------------------------------------------------------------


def test_job_inserted_with_plain_sql_as_river_documents_is_fetched_and_completed(
    db: psycopg.Connection, listener: psycopg.Connection
) -> None:
    with db.transaction():
        db.execute(
            "insert into river_job (args, kind, max_attempts, queue)"
            " values ('{\"x\": 1}', 'sql.job', 25, 'default')"
        )
        db.execute("select pg_notify(current_schema() || '.river_insert', '{\"queue\":\"default\"}')")
    assert notifications(listener, 1) == [("river_insert", {"queue": "default"})]
    (job,) = queue.fetch(db, "default", 10, "host_1")
    assert (job.kind, job.args, job.state, job.attempt, job.attempted_by) == (
        "sql.job",
        {"x": 1},
        "running",
        1,
        ["host_1"],
    )
    assert job.attempted_at is not None
    assert queue.record_outcomes(db, [Completed(job.id)]) == 1
    done = row(db, job.id)
    assert done["state"] == "completed" and done["finalized_at"] is not None


def test_fetch_follows_river_order_and_only_takes_due_available_jobs(db: psycopg.Connection) -> None:
    now = datetime.now(UTC)
    ids = {}
    for name, spec in {
        "p2_old": JobSpec("k.k", priority=2, scheduled_at=now - timedelta(minutes=5)),
        "p1_new": JobSpec("k.k", priority=1, scheduled_at=now - timedelta(minutes=1)),
        "p1_old": JobSpec("k.k", priority=1, scheduled_at=now - timedelta(minutes=2)),
        "future": JobSpec("k.k", scheduled_at=now + timedelta(hours=1)),
        "other_queue": JobSpec("k.k", queue="other"),
        "pending": JobSpec("k.k", pending=True),
    }.items():
        ids[name] = queue.insert(db, spec).job.id
    got = queue.fetch(db, "default", 10, "w")
    assert [j.id for j in got] == [ids["p1_old"], ids["p1_new"], ids["p2_old"]]
    assert queue.fetch(db, "default", 10, "w") == []


def test_a_host_fetches_only_the_kinds_it_can_run(db: psycopg.Connection) -> None:
    # A host without plugin P must leave P's jobs for a host that has it (not fail them here).
    mine = queue.insert(db, JobSpec("mine.k")).job.id
    theirs = queue.insert(db, JobSpec("theirs.k")).job.id
    rows = queue.fetch_for_work(db, "default", 10, "w", ["mine.k"])
    assert [r[0] for r in rows] == [mine]
    assert queue.fetch_for_work(db, "default", 10, "w", []) == []
    assert row(db, theirs)["state"] == "available" and row(db, theirs)["attempt"] == 0
    assert [j.id for j in queue.fetch(db, "default", 10, "w", kinds=["theirs.k"])] == [theirs]


def test_two_fetchers_never_get_the_same_job(db: psycopg.Connection, database_url: str) -> None:
    queue.insert_many_copy(db, [JobSpec("k.k", {"i": i}) for i in range(200)])
    other = rdb.connect(database_url)
    try:
        with db.transaction(), other.transaction():
            first = queue.fetch(db, "default", 150, "a")
            second = queue.fetch(other, "default", 150, "b")  # skips the rows locked by the first
        assert len(first) == 150 and len(second) == 50
        assert not {j.id for j in first} & {j.id for j in second}
    finally:
        other.close()


def test_attempted_by_keeps_the_last_100_workers(db: psycopg.Connection) -> None:
    job_id = queue.insert(db, JobSpec("k.k")).job.id
    db.execute(
        "update river_job set attempted_by = (select array_agg('w' || g) from generate_series(1, 100) g)"
        " where id = %s",
        (job_id,),
    )
    (job,) = queue.fetch(db, "default", 1, "newest")
    assert len(job.attempted_by) == 100 and job.attempted_by[0] == "w2" and job.attempted_by[-1] == "newest"


# --- outcomes -----------------------------------------------------------------------------------


def _running(db: psycopg.Connection, spec: JobSpec | None = None) -> queue.JobRow:
    queue.insert(db, spec or JobSpec("k.k"))
    (job,) = queue.fetch(db, (spec or JobSpec("k.k")).queue, 1, "w")
    return job


@pytest.mark.parametrize("errors_count", [0, 1, 2])
def test_failure_is_retried_on_rivers_backoff(db: psycopg.Connection, errors_count: int) -> None:
    job = _running(db)
    now = datetime.now(UTC)
    queue.record_outcomes(
        db, [Failed(job.id, job.attempt, 25, "boom", "trace", errors_count=errors_count)], now
    )
    stored = row(db, job.id)
    expected = (errors_count + 1) ** 4
    delay = (stored["scheduled_at"] - now).total_seconds()
    assert expected * 0.9 - 0.001 <= delay <= expected * 1.1 + 0.001
    # River writes a retry due within its 5 s scheduler interval straight to available.
    assert stored["state"] == ("available" if delay <= 5 else "retryable")
    assert stored["attempt"] == 1 and stored["finalized_at"] is None


def test_errors_read_back_as_rivers_attempt_error(db: psycopg.Connection) -> None:
    job = _running(db)
    at = datetime(2026, 1, 2, 3, 4, 5, 678900, tzinfo=UTC)
    queue.record_outcomes(
        db, [Failed(job.id, 1, 25, 'worker failed: escaped "detail"', "frame one\nframe two")], at
    )
    (error,) = row(db, job.id)["errors"]
    reference = PROTOCOL["attempt_error"]
    assert sorted(error) == sorted(reference)
    assert error == {**reference, "attempt": 1}


def test_exhausted_attempts_are_discarded(db: psycopg.Connection) -> None:
    job = _running(db, JobSpec("k.k", max_attempts=1))
    queue.record_outcomes(db, [Failed(job.id, job.attempt, job.max_attempts, "last")])
    stored = row(db, job.id)
    assert stored["state"] == "discarded" and stored["finalized_at"] is not None
    assert [e["error"] for e in stored["errors"]] == ["last"]


def test_snooze_keeps_the_attempt_and_counts_snoozes(db: psycopg.Connection) -> None:
    job = _running(db)
    now = datetime.now(UTC)
    queue.record_outcomes(db, [Snoozed(job.id, 60)], now)
    stored = row(db, job.id)
    assert (stored["state"], stored["attempt"], stored["metadata"]) == ("scheduled", 0, {"snoozes": 1})
    assert abs((stored["scheduled_at"] - now).total_seconds() - 60) < 0.01
    db.execute("update river_job set state = 'available', scheduled_at = now() where id = %s", (job.id,))
    (job,) = queue.fetch(db, "default", 1, "w")
    queue.record_outcomes(db, [Snoozed(job.id, 0)])
    stored = row(db, job.id)
    assert (stored["state"], stored["metadata"]) == ("available", {"snoozes": 2})


@pytest.mark.parametrize(
    "before, after",
    [
        ({}, 1),
        ({"snoozes": 2.9}, 3),
        ({"snoozes": -2.5}, -1),
        ({"snoozes": 9007199254740993}, 9007199254740994),
        ({"snoozes": "4"}, 5),
        ({"snoozes": "4.5"}, 1),
        ({"snoozes": True}, 2),
        ({"snoozes": [3]}, 1),
    ],
)
def test_snooze_counter_follows_rivers_coercion(db: psycopg.Connection, before: dict, after: int) -> None:
    """Cases from River's conformance fixtures (maintenance_values.json snooze_counters)."""
    job = _running(db, JobSpec("k.k", metadata=before))
    queue.record_outcomes(db, [Snoozed(job.id, 30)])
    assert row(db, job.id)["metadata"]["snoozes"] == after


def test_cancel_from_the_worker_finalizes_with_the_error(db: psycopg.Connection) -> None:
    job = _running(db)
    queue.record_outcomes(db, [Cancelled(job.id, job.attempt, "not wanted")])
    stored = row(db, job.id)
    assert stored["state"] == "cancelled" and stored["finalized_at"] is not None
    assert stored["errors"][0]["error"] == "not wanted"


def test_interrupted_job_goes_back_without_using_the_attempt(db: psycopg.Connection) -> None:
    job = _running(db)
    queue.record_outcomes(db, [Interrupted(job.id)])
    stored = row(db, job.id)
    assert (stored["state"], stored["attempt"], stored["errors"]) == ("available", 0, None)


def test_outcomes_only_change_jobs_still_running(db: psycopg.Connection) -> None:
    job = _running(db)
    db.execute("update river_job set state = 'available' where id = %s", (job.id,))
    assert queue.record_outcomes(db, [Completed(job.id)]) == 0
    assert row(db, job.id)["state"] == "available"


def test_batch_of_mixed_outcomes_is_one_statement(db: psycopg.Connection) -> None:
    queue.insert_many_copy(db, [JobSpec("k.k") for _ in range(4)])
    jobs = queue.fetch(db, "default", 4, "w")
    outcomes = [
        Completed(jobs[0].id),
        Failed(jobs[1].id, 1, 25, "e"),
        Snoozed(jobs[2].id, 60),
        Interrupted(jobs[3].id),
    ]
    assert queue.record_outcomes(db, outcomes) == 4
    states = [row(db, j.id)["state"] for j in jobs]
    assert states == ["completed", "available", "scheduled", "available"]


# --- cancel, retry, get, list -------------------------------------------------------------------


def test_cancel_running_job_marks_it_and_tells_its_worker(
    db: psycopg.Connection, listener: psycopg.Connection
) -> None:
    job = _running(db, JobSpec("k.k", queue="priority"))
    notifications(listener, 1)
    cancelled = queue.cancel(db, job.id)
    assert cancelled.state == "running" and "cancel_attempted_at" in cancelled.metadata
    ((topic, payload),) = notifications(listener, 1)
    expected = PAYLOADS["cancel"]
    assert topic == expected["topic"] and payload == {**expected["payload"], "job_id": job.id}
    # The worker then fails it as retryable: the pending cancel wins.
    queue.record_outcomes(db, [Failed(job.id, 1, 25, "interrupted")])
    stored = row(db, job.id)
    assert stored["state"] == "cancelled" and stored["finalized_at"] is not None


def test_cancel_waiting_job_cancels_it_now(db: psycopg.Connection) -> None:
    job = queue.insert(db, JobSpec("k.k")).job
    cancelled = queue.cancel(db, job.id)
    assert cancelled.state == "cancelled" and cancelled.finalized_at is not None
    assert queue.cancel(db, job.id).state == "cancelled"  # finalized: unchanged
    with pytest.raises(JobNotFound):
        queue.cancel(db, 999_999)


def test_retry_makes_a_discarded_job_available_with_one_more_attempt(db: psycopg.Connection) -> None:
    job = _running(db, JobSpec("k.k", max_attempts=1))
    queue.record_outcomes(db, [Failed(job.id, 1, 1, "e")])
    retried = queue.retry(db, job.id)
    assert (retried.state, retried.max_attempts, retried.finalized_at) == ("available", 2, None)
    (again,) = queue.fetch(db, "default", 1, "w")
    assert again.id == job.id and again.attempt == 2


def test_get_and_list(db: psycopg.Connection) -> None:
    a = queue.insert(db, JobSpec("k.a")).job
    b = queue.insert(db, JobSpec("k.b", queue="q2")).job
    assert queue.get(db, a.id) == a
    with pytest.raises(JobNotFound):
        queue.get(db, 424242)
    assert [j.id for j in queue.list_jobs(db)] == [a.id, b.id]
    assert [j.id for j in queue.list_jobs(db, kinds=["k.b"])] == [b.id]
    assert [j.id for j in queue.list_jobs(db, queues=["q2"], states=["available"])] == [b.id]
    assert [j.id for j in queue.list_jobs(db, after_id=a.id)] == [b.id]
    with pytest.raises(UsageError, match="state"):
        queue.list_jobs(db, states=["bogus"])


# --- maintenance --------------------------------------------------------------------------------


def test_schedule_due_makes_jobs_available_and_notifies(
    db: psycopg.Connection, listener: psycopg.Connection
) -> None:
    now = datetime.now(UTC)
    due = queue.insert(db, JobSpec("k.k", queue="q1", scheduled_at=now + timedelta(seconds=30))).job
    later = queue.insert(db, JobSpec("k.k", queue="q1", scheduled_at=now + timedelta(hours=1))).job
    assert queue.schedule_due(db, now=now + timedelta(minutes=1)) == {"q1": 1}
    assert row(db, due.id)["state"] == "available" and row(db, later.id)["state"] == "scheduled"
    assert notifications(listener, 1) == [("river_insert", {"queue": "q1"})]


def test_schedule_due_discards_unique_conflicts(db: psycopg.Connection) -> None:
    opts = UniqueOpts(by_args=True, by_state=("available", "pending", "running", "scheduled"))
    first = _running(db, JobSpec("k.u", unique=opts))
    queue.record_outcomes(db, [Failed(first.id, 1, 25, "e", errors_count=5)])  # retryable: key released
    second = queue.insert(db, JobSpec("k.u", unique=opts)).job
    assert second.id != first.id
    queue.schedule_due(db, now=datetime.now(UTC) + timedelta(days=1))
    stored = row(db, first.id)
    assert stored["state"] == "discarded"
    assert stored["metadata"]["unique_key_conflict"] == "scheduler_discarded"


def test_rescue_stuck_retries_and_counts_rescues(db: psycopg.Connection) -> None:
    job = _running(db)
    fresh = _running(db)
    db.execute("update river_job set attempted_at = now() - interval '2 hours' where id = %s", (job.id,))
    rescued = queue.rescue_stuck(db, stuck_before=datetime.now(UTC) - timedelta(hours=1))
    assert rescued == [job.id]
    stored = row(db, job.id)
    assert stored["state"] == "available"  # first error: about 1 s, within the scheduler interval
    assert stored["metadata"]["river:rescue_count"] == 1
    assert stored["errors"][0]["error"] == "Stuck job rescued by JobRescuer"
    assert row(db, fresh.id)["state"] == "running"


def test_record_lost_fails_jobs_of_a_dead_worker(db: psycopg.Connection) -> None:
    job = _running(db, JobSpec("k.k", max_attempts=1))
    assert queue.record_lost(db, [job.id, 123456], "worker process died (signal 9)") == 1
    stored = row(db, job.id)
    assert stored["state"] == "discarded" and stored["errors"][0]["error"] == "worker process died (signal 9)"


def test_clean_deletes_old_finalized_jobs_only(db: psycopg.Connection) -> None:
    done = _running(db)
    queue.record_outcomes(db, [Completed(done.id)])
    waiting = queue.insert(db, JobSpec("k.k")).job
    future = datetime.now(UTC) + timedelta(seconds=1)
    past = datetime.now(UTC) - timedelta(days=1)
    assert queue.clean(db, completed_before=past, cancelled_before=past, discarded_before=past) == 0
    assert queue.clean(db, completed_before=future, cancelled_before=future, discarded_before=future) == 1
    assert [j.id for j in queue.list_jobs(db)] == [waiting.id]
