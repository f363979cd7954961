"""The periodic enqueuer against PostgreSQL: durable slots, missed policy, fencing, overlap."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from river_supervisor import db as rdb
from river_supervisor.config import PeriodicEntry
from river_supervisor.errors import NotLeader
from river_supervisor.leadership import Term
from river_supervisor.periodic import PeriodicEnqueuer, schedule_status
from river_supervisor.schedules import EffectiveSchedule, effective_schedules

T0 = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
CLUSTER = "default"


def take_lease(db: psycopg.Connection, node: str, cluster: str = CLUSTER) -> Term:
    """Make ``node`` the leader under a fresh term (what an elector's takeover would do)."""
    leader_id = f"{node}:1:boot"
    row = db.execute(
        "INSERT INTO river_supervisor_leader (cluster, leader_id, node, pid, term, backend_pid, expires_at)"
        " VALUES (%s, %s, %s, 1, nextval('river_supervisor_term_seq'), pg_backend_pid(),"
        " now() + interval '1 hour')"
        " ON CONFLICT (cluster) DO UPDATE SET leader_id = EXCLUDED.leader_id, node = EXCLUDED.node,"
        " term = EXCLUDED.term, elected_at = now(), expires_at = EXCLUDED.expires_at"
        " RETURNING term, elected_at",
        (cluster, leader_id, node),
    ).fetchone()
    return Term(cluster, leader_id, node, row["term"], row["elected_at"])


def schedule(id: str = "tick", **fields: Any) -> EffectiveSchedule:
    values: dict[str, Any] = {"kind": "test.periodic", "every": 1.0}
    values.update(fields)
    (resolved,) = effective_schedules([], [PeriodicEntry(id=id, **values)]).schedules
    return resolved


def jobs(db: psycopg.Connection) -> list[dict[str, Any]]:
    return db.execute("SELECT * FROM river_job ORDER BY scheduled_at, id").fetchall()


def slots_of(db: psycopg.Connection) -> list[datetime]:
    return [row["scheduled_at"] for row in jobs(db)]


def ledger(db: psycopg.Connection) -> list[dict[str, Any]]:
    return db.execute("SELECT * FROM river_supervisor_periodic_slot ORDER BY slot").fetchall()


def seconds(n: float) -> datetime:
    return T0 + timedelta(seconds=n)


def set_last_slot(db: psycopg.Connection, periodic_id: str, last_slot: datetime, text: str) -> None:
    db.execute(
        "INSERT INTO river_supervisor_periodic"
        " (cluster, id, kind, schedule, last_slot, defined_by, registered_at)"
        " VALUES (%s, %s, 'test.periodic', %s, %s, 'old-leader', %s)",
        (CLUSTER, periodic_id, text, last_slot, last_slot),
    )


def test_job_is_a_river_row_with_periodic_metadata(db: psycopg.Connection) -> None:
    term = take_lease(db, "a")
    sched = schedule(args={"batch": 100}, queue="reports", priority=2, max_attempts=3)
    enqueuer = PeriodicEnqueuer([sched], cluster=CLUSTER, node="a")
    enqueuer.on_gained(db, term, T0)
    assert enqueuer.tick(db, term, seconds(1)) == seconds(2)
    (job,) = jobs(db)
    assert (job["kind"], job["args"], job["queue"], job["priority"], job["max_attempts"]) == (
        "test.periodic",
        {"batch": 100},
        "reports",
        2,
        3,
    )
    assert job["state"] == "available" and job["scheduled_at"] == seconds(1)
    assert job["metadata"]["periodic"] is True
    assert job["metadata"]["river:periodic_job_id"] == "tick"
    assert job["tags"] == ["periodic"]
    (row,) = ledger(db)
    assert (row["outcome"], row["job_id"], row["term"]) == ("enqueued", job["id"], term.term)
    state = db.execute("SELECT * FROM river_supervisor_periodic").fetchone()
    assert (state["last_slot"], state["next_run_at"], state["last_job_id"]) == (
        seconds(1),
        seconds(2),
        job["id"],
    )
    assert state["defined_by"] == "a"


def test_insert_notifies_rivers_channel_once_per_queue(db: psycopg.Connection, database_url: str) -> None:
    term = take_lease(db, "a")
    listener = rdb.connect(database_url)
    try:
        channel = listener.execute("SELECT current_schema() || '.river_insert' AS c").fetchone()["c"]
        listener.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(channel)))
        scheds = [schedule("one", queue="q1"), schedule("two", queue="q1"), schedule("three", queue="q2")]
        enqueuer = PeriodicEnqueuer(scheds, cluster=CLUSTER, node="a")
        enqueuer.on_gained(db, term, T0)
        enqueuer.tick(db, term, seconds(1))
        payloads = sorted(n.payload for n in listener.notifies(timeout=2, stop_after=2))
        assert [json.loads(p) for p in payloads] == [{"queue": "q1"}, {"queue": "q2"}]
    finally:
        listener.close()


def test_stalled_leader_cannot_enqueue_after_takeover_and_every_slot_runs_once(
    db: psycopg.Connection,
) -> None:
    """every=1s, missed=all, a 2 s failover: each slot exactly once, the stale term writes nothing."""
    sched = schedule(missed="all")
    term_a = take_lease(db, "a")
    a = PeriodicEnqueuer([sched], cluster=CLUSTER, node="a")
    a.on_gained(db, term_a, T0)
    for n in (1, 2, 3):
        a.tick(db, term_a, seconds(n))
    assert slots_of(db) == [seconds(1), seconds(2), seconds(3)]

    term_b = take_lease(db, "b")  # a stalls; b takes over two seconds later
    b = PeriodicEnqueuer([sched], cluster=CLUSTER, node="b")
    b.on_gained(db, term_b, seconds(5))
    before = (jobs(db), ledger(db))
    with pytest.raises(NotLeader):
        a.tick(db, term_a, seconds(4))  # a wakes up with its old term
    assert (jobs(db), ledger(db)) == before
    b.tick(db, term_b, seconds(6))

    assert slots_of(db) == [seconds(n) for n in range(1, 7)]
    terms = {row["slot"]: row["term"] for row in ledger(db)}
    assert [terms[seconds(n)] for n in range(1, 7)] == [term_a.term] * 3 + [term_b.term] * 3


def test_ledger_refuses_a_slot_twice_even_if_state_is_lost(db: psycopg.Connection) -> None:
    sched = schedule(missed="all")
    term = take_lease(db, "a")
    a = PeriodicEnqueuer([sched], cluster=CLUSTER, node="a")
    a.on_gained(db, term, T0)
    a.tick(db, term, seconds(3))
    db.execute("UPDATE river_supervisor_periodic SET last_slot = NULL, registered_at = %s", (T0,))
    b = PeriodicEnqueuer([sched], cluster=CLUSTER, node="a")
    b.on_gained(db, take_lease(db, "a"), seconds(4))
    assert slots_of(db) == [seconds(n) for n in range(1, 5)]


@pytest.mark.parametrize(
    ("missed", "cap", "enqueued", "skipped_at", "skipped_count"),
    [
        ("skip", None, [], 50, 10),
        ("latest", None, [50], 45, 9),
        ("all", 3, [40, 45, 50], 35, 7),
    ],
)
def test_missed_policy_on_gain(
    db: psycopg.Connection,
    missed: str,
    cap: int | None,
    enqueued: list[int],
    skipped_at: int,
    skipped_count: int,
) -> None:
    """Slots every 5 minutes, last one decided at 12:00, nobody led until 12:51:10."""
    fields: dict[str, Any] = {"every": 300.0, "missed": missed}
    if cap:
        fields["missed_cap"] = cap
    sched = schedule("five", **fields)
    set_last_slot(db, "five", T0, sched.schedule_text)
    enqueuer = PeriodicEnqueuer([sched], cluster=CLUSTER, node="a")
    now = T0 + timedelta(minutes=51, seconds=10)
    enqueuer.on_gained(db, take_lease(db, "a"), now)

    assert slots_of(db) == [T0 + timedelta(minutes=m) for m in enqueued]
    skipped = [row for row in ledger(db) if row["outcome"] == "skipped_missed"]
    assert [row["slot"] for row in skipped] == [T0 + timedelta(minutes=skipped_at)]
    assert skipped[0]["detail"]["count"] == skipped_count
    assert skipped[0]["detail"]["first"] == (T0 + timedelta(minutes=5)).isoformat()
    state = db.execute("SELECT last_slot, next_run_at FROM river_supervisor_periodic").fetchone()
    assert state == {"last_slot": T0 + timedelta(minutes=50), "next_run_at": T0 + timedelta(minutes=55)}


def test_skip_keeps_a_slot_that_was_due_a_moment_ago(db: psycopg.Connection) -> None:
    sched = schedule("five", every=300.0, missed="skip")
    set_last_slot(db, "five", T0, sched.schedule_text)
    PeriodicEnqueuer([sched], cluster=CLUSTER, node="a").on_gained(
        db, take_lease(db, "a"), T0 + timedelta(minutes=5, seconds=2)
    )
    assert slots_of(db) == [T0 + timedelta(minutes=5)]


def test_overlap_skip_waits_for_the_previous_run(db: psycopg.Connection) -> None:
    term = take_lease(db, "a")
    sched = schedule("slow", every=60.0, overlap="skip")
    enqueuer = PeriodicEnqueuer([sched], cluster=CLUSTER, node="a")
    enqueuer.on_gained(db, term, T0)
    enqueuer.tick(db, term, seconds(60))
    enqueuer.tick(db, term, seconds(120))  # the first job is still available
    assert slots_of(db) == [seconds(60)]
    assert [row["outcome"] for row in ledger(db)] == ["enqueued", "skipped_overlap"]
    db.execute("UPDATE river_job SET state = 'completed', finalized_at = now()")
    enqueuer.tick(db, term, seconds(180))
    assert slots_of(db) == [seconds(60), seconds(180)]


def test_on_lost_forgets_and_writes_nothing(db: psycopg.Connection) -> None:
    term = take_lease(db, "a")
    enqueuer = PeriodicEnqueuer([schedule()], cluster=CLUSTER, node="a")
    enqueuer.on_gained(db, term, T0)
    enqueuer.on_lost()
    with pytest.raises(RuntimeError):
        enqueuer.tick(db, term, seconds(5))
    assert jobs(db) == []


def test_orphan_is_reported_with_the_node_that_defined_it(db: psycopg.Connection) -> None:
    set_last_slot(db, "retired", T0, "every:60")
    seen: list[tuple[str, dict]] = []
    enqueuer = PeriodicEnqueuer(
        [schedule()], cluster=CLUSTER, node="a", observer=lambda event, data: seen.append((event, data))
    )
    enqueuer.on_gained(db, take_lease(db, "a"), T0)
    assert [(o.id, o.defined_by) for o in enqueuer.orphans] == [("retired", "old-leader")]
    assert seen[0][0] == "gained" and seen[0][1]["orphans"] == enqueuer.orphans
    disabled = PeriodicEnqueuer([schedule()], cluster=CLUSTER, node="a", disabled=["retired"])
    disabled.on_gained(db, take_lease(db, "a"), T0)
    assert disabled.orphans == []


def test_changed_schedule_restarts_without_counting_a_gap(db: psycopg.Connection) -> None:
    set_last_slot(db, "tick", T0, "every:3600")
    enqueuer = PeriodicEnqueuer([schedule(missed="all")], cluster=CLUSTER, node="a")
    enqueuer.on_gained(db, take_lease(db, "a"), T0 + timedelta(minutes=30))
    assert jobs(db) == [] and ledger(db) == []


def test_ledger_is_pruned(db: psycopg.Connection) -> None:
    term = take_lease(db, "a")
    db.execute(
        "INSERT INTO river_supervisor_periodic_slot (cluster, periodic_id, slot, outcome, term, leader_id)"
        " SELECT %s, 'tick', %s - make_interval(days => 8, secs => g), 'enqueued', 1, 'x'"
        " FROM generate_series(1, 5) g",
        (CLUSTER, T0),
    )
    enqueuer = PeriodicEnqueuer([schedule()], cluster=CLUSTER, node="a")
    enqueuer.on_gained(db, term, T0)
    assert enqueuer.last_result is not None and enqueuer.last_result.pruned == 5
    assert ledger(db) == []


def test_schedule_status_reports_last_and_next_runs(db: psycopg.Connection) -> None:
    term = take_lease(db, "a")
    sched, fresh = schedule("tick"), schedule("fresh", every=60.0)
    enqueuer = PeriodicEnqueuer([sched], cluster=CLUSTER, node="a")
    enqueuer.on_gained(db, term, T0)
    enqueuer.tick(db, term, seconds(1))
    status = schedule_status(db, CLUSTER, [sched, fresh], seconds(1.5))
    assert status == [
        {
            "id": "tick",
            "kind": "test.periodic",
            "last_slot": "2026-01-02T12:00:01+00:00",
            "next_run_at": "2026-01-02T12:00:02+00:00",
        },
        {
            "id": "fresh",
            "kind": "test.periodic",
            "last_slot": None,
            "next_run_at": "2026-01-02T12:01:00+00:00",
        },
    ]


def test_a_pass_over_many_schedules_logs_one_short_info_line(
    db: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    term = take_lease(db, "a")
    many = [schedule(f"s{i:04d}") for i in range(300)]
    enqueuer = PeriodicEnqueuer(many, cluster=CLUSTER, node="a")
    enqueuer.on_gained(db, term, T0)
    caplog.set_level("INFO", logger="river_supervisor.periodic")
    enqueuer.tick(db, term, seconds(1))
    (line,) = [r for r in caplog.records if getattr(r, "event", "") == "periodic.enqueued"]
    assert line.getMessage() == "periodic: enqueued 300 job(s) for 300 schedule(s)"
    assert (line.jobs, line.schedules) == (300, 300)  # counts, not the 300 jobs (those are at DEBUG)
    assert len(json.dumps(line.__dict__, default=str)) < 2_000
