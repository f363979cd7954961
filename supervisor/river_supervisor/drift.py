"""Configuration drift: fingerprints of each node's schedules and plugins, and what differs.

Each node publishes ``fingerprint(schedules, plugin_versions)``: a sha256 over a canonical JSON
manifest of its effective schedules (every field that decides what is enqueued and when) and its
plugin distributions with versions. The leader reads the live nodes' manifests, and ``compare``
lists every difference against a reference (the leader's manifest, else the most common one):
schedules added, missing or changed (with the fields), plugins missing, added or at another
version.

One alert per distinct drift
    A drift's digest is the sha256 of the sorted set of distinct fingerprints in the cluster. It
    does not depend on which node leads or compares, nor on how many nodes share a configuration,
    so a leader change or a scale-out with an existing configuration is not a new drift; a new
    configuration is. ``record_drift`` keeps one row per digest and returns True only the first
    time, so the caller sends one Sentry event per distinct drift, not one per heartbeat.

May a drifting node lead? Yes.
    A node whose fingerprint differs from the others still campaigns and may lead. Refusing to
    lead on drift would trade a loud, visible problem for a silent outage: during every rolling
    deploy the hosts differ for a while, a two-host cluster has no majority to defer to, and a
    cluster where every host differs would have no leader at all, so no rescues, no retries and
    no periodic job. Instead the leader enqueues only the schedules it defines itself, reports
    the drift (log WARNING, Sentry once, ``status``, ``check`` fails), and reports each orphan (a
    schedule the cluster ran before that it does not define) with the node that last defined it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from . import db, nodes
from .leadership import Term, fenced_transaction
from .schedules import EffectiveSchedule

logger = logging.getLogger(__name__)

MANIFEST_FORMAT = 1


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _sha256(value: Any) -> str:
    return hashlib.sha256(_canonical(value).encode()).hexdigest()


def fingerprint(
    schedules: Iterable[EffectiveSchedule], plugin_versions: Mapping[str, str | None]
) -> tuple[str, dict[str, Any]]:
    """``(digest, manifest)`` for this node; equal configurations give equal digests."""
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "schedules": {s.id: {k: v for k, v in s.definition().items() if k != "id"} for s in schedules},
        "plugins": {name: plugin_versions[name] for name in sorted(plugin_versions)},
    }
    manifest = json.loads(_canonical(manifest))  # exactly what a JSON round trip gives back
    return _sha256(manifest), manifest


@dataclass(frozen=True, slots=True)
class Drift:
    """Every difference between the nodes' manifests; falsy when all agree."""

    reference: str | None  # the node compared against
    differences: tuple[dict[str, Any], ...]
    fingerprints: Mapping[str, str]  # node -> fingerprint
    digest: str  # "" when there is no drift

    def __bool__(self) -> bool:
        return bool(self.digest)

    @property
    def drifting_nodes(self) -> list[str]:
        return sorted({difference["node"] for difference in self.differences})

    def detail(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "fingerprints": dict(sorted(self.fingerprints.items())),
            "differences": list(self.differences),
        }

    def summary(self) -> str:
        if not self:
            return "no drift"
        counts = Counter(difference["what"] for difference in self.differences)
        parts = ", ".join(f"{count} {what.replace('_', ' ')}" for what, count in sorted(counts.items()))
        return f"{len(self.drifting_nodes)} node(s) differ from {self.reference}: {parts}"


def compare(manifests_by_node: Mapping[str, Mapping[str, Any]], *, reference: str | None = None) -> Drift:
    """Compare every node's manifest with ``reference``'s (default: the most common manifest,
    ties to the first node name)."""
    fingerprints = {node: _sha256(manifest) for node, manifest in manifests_by_node.items()}
    if not manifests_by_node:
        return Drift(None, (), {}, "")
    if reference is None or reference not in manifests_by_node:
        counts = Counter(fingerprints.values())
        reference = min(fingerprints, key=lambda node: (-counts[fingerprints[node]], node))
    base = manifests_by_node[reference]
    differences: list[dict[str, Any]] = []
    for node in sorted(manifests_by_node):
        if node == reference or fingerprints[node] == fingerprints[reference]:
            continue
        differences.extend(_differences(node, base, manifests_by_node[node]))
    distinct = sorted(set(fingerprints.values()))
    digest = _sha256(distinct) if len(distinct) > 1 else ""
    return Drift(reference, tuple(differences), fingerprints, digest)


def _differences(node: str, base: Mapping[str, Any], other: Mapping[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    mine, theirs = base.get("schedules", {}), other.get("schedules", {})
    for schedule_id in sorted(set(mine) | set(theirs)):
        if schedule_id not in mine:
            found.append({"node": node, "what": "schedule_added", "id": schedule_id})
        elif schedule_id not in theirs:
            found.append({"node": node, "what": "schedule_missing", "id": schedule_id})
        elif mine[schedule_id] != theirs[schedule_id]:
            fields = {
                name: {"reference": mine[schedule_id].get(name), "node": theirs[schedule_id].get(name)}
                for name in sorted(set(mine[schedule_id]) | set(theirs[schedule_id]))
                if mine[schedule_id].get(name) != theirs[schedule_id].get(name)
            }
            found.append({"node": node, "what": "schedule_changed", "id": schedule_id, "fields": fields})
    plugins, their_plugins = base.get("plugins", {}), other.get("plugins", {})
    for name in sorted(set(plugins) | set(their_plugins)):
        if name not in plugins:
            found.append(
                {"node": node, "what": "plugin_added", "plugin": name, "version": their_plugins[name]}
            )
        elif name not in their_plugins:
            found.append({"node": node, "what": "plugin_missing", "plugin": name, "version": plugins[name]})
        elif plugins[name] != their_plugins[name]:
            found.append(
                {
                    "node": node,
                    "what": "plugin_version",
                    "plugin": name,
                    "reference": plugins[name],
                    "version": their_plugins[name],
                }
            )
    if base.get("format") != other.get("format"):
        found.append({"node": node, "what": "manifest_format", "reference": base.get("format")})
    return found


def describe(difference: Mapping[str, Any], reference: str, *, kind: str | None = None) -> str:
    """One difference (of ``compare``) as people read it, in ``check``, ``status`` and Sentry alike.

    ``reference`` names what the node was compared with ("this host", "node web-1"); ``kind`` is the
    job kind of an added schedule when the caller knows it.
    """
    d, node = difference, f"node {difference['node']}"
    what = d["what"]
    if what == "schedule_added":
        job = f" ({kind})" if kind else ""
        return f"periodic {d['id']}{job} is defined on {node} but not on {reference}"
    if what == "schedule_missing":
        return f"periodic {d['id']} is defined on {reference} but not on {node}"
    if what == "schedule_changed":
        fields = "; ".join(
            f"{name} {values['reference']!r} on {reference}, {values['node']!r} there"
            for name, values in d["fields"].items()
        )
        return f"periodic {d['id']} differs on {node}: {fields}"
    plugin = f"plugin distribution {d.get('plugin')}"
    if what == "plugin_added":
        return f"{plugin} {d['version']} is installed on {node} but not on {reference}"
    if what == "plugin_missing":
        return f"{plugin} {d['version']} is installed on {reference} but not on {node}"
    if what == "plugin_version":
        return f"{plugin}: version {d['reference']} on {reference}, {d['version']} on {node}"
    return f"{node}: {str(what).replace('_', ' ')} differs from {reference}"


def record_drift(conn: psycopg.Connection[Any], term: Term, cluster: str, drift: Drift) -> bool:
    """Leader-only: record ``drift`` (fenced); True only the first time this digest is seen.
    Recording an empty drift marks every open one resolved and returns False."""
    with fenced_transaction(conn, term, "drift"):
        row = db.fetch_one(
            conn,
            "drift_record",
            {"cluster": cluster, "digest": drift.digest, "detail": _canonical(drift.detail())},
        )
    return bool(row and row["inserted"])


@dataclass(frozen=True, slots=True)
class Orphan:
    """A schedule with durable state in the cluster that the current leader does not define."""

    id: str
    kind: str
    defined_by: str | None  # node of the leader that last defined it
    last_slot: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "defined_by": self.defined_by,
            "last_slot": self.last_slot.isoformat() if self.last_slot else None,
        }


def find_orphans(
    rows: Iterable[Mapping[str, Any]], schedules: Sequence[EffectiveSchedule], disabled: Iterable[str] = ()
) -> list[Orphan]:
    """Rows of ``periodic_list`` whose schedule this node neither defines nor disables on purpose."""
    known = {schedule.id for schedule in schedules} | set(disabled)
    return [
        Orphan(row["id"], row["kind"], row.get("defined_by"), row.get("last_slot"))
        for row in rows
        if row["id"] not in known
    ]


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


class DriftWatch:
    """Leader-only service: compare the live nodes' manifests with the leader's, every interval.

    A change of the drift set is recorded (fenced) and the drifting nodes flagged; a drift never
    seen before is logged at WARNING and handed to ``on_new_drift`` (the supervisor sends one
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
        on_new_drift: Callable[[Drift], None] | None = None,
    ) -> None:
        self.cluster = cluster
        self.node_id = node_id
        self.stale_after = stale_after
        self.on_new_drift = on_new_drift
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
            if self.on_new_drift is not None:
                self.on_new_drift(drift)
        return self.interval
