"""Leadership across real supervisors: one leader, fast handoff, fencing, Sentry, a database restart.

Failover figures are printed (``pytest -s``) and written into the README; they are never asserted.
"""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from typing import Any

import psycopg

from tests.harness.private_postgres import PrivatePostgres
from tests.harness.sentry_ingest import SentryIngest
from tests.harness.supervisors import SupervisorFactory, SupervisorProcess
from tests.harness.wait import wait_until


def lease(db: psycopg.Connection, cluster: str = "default") -> dict[str, Any] | None:
    return db.execute("select * from river_supervisor_leader where cluster = %s", (cluster,)).fetchone()


def leader_of(db: psycopg.Connection, sups: list[SupervisorProcess]) -> SupervisorProcess | None:
    row = lease(db)
    if row is None:
        return None
    return next((s for s in sups if row["pid"] == s.pid), None)


def start_cluster(supervisors: SupervisorFactory, count: int, **settings: Any) -> list[SupervisorProcess]:
    sups = [supervisors.start(f"node-{i}", **settings) for i in range(1, count + 1)]
    for sup in sups:
        sup.wait_for_event("worker.started")  # booted: its forkserver is up, its loop is turning
    return sups


def gained_by(sup: SupervisorProcess) -> list[dict[str, Any]]:
    return sup.log_events("leadership.gained")


def test_three_supervisors_agree_on_exactly_one_leader(
    supervisors: SupervisorFactory, db: psycopg.Connection
) -> None:
    sups = start_cluster(supervisors, 3)
    leader = wait_until(lambda: leader_of(db, sups), 20, "a leader among the three")
    # Exactly one process ever gained in this cluster, and it is the lease holder.
    holders = [s for s in sups if gained_by(s)]
    assert holders == [leader]
    history = db.execute("select event, leader_id from river_supervisor_leader_event order by id").fetchall()
    assert [h["event"] for h in history] == ["gained"]
    assert history[0]["leader_id"] == lease(db)["leader_id"]
    # Every node registered and points at the same lease.
    nodes = db.execute("select node, pid from river_supervisor_node where stopped_at is null").fetchall()
    assert sorted(n["node"] for n in nodes) == ["node-1", "node-2", "node-3"]


def test_sigterm_to_the_leader_hands_over_at_once(
    supervisors: SupervisorFactory, db: psycopg.Connection, sentry_ingest: SentryIngest
) -> None:
    sups = start_cluster(supervisors, 3, sentry={"dsn": sentry_ingest.dsn})
    leader = wait_until(lambda: leader_of(db, sups), 20, "a first leader")
    first = lease(db)

    signalled = datetime.now(UTC)
    leader.signal(signal.SIGTERM)
    second = wait_until(
        lambda: (row := lease(db)) is not None and row["term"] > first["term"] and row, 10, "a new leader"
    )
    handoff_ms = (second["elected_at"] - signalled).total_seconds() * 1000
    print(f"\nSIGTERM handoff: new leader elected {handoff_ms:.1f} ms after the signal")
    assert second["pid"] != leader.pid
    assert leader.wait_exit(20) == 0

    events = db.execute("select event, term from river_supervisor_leader_event order by id").fetchall()
    assert [e["event"] for e in events] == ["gained", "resigned", "gained"]

    # Sentry: one event per change, tagged cluster, node, term and leadership_event.
    sentry_ingest.wait_for_items(type="event", tag=("leadership_event", "gained"), count=2, timeout=10)
    sentry_ingest.wait_for_items(type="event", tag=("leadership_event", "resigned"), count=1, timeout=10)
    leadership = [i for i in sentry_ingest.events() if i.tag("leadership_event")]
    assert sorted(i.tag("leadership_event") for i in leadership) == ["gained", "gained", "resigned"]
    for item in leadership:
        assert item.tag("cluster") == "default"
        assert item.tag("node") in {"node-1", "node-2", "node-3"}
        assert item.tag("term") in {str(first["term"]), str(second["term"])}


def test_sigkill_of_the_leader_fails_over_within_seconds(
    supervisors: SupervisorFactory, db: psycopg.Connection
) -> None:
    sups = start_cluster(supervisors, 3)
    leader = wait_until(lambda: leader_of(db, sups), 20, "a first leader")
    first = lease(db)

    killed = datetime.now(UTC)
    leader.signal(signal.SIGKILL)
    second = wait_until(
        lambda: (row := lease(db)) is not None and row["term"] > first["term"] and row,
        20,
        "a new leader after SIGKILL",
    )
    failover = (second["elected_at"] - killed).total_seconds()
    print(f"\nSIGKILL failover: new leader elected {failover:.2f} s after the kill")
    assert second["pid"] != leader.pid
    events = [e["event"] for e in db.execute("select event from river_supervisor_leader_event order by id")]
    assert events[0] == "gained" and events[-1] == "gained" and len(events) == 3
    assert events[1] in {"expired", "superseded", "lost"}


def test_a_stalled_leader_writes_nothing_after_takeover_and_steps_down(
    supervisors: SupervisorFactory, db: psycopg.Connection
) -> None:
    settings = {
        "leadership": {"ttl": "3s"},
        "periodic": [{"id": "tick", "kind": "test.noop", "every": "1s", "missed": "all"}],
    }
    sups = start_cluster(supervisors, 2, **settings)
    leader = wait_until(lambda: leader_of(db, sups), 20, "a first leader")
    first = lease(db)
    wait_until(
        lambda: db.execute("select count(*) as n from river_supervisor_periodic_slot").fetchone()["n"] >= 2,
        10,
        "periodic slots enqueued by the first leader",
    )

    leader.signal(signal.SIGSTOP)  # the situation under test: a leader paused past its lease
    try:
        second = wait_until(
            lambda: (row := lease(db)) is not None and row["term"] > first["term"] and row,
            20,
            "a takeover while the leader is stopped",
        )
        taken_over = datetime.now(UTC)
    finally:
        leader.signal(signal.SIGCONT)

    def stepped_down() -> list[dict[str, Any]]:
        return [
            e
            for e in leader.log_events()
            if e.get("event") in {"leadership.expired", "leadership.lost", "leadership.superseded"}
            and e.get("term") == first["term"]
        ]

    wait_until(stepped_down, 20, "the resumed ex-leader stepping down", context=leader.log_tail)

    # Nothing was written under the old term after the takeover: every slot after it has the new term.
    late = db.execute(
        "select count(*) as n from river_supervisor_periodic_slot where term = %s and created_at > %s",
        (first["term"], taken_over),
    ).fetchone()
    assert late["n"] == 0
    assert second["term"] > first["term"]
    # And no slot was enqueued twice (the ledger's key and the job ids agree).
    dupes = db.execute(
        "select count(*) as n from (select scheduled_at from river_job where kind = 'test.noop' "
        "and metadata->>'river:periodic_job_id' = 'tick' group by 1 having count(*) > 1) d"
    ).fetchone()
    assert dupes["n"] == 0


def test_supervisors_survive_a_postgres_restart_and_keep_a_leader(
    private_supervisors: SupervisorFactory, private_postgres: PrivatePostgres
) -> None:
    """On the test's private cluster (tests/harness/private_postgres.py), never the shared server."""
    sups = start_cluster(private_supervisors, 2)

    def live_lease(after: datetime | None = None) -> dict[str, Any] | None:
        try:
            rows = private_postgres.query(
                "select term, renewed_at from river_supervisor_leader"
                " where cluster = %s and expires_at > now()",
                ("default",),
            )
        except psycopg.OperationalError:
            return None
        return rows[0] if rows and (after is None or rows[0]["renewed_at"] > after) else None

    first = wait_until(live_lease, 20, "a first leader")
    down = private_postgres.restart("fast")
    restarted = datetime.now(UTC)

    # Every session died with the server: the leader reconnects and renews on a new session (a brief
    # restart within its trust window keeps its term), or, had its trust lapsed, a new term is elected.
    after = wait_until(lambda: live_lease(restarted), 30, "a leader renewing after the restart")
    print(f"\nprivate cluster restarted (fast), down {down:.2f} s; term {first['term']} -> {after['term']}")
    assert after["term"] >= first["term"]
    assert all(s.exit_code() is None for s in sups)
