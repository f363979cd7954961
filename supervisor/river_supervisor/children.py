"""The parent's view of its worker processes: handles, exit classification, restart policy.

Pure bookkeeping (no SQL, no signals sent from here) so the rules are testable without processes.
"""

from __future__ import annotations

import signal
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .executor import Timeouts
from .processes import EXIT_BOOT_ERROR, EXIT_OK, EXIT_ORPHANED
from .queue import EndedWorker

RESTART_BACKOFF_BASE = 0.5  # first restart after a crash; doubles with each crash in the window ...
RESTART_BACKOFF_MAX = 5.0  # ... up to this: a worker that booted and ran is always restarted
CRASH_WINDOW = 60.0  # crashes older than this no longer lengthen the backoff
BOOT_FAILURES_TO_TRIP = 5  # this many boot failures in a row open a slot's breaker ...
BREAKER_RETRY = 60.0  # ... which then retries the boot this often, by itself, until one succeeds
KILL_AFTER = 2.0  # "exit now", then SIGKILL this long after
SILENT_AFTER = 30.0  # a worker not heard from for this long (heartbeats every 2 s) is hung


@dataclass(slots=True)
class HeldJob:
    job_id: int
    deadline: float | None  # monotonic; None: no timeout
    timeout: float | None


@dataclass(slots=True)
class WorkerHandle:
    """One running worker process and the jobs the parent knows it holds.

    ``pid`` is the adopted worker's (reported by its first process, see ``processes.detach``); it
    leads its own process group, so it is the group id too. Until it arrives, the pipe alone tells
    whether the worker lives.
    """

    index: int
    pipe: Any
    started_at: float
    pid: int | None = None
    pidfd: int | None = None
    pipe_closed: bool = False
    worker_id: str = ""
    backend_name: str = ""  # its database sessions' application_name
    in_handler: Any = None  # shared array: the job each of its threads runs a handler for (0: none)
    timeouts: Timeouts = field(default_factory=lambda: Timeouts({}, None))  # per kind, when it was started
    ready: bool = False
    last_heard: float = 0.0
    held: dict[int, HeldJob] = field(default_factory=dict)
    timed_out: set[int] = field(default_factory=set)
    term_sent_at: float | None = None
    killed: bool = False
    stop_sent: bool = False
    retiring: bool = False  # of a generation a reload replaced: finishes its jobs, is not restarted
    boot_error: str | None = None
    fault: str | None = None  # why the parent stopped it as faulty (its jobs get this error)

    def take_fetched(self, jobs: list[tuple[int, str]], now: float) -> None:
        """The worker's "fetched" message: (job id, kind) of each job it now holds."""
        timeout_of = self.timeouts
        for job_id, kind in jobs:
            timeout = timeout_of(kind)
            deadline = now + timeout if timeout else None
            self.held[job_id] = HeldJob(job_id, deadline, timeout)

    def release(self, job_ids: list[int]) -> None:
        for job_id in job_ids:
            self.held.pop(job_id, None)

    def ended(self, report: ExitReport) -> EndedWorker:
        """What the queue core needs to decide the fate of the jobs it held (``queue.fates``)."""
        return EndedWorker(
            index=self.index,
            pid=self.pid,
            worker_id=self.worker_id,
            backend_name=self.backend_name,
            held=list(self.held),
            timed_out={j.job_id: j.timeout or 0.0 for j in self.held.values() if j.job_id in self.timed_out},
            running=frozenset(self.in_handler or ()) - {0},
            abnormal=report.abnormal,
            description=report.description,
        )

    def overdue(self, now: float) -> list[HeldJob]:
        return [
            job
            for job in self.held.values()
            if job.deadline is not None and now >= job.deadline and job.job_id not in self.timed_out
        ]


@dataclass(frozen=True, slots=True)
class ExitReport:
    """What an exit means for the operator and for the restart policy."""

    description: str
    abnormal: bool
    boot_failure: bool
    level: str  # logging level name


def _signal_name(sig: int) -> str:
    return signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else f"signal {sig}"


def classify_exit(exitcode: int | None, *, ready: bool, stopping: bool, killed_by_us: bool) -> ExitReport:
    """Classify by what the worker had reached, not by an exit code user code can produce too.

    A worker that never said "ready" could not boot, whatever its code (only then does the breaker
    count it); after "ready", an exit is a crash unless we asked for it. ``exitcode`` is negative
    for a signal, None when unknown.
    """
    if killed_by_us or stopping:
        if exitcode in (EXIT_OK, None):
            how = "exited"
        elif exitcode < 0:
            how = f"stopped by {_signal_name(-exitcode)}"
        else:
            how = f"stopped: exited with code {exitcode}"
        return ExitReport(how, False, False, "INFO")
    if not ready:
        why = "boot error" if exitcode == EXIT_BOOT_ERROR else _exit_text(exitcode)
        return ExitReport(f"could not start ({why})", True, True, "ERROR")
    if exitcode == EXIT_ORPHANED:
        return ExitReport("exited: supervisor gone", True, False, "WARNING")
    if exitcode == EXIT_OK:
        return ExitReport("exited", True, False, "WARNING")
    return ExitReport(_exit_text(exitcode), True, False, "ERROR")


def _exit_text(exitcode: int | None) -> str:
    if exitcode is None:
        return "exited (status unknown)"
    if exitcode < 0:
        if -exitcode == signal.SIGKILL:
            return "killed by SIGKILL (perhaps out of memory?)"
        return f"killed by {_signal_name(-exitcode)}"
    return f"exited with code {exitcode}"


@dataclass(frozen=True, slots=True)
class RestartDecision:
    delay: float
    tripped: bool = False  # this exit opened the slot's breaker (say so once, loudly)
    breaker_open: bool = False


class RestartPolicy:
    """When to start a slot's worker again. It never gives up.

    A worker that booted and then died is restarted after a backoff that doubles with each crash in
    ``window`` seconds and stops growing at ``cap``: a job that kills its worker uses up its own
    attempts, and the host keeps working meanwhile. Only workers that cannot boot (they exit before
    "ready") trip a breaker, after ``trip_after`` failures in a row; an open breaker retries every
    ``breaker_retry`` seconds, and the first worker of the slot that boots closes it.
    """

    def __init__(
        self,
        *,
        window: float = CRASH_WINDOW,
        base: float = RESTART_BACKOFF_BASE,
        cap: float = RESTART_BACKOFF_MAX,
        trip_after: int = BOOT_FAILURES_TO_TRIP,
        breaker_retry: float = BREAKER_RETRY,
    ) -> None:
        self.window = window
        self.base = base
        self.cap = cap
        self.trip_after = trip_after
        self.breaker_retry = breaker_retry
        self._crashes: dict[int, deque[float]] = {}
        self._boot_failures: dict[int, int] = {}
        self._spawn_failures: dict[int, int] = {}
        self.open_breakers: dict[int, str] = {}  # slot -> why it cannot boot

    def record_exit(self, index: int, now: float, report: ExitReport, reason: str = "") -> RestartDecision:
        """Note an exit; say how long to wait before starting the slot again."""
        if not report.abnormal:
            return RestartDecision(0.0)
        if report.boot_failure:
            failures = self._boot_failures[index] = self._boot_failures.get(index, 0) + 1
            if failures >= self.trip_after:
                tripped = index not in self.open_breakers
                self.open_breakers[index] = reason or report.description
                return RestartDecision(self.breaker_retry, tripped=tripped, breaker_open=True)
            return RestartDecision(self._backoff(failures))
        crashes = self._crashes.setdefault(index, deque())
        crashes.append(now)
        while crashes and now - crashes[0] > self.window:
            crashes.popleft()
        return RestartDecision(self._backoff(len(crashes)))

    def spawn_failed(self, index: int) -> float:
        """The start itself failed (the forkserver died under it): back off, but trip nothing.

        The next start replaces the forkserver, so this is no sign of a worker that cannot boot.
        """
        failures = self._spawn_failures[index] = self._spawn_failures.get(index, 0) + 1
        return self._backoff(failures)

    def spawned(self, index: int) -> None:
        self._spawn_failures.pop(index, None)

    def record_ready(self, index: int) -> bool:
        """A worker of the slot booted: its boot failures are forgotten; True if a breaker closed."""
        self._boot_failures.pop(index, None)
        return self.open_breakers.pop(index, None) is not None

    def _backoff(self, n: int) -> float:
        return float(min(self.cap, self.base * 2 ** max(0, min(n - 1, 30))))

    def crashes(self, index: int) -> int:
        return len(self._crashes.get(index, ()))
