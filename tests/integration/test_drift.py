"""Recording drift: one row per distinct drift, fenced, True only the first time."""

from __future__ import annotations

import psycopg
import pytest
from river_supervisor import nodes
from river_supervisor.config import PeriodicEntry
from river_supervisor.drift import compare, fingerprint
from river_supervisor.drift_reads import orphans
from river_supervisor.drift_watch import record_drift
from river_supervisor.errors import NotLeader
from river_supervisor.schedules import effective_schedules

from tests.integration.test_periodic import CLUSTER, T0, set_last_slot, take_lease

NIGHTLY = PeriodicEntry(id="nightly", kind="reports.nightly", cron="0 3 * * *")
SWEEP = PeriodicEntry(id="sweep", kind="billing.sweep", every=90.0)


def _manifest(*entries: PeriodicEntry) -> dict:
    return fingerprint(effective_schedules([], list(entries)).schedules, {"my-billing": "1.0"})[1]


def test_record_drift_is_new_once_per_distinct_drift(db: psycopg.Connection) -> None:
    term = take_lease(db, "web-1")
    drift = compare({"web-1": _manifest(NIGHTLY), "web-2": _manifest(NIGHTLY, SWEEP)})
    assert record_drift(db, term, CLUSTER, drift) is True
    assert record_drift(db, term, CLUSTER, drift) is False  # the next heartbeat: same drift
    other = compare({"web-1": _manifest(NIGHTLY), "web-2": _manifest(SWEEP)})
    assert record_drift(db, term, CLUSTER, other) is True
    rows = db.execute(
        "SELECT digest, resolved_at, detail FROM river_supervisor_drift ORDER BY first_seen"
    ).fetchall()
    assert [row["digest"] for row in rows] == [drift.digest, other.digest]
    assert rows[0]["resolved_at"] is not None and rows[1]["resolved_at"] is None
    assert rows[1]["detail"]["differences"]
    assert record_drift(db, term, CLUSTER, compare({"web-1": _manifest(NIGHTLY)})) is False
    assert db.execute(
        "SELECT count(*) AS n FROM river_supervisor_drift WHERE resolved_at IS NULL"
    ).fetchone() == {"n": 0}


def test_record_drift_is_fenced(db: psycopg.Connection) -> None:
    stale = take_lease(db, "web-1")
    take_lease(db, "web-2")
    drift = compare({"web-1": _manifest(NIGHTLY), "web-2": _manifest(SWEEP)})
    with pytest.raises(NotLeader):
        record_drift(db, stale, CLUSTER, drift)
    assert db.execute("SELECT count(*) AS n FROM river_supervisor_drift").fetchone() == {"n": 0}


def test_the_live_nodes_manifests_compare_under_their_labels(db: psycopg.Connection) -> None:
    """What the drift watch reads: the live node rows, named by ``nodes.labels``."""
    published = (
        ("web-1", 1, _manifest(NIGHTLY)),
        ("web-2", 1, _manifest(SWEEP)),
        ("web-2", 2, _manifest(SWEEP)),
    )
    for node, pid, manifest in published:
        db.execute(
            "INSERT INTO river_supervisor_node (cluster, node_id, node, pid, boot_id, manifest)"
            " VALUES (%s, %s, %s, %s, 'b', %s::jsonb)",
            (CLUSTER, f"{node}:{pid}:b", node, pid, psycopg.types.json.Jsonb(manifest)),
        )
    live = nodes.live_nodes(db, CLUSTER, stale_after=60)
    labels = nodes.labels(live)
    assert sorted(labels.values()) == ["web-1", "web-2 (web-2:1:b)", "web-2 (web-2:2:b)"]
    found = compare({labels[row.node_id]: dict(row.manifest) for row in live}, reference="web-1")
    assert found.drifting_nodes == ["web-2 (web-2:1:b)", "web-2 (web-2:2:b)"]


def test_orphans_from_durable_state(db: psycopg.Connection) -> None:
    set_last_slot(db, "legacy", T0, "every:60")
    (orphan,) = orphans(db, CLUSTER, effective_schedules([], [NIGHTLY]).schedules)
    assert (orphan.id, orphan.defined_by) == ("legacy", "old-leader")
