"""Job kinds for the process tests: each behaves in one way a real job can."""

from __future__ import annotations

import os
import time

from river_supervisor import Job, Plugin, UniqueOpts

plugin = Plugin("testjobs")


@plugin.job("test.noop")
def noop(job: Job) -> None:
    return None


@plugin.job("test.raise", max_attempts=1)
def fail(job: Job) -> None:
    raise RuntimeError(job.args.get("message", "the handler raised"))


@plugin.job("test.exit", max_attempts=1)
def hard_exit(job: Job) -> None:
    os._exit(int(job.args.get("code", 13)))  # a crash the worker cannot catch


@plugin.job("test.sleep")
def sleep(job: Job) -> None:
    time.sleep(float(job.args.get("seconds", 1.0)))


@plugin.job("test.slow", max_attempts=1, timeout=2)
def slow(job: Job) -> None:
    time.sleep(float(job.args.get("seconds", 60.0)))


@plugin.job("test.echo")
def echo(job: Job) -> dict[str, object]:
    return {"echo": job.args, "attempt": job.attempt}  # recorded as the row's metadata "output"


@plugin.job("test.hang_first")
def hang_first(job: Job) -> None:
    """Hangs on its first attempt (long enough for its host to die under it), quick after."""
    time.sleep(float(job.args.get("first", 600.0)) if job.attempt == 1 else 0.05)


@plugin.job("test.segfault", max_attempts=2)
def segfault(job: Job) -> None:
    import ctypes

    ctypes.string_at(0)  # SIGSEGV: the worker dies by a signal


@plugin.job("test.stuck", max_attempts=2, timeout=2)
def stuck(job: Job) -> None:
    """Past its timeout in one of the ways a job can refuse to stop (``args.how``)."""
    import signal
    import subprocess

    how = job.args.get("how", "sleep")
    marker = str(job.args.get("marker", "600"))
    if how == "grandchild":  # a child that would outlive the job, re-parented to init
        subprocess.Popen(["sleep", marker])
    elif how == "ignore_term":  # a child that ignores SIGTERM, waited for
        subprocess.run(["sh", "-c", f"trap '' TERM; sleep {marker}"], check=False)
    elif how == "sigstop":  # the whole worker stops itself (as under a debugger)
        os.kill(os.getpid(), signal.SIGSTOP)
    time.sleep(600)


@plugin.job("test.shell_child")
def shell_child(job: Job) -> None:
    """A job whose work is a child process (a shell command), as with the shell plugin."""
    import subprocess

    subprocess.run(["sleep", str(job.args.get("seconds", 1.0))], check=True)


@plugin.job("test.unique", priority=3, unique=UniqueOpts(by_args=True))
def unique(job: Job) -> None:
    return None  # declared unique by args: the CLI and charge.enqueue(...) insert it once per args
