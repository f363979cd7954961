"""The worker process: fetch jobs, run their handlers in threads, record outcomes in batches.

How a worker runs several jobs at once: one process runs up to its share of each queue's
``concurrency`` in threads. Handlers are mostly I/O-bound (HTTP, SQL, subprocesses), where threads
reach the configured concurrency at a fraction of a process's memory; CPU-bound work scales with
``processes`` instead. The parent splits each queue's concurrency between its processes.

Child contract (gunicorn's): ``main`` runs after the start, never before. It has the supervisor
adopt it (``processes.detach``: its own process group, the supervisor as its parent, the
parent-death signal armed), names the process, resets signal handlers, opens its own Sentry client
and database connections (nothing crosses the fork), loads the plugins (already imported by the
forkserver preload, so this is cheap), then loops:

    wait (insert notification | half a queue's slots free, or all | poll interval | parent message)
    -> fetch as many jobs as there are free slots, per queue not paused, in one statement each
    -> tell the parent which jobs it now holds (so it can enforce timeouts and record a crash)
    -> hand them to the job threads (one per slot, started at boot, fed by one SimpleQueue)
    -> outcome to the completer -> batched write -> tell the parent.

Signals: SIGTERM drains (stop fetching, let running jobs finish, exit), the same as the parent's
"stop" message, so a SIGTERM sent to every process (systemd's control-group stop) still stops
gracefully: the parent decides how long the drain may last. SIGUSR1 means "exit now": the parent
sends it when a job ran past its timeout or the grace period is over, and it is the parent-death
signal. A worker whose parent is gone puts its jobs back and ends its process group.

This module is preloaded by the forkserver: importing it has no side effects.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import queue as queue_module
import select
import signal
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import alerts, db, discovery, joblog, plugins, processes, queue, queues
from .backoff import service_backoff
from .config import PluginsConfig, SentryConfig
from .errors import first_line
from .job_stats import JobStats
from .processes import set_title

log = logging.getLogger(__name__)

# Exit codes, for the log: the parent classifies an exit by whether the worker had said "ready",
# never by a code alone (a job's os._exit(3) can produce any of these).
EXIT_OK = 0
EXIT_BOOT_ERROR = 3
EXIT_ORPHANED = 4

HEARTBEAT_INTERVAL = 2.0
OUTPUT_LIMIT = 1024 * 1024  # a handler's JSON result above this is not kept in the row
RECONNECT_CAP = 5.0  # a worker retries a lost database at least this often (jobs flow 5 s after)
CALL_TIMEOUT = 10.0  # seconds a fetch may wait for a database that answers nothing (SILENT_AFTER is 30)
# What a lost or restarting database raises: reconnect with backoff, never exit for it.
EXIT_NOW = signal.SIGUSR1  # the parent's "exit now", and the parent-death signal


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """Everything a worker needs, picklable: plain data only crosses into the child."""

    index: int
    worker_id: str  # written to attempted_by
    database_url: str
    cluster: str
    node: str
    queues: tuple[tuple[str, int], ...]  # (queue, concurrency share of this process)
    poll_interval: float
    job_timeout: float  # default; 0 means none
    plugins: PluginsConfig
    sentry: SentryConfig
    parent_pid: int
    backend_name: str = "river-supervisor worker"  # application_name, unique per worker process
    log_level: str = "INFO"
    log_format: str = "text"
    # Sentry Crons: periodic id -> (monitor slug, monitor_config), for schedules with monitor = true
    monitors: tuple[tuple[str, str, dict[str, Any]], ...] = field(default=())


# --- process set-up ----------------------------------------------------------------------------


class _Signals:
    """Signal handlers only set flags and poke the wakeup pipe (gunicorn's rule)."""

    def __init__(self, wake_fd: int) -> None:
        self.terminate = False  # exit now
        self.drain = False  # stop fetching, finish the running jobs, exit
        self._wake_fd = wake_fd

    def install(self) -> None:
        signal.signal(EXIT_NOW, self._on_exit_now)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; Ctrl-C hits its group
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the parent reloads; a worker is replaced
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)

    def _on_exit_now(self, signum: int, frame: object) -> None:
        self.terminate = True
        self._wake()

    def _on_term(self, signum: int, frame: object) -> None:
        self.drain = True
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_fd, b"t")


# --- running one job ---------------------------------------------------------------------------


def _job_timeout(options: Any, default: float) -> float | None:
    timeout = getattr(options, "timeout", None)
    if timeout is None:
        timeout = default
    return timeout if timeout and timeout > 0 else None


def _error_text(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def execute(
    job: plugins.Job, handler: Callable[[plugins.Job], Any] | None, errors_count: int = 0
) -> tuple[Any, BaseException | None]:
    """Run one handler; return its queue outcome and the exception if it failed (never raises).

    ``errors_count`` is the number of errors already on the job's row (the retry backoff grows with it).
    """
    if handler is None:
        failed = queue.Failed(
            job_id=job.id,
            attempt=job.attempt,
            max_attempts=job.max_attempts,
            error=f"job kind {job.kind!r} is not registered by any plugin on this host",
            errors_count=errors_count,
        )
        return failed, None
    try:
        result = plugins.call_handler(handler, job)
    except plugins.JobSnooze as exc:
        return queue.Snoozed(job_id=job.id, seconds=float(exc.seconds)), None
    except plugins.JobCancel as exc:
        return queue.Cancelled(job_id=job.id, attempt=job.attempt, error=_error_text(exc)), None
    except BaseException as exc:  # any failure of user code ends in the job row
        failed = queue.Failed(
            job_id=job.id,
            attempt=job.attempt,
            max_attempts=job.max_attempts,
            error=_error_text(exc),
            trace=traceback.format_exc(),
            errors_count=errors_count,
        )
        return failed, exc
    return queue.Completed(job_id=job.id, output=_output(job, result)), None


def _output(job: plugins.Job, result: Any) -> str | None:
    """A handler's return value as JSON text for the row's metadata "output" (None: nothing)."""
    if result is None:
        return None
    try:
        text = json.dumps(result, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        log.warning(
            "job %d (%s): its result is not JSON (%s); not recorded",
            job.id,
            job.kind,
            exc,
            extra={"event": "job.output_dropped", "job_id": job.id},
        )
        return None
    if len(text) > OUTPUT_LIMIT:
        log.warning(
            "job %d (%s): its result is %d bytes of JSON, over %d; not recorded",
            job.id,
            job.kind,
            len(text),
            OUTPUT_LIMIT,
            extra={"event": "job.output_dropped", "job_id": job.id},
        )
        return None
    return text


# --- the worker --------------------------------------------------------------------------------


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
        self.signals = _Signals(self._wake_w)
        self.stopping = False
        self._lock = threading.Lock()
        self._running: dict[str, int] = {name: 0 for name, _ in spec.queues}
        self._held: dict[int, plugins.Job] = {}
        self._limits = dict(spec.queues)
        # Queues paused in river_queue: not fetched. Set by river_control notifications at once,
        # and re-read every queues.POLL_INTERVAL (River's queue poll) in case one was missed.
        self._paused: set[str] = set()
        self._next_pause_poll = 0.0
        # A freed slot wakes the main loop only when the queue's free slots reach this many (half
        # its share), or when the queue goes idle: one fetch and one wake-up per batch, not per job.
        # Notifications and the poll still fetch into any free slot at once.
        self._wake_at = {name: max(1, limit // 2) for name, limit in spec.queues}
        self.handlers: Mapping[str, Any] = {}
        self._kinds: list[str] = []
        self.conn: Any = None
        self.completer: Any = None
        # Jobs to run, taken by the job threads (as many as the shares add up to, started at boot).
        self._jobs: queue_module.SimpleQueue[tuple[plugins.Job, int]] = queue_module.SimpleQueue()
        self._timeouts: dict[str, float | None] = {}  # per kind, for the parent's "fetched" message
        self._context = plugins.JobContext(  # one for all jobs: it is frozen
            database_url=spec.database_url, node=spec.node, cluster=spec.cluster, worker_id=spec.worker_id
        )
        self.job_threads: list[threading.Thread] = []
        self._connect_attempts = 0
        self._reconnect_at = 0.0
        self._monitors = {pid: (slug, cfg) for pid, slug, cfg in spec.monitors}
        self.stats = JobStats()  # sent to the parent with each "done" message, for its metrics

    # parent channel
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
        self._connect()  # a database down at boot is retried in the loop (see _reconnect_if_due)
        self.completer = queue.Completer(self.spec.database_url, on_flushed=self._on_flushed)
        self.completer.start()
        total = sum(limit for _, limit in self.spec.queues) or 1
        for number in range(total):
            thread = threading.Thread(
                target=self._job_thread, args=(number,), name=f"job_{number}", daemon=True
            )
            thread.start()
            self.job_threads.append(thread)

    # the fetch connection
    def _connect(self) -> None:
        """Open the fetch connection and LISTEN on it, before any fetch reads the queue (so no
        insert notification between the two is lost). On failure, schedule a retry."""
        try:
            # A name of its own: after a crash the parent ends this backend before it looks for the
            # jobs the worker held, so a fetch still in flight cannot commit behind its back.
            conn = db.connect(
                self.spec.database_url,
                application_name=self.spec.backend_name,
                call_timeout=CALL_TIMEOUT,  # a frozen database must not silence the heartbeat for long
            )
            conn.execute("LISTEN " + _quote_channel(conn, queue.TOPIC_INSERT))
            conn.execute("LISTEN " + _quote_channel(conn, queue.TOPIC_CONTROL))
        except db.TRANSIENT as exc:
            self._connection_failed(exc)
            return
        self.conn = conn

    def _fetched(self) -> None:
        """A fetch succeeded: the database is back (a connect alone may meet a read-only one)."""
        if self._connect_attempts:
            log.info(
                "worker %d: database back after %d failed attempts",
                self.spec.index,
                self._connect_attempts,
                extra={"event": "worker.reconnected", "worker": self.spec.index},
            )
        self._connect_attempts = 0

    def _connection_failed(self, exc: BaseException) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
        self.conn = None
        self._connect_attempts += 1
        delay = service_backoff(self._connect_attempts, cap=RECONNECT_CAP)
        self._reconnect_at = time.monotonic() + delay
        reason = first_line(exc)
        log.warning(
            "worker %d: database connection lost (attempt %d): %s; retrying in %.1fs",
            self.spec.index,
            self._connect_attempts,
            reason,
            delay,
            extra={"event": "worker.connection_lost", "worker": self.spec.index},
        )

    def _on_flushed(self, job_ids: list[int]) -> None:
        with self._lock:
            for job_id in job_ids:
                self._held.pop(job_id, None)
        self.send("done", job_ids, self.stats.take())

    # main loop
    def run(self) -> None:
        self.send("ready", os.getpid())
        next_poll = 0.0
        next_heartbeat = 0.0
        fetch_due = True
        while True:
            if self.signals.terminate:
                raise SystemExit(self._terminate())
            if self.signals.drain and not self.stopping:
                self._check_parent()  # the parent-death signal of another platform, perhaps
                self.stopping = True
            now = time.monotonic()
            if now >= next_heartbeat:
                self._check_parent()
                self.send("heartbeat")
                next_heartbeat = now + HEARTBEAT_INTERVAL
            if now >= next_poll:
                fetch_due = True
                next_poll = now + self.spec.poll_interval
            if self.conn is None and now >= self._reconnect_at:
                self._connect()
                fetch_due = True  # re-read the queue after LISTENing again
                self._next_pause_poll = now  # and the pauses
            if now >= self._next_pause_poll and self.conn is not None:
                try:
                    fetch_due = self._poll_pauses() or fetch_due
                except db.TRANSIENT as exc:
                    self._connection_failed(exc)
            if fetch_due and not self.stopping and self.conn is not None:
                try:
                    self._fetch_all()
                    fetch_due = False
                    if self._connect_attempts:
                        self._fetched()
                except db.TRANSIENT as exc:
                    self._connection_failed(exc)
            if self.stopping and self._idle():
                self.completer.close()
                self.send("stopped")
                return
            wake_at = min(next_poll, next_heartbeat)
            if self.conn is None:
                wake_at = min(wake_at, self._reconnect_at)
            else:
                wake_at = min(wake_at, self._next_pause_poll)
            fetch_due = self._wait(max(0.0, wake_at - time.monotonic())) or fetch_due

    def _wait(self, timeout: float) -> bool:
        """Sleep until something happens; True when a fetch may find work."""
        watched = [self._wake_r, self.pipe.fileno()]
        if self.conn is not None:
            watched.append(self.conn.fileno())
        readable, _, _ = select.select(watched, [], [], timeout)
        wake = False
        if self._wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                while os.read(self._wake_r, 512):
                    pass
            wake = True
        if self.pipe.fileno() in readable:
            self._read_parent()
        if self.conn is None:
            return wake
        try:
            for note in self.conn.notifies(timeout=0):
                wake = self._on_notification(note.channel, note.payload) or wake
        except db.TRANSIENT as exc:
            self._connection_failed(exc)
        return wake

    def _read_parent(self) -> None:
        while self.pipe.poll():
            try:
                message = self.pipe.recv()
            except (EOFError, OSError):  # the parent is gone
                self._check_parent(force=True)
                return
            if message and message[0] == "stop":
                self.stopping = True

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
            action, name = control
            named = set(self._limits) if name == queues.ALL else {name} & set(self._limits)
            paused = self._paused | named if action == "pause" else self._paused - named
            return self._set_paused(paused, "notification")
        return False

    def _poll_pauses(self) -> bool:
        """Re-read which of our queues are paused (the backstop); True when one was resumed."""
        self._next_pause_poll = time.monotonic() + queues.POLL_INTERVAL
        return self._set_paused(queues.paused_among(self.conn, list(self._limits)), "poll")

    def _set_paused(self, paused: set[str], how: str) -> bool:
        """Take ``paused`` as the paused set; log each change; True when a queue was resumed."""
        for name in sorted(paused - self._paused):
            log.info(
                "queue %s paused: worker %d stops fetching it (running jobs finish)",
                name,
                self.spec.index,
                extra={"event": "worker.queue_paused", "worker": self.spec.index, "queue": name, "via": how},
            )
        resumed = self._paused - paused
        for name in sorted(resumed):
            log.info(
                "queue %s resumed: worker %d fetches it again",
                name,
                self.spec.index,
                extra={"event": "worker.queue_resumed", "worker": self.spec.index, "queue": name, "via": how},
            )
        self._paused = paused
        return bool(resumed)

    def _idle(self) -> bool:
        with self._lock:
            return not any(self._running.values()) and not self._held

    def _fetch_all(self) -> None:
        for name, limit in self.spec.queues:
            with self._lock:
                free = limit - self._running[name]
            if free <= 0 or name in self._paused:
                continue
            rows = queue.fetch_for_work(self.conn, name, free, self.spec.worker_id, self._kinds)
            if not rows:
                continue
            jobs = self._make_jobs(rows)
            with self._lock:
                self._running[name] += len(jobs)
                held = self._held
                for job, _ in jobs:
                    held[job.id] = job
            timeouts = self._timeouts
            timeout_for = self._timeout_for
            self.send(
                "fetched",
                [
                    (job.id, timeouts[job.kind] if job.kind in timeouts else timeout_for(job.kind))
                    for job, _ in jobs
                ],
            )
            put = self._jobs.put
            for item in jobs:
                put(item)

    def _timeout_for(self, kind: str) -> float | None:
        entry = self.handlers.get(kind)
        timeout = self._timeouts[kind] = _job_timeout(entry.options if entry else None, self.spec.job_timeout)
        return timeout

    def _make_jobs(self, rows: list[tuple[Any, ...]]) -> list[tuple[plugins.Job, int]]:
        """``(Job, errors already on the row)`` from ``queue.fetch_for_work`` rows."""
        job = plugins.Job
        loads = json.loads
        context = self._context
        return [
            (
                job(
                    id=job_id,
                    kind=kind,
                    args=loads(args) if args is not None else {},
                    attempt=attempt,
                    max_attempts=max_attempts,
                    queue=queue_name,
                    metadata=loads(metadata) if metadata is not None and metadata != "{}" else {},
                    scheduled_at=scheduled_at,
                    tags=tuple(tags) if tags else (),
                    priority=priority,
                    context=context,
                ),
                errors_count,
            )
            for (
                job_id,
                kind,
                args,
                queue_name,
                priority,
                attempt,
                max_attempts,
                metadata,
                scheduled_at,
                tags,
                errors_count,
            ) in rows
        ]

    def _job_thread(self, number: int) -> None:
        """One job thread: run jobs as they come, one at a time, until the process exits."""
        get = self._jobs.get
        while True:
            job, errors_count = get()
            try:
                self._run_one(job, errors_count, number)
            except Exception:  # the thread lives on; once told to exit the completer is closed, say nothing
                if not (self.signals.terminate or self.leaving):
                    log.exception(
                        "job %d: recording its outcome failed", job.id, extra={"event": "worker.job_failed"}
                    )

    def _run_one(self, job: plugins.Job, errors_count: int, number: int = 0) -> None:
        entry = self.handlers.get(job.kind)
        monitor = (
            self._monitors.get(str(job.metadata.get("river:periodic_job_id"))) if self._monitors else None
        )
        started = time.monotonic()
        check_in = alerts.checkin(monitor[0], "in_progress", monitor[1]) if monitor else None
        slots = self.in_handler
        if number < len(slots):
            slots[number] = job.id
        outcome, exc = execute(job, entry.handler if entry else None, errors_count)
        if number < len(slots):
            slots[number] = 0
        took = time.monotonic() - started
        if exc is not None:
            alerts.job_error(job, exc)
        if monitor and not isinstance(outcome, queue.Snoozed):
            status = "ok" if isinstance(outcome, queue.Completed) else "error"
            alerts.checkin(monitor[0], status, monitor[1], check_in, took)
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
    def _parent_alive(self) -> bool:
        if self.adopted:  # the supervisor is our parent: its death re-parents us
            return os.getppid() == self.spec.parent_pid
        try:  # not adopted (another platform): ask by pid; the pipe's EOF tells as well
            os.kill(self.spec.parent_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _check_parent(self, force: bool = False) -> None:
        if force or not self._parent_alive():
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
        if not self._parent_alive():
            self._check_parent(force=True)
        with contextlib.suppress(Exception):
            self.completer.close(timeout=2.0)
        return EXIT_OK


def _quote_channel(conn: Any, topic: str) -> str:
    from psycopg import sql

    schema = conn.execute("SELECT current_schema() AS s").fetchone()["s"]
    return sql.Identifier(queue.channel(topic, schema)).as_string(conn)


def main(spec: WorkerSpec, pipe: Any, in_handler: Any = None) -> None:
    """Entry point in the child process (the forkserver calls this)."""

    def report_pid(pid: int) -> None:
        pipe.send_bytes(pickle.dumps(("pid", pid), pickle.HIGHEST_PROTOCOL))

    adopted = processes.detach(report_pid, spec.parent_pid, EXIT_NOW)
    if not adopted:
        try:  # not adopted (another platform, or the supervisor died meanwhile): is it there?
            os.kill(spec.parent_pid, 0)
        except ProcessLookupError:
            os._exit(EXIT_ORPHANED)
    set_title(f"river-supervisor: worker {spec.index} [{spec.cluster}/{spec.node}]")
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
