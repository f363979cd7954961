"""What becomes of the jobs a worker process held when it ended: the queue core's rule.

The parent only says how the worker ended (``EndedWorker``); this decides each job's fate:

- a job the parent stopped the worker for (it ran past its timeout) fails with an error naming
  the timeout, and is retried per policy or discarded;
- after an abnormal end (a crash, a kill, a hang), the jobs a handler was running are suspects:
  each uses an attempt and gets an error naming the worker and how it ended (any of them may have
  caused it; repeated crashes use up a culprit's attempts);
- every other job (only fetched, or finished with its outcome not yet written, or the worker was
  stopped on purpose) goes back to ``available`` as if never taken: no attempt, no error.

After an abnormal end the worker's database sessions are ended first and the rows are asked which
jobs it still held (one it fetched just before dying may never have reached the parent).
SQL: ``sql/supervision.sql``.

Owns: the fate of a dead worker's jobs. May import: ``db`` and the queue core's ``retry``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from . import db
from .job_row import run_all
from .retry import Interrupted, record_lost, record_outcomes


@dataclass(frozen=True, slots=True)
class EndedWorker:
    """What the parent knows of a worker process that ended."""

    index: int
    pid: int | None
    worker_id: str  # what it wrote to attempted_by ("" if it never got one)
    backend_name: str  # its database sessions' application_name
    held: Sequence[int]  # the jobs it had reported holding, in the order it reported them
    timed_out: Mapping[int, float]  # of those, the ones it was stopped for: their timeout (seconds)
    running: frozenset[int]  # the jobs a handler was running when it ended
    abnormal: bool  # it crashed, was killed or hung (not stopped on purpose)
    description: str  # how it ended, for the jobs' error ("killed by SIGKILL", ...)


def record(conn: psycopg.Connection[Any], ended: EndedWorker) -> None:
    """Write the fate of every job ``ended`` held into its row (only rows still running change)."""
    others = [job_id for job_id in ended.held if job_id not in ended.timed_out]
    if ended.abnormal and ended.worker_id:
        # Jobs fetched but not yet reported over the pipe when the worker died. Its sessions end
        # first: a fetch it sent just before dying may still be committing.
        end_sessions(conn, ended.backend_name)
        others = sorted(set(others) | set(running_by_worker(conn, ended.worker_id)))
        others = [job_id for job_id in others if job_id not in ended.timed_out]
    who = f"worker {ended.index} (pid {ended.pid})"
    for job_id, timeout in ended.timed_out.items():
        record_lost(conn, [job_id], f"job exceeded its timeout of {timeout:g}s; {who} was stopped")
    if not others:
        return
    if ended.abnormal:
        suspects = [job_id for job_id in others if job_id in ended.running]
        record_lost(conn, suspects, f"{who} {ended.description}")
        others = [job_id for job_id in others if job_id not in ended.running]
    # stopped by us (shutdown, or a sibling timed out), or innocent: back to available
    record_outcomes(conn, [Interrupted(job_id=job_id) for job_id in others])


def running_by_worker(conn: psycopg.Connection[Any], worker_id: str) -> list[int]:
    """Ids of jobs still ``running`` whose latest attempt belongs to ``worker_id``."""
    return [row["id"] for row in run_all(conn, "job_running_ids_by_worker", {"worker_id": worker_id})]


def end_sessions(conn: psycopg.Connection[Any], application_name: str, timeout: float = 5.0) -> bool:
    """End a dead worker's database sessions and wait until they are gone (True) or ``timeout``.

    Called before ``running_by_worker``: a fetch in flight when its worker died is then settled
    (committed or rolled back), so no job it took can be missed.
    """
    params = {"application_name": application_name}
    ended = db.fetch_one(conn, "session_terminate_by_application", params)
    if not (ended and ended["ended"]):
        return True
    deadline = time.monotonic() + timeout
    while (row := db.fetch_one(conn, "session_count_by_application", params)) and row["sessions"]:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True
