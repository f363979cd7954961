"""What a worker process is given: ``WorkerSpec``, built from the configuration in one place.

The spec is plain, picklable data (it crosses into the forkserver's child): the worker's slot and
generation-unique names, its share of each queue's concurrency (``queue_shares``), and the
settings it runs with. Job timeouts are not in it: the parent enforces them from its own plugins.

Owns: the parent-to-worker spec. May import: ``config`` and ``crons``' plain ``Monitors`` type only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .config import Config, PluginsConfig, SentryConfig
from .crons import Monitors


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """Everything a worker needs, picklable: plain data only crosses into the child."""

    index: int
    worker_id: str  # written to attempted_by
    database_url: str
    cluster: str
    node: str
    queues: tuple[tuple[str, int], ...]  # (queue, concurrency share of this process)
    poll_interval: float
    plugins: PluginsConfig
    sentry: SentryConfig
    parent_pid: int
    backend_name: str = "river-supervisor worker"  # application_name, unique per worker process
    log_level: str = "INFO"
    log_format: str = "text"
    monitors: Monitors = field(default=())  # Sentry Crons, for schedules with monitor = true

    @classmethod
    def for_slot(
        cls, cfg: Config, index: int, *, generation: int, node_id: str, boot_id: str, **rest: Any
    ) -> WorkerSpec:
        """The spec of slot ``index``'s worker of this ``generation``, from the configuration;
        ``rest``: the other fields (``parent_pid``, ``log_level``, ``log_format``, ``monitors``)."""
        return cls(
            index=index,
            worker_id=f"{node_id}/w{index}.{generation}",
            backend_name=f"river-supervisor worker {index} {boot_id}.{generation}",
            database_url=cfg.database_url or "",
            cluster=cfg.cluster,
            node=cfg.node,
            queues=queue_shares({q.name: q.concurrency for q in cfg.queues.values()}, cfg.processes, index),
            poll_interval=cfg.poll_interval,
            plugins=cfg.plugins,
            sentry=cfg.sentry,
            **rest,
        )


def queue_shares(queues: dict[str, int], processes: int, index: int) -> tuple[tuple[str, int], ...]:
    """Split each queue's host-wide concurrency between the worker processes."""
    shares = []
    for name, concurrency in sorted(queues.items()):
        share = concurrency // processes + (1 if index < concurrency % processes else 0)
        if share > 0:
            shares.append((name, share))
    return tuple(shares)
