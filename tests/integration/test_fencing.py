"""Fencing in real PostgreSQL: leader-only transactions against takeovers, on two connections."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest
from river_supervisor import leader_fence, nodes
from river_supervisor.errors import NotLeader
from river_supervisor.leadership import Elector, LeadershipEvent, fenced_transaction

from tests.harness.wait import wait_until
from tests.integration.test_leadership_support import (
    MakeElector,
    db,
    kill_lease_backend,
    kinds,
    make_elector,
    step_due,
)

__all__ = ["db", "make_elector"]  # fixtures, imported for pytest

INSERT_NODE = (
    "insert into river_supervisor_node (cluster, node_id, node, pid, boot_id)"
    " values ('default', %s, 'n', 1, 'b')"
)


def _step_in_thread(elector: Elector, now: bool = False) -> tuple[threading.Thread, list[LeadershipEvent]]:
    """Run one (blocking) step elsewhere, so the test can watch it wait on a lock (``now``: at the
    present moment, not at the elector's next deadline)."""
    out: list[LeadershipEvent] = []
    step = elector.step if now else lambda: step_due(elector)
    thread = threading.Thread(target=lambda: out.extend(step()), daemon=True)
    thread.start()
    return thread, out


def _waiting_on_lock(db: psycopg.Connection, elector: Elector) -> bool:
    lease = elector._lease
    assert lease is not None
    row = db.execute(
        "select wait_event_type from pg_stat_activity where pid = %s", (lease.info.backend_pid,)
    ).fetchone()
    return row is not None and row["wait_event_type"] == "Lock"


@pytest.fixture
def service(database_url: str) -> Any:
    """The leader's service connection, on which leader-only transactions run."""
    conn = psycopg.connect(database_url, autocommit=True)
    yield conn
    conn.close()


def test_stalled_ex_leader_cannot_write_after_takeover(
    make_elector: MakeElector, db: psycopg.Connection, service: psycopg.Connection
) -> None:
    ex, new = make_elector("a", ttl=2.0), make_elector("b", ttl=2.0)
    ex.step()
    new.step()
    stale = ex.term
    assert stale is not None
    db.execute("update river_supervisor_leader set expires_at = now() - interval '1 millisecond'")
    assert kinds(step_due(new)) == ["gained", "lost"]  # and the loss of the holder it replaced

    with pytest.raises(NotLeader) as refused, fenced_transaction(service, stale, "periodic"):
        service.execute(INSERT_NODE, ("x",))
    assert (refused.value.service, refused.value.term) == ("periodic", stale.term)
    assert db.execute("select count(*) as n from river_supervisor_node").fetchone() == {"n": 0}

    current = new.term
    assert current is not None
    with fenced_transaction(service, current, "periodic"):  # the new term may write
        service.execute(INSERT_NODE, ("y",))
    assert db.execute("select count(*) as n from river_supervisor_node").fetchone() == {"n": 1}


def test_takeover_waits_for_a_fenced_transaction_then_wins_a_higher_term(
    make_elector: MakeElector, db: psycopg.Connection, service: psycopg.Connection
) -> None:
    leader, follower = make_elector("a"), make_elector("b")
    leader.step()
    follower.step()
    held = leader.term
    assert held is not None

    kill_lease_backend(db)  # the holder's lease connection is gone and, once the follower has seen
    assert kinds(step_due(follower)) == []  # it gone for the grace a live leader has to reconnect,
    wait_until(lambda: follower._gone.takeover_backend(time.monotonic()), describe="the grace to pass")
    follower._next_bid = 0.0  # bid now (its next deadline may be before the grace ends)
    with fenced_transaction(service, held, "periodic"):  # a takeover is allowed...
        thread, events = _step_in_thread(follower, now=True)
        wait_until(lambda: _waiting_on_lock(db, follower), describe="the takeover to wait on the lease row")
        assert thread.is_alive() and events == []  # ...but waits while the leader's write is in flight
    thread.join(timeout=10)

    assert kinds(events) == ["gained", "lost"]
    assert events[0].term > held.term
    with pytest.raises(NotLeader):
        nodes.set_drift(service, held, [])


def test_a_leader_paused_inside_a_fenced_transaction_cannot_block_a_takeover(
    make_elector: MakeElector,
    db: psycopg.Connection,
    service: psycopg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(leader_fence, "FENCE_IDLE_TIMEOUT_MS", 300)
    leader, follower = make_elector("a"), make_elector("b")
    leader.step()
    follower.step()
    held = leader.term
    assert held is not None

    paused = fenced_transaction(service, held, "periodic")
    paused.__enter__()  # ... and the leader never gets to commit
    kill_lease_backend(db)
    events = wait_until(lambda: step_due(follower), describe="the follower to take over")

    assert kinds(events) == ["gained", "lost"]
    assert events[0].term > held.term
    # The server ended the idle transaction's session. Note: an InternalError, not an OperationalError.
    with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
        paused.__exit__(None, None, None)


def test_a_fenced_transaction_waits_at_most_its_lock_timeout(
    make_elector: MakeElector,
    db: psycopg.Connection,
    service: psycopg.Connection,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(leader_fence, "FENCE_LOCK_TIMEOUT_MS", 200)
    leader = make_elector("a")
    leader.step()
    held = leader.term
    assert held is not None
    blocker = psycopg.connect(database_url)  # holds the row FOR UPDATE, as a takeover in progress would
    blocker.execute("select 1 from river_supervisor_leader for update")
    try:
        with pytest.raises(psycopg.errors.LockNotAvailable), fenced_transaction(service, held, "periodic"):
            pass
    finally:
        blocker.rollback()
        blocker.close()
