"""``river-supervisor bench``: throughput and latency on the configured database.

Works in a scratch schema of its own (see ``river_supervisor.bench``), so the jobs, queues and
leader of the configured schema are never touched. Results on stdout (one JSON document with
``--json``), progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from typing import Any

from .. import bench
from .. import config as config_mod
from .migrate import database_url_or_fail

# DESIGN.md's performance targets, shown beside the figures (never asserted).
TARGETS = {
    "insert": ">= 60,000 jobs/s",
    "work": ">= 12,000 jobs/s",
    "p99": "<= 20 ms",
    "parent": "<= 60 MB",
}


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = bench.BenchOptions()
    parser.add_argument(
        "--jobs", type=_positive, default=defaults.jobs, metavar="N",
        help=f"no-op jobs to insert and work (default: {defaults.jobs})",
    )  # fmt: skip
    parser.add_argument(
        "--processes", type=_positive, default=defaults.processes, metavar="N",
        help=f"worker processes of the supervisor under test (default: {defaults.processes})",
    )  # fmt: skip
    parser.add_argument(
        "--concurrency", type=_positive, default=defaults.concurrency, metavar="N",
        help=f"jobs at once per worker process (default: {defaults.concurrency})",
    )  # fmt: skip
    parser.add_argument(
        "--latency-samples", type=_positive, default=defaults.latency_samples, metavar="N",
        help=f"jobs inserted one by one for enqueue-to-start latency (default: {defaults.latency_samples})",
    )  # fmt: skip
    parser.add_argument(
        "--enqueue-samples", type=_positive, default=defaults.enqueue_samples, metavar="N",
        help=f"single-job enqueue calls, sync and async (default: {defaults.enqueue_samples})",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def render(doc: dict[str, Any]) -> str:
    """The human view of ``BenchResult.to_json()``: aligned figures with units and targets."""
    latency = doc["latency_ms"]
    memory = doc["rss_mb"]
    workers = ", ".join(f"{mb:.1f}" for mb in memory["workers"] if mb is not None) or "-"
    parent = "-" if memory["parent"] is None else f"{memory['parent']:.1f}"
    machine = doc["machine"]
    load = machine["load_average"]
    rows = [
        ("insert (COPY)", f"{doc['insert_jobs_per_second']:,}", "jobs/s", TARGETS["insert"]),
        *enqueue_rows(doc["enqueue"]),
        ("work (end to end)", f"{doc['work_jobs_per_second']:,}", "jobs/s", TARGETS["work"]),
        ("latency p50", f"{latency['p50']:.1f}", "ms", ""),
        ("latency p99", f"{latency['p99']:.1f}", "ms", TARGETS["p99"]),
        ("latency max", f"{latency['max']:.1f}", "ms", ""),
        ("parent RSS", parent, "MB", TARGETS["parent"]),
        ("worker RSS", workers, "MB", ""),
    ]
    name_width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    unit_width = max(len(r[2]) for r in rows)
    lines = [
        f"river-supervisor bench: {doc['jobs']:,} jobs, {doc['processes']} processes"
        f" x {doc['concurrency']} concurrency, {doc['latency_samples']} latency samples",
        f"machine: {machine['cpus']} CPUs, Python {machine['python']}, PostgreSQL {machine['postgres']},"
        f" load average {load['before']:.2f} before, {load['after']:.2f} after",
        "",
    ]
    for name, value, unit, target in rows:
        target_text = f"  (target {target})" if target else ""
        lines.append(
            f"{name:<{name_width}}  {value:>{value_width}} {unit:<{unit_width}}{target_text}".rstrip()
        )
    return "\n".join(lines)


def enqueue_rows(enqueue: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The single-job API's figures, beside COPY's: one call, one job (and one commit, except in a
    transaction)."""
    rows = []
    for mode, label in (("sync", "sync"), ("async", "async"), ("sync_in_transaction", "in a transaction")):
        figures = enqueue[mode]
        rows.append((f"enqueue ({label}, 1 per call)", f"{figures['jobs_per_second']:,}", "jobs/s", ""))
        rows.append((f"enqueue ({label}) p99 per call", f"{figures['p99_ms']:.2f}", "ms", ""))
    return rows


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config, flags={"database_url": args.database_url})
    url = database_url_or_fail(cfg)
    options = bench.BenchOptions(
        jobs=args.jobs,
        processes=args.processes,
        latency_samples=args.latency_samples,
        concurrency=args.concurrency,
        enqueue_samples=args.enqueue_samples,
    )

    # The scratch schema's migrations are routine here: keep their INFO lines off the output.
    logging.getLogger("river_supervisor.schema").setLevel(logging.WARNING)

    def progress(message: str) -> None:
        if not args.json and sys.stderr.isatty():
            sys.stderr.write(f"bench: {message}\n")

    # SIGTERM ends the bench as Ctrl-C does: its supervisor is stopped and the scratch schema dropped.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        doc = bench.run(url, options, progress).to_json()
    except KeyboardInterrupt:
        sys.stderr.write("bench: interrupted; its supervisor is stopped and its scratch schema dropped\n")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(json.dumps(doc) if args.json else render(doc))
    return 0
