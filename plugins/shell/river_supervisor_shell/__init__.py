"""river-supervisor plugin ``shell``: job kind ``shell.run`` runs one command.

Args (JSON):

- ``command``: a list of strings (run directly, no shell) or a string (run by ``/bin/sh -c``);
- ``shell``: force the choice (default: true for a string, false for a list; a list with
  ``shell: true`` is refused);
- ``cwd``: working directory; ``env``: variables (strings) added to the worker's environment;
- ``timeout``: seconds (number or duration string such as ``"5m"``); when it passes the command's
  whole process group gets SIGTERM, then SIGKILL two seconds later, and the job fails.

The command runs in a new session (its own process group), with stdin from /dev/null. The last
4 KiB of stdout and of stderr are kept. Exit code 0 completes the job and returns
``{"exit_code": 0, "stdout": ..., "stderr": ...}``; any other exit raises ``CommandFailed`` with the
code and the output tails, so the job is retried with backoff. Invalid args raise ``JobCancel``:
retrying them cannot help. A cancel request kills the process group like a timeout.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from typing import IO, Any

from river_supervisor import Job, JobCancel, Plugin
from river_supervisor.plugins import duration_seconds

plugin = Plugin("shell")

TAIL_BYTES = 4096
KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL of the process group
POLL = 0.1  # how often a running command is checked for timeout and cancel


class CommandFailed(RuntimeError):
    """The command exited non-zero, was killed, or timed out. Carries the output tails."""

    def __init__(self, message: str, exit_code: int | None, stdout: str, stderr: str) -> None:
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(message + _tails(stdout, stderr))


class CommandTimeout(CommandFailed):
    pass


@plugin.job("shell.run")
def run(job: Job) -> dict[str, Any]:
    argv, use_shell, label = _command(job.args)
    cwd = _optional_str(job.args, "cwd")
    env = _env(job.args.get("env"))
    timeout = _timeout(job.args.get("timeout"))
    try:
        proc = subprocess.Popen(
            argv,
            shell=use_shell,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, so a timeout kills the whole tree
        )
    except OSError as exc:
        raise CommandFailed(f"command {label} could not start: {exc}", None, "", "") from exc
    out, err = _Tail(), _Tail()
    readers = [
        threading.Thread(target=out.drain, args=(proc.stdout,), daemon=True, name="shell-stdout"),
        threading.Thread(target=err.drain, args=(proc.stderr,), daemon=True, name="shell-stderr"),
    ]
    for reader in readers:
        reader.start()
    stopped = _wait(proc, job, timeout)
    if stopped is not None:
        _kill_group(proc)
    for reader in readers:
        # A background grandchild may keep a pipe open; don't wait for it forever.
        reader.join(timeout=KILL_GRACE)
    stdout, stderr = out.text(), err.text()
    code = proc.returncode
    if stopped == "cancel":
        raise JobCancel(f"command {label} stopped: cancel requested")
    if stopped == "timeout":
        raise CommandTimeout(
            f"command {label} timed out after {timeout:g}s; its process group was killed",
            None,
            stdout,
            stderr,
        )
    if code != 0:
        how = f"was killed by signal {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        raise CommandFailed(f"command {label} {how}", code, stdout, stderr)
    return {"exit_code": code, "stdout": stdout, "stderr": stderr}


def _wait(proc: subprocess.Popen[bytes], job: Job, timeout: float | None) -> str | None:
    """Wait for the command; "timeout" or "cancel" if it had to be stopped, None if it exited."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        step = POLL if deadline is None else max(0.0, min(POLL, deadline - time.monotonic()))
        try:
            proc.wait(timeout=step)
            return None
        except subprocess.TimeoutExpired:
            pass
        if job.cancel_requested():
            return "cancel"
        if deadline is not None and time.monotonic() >= deadline:
            return "timeout"


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    for sig, grace in ((signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=grace)
            if sig == signal.SIGTERM:
                # The leader is gone; anything else left in its group gets no second chance.
                os.killpg(proc.pid, signal.SIGKILL)
            break
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            break
    proc.wait()


class _Tail:
    """Keeps the last ``TAIL_BYTES`` of a stream, however much it writes."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.dropped = 0

    def drain(self, stream: IO[bytes]) -> None:
        with stream:
            while chunk := stream.read1(65536):  # type: ignore[attr-defined]
                self.buf += chunk
                if len(self.buf) > TAIL_BYTES:
                    self.dropped += len(self.buf) - TAIL_BYTES
                    del self.buf[:-TAIL_BYTES]

    def text(self) -> str:
        return self.buf.decode("utf-8", errors="replace")


def _tails(stdout: str, stderr: str) -> str:
    parts = []
    for name, text in (("stderr", stderr), ("stdout", stdout)):
        if text.strip():
            parts.append(f"\n--- {name} (last {TAIL_BYTES} bytes) ---\n{text.rstrip()}")
    return "".join(parts)


# -- args


def _command(args: Mapping[str, Any]) -> tuple[str | list[str], bool, str]:
    command = args.get("command")
    use_shell = args.get("shell")
    if use_shell is not None and not isinstance(use_shell, bool):
        raise JobCancel(f"shell.run: args.shell must be true or false, got {use_shell!r}")
    if isinstance(command, str) and command.strip():
        if use_shell is False:
            return shlex.split(command), False, _label(command)
        return command, True, _label(command)
    if isinstance(command, list) and command and all(isinstance(part, str) for part in command):
        if use_shell:
            raise JobCancel("shell.run: args.command is a list; give a string to run it with shell: true")
        return list(command), False, _label(shlex.join(command))
    raise JobCancel(f"shell.run: args.command must be a non-empty string or list of strings, got {command!r}")


def _label(text: str) -> str:
    return repr(text if len(text) <= 120 else text[:117] + "...")


def _optional_str(args: Mapping[str, Any], key: str) -> str | None:
    value = args.get(key)
    if value is not None and not isinstance(value, str):
        raise JobCancel(f"shell.run: args.{key} must be a string, got {value!r}")
    return value


def _env(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise JobCancel("shell.run: args.env must map names to strings")
    return {**os.environ, **value}


def _timeout(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return duration_seconds(value)
    except ValueError as exc:
        raise JobCancel(f"shell.run: args.timeout: {exc}") from None
