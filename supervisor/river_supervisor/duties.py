"""The parent's cluster duties: its node row, the leader lease, and leader-only services.

``Duties`` is driven by the supervisor's single loop (``filenos``, ``next_deadline``, ``step``);
it never sleeps and starts no thread. It composes three parts on one connection:

- ``NodeHeartbeat``: this host's node row and River queue rows (every host);
- the ``Elector``: leadership; each change is logged by it and sent to Sentry from here;
- ``ServiceRunner``: while the term is trusted, the leader-only services (job scheduler,
  rescuers, cleaners, periodic enqueuer, drift watch) run their ticks, each fenced by the term; a
  fenced write refused ends the term at once, and three failed starts of a service give the lease
  up (River's rule).

What the services find (``drift.Finding``: a new drift, an orphaned schedule) reaches Sentry one
way: the ``report`` callback each is built with. Every call is bounded: by the term's trust
while leading, so the loop steps down on time.

Owns: composing the parent's cluster duties. May import: the parts above, ``alerts``, the services.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

from . import alerts, db, nodes
from .config import Config
from .drift import Drift, Finding
from .drift_watch import DriftWatch
from .errors import NotLeader
from .leader_services import SERVICE_ERRORS, LeaderService, ServiceRunner, Verdict
from .leadership import CALL_SLACK, Elector, LeadershipEvent, NodeIdentity, Term
from .maintenance import services as maintenance_services
from .node_heartbeat import NodeHeartbeat
from .periodic import PeriodicEnqueuer

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 2  # libpq's floor; a frozen server must not hold the loop longer than this
RELOAD_PASS_ERRORS: tuple[type[BaseException], ...] = (NotLeader, *SERVICE_ERRORS)


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
        self.elector = Elector(
            cfg.leadership, cluster=cfg.cluster, identity=identity, conninfo=cfg.database_url
        )
        self._db = db.LazyConnection(
            cfg.database_url,
            # the leader_id names this process: an operator (or a test) can find its sessions
            application_name=f"river-supervisor duties {identity.leader_id}"[:63],
            connect_timeout=CONNECT_TIMEOUT,
            call_timeout=self.elector.timings.statement_timeout + CALL_SLACK,
        )
        self.node = NodeHeartbeat(
            cfg,
            identity=identity,
            local=local,
            serves=nodes.serves_of(cfg.queues, kinds),
            session=self._session,
            drop=self._db.drop,
        )
        self._periodic_observer = periodic_observer
        self.runner = self._runner(cfg, local)
        # After a reload: the moment the new schedules take over (see ``reload``), used by their
        # first ``on_gained`` so that no slot falls between the old schedules and the new ones.
        self._gain_at: datetime | None = None

    def _runner(self, cfg: Config, local: Any) -> ServiceRunner:
        # A host is gone when its node row is older than the lease ttl, and never before three
        # heartbeats were missed (nodes.STALE_AFTER): its jobs are back within ttl + a tick.
        dead_after = max(cfg.leadership.ttl, nodes.STALE_AFTER)
        services: list[LeaderService] = [
            *maintenance_services(
                cfg.maintenance, cluster=cfg.cluster, dead_after=dead_after, writable_for=self.writable_for
            ),
            PeriodicEnqueuer(
                local.schedules.schedules,
                cluster=cfg.cluster,
                node=cfg.node,
                disabled=local.schedules.disabled,
                missed_grace=cfg.missed_grace,
                observer=self._periodic_observer,  # the metrics count slots and enqueue lag
                report=self._report,
            ),
            DriftWatch(
                cluster=cfg.cluster,
                node_id=self.identity.node_id,
                stale_after=nodes.STALE_AFTER,
                report=self._report,
            ),
        ]
        return ServiceRunner(
            services, session=self._session, drop=self._db.drop, on_transient=self.node.unwritable
        )

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self.node.register()
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
            for service in self.runner.gained_services():
                if isinstance(service, PeriodicEnqueuer):
                    try:
                        service.tick(self._db.get(), term, switch)
                    except RELOAD_PASS_ERRORS as exc:  # the new enqueuer catches up by policy
                        log.warning(
                            "periodic: the last pass before the reload failed: %s",
                            exc,
                            extra={"event": "periodic.reload_pass_failed"},
                        )
        self._lose_services()
        self.cfg = cfg
        self.runner = self._runner(cfg, local)
        self._gain_at = switch if term is not None else None
        self.node.republish(cfg, local)
        return switch

    def resign(self) -> None:
        """Graceful stop: hand the lease over at once (followers are notified)."""
        self._handle(self.elector.resign())

    def stop(self) -> None:
        self.resign()
        self.elector.stop()
        self.node.mark_stopped()  # its calls bounded in full, not by the leftover of a term's trust

    # --- what the loop reads ----------------------------------------------------------------

    def filenos(self) -> list[int]:
        """What the loop waits on for us: the LISTEN socket and the lease connection."""
        return self.elector.filenos()

    @property
    def term(self) -> Term | None:
        return self.elector.term

    @property
    def workers_ready(self) -> int:
        return self.node.workers_ready

    @workers_ready.setter
    def workers_ready(self, count: int) -> None:
        self.node.workers_ready = count  # published with the next heartbeat

    @property
    def workers_down(self) -> dict[int, str]:
        return self.node.workers_down

    @workers_down.setter
    def workers_down(self, slots: dict[int, str]) -> None:
        self.node.workers_down = slots  # published with the next heartbeat

    def writable_for(self) -> float:
        """Seconds since this host's database writes went through again (0 while they fail)."""
        return self.node.writable_for()

    def next_deadline(self) -> float:
        deadlines = [self.elector.next_deadline(), self.node.next_due]
        if self.term is not None:
            deadlines.append(self.runner.next_deadline())
        return min(d for d in deadlines if not math.isnan(d))

    # --- one turn ---------------------------------------------------------------------------

    def step(self, now: float) -> None:
        # Leadership first: whatever the other calls meet, trust is checked at every turn.
        self._handle(self.elector.step(now))
        term = self.term
        if term is None:
            self._lose_services()
        else:
            gain_at, self._gain_at = self._gain_at, None
            if self.runner.run(now, term, lambda: self.term is not None, gain_at) is not Verdict.KEEP:
                self._handle(self.elector.resign(rejoin=True))
        self.node.step(now)

    def _handle(self, events: list[LeadershipEvent]) -> None:
        for event in events:  # the elector has logged them
            alerts.leadership_event(event)
            if event.ends_term:
                self._lose_services()
            elif event.kind == "gained":
                self.runner.term_gained()

    def _lose_services(self) -> None:
        self._gain_at = None
        self.runner.lose()

    def _report(self, finding: Finding) -> None:
        """What a leader service found, to Sentry (once per finding: the services see to that)."""
        if isinstance(finding, Drift):
            alerts.drift_event(
                self.cfg.cluster, finding.digest, list(finding.differences), finding.drifting_nodes
            )
        else:
            alerts.orphaned_schedule_event(
                self.cfg.cluster,
                finding.id,
                leader_node=self.cfg.node,
                kind=finding.kind,
                last_run_at=finding.last_slot,
                detail={"defined_by": finding.defined_by},
            )

    # --- the connection ---------------------------------------------------------------------

    def _session(self) -> psycopg.Connection[Any]:
        """The duties connection, its calls bounded: while leading, no call outlives the trust
        window (a long tick may use all of it), so the loop steps down on time."""
        conn = self._db.get()
        bound = self.elector.timings.statement_timeout + CALL_SLACK
        if self.term is not None:
            bound = max(0.05, self.elector.trusted_until - time.monotonic())
        conn.call_timeout = bound  # type: ignore[attr-defined]
        return conn
