"""Workers killed at random, helpers killed under the supervisor: no job lost, no worker abandoned.

Real ``river-supervisor run`` processes on the run's PostgreSQL. The kill storms are the situation
under test, so they run on a clock; everything after them waits on facts with deadlines. Each test
prints its figures (this machine: 2 cores shared with other test runs, so they vary).
"""

from __future__ import annotations

import os
import random
import signal
import time

import psycopg
import pytest

from tests.harness.jobs import insert_jobs, states
from tests.harness.supervisors import SupervisorFactory, SupervisorProcess
from tests.harness.wait import wait_until

pytestmark = pytest.mark.faults

PROCESSES = 2  # workers per host
KILL_EVERY = 0.3  # seconds between kills (the storm)
STORM = 12.0  # seconds the storm lasts


def _start_host(supervisors: SupervisorFactory, name: str) -> SupervisorProcess:
    sup = supervisors.start(name, processes=PROCESSES, queues={"default": {"concurrency": 10}})
    wait_until(lambda: len(sup.workers()) == PROCESSES, 30, f"{name}: workers up", context=sup.log_tail)
    return sup


def _full_strength(sup: SupervisorProcess) -> None:
    wait_until(
        lambda: len(sup.workers()) == PROCESSES and sup.exit_code() is None,
        30,
        f"{sup.name}: back to {PROCESSES} workers",
        context=sup.log_tail,
    )


def _kill_every(pick: callable, seconds: float, rng: random.Random) -> int:  # type: ignore[valid-type]
    """SIGKILL one process chosen by ``pick`` every KILL_EVERY seconds for ``seconds``; count them."""
    kills = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        victims = pick()
        if victims:
            try:
                os.kill(rng.choice(victims), signal.SIGKILL)
                kills += 1
            except ProcessLookupError:
                pass
        time.sleep(KILL_EVERY)  # the storm's pace is the fault under test, not a synchronisation
    return kills


def _no_traceback(sup: SupervisorProcess) -> None:
    assert not [line for line in sup.log_lines() if "Traceback" in line], sup.log_tail(80)


def test_kill_storm_on_two_hosts_completes_every_job_and_keeps_every_worker(
    supervisors: SupervisorFactory, db: psycopg.Connection
) -> None:
    jobs = 6_000
    hosts = [_start_host(supervisors, f"host-{n}") for n in (1, 2)]
    ids = insert_jobs(db, "test.sleep", jobs, '{"seconds": 0.01}')
    rng = random.Random(9)
    started = time.monotonic()
    kills = _kill_every(lambda: [pid for sup in hosts for pid in sup.workers()], STORM, rng)
    storm_over = time.monotonic()

    wait_until(
        lambda: states(db, ids) == {"completed": jobs},
        240,
        f"all {jobs} jobs completed after the storm",
        context=lambda: f"{states(db, ids)}\n" + "\n".join(sup.log_tail(15) for sup in hosts),
    )
    done = time.monotonic()
    for sup in hosts:
        _full_strength(sup)
    assert states(db, ids) == {"completed": jobs}  # none running, available or lost
    charged = db.execute(
        "select count(*) filter (where cardinality(errors) > 0) as charged, max(attempt) as max_attempt "
        "from river_job where id = any(%s)",
        (ids,),
    ).fetchone()
    restarts = {sup.name: len(sup.log_events("worker.restart_scheduled")) for sup in hosts}
    delays = [e["delay"] for sup in hosts for e in sup.log_events("worker.restart_scheduled")]
    for sup in hosts:
        assert not sup.log_events("worker.breaker_open"), sup.log_tail()
        assert not sup.log_events("worker.crash_loop")
        _no_traceback(sup)
    print(
        f"\nkill storm: {kills} workers SIGKILLed in {storm_over - started:.1f}s on 2 hosts x {PROCESSES}; "
        f"{jobs} jobs all completed {done - storm_over:.1f}s after the storm ({done - started:.1f}s in all); "
        f"restarts {restarts}, longest backoff {max(delays, default=0):.1f}s; "
        f"{charged['charged']} jobs charged an attempt by a kill, max attempt {charged['max_attempt']}"
    )


def test_forkserver_and_resource_tracker_deaths_cost_no_worker_and_no_job(
    supervisors: SupervisorFactory, db: psycopg.Connection
) -> None:
    jobs = 2_000
    sup = _start_host(supervisors, "host-1")
    workers_before = sorted(sup.workers())
    ids = insert_jobs(db, "test.sleep", jobs, '{"seconds": 0.01}')
    rng = random.Random(2)

    # The helpers die every 0.3 s for 4 s: running workers are not their children any more.
    helper_kills = _kill_every(lambda: sup.helpers("forkserver") + sup.helpers("resource_tracker"), 4.0, rng)
    assert sorted(sup.workers()) == workers_before, "a helper's death took workers with it"

    # Then workers die too, so new ones must be started through forkservers killed meanwhile.
    mixed = _kill_every(
        lambda: sup.workers() + sup.helpers("forkserver") + sup.helpers("resource_tracker"), 6.0, rng
    )
    wait_until(
        lambda: states(db, ids) == {"completed": jobs},
        180,
        f"all {jobs} jobs completed",
        context=lambda: f"{states(db, ids)}\n{sup.log_tail()}",
    )
    _full_strength(sup)
    assert sup.exit_code() is None
    assert not sup.log_events("worker.breaker_open")
    _no_traceback(sup)
    spawn_failures = len(sup.log_events("worker.spawn_failed"))
    started = len(sup.log_events("worker.started"))
    print(
        f"\nhelpers: {helper_kills} forkserver/resource-tracker kills with no worker lost; "
        f"then {mixed} kills of workers and helpers: {started} worker starts, {spawn_failures} starts "
        f"refused by a dying forkserver and retried; {jobs} jobs completed, supervisor up"
    )
