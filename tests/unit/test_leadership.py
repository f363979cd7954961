"""The elector's arithmetic and transitions, with a fake clock and a scripted lease (no database)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from river_supervisor import leadership
from river_supervisor.config import LeadershipConfig
from river_supervisor.leadership import Elector, NodeIdentity, Term, Timings


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeLease:
    """Stands in for the lease connection; ``broken`` is what the elector checks after an error."""

    broken = False
    closed = False

    def __init__(self) -> None:
        self._quiet, self._w = os.pipe()  # never readable: the server said nothing

    def fileno(self) -> int:
        return self._quiet

    def close(self) -> None:
        self.broken = self.closed = True
        os.close(self._quiet)
        os.close(self._w)


Script = Callable[[str, dict[str, Any]], dict[str, Any] | None]


def _elector(monkeypatch: pytest.MonkeyPatch, clock: FakeClock, script: Script, ttl: float = 15.0) -> Elector:
    def fetch_one(conn: Any, name: str, params: Any = None) -> dict[str, Any] | None:
        return script(name, dict(params or {}))

    monkeypatch.setattr(leadership.db, "fetch_one", fetch_one)
    elector = Elector(
        LeadershipConfig(ttl=ttl),
        cluster="c",
        identity=NodeIdentity("n", 1, "b"),
        conninfo="postgresql://unused",
        clock=clock,
        rand=lambda: 0.0,
    )
    elector._lease = FakeLease()  # type: ignore[assignment]
    elector._campaigning = True
    elector._next_bid = clock.now
    return elector


def _won(name: str, params: dict[str, Any]) -> dict[str, Any] | None:
    if name == "leader_campaign":
        return {
            "leader_id": params["leader_id"],
            "node": params["node"],
            "term": 7,
            "elected_at": datetime(2026, 1, 1, tzinfo=UTC),
            "previous_leader_id": None,
            "previous_term": None,
            "previous_event": None,
            "previous_reason": None,
        }
    if name == "leader_renew":
        return {"term": params["term"]}
    raise AssertionError(name)


def test_timings_at_the_default_ttl() -> None:
    t = Timings.from_ttl(15.0)
    assert (t.renew_interval, t.margin, t.poll_interval) == (5.0, 1.5, 0.75)
    assert (t.statement_timeout, t.lock_timeout) == (5.0, 2.0)
    assert t.trusted_until(100.0) == 113.5


@pytest.mark.parametrize("ttl", [0.5, 1.0, 2.0, 15.0, 60.0, 600.0])
def test_trust_always_outlasts_the_next_renewal_and_ends_before_the_lease(ttl: float) -> None:
    t = Timings.from_ttl(ttl)
    assert t.renew_interval + t.statement_timeout < t.ttl - t.margin  # a renewal can finish in trust
    assert 0 < t.margin < t.ttl
    assert 0.25 <= t.poll_interval <= 1.0


def test_ttl_must_be_positive() -> None:
    with pytest.raises(ValueError, match="ttl"):
        Timings.from_ttl(0)


def test_leader_id_is_per_process_and_at_most_127_characters() -> None:
    assert NodeIdentity("host", 42, "abc").leader_id == "host:42:abc"
    long = NodeIdentity("h" * 300, 4194304, "0123456789ab").leader_id
    assert len(long) == 127 and long.endswith(":4194304:0123456789ab")
    assert NodeIdentity.current("host") != NodeIdentity.current("host")  # a random boot id each time


def test_trust_is_measured_from_when_the_renewal_was_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(100.0)

    def slow(name: str, params: dict[str, Any]) -> dict[str, Any] | None:
        clock.now += 3.0  # the answer takes 3 s to come back
        return _won(name, params)

    elector = _elector(monkeypatch, clock, slow)
    assert [e.kind for e in elector.step()] == ["gained"]
    assert elector.trusted_until == 100.0 + 15.0 - 1.5  # not 103 + ...
    assert elector.next_deadline() == 105.0  # renew ttl/3 after sending

    clock.now = 105.0
    elector.step()
    assert elector.trusted_until == 105.0 + 13.5
    assert elector.term is not None and elector.term.term == 7


def test_failed_renewals_warn_retry_and_end_in_expired(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(100.0)
    healthy = True

    def script(name: str, params: dict[str, Any]) -> dict[str, Any] | None:
        if healthy:
            return _won(name, params)
        raise psycopg.errors.QueryCanceled("canceling statement due to statement timeout")

    elector = _elector(monkeypatch, clock, script)
    elector.step()  # gained at 100, trusted until 113.5
    healthy = False
    caplog.set_level(logging.WARNING, logger="river_supervisor.leadership")

    seen: list[str] = []
    while elector.term is not None or not seen:
        clock.now = elector.next_deadline()
        seen += [e.kind for e in elector.step()]
        if "expired" in seen:
            break
    assert seen == ["expired"]
    assert clock.now == 113.5  # not a moment later: the trust window, not the lease, decides
    failures = [r for r in caplog.records if getattr(r, "event", "") == "leadership.renewal_failed"]
    assert len(failures) >= 3
    assert [r.attempt for r in failures] == list(range(1, len(failures) + 1))  # type: ignore[attr-defined]
    assert all(r.trust_remaining >= 0 for r in failures)  # type: ignore[attr-defined]
    expired = [r for r in caplog.records if getattr(r, "event", "") == "leadership.expired"]
    assert expired and expired[0].levelno == logging.WARNING and expired[0].term == 7  # type: ignore[attr-defined]


def test_renewal_finding_another_holder_is_superseded(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(100.0)
    taken = False

    def script(name: str, params: dict[str, Any]) -> dict[str, Any] | None:
        if name == "leader_get":
            return {"leader_id": "other:2:x", "term": 8, "node": "other"}
        if taken and name in ("leader_renew", "leader_campaign"):
            return None
        return _won(name, params)

    elector = _elector(monkeypatch, clock, script)
    elector.step()
    taken = True
    clock.now = elector.next_deadline()
    events = elector.step()
    assert [(e.kind, e.term, e.other_leader_id) for e in events] == [("superseded", 7, "other:2:x")]
    assert elector.term is None


def test_a_broken_lease_connection_reconnects_at_once_and_keeps_the_term(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock(100.0)
    broken = False

    def script(name: str, params: dict[str, Any]) -> dict[str, Any] | None:
        if broken:
            elector._lease.broken = True  # type: ignore[union-attr]
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return _won(name, params)

    elector = _elector(monkeypatch, clock, script)
    monkeypatch.setattr(elector, "_open_lease", lambda: setattr(elector, "_lease", FakeLease()))
    elector.step()
    term = elector.term
    broken = True
    clock.now = elector.next_deadline()
    assert elector.step() == []  # no event: trust lasts, the term goes on
    assert elector._lease is None and elector.next_deadline() == clock.now  # reconnect at once
    broken = False
    events = elector.step()  # reconnects and renews on the new connection
    assert [e.kind for e in events] == ["reconnected"] and elector.term == term
    broken = True
    clock.now = elector.next_deadline()
    elector.step()
    broken = False
    assert elector.step() == []  # the second reconnect of the term is only logged


def test_a_read_only_database_ends_the_term_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(100.0)
    read_only = False

    def script(name: str, params: dict[str, Any]) -> dict[str, Any] | None:
        if read_only:
            raise psycopg.errors.ReadOnlySqlTransaction("cannot execute UPDATE in a read-only transaction")
        return _won(name, params)

    elector = _elector(monkeypatch, clock, script)
    elector.step()
    read_only = True
    clock.now = elector.next_deadline()
    events = elector.step()
    assert [e.kind for e in events] == ["lost"] and events[0].detail == {"reason": "database_read_only"}
    assert elector.term is None
    clock.now = elector.next_deadline()
    assert elector.step() == []  # bids fail too, and are retried with backoff


def test_other_errors_are_bugs_and_propagate(monkeypatch: pytest.MonkeyPatch) -> None:
    def script(name: str, params: dict[str, Any]) -> dict[str, Any] | None:
        raise psycopg.errors.UndefinedTable("relation river_supervisor_leader does not exist")

    elector = _elector(monkeypatch, FakeClock(), script)
    with pytest.raises(psycopg.errors.UndefinedTable):
        elector.step()


def test_term_is_none_once_trust_lapsed_even_before_the_next_step(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(100.0)
    elector = _elector(monkeypatch, clock, _won)
    elector.step()
    assert isinstance(elector.term, Term)
    clock.now = 113.5
    assert elector.term is None
