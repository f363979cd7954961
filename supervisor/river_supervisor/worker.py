"""The worker process: fetch jobs, run their handlers in threads, record outcomes in batches.

How a worker runs several jobs at once: one process runs up to its share of each queue's
``concurrency`` in threads. Handlers are mostly I/O-bound (HTTP, SQL, subprocesses), where threads
reach the configured concurrency at a fraction of a process's memory; CPU-bound work scales with
``processes`` instead. The parent splits each queue's concurrency between its processes.

Child contract (gunicorn's): ``main`` runs after the start, never before. It has the supervisor
adopt it (``processes.adopt_worker``: its own process group, the supervisor as its parent, the
parent-death signal armed, its title), resets signal handlers, opens its own Sentry client and
database connections (nothing crosses the fork), loads the plugins (already imported by the
forkserver preload, so this is cheap), then loops:

    wait (insert notification | half a queue's slots free, or all | poll interval | parent message)
    -> fetch as many jobs as there are free slots, per queue not paused, in one statement each
    -> tell the parent which jobs (and kinds) it now holds: it enforces their timeouts (it loaded
       the same plugins) and records their fate after a crash
    -> hand them to the job threads (one per slot, started at boot, fed by one SimpleQueue)
    -> ``executor.run`` -> outcome to the completer -> batched write -> tell the parent.

The fetch connection is a ``notifier.Listener`` (LISTEN on ``river_insert`` and ``river_control``,
reconnect with backoff); the worker fetches on it, so no insert between a LISTEN and a fetch is
missed. Signals (``processes.WorkerSignals``): SIGTERM drains (stop fetching, let running jobs
finish, exit), the same as the parent's "stop" message; ``processes.EXIT_NOW`` means "exit now":
the parent sends it when a job ran past its timeout or the grace period is over, and it is the
parent-death signal. A worker whose parent is gone puts its jobs back and ends its process group.

Owns: the worker's loop. May import: the queue core, ``notifier``, ``executor``, ``crons``,
``processes``, ``alerts``; never leadership. Preloaded by the forkserver: importing it has no
side effects.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import queue as queue_module
import select
import threading
import time
from collections.abc import Mapping
from typing import Any

from . import alerts, db, discovery, executor, joblog, plugins, processes, queue, queues
from .backoff import service_backoff
from .crons import CronCheckins
from .errors import first_line
from .job_stats import JobStats
from .notifier import Listener, river_channels
from .processes import EXIT_BOOT_ERROR, EXIT_OK, EXIT_ORPHANED, Stop, WorkerSignals
from .worker_spec import WorkerSpec

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 2.0
RECONNECT_CAP = 5.0  # a worker retries a lost database at least this often (jobs flow 5 s after)
CALL_TIMEOUT = 10.0  # seconds a fetch may wait for a database that answers nothing (SILENT_AFTER is 30)


class _ConnectionReports:
    """The worker's own words for its fetch connection lost and back (``notifier.Reports``)."""

    def __init__(self, index: int) -> None:
        self.index = index

    def lost(self, attempt: int, delay: float, exc: BaseException) -> None:
        message = "worker %d: database connection lost (attempt %d): %s; retrying in %.1fs"
        extra = {"event": "worker.connection_lost", "worker": self.index}
        log.warning(message, self.index, attempt, first_line(exc), delay, extra=extra)

    def back(self, attempts: int) -> None:
        extra = {"event": "worker.reconnected", "worker": self.index}
        log.info("worker %d: database back after %d failed attempts", self.index, attempts, extra=extra)


class Worker:
    def __init__(self, spec: WorkerSpec, pipe: Any, *, adopted: bool = False, in_handler: Any = None) -> None:
        self.spec = spec
        # Shared with the parent: slot i holds the id of the job thread i is running a handler for
        # (0: none). After a crash the parent reads it to tell the jobs that were running (suspects,
        # charged an attempt) from those only fetched or already finished (put back, uncharged).
        self.in_handler = in_handler if in_handler is not None else [0] * sum(n for _, n in spec.queues)
        self.adopted = adopted  # the supervisor is our parent (see processes.detach)
        self.leaving = False  # orphaned: outcomes from now on are not written (the jobs go back)
        self.pipe = pipe
        self._pipe_lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.signals = WorkerSignals(self._wake_w)  # and the parent's "stop": one stop level
        self._lock = threading.Lock()
        self._running: dict[str, int] = {name: 0 for name, _ in spec.queues}
        self._held: dict[int, plugins.Job] = {}
        self._limits = dict(spec.queues)
        self.pauses = queues.WorkerPauses(self._limits, spec.index)  # paused queues are not fetched
        # A freed slot wakes the main loop only when the queue's free slots reach this many (half
        # its share), or when the queue goes idle: one fetch and one wake-up per batch, not per job.
        # Notifications and the poll still fetch into any free slot at once.
        self._wake_at = {name: max(1, limit // 2) for name, limit in spec.queues}
        self.handlers: Mapping[str, Any] = {}
        self._kinds: list[str] = []
        # The fetch connection, LISTENing: a name of its own, so after a crash the parent ends this
        # backend before it looks for the jobs the worker held (a fetch in flight cannot commit
        # behind its back). Its backoff restarts only after a good fetch (a connect alone may meet
        # a read-only database); a frozen database must not silence the heartbeat for long.
        self.listener = Listener(
            spec.database_url,
            river_channels(queue.TOPIC_INSERT, queue.TOPIC_CONTROL),
            application_name=spec.backend_name,
            backoff=lambda attempt: service_backoff(attempt, cap=RECONNECT_CAP),
            connect_timeout=db.DEFAULT_CONNECT_TIMEOUT,
            call_timeout=CALL_TIMEOUT,
            confirm=True,
            reports=_ConnectionReports(spec.index),
        )
        self.completer: Any = None
        # Jobs to run, taken by the job threads (as many as the shares add up to, started at boot).
        self._jobs: queue_module.SimpleQueue[tuple[plugins.Job, int]] = queue_module.SimpleQueue()
        self._context = plugins.JobContext(  # one for all jobs: it is frozen
            database_url=spec.database_url, node=spec.node, cluster=spec.cluster, worker_id=spec.worker_id
        )
        self.job_threads: list[threading.Thread] = []
        self._crons = CronCheckins(spec.monitors)
        self.stats = JobStats()  # sent to the parent with each "done" message, for its metrics

    @property
    def conn(self) -> Any:
        """The fetch connection (``None`` while the database is away)."""
        return self.listener.connection

    def send(self, *message: Any) -> None:
        # Messages are plain data: the C pickler writes them ~70 times faster than the pipe's own
        # (dill, pure Python), and the parent's recv() reads them all the same.
        data = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
        with self._pipe_lock, contextlib.suppress(OSError, ValueError):
            self.pipe.send_bytes(data)

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"w")

    # set-up
    def boot(self) -> None:
        self.signals.install()
        plugin_set = discovery.discover(self.spec.plugins)
        self.handlers = plugin_set.handlers
        self._kinds = sorted(self.handlers)  # fetch only what a handler here can run
        try:  # LISTEN before any fetch reads the queue; a database down at boot is retried in the loop
            self.listener.connect()
        except db.TRANSIENT as exc:
            self.listener.lost(exc)
        self.completer = queue.Completer(self.spec.database_url, on_flushed=self._on_flushed)
        self.completer.start()
        for number in range(sum(limit for _, limit in self.spec.queues) or 1):
            thread = threading.Thread(
                target=self._job_thread, args=(number,), name=f"job_{number}", daemon=True
            )
            thread.start()
            self.job_threads.append(thread)

    def _on_flushed(self, job_ids: list[int]) -> None:
        with self._lock:
            for job_id in job_ids:
                self._held.pop(job_id, None)
        self.send("done", job_ids, self.stats.take())

    # main loop
    def run(self) -> None:
        self.send("ready", os.getpid())
        next_poll = next_heartbeat = 0.0
        fetch_due = True
        while True:
            stop = self.signals.stop
            if stop is Stop.NOW:
                raise SystemExit(self._terminate())
            if stop is Stop.DRAIN:
                self._check_parent()  # SIGTERM: the parent-death signal of another platform, perhaps
            now = time.monotonic()
            if now >= next_heartbeat:
                self._check_parent()
                self.send("heartbeat")
                next_heartbeat = now + HEARTBEAT_INTERVAL
            if now >= next_poll:
                fetch_due = True
                next_poll = now + self.spec.poll_interval
            if now >= self.pauses.next_poll and self.conn is not None:
                fetch_due = self._guarded(lambda: self.pauses.poll(self.conn)) or fetch_due
            if fetch_due and stop is Stop.RUN and self.conn is not None and self._guarded(self._fetch_all):
                fetch_due = False
            if stop is Stop.DRAIN and self._idle():
                self.completer.close()
                self.send("stopped")
                return
            wake_at = min(next_poll, next_heartbeat, self.listener.next_deadline())
            if self.conn is not None:
                wake_at = min(wake_at, self.pauses.next_poll)
            fetch_due = self._wait(max(0.0, wake_at - time.monotonic())) or fetch_due

    def _guarded(self, call: Any) -> bool:
        """``call()`` on the fetch connection; a lost database is the listener's to retry (False)."""
        try:
            return bool(call())
        except db.TRANSIENT as exc:
            self.listener.lost(exc)
            return False

    def _wait(self, timeout: float) -> bool:
        """Sleep until something happens; True when a fetch may find work."""
        watched = [self._wake_r, self.pipe.fileno()]
        fd = self.listener.fileno()
        if fd is not None:
            watched.append(fd)
        readable, _, _ = select.select(watched, [], [], timeout)
        wake = False
        if self._wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                while os.read(self._wake_r, 512):
                    pass
            wake = True
        if self.pipe.fileno() in readable:
            self._read_parent()
        batch = self.listener.poll()  # reconnects (and LISTENs again) when due
        if batch.reconnected:
            self.pauses.next_poll = 0.0  # re-read the pauses, then the queue
            wake = True
        for note in batch.notifications:
            wake = self._on_notification(note.channel, note.payload) or wake
        return wake

    def _read_parent(self) -> None:
        while self.pipe.poll():
            try:
                message = self.pipe.recv()
            except (EOFError, OSError):  # the parent is gone
                self._check_parent(force=True)
                return
            if message and message[0] == "stop":
                self.signals.request(Stop.DRAIN)

    def _on_notification(self, channel: str, payload: str) -> bool:
        try:
            body = json.loads(payload)
        except ValueError:
            return False
        if channel.endswith("." + queue.TOPIC_INSERT):
            return body.get("queue") in self._limits
        if channel.endswith("." + queue.TOPIC_CONTROL) and body.get("action") == "cancel":
            with self._lock:
                job = self._held.get(body.get("job_id"))
            if job is not None:
                job.request_cancel()
        elif channel.endswith("." + queue.TOPIC_CONTROL) and (control := queues.control_message(body)):
            return self.pauses.on_control(*control)
        return False

    def _idle(self) -> bool:
        with self._lock:
            return not any(self._running.values()) and not self._held

    def _fetch_all(self) -> bool:
        """Fetch into every free slot of the queues not paused; True once done (the database works)."""
        for name, limit in self.spec.queues:
            with self._lock:
                free = limit - self._running[name]
            if free <= 0 or name in self.pauses:
                continue
            rows = queue.fetch_for_work(self.conn, name, free, self.spec.worker_id, self._kinds)
            if not rows:
                continue
            jobs = executor.decode(rows, self._context)
            with self._lock:
                self._running[name] += len(jobs)
                held = self._held
                for job, _ in jobs:
                    held[job.id] = job
            self.send("fetched", [(job.id, job.kind) for job, _ in jobs])  # the parent times them
            put = self._jobs.put
            for item in jobs:
                put(item)
        self.listener.confirm()  # a fetch succeeded: the database is back, if it was away
        return True

    def _job_thread(self, number: int) -> None:
        """One job thread: run jobs as they come, one at a time, until the process exits."""
        get = self._jobs.get
        while True:
            job, errors_count = get()
            try:
                self._run_one(job, errors_count, number)
            except Exception:  # the thread lives on; once told to exit the completer is closed, say nothing
                if not (self.signals.stop is Stop.NOW or self.leaving):
                    log.exception(
                        "job %d: recording its outcome failed", job.id, extra={"event": "worker.job_failed"}
                    )

    def _run_one(self, job: plugins.Job, errors_count: int, number: int = 0) -> None:
        started = time.monotonic()
        check_in = self._crons.start(job)
        slots = self.in_handler
        if number < len(slots):
            slots[number] = job.id
        ran = executor.run(job, executor.handler_of(self.handlers, job.kind), errors_count)
        if number < len(slots):
            slots[number] = 0
        took = time.monotonic() - started
        outcome = ran.outcome
        if ran.failure is not None:
            alerts.job_error(job, ran.failure)
        self._crons.finish(check_in, outcome, took)
        # Counted before it is submitted, so the "done" message that reports the job carries it.
        self.stats.record(job.kind, job.queue, queue.outcome_name(outcome), took)
        joblog.job_finished(job, outcome, took)
        with self._lock:
            if self.leaving:  # orphaned: the job goes back with the others, nothing to write
                return
            self.completer.submit(outcome)
        name = job.queue
        with self._lock:
            running = self._running[name] - 1
            self._running[name] = running
        if running == 0 or self._limits[name] - running == self._wake_at[name]:
            self.wake()

    # leaving
    def _check_parent(self, force: bool = False) -> None:
        if force or not processes.parent_alive(self.spec.parent_pid, self.adopted):
            log.warning(
                "supervisor %d is gone; worker %d puts its jobs back and exits",
                self.spec.parent_pid,
                self.spec.index,
                extra={"event": "worker.orphaned", "worker": self.spec.index},
            )
            self._put_back_held()
            alerts.flush(1.0)
            # End the whole group: what our jobs started must not outlive us (nor do we wait on
            # job threads still running: their jobs were just put back).
            processes.end_own_group()
            os._exit(EXIT_ORPHANED)

    def _put_back_held(self) -> None:
        """Write the outcomes already finished, then put every job still held back, unattempted."""
        with self._lock:
            self.leaving = True  # from here on job threads submit nothing (see _run_one)
        with contextlib.suppress(Exception):
            self.completer.close(timeout=1.0)
        with self._lock:
            held = list(self._held)
        if held:
            with contextlib.suppress(Exception):
                conn = self.conn or db.connect(
                    self.spec.database_url, application_name=self.spec.backend_name
                )
                queue.record_outcomes(conn, [queue.Interrupted(job_id=i) for i in held])

    def _terminate(self) -> int:
        """Exit now: flush finished outcomes; the parent decides the fate of running jobs."""
        self._check_parent()
        with contextlib.suppress(Exception):
            self.completer.close(timeout=2.0)
        return EXIT_OK


def main(spec: WorkerSpec, pipe: Any, in_handler: Any = None) -> None:
    """Entry point in the child process (the forkserver calls this)."""

    def report_pid(pid: int) -> None:
        pipe.send_bytes(pickle.dumps(("pid", pid), pickle.HIGHEST_PROTOCOL))

    title = f"river-supervisor: worker {spec.index} [{spec.cluster}/{spec.node}]"
    adopted = processes.adopt_worker(report_pid, spec.parent_pid, title)
    from .logs import install

    install(level=spec.log_level, fmt=spec.log_format)
    alerts.init(spec.sentry, role="worker", cluster=spec.cluster, node=spec.node, secrets=[spec.database_url])
    worker = Worker(spec, pipe, adopted=adopted, in_handler=in_handler)
    try:
        worker.boot()
    except Exception as exc:  # cannot boot: say why in one line; the parent backs off
        log.error(
            "worker %d cannot start: %s",
            spec.index,
            exc,
            extra={"event": "worker.boot_failed", "worker": spec.index},
        )
        worker.send("boot_error", str(exc))
        alerts.flush(2.0)
        os._exit(EXIT_BOOT_ERROR)
    code = EXIT_OK
    try:
        worker.run()
    except SystemExit as exc:
        code = int(exc.code or 0)
    except Exception:
        log.exception("worker %d failed", spec.index, extra={"event": "worker.crashed"})
        code = 1
    alerts.flush(2.0)
    os._exit(code)  # job threads may still run (abandoned on "exit now"): do not wait for them
