"""``river-supervisor run`` as users run it: real processes, a real database, real signals."""

from __future__ import annotations

import json
import signal
import time

import psycopg

from tests.harness.jobs import insert_jobs, job, states
from tests.harness.supervisors import SupervisorFactory, cpu_seconds
from tests.harness.wait import wait_until


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


def test_a_host_leaves_jobs_of_kinds_it_lacks_and_publishes_what_it_serves(
    supervisors: SupervisorFactory, db: psycopg.Connection
) -> None:
    sup = supervisors.start(processes=1, queues={"default": {"concurrency": 4}})
    sup.wait_for_event("worker.started")
    foreign = insert_jobs(db, "other_plugin.kind", 8)  # fetched first (River's order) if fetched at all
    ours = insert_jobs(db, "test.noop", 8)
    wait_until(lambda: states(db, ours) == {"completed": 8}, 60, "our 8 jobs completed", context=sup.log_tail)
    untouched = db.execute(
        "select count(*) as n from river_job where id = any(%s) and state = 'available' and attempt = 0",
        (foreign,),
    ).fetchone()
    assert untouched["n"] == 8  # waiting for a host with that plugin; no attempt used here
    row = db.execute("select serves from river_supervisor_node where stopped_at is null").fetchone()
    assert row["serves"]["queues"] == ["default"] and "test.noop" in row["serves"]["kinds"]
    assert "other_plugin.kind" not in row["serves"]["kinds"]


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

    # one line per finished job: failures at WARNING with the error's first line, args never
    sup.wait_for_event("job.finished", where=lambda e: e["job_id"] == echoed)
    ended = {e["job_id"]: e for e in sup.log_events("job.finished")}
    raised, echo = ended[raising], ended[echoed]
    assert (raised["level"], raised["outcome"]) == ("WARNING", "discarded")
    assert raised["message"].endswith(": RuntimeError: card declined")
    assert (echo["level"], echo["kind"], echo["queue"]) == ("INFO", "test.echo", "default")
    assert echo["message"].startswith(f"job test.echo {echoed} (queue default, attempt 1/25) completed in ")
    assert '"n": 7' not in json.dumps(echo)  # the args stay out of the log

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


def test_a_job_that_kills_its_worker_never_stops_the_restarts(
    supervisors: SupervisorFactory, db: psycopg.Connection
) -> None:
    sup = supervisors.start(processes=1, queues={"default": {"concurrency": 1}})
    sup.wait_for_event("worker.started")
    crashing = insert_jobs(db, "test.exit", 4, max_attempts=1)

    # Each crash is the job's problem: it is discarded with the exit in its row, and the worker
    # (which had booted) is restarted each time, with a backoff that never exceeds its cap.
    wait_until(
        lambda: states(db, crashing) == {"discarded": 4},
        60,
        "4 crashing jobs discarded",
        context=sup.log_tail,
    )
    assert all("exited with code 13" in job(db, i)["errors"][-1]["error"] for i in crashing)
    delays = [e["delay"] for e in sup.log_events("worker.restart_scheduled")]
    assert len(delays) >= 4 and max(delays) <= 5.0
    assert not sup.log_events("worker.breaker_open")

    ids = insert_jobs(db, "test.noop", 10)
    wait_until(lambda: states(db, ids) == {"completed": 10}, 30, "the host still works", context=sup.log_tail)
    # and it idles between jobs (a spinning loop burns a whole core: 2 s of CPU in 2 s)
    before = cpu_seconds(sup.pid)
    time.sleep(2)
    assert cpu_seconds(sup.pid) - before < 0.5
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
