"""``river-supervisor health [--json]``: is this host's supervisor up, whole and reaching its database?

For load balancers, orchestrators and monitors (a Kubernetes ``exec`` probe, a systemd
``ExecStartPost`` check, a Nagios plugin). Healthy means: the database answers and is migrated,
this host's node (``node`` in the configuration, default the host name) has a live supervisor in
its cluster (a heartbeat within the last 15 s), and each such supervisor reports all of its
worker processes ready. The answer comes from the supervisor's own heartbeat row, so it needs no
port or pid file and works from any shell on the host (or, with ``--config``, from anywhere).

Exit 0 healthy, 1 unhealthy (the reasons on stdout), 69 the database is unavailable, 2 a usage or
configuration error (see the README's table). ``--json`` prints one document in every case.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from ..errors import EXIT_FAILED, EXIT_OK, DatabaseUnavailable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def run(args: argparse.Namespace) -> int:
    from .. import config, embedded, nodes, status

    cfg = embedded.with_database(config.load(args.config, flags=config.flag_values(args)))
    doc: dict[str, Any] = {"ok": False, "cluster": cfg.cluster, "node": cfg.node, "database": "ok"}
    try:
        with status.open_database(cfg, "river-supervisor health") as conn:
            rows = nodes.live_nodes(conn, cfg.cluster, nodes.STALE_AFTER)
        live = [row for row in rows if row.node == cfg.node]
    except DatabaseUnavailable as exc:
        if not args.json:
            raise  # one line on stderr, exit 69
        doc.update(database="unavailable", supervisors=[], problems=[str(exc)])
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return exc.exit_code
    doc["supervisors"] = [
        {
            "node_id": row.node_id,
            "pid": row.pid,
            "last_seen": status.iso(row.last_seen),
            "workers": row.workers,
            "workers_expected": row.workers_expected,
            "workers_down": dict(row.workers_down or {}),
        }
        for row in live
    ]
    doc["problems"] = problems(cfg.cluster, cfg.node, doc["supervisors"])
    doc["ok"] = not doc["problems"]
    doc["checked_at"] = status.iso(datetime.now(UTC))
    sys.stdout.write(json.dumps(doc, indent=2) + "\n" if args.json else render(doc))
    return EXIT_OK if doc["ok"] else EXIT_FAILED


def problems(cluster: str, node: str, supervisors: list[dict[str, Any]]) -> list[str]:
    """Why this node is unhealthy; empty when it is healthy."""
    if not supervisors:
        return [f"no live supervisor for node {node} in cluster {cluster} (no heartbeat in the last 15 s)"]
    found = []
    for sup in supervisors:
        ready, expected = sup["workers"], sup["workers_expected"]
        if ready is None or expected is None:
            found.append(f"supervisor pid {sup['pid']}: starting (workers not reported yet)")
        elif ready < expected:
            found.append(f"supervisor pid {sup['pid']}: {ready} of {expected} worker processes ready")
        found += [
            f"supervisor pid {sup['pid']}: worker {slot} cannot start, its breaker is open: {why}"
            for slot, why in sorted((sup.get("workers_down") or {}).items())
        ]
    return found


def render(doc: dict[str, Any]) -> str:
    if doc["ok"]:
        workers = ", ".join(
            f"pid {s['pid']} {s['workers']}/{s['workers_expected']} workers" for s in doc["supervisors"]
        )
        return f"healthy: node {doc['node']} in cluster {doc['cluster']}: {workers}; database ok\n"
    return "".join(f"unhealthy: {problem}\n" for problem in doc["problems"])
