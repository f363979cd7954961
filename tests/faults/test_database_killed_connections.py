"""The leader's connections terminated (``pg_terminate_backend``) every 2 s for 20 s.

Issue 10 item 4: a leader whose lease is still valid continues its term on a new connection; one
Sentry event for the episode, not one (or two) per kill; no leadership change.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from tests.faults.database_faults import DatabaseFaultRun
from tests.harness.private_postgres import PrivatePostgres
from tests.harness.sentry_ingest import SentryIngest
from tests.harness.supervisors import SupervisorFactory

pytestmark = pytest.mark.faults

EVERY, FOR = 2.0, 20.0


def test_killing_the_leaders_connections_does_not_flap_the_leadership(
    private_postgres: PrivatePostgres, private_supervisors: SupervisorFactory, sentry_ingest: SentryIngest
) -> None:
    run = DatabaseFaultRun(private_postgres, private_supervisors, sentry_ingest).start()
    lease = run.live_lease()
    assert lease is not None
    sentry_before = len(sentry_ingest.events())

    wall, started, killed = datetime.now(UTC), time.monotonic(), 0
    for n in range(int(FOR / EVERY)):
        # lease, LISTEN and duties sessions: each names the process's leader_id
        killed += len(
            private_postgres.terminate_connections("river", application_name=f"%{lease['leader_id']}")
        )
        time.sleep(max(0.0, started + (n + 1) * EVERY - time.monotonic()))  # the fault's own rhythm
    run.database_back()

    changes = run.events_since(
        wall, {"leadership.gained", "leadership.lost", "leadership.expired", "leadership.superseded"}
    )
    reconnects = run.events_since(wall, {"leadership.lease_lost"})
    during = sentry_ingest.events()[sentry_before:]
    print(
        f"\nkilled {killed} sessions of the leader in {FOR:g} s: {len(reconnects)} lease reconnects, "
        f"{len(changes)} leadership changes, {len(during)} Sentry events during the kills"
    )
    assert killed >= FOR / EVERY  # at least the lease session, every time
    assert changes == []
    assert run.live_lease()["term"] == lease["term"]
    assert len(during) <= 1  # the first reconnect of the term, reported once
    run.check("killed connections", max_sentry_events=4)
