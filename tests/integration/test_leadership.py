"""Electors against a real PostgreSQL, several in one process, each driven by ``step()``."""

from __future__ import annotations

import time

import psycopg
import pytest
from river_supervisor import nodes
from river_supervisor.errors import NotLeader
from river_supervisor.leadership import fenced_transaction

from tests.harness.wait import wait_until
from tests.integration.test_leadership_support import (
    MakeElector,
    db,
    kill_lease_backend,
    kinds,
    lease_row,
    make_elector,
    step_due,
    wait_readable,
)

__all__ = ["db", "make_elector"]  # fixtures, imported for pytest


def test_three_electors_elect_exactly_one_leader(make_elector: MakeElector, db: psycopg.Connection) -> None:
    electors = [make_elector(f"node{i}") for i in range(3)]
    results = [kinds(e.step()) for e in electors]
    assert results == [["gained"], [], []]
    for _ in range(3):  # later rounds change nothing
        assert [kinds(step_due(e)) for e in electors] == [[], [], []]

    leaders = [e for e in electors if e.term is not None]
    assert len(leaders) == 1
    held = leaders[0].term
    assert held is not None
    shown = nodes.leader(db, "default")
    assert shown is not None
    assert (shown["leader_id"], shown["term"], shown["live"]) == (held.leader_id, held.term, True)


def test_same_node_name_in_two_processes_is_two_identities(make_elector: MakeElector) -> None:
    first, second = make_elector("same-host"), make_elector("same-host")
    assert first.identity.leader_id != second.identity.leader_id
    assert kinds(first.step()) == ["gained"]
    assert kinds(second.step()) == []  # not mistaken for the holder


def test_leader_renews_and_keeps_its_term(make_elector: MakeElector, db: psycopg.Connection) -> None:
    leader = make_elector("a")
    leader.step()
    held = leader.term
    before = lease_row(db)
    assert held is not None and before is not None
    assert kinds(step_due(leader)) == []  # a renewal
    after = lease_row(db)
    assert after is not None
    assert after["term"] == held.term
    assert after["expires_at"] > before["expires_at"]
    assert leader.term == held


def test_resign_hands_over_on_the_notification(make_elector: MakeElector, db: psycopg.Connection) -> None:
    leader, follower = make_elector("a"), make_elector("b")
    assert kinds(leader.step()) == ["gained"]
    assert kinds(follower.step()) == []
    old = leader.term
    assert old is not None

    started = time.monotonic()
    assert kinds(leader.resign()) == ["resigned"]
    assert leader.term is None
    wait_readable(follower)
    gained = follower.step()
    elapsed = time.monotonic() - started

    assert kinds(gained) == ["gained"]
    assert gained[0].term > old.term
    assert gained[0].other_leader_id is None  # the row was deleted, nobody was replaced
    assert kinds(step_due(leader)) == []  # a resigned elector does not bid again
    print(f"resign -> gained in-process: {elapsed * 1000:.1f} ms")


def test_killed_lease_backend_lets_a_follower_take_over_before_expiry(
    make_elector: MakeElector, db: psycopg.Connection
) -> None:
    leader, follower = make_elector("a"), make_elector("b")
    leader.step()
    follower.step()
    old = leader.term
    row = lease_row(db)
    assert old is not None and row is not None

    kill_lease_backend(db)
    # The follower waits out the grace a killed-but-alive leader has to reconnect (the leader here
    # does not step: a crash), then takes over.
    gained = wait_until(lambda: step_due(follower), 10, "the follower's takeover", interval=0.2)

    assert kinds(gained) == ["gained", "lost"]
    assert gained[0].term > old.term
    assert gained[0].other_leader_id == old.leader_id
    assert gained[0].detail["previous_reason"] == "backend_gone"
    lost = gained[1]  # the successor reports the loss of the holder it replaced
    assert (lost.node, lost.term, lost.detail["reason"]) == ("a", old.term, "session_gone")
    assert lost.detail["leaderless_seconds"] > 0
    taken = lease_row(db)
    assert taken is not None and taken["elected_at"] < row["expires_at"]  # before the old lease ran out

    ended = step_due(leader)  # its renewal meets the dead connection, it reconnects: too late
    ended += step_due(leader)
    assert kinds(ended) == ["superseded"]
    assert leader.term is None


def test_a_leader_whose_session_is_killed_continues_its_term_on_a_new_connection(
    make_elector: MakeElector, db: psycopg.Connection
) -> None:
    leader, follower = make_elector("a"), make_elector("b")
    leader.step()
    follower.step()
    old = leader.term
    assert old is not None
    events = []
    for _ in range(3):
        kill_lease_backend(db)
        events += step_due(leader)  # the lease socket is readable: it finds out at once
        events += step_due(leader)  # reconnects and renews there
        assert kinds(step_due(follower)) == []
    assert kinds(events) == ["reconnected"]  # one report for the three kills
    assert leader.term == old and lease_row(db)["term"] == old.term


def test_stalled_leader_is_replaced_with_the_next_term_and_its_writes_are_refused(
    make_elector: MakeElector, db: psycopg.Connection, database_url: str
) -> None:
    stalled, follower = make_elector("a", ttl=2.0), make_elector("b", ttl=2.0)
    stalled.step()
    follower.step()
    old = stalled.term
    assert old is not None
    service = psycopg.connect(database_url, autocommit=True)
    nodes.register(db, follower.identity, "default", "fp", {})
    assert nodes.set_drift(service, old, [follower.identity.node_id]) == [follower.identity.node_id]

    # The leader stops stepping; its lease runs out (forced, rather than waited for).
    db.execute("update river_supervisor_leader set expires_at = now() - interval '1 millisecond'")
    gained = step_due(follower)
    assert kinds(gained) == ["gained", "lost"]  # and the loss of the holder it replaced
    assert gained[0].term == old.term + 1
    assert gained[0].detail["previous_event"] == "expired"

    ended = step_due(stalled)
    assert kinds(ended) in (["expired"], ["lost"], ["superseded"])
    assert stalled.term is None
    with pytest.raises(NotLeader):
        nodes.set_drift(service, old, [])
    drifted = db.execute("select drift from river_supervisor_node").fetchone()
    assert drifted == {"drift": True}  # the refused write changed nothing
    service.close()


def test_a_leader_whose_trust_lapsed_reports_expired(make_elector: MakeElector) -> None:
    leader = make_elector("a", ttl=2.0)
    leader.step()
    held = leader.term
    assert held is not None
    events = leader.step(now=leader.trusted_until)  # the loop woke too late to renew in time
    assert kinds(events)[:1] == ["expired"]
    assert events[0].term == held.term


def test_terms_only_grow_across_truncation_of_the_lease_table(
    make_elector: MakeElector, db: psycopg.Connection
) -> None:
    leader = make_elector("a")
    leader.step()
    first = leader.term
    assert first is not None
    db.execute("truncate river_supervisor_leader")

    events = step_due(leader)  # renewal finds no row; the bid that follows wins a new term
    assert kinds(events) == ["lost", "gained"]
    assert events[1].term > first.term
    with pytest.raises(NotLeader), fenced_transaction(db, first, "test"):
        pass


def test_history_has_a_row_for_each_change(make_elector: MakeElector, db: psycopg.Connection) -> None:
    a, b = make_elector("a"), make_elector("b")
    a.step()
    db.execute("update river_supervisor_leader set expires_at = now() - interval '1 millisecond'")
    b.step()
    b.resign()
    wait_readable(a)
    assert kinds(a.step()) == ["lost", "gained"]  # a stale leader learns from the notification
    a.resign()

    history = [(h["event"], h["leader_id"], h["term"]) for h in reversed(nodes.leader_history(db, "default"))]
    a_id, b_id = a.identity.leader_id, b.identity.leader_id
    t1 = history[0][2]
    assert history == [
        ("gained", a_id, t1),
        ("expired", a_id, t1),
        ("gained", b_id, t1 + 1),
        ("resigned", b_id, t1 + 1),
        ("gained", a_id, t1 + 2),
        ("resigned", a_id, t1 + 2),
    ]


def test_electors_of_different_clusters_do_not_interfere(make_elector: MakeElector) -> None:
    one, two = make_elector("a", cluster="one"), make_elector("b", cluster="two")
    assert kinds(one.step()) == ["gained"]
    assert kinds(two.step()) == ["gained"]
    one.resign()
    assert kinds(two.step()) == []
