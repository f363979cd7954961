"""What each Sentry event says: its message, level, logger, tags, fingerprint and context.

Owns the pure part of every report ``alerts`` sends: one builder per event (``Alert`` values) and
the job error's context. Fingerprints are explicit, so grouping is ours: one issue per (cluster,
leadership event kind), per distinct drift, per orphaned schedule, per broken plugin, per
crash-looping node. Pure: it may import ``drift`` (its wording of differences), ``plugin_job`` and
``leader_events`` (for types), never ``sentry_sdk`` (``alerts`` is its only user) nor psycopg.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .drift import describe
from .plugin_job import Job

if TYPE_CHECKING:  # types only: the elector is not loaded for them
    from .leader_events import LeadershipEvent

FINGERPRINT_ROOT = "river-supervisor"


@dataclass(frozen=True, slots=True)
class Alert:
    """One Sentry event, before it is sent: ``alerts`` captures it as it is."""

    message: str
    level: str
    logger: str
    tags: dict[str, str]
    fingerprint: list[str]
    contexts: dict[str, dict[str, Any]]
    timestamp: datetime | None = None


def leadership_alert(ev: LeadershipEvent) -> Alert:
    """A leadership change: INFO for gained/resigned, WARNING for lost/expired/superseded, one issue
    per (cluster, kind); the message is the event's own, the same words as its log line."""
    context = {
        "kind": ev.kind,
        "cluster": ev.cluster,
        "node": ev.node,
        "term": ev.term,
        "leader_id": ev.leader_id,
        "other_leader_id": ev.other_leader_id,
        "at": iso(ev.at),
        "detail": dict(ev.detail or {}),
    }
    return Alert(
        ev.message(),
        level="warning" if ev.level >= logging.WARNING else "info",
        logger="river_supervisor.leadership",
        tags={"cluster": ev.cluster, "node": ev.node, "term": str(ev.term), "leadership_event": ev.kind},
        fingerprint=[FINGERPRINT_ROOT, "leadership", ev.cluster, ev.kind],
        contexts={"leadership": context},
        timestamp=ev.at,
    )


def drift_alert(cluster: str, digest: str, differences: list[dict[str, Any]], nodes: list[str]) -> Alert:
    """Configuration drift between nodes: one issue per distinct drift (its digest)."""
    short = digest[:12]
    summary = [describe(d, "the reference node") for d in differences[:20]]
    return Alert(
        f"configuration drift in cluster {cluster}: {len(differences)} difference(s) "
        f"across {len(nodes)} node(s) ({short})",
        level="warning",
        logger="river_supervisor.periodic",
        tags={"cluster": cluster, "drift": short},
        fingerprint=[FINGERPRINT_ROOT, "drift", cluster, digest],
        contexts={
            "drift": {
                "digest": digest,
                "nodes": sorted(nodes),
                "count": len(differences),
                "summary": "\n".join(summary),
                "differences": differences,
            }
        },
    )


def orphaned_schedule_alert(
    cluster: str,
    schedule_id: str,
    *,
    leader_node: str,
    kind: str | None = None,
    last_run_at: datetime | None = None,
    detail: Mapping[str, Any] | None = None,
) -> Alert:
    """A schedule the cluster ran before that the current leader does not define."""
    return Alert(
        f"orphaned schedule {schedule_id} in cluster {cluster}: it has run before "
        f"but leader {leader_node} does not define it",
        level="warning",
        logger="river_supervisor.periodic",
        tags={"cluster": cluster, "schedule": schedule_id},
        fingerprint=[FINGERPRINT_ROOT, "orphaned-schedule", cluster, schedule_id],
        contexts={
            "schedule": {
                "id": schedule_id,
                "kind": kind,
                "leader_node": leader_node,
                "last_run_at": iso(last_run_at),
                "detail": dict(detail or {}),
            }
        },
    )


def plugin_load_error_alert(name: str, distribution: str | None, error: BaseException | str) -> Alert:
    """A plugin that failed to load (the others still run): one issue per plugin name."""
    error_text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    context: dict[str, Any] = {"name": name, "distribution": distribution, "error": error_text}
    if isinstance(error, BaseException) and error.__traceback__ is not None:
        context["traceback"] = "".join(traceback.format_exception(error))
    return Alert(
        f"plugin {name} ({distribution or 'unknown distribution'}) failed to load: {error_text}",
        level="error",
        logger="river_supervisor.plugins",
        tags={"plugin": name},
        fingerprint=[FINGERPRINT_ROOT, "plugin-load", name],
        contexts={"plugin": context},
    )


def crash_loop_alert(
    cluster: str,
    node: str,
    worker: str | int | None = None,
    message: str | None = None,
    *,
    crashes: int | None = None,
    window: float | None = None,
    last_exit: str | int | None = None,
    detail: Mapping[str, Any] | None = None,
) -> Alert:
    """Workers crash-looped and restarts stopped: ERROR, one issue per (cluster, node).

    ``message`` (the supervisor's own log line) is used as is; without it one is built from
    ``crashes``, ``window`` and ``last_exit``.
    """
    if message is None:
        who = f"worker {worker}" if worker is not None else "workers"
        counts = f": {crashes} crashes in {window:g}s" if crashes is not None and window is not None else ""
        exit_text = f" (last exit: {last_exit})" if last_exit is not None else ""
        message = f"{who} crash loop on node {node}{counts}, restarts stopped{exit_text}"
    return Alert(
        message,
        level="error",
        logger="river_supervisor.supervisor",
        tags={"cluster": cluster, "node": node},
        fingerprint=[FINGERPRINT_ROOT, "crash-loop", cluster, node],
        contexts={
            "crash_loop": {
                "worker": worker,
                "crashes": crashes,
                "window_seconds": window,
                "last_exit": last_exit,
                "detail": dict(detail or {}),
            }
        },
    )


def job_context(job: Job, *, include_args: bool) -> dict[str, Any]:
    """A failed job's ``job`` context: id, kind, queue, attempts; its args only when allowed."""
    context: dict[str, Any] = {
        "id": job.id,
        "kind": job.kind,
        "queue": job.queue,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
    }
    if include_args:
        context["args"] = dict(job.args)
    return context


def job_error_text(job: Job, error: str) -> tuple[str, list[str]]:
    """A job that failed with an error text (no exception): its message and fingerprint."""
    return f"job {job.kind} failed: {error}", [FINGERPRINT_ROOT, "job", job.kind, "{{ default }}"]


def iso(at: datetime | None) -> str | None:
    return at.isoformat() if isinstance(at, datetime) else None
