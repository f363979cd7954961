"""Who can run what: jobs waiting that no live host will ever fetch.

A host fetches only the kinds its plugins provide, from the queues its ``[queues]`` serve, and
publishes both on its node row (``serves``). A waiting job (available, scheduled or retryable)
whose queue no live host serves, or whose kind no live host serving that queue has, waits for a
host that does not exist: ``status`` and ``check`` list these, ``enqueue`` warns before adding one.
A node row with an empty ``serves`` (a process from before it was published) counts as serving
nothing: those hosts still fetch every kind of their queues, so nothing waits on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from . import db, nodes


@dataclass(frozen=True, slots=True)
class Unserved:
    """``kinds``: per (queue, kind) served by no live host with that kind; ``queues``: per queue
    no live host serves. Each entry says how many jobs wait and which hosts lack what."""

    kinds: tuple[dict[str, Any], ...] = ()
    queues: tuple[dict[str, Any], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.kinds or self.queues)

    def to_json(self) -> dict[str, Any]:
        return {"kinds": list(self.kinds), "queues": list(self.queues)}


def find_unserved(
    serves_by_host: Mapping[str, Mapping[str, Any]], waiting: Mapping[tuple[str, str], int]
) -> Unserved:
    """Pure: ``serves_by_host`` is ``{host: {"queues": [...], "kinds": [...]}}``, ``waiting`` is
    ``{(queue, kind): jobs}``."""
    hosts_of_queue: dict[str, list[str]] = {}
    for host, serves in serves_by_host.items():
        for name in serves.get("queues", ()):
            hosts_of_queue.setdefault(name, []).append(host)
    queues: dict[str, dict[str, int]] = {}
    kinds: list[dict[str, Any]] = []
    for (name, kind), jobs in sorted(waiting.items()):
        serving = hosts_of_queue.get(name, [])
        if not serving:
            queues.setdefault(name, {})[kind] = jobs
        elif not any(kind in serves_by_host[host].get("kinds", ()) for host in serving):
            lacking = sorted(serving)
            kinds.append(
                {
                    "queue": name,
                    "job_kind": kind,
                    "jobs": jobs,
                    "hosts_lacking": lacking,
                    "message": f"job kind {kind} (queue {name}): no live host has it"
                    f" (hosts serving the queue without it: {', '.join(lacking)}); {jobs} jobs waiting",
                }
            )
    queue_entries = tuple(
        {
            "queue": name,
            "jobs": sum(by_kind.values()),
            "kinds": by_kind,
            "message": f"queue {name}: no live host serves it; {sum(by_kind.values())} jobs waiting"
            f" ({', '.join(f'{kind} {jobs}' for kind, jobs in by_kind.items())})",
        }
        for name, by_kind in sorted(queues.items())
    )
    return Unserved(tuple(kinds), queue_entries)


def live_serves(
    conn: psycopg.Connection[Any], cluster: str, stale_after: float = nodes.STALE_AFTER
) -> dict[str, Mapping[str, Any]]:
    """``{host label: serves}`` of the live nodes (``node``, or ``node (node_id)`` when shared)."""
    rows = nodes.live_nodes(conn, cluster, stale_after)
    labels = nodes.labels(rows)
    return {labels[row.node_id]: dict(row.serves) for row in rows}


def waiting_jobs(conn: psycopg.Connection[Any]) -> dict[tuple[str, str], int]:
    """``{(queue, kind): jobs}`` waiting to be worked."""
    rows = db.fetch_all(conn, "job_count_waiting_by_queue_and_kind", {})
    return {(row["queue"], row["kind"]): int(row["jobs"]) for row in rows}


def unserved(
    conn: psycopg.Connection[Any], cluster: str, *, stale_after: float = nodes.STALE_AFTER
) -> Unserved:
    """The waiting jobs no live host of ``cluster`` can run."""
    return find_unserved(live_serves(conn, cluster, stale_after), waiting_jobs(conn))


def insert_warning(conn: psycopg.Connection[Any], cluster: str, queue: str, kind: str) -> str | None:
    """For ``enqueue``: why a job of ``kind`` into ``queue`` would wait for a host that is not
    there (no live host serves the queue, or none serving it has the kind), else None."""
    serves = live_serves(conn, cluster)
    serving = sorted(host for host, s in serves.items() if queue in s.get("queues", ()))
    if not serving:
        return f"queue {queue}: no live host in cluster {cluster} serves it; the job waits until one does"
    if not any(kind in serves[host].get("kinds", ()) for host in serving):
        return (
            f"job kind {kind}: no live host serving queue {queue} has it"
            f" ({', '.join(serving)}); the job waits until one does"
        )
    return None
