"""A read-only database for 30 s (a failover to a replica, a full disk's remedy, an Aurora reader).

Issue 10 item 1: every loop retries with backoff and no supervisor exits; the leader steps down
while it cannot write; within 10 s of the database turning writable the cluster is back.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from tests.faults.database_faults import DatabaseFaultRun
from tests.harness.private_postgres import PrivatePostgres
from tests.harness.sentry_ingest import SentryIngest
from tests.harness.supervisors import SupervisorFactory
from tests.harness.wait import wait_until

pytestmark = pytest.mark.faults

READ_ONLY_FOR = 30.0


def test_supervisors_ride_out_a_read_only_database(
    private_postgres: PrivatePostgres, private_supervisors: SupervisorFactory, sentry_ingest: SentryIngest
) -> None:
    run = DatabaseFaultRun(private_postgres, private_supervisors, sentry_ingest).start()
    leader = run.leader()

    wall, started = datetime.now(UTC), time.monotonic()
    with private_postgres.read_only():
        (_, lost), *_ = wait_until(
            lambda: [(s, e) for s, e in run.events_since(wall, {"leadership.lost"}) if s is leader],
            15,
            "the leader stepping down on a read-only database",
            interval=0.1,
            context=run.tails,
        )
        assert lost["detail"]["reason"] == "database_read_only"
        time.sleep(max(0.0, started + READ_ONLY_FOR - time.monotonic()))  # the fault lasts 30 s
        assert all(s.exit_code() is None for s in run.sups), run.tails()
    run.database_back()

    stepped_down = (datetime.fromisoformat(lost["time"]) - wall).total_seconds()
    retries = {
        name: len(run.events_since(wall, {name}))
        for name in (
            "queue.completer_retry",
            "worker.connection_lost",
            "service.failed",
            "leadership.election_failed",
        )
    }
    print(f"\nread-only {READ_ONLY_FOR:g} s: leader stepped down in {stepped_down:.2f} s; retries {retries}")
    figures = run.check("read-only", max_sentry_events=6)
    assert figures["leader_after_s"] <= 10  # one leader, jobs flowing, within 10 s of the database
