"""The parent's worker processes: started, heard, timed, stopped, reaped and restarted.

``WorkerLifecycle`` is the part of the supervisor's loop (``supervisor.Supervisor`` is built on
it) that deals with its worker processes, slot by slot:

- start a slot's worker from the forkserver when its restart is due (``_top_up``, ``_spawn``),
  with the spec built from the configuration (``worker_spec``) and the job timeouts of its
  generation;
- read what each worker says over its pipe (adopted pid, ready, jobs fetched and done, boot error);
- enforce job timeouts and silence: "exit now" (``processes.EXIT_NOW``), then SIGKILL;
- reap the dead: end what their jobs left behind, record the fate of their jobs at once
  (``fate_ledger``), log the exit and schedule the restart (``children.RestartPolicy``), with
  the breaker reported when a slot cannot boot.

The loop, its signals, reload and stop stay in ``supervisor``; the state is the supervisor's
(declared here). Owns: the worker processes' lifecycle. May import: ``children``, ``worker``,
``worker_spec``, ``fate_ledger``, ``processes``, ``alerts``, ``executor``, ``crons``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
from typing import Any

from . import alerts, crons, executor, processes, worker
from .children import KILL_AFTER, SILENT_AFTER, ExitReport, RestartPolicy, WorkerHandle, classify_exit
from .config import Config
from .fate_ledger import FateLedger
from .leadership import NodeIdentity
from .worker_spec import WorkerSpec

log = logging.getLogger("river_supervisor.supervisor")  # the parent's log lines keep their logger

# What starting a worker raises when the forkserver died under us; the next start replaces it.
SPAWN_ERRORS = (EOFError, OSError)


class WorkerLifecycle:
    # The supervisor's state this part reads and writes (set by ``Supervisor.__init__``).
    cfg: Config
    identity: NodeIdentity
    log_level: str
    log_format: str
    workers: dict[int, WorkerHandle]
    restart_at: dict[int, float]
    restarts: RestartPolicy
    generation: int
    stopping: bool
    hard_stop: bool
    fates: FateLedger
    timeouts: executor.Timeouts
    monitors: crons.Monitors
    metrics: Any
    adopts: bool
    stray_groups: set[int]
    _ctx: Any

    def _close_retired_forkservers(self) -> None:
        raise NotImplementedError  # the supervisor's (reload)

    def _spawn(self, index: int, now: float) -> None:
        self.generation += 1
        parent_end, child_end = self._ctx.Pipe(duplex=True)
        spec = WorkerSpec.for_slot(
            self.cfg,
            index,
            generation=self.generation,
            node_id=self.identity.node_id,
            boot_id=self.identity.boot_id,
            parent_pid=os.getpid(),
            log_level=self.log_level,
            log_format=self.log_format,
            monitors=self.monitors,
        )
        in_handler = self._ctx.RawArray("q", max(1, sum(share for _, share in spec.queues)))
        process = self._ctx.Process(
            target=worker.main, args=(spec, child_end, in_handler), name=f"worker-{index}"
        )
        try:
            process.start()  # the forkserver (and the resource tracker) are started again if they died
        except SPAWN_ERRORS as exc:
            parent_end.close()
            delay = self.restarts.spawn_failed(index)
            self.restart_at[index] = now + delay
            log.warning(
                "could not start worker %d: %s: %s; trying again in %.1fs",
                index,
                type(exc).__name__,
                exc,
                delay,
                extra={"event": "worker.spawn_failed", "worker": index},
            )
            return
        finally:
            child_end.close()
        self.restarts.spawned(index)
        # ``process`` is the worker's first process, which exits at once (processes.detach): the
        # worker proper reports its pid over the pipe and is watched from then on.
        self.workers[index] = WorkerHandle(
            index,
            parent_end,
            started_at=now,
            last_heard=now,
            worker_id=spec.worker_id,
            backend_name=spec.backend_name,
            in_handler=in_handler,
            timeouts=self.timeouts,
        )

    def _top_up(self, now: float) -> None:
        for index, due in list(self.restart_at.items()):
            if now >= due and index not in self.workers:
                del self.restart_at[index]
                self._spawn(index, now)

    def _read_pipes(self, now: float) -> None:
        for handle in self.workers.values():
            self._read_pipe(handle, now)

    def _read_pipe(self, handle: WorkerHandle, now: float) -> None:
        while True:
            try:
                if not handle.pipe.poll():
                    return
                # Workers send plain data pickled by the C pickler; the pipe's own recv() would
                # unpickle it with dill's pure-Python unpickler, far slower on this hot path.
                message = pickle.loads(handle.pipe.recv_bytes())
            except (EOFError, OSError):
                handle.pipe_closed = True  # the worker is gone (or going): its pidfd or waitpid says
                return
            handle.last_heard = now
            kind = message[0]
            if kind == "pid":
                self._adopted(handle, message[1])
            elif kind == "fetched":
                handle.take_fetched(message[1], now)
            elif kind == "done":
                handle.release(message[1])
                if self.metrics is not None and message[2]:
                    self.metrics.jobs_finished(message[2])
            elif kind == "ready":
                handle.ready = True
                if self.restarts.record_ready(handle.index):
                    log.warning(
                        "worker %d started again: its breaker is closed",
                        handle.index,
                        extra={"event": "worker.breaker_closed", "worker": handle.index},
                    )
            elif kind == "boot_error":
                handle.boot_error = message[1]

    def _adopted(self, handle: WorkerHandle, pid: int) -> None:
        handle.pid = pid
        handle.pidfd = processes.open_pidfd(pid)
        if self.metrics is not None:
            self.metrics.worker_started(handle.index)
        log.info(
            "worker %d started (pid %d)",
            handle.index,
            pid,
            extra={"event": "worker.started", "worker": handle.index, "pid": pid},
        )

    def _has_exited(self, handle: WorkerHandle) -> bool:
        if handle.pid is None:  # died before its pid arrived: only the pipe can tell
            return handle.pipe_closed
        return processes.has_exited(handle.pid, handle.pidfd)

    def _reap(self, now: float) -> None:
        for index, handle in list(self.workers.items()):
            if not self._has_exited(handle):
                continue
            self._read_pipe(handle, now)  # outcomes flushed just before the exit
            # What its jobs started dies with it: end the group while the worker's zombie still
            # holds the group id (no other process can have taken it), then collect the status.
            processes.kill_group(handle.pid, signal.SIGKILL)
            exitcode = processes.reap(handle.pid) if handle.pid is not None else None
            processes.close_fd(handle.pidfd)
            if handle.pid is not None:
                self.stray_groups.add(handle.pid)
            report = classify_exit(
                exitcode,
                ready=handle.ready,
                stopping=self.stopping or handle.retiring,
                killed_by_us=handle.term_sent_at is not None,
            )
            if handle.fault is not None:
                report = ExitReport(f"stopped: {handle.fault}", True, False, "ERROR")
            self.fates.record(handle, report)  # at once, while the row still says running
            del self.workers[index]
            with contextlib.suppress(OSError):
                handle.pipe.close()
            self._log_exit(handle, report, exitcode)
            if not self.stopping and not handle.retiring:
                self._schedule_restart(handle, report, now)
        self._close_retired_forkservers()

    def _reap_strays(self) -> None:
        """Collect what dead jobs left in a worker's group (they are re-parented to us)."""
        if not self.adopts:
            return
        for handle in self.workers.values():
            if handle.pid is not None:
                processes.reap_strays(handle.pid, keep=handle.pid)
        for pgid in list(self.stray_groups):
            if not processes.reap_strays(pgid):
                self.stray_groups.discard(pgid)

    def _log_exit(self, handle: WorkerHandle, report: ExitReport, exitcode: int | None) -> None:
        detail = f": {handle.boot_error}" if handle.boot_error else ""
        log.log(
            logging.getLevelName(report.level),
            "worker %d (pid %s) %s%s",
            handle.index,
            handle.pid,
            report.description,
            detail,
            extra={"event": "worker.exited", "worker": handle.index, "exitcode": exitcode},
        )

    def _schedule_restart(self, handle: WorkerHandle, report: ExitReport, now: float) -> None:
        decision = self.restarts.record_exit(handle.index, now, report, handle.boot_error or "")
        self.restart_at[handle.index] = now + decision.delay
        if decision.tripped:
            message = (
                "worker %d could not start %d times in a row (last: %s): its breaker is open; "
                "trying again every %.0fs"
            )
            reason = handle.boot_error or report.description
            args = (handle.index, self.restarts.trip_after, reason, decision.delay)
            log.critical(message, *args, extra={"event": "worker.breaker_open", "worker": handle.index})
            alerts.crash_loop_event(
                self.cfg.cluster,
                self.cfg.node,
                handle.index,
                message % args,
                last_exit=report.description,
                detail={"breaker": "open", "retry_seconds": decision.delay},
            )
        elif decision.delay > 0:
            log.info(
                "restarting worker %d in %.1fs",
                handle.index,
                decision.delay,
                extra={"event": "worker.restart_scheduled", "worker": handle.index, "delay": decision.delay},
            )

    def _enforce_timeouts(self, now: float) -> None:
        for handle in self.workers.values():
            if handle.term_sent_at is None and now - handle.last_heard > SILENT_AFTER:
                handle.fault = f"sent no heartbeat for {SILENT_AFTER:.0f}s"
                log.error(
                    "worker %d (pid %s) %s: stopping it",
                    handle.index,
                    handle.pid,
                    handle.fault,
                    extra={"event": "worker.silent", "worker": handle.index},
                )
                self._terminate(handle, now, "silent")
            overdue = handle.overdue(now)
            if overdue and handle.term_sent_at is None:
                for job in overdue:
                    handle.timed_out.add(job.job_id)
                    log.warning(
                        "job %d ran past its timeout of %gs; stopping worker %d (pid %s)",
                        job.job_id,
                        job.timeout or 0,
                        handle.index,
                        handle.pid,
                        extra={"event": "job.timeout", "job_id": job.job_id, "worker": handle.index},
                    )
                self._terminate(handle, now, "job timeout")
            if (
                handle.term_sent_at is not None
                and not handle.killed
                and now >= handle.term_sent_at + KILL_AFTER
            ):
                self._kill(handle, signal.SIGKILL)
                handle.killed = True

    def _terminate(self, handle: WorkerHandle, now: float, reason: str) -> None:
        handle.term_sent_at = now
        if self.hard_stop:
            self._kill(handle, signal.SIGKILL)
            handle.killed = True
        else:
            self._kill(handle, processes.EXIT_NOW)

    @staticmethod
    def _kill(handle: WorkerHandle, sig: int) -> None:
        if handle.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(handle.pid, sig)
