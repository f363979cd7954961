"""Pausing a queue across real supervisors: as River writes it (SQL) and by the CLI.

Two hosts serve ``default`` while a feeder keeps inserting jobs. A pause must stop both from
fetching within 1 s of its commit, running jobs finish, jobs keep queueing, a resume drains them,
and the pause survives a restart of every host. Figures (from pause commit to each host's worker
applying it, and to the last fetch) are printed (``pytest -s``), never asserted beyond the 1 s
contract.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from river_supervisor import db as rdb
from river_supervisor import queue

from tests.harness.supervisors import SupervisorFactory, SupervisorProcess
from tests.harness.wait import wait_until
from tests.integration.test_cli_jobs import cli

# River's own statements (riverdriver/riverpgxv5/internal/dbsqlc: river_queue.sql QueuePause and
# QueueResume, pg_misc.sql NotifyMany), run in one transaction as Client.QueuePause does, with the
# payload Go's json.Marshal writes for controlEventPayload.
RIVER_QUEUE_PAUSE = """
UPDATE river_queue
SET
    paused_at = CASE WHEN paused_at IS NULL THEN coalesce(%(now)s::timestamptz, now()) ELSE paused_at END,
    updated_at = CASE WHEN paused_at IS NULL THEN coalesce(%(now)s::timestamptz, now()) ELSE updated_at END
WHERE CASE WHEN %(name)s::text = '*' THEN true ELSE name = %(name)s END
"""
RIVER_QUEUE_RESUME = """
UPDATE river_queue
SET
    paused_at = NULL,
    updated_at = CASE WHEN paused_at IS NOT NULL THEN coalesce(%(now)s::timestamptz, now())
                      ELSE updated_at END
WHERE CASE WHEN %(name)s::text = '*' THEN true ELSE name = %(name)s END
"""
RIVER_NOTIFY_MANY = (
    "SELECT pg_notify(concat(coalesce(%(schema)s::text, current_schema()), '.', %(topic)s::text),"
    " unnest(%(payload)s::text[]))"
)
CONTEXT_WINDOW = 3.0  # seconds of arriving jobs watched after a pause (longer than the 2 s poll)


def river_queue_control(db: psycopg.Connection, action: str, name: str) -> datetime:
    """Pause or resume as River's Client.QueuePause/QueueResume does; returns the time after commit."""
    with db.transaction():
        db.execute(
            RIVER_QUEUE_PAUSE if action == "pause" else RIVER_QUEUE_RESUME, {"now": None, "name": name}
        )
        payload = f'{{"action":"{action}","queue":"{name}"}}'
        db.execute(RIVER_NOTIFY_MANY, {"schema": None, "topic": "river_control", "payload": [payload]})
    return db.execute("select clock_timestamp() as t").fetchone()["t"]


class Feeder:
    """Inserts a short job every ``interval`` seconds on its own connection until stopped."""

    def __init__(self, database_url: str, interval: float = 0.02) -> None:
        self.conn = rdb.connect(database_url, application_name="feeder")
        self.interval = interval
        self.inserted: list[datetime] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Feeder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.conn.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            queue.insert(self.conn, queue.JobSpec("test.sleep", args={"seconds": 0.05}))
            self.inserted.append(datetime.now(UTC))

    def since(self, at: datetime) -> int:
        return sum(1 for t in list(self.inserted) if t > at)


def fetched_after(db: psycopg.Connection, at: datetime) -> list[dict[str, Any]]:
    return db.execute(
        "select id, attempted_at, attempted_by from river_job where attempted_at > %s order by attempted_at",
        (at,),
    ).fetchall()


def counts(db: psycopg.Connection) -> dict[str, int]:
    rows = db.execute("select state::text as state, count(*) as n from river_job group by state").fetchall()
    return {r["state"]: r["n"] for r in rows}


def hosts_fetching(db: psycopg.Connection, since: datetime) -> set[str]:
    rows = db.execute(
        "select distinct split_part(attempted_by[cardinality(attempted_by)], ':', 1) as node"
        " from river_job where attempted_at > %s",
        (since,),
    ).fetchall()
    return {r["node"] for r in rows}


def applied_at(sup: SupervisorProcess, event: str, after: datetime) -> datetime:
    """When ``sup``'s worker logged ``event`` (paused/resumed) for ``default`` after ``after``."""
    found = sup.wait_for_event(
        event,
        timeout=30,
        where=lambda e: e.get("queue") == "default" and logged_at(e) >= after,
    )
    return logged_at(found)


def logged_at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["time"])


def ms(delta: timedelta) -> float:
    return delta.total_seconds() * 1000


def start_hosts(supervisors: SupervisorFactory, db: psycopg.Connection) -> list[SupervisorProcess]:
    sups = [supervisors.start(name, queues={"default": {"concurrency": 4}}) for name in ("host-a", "host-b")]
    for sup in sups:
        sup.wait_for_event("worker.started", 60)
    return sups


def assert_pause_holds(
    db: psycopg.Connection, sups: list[SupervisorProcess], feeder: Feeder, paused_at: datetime, how: str
) -> None:
    """Both hosts stop fetching within 1 s of ``paused_at`` while jobs keep arriving; print figures.

    ``paused_at``: the time after the pause's commit (River's SQL here), or the row's ``paused_at``
    (the CLI's statement start, a few ms before its commit)."""
    applied = [applied_at(sup, "worker.queue_paused", paused_at - timedelta(seconds=1)) for sup in sups]
    deadline = time.monotonic() + CONTEXT_WINDOW
    wait_until(
        lambda: time.monotonic() >= deadline and feeder.since(paused_at) >= 20,
        CONTEXT_WINDOW + 20,
        "jobs arriving during the pause",
    )
    late = fetched_after(db, paused_at)
    last = ms(late[-1]["attempted_at"] - paused_at) if late else 0.0
    print(
        f"\npause by {how}: applied by the hosts' workers "
        + ", ".join(f"{ms(t - paused_at):.1f} ms" for t in applied)
        + f" after the pause; jobs fetched after it: {len(late)} (last {last:.1f} ms after);"
        f" {feeder.since(paused_at)} jobs arrived during the pause"
    )
    assert all(row["attempted_at"] <= paused_at + timedelta(seconds=1) for row in late), late
    assert counts(db).get("available", 0) >= 20  # they queue up, nobody takes them


def drain(db: psycopg.Connection, resumed_at: datetime, how: str) -> None:
    wait_until(lambda: hosts_fetching(db, resumed_at), 10, "a fetch after the resume")
    first = fetched_after(db, resumed_at)[0]["attempted_at"]
    wait_until(
        lambda: set(counts(db)) == {"completed"},
        60,
        "every queued job to complete",
        context=lambda: str(counts(db)),
    )
    print(f"resume by {how}: first fetch {ms(first - resumed_at):.1f} ms after commit; queue drained")


def test_pause_stops_both_hosts_resume_drains_and_the_pause_survives_restarts(
    supervisors: SupervisorFactory, db: psycopg.Connection, database_url: str, tmp_path: Path
) -> None:
    sups = start_hosts(supervisors, db)
    wait_until(
        lambda: db.execute("select 1 from river_queue where name = 'default'").fetchone(), 10, "the row"
    )
    started = datetime.now(UTC)
    with Feeder(database_url) as feeder:
        wait_until(lambda: hosts_fetching(db, started) == {"host-a", "host-b"}, 30, "both hosts working")

        # 1. A pause exactly as River writes it: both hosts stop; the jobs queue up.
        paused_at = river_queue_control(db, "pause", "default")
        assert_pause_holds(db, sups, feeder, paused_at, "River's SQL")
        # 2. Resumed by the CLI: fetching restarts at once and the backlog drains.
        done = cli(database_url, "queues", "resume", "default", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        resumed_at = datetime.now(UTC)
        wait_until(lambda: hosts_fetching(db, resumed_at) == {"host-a", "host-b"}, 30, "both hosts again")
        # 3. Paused by the CLI.
        done = cli(database_url, "queues", "pause", "--all", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        paused_at = db.execute("select paused_at from river_queue where name = 'default'").fetchone()[
            "paused_at"
        ]
        assert_pause_holds(db, sups, feeder, paused_at, "the CLI")
    backlog = counts(db).get("available", 0)
    drain_started = datetime.now(UTC)

    # 4. Every host restarts: the pause holds (read from river_queue at boot), nothing is fetched.
    for sup in sups:
        sup.signal(15)
    for sup in sups:
        assert sup.wait_exit(30) == 0
    restarted = datetime.now(UTC)
    sups = [sup.start() for sup in sups]
    for sup in sups:  # booted (slow on a loaded machine), then read the pause from river_queue
        sup.wait_for_event("worker.started", 60, where=lambda e: logged_at(e) >= restarted)
        applied_at(sup, "worker.queue_paused", restarted)
    queue.insert_many(db, [queue.JobSpec("test.noop") for _ in range(10)])
    deadline = time.monotonic() + CONTEXT_WINDOW
    wait_until(lambda: time.monotonic() >= deadline, CONTEXT_WINDOW + 1, "a window with the pause held")
    assert fetched_after(db, drain_started) == []
    assert counts(db)["available"] == backlog + 10

    # 5. Resumed as River writes it: the whole backlog drains.
    drain(db, river_queue_control(db, "resume", "default"), "River's SQL")
