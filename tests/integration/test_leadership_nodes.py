"""The node registry and what ``status`` reads about leadership, against a real PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest
from river_supervisor import nodes
from river_supervisor.errors import NotLeader
from river_supervisor.leadership import NodeIdentity

from tests.integration.test_leadership_support import MakeElector, db, make_elector, step_due

__all__ = ["db", "make_elector"]  # fixtures, imported for pytest


def test_register_heartbeat_and_stop(db: psycopg.Connection) -> None:
    one, two = NodeIdentity.current("host"), NodeIdentity.current("host")
    nodes.register(db, one, "default", "fp1", {"plugins": ["a"]})
    nodes.register(db, two, "default", "fp1", {})
    nodes.register(db, one, "default", "fp2", {"plugins": ["a", "b"]})  # again: refreshed, not duplicated

    live = nodes.live_nodes(db, "default", stale_after=60)
    assert sorted(n.node_id for n in live) == sorted([one.node_id, two.node_id])
    mine = next(n for n in live if n.node_id == one.node_id)
    assert (mine.node, mine.pid, mine.boot_id, mine.fingerprint) == ("host", one.pid, one.boot_id, "fp2")
    assert mine.manifest == {"plugins": ["a", "b"]} and mine.backend_pid is not None

    assert nodes.heartbeat(db, one, "default")
    assert nodes.mark_stopped(db, two, "default")
    assert [n.node_id for n in nodes.live_nodes(db, "default", stale_after=60)] == [one.node_id]
    assert not nodes.heartbeat(db, NodeIdentity.current("never-registered"), "default")


def test_nodes_not_heard_from_are_not_live(db: psycopg.Connection) -> None:
    quiet = NodeIdentity.current("quiet")
    nodes.register(db, quiet, "default", "fp", {})
    db.execute("update river_supervisor_node set last_seen = now() - interval '1 minute'")
    assert nodes.live_nodes(db, "default", stale_after=30) == []
    nodes.heartbeat(db, quiet, "default")
    assert len(nodes.live_nodes(db, "default", stale_after=30)) == 1


def test_set_drift_is_fenced_and_marks_exactly_the_given_nodes(
    make_elector: MakeElector, db: psycopg.Connection
) -> None:
    leader = make_elector("a")
    leader.step()
    held = leader.term
    assert held is not None
    ids = [NodeIdentity.current(f"n{i}") for i in range(3)]
    for ident in ids:
        nodes.register(db, ident, "default", "fp", {})

    assert sorted(nodes.set_drift(db, held, [ids[0].node_id, ids[1].node_id])) == sorted(
        [ids[0].node_id, ids[1].node_id]
    )
    assert nodes.set_drift(db, held, [ids[1].node_id]) == [ids[0].node_id]  # only changes are returned
    drifted = {n.node_id for n in nodes.live_nodes(db, "default", 60) if n.drift}
    assert drifted == {ids[1].node_id}

    leader.resign()
    with pytest.raises(NotLeader):
        nodes.set_drift(db, held, [])


def test_status_shows_the_leader_and_its_history(make_elector: MakeElector, db: psycopg.Connection) -> None:
    assert nodes.leader(db, "default") is None
    a, b = make_elector("a"), make_elector("b")
    a.step()
    b.step()
    held = a.term
    assert held is not None
    shown = nodes.leader(db, "default")
    assert shown is not None
    assert (shown["node"], shown["term"], shown["since"], shown["live"]) == (
        "a",
        held.term,
        held.elected_at,
        True,
    )

    a.resign()
    step_due(b)
    history = nodes.leader_history(db, "default", limit=2)
    assert [(h["event"], h["node"]) for h in history] == [("gained", "b"), ("resigned", "a")]
