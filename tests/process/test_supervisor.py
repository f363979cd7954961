"""``river-supervisor run`` as users run it: real processes, a real database, real signals."""

from __future__ import annotations

import signal
import time
from typing import Any

import psycopg

from tests.harness.supervisors import SupervisorFactory, cpu_seconds
from tests.harness.wait import wait_until


def insert_jobs(db: psycopg.Connection, kind: str, count: int, args: str = "{}", **columns: Any) -> list[int]:
    """Insert jobs the way River documents for plain SQL: rows, then a pg_notify wake-up."""
    max_attempts = columns.get("max_attempts", 25)
    rows = db.execute(
        "insert into river_job (kind, args, max_attempts) "
        "select %s, %s::jsonb, %s from generate_series(1, %s) returning id",
        (kind, args, max_attempts, count),
    ).fetchall()
    db.execute("select pg_notify(current_schema() || '.river_insert', '{\"queue\":\"default\"}')")
    return [row["id"] for row in rows]


def states(db: psycopg.Connection, ids: list[int] | None = None) -> dict[str, int]:
    if ids is None:
        rows = db.execute("select state::text as state, count(*) as n from river_job group by 1").fetchall()
    else:
        rows = db.execute(
            "select state::text as state, count(*) as n from river_job where id = any(%s) group by 1", (ids,)
        ).fetchall()
    return {row["state"]: row["n"] for row in rows}


def job(db: psycopg.Connection, job_id: int) -> dict[str, Any]:
    return db.execute("select * from river_job where id = %s", (job_id,)).fetchone()


def test_two_workers_complete_2000_noop_jobs_inserted_with_sql(
    supervisors: SupervisorFactory, db: psycopg.Connection
) -> None:
    sup = supervisors.start(processes=2, queues={"default": {"concurrency": 20}})
    sup.wait_for_event("worker.started")
    ids = insert_jobs(db, "test.noop", 2000)
    wait_until(
        lambda: states(db, ids) == {"completed": 2000}, 60, "2000 completed jobs", context=sup.log_tail
    )
    attempted_by = db.execute(
        "select count(distinct attempted_by[1]) as n from river_job where id = any(%s)", (ids,)
    ).fetchone()
    assert attempted_by["n"] == 2  # both worker processes took part


def test_failures_end_in_the_row_and_the_supervisor_keeps_working(
    supervisors: SupervisorFactory, db: psycopg.Connection
) -> None:
    sup = supervisors.start(processes=1, job_timeout="30s")
    sup.wait_for_event("worker.started")
    # One at a time: a crash takes the outcomes its worker had not yet written with it
    # (they are recorded as lost, and retried), which is not what this test is about.
    ids = []
    for kind, args in (
        ("test.raise", '{"message": "card declined"}'),
        ("test.exit", "{}"),
        ("test.slow", "{}"),
    ):
        [job_id] = insert_jobs(db, kind, 1, args, max_attempts=1)
        wait_until(
            lambda job_id=job_id: job(db, job_id)["state"] == "discarded",
            20,
            f"{kind} job {job_id} discarded",
            context=sup.log_tail,
        )
        ids.append(job_id)
    raising, crashing, slow = ids
    assert "RuntimeError: card declined" in job(db, raising)["errors"][-1]["error"]
    assert "exited with code 13" in job(db, crashing)["errors"][-1]["error"]
    assert "timeout of 2s" in job(db, slow)["errors"][-1]["error"]

    # a handler's JSON result is kept in the row, as River's metadata "output"
    [echoed] = insert_jobs(db, "test.echo", 1, '{"n": 7}')
    wait_until(
        lambda: job(db, echoed)["state"] == "completed", 20, "echo job completed", context=sup.log_tail
    )
    assert job(db, echoed)["metadata"]["output"] == {"echo": {"n": 7}, "attempt": 1}

    # still up, still working
    assert sup.exit_code() is None
    ids = insert_jobs(db, "test.noop", 10)
    wait_until(
        lambda: states(db, ids) == {"completed": 10}, 20, "10 more jobs completed", context=sup.log_tail
    )


def test_sigterm_lets_running_jobs_finish_then_exits_cleanly(
    supervisors: SupervisorFactory, db: psycopg.Connection
) -> None:
    sup = supervisors.start(processes=2, shutdown_grace="3s", queues={"default": {"concurrency": 4}})
    sup.wait_for_event("worker.started")
    quick = insert_jobs(db, "test.sleep", 2, '{"seconds": 0.5}')
    stuck = insert_jobs(db, "test.sleep", 2, '{"seconds": 120}')
    wait_until(
        lambda: states(db, quick + stuck).get("running") == 4, 20, "4 running jobs", context=sup.log_tail
    )

    sup.signal(signal.SIGTERM)
    assert sup.wait_exit(15) == 0, sup.log_tail()

    assert states(db, quick) == {"completed": 2}
    assert states(db, stuck) == {"available": 2}  # put back for another host, no attempt burnt
    for job_id in stuck:
        row = job(db, job_id)
        assert row["attempt"] == 0 and not row["errors"]
    assert "running" not in states(db)
    wait_until(lambda: not sup.group(), 10, "no process left in the supervisor's group")


def test_sigkill_of_the_parent_leaves_no_worker(
    supervisors: SupervisorFactory, db: psycopg.Connection
) -> None:
    sup = supervisors.start(processes=2)
    wait_until(lambda: len(sup.log_events("worker.started")) == 2, 20, "two workers", context=sup.log_tail)
    workers = sup.children()
    assert workers

    sup.signal(signal.SIGKILL)
    sup.wait_exit(10)
    wait_until(lambda: not sup.group(), 10, f"workers {workers} gone after the parent's SIGKILL")


def test_crash_loop_stops_restarts_without_spinning(
    supervisors: SupervisorFactory, db: psycopg.Connection
) -> None:
    sup = supervisors.start(processes=1, queues={"default": {"concurrency": 1}})
    sup.wait_for_event("worker.started")
    insert_jobs(db, "test.exit", 20, max_attempts=1)

    event = sup.wait_for_event("worker.crash_loop", 60)
    assert event["level"] == "CRITICAL"
    starts = len(sup.log_events("worker.started"))

    # The situation under test is an interval with restarts given up: the parent must idle in it
    # (a spinning loop burns a whole core: 3 s of CPU in 3 s).
    before = cpu_seconds(sup.pid)
    time.sleep(3)
    assert cpu_seconds(sup.pid) - before < 0.5
    assert len(sup.log_events("worker.started")) == starts
    assert sup.exit_code() is None

    sup.signal(signal.SIGTERM)
    assert sup.wait_exit(15) == 0


def test_workers_ride_out_lost_database_connections(
    supervisors: SupervisorFactory, db: psycopg.Connection
) -> None:
    sup = supervisors.start(processes=2)
    wait_until(lambda: len(sup.log_events("worker.started")) == 2, 20, "two workers", context=sup.log_tail)
    first = insert_jobs(db, "test.noop", 20)
    wait_until(
        lambda: states(db, first) == {"completed": 20}, 20, "jobs before the cut", context=sup.log_tail
    )

    killed = db.execute(
        "select count(pg_terminate_backend(pid)) as n from pg_stat_activity "
        "where application_name like 'river-supervisor worker%%' "
        "or application_name = 'river-supervisor completer'"
    ).fetchone()["n"]
    assert killed >= 2
    second = insert_jobs(db, "test.noop", 20)
    wait_until(
        lambda: states(db, second) == {"completed": 20}, 30, "jobs after the cut", context=sup.log_tail
    )
    assert len(sup.log_events("worker.started")) == 2  # no worker had to be restarted
    assert sup.log_events("worker.reconnected")
