"""Real ``river-supervisor run`` processes for tests.

Each supervisor gets its own TOML file in ``tmp_path``, runs ``python -m river_supervisor run`` in
a new session, and logs JSON lines to a file (never an undrained pipe). Workers lead process groups
of their own inside that session, so "the supervisor's processes" are the session's. Teardown kills
them all and fails the test if any process of it survived.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.wait import wait_until


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


def to_toml(settings: dict[str, Any]) -> str:
    """A small TOML writer for test configurations: scalars, tables, arrays of tables."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    arrays: list[tuple[str, list[dict[str, Any]]]] = []
    for key, value in settings.items():
        if isinstance(value, dict) and all(isinstance(v, dict) for v in value.values()) and value:
            tables += [(f"{key}.{sub}", v) for sub, v in value.items()]
        elif isinstance(value, dict):
            tables.append((key, value))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            arrays.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for name, table in tables:
        lines.append(f"\n[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    for name, entries in arrays:
        for entry in entries:
            lines.append(f"\n[[{name}]]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in entry.items()]
    return "\n".join(lines) + "\n"


def _process_group_members(pgid: int, field: int = 2) -> list[int]:
    """Live processes whose process group (``field`` 2) or session (``field`` 3) is ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[field]) == pgid:
            members.append(int(entry.name))
    return members


def _stat(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name: state, ppid, pgrp, session, ... ([] if gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ["", "", "", ""]
    return stat[stat.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class SupervisorProcess:
    def __init__(self, name: str, config_path: Path, log_path: Path, env: dict[str, str]) -> None:
        self.name = name
        self.config_path = config_path
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SupervisorProcess:
        log_file = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "river_supervisor",
                "run",
                "--config",
                str(self.config_path),
                "--log-format",
                "json",
            ],
            stdout=log_file,
            stderr=log_file,
            env=self.env,
            start_new_session=True,  # its own process group: teardown can kill everything
        )
        log_file.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cli(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run ``river-supervisor ARGS --config`` this supervisor's file, in its environment."""
        return subprocess.run(
            [sys.executable, "-m", "river_supervisor", *args, "--config", str(self.config_path)],
            env=self.env if env is None else env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def signal_pid(self, pid: int, sig: int) -> None:
        """Signal one process of this supervisor's session (a worker, a helper)."""
        assert pid in self.group(), f"{pid} is not a process of {self.name}"
        os.kill(pid, sig)

    def exit_code(self) -> int | None:
        assert self.proc is not None
        return self.proc.poll()

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not exit within {timeout}s\n{self.log_tail()}") from None

    def log_lines(self) -> list[str]:
        try:
            return self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def log_events(self, event: str | None = None) -> list[dict[str, Any]]:
        events = []
        for line in self.log_lines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if event is None or doc.get("event") == event:
                events.append(doc)
        return events

    def log_tail(self, lines: int = 40) -> str:
        return f"--- {self.name} log tail ---\n" + "\n".join(self.log_lines()[-lines:])

    def wait_for_event(
        self, event: str, timeout: float = 20.0, where: Callable[[dict[str, Any]], bool] | None = None
    ) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            matches = [e for e in self.log_events(event) if where is None or where(e)]
            return matches[-1] if matches else None

        return wait_until(found, timeout, f"log event {event} from {self.name}", context=self.log_tail)

    def children(self) -> list[int]:
        """Every live process of this supervisor's session except the supervisor itself."""
        return [pid for pid in self.group() if pid != self.pid]

    def group(self) -> list[int]:
        """Every live process of the supervisor's session: its own group and its workers' groups."""
        return _process_group_members(self.pid, field=3)

    def workers(self) -> list[int]:
        """Live worker processes: each leads a process group of its own in the session."""
        return [pid for pid in self.group() if pid != self.pid and _stat(pid)[2] == str(pid)]

    def helpers(self, name: str) -> list[int]:
        """Live helper processes of the supervisor whose command line names ``name``
        (``forkserver``, ``resource_tracker``)."""
        found = []
        for pid in self.process_group():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if pid != self.pid and name in cmdline:
                found.append(pid)
        return found

    def process_group(self) -> list[int]:
        """The live processes of the supervisor's own process group (not its workers')."""
        return _process_group_members(self.pid)

    def kill_group(self) -> None:
        """SIGKILL every process of the session at once, as a power loss would: none may react.

        All are frozen first, and the workers die before the supervisor: were the supervisor killed
        first, the kernel would send SIGCONT to its stopped workers (their process groups are
        orphaned then), and on a loaded machine they could act on their parent's death (put their
        jobs back) before this process got the CPU again to kill them.
        """
        deadline = time.monotonic() + 10
        while (members := self.group()) and time.monotonic() < deadline:
            for pid in members:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
            for pid in sorted(members, key=lambda pid: pid == self.pid):  # the supervisor last
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)


class SupervisorFactory:
    """``start(name, **settings)`` writes TOML and starts a supervisor; teardown cleans up."""

    def __init__(self, database_url: str, tmp_path: Path) -> None:
        self.database_url = database_url
        self.tmp_path = tmp_path
        self.started: list[SupervisorProcess] = []

    def config(self, name: str = "node-1", **settings: Any) -> dict[str, Any]:
        merged: dict[str, Any] = {
            "database_url": self.database_url,
            "node": name,
            "processes": 1,
            "shutdown_grace": "10s",
            "poll_interval": "1s",
            # only the process tests' own job kinds (the dev venv also has examples installed)
            "plugins": {"enabled": ["testjobs"]},
        }
        merged.update(settings)
        return merged

    def create(
        self, name: str = "node-1", env: dict[str, str] | None = None, **settings: Any
    ) -> SupervisorProcess:
        path = self.tmp_path / f"{name}.toml"
        path.write_text(to_toml(self.config(name, **settings)))
        clean_env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SENTRY_DSN"}}
        clean_env.update(env or {})
        proc = SupervisorProcess(name, path, self.tmp_path / f"{name}.log", clean_env)
        self.started.append(proc)
        return proc

    def start(
        self, name: str = "node-1", env: dict[str, str] | None = None, **settings: Any
    ) -> SupervisorProcess:
        return self.create(name, env, **settings).start()

    def cleanup(self) -> list[str]:
        """Kill every group; return descriptions of processes that had survived their parent."""
        survivors = []
        for proc in self.started:
            if proc.proc is None:
                continue
            if proc.exit_code() is not None:
                deadline = time.monotonic() + 5  # workers exit on PDEATHSIG; give them a moment
                while proc.group() and time.monotonic() < deadline:
                    time.sleep(0.05)
                if members := proc.group():
                    survivors.append(f"{proc.name}: pids {members} outlived the supervisor")
            proc.kill_group()
        return survivors


@pytest.fixture
def supervisors(database_url: str, db: Any, tmp_path: Path) -> Iterator[SupervisorFactory]:
    """Start supervisors on the run's database; ``db`` first empties every table (a clean cluster)."""
    factory = SupervisorFactory(database_url, tmp_path)
    yield factory
    survivors = factory.cleanup()
    assert not survivors, "; ".join(survivors)
