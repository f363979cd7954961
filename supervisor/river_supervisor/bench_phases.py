"""The bench's phases: warm-up, latency, enqueue, insert, work, and what the figures depend on.

Owns each measurement and its arithmetic (percentiles, per-call rates, the work span read back from
the database clock). It may import ``client``, ``db``, ``queue``, ``benchjobs`` and the other
``bench_*`` modules; its statements are named queries in ``sql/bench.sql``.
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Any

import psycopg

from . import client, db, queue
from .bench_options import BenchError, BenchOptions
from .bench_process import SupervisorUnderTest
from .benchjobs import NOOP_KIND, QUEUE

READY_TIMEOUT = 60.0
POLL = 0.01
ENQUEUE_QUEUE = f"{QUEUE}_enqueue"  # served by no supervisor: the enqueue phase's jobs stay put


def _specs(count: int, tag: str) -> list[queue.JobSpec]:
    return [
        queue.JobSpec(NOOP_KIND, {"n": n}, queue=QUEUE, max_attempts=1, tags=(tag,)) for n in range(count)
    ]


def _last_id(conn: psycopg.Connection[Any]) -> int:
    row = db.fetch_one(conn, "bench_last_job_id")
    return int(row["id"]) if row else 0


def wait_finished(
    conn: psycopg.Connection[Any],
    sup: SupervisorUnderTest,
    after: int,
    until: int,
    timeout: float,
    phase: str,
) -> None:
    """Poll (a cheap index probe) until every job in (after, until] is finalized."""
    deadline = time.monotonic() + timeout
    while True:
        row = db.fetch_one(conn, "bench_unfinished", {"after": after, "until": until})
        if row is not None and not row["busy"]:
            return
        sup.check_alive(phase)
        if time.monotonic() > deadline:
            raise BenchError(f"bench: {phase}: jobs still unfinished after {timeout:g}s\n{sup.log_tail()}")
        time.sleep(POLL)


def warm_up(conn: psycopg.Connection[Any], sup: SupervisorUnderTest, options: BenchOptions) -> int:
    """Run batches until every worker process has run a job; returns how many workers did."""
    deadline = time.monotonic() + READY_TIMEOUT
    first = _last_id(conn)
    batch = 2 * options.concurrency * options.processes  # more than one worker can take at once
    workers = 0
    while time.monotonic() < deadline:
        after = _last_id(conn)
        queue.insert_many_copy(conn, _specs(batch, "warmup"))
        wait_finished(conn, sup, after, after + batch, max(1.0, deadline - time.monotonic()), "warm-up")
        span = db.fetch_one(conn, "bench_span", {"after": first, "until": after + batch})
        workers = int(span["workers"]) if span else 0
        if workers >= options.processes:
            break
    return workers


def measure_latency(
    conn: psycopg.Connection[Any], sup: SupervisorUnderTest, options: BenchOptions
) -> tuple[dict[str, float], int]:
    """Enqueue-to-start, one job per transaction, on the idle supervisor: p50, p99, max in ms."""
    after = _last_id(conn)
    started = time.monotonic()
    spec = _specs(1, "latency")[0]
    last = after
    for n in range(options.latency_samples):
        pause = started + n * options.latency_interval - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        last = queue.insert(conn, spec).job.id
    wait_finished(conn, sup, after, last, 30.0, "latency")
    samples = [
        float(row["ms"]) for row in db.fetch_all(conn, "bench_latencies", {"after": after, "until": last})
    ]
    if not samples:
        raise BenchError("bench: latency: no job was started")
    return percentiles(samples), len(samples)


def percentiles(samples: list[float]) -> dict[str, float]:
    if len(samples) == 1:
        return {"p50": samples[0], "p99": samples[0], "max": samples[0]}
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50": cuts[49], "p99": cuts[98], "max": max(samples)}


def measure_enqueue(url: str, samples: int) -> dict[str, Any]:
    """The application API's single-job enqueue, one autocommit call at a time: jobs/s and per call."""
    with db.connect(url, application_name="river-supervisor bench") as conn:
        sync = [_timed_enqueue(conn, n) for n in range(samples)]
        with conn.transaction():  # the application's transaction: its commit is not the call's
            in_transaction = [_timed_enqueue(conn, n) for n in range(samples)]
    return {
        "samples": samples,
        "sync": per_call(sync),
        "async": per_call(asyncio.run(_enqueue_async(url, samples))),
        "sync_in_transaction": per_call(in_transaction),
    }


def _timed_enqueue(conn: psycopg.Connection[Any], n: int) -> float:
    started = time.perf_counter()
    client.enqueue(conn, NOOP_KIND, {"n": n}, queue=ENQUEUE_QUEUE, max_attempts=1)
    return time.perf_counter() - started


async def _enqueue_async(url: str, samples: int) -> list[float]:
    aconn = await psycopg.AsyncConnection.connect(
        url, autocommit=True, application_name="river-supervisor bench"
    )
    async with aconn:
        seconds = []
        for n in range(samples):
            started = time.perf_counter()
            await client.enqueue_async(aconn, NOOP_KIND, {"n": n}, queue=ENQUEUE_QUEUE, max_attempts=1)
            seconds.append(time.perf_counter() - started)
    return seconds


def per_call(seconds: list[float]) -> dict[str, float]:
    """Calls per second of back-to-back calls, and the per-call time in ms (p50, p99, max)."""
    cuts = percentiles([s * 1000 for s in seconds])
    return {
        "jobs_per_second": round(len(seconds) / sum(seconds)),
        **{f"{name}_ms": round(value, 2) for name, value in cuts.items()},
    }


def measure_insert(conn: psycopg.Connection[Any], jobs: int) -> tuple[float, int, int]:
    """COPY ``jobs`` no-op jobs in one call; (seconds, first id - 1, last id)."""
    specs = _specs(jobs, "work")
    after = _last_id(conn)
    started = time.perf_counter()
    queue.insert_many_copy(conn, specs)
    seconds = time.perf_counter() - started
    return seconds, after, _last_id(conn)


@dataclass(frozen=True, slots=True)
class WorkSpan:
    seconds: float  # first attempted_at to last finalized_at
    completed: int
    workers: int  # distinct worker ids that ran them
    fetches: int  # fetch statements (distinct attempted_at)
    completions: int  # completion batches (distinct finalized_at)

    def batches(self) -> dict[str, float]:
        return {
            "fetches": self.fetches,
            "jobs_per_fetch": round(self.completed / self.fetches, 1) if self.fetches else 0.0,
            "completions": self.completions,
            "jobs_per_completion": round(self.completed / self.completions, 1) if self.completions else 0.0,
        }


def measure_work(conn: psycopg.Connection[Any], sup: SupervisorUnderTest, after: int, until: int) -> WorkSpan:
    """Wait for the workers to drain (after, until] and read back how they did it."""
    jobs = until - after
    wait_finished(conn, sup, after, until, max(120.0, jobs / 500), "work")
    span = db.fetch_one(conn, "bench_span", {"after": after, "until": until})
    assert span is not None
    if int(span["completed"]) != jobs:
        raise BenchError(f"bench: work: {span['completed']} of {jobs} jobs completed\n{sup.log_tail()}")
    return WorkSpan(
        seconds=float(span["seconds"]),
        completed=int(span["completed"]),
        workers=int(span["workers"]),
        fetches=int(span["fetches"]),
        completions=int(span["completions"]),
    )


def machine(conn: psycopg.Connection[Any], load_before: float) -> dict[str, Any]:
    """What the figures depend on; the load average says how busy the host was around the run."""
    info = db.fetch_one(conn, "bench_server_info") or {}
    version = str(info.get("server_version", "?")).split()[0]
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "postgres": version,
        "platform": platform.platform(terse=True),
        "load_average": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
    }
