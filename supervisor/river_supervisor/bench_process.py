"""The supervisor the bench measures: started as users start it, watched and stopped through ``/proc``.

Owns its configuration file, its process (its own session, never outliving the bench), the
members of that session and their memory. It may import ``benchjobs`` (the queue it serves),
``processes`` and ``bench_options``. It copies the environment only to drop ``DATABASE_URL`` and
``SENTRY_DSN`` (the child must use the bench's scratch config): it reads no setting.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from .bench_options import BenchError
from .benchjobs import QUEUE
from .processes import set_parent_death_signal

SHUTDOWN_GRACE = 5.0


def supervisor_config(url: str, processes: int, concurrency: int) -> str:
    """The TOML of the supervisor the bench starts: its queue, its plugin, nothing else."""
    lines = [
        f"database_url = {json.dumps(url)}",
        'cluster = "river-supervisor-bench"',
        'node = "bench"',
        f"processes = {processes}",
        'poll_interval = "1s"',
        f'shutdown_grace = "{SHUTDOWN_GRACE:g}s"',
        "",
        f"[queues.{QUEUE}]",
        f"concurrency = {concurrency * processes}",
        "",
        "[plugins]",
        'enabled = ["bench"]',
    ]
    return "\n".join(lines) + "\n"


class SupervisorUnderTest:
    """``python -m river_supervisor run`` in its own session, logging to a file in ``folder``."""

    def __init__(self, url: str, folder: Path, processes: int, concurrency: int) -> None:
        self.config_path = folder / "river-supervisor.toml"
        self.config_path.write_text(supervisor_config(url, processes, concurrency))
        self.config_path.chmod(0o600)  # the URL may carry a password
        self.log_path = folder / "supervisor.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SENTRY_DSN"}}
        command = [sys.executable, "-m", "river_supervisor", "run", "--config", str(self.config_path)]
        with self.log_path.open("ab") as log_file:
            self.proc = subprocess.Popen(
                [*command, "--log-format", "json", "--log-level", "WARNING"],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                env=env,
                start_new_session=True,  # Ctrl-C reaches the bench, which stops it in order
                preexec_fn=set_parent_death_signal,  # and it never outlives a killed bench
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def check_alive(self, phase: str) -> None:
        assert self.proc is not None
        code = self.proc.poll()
        if code is not None:
            raise BenchError(f"bench: {phase}: the supervisor exited with code {code}\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL to its whole session if it has not exited after the grace period."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(SHUTDOWN_GRACE + 10)
        for pid, _ in session_members(self.proc.pid):  # the forkserver and workers, if any remain
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self.proc.wait(10)
        return None

    def worker_pids(self) -> list[int]:
        return [pid for pid, title in session_members(self.pid) if ": worker " in title]


def session_members(sid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the live processes of session ``sid`` (workers lead their own
    process groups inside the supervisor's session)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[3]) == sid:
            found.append((int(entry.name), cmdline.strip()))
    return sorted(found)


def rss_mb(pid: int) -> float | None:
    """Resident set size of ``pid`` in MiB (``VmRSS`` of ``/proc/<pid>/status``)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        return None
    return None
