"""``river-supervisor leader resign [--cluster C]``: move leadership to another host, now.

River's ``request_resign`` on our leadership channel: the leader resigns as on shutdown (its row
deleted, followers notified in the same statement) and holds off bidding, so a follower leads
within milliseconds. This command refuses when the cluster has no live leader or no other live
host to take over (resigning then would only leave the cluster leaderless), then waits until the
lease has a new holder and says who and how fast (database clock).

Exit 0 once another host leads; 1 when refused or when leadership did not move within
``--timeout``; 2 on usage errors or when the database cannot be reached or is not migrated.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ..cli import add_common_arguments
from ..errors import RiverSupervisorError

POLL = 0.005  # seconds between reads of the lease while waiting for the new leader


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    resign = actions.add_parser("resign", help="ask the leader to step down; another live host takes over")
    resign.add_argument("--cluster", help="the cluster (default: the configured one)")
    resign.add_argument(
        "--timeout", type=float, default=5.0, metavar="SECONDS", help="wait this long for a new leader"
    )
    resign.add_argument("--json", action="store_true", help="print one JSON document")
    add_common_arguments(resign, nested=True)


def run(args: argparse.Namespace) -> int:
    from .. import config, embedded, status

    cfg = embedded.with_database(config.load(args.config, flags=config.flag_values(args)))
    with status.open_database(cfg, "river-supervisor leader resign") as conn:
        moved = resign(conn, cfg.cluster, args.timeout)
    if args.json:
        sys.stdout.write(json.dumps(moved) + "\n")
    else:
        old, new = moved["previous"], moved["leader"]
        sys.stdout.write(
            f"leadership of cluster {moved['cluster']} moved from {old['node']} (term {old['term']})"
            f" to {new['node']} (term {new['term']}) in {moved['handoff_ms']:.1f} ms\n"
        )
    return 0


def resign(conn: Any, cluster: str, timeout: float) -> dict[str, Any]:
    """Ask ``cluster``'s leader to resign; return the old and new holders once the lease moved."""
    from .. import leadership, nodes, status

    lease = nodes.leader(conn, cluster)
    if lease is None or not lease["live"]:
        raise RiverSupervisorError(f"cluster {cluster}: no live leader, so none to resign")
    others = [
        n for n in nodes.live_nodes(conn, cluster, status.STALE_AFTER) if n.node_id != lease["leader_id"]
    ]
    if not others:
        raise RiverSupervisorError(
            f"cluster {cluster}: refusing to ask {lease['node']} (term {lease['term']}) to resign:"
            " no other live host could take over, the cluster would be left without a leader"
        )
    sent_at = leadership.request_resign(conn, cluster)
    deadline = time.monotonic() + timeout
    current: dict[str, Any] | None = lease
    while time.monotonic() < deadline:
        current = nodes.leader(conn, cluster)
        if current is not None and current["live"] and current["term"] != lease["term"]:
            break
        time.sleep(POLL)
    else:
        leading = f"{current['node']} (term {current['term']})" if current and current["live"] else "no one"
        raise RiverSupervisorError(
            f"cluster {cluster}: leadership did not move to another host within {timeout:g}s;"
            f" leader now: {leading}"
        )
    assert current is not None  # the loop ended on a live lease of a new term
    if current["leader_id"] == lease["leader_id"]:  # no follower took it; the old leader is back
        raise RiverSupervisorError(
            f"cluster {cluster}: no other host took over;"
            f" {lease['node']} leads again (term {current['term']})"
        )

    def holder(row: dict[str, Any]) -> dict[str, Any]:
        return {
            "node": row["node"],
            "leader_id": row["leader_id"],
            "term": row["term"],
            "since": status.iso(row["since"]),
        }

    return {
        "cluster": cluster,
        "previous": holder(lease),
        "leader": holder(current),
        "requested_at": status.iso(sent_at),
        "handoff_ms": (current["since"] - sent_at).total_seconds() * 1000,
    }
