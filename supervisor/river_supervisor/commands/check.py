"""``river-supervisor check [--json] [--offline] [--strict] [--show-config]``: validate before a deploy.

Offline: the configuration loads, plugins load without conflicts, every schedule parses and has
a handler here; job kinds and schedules on a queue this host does not serve are warnings. With a
database (unless ``--offline``): this host's fingerprint against every live node's, and the
schedules the cluster ran that this host does not define (see ``river_supervisor.status``).

``--show-config`` prints every setting's value (secrets redacted) and where it came from (flag,
environment, file or default) first; ``--json`` always has them under ``settings``.

Exit 0 when nothing is wrong (warnings allowed unless ``--strict``), 1 when problems were found
(a configured database that cannot be reached is one), 2 when the configuration is unusable.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--offline", action="store_true", help="do not compare with the live cluster")
    parser.add_argument("--strict", action="store_true", help="warnings are problems too (exit 1)")
    parser.add_argument(
        "--show-config", action="store_true", help="also print each setting's value and where it came from"
    )


def run(args: argparse.Namespace) -> int:
    from .. import config, embedded, status
    from ..discovery import discover
    from ..manifest import local_manifest

    cfg = config.load(args.config, flags=config.flag_values(args))
    if not args.offline and not cfg.database_url and embedded.exists(cfg):
        cfg = embedded.with_database(cfg)
    plugin_set = discover(cfg.plugins)
    local = local_manifest(cfg, plugin_set, tolerant=True)
    if args.offline:
        connect, skipped = None, "--offline"
    elif not cfg.database_url:
        connect, skipped = None, "no database configured"
    else:
        connect, skipped = (lambda: status.open_database(cfg, "river-supervisor check")), None
    report = status.check_report(cfg, plugin_set, local, connect=connect, skipped=skipped, strict=args.strict)
    report["settings"] = config.settings_with_sources(cfg)
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2, default=str) + "\n")
    else:
        sys.stdout.write((render_settings(report["settings"]) if args.show_config else "") + render(report))
    return 0 if report["ok"] else 1


def render(report: dict[str, Any]) -> str:
    checked = report["checked"]
    out = [
        f"config       {checked['config'] or '(none: defaults and environment)'}",
        f"node         {checked['node']}",
        f"plugins      {len(checked['plugins'])} loaded ({', '.join(checked['plugins']) or '-'}),"
        f" {checked['job_kinds']} job kind(s)",
        f"schedules    {len(checked['schedules'])} ({', '.join(checked['schedules']) or '-'})",
        f"queues       {', '.join(checked['queues']) or '-'}",
        f"fingerprint  {checked['fingerprint']}",
    ]
    if checked["cluster"] is not None:
        live = checked["cluster"]["nodes"]
        out.append(
            f"cluster      {checked['cluster']['cluster']}: compared with {len(live)} live node(s)"
            + (f" ({', '.join(live)})" if live else "")
        )
    else:
        out.append(f"cluster      not compared ({checked['cluster_skipped'] or 'database problem'})")
    for title, items in (("warnings", report["warnings"]), ("problems", report["problems"])):
        if items:
            out += ["", f"{title}:"]
            out += [f"  [{item['kind']}] {item['message']}" for item in items]
    out += ["", "ok" if report["ok"] else f"{len(report['problems'])} problem(s) found"]
    return "\n".join(out) + "\n"


def render_settings(settings: list[dict[str, Any]]) -> str:
    """Each setting, its value and its source, aligned (``--show-config``)."""
    rows = [("SETTING", "VALUE", "SOURCE")] + [
        (row["key"], json.dumps(row["value"], default=str), row["source"]) for row in settings
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines) + "\n\n"
