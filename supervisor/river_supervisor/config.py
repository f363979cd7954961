"""Configuration: the TOML file, the environment and command-line flags, validated once.

INTERFACE (fixed; other modules rely on it): ``load(path, flags=..., environ=...) -> Config``
and the frozen dataclasses below. Durations are stored as float seconds.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_FILE = "river-supervisor.toml"


@dataclass(frozen=True, slots=True)
class QueueConfig:
    name: str
    concurrency: int = 10  # jobs of this queue running at once on this host


@dataclass(frozen=True, slots=True)
class LeadershipConfig:
    ttl: float = 15.0  # lease length; renewed every ttl/3


@dataclass(frozen=True, slots=True)
class SentryConfig:
    dsn: str | None = None
    environment: str | None = None
    send_job_args: bool = False  # job args stay out of Sentry unless asked


@dataclass(frozen=True, slots=True)
class PluginsConfig:
    enabled: tuple[str, ...] | None = None  # None: every discovered plugin
    disabled: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MaintenanceConfig:
    rescue_after: float = 3600.0
    completed_retention: float = 86400.0
    cancelled_retention: float = 86400.0
    discarded_retention: float = 7 * 86400.0


@dataclass(frozen=True, slots=True)
class PeriodicEntry:
    id: str
    kind: str | None = None
    cron: str | None = None
    every: float | None = None
    timezone: str = "UTC"
    args: Mapping[str, Any] = field(default_factory=dict)
    queue: str | None = None
    priority: int | None = None
    max_attempts: int | None = None
    missed: str | None = None  # skip | latest | all
    missed_cap: int | None = None
    overlap: str | None = None  # allow | skip
    monitor: bool | None = None
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Config:
    path: str | None = None
    database_url: str | None = None
    cluster: str = "default"
    node: str = field(default_factory=socket.gethostname)
    processes: int = field(default_factory=lambda: os.cpu_count() or 1)
    job_timeout: float = 60.0  # default per job; a plugin's job(timeout=...) overrides
    shutdown_grace: float = 30.0
    poll_interval: float = 1.0
    queues: Mapping[str, QueueConfig] = field(default_factory=lambda: {"default": QueueConfig("default")})
    leadership: LeadershipConfig = field(default_factory=LeadershipConfig)
    sentry: SentryConfig = field(default_factory=SentryConfig)
    plugins: PluginsConfig = field(default_factory=PluginsConfig)
    maintenance: MaintenanceConfig = field(default_factory=MaintenanceConfig)
    periodic: tuple[PeriodicEntry, ...] = ()


def load(
    path: str | None = None,
    *,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Read ``path`` (else ``river-supervisor.toml`` if present), apply flag > env > file > default."""
    environ = os.environ if environ is None else environ
    flags = flags or {}
    url = flags.get("database_url") or environ.get("DATABASE_URL")
    dsn = flags.get("sentry_dsn") or environ.get("SENTRY_DSN")
    return Config(path=path, database_url=url, sentry=SentryConfig(dsn=dsn))
