"""The supervisor parent: one loop owns everything (gunicorn's arbiter is the model).

Boot, in order: plugins (load errors reported), Sentry, the forkserver context (named explicitly,
our worker module and the plugin modules preloaded), the database connection, leadership, the
workers. Each turn of the loop:

1. take the earliest deadline among leadership, leader-only services, restarts and kills;
2. wait on the signal wakeup fd, the children's sentinels and pipes, the leadership socket;
3. drain signals into intents -> read children's messages -> reap the dead, writing the fate of
   their jobs into the job rows at once -> enforce job timeouts -> step leadership -> run due
   leader-only services -> top up workers, with restart backoff.

Signal handlers do nothing but wake the loop (``signal.set_wakeup_fd``). The parent never runs
jobs and never forks from a thread: workers come from a forkserver, a clean process that never
inherits the parent's threads (Sentry's transport) or sockets, and are then adopted by the parent
(``processes``): the forkserver and the resource tracker may die at any time; the next start
replaces them, and no running worker notices.

What the loop does with its worker processes (start, hear, time, reap, restart) is the
``worker_lifecycle`` part this class is built on; here: boot, the loop, signals, reload and stop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from datetime import UTC
from typing import Any

import multiprocess
import multiprocess.connection

from . import alerts, crons, db, discovery, executor, manifest, processes, reload, schema
from .children import KILL_AFTER, ExitReport, RestartPolicy, WorkerHandle
from .config import Config
from .duties import Duties
from .errors import RiverSupervisorError, SchemaMissing
from .fate_ledger import FateLedger
from .leadership import NodeIdentity
from .worker_lifecycle import WorkerLifecycle

log = logging.getLogger(__name__)

IDLE_WAIT = 5.0
CALL_TIMEOUT = 2.0  # the parent's own writes (dead workers' jobs): a frozen database must not hold the loop


class Supervisor(WorkerLifecycle):
    def __init__(
        self,
        cfg: Config,
        *,
        log_level: str = "INFO",
        log_format: str = "text",
        load_config: Callable[[], Config] | None = None,
    ) -> None:
        self.cfg = cfg
        self.load_config = load_config  # SIGHUP reads the configuration again with it
        self.reload_wanted = False
        self.retired_forkservers: list[reload.RetiredForkserver] = []
        self.retired_workers = 0
        self.log_level = log_level
        self.log_format = log_format
        self.workers: dict[int, WorkerHandle] = {}
        self.restart_at: dict[int, float] = {}
        self.restarts = RestartPolicy()
        self.generation = 0
        self.stopping = False
        self.stop_deadline: float | None = None
        self.hard_stop = False
        assert cfg.database_url
        # bounded: a frozen database must not hold the loop (db.BoundedConnection)
        self.db = db.LazyConnection(
            cfg.database_url,
            application_name="river-supervisor supervisor",
            connect_timeout=2,
            call_timeout=CALL_TIMEOUT,
        )
        self.fates = FateLedger(self.db)  # dead workers' jobs: written at once, retried, never dropped
        self.plugin_set: Any = None
        self.timeouts = executor.Timeouts({}, None)  # each job kind's, as its plugin and cfg set it
        self._wake_r = self._wake_w = -1
        self._ctx: Any = None
        self.identity = NodeIdentity.current(cfg.node)
        self.duties: Duties | None = None
        self.monitors: crons.Monitors = ()
        self.metrics: Any = None  # metrics.Metrics with [metrics] listen set (imported only then)
        self.adopts = False  # a child subreaper: workers become our own children
        self.stray_groups: set[int] = set()  # process groups of dead workers with members to reap

    # --- boot -------------------------------------------------------------------------------

    @property
    def node_id(self) -> str:
        return self.identity.node_id

    def _boot(self) -> None:
        processes.set_title(f"river-supervisor: supervisor [{self.cfg.cluster}/{self.cfg.node}]")
        self.plugin_set = discovery.discover(self.cfg.plugins)
        self.plugin_set.raise_for_conflicts()
        self.timeouts = executor.Timeouts.of(self.plugin_set.handlers, self.cfg.job_timeout)
        self._log_plugin_errors()
        alerts.init(
            self.cfg.sentry,
            role="supervisor",
            cluster=self.cfg.cluster,
            node=self.cfg.node,
            secrets=[self.cfg.database_url],
        )
        for report in self.plugin_set.errors:
            alerts.plugin_load_error_event(report.name, report.distribution, report.error)
        local = manifest.local_manifest(self.cfg, self.plugin_set)
        if self.cfg.metrics.listen:  # first: a taken address stops the boot before anything is claimed
            from .metrics import Metrics

            defined = {s.id for s in local.schedules.schedules} | set(local.schedules.disabled)
            self.metrics = Metrics(self.cfg, node_id=self.node_id, defined_here=defined)
            self.metrics.start()
        if not schema.is_current(self.db.get()):
            raise SchemaMissing(
                f"database {db.redact_url(self.cfg.database_url or '')}: schema is missing or out of date; "
                "run `river-supervisor migrate`"
            )
        self._install_signals()
        self.adopts = processes.become_subreaper()
        if not self.adopts:
            log.warning(
                "cannot become a child subreaper (not Linux?): workers are watched by pid and pipe only",
                extra={"event": "supervisor.no_subreaper"},
            )
        self._ctx = multiprocess.get_context("forkserver")
        self._ctx.set_forkserver_preload(["river_supervisor.worker", *self.plugin_set.modules])
        self.monitors = crons.monitors_for(local.schedules.schedules)
        self.duties = Duties(
            self.cfg,
            identity=self.identity,
            local=local,
            kinds=list(self.plugin_set.handlers),
            periodic_observer=self.metrics.periodic_pass if self.metrics else None,
        )
        self.duties.start()
        log.info(
            "supervisor started: cluster %s, node %s, %d worker processes, queues %s",
            self.cfg.cluster,
            self.cfg.node,
            self.cfg.processes,
            ", ".join(f"{q.name}={q.concurrency}" for q in self.cfg.queues.values()),
            extra={"event": "supervisor.started", "node_id": self.node_id},
        )
        now = time.monotonic()
        for index in range(self.cfg.processes):
            self.restart_at[index] = now

    def _log_plugin_errors(self) -> None:
        for report in self.plugin_set.errors:
            log.warning(
                "plugin %s (%s) failed to load: %s",
                report.name,
                report.distribution or "unknown distribution",
                report.error,
                extra={"event": "plugin.load_failed", "plugin": report.name},
            )

    def _install_signals(self) -> None:
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(sig, lambda signum, frame: None)  # the wakeup fd carries the number

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> int:
        self._boot()
        try:
            while self.workers or not self.stopping:
                self._turn()
        finally:
            self._close()
        log.info("supervisor stopped", extra={"event": "supervisor.stopped"})
        return 0

    def _turn(self) -> None:
        timeout = max(0.0, self._next_deadline() - time.monotonic())
        waitables: list[Any] = [self._wake_r]
        if self.duties is not None:
            waitables += self.duties.filenos()
        for handle in self.workers.values():
            if not handle.pipe_closed:
                waitables.append(handle.pipe)
            if handle.pidfd is not None:
                waitables.append(handle.pidfd)
        multiprocess.connection.wait(waitables, timeout)
        now = time.monotonic()
        self._drain_signals(now)
        self._read_pipes(now)
        self._reap(now)
        self._reap_strays()
        self.fates.retry(now)
        self._enforce_timeouts(now)
        self._enforce_stop(now)
        if self.reload_wanted and not self.stopping:
            self._reload(now)
        if not self.stopping:
            self._top_up(now)  # first: the first spawn starts the forkserver, which may take seconds
        if not self.stopping and self.duties is not None:
            self.duties.workers_ready = sum(1 for handle in self.workers.values() if handle.ready)
            self.duties.workers_down = dict(self.restarts.open_breakers)
            self.duties.step(time.monotonic())  # the time now, after whatever the turn took so far
        if self.metrics is not None:
            self.metrics.update(term=self.duties.term if self.duties else None, workers=len(self.workers))

    def _next_deadline(self) -> float:
        now = time.monotonic()
        deadlines = [now + IDLE_WAIT, self.fates.due]
        for handle in self.workers.values():
            deadlines += [job.deadline for job in handle.held.values() if job.deadline is not None]
            if handle.term_sent_at is not None:
                deadlines.append(handle.term_sent_at + KILL_AFTER)
        if self.stopping:
            if self.stop_deadline is not None:
                deadlines.append(self.stop_deadline)
        else:
            deadlines += list(self.restart_at.values())
            if self.duties is not None:
                deadlines.append(self.duties.next_deadline())
        return min(deadlines)

    # --- signals ----------------------------------------------------------------------------

    def _drain_signals(self, now: float) -> None:
        try:
            data = os.read(self._wake_r, 512)
        except BlockingIOError:
            return
        for signum in data:
            if signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
                self._begin_stop(now, signal.Signals(signum).name)
            elif signum == signal.SIGHUP:
                self.reload_wanted = True  # after this turn's leader-only work: due slots go out first

    # --- reload (SIGHUP) --------------------------------------------------------------------

    def _reload(self, now: float) -> None:
        """New configuration, plugins, schedules and workers; nothing running is dropped (``reload``)."""
        self.reload_wanted = False
        if self.load_config is None:
            log.warning(
                "SIGHUP: this supervisor cannot reload; restart it", extra={"event": "supervisor.sighup"}
            )
            return
        try:
            new = reload.read(self.cfg, self.load_config, self.plugin_set.modules)
        except RiverSupervisorError as exc:
            log.error(
                "reload failed, the running configuration is kept: %s",
                exc,
                extra={"event": "supervisor.reload_failed"},
            )
            return
        for name in new.kept:
            log.warning(
                "reload: `%s` changed; it takes effect at the next restart, the running value is kept",
                name,
                extra={"event": "supervisor.reload_kept", "setting": name},
            )
        self.cfg, self.plugin_set = new.cfg, new.plugin_set
        self.timeouts = executor.Timeouts.of(self.plugin_set.handlers, self.cfg.job_timeout)  # new workers'
        self._log_plugin_errors()
        self.monitors = crons.monitors_for(new.local.schedules.schedules)
        switch = self.duties.reload(new.cfg, new.local) if self.duties is not None else None
        if self.metrics is not None:
            schedules = new.local.schedules
            self.metrics.reloaded({s.id for s in schedules.schedules} | set(schedules.disabled))
        retired = reload.retire_forkserver(["river_supervisor.worker", *self.plugin_set.modules])
        if retired is not None:
            self.retired_forkservers.append(retired)
        for index, handle in list(self.workers.items()):
            self._retire(index, handle)
        self.restarts = RestartPolicy()  # new code: a slot that crash-looped gets another chance
        self.restart_at = dict.fromkeys(range(self.cfg.processes), now)
        self._close_retired_forkservers()
        log.info(
            "reloaded: plugins %s; %d schedule(s); fingerprint %s; old workers finish their jobs",
            ", ".join(f"{r.name} {r.version}" for r in self.plugin_set.plugins if r.plugin) or "none",
            len(new.local.schedules.schedules),
            new.local.digest[:12],
            extra={
                "event": "supervisor.reloaded",
                "fingerprint": new.local.digest,
                "switch": switch.astimezone(UTC).isoformat() if switch else None,
            },
        )

    def _retire(self, index: int, handle: WorkerHandle) -> None:
        """Move a worker out of its slot: it stops fetching, finishes its jobs and exits."""
        self.retired_workers += 1
        del self.workers[index]
        self.workers[-self.retired_workers] = handle  # negative keys: no slot; the loop still watches it
        handle.retiring = True
        if not handle.stop_sent:
            with contextlib.suppress(OSError, ValueError):
                handle.pipe.send(("stop",))
            handle.stop_sent = True

    def _close_retired_forkservers(self) -> None:
        """Old forkservers go once the last worker they started has exited."""
        if self.retired_forkservers and not any(h.retiring for h in self.workers.values()):
            for server in self.retired_forkservers:
                server.close()
            self.retired_forkservers.clear()

    def _begin_stop(self, now: float, reason: str) -> None:
        if self.stopping:
            if not self.hard_stop:
                log.warning(
                    "%s again: stopping now, jobs still running are put back",
                    reason,
                    extra={"event": "supervisor.hard_stop"},
                )
                self.hard_stop = True
                self.stop_deadline = now
            return
        self.stopping = True
        self.stop_deadline = now + self.cfg.shutdown_grace
        log.info(
            "%s: stopping; running jobs have %.0fs to finish",
            reason,
            self.cfg.shutdown_grace,
            extra={"event": "supervisor.stopping", "grace": self.cfg.shutdown_grace},
        )
        if self.duties is not None:
            self.duties.resign()  # first: a peer takes over while our jobs finish
        self.restart_at.clear()
        for handle in self.workers.values():
            with contextlib.suppress(OSError, ValueError):
                handle.pipe.send(("stop",))
            handle.stop_sent = True

    def _enforce_stop(self, now: float) -> None:
        if not self.stopping or self.stop_deadline is None or now < self.stop_deadline:
            return
        for handle in self.workers.values():
            if handle.term_sent_at is None:
                self._terminate(handle, now, "shutdown grace period over")

    def _close(self) -> None:
        # Workers left only if the loop ended by an error: stop them and put their jobs back.
        for handle in list(self.workers.values()):
            self._kill(handle, signal.SIGKILL)
            deadline = time.monotonic() + KILL_AFTER
            while not self._has_exited(handle) and time.monotonic() < deadline:
                time.sleep(0.01)
            processes.kill_group(handle.pid, signal.SIGKILL)
            if handle.pid is not None:
                processes.reap(handle.pid)
            self.fates.record(handle, ExitReport("stopped: supervisor exiting", False, False, "INFO"))
        self.fates.retry(time.monotonic(), force=True)  # a last try for what the database could not take
        self.workers.clear()
        if self.duties is not None:
            self.duties.stop()
        if self.metrics is not None:
            self.metrics.stop()
        self.db.drop()
        alerts.flush(2.0)
        signal.set_wakeup_fd(-1)
