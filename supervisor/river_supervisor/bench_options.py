"""The bench's inputs and outputs: ``BenchOptions``, ``BenchResult`` (``bench --json``), ``BenchError``.

Pure values shared by the bench's modules; it may import ``errors`` only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import RiverSupervisorError


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
