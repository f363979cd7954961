"""Configuration drift as the database shows it now: for ``status``, ``check`` and the metrics.

Read-only: the schedules with durable state that a node does not define
(orphans), and the cluster's drift as the metrics endpoint counts it. What drift is (fingerprints,
comparison) is in ``drift``; the leader's service that records it is ``drift_watch``.

Owns: drift's database reads. May import: ``db``, ``nodes`` and the pure ``drift``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from . import db, nodes
from .drift import Orphan, find_orphans
from .schedules import EffectiveSchedule


def orphans(
    conn: psycopg.Connection[Any],
    cluster: str,
    schedules: Sequence[EffectiveSchedule],
    disabled: Iterable[str] = (),
) -> list[Orphan]:
    """``find_orphans`` over the cluster's durable state (for ``status`` and ``check``)."""
    return find_orphans(db.fetch_all(conn, "periodic_list", {"cluster": cluster}), schedules, disabled)


@dataclass(frozen=True, slots=True)
class ClusterDrift:
    """How far a cluster's live nodes disagree, as the metrics endpoint shows it."""

    drifting_nodes: int  # live nodes whose fingerprint differs from the leader's (else the most common)
    orphaned_schedules: int  # schedules with durable state that the leader (else this host) does not define


def cluster_drift(
    conn: psycopg.Connection[Any], cluster: str, stale_after: float, defined_here: Iterable[str]
) -> ClusterDrift:
    """Read-only: the cluster's drift and orphans now, judged as ``status`` judges them."""
    live = nodes.live_nodes(conn, cluster, stale_after)
    lease = nodes.leader(conn, cluster)
    leader_id = lease["leader_id"] if lease and lease["live"] else None
    leader_row = next((row for row in live if row.node_id == leader_id), None)
    prints = Counter(row.fingerprint for row in live)
    reference = leader_row.fingerprint if leader_row else (prints.most_common(1)[0][0] if prints else None)
    defined = set(leader_row.manifest.get("schedules", {})) if leader_row else set(defined_here)
    stored = {row["id"] for row in db.fetch_all(conn, "periodic_list", {"cluster": cluster})}
    return ClusterDrift(
        drifting_nodes=sum(count for fingerprint, count in prints.items() if fingerprint != reference),
        orphaned_schedules=len(stored - defined),
    )
