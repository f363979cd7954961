"""The parent's cluster duties: its node row, the leader lease, and leader-only services.

``Duties`` is driven by the supervisor's single loop (``fileno``, ``next_deadline``, ``step``);
it never sleeps and starts no thread. Every host heartbeats its node row (with the fingerprint of
its schedules and plugins, and the queues it serves) and keeps River's ``river_queue`` row of each
queue it serves (created at start, refreshed every 10 min, as River's producers do). Leadership
comes from the ``Elector``; each change is logged and sent to Sentry. While the term is trusted,
the leader-only services (job scheduler, rescuer, cleaners, periodic enqueuer, drift watch) run
their ticks, each in a transaction fenced by that term; a fenced write refused (``NotLeader``)
ends the term at once, and three failed starts of a service give the lease up rather than lead
half-working (River's rule).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import psycopg

from . import alerts, db, nodes, queues
from .backoff import service_backoff
from .config import Config
from .drift import Drift, DriftWatch
from .errors import NotLeader, first_line
from .leadership import CALL_SLACK, Elector, LeadershipEvent, NodeIdentity, Term
from .maintenance import services as maintenance_services
from .periodic import PeriodicEnqueuer

log = logging.getLogger(__name__)

# A fenced transaction ended by idle_in_transaction_session_timeout raises InternalError.
SERVICE_ERRORS = (
    *db.TRANSIENT,  # what a later retry can outlive: back off, never exit
    psycopg.errors.IdleInTransactionSessionTimeout,
    psycopg.errors.LockNotAvailable,
)
MAX_START_FAILURES = 3
CONNECT_TIMEOUT = 2  # libpq's floor; a frozen server must not hold the loop longer than this


class LeaderService(Protocol):
    name: str

    def on_gained(self, conn: psycopg.Connection[Any], term: Term, now: datetime) -> None: ...

    def tick(self, conn: psycopg.Connection[Any], term: Term, now: datetime) -> float | datetime: ...

    def on_lost(self) -> None: ...


@dataclass(slots=True)
class _ServiceState:
    service: LeaderService
    due: float = 0.0
    failures: int = 0
    gained: bool = False


class Duties:
    def __init__(
        self,
        cfg: Config,
        *,
        identity: NodeIdentity,
        local: Any,
        kinds: Sequence[str] = (),
        periodic_observer: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        assert cfg.database_url
        self.cfg = cfg
        self.identity = identity
        self.local = local  # manifest.LocalManifest: digest, manifest, schedules
        self.serves = nodes.serves_of(cfg.queues, kinds)  # published on the node row
        self.elector = Elector(
            cfg.leadership, cluster=cfg.cluster, identity=identity, conninfo=cfg.database_url
        )
        self._periodic_observer = periodic_observer
        # Monotonic: since when this host's database writes (heartbeats, leader services) have gone
        # through; None after a transient failure, until the next heartbeat goes through. The host
        # rescuer judges other hosts' silence only after this long (``writable_for``).
        self._writable_since: float | None = None
        self._services = [_ServiceState(s) for s in self._build_services(cfg, local)]
        # After a reload: the moment the new schedules take over (see ``reload``), used by their
        # first ``on_gained`` so that no slot falls between the old schedules and the new ones.
        self._gain_at: datetime | None = None
        self.conn: psycopg.Connection[Any] | None = None
        self._next_heartbeat = 0.0
        self._next_queue_report = 0.0
        self._registered = False
        self._heartbeat_failures = 0
        self.workers_ready = 0  # the supervisor's count each turn; published with the heartbeat
        self.workers_down: dict[int, str] = {}  # slots whose breaker is open: published likewise

    def _build_services(self, cfg: Config, local: Any) -> list[LeaderService]:
        # A host is gone when its node row is older than the lease ttl, and never before three
        # heartbeats were missed (nodes.STALE_AFTER): its jobs are back within ttl + a tick.
        dead_after = max(cfg.leadership.ttl, nodes.STALE_AFTER)
        services: list[LeaderService] = [
            *maintenance_services(
                cfg.maintenance, cluster=cfg.cluster, dead_after=dead_after, writable_for=self.writable_for
            )
        ]
        services.append(
            PeriodicEnqueuer(
                local.schedules.schedules,
                cluster=cfg.cluster,
                node=cfg.node,
                disabled=local.schedules.disabled,
                missed_grace=cfg.missed_grace,
                observer=self._periodic_observer,  # the metrics count slots and enqueue lag
            )
        )
        services.append(
            DriftWatch(
                cluster=cfg.cluster,
                node_id=self.identity.node_id,
                stale_after=nodes.STALE_AFTER,
                on_new_drift=self._report_drift,
            )
        )
        return services

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self._register()
        self.elector.start()

    def reload(self, cfg: Config, local: Any) -> datetime:
        """SIGHUP: new services for the new configuration and schedules; the lease is kept.

        One moment, returned, splits the old schedules from the new: while leading, the old
        enqueuer first enqueues every slot due up to it, and the new one starts from it (a changed
        schedule is re-registered at that moment: its first slot is the next one after it). The
        node row is republished at once, so drift reflects the new fingerprint without waiting.
        """
        switch = datetime.now(UTC)
        term = self.term
        if term is not None:
            for state in self._services:
                if state.gained and isinstance(state.service, PeriodicEnqueuer):
                    try:
                        state.service.tick(self._db(), term, switch)
                    except (NotLeader, *SERVICE_ERRORS) as exc:  # the new enqueuer catches up by policy
                        log.warning(
                            "periodic: the last pass before the reload failed: %s",
                            exc,
                            extra={"event": "periodic.reload_pass_failed"},
                        )
        self._lose_services()
        self.cfg, self.local = cfg, local
        self._services = [_ServiceState(s) for s in self._build_services(cfg, local)]
        self._gain_at = switch if term is not None else None
        try:
            self._register()
        except db.TRANSIENT as exc:  # the next heartbeat registers again
            self._writable_since = None
            self._registered = False
            log.warning("could not republish this node: %s", exc, extra={"event": "node.register_failed"})
            self._drop_connection()
        return switch

    def resign(self) -> None:
        """Graceful stop: hand the lease over at once (followers are notified)."""
        self._handle(self.elector.resign())

    def stop(self) -> None:
        self.resign()
        self.elector.stop()
        try:
            conn = self._db()
            self._bound_calls(conn, time.monotonic())  # not the leftover of a term's last moments
            nodes.mark_stopped(conn, self.identity, self.cfg.cluster)
        except db.TRANSIENT as exc:
            log.warning("could not mark this node stopped: %s", exc, extra={"event": "node.stop_failed"})
        self._drop_connection()

    # --- what the loop reads ----------------------------------------------------------------

    def fileno(self) -> int | None:
        return self.elector.fileno()

    def filenos(self) -> list[int]:
        """What the loop waits on for us: the LISTEN socket and the lease connection."""
        return self.elector.filenos()

    @property
    def term(self) -> Term | None:
        return self.elector.term

    def writable_for(self) -> float:
        """Seconds since this host's database writes went through again (0 while they fail)."""
        if self._writable_since is None:
            return 0.0
        return time.monotonic() - self._writable_since

    def next_deadline(self) -> float:
        deadlines = [self.elector.next_deadline(), self._next_heartbeat]
        if self.term is not None:
            deadlines += [state.due for state in self._services]
        return min(d for d in deadlines if not math.isnan(d))

    # --- one turn ---------------------------------------------------------------------------

    def step(self, now: float) -> None:
        # Leadership first: whatever the other calls meet, trust is checked at every turn.
        self._handle(self.elector.step(now))
        term = self.term
        if term is None:
            self._lose_services()
        else:
            self._run_services(now, term)
        self._heartbeat(now)

    def _handle(self, events: list[LeadershipEvent]) -> None:
        for event in events:  # the elector has logged them
            alerts.leadership_event(event)
            if event.ends_term:
                self._lose_services()
            elif event.kind == "gained":
                for state in self._services:
                    state.due = 0.0
                    state.failures = 0

    def _lose_services(self) -> None:
        self._gain_at = None
        for state in self._services:
            if state.gained:
                state.service.on_lost()
                state.gained = False

    def _run_services(self, now: float, term: Term) -> None:
        wall = datetime.now(UTC)
        gain_at, self._gain_at = self._gain_at or wall, None
        for state in self._services:
            if now < state.due or self.term is None:
                continue
            try:
                conn = self._db()
                self._bound_calls(conn, time.monotonic())
                if not state.gained:
                    state.service.on_gained(conn, term, gain_at)
                    state.gained = True
                    self._after_gained(state.service)
                wake = state.service.tick(conn, term, wall)
                state.failures = 0
                state.due = now + (wake - wall).total_seconds() if isinstance(wake, datetime) else now + wake
            except NotLeader:
                log.error(
                    "%s: fenced write refused for term %d; stepping down",
                    state.service.name,
                    term.term,
                    extra={"event": "leadership.fenced", "service": state.service.name, "term": term.term},
                )
                self._handle(self.elector.resign(rejoin=True))
                return
            except SERVICE_ERRORS as exc:
                self._service_failed(state, now, exc)

    def _service_failed(self, state: _ServiceState, now: float, exc: BaseException) -> None:
        if isinstance(exc, db.TRANSIENT):
            self._writable_since = None
        state.failures += 1
        delay = service_backoff(state.failures)
        state.due = now + delay
        log.warning(
            "%s failed (attempt %d): %s; next try in %.1fs",
            state.service.name,
            state.failures,
            first_line(exc),
            delay,
            extra={"event": "service.failed", "service": state.service.name, "attempt": state.failures},
        )
        self._drop_connection()
        if not state.gained and state.failures >= MAX_START_FAILURES:
            log.error(
                "%s could not start %d times: giving the lease up for another node",
                state.service.name,
                state.failures,
                extra={"event": "leadership.service_start_failed", "service": state.service.name},
            )
            self._handle(self.elector.resign(rejoin=True))

    def _after_gained(self, service: LeaderService) -> None:
        for orphan in getattr(service, "orphans", ()):
            alerts.orphaned_schedule_event(
                self.cfg.cluster,
                orphan.id,
                leader_node=self.cfg.node,
                kind=orphan.kind,
                last_run_at=orphan.last_slot,
                detail={"defined_by": orphan.defined_by},
            )

    def _report_drift(self, drift: Drift) -> None:
        alerts.drift_event(self.cfg.cluster, drift.digest, list(drift.differences), drift.drifting_nodes)

    # --- this node's row --------------------------------------------------------------------

    def _register(self) -> None:
        served = {q.name: q.concurrency for q in self.cfg.queues.values()}
        conn = self._db()
        local, cluster = self.local, self.cfg.cluster
        nodes.register(conn, self.identity, cluster, local.digest, local.manifest, served, self.serves)
        self._report_queues(conn)
        self._registered = True
        self._next_heartbeat = time.monotonic() + nodes.HEARTBEAT_INTERVAL
        if self._writable_since is None:
            self._writable_since = time.monotonic()

    def _report_queues(self, conn: psycopg.Connection[Any]) -> None:
        """River's queue status report: our queues' rows exist and are fresh (never un-paused)."""
        queues.report(conn, list(self.cfg.queues))
        self._next_queue_report = time.monotonic() + queues.REPORT_INTERVAL

    def _heartbeat(self, now: float) -> None:
        if now < self._next_heartbeat:
            return
        try:
            conn = self._db()
            self._bound_calls(conn, time.monotonic())
            workers = (self.workers_ready, self.cfg.processes)
            if not self._registered or not nodes.heartbeat(
                conn, self.identity, self.cfg.cluster, workers, self.workers_down
            ):
                self._register()
            elif now >= self._next_queue_report:
                self._report_queues(self._db())
            self._heartbeat_failures = 0
            self._next_heartbeat = now + nodes.HEARTBEAT_INTERVAL
            if self._writable_since is None:
                self._writable_since = now
        except db.TRANSIENT as exc:
            self._writable_since = None
            self._heartbeat_failures += 1
            self._registered = False
            self._next_heartbeat = now + service_backoff(
                self._heartbeat_failures, cap=nodes.HEARTBEAT_INTERVAL
            )
            log.warning(
                "node heartbeat failed (attempt %d): %s",
                self._heartbeat_failures,
                exc,
                extra={"event": "node.heartbeat_failed", "attempt": self._heartbeat_failures},
            )
            self._drop_connection()

    # --- database ---------------------------------------------------------------------------

    def _db(self) -> psycopg.Connection[Any]:
        if self.conn is None or self.conn.closed or self.conn.broken:
            assert self.cfg.database_url
            self.conn = db.connect(
                self.cfg.database_url,
                # the leader_id names this process: an operator (or a test) can find its sessions
                application_name=f"river-supervisor duties {self.identity.leader_id}"[:63],
                connect_timeout=CONNECT_TIMEOUT,
                call_timeout=self.elector.timings.statement_timeout + CALL_SLACK,
            )
        return self.conn

    def _bound_calls(self, conn: psycopg.Connection[Any], now: float) -> None:
        """While leading, no call outlives the trust window: the loop must step down on time."""
        bound = self.elector.timings.statement_timeout + CALL_SLACK
        if self.term is not None:
            bound = max(0.05, self.elector.trusted_until - now)  # a long tick may use all of its trust
        conn.call_timeout = bound  # type: ignore[attr-defined]

    def _drop_connection(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception as exc:  # closing a broken connection: nothing left to do
                log.debug("closing the duties connection failed: %s", exc)
        self.conn = None
