"""A frozen database (postmaster and backends SIGSTOPped for 3 x ttl): the parent's loop does not
freeze with it. Issue 10 item 3: the leader steps down and says so within ttl + 2 s while every call
hangs, and job timeouts are still enforced; afterwards the cluster heals."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from river_supervisor import queue
from river_supervisor.queue import JobSpec

from tests.faults.database_faults import TTL, DatabaseFaultRun
from tests.harness.private_postgres import PrivatePostgres
from tests.harness.sentry_ingest import SentryIngest
from tests.harness.supervisors import SupervisorFactory
from tests.harness.wait import wait_until

pytestmark = pytest.mark.faults

STEPPED_DOWN = {"leadership.expired", "leadership.lost", "leadership.superseded"}


def test_a_frozen_database_does_not_freeze_the_supervisors(
    private_postgres: PrivatePostgres, private_supervisors: SupervisorFactory, sentry_ingest: SentryIngest
) -> None:
    run = DatabaseFaultRun(private_postgres, private_supervisors, sentry_ingest).start()
    leader = run.leader()
    with private_postgres.admin("river") as conn:  # runs into its 2 s timeout while the database is frozen
        (slow_id,) = [
            r.job.id for r in queue.insert_many(conn, [JobSpec("test.slow", {"seconds": 60}, max_attempts=1)])
        ]
    wait_until(
        lambda: run.query("select 1 from river_job where id = %s and state = 'running'", (slow_id,)),
        20,
        "the slow job to run",
    )

    frozen_at, wall = time.monotonic(), datetime.now(UTC)
    with private_postgres.frozen():
        # Every call of the leader now hangs: it must still see its trust window close, and say so.
        wait_until(
            lambda: [e for s, e in run.events_since(wall, STEPPED_DOWN) if s is leader],
            TTL + 10,
            "the leader stepping down during the freeze",
            interval=0.1,
            context=run.tails,
        )
        # The loop goes on: the slow job's timeout is enforced (its worker stopped) while frozen.
        wait_until(
            lambda: run.events_since(wall, {"job.timeout"}),
            3 * TTL,
            "the slow job's timeout enforced during the freeze",
            interval=0.1,
            context=run.tails,
        )
        enforced_in = time.monotonic() - frozen_at
        time.sleep(max(0.0, frozen_at + 3 * TTL - time.monotonic()))  # the fault: frozen for 3 x ttl
    run.database_back()

    ((_, down),) = [(s, e) for s, e in run.events_since(wall, STEPPED_DOWN) if s is leader][:1]
    stepped_down_after = (datetime.fromisoformat(down["time"]) - wall).total_seconds()
    timeouts = run.events_since(wall, {"job.timeout"})
    (_, reaped), *_ = wait_until(lambda: run.events_since(wall, {"worker.exited"}), 30, "the worker reaped")
    reaped_in = (datetime.fromisoformat(reaped["time"]) - wall).total_seconds()
    print(
        f"\nfreeze {3 * TTL:g} s: leader stepped down ({down['event']}) {stepped_down_after:.2f} s into it; "
        f"slow job's timeout enforced {enforced_in:.2f} s into it, worker reaped {reaped_in:.2f} s into it"
    )
    assert stepped_down_after <= TTL + 2
    assert [e["job_id"] for _, e in timeouts] == [slow_id]

    run.check("freeze", max_sentry_events=8)
    slow = wait_until(
        lambda: run.query(
            "select state, errors from river_job where id = %s and state <> 'running'", (slow_id,)
        ),
        30,
        "the slow job's fate recorded after the thaw",
    )
    assert slow[0]["state"] == "discarded" and "timeout" in slow[0]["errors"][-1]["error"]
