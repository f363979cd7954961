"""river-supervisor's side of the interop kinds: each behaves as its Go twin in
tests/interop/go/cmd/riverinterop/jobs.go does, so a row worked here can be compared with one
River's client worked. ``interop.go_only`` and ``interop.go_periodic`` exist only on River's side,
``interop.py_only`` only here.
"""

from __future__ import annotations

from typing import Any

from river_supervisor import Job, Plugin

plugin = Plugin("interopjobs")


@plugin.job("interop.echo")
def echo(job: Job) -> dict[str, Any]:
    return {"echo": job.args, "attempt": job.attempt}  # River's RecordOutput: metadata "output"


@plugin.job("interop.fail")
def fail(job: Job) -> None:
    raise RuntimeError(str(job.args.get("message")))


@plugin.job("interop.handoff")
def handoff(job: Job) -> dict[str, Any]:
    if job.args.get("fail_on") == "python":
        raise RuntimeError("failed on python")
    return {"finished_on": "python", "attempt": job.attempt}


@plugin.job("interop.sleep")
def sleep(job: Job) -> None:
    # A Go worker returns its context's error when River cancels it; this does the same, and the
    # supervisor turns the failure of a job whose cancel was attempted into "cancelled", as River does.
    if job.wait_for_cancel(float(job.args.get("seconds", 60))):
        raise RuntimeError("context canceled")


@plugin.job("interop.py_only")
def py_only(job: Job) -> dict[str, Any]:
    return {"echo": job.args, "attempt": job.attempt}  # River's side has no worker for this kind
