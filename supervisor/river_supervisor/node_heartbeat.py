"""This host's rows in the cluster: its node row and River's queue rows of the queues it serves.

Every host, leader or not, registers its node row at start (with the fingerprint of its schedules
and plugins, and the queues it serves), heartbeats it every ``nodes.HEARTBEAT_INTERVAL`` with its
workers' state, republishes it after a reload, and marks it stopped when it stops. It keeps River's
``river_queue`` row of each queue it serves (created at start, refreshed every
``queues.REPORT_INTERVAL``, as River's producers do). A failed heartbeat is retried with backoff
and registers the row again once the database answers.

It also tells since when this host's database writes go through (``writable_for``): the host
rescuer judges other hosts' silence only after that long.

Owns: this node's rows. May import: ``db``, ``nodes``, ``queues``, ``config``, ``backoff``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import psycopg

from . import db, nodes, queues
from .backoff import service_backoff
from .config import Config
from .leadership import NodeIdentity

log = logging.getLogger(__name__)


class NodeHeartbeat:
    """Driven by the owner's loop (``next_due``, ``step``) on the owner's connection (``session``)."""

    def __init__(
        self,
        cfg: Config,
        *,
        identity: NodeIdentity,
        local: Any,
        serves: Mapping[str, Any],
        session: Callable[[], psycopg.Connection[Any]],
        drop: Callable[[], None],
    ) -> None:
        self.cfg = cfg
        self.identity = identity
        self.local = local  # manifest.LocalManifest: digest, manifest, schedules
        self.serves = serves  # published on the node row
        self._session = session
        self._drop = drop
        self.next_due = 0.0  # monotonic
        self._next_queue_report = 0.0
        self._registered = False
        self._failures = 0
        # Monotonic: since when this host's database writes (heartbeats, leader services) have gone
        # through; None after a transient failure, until the next heartbeat goes through.
        self._writable_since: float | None = None
        self.workers_ready = 0  # the supervisor's count each turn; published with the heartbeat
        self.workers_down: dict[int, str] = {}  # slots whose breaker is open: published likewise

    def writable_for(self) -> float:
        """Seconds since this host's database writes went through again (0 while they fail)."""
        if self._writable_since is None:
            return 0.0
        return time.monotonic() - self._writable_since

    def unwritable(self) -> None:
        """A write of this host failed for a reason a retry can outlive."""
        self._writable_since = None

    def register(self) -> None:
        """Publish the node row and the queue rows now (raises ``db.TRANSIENT`` errors)."""
        served = {q.name: q.concurrency for q in self.cfg.queues.values()}
        conn = self._session()
        local, cluster = self.local, self.cfg.cluster
        nodes.register(conn, self.identity, cluster, local.digest, local.manifest, served, self.serves)
        self._report_queues(conn)
        self._registered = True
        self.next_due = time.monotonic() + nodes.HEARTBEAT_INTERVAL
        if self._writable_since is None:
            self._writable_since = time.monotonic()

    def republish(self, cfg: Config, local: Any) -> None:
        """After a reload: the new configuration and fingerprint, published at once if the
        database answers (else by the next heartbeat)."""
        self.cfg, self.local = cfg, local
        try:
            self.register()
        except db.TRANSIENT as exc:
            self._writable_since = None
            self._registered = False
            log.warning("could not republish this node: %s", exc, extra={"event": "node.register_failed"})
            self._drop()

    def mark_stopped(self) -> None:
        try:
            nodes.mark_stopped(self._session(), self.identity, self.cfg.cluster)
        except db.TRANSIENT as exc:
            log.warning("could not mark this node stopped: %s", exc, extra={"event": "node.stop_failed"})
        self._drop()

    def step(self, now: float) -> None:
        if now < self.next_due:
            return
        try:
            conn = self._session()
            workers = (self.workers_ready, self.cfg.processes)
            if not self._registered or not nodes.heartbeat(
                conn, self.identity, self.cfg.cluster, workers, self.workers_down
            ):
                self.register()
            elif now >= self._next_queue_report:
                self._report_queues(conn)
            self._failures = 0
            self.next_due = now + nodes.HEARTBEAT_INTERVAL
            if self._writable_since is None:
                self._writable_since = now
        except db.TRANSIENT as exc:
            self._writable_since = None
            self._failures += 1
            self._registered = False
            self.next_due = now + service_backoff(self._failures, cap=nodes.HEARTBEAT_INTERVAL)
            log.warning(
                "node heartbeat failed (attempt %d): %s",
                self._failures,
                exc,
                extra={"event": "node.heartbeat_failed", "attempt": self._failures},
            )
            self._drop()

    def _report_queues(self, conn: psycopg.Connection[Any]) -> None:
        """River's queue status report: our queues' rows exist and are fresh (never un-paused)."""
        queues.report(conn, list(self.cfg.queues))
        self._next_queue_report = time.monotonic() + queues.REPORT_INTERVAL
