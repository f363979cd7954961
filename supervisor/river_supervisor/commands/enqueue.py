"""``river-supervisor enqueue KIND``: insert one job, River-compatible, and print its id."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from .. import config as config_mod
from .. import db, discovery, queue, serving
from ..durations import parse_duration
from ..errors import UsageError
from ..storable import unstorable_problem
from .migrate import database_url_or_fail

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", metavar="KIND", help="job kind, e.g. billing.charge")
    parser.add_argument("--args", metavar="JSON", default="{}", help="job arguments, a JSON object")
    parser.add_argument("--queue", help="queue (default: the job kind's, else default)")
    parser.add_argument("--priority", type=int, help="1 (highest) to 4 (default: the job kind's, else 1)")
    parser.add_argument(
        "--max-attempts", type=int, help="attempts before discard (default: the job kind's, else 25)"
    )
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--at", metavar="ISO8601", help="run at this time (with an offset, or Z)")
    when.add_argument("--in", dest="in_", metavar="DURATION", help="run after this long, e.g. 90s or 1h30m")
    parser.add_argument("--tag", action="append", default=[], metavar="TAG", help="tag (repeatable)")
    parser.add_argument("--metadata", metavar="JSON", default="{}", help="job metadata, a JSON object")
    parser.add_argument(
        "--pending", action="store_true", help="insert as pending (not worked until moved on)"
    )
    parser.add_argument("--json", action="store_true", help="print the inserted row as JSON")


def json_object(text: str, flag: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{flag}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    if not isinstance(value, dict):
        raise UsageError(f"{flag}: must be a JSON object, got {type(value).__name__}")
    if (problem := unstorable_problem(value)) is not None:  # one line naming where, before any SQL
        raise UsageError(f"{flag}: {problem}")
    return value


def scheduled_at(at: str | None, in_: str | None, now: datetime) -> datetime | None:
    if at is not None:
        try:
            moment = datetime.fromisoformat(at)
        except ValueError:
            raise UsageError(
                f"--at: {at!r} is not an ISO 8601 time (e.g. 2026-01-02T03:04:05+01:00)"
            ) from None
        if moment.tzinfo is None:
            raise UsageError(f"--at: {at!r} needs a UTC offset or Z")
        return moment
    if in_ is not None:
        try:
            return now + timedelta(seconds=parse_duration(in_))
        except ValueError as exc:
            raise UsageError(f"--in: {in_!r}: {exc}") from None
    return None


def kind_defaults(cfg: config_mod.Config, kind: str) -> dict[str, Any]:
    """The queue, priority, max_attempts and unique options a plugin declared for ``kind`` (River's
    defaults if none): the CLI inserts as ``charge.enqueue(conn, ...)`` does in application code."""
    registered = discovery.discover(cfg.plugins).handler(kind)
    if registered is None:
        log.warning(
            "job kind %s is not registered by any plugin on this host; inserting it anyway",
            kind,
            extra={"event": "enqueue.unknown_kind"},
        )
        return {"queue": "default", "priority": 1, "max_attempts": 25, "unique": None}
    options = registered.options
    return {
        "queue": options.queue,
        "priority": options.priority,
        "max_attempts": options.max_attempts,
        "unique": options.unique,
    }


def run(args: argparse.Namespace) -> int:
    job_args = json_object(args.args, "--args")  # usage errors first: they need nothing else
    metadata = json_object(args.metadata, "--metadata")
    when = scheduled_at(args.at, args.in_, datetime.now(UTC))
    cfg = config_mod.load(args.config, flags={"database_url": args.database_url})
    defaults = kind_defaults(cfg, args.kind)
    spec = queue.JobSpec(
        kind=args.kind,
        args=job_args,
        queue=args.queue if args.queue is not None else defaults["queue"],
        priority=args.priority if args.priority is not None else defaults["priority"],
        max_attempts=args.max_attempts if args.max_attempts is not None else defaults["max_attempts"],
        scheduled_at=when,
        tags=tuple(args.tag),
        metadata=metadata,
        unique=defaults["unique"],
        pending=args.pending,
    )
    spec.validate()  # before connecting: a usage error needs no database
    with db.connect(database_url_or_fail(cfg), application_name="river-supervisor enqueue") as conn:
        result = queue.insert(conn, spec)
        _warn_if_unserved(conn, cfg.cluster, spec)
    job = result.job
    if result.unique_skipped_as_duplicate:
        print(
            f"river-supervisor: job {job.id} holds this job's unique key; nothing inserted", file=sys.stderr
        )
    print(json.dumps(job.to_json()) if args.json else job.id)
    return 0


def _warn_if_unserved(conn: Any, cluster: str, spec: queue.JobSpec) -> None:
    """Warn when no live host serves the job's queue or has its kind: it would wait, not run."""
    try:
        warning = serving.insert_warning(conn, cluster, spec.queue, spec.kind)
    except psycopg.errors.UndefinedTable:  # River's schema only (no supervisor has migrated here)
        return
    if warning:
        extra = {"event": "enqueue.unserved", "queue": spec.queue, "kind": spec.kind}
        log.warning("%s", warning, extra=extra)
