"""Support for the database fault tests (no tests here): a cluster of supervisors on a private
PostgreSQL, jobs flowing into it, a 1 s schedule, and the checks every fault ends with.

Every fault test follows the same shape (``DatabaseFaultRun``): start supervisors with a short lease
(``TTL``), feed jobs, wait for a leader and a few periodic slots, do the fault to the database, then
check what users rely on: no supervisor exited, one leader within ttl + 5 s of the database being
back, no live host taken for dead, every job ``completed``, every periodic slot exactly once from
before the fault to after it (slots due during it caught up), a bounded number of Sentry events.
Figures are printed (``pytest -s``), never asserted as speeds.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from river_supervisor import db as rdb
from river_supervisor import queue
from river_supervisor.queue import JobSpec

from tests.harness.private_postgres import PrivatePostgres
from tests.harness.sentry_ingest import SentryIngest
from tests.harness.supervisors import SupervisorFactory, SupervisorProcess
from tests.harness.wait import wait_until
from tests.process.test_periodic import assert_every_second_exactly_once

TTL = 3.0  # seconds: short, so that a fault test is short
SCHEDULE = "tick"
SETTINGS: dict[str, Any] = {
    "leadership": {"ttl": f"{TTL:g}s"},
    "periodic": [{"id": SCHEDULE, "kind": "test.noop", "every": "1s", "missed": "all"}],
}
EVER = datetime.min.replace(tzinfo=UTC)  # events_since(EVER, ...): every event logged
LEADERSHIP_ENDS = {"leadership.expired", "leadership.lost", "leadership.superseded", "leadership.resigned"}


class Feeder(threading.Thread):
    """Enqueues ``test.noop`` jobs at a steady rate on a connection of its own, through any fault:
    a batch that fails is counted and retried later (as an application would), never lost silently."""

    def __init__(self, url: str, per_second: int = 20) -> None:
        super().__init__(name="job-feeder", daemon=True)
        self.url = url
        self.batch = max(1, per_second // 5)
        self.inserted = 0
        self.failed_batches = 0
        self._halt = threading.Event()

    def run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while not self._halt.wait(0.2):
            try:
                if conn is None or conn.closed:
                    conn = rdb.connect(
                        self.url, application_name="test-feeder", connect_timeout=2, call_timeout=2
                    )
                queue.insert_many(
                    conn, [JobSpec("test.noop", {"n": self.inserted + i}) for i in range(self.batch)]
                )
                self.inserted += self.batch
            except (psycopg.Error, rdb.DatabaseUnavailable):
                self.failed_batches += 1
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


@dataclass
class DatabaseFaultRun:
    cluster: PrivatePostgres
    factory: SupervisorFactory
    sentry: SentryIngest
    hosts: int = 2
    sups: list[SupervisorProcess] = field(default_factory=list)
    feeder: Feeder | None = None
    before: dict[str, Any] = field(default_factory=dict)  # the lease before the fault
    back_at: float = 0.0  # monotonic time the database was back
    back_wall: datetime = EVER  # the same moment, wall clock (slots are wall-clock times)

    # -- set-up ----------------------------------------------------------------------------------

    def start(self) -> DatabaseFaultRun:
        settings = {**SETTINGS, "sentry": {"dsn": self.sentry.dsn}}
        self.sups = [self.factory.start(f"node-{i}", **settings) for i in range(1, self.hosts + 1)]
        for sup in self.sups:
            sup.wait_for_event("worker.started", timeout=60)
        self.feeder = Feeder(self.cluster.url("river"))
        self.feeder.start()
        self.before = wait_until(self.live_lease, 30, "a first leader", context=self.tails)
        wait_until(lambda: len(self.slots()) >= 2, 20, "periodic slots before the fault", context=self.tails)
        return self

    # -- what the database says (a fresh connection each time: it may have restarted) ------------

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]] | None:
        try:
            return self.cluster.query(sql, params)
        except psycopg.Error:
            return None

    def live_lease(self) -> dict[str, Any] | None:
        rows = self.query(
            "select term, node, pid, leader_id from river_supervisor_leader"
            " where cluster = 'default' and expires_at > now()"
        )
        return rows[0] if rows else None

    def slots(self) -> list[Any]:
        rows = self.query(
            "select scheduled_at from river_job where metadata->>'river:periodic_job_id' = %s order by 1",
            (SCHEDULE,),
        )
        return [r["scheduled_at"] for r in rows or []]

    def ledger(self) -> str:
        """The schedule's ledger rows and durable state, for a failure message."""
        rows = self.query(
            "select s.slot, s.outcome, s.job_id, s.term, s.created_at, j.state, j.scheduled_at,"
            " j.attempt, j.errors, j.metadata from river_supervisor_periodic_slot s"
            " left join river_job j on j.id = s.job_id where s.periodic_id = %s order by s.slot",
            (SCHEDULE,),
        )
        state = self.query("select * from river_supervisor_periodic where id = %s", (SCHEDULE,))
        lines = [f"  {r}" for r in rows or []]
        return "periodic ledger:\n" + "\n".join(lines) + f"\nperiodic state: {state}"

    def leaders_by_log(self) -> list[SupervisorProcess]:
        """Supervisors whose own log says they lead now (their last gain is later than their last end)."""
        leading = []
        for sup in self.sups:
            events = [
                e.get("event")
                for e in sup.log_events()
                if e.get("event") == "leadership.gained" or e.get("event") in LEADERSHIP_ENDS
            ]
            if events and events[-1] == "leadership.gained":
                leading.append(sup)
        return leading

    def tails(self) -> str:
        return "\n".join(sup.log_tail(25) for sup in self.sups) + "\n" + self.cluster.log_tail(10)

    # -- after the fault -------------------------------------------------------------------------

    def database_back(self) -> None:
        self.back_at, self.back_wall = time.monotonic(), datetime.now(UTC)

    def slots_after_the_fault(self, timeout: float = TTL + 10) -> None:
        """Wait for a slot 2 s past the database's return: the slots due during the fault must
        have been caught up by then, so that "every slot exactly once" covers the fault itself
        (checked at once, the last slot could still be one from before the fault)."""
        wanted = self.back_wall + timedelta(seconds=2)
        wait_until(
            lambda: (found := self.slots()) and found[-1] >= wanted,
            timeout,
            f"a periodic slot at or after {wanted.isoformat()}",
            context=self.tails,
        )

    def one_leader_again(self, timeout: float = TTL + 5) -> tuple[dict[str, Any], float]:
        """Wait (ttl + 5 s from the database's return) for a live lease held by exactly one of ours."""

        def one() -> dict[str, Any] | None:
            lease = self.live_lease()
            if lease is None:
                return None
            leaders = self.leaders_by_log()
            pids = {s.pid for s in leaders}
            return lease if len(leaders) == 1 and lease["pid"] in pids else None

        remaining = max(0.5, self.back_at + timeout - time.monotonic())
        lease = wait_until(
            one, remaining, f"one leader within {timeout:g}s of the database", context=self.tails
        )
        return lease, time.monotonic() - self.back_at

    def all_jobs_completed(self, timeout: float = 90) -> float:
        assert self.feeder is not None
        self.feeder.stop()
        started = time.monotonic()

        def done() -> bool:  # the feeder's jobs and the schedule's (both test.noop)
            rows = self.query(
                "select state, count(*) as n from river_job where kind = 'test.noop' group by state"
            )
            return rows is not None and {r["state"] for r in rows} == {"completed"}

        wait_until(done, timeout, "every job completed", interval=0.5, context=self.job_states)
        return time.monotonic() - started

    def job_states(self) -> str:
        states = self.query("select kind, state, count(*) as n from river_job group by 1, 2")
        return f"job states: {states}\n" + self.tails()

    def leader(self) -> SupervisorProcess:
        lease = wait_until(self.live_lease, 10, "a live lease", context=self.tails)
        return next(s for s in self.sups if s.pid == lease["pid"])

    def events_since(
        self, since: datetime, names: set[str]
    ) -> list[tuple[SupervisorProcess, dict[str, Any]]]:
        """Log events named ``names`` logged at or after ``since`` (wall clock), by supervisor."""
        return [
            (sup, e)
            for sup in self.sups
            for e in sup.log_events()
            if e.get("event") in names and datetime.fromisoformat(e["time"]) >= since
        ]

    def check(self, label: str, max_sentry_events: int) -> dict[str, Any]:
        """The checks every fault ends with; prints the figures and returns them."""
        lease, to_leader = self.one_leader_again()
        self.slots_after_the_fault()  # and jobs fed after the fault, as the feeder runs until now
        drained = self.all_jobs_completed()
        assert all(s.exit_code() is None for s in self.sups), self.tails()
        # No host died: one taken for dead (its node row stale from the fault) has its jobs run twice.
        taken_for_dead = [e for _, e in self.events_since(EVER, {"maintenance.host_rescued"})]
        assert not taken_for_dead, f"live hosts taken for dead: {taken_for_dead}\n{self.tails()}"
        slots = self.slots()
        try:
            assert_every_second_exactly_once(slots)
        except AssertionError as exc:  # the ledger says who decided what, and when
            raise AssertionError(f"{exc}\n{self.ledger()}") from None
        assert self.feeder is not None
        total = self.query("select count(*) as n from river_job")
        events = self.sentry.events()
        figures = {
            "leader_after_s": round(to_leader, 2),
            "term_before": self.before["term"],
            "term_after": lease["term"],
            "jobs": total[0]["n"] if total else None,
            "feeder_failed_batches": self.feeder.failed_batches,
            "periodic_slots": len(slots),
            "drained_after_s": round(drained, 2),
            "sentry_events": len(events),
        }
        print(f"\n{label}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
        for item in events:
            print(f"  sentry: {item.summary()}")
        assert len(events) <= max_sentry_events, self.sentry.describe()
        return figures
