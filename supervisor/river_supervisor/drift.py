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

This module is the pure layer: fingerprints, comparisons and orphans computed from plain data. The
database reads for ``status`` and the metrics are in ``drift_reads``; the leader's service that
records drift is ``drift_watch``. Owns: what drift is. May import: ``schedules`` (pure) only.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .schedules import EffectiveSchedule

MANIFEST_FORMAT = 1


def canonical(value: Any) -> str:
    """The JSON text fingerprints hash (and drift rows store): sorted keys, no spaces."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _sha256(value: Any) -> str:
    return hashlib.sha256(canonical(value).encode()).hexdigest()


def fingerprint(
    schedules: Iterable[EffectiveSchedule], plugin_versions: Mapping[str, str | None]
) -> tuple[str, dict[str, Any]]:
    """``(digest, manifest)`` for this node; equal configurations give equal digests."""
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "schedules": {s.id: {k: v for k, v in s.definition().items() if k != "id"} for s in schedules},
        "plugins": {name: plugin_versions[name] for name in sorted(plugin_versions)},
    }
    manifest = json.loads(canonical(manifest))  # exactly what a JSON round trip gives back
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


# What a leader-only service reports (once each; the service runner's owner sends it to Sentry): a
# drift never seen before, or a schedule the cluster ran that the new leader does not define.
Finding = Drift | Orphan
