"""PostgreSQL restarts (fast, and a crash: ``-m immediate``) under jobs and a 1 s schedule.

Issue 10 items 1-2: no supervisor exits, no outcome is dropped, the cluster heals by itself.
"""

from __future__ import annotations

import pytest

from tests.faults.database_faults import DatabaseFaultRun
from tests.harness.private_postgres import PrivatePostgres
from tests.harness.sentry_ingest import SentryIngest
from tests.harness.supervisors import SupervisorFactory

pytestmark = pytest.mark.faults

DOWN_FOR = 3.0  # seconds the server stays down: every loop meets refused connections


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_supervisors_ride_out_a_database_restart(
    mode: str,
    private_postgres: PrivatePostgres,
    private_supervisors: SupervisorFactory,
    sentry_ingest: SentryIngest,
) -> None:
    run = DatabaseFaultRun(private_postgres, private_supervisors, sentry_ingest).start()

    down = private_postgres.restart(mode, down_for=DOWN_FOR)
    run.database_back()

    figures = run.check(f"restart -m {mode} (down {down:.1f} s)", max_sentry_events=6)
    assert figures["term_after"] >= figures["term_before"]
    if mode == "immediate":  # a crash ends every session, the lease's too: a new term is elected
        assert figures["term_after"] > figures["term_before"]
    dropped = [e for s in run.sups for e in s.log_events("queue.completer_dropped")]
    assert not dropped
