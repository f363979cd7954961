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


@plugin.job("test.unique", priority=3, unique=UniqueOpts(by_args=True))
def unique(job: Job) -> None:
    return None  # declared unique by args: the CLI and charge.enqueue(...) insert it once per args
