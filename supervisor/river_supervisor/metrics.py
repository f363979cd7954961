"""The Prometheus endpoint of the supervisor parent (``[metrics] listen``), one per host.

Where each number comes from
    The parent's loop pushes what it knows into ``Metrics``: the job totals its workers send with
    their "done" messages (``job_stats``), worker starts and restarts, its term, and each periodic
    pass (slots enqueued, skipped and missed, and how late each slot was enqueued). Queue depths,
    the oldest available job's age, drift and orphaned schedules are cluster facts: they are read
    from the database when Prometheus scrapes, at most once per ``CACHE_SECONDS`` (several scrapers
    cost one query), on a connection of the endpoint's own.

Threads
    prometheus_client serves HTTP from its own daemon thread, so a scrape, and the database read
    it may do, never waits on the parent's loop, nor the loop on it. The loop only writes plain
    values under a lock that a scrape holds just long enough to copy them: the parent's own state
    (workers, duties, connections) is never touched from the HTTP thread.

prometheus_client is imported here only, and this module only when ``[metrics] listen`` is set,
so a host without metrics pays nothing for it.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import math
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

from . import __version__, db, drift_reads, nodes, queue
from .config import Config
from .config_values import split_listen
from .errors import ConfigError, first_line
from .job_stats import DURATION_BUCKETS, JobStats, Totals
from .leadership import Term

log = logging.getLogger(__name__)

CACHE_SECONDS = 2.0  # database-backed gauges are read at most this often
STATEMENT_TIMEOUT_MS = 5000  # a slow database makes a scrape fail, never hang
QUEUE_STATES = ("available", "running", "retryable")
LAG_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
PREFIX = "river_supervisor"


@dataclass(frozen=True, slots=True)
class _Cluster:
    """One database read: the queues and the cluster's drift."""

    queues: dict[str, dict[str, float]]
    drift: drift_reads.ClusterDrift


class _DatabaseGauges:
    """The database-backed gauges, read on a scrape, cached for ``CACHE_SECONDS``."""

    def __init__(self, cfg: Config, defined_here: Iterable[str]) -> None:
        self.cfg = cfg
        self.defined_here = frozenset(defined_here)
        self._lock = threading.Lock()  # prometheus_client may serve two scrapes at once
        self._conn: psycopg.Connection[Any] | None = None
        self._read_at = -math.inf
        self._value: _Cluster | None = None
        self._failing = False
        self._queues_seen: set[str] = set(cfg.queues)  # a queue that empties shows 0, not nothing

    def read(self) -> _Cluster | None:
        with self._lock:
            now = time.monotonic()
            if now - self._read_at >= CACHE_SECONDS:
                self._value = self._query()  # a failure is cached too: a down database is not hammered
                self._read_at = now
            return self._value

    def _query(self) -> _Cluster | None:
        try:
            if self._conn is None or self._conn.closed or self._conn.broken:
                assert self.cfg.database_url
                self._conn = db.connect(
                    self.cfg.database_url,
                    application_name="river-supervisor metrics",
                    options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
                )
            queues = queue.queue_gauges(self._conn)
            found = drift_reads.cluster_drift(
                self._conn, self.cfg.cluster, nodes.STALE_AFTER, self.defined_here
            )
        except db.TRANSIENT as exc:
            if not self._failing:
                log.warning(
                    "metrics: cannot read queue gauges from the database: %s",
                    first_line(exc),
                    extra={"event": "metrics.database_failed"},
                )
            self._failing = True
            self.close()
            return None
        self._failing = False
        self._queues_seen |= set(queues)
        empty = dict.fromkeys((*QUEUE_STATES, "oldest_available_age"), 0.0)
        return _Cluster({name: queues.get(name, empty) for name in sorted(self._queues_seen)}, found)

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None


class Metrics:
    """What the parent reports; ``start`` serves it, the loop feeds it (see the module docstring)."""

    def __init__(self, cfg: Config, *, node_id: str, defined_here: Iterable[str]) -> None:
        assert cfg.metrics.listen
        self.cfg = cfg
        self.node_id = node_id
        self.listen = cfg.metrics.listen
        self.jobs = JobStats()
        self._lock = threading.Lock()
        self._term: Term | None = None
        self._workers = 0
        self._restarts = 0
        self._slots_started: set[int] = set()
        self._slots: dict[tuple[str, str], int] = {}  # (periodic id, outcome) -> slots
        self._lag = [0] * (len(LAG_BUCKETS) + 1)
        self._lag_sum = 0.0
        self._database = _DatabaseGauges(cfg, defined_here)
        self._server: Any = None

    # --- serving -----------------------------------------------------------------------------

    def start(self) -> None:
        """Listen on ``[metrics] listen``; a taken or bad address is a configuration error (exit 2)."""
        host, port = split_listen(self.listen)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)  # prometheus_client calls ``collect`` on each scrape
        ProcessCollector(registry=registry)  # the parent's memory, CPU and open files
        try:
            self._server, _ = start_http_server(port, host, registry)
        except OSError as exc:
            raise ConfigError(
                self.cfg.path, "[metrics] listen", f"cannot listen on {self.listen}: {exc.strerror or exc}"
            ) from None
        log.info(
            "metrics: serving Prometheus metrics on http://%s/metrics",
            self.listen,
            extra={"event": "metrics.listening", "listen": self.listen},
        )

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._database.close()

    # --- fed by the parent's loop ------------------------------------------------------------

    def jobs_finished(self, delta: dict[tuple[str, str, str], Totals]) -> None:
        """A worker's totals since its last "done" message."""
        self.jobs.merge(delta)

    def worker_started(self, index: int) -> None:
        with self._lock:
            if index in self._slots_started:
                self._restarts += 1
            self._slots_started.add(index)

    def reloaded(self, defined_here: Iterable[str]) -> None:
        """After a reload the workers are new ones, not restarts, and this host defines new schedules."""
        with self._lock:
            self._slots_started.clear()
        self._database.defined_here = frozenset(defined_here)  # one attribute: read whole by a scrape

    def update(self, *, term: Term | None, workers: int) -> None:
        """Once per turn of the loop: the term held (None: not leading) and the live workers."""
        with self._lock:
            self._term = term
            self._workers = workers

    def periodic_pass(self, event: str, data: dict[str, Any]) -> None:
        """The periodic enqueuer's observer: count each decided slot, and how late enqueues were."""
        result = data.get("result")
        if result is None:
            return
        now = datetime.now(UTC)
        with self._lock:
            for slot in result.claimed:
                if slot.outcome == "enqueued":
                    outcome, count = "enqueued", 1
                    lag = max(0.0, (now - slot.slot).total_seconds())
                    self._lag[bisect.bisect_left(LAG_BUCKETS, lag)] += 1
                    self._lag_sum += lag
                elif slot.outcome == "skipped_missed":  # one ledger row stands for every missed slot
                    outcome, count = "missed", max(1, result.plans[slot.periodic_id].skipped)
                else:
                    outcome, count = "skipped", 1
                key = (slot.periodic_id, outcome)
                self._slots[key] = self._slots.get(key, 0) + count

    # --- read on a scrape (the HTTP thread) --------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            term, workers, restarts = self._term, self._workers, self._restarts
            slots, lag, lag_sum = dict(self._slots), list(self._lag), self._lag_sum
        info = InfoMetricFamily(f"{PREFIX}_node", "This supervisor: cluster, node name and version.")
        info.add_metric([], {"cluster": self.cfg.cluster, "node": self.cfg.node, "version": __version__})
        yield info
        yield from self._job_families()
        yield _gauge(
            "leader", "1 while this supervisor holds the cluster's leader lease, else 0.", 1 if term else 0
        )
        yield _gauge(
            "leader_term",
            "The term number of the lease this supervisor holds (0: not leading).",
            term.term if term else 0,
        )
        yield _gauge("workers", "Worker processes running.", workers)
        restarts_family = CounterMetricFamily(
            f"{PREFIX}_worker_restarts", "Worker processes started again after one exited."
        )
        restarts_family.add_metric([], restarts)
        yield restarts_family
        slot_family = CounterMetricFamily(
            f"{PREFIX}_periodic_slots",
            "Periodic slots decided by this host as leader: enqueued, skipped (overlap) or missed.",
            labels=["periodic_id", "outcome"],
        )
        for (periodic_id, outcome), count in sorted(slots.items()):
            slot_family.add_metric([periodic_id, outcome], count)
        yield slot_family
        yield _histogram(
            "periodic_enqueue_lag_seconds",
            "How long after its slot time each periodic job was enqueued.",
            [([], lag, lag_sum)],
            LAG_BUCKETS,
        )
        yield from self._database_families()

    def _job_families(self) -> Iterator[Metric]:
        totals = self.jobs.snapshot()
        finished = CounterMetricFamily(
            f"{PREFIX}_jobs_finished",
            "Jobs this host's workers ran, by kind, queue and outcome "
            "(completed, retried, discarded, cancelled, snoozed).",
            labels=["kind", "queue", "outcome"],
        )
        by_kind: dict[str, Totals] = {}
        for (kind, queue_name, outcome), values in sorted(totals.items()):
            finished.add_metric([kind, queue_name, outcome], values[0])
            summed = by_kind.setdefault(kind, [0.0] * len(values))
            for index, value in enumerate(values):
                summed[index] += value
        yield finished
        yield _histogram(
            "job_duration_seconds",
            "How long job handlers ran, by kind.",
            [([kind], values[2:], values[1]) for kind, values in by_kind.items()],
            DURATION_BUCKETS,
            labels=["kind"],
        )

    def _database_families(self) -> Iterator[Metric]:
        cluster = self._database.read()
        if cluster is None:
            return  # the database could not be read: these series go stale rather than lie
        jobs = GaugeMetricFamily(
            f"{PREFIX}_queue_jobs",
            "Jobs per queue and state, cluster-wide (from the database).",
            labels=["queue", "state"],
        )
        oldest = GaugeMetricFamily(
            f"{PREFIX}_queue_oldest_available_age_seconds",
            "How long the oldest available job of each queue has waited (0: none waiting).",
            labels=["queue"],
        )
        for name, gauges in cluster.queues.items():
            for state in QUEUE_STATES:
                jobs.add_metric([name, state], gauges[state])
            oldest.add_metric([name], gauges["oldest_available_age"])
        yield jobs
        yield oldest
        yield _gauge(
            "config_drift_nodes",
            "Live nodes whose schedules or plugins differ from the leader's (0: no drift).",
            cluster.drift.drifting_nodes,
        )
        yield _gauge(
            "orphaned_schedules",
            "Schedules the cluster ran before that the current leader does not define.",
            cluster.drift.orphaned_schedules,
        )


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", doc, value=value)


def _histogram(
    name: str,
    doc: str,
    series: Sequence[tuple[list[str], Sequence[float], float]],
    bounds: tuple[float, ...],
    labels: list[str] | None = None,
) -> HistogramMetricFamily:
    """A histogram from per-bucket counts (not cumulative; the last one is +Inf)."""
    family = HistogramMetricFamily(f"{PREFIX}_{name}", doc, labels=labels)
    for label_values, counts, total in series:
        cumulative, running = [], 0.0
        for bound, count in zip((*map(str, bounds), "+Inf"), counts, strict=True):
            running += count
            cumulative.append((bound, running))
        family.add_metric(label_values, cumulative, total)
    return family
