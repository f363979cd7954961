"""The worker process: fetch jobs, run their handlers in threads, record outcomes in batches.

How a worker runs several jobs at once: one process runs up to its share of each queue's
``concurrency`` in threads. Handlers are mostly I/O-bound (HTTP, SQL, subprocesses), where threads
reach the configured concurrency at a fraction of a process's memory; CPU-bound work scales with
``processes`` instead. The parent splits each queue's concurrency between its processes.

Child contract (gunicorn's): ``main`` runs after the start, never before. It sets the parent-death
signal and re-checks the parent, names the process, resets signal handlers, opens its own Sentry
client and database connections (nothing crosses the fork), loads the plugins (already imported
by the forkserver preload, so this is cheap), then loops:

    wait (insert notification | a slot freed | poll interval | parent message)
    -> fetch as many jobs as there are free slots, per queue, in one statement each
    -> tell the parent which jobs it now holds (so it can enforce timeouts and record a crash)
    -> run each in a thread -> outcome to the completer -> batched write -> tell the parent.

This module is preloaded by the forkserver: importing it has no side effects.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import select
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from . import alerts, db, discovery, plugins, queue
from .config import PluginsConfig, SentryConfig

log = logging.getLogger(__name__)

# Exit codes the parent reads (gunicorn's idea): a worker that cannot boot is not restarted in a
# tight loop; one that lost its parent exits quietly.
EXIT_OK = 0
EXIT_BOOT_ERROR = 3
EXIT_ORPHANED = 4

HEARTBEAT_INTERVAL = 2.0
PR_SET_PDEATHSIG = 1


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
    log_level: str = "INFO"
    log_format: str = "text"
    # Sentry Crons: periodic id -> (monitor slug, monitor_config), for schedules with monitor = true
    monitors: tuple[tuple[str, str, dict[str, Any]], ...] = field(default=())


# --- process set-up ----------------------------------------------------------------------------


def set_parent_death_signal(sig: int = signal.SIGTERM) -> None:
    """Ask Linux to signal us when the parent dies; elsewhere the heartbeat loop checks getppid()."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)


def set_title(title: str) -> None:
    try:
        import setproctitle
    except ImportError:  # an optional nicety; never a reason not to run
        return
    setproctitle.setproctitle(title)


class _Signals:
    """Signal handlers only set flags and poke the wakeup pipe (gunicorn's rule)."""

    def __init__(self, wake_fd: int) -> None:
        self.terminate = False
        self._wake_fd = wake_fd

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; Ctrl-C hits the group
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)

    def _on_term(self, signum: int, frame: object) -> None:
        self.terminate = True
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
    row: queue.JobRow, handler: Callable[[plugins.Job], Any] | None, job: plugins.Job
) -> tuple[Any, BaseException | None]:
    """Run one handler; return its queue outcome and the exception if it failed (never raises)."""
    if handler is None:
        failed = queue.Failed(
            job_id=row.id,
            attempt=row.attempt,
            max_attempts=row.max_attempts,
            error=f"job kind {row.kind!r} is not registered by any plugin on this host",
            errors_count=len(row.errors),
        )
        return failed, None
    try:
        plugins.call_handler(handler, job)
    except plugins.JobSnooze as exc:
        return queue.Snoozed(job_id=row.id, seconds=float(exc.seconds)), None
    except plugins.JobCancel as exc:
        return queue.Cancelled(job_id=row.id, attempt=row.attempt, error=_error_text(exc)), None
    except BaseException as exc:  # any failure of user code ends in the job row
        failed = queue.Failed(
            job_id=row.id,
            attempt=row.attempt,
            max_attempts=row.max_attempts,
            error=_error_text(exc),
            trace=traceback.format_exc(),
            errors_count=len(row.errors),
        )
        return failed, exc
    return queue.Completed(job_id=row.id), None


# --- the worker --------------------------------------------------------------------------------


class Worker:
    def __init__(self, spec: WorkerSpec, pipe: Any) -> None:
        self.spec = spec
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
        self.handlers: Mapping[str, Any] = {}
        self.conn: Any = None
        self.completer: Any = None
        self.pool: ThreadPoolExecutor | None = None
        self._os_parent = os.getppid()
        self._monitors = {pid: (slug, cfg) for pid, slug, cfg in spec.monitors}

    # parent channel
    def send(self, *message: Any) -> None:
        with self._pipe_lock, contextlib.suppress(OSError, ValueError):
            self.pipe.send(message)

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"w")

    # set-up
    def boot(self) -> None:
        self.signals.install()
        plugin_set = discovery.discover(self.spec.plugins)
        self.handlers = plugin_set.handlers
        self.conn = db.connect(
            self.spec.database_url, application_name=f"river-supervisor worker {self.spec.index}"
        )
        self.conn.execute("LISTEN " + _quote_channel(self.conn, queue.TOPIC_INSERT))
        self.conn.execute("LISTEN " + _quote_channel(self.conn, queue.TOPIC_CONTROL))
        self.completer = queue.Completer(self.spec.database_url, on_flushed=self._on_flushed)
        self.completer.start()
        total = sum(limit for _, limit in self.spec.queues) or 1
        self.pool = ThreadPoolExecutor(max_workers=total, thread_name_prefix="job")

    def _on_flushed(self, job_ids: list[int]) -> None:
        with self._lock:
            for job_id in job_ids:
                self._held.pop(job_id, None)
        self.send("done", job_ids)

    # main loop
    def run(self) -> None:
        self.send("ready", os.getpid())
        next_poll = 0.0
        next_heartbeat = 0.0
        fetch_due = True
        while True:
            if self.signals.terminate:
                raise SystemExit(self._terminate())
            now = time.monotonic()
            if now >= next_heartbeat:
                self._check_parent()
                self.send("heartbeat")
                next_heartbeat = now + HEARTBEAT_INTERVAL
            if now >= next_poll:
                fetch_due = True
                next_poll = now + self.spec.poll_interval
            if fetch_due and not self.stopping:
                self._fetch_all()
                fetch_due = False
            if self.stopping and self._idle():
                self.completer.close()
                self.send("stopped")
                return
            timeout = max(0.0, min(next_poll, next_heartbeat) - time.monotonic())
            fetch_due = self._wait(timeout) or fetch_due

    def _wait(self, timeout: float) -> bool:
        """Sleep until something happens; True when a fetch may find work."""
        readable, _, _ = select.select(
            [self.conn.fileno(), self._wake_r, self.pipe.fileno()], [], [], timeout
        )
        wake = False
        if self._wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                while os.read(self._wake_r, 512):
                    pass
            wake = True
        if self.pipe.fileno() in readable:
            self._read_parent()
        for note in self.conn.notifies(timeout=0):
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
        return False

    def _idle(self) -> bool:
        with self._lock:
            return not any(self._running.values()) and not self._held

    def _fetch_all(self) -> None:
        for name, limit in self.spec.queues:
            with self._lock:
                free = limit - self._running[name]
            if free <= 0:
                continue
            rows = queue.fetch(self.conn, name, free, self.spec.worker_id)
            if not rows:
                continue
            jobs = [(row, self._make_job(row)) for row in rows]
            with self._lock:
                self._running[name] += len(rows)
                for row, job in jobs:
                    self._held[row.id] = job
            self.send("fetched", [(row.id, self._timeout_for(row)) for row in rows])
            for row, job in jobs:
                assert self.pool is not None
                self.pool.submit(self._run_one, row, job)

    def _timeout_for(self, row: queue.JobRow) -> float | None:
        entry = self.handlers.get(row.kind)
        return _job_timeout(entry.options if entry else None, self.spec.job_timeout)

    def _make_job(self, row: queue.JobRow) -> plugins.Job:
        return plugins.Job.from_row(
            row,
            context=plugins.JobContext(
                database_url=self.spec.database_url,
                node=self.spec.node,
                cluster=self.spec.cluster,
                worker_id=self.spec.worker_id,
            ),
        )

    def _run_one(self, row: queue.JobRow, job: plugins.Job) -> None:
        entry = self.handlers.get(row.kind)
        monitor = self._monitors.get(str(job.metadata.get("river:periodic_job_id")))
        started = time.monotonic()
        check_in = alerts.checkin(monitor[0], "in_progress", monitor[1]) if monitor else None
        outcome, exc = execute(row, entry.handler if entry else None, job)
        if exc is not None:
            alerts.job_error(job, exc)
        if monitor and not isinstance(outcome, queue.Snoozed):
            status = "ok" if isinstance(outcome, queue.Completed) else "error"
            alerts.checkin(monitor[0], status, monitor[1], check_in, time.monotonic() - started)
        self.completer.submit(outcome)
        with self._lock:
            self._running[row.queue] -= 1
        self.wake()

    # leaving
    def _parent_alive(self) -> bool:
        # Our OS parent is the forkserver, which exits when the supervisor dies (and PDEATHSIG
        # then fires); the supervisor's own pid is checked as well, for other platforms.
        if os.getppid() != self._os_parent:
            return False
        try:
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
            os._exit(EXIT_ORPHANED)

    def _put_back_held(self) -> None:
        with contextlib.suppress(Exception):
            self.completer.close(timeout=1.0)
        with self._lock:
            held = list(self._held)
        if held:
            with contextlib.suppress(Exception):
                queue.record_outcomes(self.conn, [queue.Interrupted(job_id=i) for i in held])

    def _terminate(self) -> int:
        """SIGTERM: flush finished outcomes now; the parent decides the fate of running jobs."""
        if not self._parent_alive():
            self._put_back_held()
            return EXIT_ORPHANED
        with contextlib.suppress(Exception):
            self.completer.close(timeout=2.0)
        return EXIT_OK


def _quote_channel(conn: Any, topic: str) -> str:
    from psycopg import sql

    schema = conn.execute("SELECT current_schema() AS s").fetchone()["s"]
    return sql.Identifier(queue.channel(topic, schema)).as_string(conn)


def main(spec: WorkerSpec, pipe: Any) -> None:
    """Entry point in the child process (the forkserver calls this)."""
    set_parent_death_signal()
    try:  # the supervisor died before PDEATHSIG was armed
        os.kill(spec.parent_pid, 0)
    except ProcessLookupError:
        os._exit(EXIT_ORPHANED)
    set_title(f"river-supervisor: worker {spec.index} [{spec.cluster}/{spec.node}]")
    from .logs import install

    install(level=spec.log_level, fmt=spec.log_format)
    alerts.init(spec.sentry, role="worker", cluster=spec.cluster, node=spec.node, secrets=[spec.database_url])
    worker = Worker(spec, pipe)
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
    os._exit(code)  # job threads may still run (abandoned on SIGTERM): do not wait for them
