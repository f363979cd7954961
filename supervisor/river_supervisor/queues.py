"""River's queue rows (``river_queue``): served queues reported, paused, resumed and reaped as River does.

River's model, followed exactly so River UI and River's own clients act on our hosts as on theirs:

- every host that serves a queue keeps its row: created on start with metadata ``{}`` and no pause,
  ``updated_at`` refreshed every ``REPORT_INTERVAL`` (River's producer: at start and every 10 min);
  an existing row's ``metadata`` and ``paused_at`` are never touched by a host;
- a queue is paused when its row has ``paused_at`` (River UI, River's ``QueuePause``, our CLI, or a
  plain SQL update). A pause or resume is announced on ``<schema>.river_control`` with River's
  payload ``{"action":"pause"|"resume","queue":"<name>"|"*"}`` in the same transaction; ``"*"``
  means every queue. Workers apply the notification at once and re-read the rows every
  ``POLL_INTERVAL`` (River's queue poll) in case one was missed or the row was changed by hand;
  the fetch statement itself skips a paused queue, so a committed pause holds even before either;
- the leader deletes rows not updated for ``RETENTION`` (River's QueueCleaner: 24 h, hourly).

SQL: ``sql/queues.sql``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Literal

import psycopg

from . import db
from .errors import QueueNotFound

log = logging.getLogger(__name__)

ALL = "*"  # River's name for every queue in pause and resume
REPORT_INTERVAL = 600.0  # River's queueReportIntervalDefault: a host refreshes its rows this often
POLL_INTERVAL = 2.0  # River's queuePollIntervalDefault: workers re-read the pause state this often
RETENTION = 24 * 3600.0  # River's QueueRetentionPeriodDefault: idle rows older than this are deleted
CLEAN_INTERVAL = 3600.0  # River's queueCleanerIntervalDefault
CLEAN_BATCH = 1000  # River's BatchSizeDefault for maintenance deletes

Action = Literal["pause", "resume"]


def report(conn: psycopg.Connection[Any], names: Sequence[str]) -> dict[str, datetime | None]:
    """River's QueueCreateOrSetUpdatedAt for ``names``: ``{queue: paused_at}`` after the upsert."""
    if not names:
        return {}
    rows = db.fetch_all(conn, "queue_create_or_set_updated_at_many", {"names": sorted(set(names))})
    return {row["name"]: row["paused_at"] for row in rows}


def paused_among(conn: psycopg.Connection[Any], names: Sequence[str]) -> set[str]:
    """Which of ``names`` are paused now."""
    if not names:
        return set()
    return {row["name"] for row in db.fetch_all(conn, "queue_list_paused", {"names": list(names)})}


def paused(conn: psycopg.Connection[Any]) -> dict[str, datetime]:
    """Every paused queue: ``{queue: paused_at}``, by name."""
    return {row["name"]: row["paused_at"] for row in db.fetch_all(conn, "queue_list_paused", {"names": None})}


def pause(conn: psycopg.Connection[Any], name: str) -> int:
    """River's QueuePause: pause ``name`` (``"*"``: every queue) and notify; returns rows changed.

    A named queue without a row raises ``QueueNotFound`` and nothing is written or sent (River's
    ``ErrNotFound``). Runs in its own transaction, or in the caller's (River's ``QueuePauseTx``).
    """
    return _set(conn, "queue_pause", name)


def resume(conn: psycopg.Connection[Any], name: str) -> int:
    """River's QueueResume: the counterpart of ``pause``."""
    return _set(conn, "queue_resume", name)


def _set(conn: psycopg.Connection[Any], statement: str, name: str) -> int:
    with conn.transaction():
        row = db.fetch_one(conn, statement, {"name": name})
        assert row is not None  # the statement always returns its one summary row
        if name != ALL and row["queues"] == 0:
            raise QueueNotFound(name)  # rolls back: the notification is never delivered
    return int(row["queues"])


def delete_expired(conn: psycopg.Connection[Any], horizon: datetime, limit: int = CLEAN_BATCH) -> list[str]:
    """River's QueueDeleteExpired: delete up to ``limit`` rows not updated since ``horizon``."""
    rows = db.fetch_all(conn, "queue_delete_expired", {"horizon": horizon, "limit": limit})
    return [row["name"] for row in rows]


def control_message(body: Any) -> tuple[Action, str] | None:
    """``(action, queue)`` of a decoded ``river_control`` pause or resume payload; None otherwise."""
    if not isinstance(body, dict) or body.get("action") not in ("pause", "resume"):
        return None
    queue = body.get("queue")
    return (body["action"], queue) if isinstance(queue, str) else None


def list_queues(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Every known queue: River's row (null fields when it has none), job counts by state and the
    age in seconds of its oldest available job (None when it has none)."""
    return db.fetch_all(conn, "queue_list")


class WorkerPauses:
    """Which of a worker's queues are paused (it fetches none of those).

    Set by ``river_control`` notifications at once (``on_control``), and re-read every
    ``POLL_INTERVAL`` (River's queue poll, ``poll``) in case one was missed. Each change is logged.
    """

    def __init__(self, names: Iterable[str], worker_index: int) -> None:
        self.names = frozenset(names)
        self.paused: set[str] = set()
        self.next_poll = 0.0  # monotonic; 0: at once
        self._index = worker_index

    def __contains__(self, name: str) -> bool:
        return name in self.paused

    def on_control(self, action: Action, name: str) -> bool:
        """A pause or resume notification (``control_message``); True when a queue was resumed."""
        named = set(self.names) if name == ALL else {name} & self.names
        return self._set(self.paused | named if action == "pause" else self.paused - named, "notification")

    def poll(self, conn: psycopg.Connection[Any]) -> bool:
        """Re-read the rows (the backstop); True when a queue was resumed."""
        self.next_poll = time.monotonic() + POLL_INTERVAL
        return self._set(paused_among(conn, list(self.names)), "poll")

    def _set(self, paused: set[str], how: str) -> bool:
        """Take ``paused`` as the paused set; log each change; True when a queue was resumed."""
        index = self._index
        for name in sorted(paused - self.paused):
            log.info(
                "queue %s paused: worker %d stops fetching it (running jobs finish)",
                name,
                index,
                extra={"event": "worker.queue_paused", "worker": index, "queue": name, "via": how},
            )
        resumed = self.paused - paused
        for name in sorted(resumed):
            log.info(
                "queue %s resumed: worker %d fetches it again",
                name,
                index,
                extra={"event": "worker.queue_resumed", "worker": index, "queue": name, "via": how},
            )
        self.paused = paused
        return bool(resumed)
