"""Workers killed at random, helpers killed under the supervisor: no job lost, no worker abandoned.

Real ``river-supervisor run`` processes on the run's PostgreSQL. The kill storms are the situation
under test, so they run on a clock; everything after them waits on facts with deadlines. Each test
prints its figures (this machine: 2 cores shared with other test runs, so they vary).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from river_supervisor import children

from tests.harness.jobs import insert_jobs, states
from tests.harness.sentry_ingest import Item, SentryIngest
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


CRASHING_PLUGIN = "import ctypes\n\nctypes.string_at(0)  # SIGSEGV at import, as a broken C extension would\n"


def _install_crashing_plugin(site: Path) -> None:
    """A plugin distribution whose import kills the interpreter, dropped where the workers look."""
    (site / "rs_crashing.py").write_text(CRASHING_PLUGIN)
    dist = site / "rs_crashing-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rs-crashing\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[river_supervisor.plugins]\ncrashing = rs_crashing:plugin\n")


def _breaker_alert(item: Item) -> bool:
    return "its breaker is open" in (item.message or "")


def test_a_worker_that_cannot_boot_trips_its_breaker_shows_it_and_is_retried_by_itself(
    supervisors: SupervisorFactory, db: psycopg.Connection, tmp_path: Path, sentry_ingest: SentryIngest
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    sup = supervisors.start(
        processes=PROCESSES,
        env={"PYTHONPATH": path},
        queues={"default": {"concurrency": 5}},
        plugins={"enabled": ["testjobs", "crashing"]},  # enabled before it is installed
        sentry={"dsn": sentry_ingest.dsn},
    )
    wait_until(lambda: sup.cli("health").returncode == 0, 30, "every worker ready", context=sup.log_tail)
    # A deploy drops a broken plugin beside the running host: the next worker to start imports it.
    _install_crashing_plugin(site)
    installed_at = time.monotonic()
    os.kill(sup.workers()[0], signal.SIGKILL)
    tripped = sup.wait_for_event("worker.breaker_open", 60)
    tripped_after = time.monotonic() - installed_at

    # The host keeps working on its other worker, and says what is wrong where operators look (from
    # an environment without the broken plugin: any process of this one that imports it crashes).
    elsewhere = {k: v for k, v in sup.env.items() if k != "PYTHONPATH"}
    ids = insert_jobs(db, "test.noop", 50)
    wait_until(
        lambda: states(db, ids) == {"completed": 50},
        30,
        "jobs done by the healthy worker",
        context=lambda: f"{states(db, ids)}\n{sup.log_tail(60)}",
    )

    def workers_shown() -> dict[str, Any]:
        [node] = json.loads(sup.cli("status", "--json", env=elsewhere).stdout)["nodes"]
        return node["workers"]

    shown = wait_until(
        lambda: workers_shown()["down"] and workers_shown(), 15, "status showing the slot down"
    )
    assert shown["ready"] == PROCESSES - 1 and shown["expected"] == PROCESSES, shown
    [down] = shown["down"]
    assert down["slot"] == tripped["worker"] and "SIGSEGV" in down["reason"], down
    text = sup.cli("status", env=elsewhere).stdout
    assert f"worker {down['slot']} cannot start, its breaker is open" in text, text
    health = sup.cli("health", env=elsewhere)
    assert health.returncode != 0 and "breaker is open" in health.stdout, health.stdout
    [alert] = sentry_ingest.wait_for_items("event", tag=("node", "node-1"), where=_breaker_alert)
    assert alert.level == "error" and "SIGSEGV" in (alert.message or ""), alert.summary()

    # The plugin is removed: the supervisor retries the slot by itself and the host is whole again.
    shutil.rmtree(site)
    site.mkdir()
    removed_at = time.monotonic()
    sup.wait_for_event("worker.breaker_closed", children.BREAKER_RETRY + 30)
    _full_strength(sup)
    wait_until(lambda: workers_shown()["down"] == [], 15, "status without a worker down")
    assert sup.cli("health").returncode == 0
    _no_traceback(sup)
    print(
        f"\nbreaker: a worker that cannot boot tripped it {tripped_after:.1f}s after the broken plugin was"
        f" installed ({children.BOOT_FAILURES_TO_TRIP} boot failures); 50 jobs ran on the other worker"
        f" meanwhile; the slot came back {time.monotonic() - removed_at:.1f}s after the plugin was removed"
        f" (retried every {children.BREAKER_RETRY:g}s)"
    )
