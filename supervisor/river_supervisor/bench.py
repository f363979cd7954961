"""``river-supervisor bench``: bulk insert, end-to-end throughput and latency on a real database.

Isolation: the bench never reads or writes the configured schema. It creates a scratch schema
(``rs_bench_<pid>_<hex>``), migrates River's tables into it, and points every connection of its
own (and of the supervisor it starts) there with ``search_path``. Notification channels carry the
schema name (``<schema>.river_insert``), leadership rows live in that schema's tables, so a
supervisor already running against the database sees nothing of it but the CPU and I/O it uses.
The schema is dropped at the end, whatever happened (Ctrl-C included).

Phases, on one supervisor started as users start it (``python -m river_supervisor run`` with a
configuration file of its own: the bench queue only, the ``bench`` plugin only, no Sentry):

1. warm-up: batches of no-op jobs until every worker process has run one (the supervisor is then
   up and every worker listens);
2. latency, on the idle supervisor: jobs inserted one at a time, each its own transaction with its
   ``river_insert`` notification, spaced ``latency_interval`` apart; enqueue-to-start is
   ``attempted_at - created_at``, both from the database clock;
3. enqueue: the application API (``river_supervisor.enqueue``), one job per call on an autocommit
   connection (each call its own transaction with its ``river_insert``), ``enqueue_samples`` calls
   sync, as many on an ``AsyncConnection``, and as many inside one transaction (the call without
   its commit, which is then the application's); per-call time on the client's clock. Into a queue
   the supervisor does not serve, so the figure is the insert's own, not shared with the workers;
4. insert: ``queue.insert_many_copy`` of ``jobs`` no-op jobs in one call (specs built beforehand);
   the rows are invisible to the workers until the COPY commits, so they do not compete with it;
5. work: the workers drain those jobs; throughput is jobs / (last ``finalized_at`` - first
   ``attempted_at``), again from the database clock, so polling for the end adds no error;
6. memory: VmRSS of the supervisor and of each worker, read from ``/proc`` after the work.

Then SIGTERM, a wait for the exit, and the schema is dropped. Layer 5: the few statements of its
own are named queries in ``sql/bench.sql``.

This module runs the phases in order (``run``); its parts: the options and result
(``bench_options``), the scratch schema (``bench_schema``), the supervisor under test
(``bench_process``), the phases (``bench_phases``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from . import db
from .bench_options import BenchError, BenchOptions, BenchResult
from .bench_phases import machine, measure_enqueue, measure_insert, measure_latency, measure_work, warm_up
from .bench_process import SupervisorUnderTest, rss_mb
from .bench_schema import scratch_schema

__all__ = ["BenchError", "BenchOptions", "BenchResult", "Progress", "run"]

Progress = Callable[[str], None]


def run(database_url: str, options: BenchOptions, progress: Progress | None = None) -> BenchResult:
    """The whole bench on ``database_url``; the scratch schema is gone when this returns or raises."""
    options.validate()
    say = progress or (lambda message: None)
    load_before = os.getloadavg()[0]
    with scratch_schema(database_url) as url, tempfile.TemporaryDirectory(prefix="rs-bench-") as folder:
        sup = SupervisorUnderTest(url, Path(folder), options.processes, options.concurrency)
        with db.connect(url, application_name="river-supervisor bench") as conn:
            try:
                say(f"starting a supervisor with {options.processes} worker processes")
                sup.start()
                warm_up(conn, sup, options)
                say(f"latency: {options.latency_samples} jobs, one at a time")
                latency, samples = measure_latency(conn, sup, options)
                say(f"enqueue: {options.enqueue_samples} single-job calls, sync then async")
                enqueue = measure_enqueue(url, options.enqueue_samples)
                say(f"insert: {options.jobs} jobs with COPY")
                insert_seconds, after, until = measure_insert(conn, options.jobs)
                say("work: draining them through the supervisor")
                work = measure_work(conn, sup, after, until)
                workers = sup.worker_pids()
                memory = {"parent": rss_mb(sup.pid), "workers": [rss_mb(pid) for pid in workers]}
                about = machine(conn, load_before)
            finally:
                sup.stop()
    return BenchResult(
        jobs=options.jobs,
        processes=options.processes,
        concurrency=options.concurrency,
        insert_jobs_per_second=options.jobs / insert_seconds,
        insert_seconds=insert_seconds,
        work_jobs_per_second=work.completed / work.seconds if work.seconds > 0 else 0.0,
        work_seconds=work.seconds,
        latency_ms=latency,
        latency_samples=samples,
        rss_mb=memory,
        machine=about,
        workers_used=work.workers,
        batches=work.batches(),
        enqueue=enqueue,
    )
