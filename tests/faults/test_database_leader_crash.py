"""A leader crash raises an alert: the successor reports the loss of the holder it replaced.

Issue 10 item 5: three hosts, a real sentry-sdk sending to the loopback ingest; SIGKILL the leader;
the ingest receives exactly one WARNING event for that loss (tagged cluster, node = the lost one,
term, leadership_event) and the INFO "gained" of the successor.
"""

from __future__ import annotations

import signal
import time

import psycopg
import pytest

from tests.harness.sentry_ingest import SentryIngest
from tests.harness.supervisors import SupervisorFactory
from tests.harness.wait import wait_until
from tests.process.test_leadership import leader_of, lease, start_cluster

pytestmark = pytest.mark.faults


def test_sigkill_of_the_leader_sends_one_warning_for_the_loss(
    supervisors: SupervisorFactory, db: psycopg.Connection, sentry_ingest: SentryIngest
) -> None:
    sups = start_cluster(supervisors, 3, sentry={"dsn": sentry_ingest.dsn}, leadership={"ttl": "6s"})
    leader = wait_until(lambda: leader_of(db, sups), 30, "a first leader")
    sentry_ingest.wait_for_items(type="event", tag=("leadership_event", "gained"), count=1, timeout=20)
    first = lease(db)
    assert first["pid"] == leader.pid

    killed = time.monotonic()
    leader.signal(signal.SIGKILL)
    second = wait_until(
        lambda: (row := lease(db)) is not None and row["term"] > first["term"] and row, 30, "a successor"
    )
    gained = sentry_ingest.wait_for_items(
        type="event", tag=("term", str(second["term"])), timeout=20, where=lambda i: i.level == "info"
    )
    lost = sentry_ingest.wait_for_items(type="event", tag=("leadership_event", "lost"), timeout=20)
    print(f"\nSIGKILL of the leader: the successor and its report within {time.monotonic() - killed:.2f} s")
    print(f"  the loss reported: {lost[0].message!r}")
    for item in sentry_ingest.events():
        print(f"  sentry: {item.summary()}")

    warnings = [i for i in sentry_ingest.events() if i.level == "warning"]
    assert len(warnings) == 1 and warnings == lost
    (loss,) = lost
    assert loss.tags["cluster"] == "default"
    assert loss.tags["node"] == leader.name  # the lost one, not the reporter
    assert loss.tags["term"] == str(first["term"])
    assert loss.tags["leadership_event"] == "lost"
    assert loss.payload["contexts"]["leadership"]["detail"]["reason"] == "session_gone"
    assert [i.tag("leadership_event") for i in gained] == ["gained"]
    assert gained[0].tag("node") == next(s.name for s in sups if s.pid == second["pid"])
