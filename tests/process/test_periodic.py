"""Periodic jobs across real supervisors: every slot exactly once through failovers; missed runs."""

from __future__ import annotations

import signal
from datetime import datetime, timedelta
from typing import Any

import psycopg

from tests.harness.supervisors import SupervisorFactory, SupervisorProcess
from tests.harness.wait import wait_until
from tests.process.test_leadership import leader_of, lease, start_cluster

SECOND = timedelta(seconds=1)


def slots(db: psycopg.Connection, periodic_id: str) -> list[datetime]:
    """The scheduled_at of every job a schedule enqueued, in order (duplicates kept)."""
    rows = db.execute(
        "select scheduled_at from river_job where metadata->>'river:periodic_job_id' = %s order by 1",
        (periodic_id,),
    ).fetchall()
    return [row["scheduled_at"] for row in rows]


def enqueued_under(db: psycopg.Connection, periodic_id: str, term: int) -> int:
    return db.execute(
        "select count(*) as n from river_supervisor_periodic_slot "
        "where periodic_id = %s and term = %s and outcome = 'enqueued'",
        (periodic_id, term),
    ).fetchone()["n"]


def new_term(db: psycopg.Connection, after: int) -> dict[str, Any] | None:
    row = lease(db)
    return row if row is not None and row["term"] > after else None


def assert_every_second_exactly_once(found: list[datetime]) -> None:
    assert found, "no slot enqueued"
    assert len(found) == len(set(found)), (
        f"duplicated slots: {sorted({s for s in found if found.count(s) > 1})}"
    )
    expected = [found[0] + i * SECOND for i in range(int((found[-1] - found[0]) / SECOND) + 1)]
    missing = sorted(set(expected) - set(found))
    assert not missing, f"missing slots: {missing}"


def test_every_slot_exactly_once_through_sigkill_and_sigstop_failovers(
    supervisors: SupervisorFactory, db: psycopg.Connection
) -> None:
    settings = {
        "leadership": {"ttl": "3s"},
        "periodic": [{"id": "every-second", "kind": "test.noop", "every": "1s", "missed": "all"}],
    }
    sups = start_cluster(supervisors, 3, **settings)

    first_leader = wait_until(lambda: leader_of(db, sups), 20, "a first leader")
    first = lease(db)
    wait_until(
        lambda: enqueued_under(db, "every-second", first["term"]) >= 3, 15, "3 slots by the first leader"
    )

    first_leader.signal(signal.SIGKILL)
    second = wait_until(lambda: new_term(db, first["term"]), 20, "a leader after SIGKILL")
    second_leader = next(s for s in sups if s.pid == second["pid"])
    wait_until(lambda: enqueued_under(db, "every-second", second["term"]) >= 3, 15, "3 slots by the second")

    second_leader.signal(signal.SIGSTOP)  # paused beyond its 3 s lease
    try:
        third = wait_until(lambda: new_term(db, second["term"]), 20, "a leader while the second is stopped")
        wait_until(lambda: enqueued_under(db, "every-second", third["term"]) >= 3, 15, "3 slots by the third")
    finally:
        second_leader.signal(signal.SIGCONT)
    wait_until(
        lambda: any(
            e.get("term") == second["term"]
            for e in second_leader.log_events()
            if e.get("event") in {"leadership.expired", "leadership.lost", "leadership.superseded"}
        ),
        20,
        "the resumed second leader stepping down",
        context=second_leader.log_tail,
    )
    survivors: list[SupervisorProcess] = [s for s in sups if s is not first_leader]
    third_leader = next(s for s in survivors if s.pid == third["pid"])
    mark = len(slots(db, "every-second"))
    wait_until(lambda: len(slots(db, "every-second")) >= mark + 2, 15, "slots after the resume")
    third_leader.signal(signal.SIGTERM)
    third_leader.wait_exit(20)

    assert_every_second_exactly_once(slots(db, "every-second"))
    terms = {
        row["term"]
        for row in db.execute(
            "select distinct term from river_supervisor_periodic_slot where periodic_id = 'every-second'"
        )
    }
    assert {first["term"], second["term"], third["term"]} <= terms


def test_missed_policies_after_every_host_was_down(
    supervisors: SupervisorFactory, db: psycopg.Connection
) -> None:
    settings = {
        # Slots more than 3 s late count as missed; an on-time slot is never that late, even on a
        # loaded machine, so only the outage's slots are skipped.
        "missed_grace": "3s",
        "periodic": [
            {"id": f"missed-{policy}", "kind": "test.noop", "every": "1s", "missed": policy}
            for policy in ("skip", "latest", "all")
        ],
    }
    first = supervisors.start("node-1", **settings)
    for policy in ("skip", "latest", "all"):
        wait_until(lambda p=policy: len(slots(db, f"missed-{p}")) >= 2, 20, f"slots of missed-{policy}")
    first.signal(signal.SIGTERM)
    assert first.wait_exit(20) == 0
    stopped = {
        row["id"]: row["last_slot"]
        for row in db.execute("select id, last_slot from river_supervisor_periodic")
    }

    # The situation under test: several slots pass while no host runs.
    newest = max(stopped.values())
    wait_until(
        lambda: db.execute("select now() as t").fetchone()["t"] > newest + 10 * SECOND,
        30,
        "ten slots to pass with every host down",
    )
    second = supervisors.start("node-2", **settings)
    second.wait_for_event("periodic.gained")
    term = lease(db)["term"]
    for policy in ("skip", "latest", "all"):
        wait_until(
            lambda p=policy: enqueued_under(db, f"missed-{p}", term) >= 2, 20, f"missed-{policy} resumed"
        )
    second.signal(signal.SIGTERM)
    second.wait_exit(20)

    # all: every slot of the outage was enqueued, each once.
    assert_every_second_exactly_once(slots(db, "missed-all"))
    assert not db.execute(
        "select 1 from river_supervisor_periodic_slot where periodic_id = %s and outcome <> 'enqueued'",
        ("missed-all",),
    ).fetchall()

    for policy in ("skip", "latest"):
        periodic_id = f"missed-{policy}"
        skipped = db.execute(
            "select slot, detail from river_supervisor_periodic_slot "
            "where periodic_id = %s and outcome = 'skipped_missed'",
            (periodic_id,),
        ).fetchall()
        assert len(skipped) == 1, skipped  # one ledger row records the whole skipped run
        last = skipped[0]["slot"]
        detail = skipped[0]["detail"]
        first_skipped = datetime.fromisoformat(detail["first"])
        assert detail["count"] == int((last - first_skipped) / SECOND) + 1 >= 4
        assert first_skipped == stopped[periodic_id] + SECOND  # right after the last run before the outage
        found = slots(db, periodic_id)
        assert not [s for s in found if first_skipped <= s <= last], "a skipped slot was enqueued"
        assert last + SECOND in found  # the latest slot runs: nothing after the skipped ones is lost
        after = [s for s in found if s > last]
        assert_every_second_exactly_once(after)
