"""The operating-system side of worker processes: adoption, process groups, reaping.

Why workers are adopted: the forkserver gives clean processes (no inherited threads or sockets), but
a worker that stayed its child would depend on it. Its parent-death signal would fire when the
forkserver died, and the forkserver would be the only one to know its exit status (multiprocess
reports 255 for every worker once the forkserver is gone). So the supervisor makes itself a child
subreaper, and a new worker forks once more and lets its first process exit: the worker is then
the supervisor's own child. Its parent-death signal follows the supervisor, the supervisor reads its
real exit status with ``waitpid``, and the forkserver and the resource tracker can die and be
replaced without touching a running worker.

Why each worker has its own process group: whatever a job starts (a shell, its ``sleep 600``) stays
in the worker's group, so killing the group when the worker ends kills it too; and a SIGTERM sent to
the supervisor's group (``kill -- -PGID``, ``timeout``) reaches only the supervisor, which then stops
its workers gracefully, exactly as for a SIGTERM to its pid.

The worker's side of the contract lives here too: its exit codes, "exit now" (``EXIT_NOW``, also
its parent-death signal), its signal handlers (``WorkerSignals``) and how it is adopted and named
(``adopt_worker``).

Linux-only parts (prctl, pidfd) degrade quietly elsewhere: a worker is then watched through its
pipe and by pid, and its exit status may be unknown. Owns: OS process primitives. May import: the
standard library only (no psycopg, no sentry_sdk, nothing of this package).
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import os
import select
import signal
import sys
import time
from collections.abc import Callable

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
ADOPTION_WAIT = 5.0  # the first process of a new worker exits at once; never wait longer than this

# A worker's exit codes, for the log: the parent classifies an exit by whether the worker had said
# "ready", never by a code alone (a job's os._exit(3) can produce any of these).
EXIT_OK = 0
EXIT_BOOT_ERROR = 3
EXIT_ORPHANED = 4
EXIT_NOW = signal.SIGUSR1  # the parent's "exit now" to a worker, and a worker's parent-death signal


def _prctl(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(option, value, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def become_subreaper() -> bool:
    """Adopt orphaned descendants (our workers, and what their jobs leave behind)."""
    return _prctl(PR_SET_CHILD_SUBREAPER, 1)


def set_parent_death_signal(sig: int = signal.SIGTERM) -> None:
    """Ask Linux to signal us when the parent dies; elsewhere the heartbeat loop checks the parent."""
    _prctl(PR_SET_PDEATHSIG, int(sig))


def set_title(title: str) -> None:
    try:
        import setproctitle
    except ImportError:  # an optional nicety; never a reason not to run
        return
    setproctitle.setproctitle(title)


def detach(report_pid: Callable[[int], None], supervisor_pid: int, death_signal: int) -> bool:
    """In a new worker: fork once more so that the supervisor adopts the process that goes on.

    The first process makes the second the leader of its own process group, reports its pid
    (``report_pid``, before anything else the worker sends) and exits. The second waits until it
    has been adopted, then arms its parent-death signal. Returns True when the supervisor is now the
    parent (it is a subreaper); False when the worker could not be adopted (another platform).
    """
    first = os.getpid()
    child = os.fork()
    if child:
        with contextlib.suppress(OSError):
            os.setpgid(child, child)  # also done by the child: whichever runs first
        report_pid(child)
        os._exit(0)
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    deadline = time.monotonic() + ADOPTION_WAIT
    while os.getppid() == first and time.monotonic() < deadline:
        time.sleep(0.0005)
    if os.getppid() != supervisor_pid:
        return False
    set_parent_death_signal(death_signal)
    return os.getppid() == supervisor_pid  # the supervisor may have died before the signal was armed


def open_pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when ``pid`` exits (Linux 5.3+), or None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def close_fd(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def has_exited(pid: int, pidfd: int | None) -> bool:
    """True once ``pid`` has exited, whether or not it is our child yet (its status stays unread)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # not (yet) our child: ask the kernel another way
        pass
    if pidfd is not None:
        readable, _, _ = select.select([pidfd], [], [], 0)
        return bool(readable)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def reap(pid: int) -> int | None:
    """Collect an exited child's status: exit code, or minus the signal number; None if unknown."""
    try:
        found, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    if not found:
        return None
    return os.waitstatus_to_exitcode(status)


def kill_group(pgid: int | None, sig: int) -> None:
    """Signal every process of a worker's group (never our own group)."""
    if pgid is None or pgid <= 1 or pgid == os.getpgrp():
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def end_own_group() -> None:
    """SIGKILL our own process group, ourselves included, if we lead it (a worker, never the
    supervisor's group): the last act of an orphaned worker, so nothing its jobs started lives on."""
    if os.getpgrp() == os.getpid():
        os.killpg(0, signal.SIGKILL)


def reap_strays(pgid: int, keep: int | None = None) -> bool:
    """Reap exited children of group ``pgid`` (a job's leftovers, adopted by us), except ``keep``.

    Returns False once no child of ours is left in the group, so the caller can forget it.
    """
    while True:
        try:
            found = os.waitid(os.P_PGID, pgid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return False
        if found is None or found.si_pid == keep:
            return True
        with contextlib.suppress(ChildProcessError):
            os.waitpid(found.si_pid, 0)


# --- the worker's side ----------------------------------------------------------------------------


class Stop(enum.IntEnum):
    """How far a worker has been asked to stop; it only ever goes up."""

    RUN = 0
    DRAIN = 1  # stop fetching, let running jobs finish, exit (SIGTERM, or the parent's "stop")
    NOW = 2  # exit now (``EXIT_NOW``: a job ran past its timeout, the grace period is over)


class WorkerSignals:
    """A worker's signal handlers: they only record the request and poke the wakeup fd (gunicorn's rule).

    SIGTERM drains, as the parent's "stop" message does, so a SIGTERM sent to every process
    (systemd's control-group stop) still stops gracefully: the parent decides how long it lasts.
    """

    def __init__(self, wake_fd: int) -> None:
        self.stop = Stop.RUN
        self._wake_fd = wake_fd

    def install(self) -> None:
        signal.signal(EXIT_NOW, self._on_exit_now)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; Ctrl-C hits its group
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the parent reloads; a worker is replaced
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)

    def request(self, level: Stop) -> None:
        self.stop = max(self.stop, level)

    def _on_exit_now(self, signum: int, frame: object) -> None:
        self.request(Stop.NOW)
        self._wake()

    def _on_term(self, signum: int, frame: object) -> None:
        self.request(Stop.DRAIN)
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_fd, b"t")


def adopt_worker(report_pid: Callable[[int], None], parent_pid: int, title: str) -> bool:
    """The first thing a new worker does: be adopted by the supervisor (``detach``), exit at once
    if the supervisor is already gone, and take ``title``. True when the supervisor is the parent."""
    adopted = detach(report_pid, parent_pid, EXIT_NOW)
    if not adopted:
        try:  # not adopted (another platform, or the supervisor died meanwhile): is it there?
            os.kill(parent_pid, 0)
        except ProcessLookupError:
            os._exit(EXIT_ORPHANED)
    set_title(title)
    return adopted


def parent_alive(parent_pid: int, adopted: bool) -> bool:
    """Whether a worker's supervisor still lives (adopted: it is our parent, its death re-parents us)."""
    if adopted:
        return os.getppid() == parent_pid
    try:  # not adopted (another platform): ask by pid; the pipe's EOF tells as well
        os.kill(parent_pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
