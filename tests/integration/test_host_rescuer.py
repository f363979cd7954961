"""The leader's dead-host rescuer: jobs of a node that stopped heartbeating go back within seconds."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
from river_supervisor import nodes
from river_supervisor.leadership import NodeIdentity
from river_supervisor.maintenance import DeadHostRescuer

from tests.integration.test_maintenance import insert, state
from tests.integration.test_periodic import take_lease


def _node(db: psycopg.Connection, name: str, seconds_ago: float, stopped: bool = False) -> str:
    identity = NodeIdentity(node=name, pid=100, boot_id="b00700")
    nodes.register(db, identity, "default", "digest", {})
    db.execute(
        "update river_supervisor_node set last_seen = now() - make_interval(secs => %s),"
        " stopped_at = case when %s then now() end where node_id = %s",
        (seconds_ago, stopped, identity.node_id),
    )
    return identity.node_id


def test_jobs_of_a_silent_or_stopped_host_go_back_and_the_others_stay(db: psycopg.Connection) -> None:
    dead = _node(db, "web-dead", seconds_ago=60)
    stopped = _node(db, "web-stopped", seconds_ago=1, stopped=True)
    live = _node(db, "web-live", seconds_ago=1)
    held = {
        name: insert(db, "running", attempt=1, attempted_by=[f"{node_id}/w0.3"])
        for name, node_id in (("dead", dead), ("stopped", stopped), ("live", live))
    }
    river_client = insert(db, "running", attempt=1, attempted_by=["a-river-go-client"])

    DeadHostRescuer("default", dead_after=15).tick(db, take_lease(db, "node-a"), datetime.now(UTC))

    assert state(db, held["dead"]) in {"available", "retryable"}
    assert state(db, held["stopped"]) in {"available", "retryable"}
    assert state(db, held["live"]) == "running"
    assert state(db, river_client) == "running"  # not ours: left to the stuck-job rescuer
    row = db.execute("select errors, metadata from river_job where id = %s", (held["dead"],)).fetchone()
    assert row["errors"][0]["error"].startswith("host web-dead stopped: its supervisor was last heard from")
    assert row["metadata"]["river:rescue_count"] == 1


def test_another_clusters_dead_host_is_not_ours(db: psycopg.Connection) -> None:
    dead = _node(db, "web-dead", seconds_ago=60)
    job = insert(db, "running", attempt=1, attempted_by=[f"{dead}/w1.1"])
    DeadHostRescuer("other", dead_after=15).tick(
        db, take_lease(db, "node-a", cluster="other"), datetime.now(UTC)
    )
    assert state(db, job) == "running"


def test_silence_is_not_judged_until_the_database_has_taken_writes_for_dead_after(
    db: psycopg.Connection,
) -> None:
    """After a database outage every node row is stale: a live host must not be taken for dead."""
    silent = _node(db, "web-silent", seconds_ago=40)  # as after a 30 s read-only spell
    stopped = _node(db, "web-stopped", seconds_ago=1, stopped=True)
    held = insert(db, "running", attempt=1, attempted_by=[f"{silent}/w0.1"])
    of_stopped = insert(db, "running", attempt=1, attempted_by=[f"{stopped}/w0.1"])
    writable_for = [3.0]  # this host's writes went through again 3 s ago
    rescuer = DeadHostRescuer("default", dead_after=15, writable_for=lambda: writable_for[0])
    term = take_lease(db, "node-a")

    rescuer.tick(db, term, datetime.now(UTC))
    assert state(db, held) == "running"
    assert state(db, of_stopped) in {"available", "retryable"}  # a stopped host counts at once

    writable_for[0] = 15.0  # the silent host had dead_after to be heard again, and was not
    rescuer.tick(db, term, datetime.now(UTC))
    assert state(db, held) in {"available", "retryable"}
