"""The parent's view of its worker processes: handles, exit classification, restart policy.

Pure bookkeeping (no SQL, no signals sent from here) so the rules are testable without processes.
"""

from __future__ import annotations

import signal
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .worker import EXIT_BOOT_ERROR, EXIT_OK, EXIT_ORPHANED

CRASH_LOOP_COUNT = 5  # this many abnormal exits ...
CRASH_LOOP_WINDOW = 60.0  # ... within this many seconds stop the restarts of a slot
RESTART_BACKOFF_BASE = 0.5
RESTART_BACKOFF_MAX = 30.0
KILL_AFTER = 2.0  # SIGTERM, then SIGKILL this long after
SILENT_AFTER = 30.0  # a worker not heard from for this long (heartbeats every 2 s) is hung


@dataclass(slots=True)
class HeldJob:
    job_id: int
    deadline: float | None  # monotonic; None: no timeout
    timeout: float | None


@dataclass(slots=True)
class WorkerHandle:
    """One running worker process and the jobs the parent knows it holds."""

    index: int
    process: Any
    pipe: Any
    started_at: float
    pid: int | None = None
    worker_id: str = ""
    ready: bool = False
    last_heard: float = 0.0
    held: dict[int, HeldJob] = field(default_factory=dict)
    timed_out: set[int] = field(default_factory=set)
    term_sent_at: float | None = None
    killed: bool = False
    stop_sent: bool = False
    boot_error: str | None = None
    fault: str | None = None  # why the parent stopped it as faulty (its jobs get this error)

    def take_fetched(self, jobs: list[tuple[int, float | None]], now: float) -> None:
        for job_id, timeout in jobs:
            deadline = now + timeout if timeout else None
            self.held[job_id] = HeldJob(job_id, deadline, timeout)

    def release(self, job_ids: list[int]) -> None:
        for job_id in job_ids:
            self.held.pop(job_id, None)

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


def classify_exit(exitcode: int | None, *, stopping: bool, killed_by_us: bool) -> ExitReport:
    if exitcode is None:
        return ExitReport("exited (status unknown)", True, False, "WARNING")
    if exitcode == EXIT_OK:
        return ExitReport("exited", not stopping and not killed_by_us, False, "INFO")
    if exitcode == EXIT_BOOT_ERROR:
        return ExitReport("could not start (boot error)", True, True, "ERROR")
    if exitcode == EXIT_ORPHANED:
        return ExitReport("exited: supervisor gone", True, False, "WARNING")
    if exitcode < 0:
        sig = -exitcode
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        if killed_by_us or stopping:
            return ExitReport(f"stopped by {name}", False, False, "INFO")
        if sig == signal.SIGKILL:
            return ExitReport(f"killed by {name} (perhaps out of memory?)", True, False, "ERROR")
        return ExitReport(f"killed by {name}", True, False, "ERROR")
    return ExitReport(f"exited with code {exitcode}", True, False, "ERROR")


class RestartPolicy:
    """Restart a crashed slot with exponential backoff; give up on a crash loop, loudly."""

    def __init__(
        self,
        *,
        count: int = CRASH_LOOP_COUNT,
        window: float = CRASH_LOOP_WINDOW,
        base: float = RESTART_BACKOFF_BASE,
        cap: float = RESTART_BACKOFF_MAX,
    ) -> None:
        self.count = count
        self.window = window
        self.base = base
        self.cap = cap
        self._crashes: dict[int, deque[float]] = {}
        self.given_up: set[int] = set()

    def record_crash(self, index: int, now: float) -> float | None:
        """Note an abnormal exit; return the delay before restarting, or None to give up."""
        crashes = self._crashes.setdefault(index, deque())
        crashes.append(now)
        while crashes and now - crashes[0] > self.window:
            crashes.popleft()
        if len(crashes) >= self.count:
            self.given_up.add(index)
            return None
        return min(self.cap, self.base * 2 ** (len(crashes) - 1))

    def record_healthy(self, index: int, now: float) -> None:
        """A worker that ran a whole window without crashing clears its history."""
        crashes = self._crashes.get(index)
        if crashes and now - crashes[-1] > self.window:
            crashes.clear()

    def crashes(self, index: int) -> int:
        return len(self._crashes.get(index, ()))
