"""The leader's drift watch: compare the live nodes' manifests, record each change of the drift set.

Leader-only (a ``LeaderService``): every ``interval`` it reads the live nodes, compares their
manifests with the leader's (``drift.compare``) and, when the drift set changed, writes it in two
fenced transactions: the drift row (``record_drift``: one row per distinct drift, so a drift is
reported once, not once per heartbeat) and the drifting nodes' flags (``nodes.set_drift``). A
drift never seen before is logged and reported (``report``, which sends it to Sentry).

Owns: recording drift. May import: ``db``, ``nodes``, ``leadership`` (Term, fenced transactions)
and the pure ``drift``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import psycopg

from . import db, nodes
from .drift import Drift, Finding, canonical, compare
from .leadership import Term, fenced_transaction

logger = logging.getLogger(__name__)


def record_drift(conn: psycopg.Connection[Any], term: Term, cluster: str, drift: Drift) -> bool:
    """Leader-only: record ``drift`` (fenced); True only the first time this digest is seen.
    Recording an empty drift marks every open one resolved and returns False."""
    with fenced_transaction(conn, term, "drift"):
        row = db.fetch_one(
            conn,
            "drift_record",
            {"cluster": cluster, "digest": drift.digest, "detail": canonical(drift.detail())},
        )
    return bool(row and row["inserted"])


class DriftWatch:
    """Leader-only service: compare the live nodes' manifests with the leader's, every interval.

    A change of the drift set is recorded (fenced) and the drifting nodes flagged; a drift never
    seen before is logged at WARNING and handed to ``report`` (the supervisor sends one
    Sentry event). The same drift seen on every heartbeat is neither logged nor sent again.
    """

    name = "drift"
    interval = 10.0

    def __init__(
        self,
        *,
        cluster: str,
        node_id: str,
        stale_after: float,
        report: Callable[[Finding], None] | None = None,
    ) -> None:
        self.cluster = cluster
        self.node_id = node_id
        self.stale_after = stale_after
        self.report = report
        self._seen: tuple[str, tuple[str, ...]] | None = None

    def on_gained(self, conn: psycopg.Connection[Any], term: Term, now: datetime) -> None:
        self._seen = None

    def on_lost(self) -> None:
        self._seen = None

    def tick(self, conn: psycopg.Connection[Any], term: Term, now: datetime) -> float:
        live = nodes.live_nodes(conn, self.cluster, self.stale_after)
        key = nodes.labels(live)
        manifests = {key[row.node_id]: dict(row.manifest) for row in live}
        drift = compare(manifests, reference=key.get(self.node_id))
        mine = next((row.fingerprint for row in live if row.node_id == self.node_id), None)
        drifting = tuple(sorted(row.node_id for row in live if mine is not None and row.fingerprint != mine))
        if self._seen == (drift.digest, drifting):
            return self.interval
        is_new = record_drift(conn, term, self.cluster, drift)
        nodes.set_drift(conn, term, drifting)
        self._seen = (drift.digest, drifting)
        if drift and is_new:
            logger.warning(
                "configuration drift in cluster %s: %s",
                self.cluster,
                drift.summary(),
                extra={
                    "event": "drift.detected",
                    "cluster": self.cluster,
                    "digest": drift.digest,
                    "nodes": drift.drifting_nodes,
                    "differences": list(drift.differences)[:50],
                },
            )
            if self.report is not None:
                self.report(drift)
        return self.interval
