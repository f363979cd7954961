"""Jobs that crash their worker or refuse to stop: the job pays, the host and the other jobs do not.

Real supervisors on the run's PostgreSQL; each test prints its figures (2 shared cores here).
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import psycopg
import pytest

from tests.harness.jobs import insert_jobs, job, states
from tests.harness.supervisors import SupervisorFactory
from tests.harness.wait import wait_until

pytestmark = pytest.mark.faults

STUCK_TIMEOUT = 2.0  # test.stuck's declared timeout


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in entry.joinpath("cmdline").read_bytes().replace(b"\0", b" ").decode():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_poison_jobs_beside_2000_normal_jobs_name_their_crash_and_harm_no_one(
    supervisors: SupervisorFactory, db: psycopg.Connection
) -> None:
    sup = supervisors.start(processes=2, queues={"default": {"concurrency": 10}})
    wait_until(lambda: len(sup.workers()) == 2, 30, "two workers", context=sup.log_tail)
    started = time.monotonic()
    normal = insert_jobs(db, "test.noop", 1000)
    segfaults = insert_jobs(db, "test.segfault", 3, max_attempts=2)
    exits = insert_jobs(db, "test.exit", 3, '{"code": 3}', max_attempts=1)
    normal += insert_jobs(db, "test.noop", 1000)

    wait_until(
        lambda: states(db, segfaults + exits) == {"discarded": 6},
        120,
        "the 6 poison jobs discarded",
        context=lambda: f"{states(db, segfaults + exits)}\n{sup.log_tail()}",
    )
    wait_until(lambda: states(db, normal) == {"completed": 2000}, 120, "2000 normal jobs completed")
    took = time.monotonic() - started
    for job_id in segfaults:
        assert [e["error"].split(") ", 1)[1] for e in job(db, job_id)["errors"]] == ["killed by SIGSEGV"] * 2
    for job_id in exits:
        assert job(db, job_id)["errors"][-1]["error"].endswith("exited with code 3")  # not "could not start"
    charged = db.execute(
        "select count(*) as n, coalesce(max(attempt), 0) as top from river_job"
        " where id = any(%s) and cardinality(errors) > 0",
        (normal,),
    ).fetchone()
    assert (sup.exit_code() is None and len(sup.workers()) == 2) or wait_until(
        lambda: len(sup.workers()) == 2, 30
    )
    assert not sup.log_events("worker.breaker_open")
    assert not [line for line in sup.log_lines() if "Traceback" in line]
    print(
        f"\npoison: 3 SIGSEGV jobs (2 attempts each) and 3 os._exit(3) jobs discarded with their cause; "
        f"2000 normal jobs completed in {took:.1f}s; {charged['n']} of them were running beside a crash "
        f"and used an attempt (max attempt {charged['top']}); "
        f"{len(sup.log_events('worker.restart_scheduled'))} worker restarts, no breaker"
    )


def test_stuck_jobs_are_killed_within_their_timeout_and_leave_no_process(
    supervisors: SupervisorFactory, db: psycopg.Connection
) -> None:
    sup = supervisors.start(processes=1, queues={"default": {"concurrency": 4}})
    wait_until(lambda: sup.workers(), 30, "a worker", context=sup.log_tail)
    marker = "600.4242"  # `sleep 600.4242`: a child process no other test starts
    ids = {
        how: insert_jobs(db, "test.stuck", 1, json.dumps({"how": how, "marker": marker}), max_attempts=2)[0]
        for how in ("sleep", "grandchild", "ignore_term", "sigstop")
    }
    started = time.monotonic()
    wait_until(
        lambda: states(db, list(ids.values())) == {"discarded": 4},
        120,
        "4 stuck jobs discarded after their 2 attempts",
        context=lambda: f"{states(db, list(ids.values()))}\n{sup.log_tail()}",
    )
    took = time.monotonic() - started
    overruns = {}
    for how, job_id in ids.items():
        row = job(db, job_id)
        assert row["attempt"] == 2 and len(row["errors"]) == 2, (how, row["errors"])
        assert all(f"exceeded its timeout of {STUCK_TIMEOUT:g}s" in e["error"] for e in row["errors"]), how
        stopped = datetime.fromisoformat(row["errors"][-1]["at"].replace("Z", "+00:00"))
        overruns[how] = round((stopped - row["attempted_at"]).total_seconds() - STUCK_TIMEOUT, 1)
    assert max(overruns.values()) <= 5.0, overruns  # the bound: killed within timeout + 5 s
    wait_until(lambda: not _processes_with(marker), 10, f"no `sleep {marker}` left")
    assert sup.exit_code() is None and not sup.log_events("worker.breaker_open")
    print(
        f"\nstuck jobs (sleep, a grandchild, a child ignoring SIGTERM, SIGSTOP of the worker): "
        f"each attempt stopped this long past its {STUCK_TIMEOUT:g}s timeout: {overruns}; "
        f"2 attempts each, discarded after {took:.1f}s; no child process left"
    )
