"""`river-supervisor plugins [--json]`: discovered plugins, their job kinds and schedules, load errors.

Exit code: 0 when every enabled plugin loaded and no two claim the same job kind or periodic id;
1 otherwise (the listing is still printed in full first, then one line on stderr says what failed).
A broken plugin is a problem found, like `check`'s: a deployment script can stop on it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..errors import RiverSupervisorError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def run(args: argparse.Namespace) -> int:
    from .. import config
    from ..discovery import discover

    cfg = config.load(args.config, flags={"database_url": args.database_url})
    found = discover(cfg.plugins)
    if args.json:
        sys.stdout.write(json.dumps(found.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(render(found.to_json()))
    problems = [f"{e.name}" for e in found.errors]
    if problems or found.conflicts:
        parts = []
        if problems:
            parts.append(f"{len(problems)} plugin(s) failed to load: {', '.join(problems)}")
        if found.conflicts:
            parts.append(f"{len(found.conflicts)} conflict(s): {found.conflicts[0]}")
        raise RiverSupervisorError("plugins: " + "; ".join(parts))
    return 0


def _schedule(entry: dict[str, Any]) -> str:
    when = f"cron {entry['cron']}" if entry.get("cron") else f"every {entry['every']:g}s"
    tz = "" if entry.get("timezone", "UTC") == "UTC" else f" {entry['timezone']}"
    return f"{entry['id']} ({entry['kind']}, {when}{tz})"


def render(doc: dict[str, Any]) -> str:
    """The human view of ``PluginSet.to_json()``: an aligned table, then errors and conflicts."""
    rows = doc["plugins"]
    if not rows:
        return "no plugins installed (entry-point group river_supervisor.plugins)\n"
    header = ("NAME", "DISTRIBUTION", "VERSION", "STATUS", "KINDS", "PERIODIC")
    table = [header]
    for row in rows:
        status = "error" if row["error"] else ("ok" if row.get("enabled", True) else "disabled")
        kinds = row["kinds"] or ["-"]
        periodic = [_schedule(p) for p in row["periodic"]] or ["-"]
        # One line per kind/schedule keeps long lists readable; name and status on the first only.
        for i in range(max(len(kinds), len(periodic))):
            first = i == 0
            table.append(
                (
                    row["name"] if first else "",
                    (row["distribution"] or "-") if first else "",
                    (row["version"] or "-") if first else "",
                    status if first else "",
                    kinds[i] if i < len(kinds) else "",
                    periodic[i] if i < len(periodic) else "",
                )
            )
    widths = [max(len(line[col]) for line in table) for col in range(len(header) - 1)]
    out = []
    for line in table:
        cells = [cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=True)]
        out.append("  ".join([*cells, line[-1]]).rstrip())
    failed = [row for row in rows if row["error"]]
    if failed:
        out.append("")
        out.append("errors:")
        for row in failed:
            dist = f" ({row['distribution']} {row['version'] or ''})".replace(" )", ")")
            out.append(f"  {row['name']}{dist if row['distribution'] else ''}: {row['error']}")
    if doc.get("conflicts"):
        out.append("")
        out.append("conflicts:")
        out.extend(f"  {text}" for text in doc["conflicts"])
    return "\n".join(out) + "\n"
