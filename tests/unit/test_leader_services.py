"""The leader-service runner without a database: due ticks, backoff, fencing, failed starts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
from river_supervisor.config import MaintenanceConfig
from river_supervisor.errors import NotLeader
from river_supervisor.leader_services import MAX_START_FAILURES, LeaderService, ServiceRunner, Verdict
from river_supervisor.leadership import Term
from river_supervisor.maintenance import services as maintenance_services

TERM = Term(cluster="c", leader_id="a:1:b", node="a", term=3, elected_at=datetime(2026, 1, 1, tzinfo=UTC))


class Fake:
    """A leader service whose ``tick`` does what ``script`` says, in order."""

    def __init__(self, name: str, *script: Any, fail_start: int = 0) -> None:
        self.name = name
        self.script = list(script)
        self.fail_start = fail_start
        self.calls: list[str] = []

    def on_gained(self, conn: Any, term: Term, now: datetime) -> None:
        self.calls.append("gained")
        if self.fail_start:
            self.fail_start -= 1
            raise psycopg.OperationalError("the database went away")

    def tick(self, conn: Any, term: Term, now: datetime) -> float:
        self.calls.append("tick")
        step = self.script.pop(0) if self.script else 10.0
        if isinstance(step, BaseException):
            raise step
        return float(step)

    def on_lost(self) -> None:
        self.calls.append("lost")


def _runner(*services: LeaderService) -> tuple[ServiceRunner, list[str]]:
    seen: list[str] = []
    runner = ServiceRunner(
        services,
        session=lambda: object(),  # type: ignore[arg-type,return-value]
        drop=lambda: seen.append("drop"),
        on_transient=lambda: seen.append("transient"),
    )
    return runner, seen


def test_services_start_once_then_tick_when_due() -> None:
    service = Fake("a", 5.0, 5.0)
    runner, _ = _runner(service)
    assert runner.run(100.0, TERM, lambda: True, None) is Verdict.KEEP
    assert runner.next_deadline() == 105.0
    runner.run(101.0, TERM, lambda: True, None)  # not due: nothing runs
    runner.run(105.0, TERM, lambda: True, None)
    assert service.calls == ["gained", "tick", "tick"]
    runner.lose()
    assert service.calls[-1] == "lost" and runner.gained_services() == []


def test_a_refused_fenced_write_ends_the_term_at_once() -> None:
    fenced, after = Fake("a", NotLeader("a", 3)), Fake("b")
    runner, _ = _runner(fenced, after)
    assert runner.run(0.0, TERM, lambda: True, None) is Verdict.FENCED
    assert after.calls == []  # nothing more runs in a term that is over


def test_a_failed_tick_backs_off_and_a_service_that_cannot_start_gives_the_lease_up() -> None:
    flaky = Fake("flaky", psycopg.OperationalError("lost"), 1.0)
    runner, seen = _runner(flaky)
    assert runner.run(0.0, TERM, lambda: True, None) is Verdict.KEEP
    assert seen == ["transient", "drop"] and runner.next_deadline() > 0.0

    broken = Fake("broken", fail_start=MAX_START_FAILURES)
    runner, _ = _runner(broken)
    verdicts = [runner.run(float(100 * n), TERM, lambda: True, None) for n in range(MAX_START_FAILURES)]
    assert verdicts == [Verdict.KEEP] * (MAX_START_FAILURES - 1) + [Verdict.START_FAILED]


def test_nothing_runs_once_trust_lapses() -> None:
    service = Fake("a")
    runner, _ = _runner(service)
    runner.run(0.0, TERM, lambda: False, None)
    assert service.calls == []


def test_the_maintenance_services_are_leader_services() -> None:
    found: list[LeaderService] = maintenance_services(MaintenanceConfig())
    assert [s.name for s in found] == ["scheduler", "rescuer", "host_rescuer", "cleaner", "queue_cleaner"]
    assert all(callable(s.tick) and callable(s.on_gained) and callable(s.on_lost) for s in found)
