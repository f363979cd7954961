"""No job stays ``running`` for a process that is gone: a dead worker's, a dead host's.

Real supervisors on the run's PostgreSQL; each test prints its figures (2 shared cores here).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import psycopg
import pytest

from tests.harness.jobs import insert_jobs, job, states
from tests.harness.supervisors import SupervisorFactory
from tests.harness.wait import wait_until

pytestmark = pytest.mark.faults

HOLD_LOCK = 7007  # advisory lock the test holds to keep a worker's fetch from committing

TTL = 15.0  # the default lease ttl: a dead host's jobs must be back within TTL + 10 s


@pytest.fixture
def held_fetches(db: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """While the returned connection holds advisory lock HOLD_LOCK, a fetch (available -> running)
    waits inside its statement, uncommitted: a worker can die with its fetch in flight."""
    db.execute(
        "create or replace function rs_test_hold_fetch() returns trigger language plpgsql as $$ "
        "begin if old.state = 'available' and new.state = 'running' then "
        f"perform pg_advisory_xact_lock_shared({HOLD_LOCK}); end if; return new; end $$"
    )
    db.execute(
        "create trigger rs_test_hold_fetch before update on river_job "
        "for each row execute function rs_test_hold_fetch()"
    )
    locker = psycopg.connect(db.info.dsn, autocommit=True)
    locker.execute("select pg_advisory_lock(%s)", (HOLD_LOCK,))
    try:
        yield locker
    finally:
        locker.close()
        db.execute("drop trigger if exists rs_test_hold_fetch on river_job")
        db.execute("drop function if exists rs_test_hold_fetch()")


def test_a_worker_killed_while_its_fetch_commits_strands_no_job(
    supervisors: SupervisorFactory, db: psycopg.Connection, held_fetches: psycopg.Connection
) -> None:
    sup = supervisors.start(processes=1, queues={"default": {"concurrency": 5}})
    [worker] = wait_until(lambda: sup.workers(), 30, "a worker", context=sup.log_tail)
    ids = insert_jobs(db, "test.noop", 5)
    wait_until(
        lambda: db.execute(
            "select count(*) as n from pg_stat_activity"
            " where application_name like 'river-supervisor worker%%' and wait_event_type = 'Lock'"
        ).fetchone()["n"],
        20,
        "the worker's fetch waiting, uncommitted",
        context=sup.log_tail,
    )
    killed_at = time.monotonic()
    sup.signal_pid(worker, signal.SIGKILL)
    sup.wait_for_event("worker.exited", 20)
    # Only now may the fetch go on: had the dead worker's session survived, it would commit its
    # jobs as running after the parent had looked for them, and they would stay so for an hour.
    held_fetches.execute("select pg_advisory_unlock(%s)", (HOLD_LOCK,))
    wait_until(
        lambda: states(db, ids) == {"completed": 5},
        30,
        "the 5 jobs completed by the next worker",
        context=lambda: f"{states(db, ids)}\n{sup.log_tail()}",
    )
    print(
        f"\nfetch in flight at SIGKILL: its session was ended before the parent looked; 5 jobs completed "
        f"{time.monotonic() - killed_at:.1f}s after the kill, attempts {[job(db, i)['attempt'] for i in ids]}"
    )


def test_a_crashed_hosts_jobs_run_again_on_its_peer_within_ttl_plus_10s(
    supervisors: SupervisorFactory, db: psycopg.Connection
) -> None:
    count = 20
    host_a = supervisors.start("host-a", processes=2, queues={"default": {"concurrency": 20}})
    host_a.wait_for_event("leadership.gained", 30)
    ids = insert_jobs(db, "test.hang_first", count)
    wait_until(
        lambda: states(db, ids) == {"running": count},
        30,
        f"{count} jobs running on host-a",
        context=host_a.log_tail,
    )
    host_b = supervisors.start("host-b", processes=2, queues={"default": {"concurrency": 20}})
    wait_until(lambda: len(host_b.workers()) == 2, 30, "host-b's workers", context=host_b.log_tail)

    # Power loss: every process of host-a frozen, then killed; nothing of it is ever restarted.
    host_a.kill_group()
    crashed_at = time.monotonic()
    back = wait_until(
        lambda: "running" not in states(db, ids) and time.monotonic(),
        2 * (TTL + 10),
        "host-a's jobs no longer running",
        context=lambda: f"{states(db, ids)}\n{host_a.log_tail()}\n{host_b.log_tail()}",
    )
    wait_until(
        lambda: states(db, ids) == {"completed": count},
        30,
        f"{count} jobs completed on host-b",
        context=lambda: f"{[job(db, i) for i in ids[:3]]}\n{host_a.log_tail()}\n{host_b.log_tail()}",
    )
    done = time.monotonic()
    rows = [job(db, i) for i in ids]
    assert all(r["attempted_by"][-1].startswith("host-b:") for r in rows)
    assert all(r["errors"][-1]["error"].startswith("host host-a stopped") for r in rows)
    assert host_b.log_events("maintenance.host_rescued")
    print(
        f"\nhost crash: {count} jobs of host-a back {back - crashed_at:.1f}s after the crash "
        f"(target: ttl {TTL:g}s + 10 s = {TTL + 10:g}s), "
        f"all completed on host-b after {done - crashed_at:.1f}s"
    )
