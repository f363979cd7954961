"""Leader-only maintenance services: job scheduler, rescuer, cleaner, queue cleaner (River's, fenced).

Each service has River's shape (STYLE.md): ``on_gained(conn, term, now)``, ``tick(conn, term, now)``
doing one bounded batch in one fenced transaction and returning the seconds until it next wants
to run, ``on_lost()`` dropping memory. No threads, sleeps or leadership checks inside: the
supervisor calls them only while its term is trusted, and the fenced transaction refuses a stale
term anyway (``errors.NotLeader``). Each satisfies ``leader_services.LeaderService``.

Owns: River's maintenance services. May import: the queue core, ``queues``, ``leadership`` (Term,
fenced transactions), ``leader_services`` (the protocol).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import psycopg

from . import queue, queues
from .config import MaintenanceConfig
from .leader_services import LeaderService
from .leadership import Term, fenced_transaction

log = logging.getLogger(__name__)


class _Service:
    """What every maintenance service shares: nothing to set up when a term starts or forget when
    it ends (the rows are their only state)."""

    name: str = "service"

    def on_gained(self, conn: psycopg.Connection[Any], term: Term, now: datetime) -> None:
        return None

    def tick(self, conn: psycopg.Connection[Any], term: Term, now: datetime) -> float:
        raise NotImplementedError

    def on_lost(self) -> None:
        return None


class JobScheduler(_Service):
    """Moves due ``scheduled`` and ``retryable`` jobs to ``available`` and wakes the workers."""

    name = "scheduler"
    interval = 1.0
    batch = 10_000

    def tick(self, conn: psycopg.Connection[Any], term: Term, now: datetime) -> float:
        with fenced_transaction(conn, term, self.name):
            moved = queue.schedule_due(conn, now=now, limit=self.batch)
        total = sum(moved.values())
        if total:
            log.debug(
                "made %d jobs available", total, extra={"event": "maintenance.scheduled", "count": total}
            )
        return 0.0 if total >= self.batch else self.interval


class JobRescuer(_Service):
    """Retries or discards jobs left ``running`` longer than ``rescue_after`` (a vanished host)."""

    name = "rescuer"
    interval = 30.0
    batch = 1_000

    def __init__(self, cfg: MaintenanceConfig) -> None:
        self.rescue_after = cfg.rescue_after

    def tick(self, conn: psycopg.Connection[Any], term: Term, now: datetime) -> float:
        with fenced_transaction(conn, term, self.name):
            rescued = queue.rescue_stuck(conn, now - timedelta(seconds=self.rescue_after), limit=self.batch)
        if rescued:
            log.info(
                "rescued %d jobs stuck in running for over %.0fs",
                len(rescued),
                self.rescue_after,
                extra={"event": "maintenance.rescued", "count": len(rescued), "job_ids": rescued[:20]},
            )
        return 0.0 if len(rescued) >= self.batch else self.interval


class DeadHostRescuer(_Service):
    """Puts back, within seconds, the jobs of a host whose supervisor stopped heartbeating.

    A crashed or powered-off host cannot record what happened to its jobs, and ``rescue_after``
    (an hour by default) is far too long to leave them ``running``. Its node row tells: a node not
    heard from for ``dead_after`` seconds (the lease ttl, at least three missed heartbeats) is gone,
    and every job its workers held is retried per policy (an attempt is used: any of them may have
    brought the host down). A host only cut off from the database for that long may still be
    running them: at-least-once, as with River's rescuer.

    Silence counts only while the database takes heartbeats. After a read-only spell, a restart or
    a freeze, every row is stale, and a new leader would take every live host for dead and run its
    jobs twice (their outcomes still waiting in the hosts' completers). So silence is judged only
    once this host's own writes have gone through for ``dead_after`` (``writable_for``, seconds):
    every live host has had that long to be heard again. A host marked stopped counts at once.
    """

    name = "host_rescuer"
    interval = 2.0
    batch = 1_000

    def __init__(
        self, cluster: str, dead_after: float, writable_for: Callable[[], float] = lambda: math.inf
    ) -> None:
        self.cluster = cluster
        self.dead_after = dead_after
        self.writable_for = writable_for
        self._holding_back = False

    def tick(self, conn: psycopg.Connection[Any], term: Term, now: datetime) -> float:
        judge_silence = self._judge_silence()
        with fenced_transaction(conn, term, self.name):
            rescued = queue.rescue_from_dead_nodes(
                conn, self.cluster, self.dead_after, limit=self.batch, judge_silence=judge_silence
            )
        if rescued:
            log.warning(
                "rescued %d jobs of hosts not heard from for over %.0fs",
                len(rescued),
                self.dead_after,
                extra={"event": "maintenance.host_rescued", "count": len(rescued), "job_ids": rescued[:20]},
            )
        return 0.0 if len(rescued) >= self.batch else self.interval

    def on_lost(self) -> None:
        self._holding_back = False

    def _judge_silence(self) -> bool:
        writable_for = self.writable_for()
        judge = writable_for >= self.dead_after
        if not judge and not self._holding_back:  # DEBUG: every start holds back too (nothing known yet)
            log.debug(
                "host rescuer: this host's database writes have gone through for only %.0fs; a host "
                "not heard from is taken for dead only after %.0fs of a database taking writes",
                writable_for,
                self.dead_after,
                extra={"event": "maintenance.host_rescue_held", "writable_for": round(writable_for, 1)},
            )
        self._holding_back = not judge
        return judge


class JobCleaner(_Service):
    """Deletes finalized jobs past retention (River's defaults: 24 h, 24 h, 7 days)."""

    name = "cleaner"
    interval = 60.0
    batch = 10_000

    def __init__(self, cfg: MaintenanceConfig) -> None:
        self.cfg = cfg

    def tick(self, conn: psycopg.Connection[Any], term: Term, now: datetime) -> float:
        with fenced_transaction(conn, term, self.name):
            deleted = queue.clean(
                conn,
                completed_before=now - timedelta(seconds=self.cfg.completed_retention),
                cancelled_before=now - timedelta(seconds=self.cfg.cancelled_retention),
                discarded_before=now - timedelta(seconds=self.cfg.discarded_retention),
                limit=self.batch,
            )
        if deleted:
            log.info(
                "deleted %d finalized jobs past retention",
                deleted,
                extra={"event": "maintenance.cleaned", "count": deleted},
            )
        return 0.0 if deleted >= self.batch else self.interval


class QueueCleaner(_Service):
    """Deletes ``river_queue`` rows no host has refreshed for River's retention (24 h), hourly."""

    name = "queue_cleaner"
    interval = queues.CLEAN_INTERVAL
    batch = queues.CLEAN_BATCH

    def tick(self, conn: psycopg.Connection[Any], term: Term, now: datetime) -> float:
        with fenced_transaction(conn, term, self.name):
            deleted = queues.delete_expired(conn, now - timedelta(seconds=queues.RETENTION), self.batch)
        if deleted:
            log.info(
                "deleted %d queues idle for over %.0fh: %s",
                len(deleted),
                queues.RETENTION / 3600,
                ", ".join(deleted[:20]),
                extra={"event": "maintenance.queues_cleaned", "count": len(deleted), "queues": deleted[:20]},
            )
        return 0.0 if len(deleted) >= self.batch else self.interval


def services(
    cfg: MaintenanceConfig,
    *,
    cluster: str = "default",
    dead_after: float = 15.0,
    writable_for: Callable[[], float] = lambda: math.inf,
) -> list[LeaderService]:
    return [
        JobScheduler(),
        JobRescuer(cfg),
        DeadHostRescuer(cluster, dead_after, writable_for),
        JobCleaner(cfg),
        QueueCleaner(),
    ]
