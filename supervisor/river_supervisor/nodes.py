"""The node registry: which supervisor processes run in a cluster, and who leads it.

Each supervisor parent registers once per boot under its ``NodeIdentity`` (node, pid, boot id),
heartbeats cheaply, and marks itself stopped on a clean exit. The leader compares the nodes'
fingerprints and marks drifted nodes in a fenced transaction. ``leader`` and ``leader_history``
are what ``status --json`` shows about leadership.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from . import db
from .leadership import NodeIdentity, Term, fenced_transaction

HEARTBEAT_INTERVAL = 5.0  # seconds between a supervisor's heartbeats
STALE_AFTER = 3 * HEARTBEAT_INTERVAL  # a node not heard from for this long is not live


@dataclass(frozen=True, slots=True)
class NodeRow:
    cluster: str
    node_id: str  # node:pid:boot_id
    node: str
    pid: int
    boot_id: str
    backend_pid: int | None
    started_at: datetime
    last_seen: datetime
    stopped_at: datetime | None
    fingerprint: str
    manifest: Mapping[str, Any]
    drift: bool
    serves: Mapping[str, Any]  # {"queues": [...], "kinds": [...]}; {} from a process that did not say
    workers: int | None  # worker processes ready at the last heartbeat (None: not said)
    workers_expected: int | None  # how many it runs when whole
    workers_down: Mapping[str, str] | None  # slot -> why it cannot start (its breaker is open)


def _key(identity: NodeIdentity, cluster: str) -> dict[str, Any]:
    return {"cluster": cluster, "node_id": identity.node_id}


def register(
    conn: psycopg.Connection[Any],
    identity: NodeIdentity,
    cluster: str,
    fingerprint: str,
    manifest: Mapping[str, Any],
    queues: Mapping[str, int] | None = None,
    serves: Mapping[str, Any] | None = None,
) -> None:
    """Announce this process (again after a reconnect: the row is refreshed, not duplicated),
    with the queues it serves (``{queue: concurrency}``) and what it works (``serves``:
    ``{"queues": [...], "kinds": [...]}``, see ``serves_of``)."""
    db.execute(
        conn,
        "node_register",
        {
            **_key(identity, cluster),
            "node": identity.node,
            "pid": identity.pid,
            "boot_id": identity.boot_id,
            "fingerprint": fingerprint,
            "manifest": Jsonb(dict(manifest)),
            "queues": Jsonb(dict(queues or {})),
            "serves": Jsonb(dict(serves or {})),
        },
    )


def serves_of(queues: Iterable[str], kinds: Iterable[str]) -> dict[str, list[str]]:
    """What a process works, as its node row records it: the queues it serves, the kinds it has."""
    return {"queues": sorted(queues), "kinds": sorted(kinds)}


def heartbeat(
    conn: psycopg.Connection[Any],
    identity: NodeIdentity,
    cluster: str,
    workers: tuple[int, int] | None = None,
    workers_down: Mapping[int, str] | None = None,
) -> bool:
    """Refresh ``last_seen`` and, if given, ``(workers ready, workers expected)`` and the slots that
    cannot start (``{slot: why}``); ``False`` if the row is missing (register again)."""
    ready, expected = workers if workers is not None else (None, None)
    down = None if workers_down is None else Jsonb({str(slot): why for slot, why in workers_down.items()})
    params = {**_key(identity, cluster), "workers": ready, "workers_expected": expected, "workers_down": down}
    return db.fetch_one(conn, "node_heartbeat", params) is not None


def mark_stopped(conn: psycopg.Connection[Any], identity: NodeIdentity, cluster: str) -> bool:
    return db.fetch_one(conn, "node_mark_stopped", _key(identity, cluster)) is not None


def live_nodes(conn: psycopg.Connection[Any], cluster: str, stale_after: float) -> list[NodeRow]:
    """Nodes not stopped and heard from within ``stale_after`` seconds (database clock)."""
    rows = db.fetch_all(conn, "node_list_live", {"cluster": cluster, "stale_after": float(stale_after)})
    return [NodeRow(**row) for row in rows]


def labels(rows: Iterable[NodeRow]) -> dict[str, str]:
    """``node_id -> label``: how a node is named to people (status, drift, serving), its ``node``
    name, or ``node (node_id)`` when several of ``rows`` share that name (a restart not yet stale)."""
    rows = list(rows)
    names = Counter(row.node for row in rows)
    return {row.node_id: row.node if names[row.node] == 1 else f"{row.node} ({row.node_id})" for row in rows}


def serving(conn: psycopg.Connection[Any], stale_after: float) -> list[dict[str, Any]]:
    """Live nodes of every cluster with the queues they serve: ``cluster, node_id, node, queues``."""
    return db.fetch_all(conn, "node_list_serving", {"stale_after": float(stale_after)})


def set_drift(conn: psycopg.Connection[Any], term: Term, node_ids: Sequence[str]) -> list[str]:
    """Leader only: mark exactly ``node_ids`` as drifted; return the nodes whose mark changed.

    Fenced: raises ``NotLeader`` (writing nothing) if ``term`` is no longer held.
    """
    with fenced_transaction(conn, term, "drift"):
        rows = db.fetch_all(
            conn, "node_set_drift_many", {"cluster": term.cluster, "node_ids": list(node_ids)}
        )
    return [row["node_id"] for row in rows]


def leader(conn: psycopg.Connection[Any], cluster: str) -> dict[str, Any] | None:
    """The lease holder for ``status``: node, leader_id, term, since, expires_at, live."""
    row = db.fetch_one(conn, "leader_get", {"cluster": cluster})
    if row is None:
        return None
    return {
        "node": row["node"],
        "leader_id": row["leader_id"],
        "term": row["term"],
        "since": row["elected_at"],
        "renewed_at": row["renewed_at"],
        "expires_at": row["expires_at"],
        "live": row["live"] and row["backend_alive"],
    }


def leader_history(conn: psycopg.Connection[Any], cluster: str, limit: int = 20) -> list[dict[str, Any]]:
    """The last ``limit`` leadership changes of ``cluster``, newest first."""
    return db.fetch_all(conn, "leader_event_list", {"cluster": cluster, "limit": limit})
