"""``river-supervisor queues list|pause|resume``: River's queues, as River UI shows and pauses them.

``pause NAME`` / ``resume NAME`` act as River's ``QueuePause``/``QueueResume`` (``--all`` is River's
``"*"``): the ``river_queue`` row and the ``river_control`` notification, in one transaction, so
River's own clients obey it as well as ours. Exit 0; 1 when the named queue has no row (River's
not found); 2 on usage errors or when the database cannot be reached or is not migrated.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..cli import add_common_arguments
from ..errors import UsageError
from ..queue import JOB_STATES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    actions.add_parser("list", help="each queue: paused or active, jobs by state, oldest available, hosts")
    for name, help_text in (
        ("pause", "stop every host fetching a queue (running jobs finish); survives restarts"),
        ("resume", "let every host fetch a paused queue again, at once"),
    ):
        action = actions.add_parser(name, help=help_text)
        action.add_argument("queue", nargs="?", metavar="NAME", help="the queue")
        action.add_argument("--all", action="store_true", help='every queue (River\'s "*")')
    for action in actions.choices.values():
        action.add_argument("--json", action="store_true", help="print one JSON document")
        add_common_arguments(action, nested=True)


def _target(args: argparse.Namespace) -> str:
    from ..queues import ALL

    if args.all and args.queue:
        raise UsageError(f"queues {args.action}: give a queue name or --all, not both")
    if not args.all and not args.queue:
        raise UsageError(f"queues {args.action}: name a queue, or give --all for every queue")
    return ALL if args.all else str(args.queue)


def run(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from .. import config, embedded, queues, status

    target = _target(args) if args.action != "list" else None
    cfg = embedded.with_database(config.load(args.config, flags=config.flag_values(args)))
    with status.open_database(cfg, f"river-supervisor queues {args.action}") as conn:
        if target is None:
            doc = {"queues": status.queue_list(conn, datetime.now(UTC))}
            sys.stdout.write(json.dumps(doc, indent=2) + "\n" if args.json else render(doc["queues"]))
            return 0
        changed = queues.pause(conn, target) if args.action == "pause" else queues.resume(conn, target)
    what = "every queue" if target == queues.ALL else f"queue {target}"
    if args.json:
        sys.stdout.write(json.dumps({"action": args.action, "queue": target, "queues": changed}) + "\n")
    else:
        verb = "paused" if args.action == "pause" else "resumed"
        rows = f" ({changed} queue{'s' if changed != 1 else ''})" if target == queues.ALL else ""
        sys.stdout.write(f"{what} {verb}{rows}\n")
    return 0


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def render(entries: list[dict[str, Any]]) -> str:
    """The human view of ``status.queue_list``: one aligned row per queue."""
    if not entries:
        return "no queues (no host has served one, and no job is queued)\n"
    present = [s for s in JOB_STATES if any(s in e["jobs"] for e in entries)]
    header = ("QUEUE", "STATE", *(s.upper() for s in present), "OLDEST AVAILABLE", "HOSTS")
    rows = [header]
    for e in entries:
        hosts = ", ".join(f"{h['node']} ({h['concurrency']})" for h in e["hosts"]) or "-"
        state = f"paused since {e['paused_at'][:19]}" if e["paused_at"] else e["state"]
        counts = (str(e["jobs"].get(s, 0)) for s in present)
        rows.append((e["name"], state, *counts, _age(e["oldest_available_age"]), hosts))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines) + "\n"
