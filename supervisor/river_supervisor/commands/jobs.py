"""``river-supervisor jobs list|show|retry|cancel``: look at and act on River jobs."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .. import config as config_mod
from .. import db, queue
from ..cli import add_common_arguments
from ..errors import UsageError
from .migrate import database_url_or_fail

MORE_CAP = 10_000  # "N more" is counted up to this many (a count over millions of rows is slow)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    listing = actions.add_parser("list", help="list jobs (newest first)")
    listing.add_argument("--state", action="append", default=[], help="only this state (repeatable)")
    listing.add_argument("--kind", action="append", default=[], help="only this kind (repeatable)")
    listing.add_argument("--queue", action="append", default=[], help="only this queue (repeatable)")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default: 50)")
    listing.add_argument("--oldest-first", action="store_true", help="oldest first (default: newest first)")
    listing.add_argument("--before", type=int, metavar="ID", help="only jobs with a smaller id (paging)")
    listing.add_argument("--after", type=int, metavar="ID", help="only jobs with a larger id (paging)")
    for name, help_text in (
        ("show", "show one job with its errors"),
        ("retry", "make a job available again now (River's JobRetry)"),
        ("cancel", "cancel a job; a running one is told to stop (River's JobCancel)"),
    ):
        action = actions.add_parser(name, help=help_text)
        action.add_argument("job_id", type=int, metavar="ID")
    for action in actions.choices.values():
        action.add_argument("--json", action="store_true", help="print JSON")
        add_common_arguments(action, nested=True)


def _time(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _list_text(jobs: Sequence[queue.JobRow]) -> str:
    header = ("ID", "STATE", "QUEUE", "KIND", "ATTEMPT", "PRIORITY", "SCHEDULED AT")
    rows = [
        (
            str(j.id),
            j.state,
            j.queue,
            j.kind,
            f"{j.attempt}/{j.max_attempts}",
            str(j.priority),
            _time(j.scheduled_at),
        )
        for j in jobs
    ]
    return _table([header, *rows])


def _show_text(job: queue.JobRow) -> str:
    fields: list[tuple[str, Any]] = [
        ("id", job.id),
        ("kind", job.kind),
        ("state", job.state),
        ("queue", job.queue),
        ("priority", job.priority),
        ("attempt", f"{job.attempt}/{job.max_attempts}"),
        ("args", json.dumps(job.args)),
        ("metadata", json.dumps(job.metadata)),
        ("tags", ", ".join(job.tags) or "-"),
        ("created at", _time(job.created_at)),
        ("scheduled at", _time(job.scheduled_at)),
        ("attempted at", _time(job.attempted_at)),
        ("attempted by", ", ".join(job.attempted_by) or "-"),
        ("finalized at", _time(job.finalized_at)),
        ("unique key", job.unique_key.hex() if job.unique_key else "-"),
    ]
    width = max(len(name) for name, _ in fields)
    lines = [f"{name.ljust(width)}  {value}" for name, value in fields]
    for error in job.errors:
        lines.append(f"error (attempt {error.get('attempt')}, {error.get('at')}): {error.get('error')}")
        if error.get("trace"):
            lines.extend("    " + line for line in str(error["trace"]).splitlines())
    return "\n".join(lines)


def _list(conn: Any, args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise UsageError(f"--limit: expected an integer >= 1, got {args.limit}")
    filters = {"states": args.state, "kinds": args.kind, "queues": args.queue}
    bounds = {"after_id": args.after, "before_id": args.before}
    jobs = queue.list_jobs(conn, **filters, **bounds, limit=args.limit, newest_first=not args.oldest_first)
    more = 0
    if len(jobs) == args.limit:  # the page is full: say how many more match beyond its last id
        rest = {**bounds, ("after_id" if args.oldest_first else "before_id"): jobs[-1].id}
        more = queue.count_listed(conn, **filters, **rest, cap=MORE_CAP)
    if args.json:
        print(json.dumps({"jobs": [j.to_json() for j in jobs], "more": more}))
        return 0
    print(_list_text(jobs) if jobs else "no jobs")
    if more:
        flag = "--after" if args.oldest_first else "--before"
        count = f"{more:,}" if more < MORE_CAP else f"at least {MORE_CAP:,}"
        print(f"... {count} more match (next page: {flag} {jobs[-1].id}, or raise --limit)")
    return 0


def run(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config, flags={"database_url": args.database_url})
    with db.connect(database_url_or_fail(cfg), application_name="river-supervisor jobs") as conn:
        if args.action == "list":
            return _list(conn, args)
        if args.action == "show":
            job = queue.get(conn, args.job_id)
        elif args.action == "retry":
            job = queue.retry(conn, args.job_id)
        else:
            job = queue.cancel(conn, args.job_id)
    if args.json:
        print(json.dumps(job.to_json()))
    elif args.action == "show":
        print(_show_text(job))
    else:
        note = (
            " (running: its worker was told to cancel)"
            if args.action == "cancel" and job.state == "running"
            else ""
        )
        print(f"job {job.id}: {job.state}{note}")
    return 0
