"""Whoever gets the SIGTERM, the stop is graceful; whoever dies, nothing it started survives.

Real supervisors on the run's PostgreSQL; each test prints its figures (2 shared cores here).
"""

from __future__ import annotations

import os
import signal
import time

import psycopg
import pytest

from tests.harness.jobs import insert_jobs, job, states
from tests.harness.supervisors import SupervisorFactory, SupervisorProcess
from tests.harness.wait import wait_until

pytestmark = pytest.mark.faults


def _sigterm(sup: SupervisorProcess, target: str) -> None:
    if target == "the parent":
        sup.signal(signal.SIGTERM)
    elif target == "the process group":  # kill -- -PGID, timeout(1), a shell's job control
        os.killpg(sup.pid, signal.SIGTERM)
    else:  # every process, as systemd's KillMode=control-group does
        for pid in sup.group():
            os.kill(pid, signal.SIGTERM)


@pytest.mark.parametrize("target", ["the parent", "the process group", "every process"])
def test_sigterm_drains_running_jobs_whoever_receives_it(
    supervisors: SupervisorFactory, db: psycopg.Connection, target: str
) -> None:
    sup = supervisors.start(processes=2, shutdown_grace="20s", queues={"default": {"concurrency": 4}})
    wait_until(lambda: len(sup.workers()) == 2, 30, "two workers", context=sup.log_tail)
    # Jobs whose work is a child process (a shell command); with every process signalled, the
    # children would get it too (that is why the unit file asks for KillMode=mixed): plain sleeps.
    kind = "test.sleep" if target == "every process" else "test.shell_child"
    ids = insert_jobs(db, kind, 4, '{"seconds": 3}')
    wait_until(lambda: states(db, ids) == {"running": 4}, 20, "4 running jobs", context=sup.log_tail)
    sent = time.monotonic()
    _sigterm(sup, target)
    assert sup.wait_exit(40) == 0, sup.log_tail()
    took = time.monotonic() - sent
    assert states(db, ids) == {"completed": 4}, [job(db, i)["errors"] for i in ids]  # drained, none run twice
    wait_until(lambda: not sup.group(), 10, "no process left")
    assert not [line for line in sup.log_lines() if "Traceback" in line or "code 255" in line]
    print(f"\nSIGTERM to {target}: 4 running jobs finished, exit 0 after {took:.1f}s")


def test_an_orphaned_worker_puts_its_jobs_back_quietly_and_leaves_nothing(
    supervisors: SupervisorFactory, db: psycopg.Connection
) -> None:
    sup = supervisors.start(processes=2, queues={"default": {"concurrency": 4}})
    wait_until(lambda: len(sup.workers()) == 2, 30, "two workers", context=sup.log_tail)
    ids = insert_jobs(db, "test.shell_child", 4, '{"seconds": 600.4343}')
    wait_until(lambda: states(db, ids) == {"running": 4}, 20, "4 running jobs", context=sup.log_tail)
    sent = time.monotonic()
    sup.signal(signal.SIGKILL)
    sup.wait_exit(10)
    wait_until(
        lambda: not sup.group(), 10, "workers and their jobs' children gone after the parent's SIGKILL"
    )
    gone = time.monotonic() - sent
    wait_until(lambda: states(db, ids) == {"available": 4}, 10, "the 4 jobs put back")
    assert all(job(db, i)["attempt"] == 0 and not job(db, i)["errors"] for i in ids)
    assert len(sup.log_events("worker.orphaned")) == 2
    assert not [line for line in sup.log_lines() if "Traceback" in line], sup.log_tail()
    print(
        f"\nparent SIGKILLed: workers and the jobs' children gone after {gone:.2f}s, "
        "4 jobs put back unattempted"
    )
