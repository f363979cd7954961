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
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from . import client, db, queue, schema
from .benchjobs import NOOP_KIND, QUEUE
from .errors import RiverSupervisorError
from .processes import set_parent_death_signal

Progress = Callable[[str], None]

READY_TIMEOUT = 60.0
SHUTDOWN_GRACE = 5.0
POLL = 0.01
ENQUEUE_QUEUE = f"{QUEUE}_enqueue"  # served by no supervisor: the enqueue phase's jobs stay put


class BenchError(RiverSupervisorError):
    """The bench could not finish; the message says which phase and why."""


@dataclass(frozen=True, slots=True)
class BenchOptions:
    jobs: int = 50_000
    processes: int = 2
    latency_samples: int = 200
    concurrency: int = 100  # per worker process; the host-wide value is this times processes
    latency_interval: float = 0.015  # seconds between two latency jobs
    enqueue_samples: int = 1000  # single-job enqueue calls, sync and again async

    def validate(self) -> None:
        for name in ("jobs", "processes", "latency_samples", "concurrency", "enqueue_samples"):
            if getattr(self, name) < 1:
                raise BenchError(f"bench: --{name.replace('_', '-')} must be at least 1")


@dataclass(frozen=True, slots=True)
class BenchResult:
    jobs: int
    processes: int
    concurrency: int
    insert_jobs_per_second: float
    insert_seconds: float
    work_jobs_per_second: float
    work_seconds: float
    latency_ms: dict[str, float]
    latency_samples: int
    rss_mb: dict[str, Any]
    machine: dict[str, Any]
    workers_used: int
    batches: dict[str, float] = field(default_factory=dict)
    enqueue: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """DESIGN.md's ``bench --json`` keys, plus a few that explain them."""
        return {
            "jobs": self.jobs,
            "processes": self.processes,
            "concurrency": self.concurrency,
            "insert_jobs_per_second": round(self.insert_jobs_per_second),
            "insert_seconds": round(self.insert_seconds, 4),
            "work_jobs_per_second": round(self.work_jobs_per_second),
            "work_seconds": round(self.work_seconds, 4),
            "latency_ms": {k: round(v, 2) for k, v in self.latency_ms.items()},
            "latency_samples": self.latency_samples,
            "rss_mb": self.rss_mb,
            "machine": self.machine,
            "workers_used": self.workers_used,
            "batches": self.batches,
            "enqueue": self.enqueue,
        }


# --- the scratch schema -------------------------------------------------------------------------


def scratch_schema_name() -> str:
    # Short: channel names are <schema>.<topic>, and an identifier is at most 63 bytes.
    return f"rs_bench_{os.getpid()}_{secrets.token_hex(3)}"


def with_search_path(url: str, schema_name: str) -> str:
    """``url`` as a libpq key=value string whose sessions start with ``search_path`` = the schema."""
    params = conninfo_to_dict(url)
    options = params.get("options") or ""
    params["options"] = f"{options} -c search_path={schema_name}".strip()
    return make_conninfo("", **params)


def _schema_statement(name: str, schema_name: str) -> sql.Composed:
    return sql.SQL(db.query(name)).format(schema=sql.Identifier(schema_name))


@contextlib.contextmanager
def scratch_schema(database_url: str) -> Iterator[str]:
    """Create, migrate and finally drop a schema of our own; yields a URL that works in it."""
    name = scratch_schema_name()
    with db.connect(database_url, application_name="river-supervisor bench") as admin:
        try:
            admin.execute(_schema_statement("bench_schema_create", name))
        except psycopg.errors.InsufficientPrivilege as exc:
            raise BenchError(
                f"bench: cannot create a scratch schema ({exc.diag.message_primary}); "
                "the bench needs CREATE on the database"
            ) from None
        try:
            url = with_search_path(database_url, name)
            with db.connect(url, application_name="river-supervisor bench") as conn:
                schema.migrate(conn)
            yield url
        finally:
            admin.execute(_schema_statement("bench_schema_drop", name))


# --- the supervisor under test ------------------------------------------------------------------


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


# --- phases -------------------------------------------------------------------------------------


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
