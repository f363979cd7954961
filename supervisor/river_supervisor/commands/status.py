"""``river-supervisor status [--json] [--watch [SECONDS]]``: leader, nodes, drift, schedules, queues
(counts, paused ones, jobs no live host can run).

Reads the database only (``status.cluster_status`` builds the document; this module renders it).
Exit 0 (also when Ctrl-C ends ``--watch``); 2 when no database is configured or it is not migrated;
69 when it cannot be reached (or is lost while watching).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ..children import BREAKER_RETRY
from ..drift import describe
from ..errors import UsageError
from ..queue import JOB_STATES
from ..schedules import display_schedule


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--watch",
        nargs="?",
        const=2.0,
        type=float,
        metavar="SECONDS",
        help="redraw every SECONDS (default 2) until Ctrl-C; with --json, one document per line",
    )


def run(args: argparse.Namespace) -> int:
    from .. import config, embedded, status
    from ..discovery import discover
    from ..manifest import local_manifest

    if args.watch is not None and not args.watch > 0:
        raise UsageError(f"--watch: expected a number of seconds > 0, got {args.watch:g}")
    cfg = embedded.with_database(config.load(args.config, flags=config.flag_values(args)))
    conn = status.open_database(cfg, "river-supervisor status")
    with conn:
        local = local_manifest(cfg, discover(cfg.plugins), tolerant=True)
        if args.watch is None:
            doc = status.cluster_status(conn, cfg, local, datetime.now(UTC))
            sys.stdout.write(json.dumps(doc, indent=2) + "\n" if args.json else render(doc))
            return 0
        try:
            while True:
                doc = status.cluster_status(conn, cfg, local, datetime.now(UTC))
                _redraw(json.dumps(doc) + "\n" if args.json else render(doc), clear=not args.json)
                time.sleep(args.watch)
        except KeyboardInterrupt:  # a person is watching: Ctrl-C is how it ends
            return 0


def _redraw(text: str, *, clear: bool) -> None:
    """On a terminal, clear it and draw ``text`` at the top (as watch(1) does); else append."""
    if clear and sys.stdout.isatty():
        text = "\x1b[H\x1b[2J" + text
    elif clear:
        text += "\n"  # a blank line between views in a log or a pipe
    sys.stdout.write(text)
    sys.stdout.flush()


def _table(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _t(value: str | None) -> str:
    """A time for people: ISO 8601 with offset, to the second; "-" when unknown."""
    if not value:
        return "-"
    return datetime.fromisoformat(value).isoformat(timespec="seconds")


def render(doc: dict[str, Any]) -> str:
    """The human view of ``cluster_status``: Leader, Nodes, Drift, Periodic, Queues."""
    out = [f"Cluster {doc['cluster']} (as of {_t(doc['generated_at'])})", "", "Leader"]
    leader, last = doc["leader"], doc.get("last_leader")
    if leader:
        out.append(
            f"  {leader['node']}  term {leader['term']}  since {_t(leader['since'])}"
            f"  lease until {_t(leader['expires_at'])}"
        )
    elif last:
        out.append(f"  none (last: {last['node']} term {last['term']}, lease ended {_t(last['expires_at'])})")
    else:
        out.append("  none (no supervisor has led this cluster)")
    history = doc.get("leadership_history") or []
    if history:
        out.append("  recent changes:")
        out += [f"    {_t(e['at'])}  {e['event']:<10}  {e['node']}  term {e['term']}" for e in history[:5]]

    out += ["", "Nodes"]
    if doc["nodes"]:
        header = ("NODE", "PID", "WORKERS", "STARTED", "LAST SEEN", "FINGERPRINT", "DRIFT")
        rows: list[tuple[str, ...]] = [header]
        for node in doc["nodes"]:
            name = node["node"] + (" (leader)" if node.get("leader") else "")
            drift = "DRIFT" if node["drift"] else "-"
            workers = node["workers"]
            counts = "?" if workers["ready"] is None else f"{workers['ready']}/{workers['expected']}"
            rows.append(
                (
                    name,
                    str(node["pid"]),
                    counts,
                    _t(node["started_at"]),
                    _t(node["last_seen"]),
                    node["fingerprint"][:12],
                    drift,
                )
            )
        out += _table(rows)
        out += [
            f"  {node['node']} (pid {node['pid']}): worker {down['slot']} cannot start, its breaker is open"
            f" (the supervisor retries it every {BREAKER_RETRY:g}s): {down['reason']}"
            for node in doc["nodes"]
            for down in node["workers"]["down"]
        ]
    else:
        out.append("  none live")

    out += ["", "Drift"]
    drift = doc["drift"]
    out.append(f"  {drift['summary']}")
    reference = f"node {drift['reference']}" if drift.get("reference") else "the reference node"
    for difference in drift["differences"]:
        out.append("    " + describe(difference, reference))

    out += ["", "Periodic"]
    if doc["periodic"]:
        rows = [("ID", "KIND", "SCHEDULE", "LAST SLOT", "NEXT RUN", "NOTE")]
        for entry in doc["periodic"]:
            note = "ORPHANED" if entry["orphaned"] else ("" if entry["defined_here"] else "not defined here")
            rows.append(
                (
                    entry["id"],
                    entry["kind"],
                    display_schedule(entry["schedule"]) if entry["schedule"] else "-",
                    _t(entry["last_slot"]),
                    _t(entry["next_run_at"]),
                    note,
                )
            )
        out += _table(rows)
    else:
        out.append("  none")

    out += ["", "Queues (jobs by state)"]
    if doc["queues"]:
        present = [s for s in JOB_STATES if any(s in counts for counts in doc["queues"].values())]
        rows = [("QUEUE", *(s.upper() for s in present), "TOTAL")]
        for name, counts in doc["queues"].items():
            rows.append((name, *(str(counts.get(s, 0)) for s in present), str(sum(counts.values()))))
        out += _table(rows)
    else:
        out.append("  none")
    paused = doc.get("paused_queues") or []
    if paused:  # no host fetches these (River's river_queue.paused_at)
        out.append("  paused: " + ", ".join(f"{p['name']} (since {_t(p['paused_at'])})" for p in paused))
    unserved = doc.get("unserved") or {}
    waiting = [*unserved.get("queues", []), *unserved.get("kinds", [])]
    if waiting:
        out += ["", "Jobs no live host can run"]
        out += [f"  {entry['message']}" for entry in waiting]
    problems = doc.get("this_host", {}).get("problems") or []
    if problems:
        out += ["", "This host"]
        out += [f"  {problem['message']}" for problem in problems]
    return "\n".join(out) + "\n"
