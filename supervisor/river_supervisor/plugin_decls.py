"""A plugin's declarations as values, and the checks that make them valid when they are made.

Owns ``JobOptions``, ``JobDecl``, ``PeriodicDecl``, ``DeclarationError`` (naming plugin and kind or
id), ``duration_seconds`` (a plugin's reading of a duration) and the checks ``Plugin`` applies to each
option. Part of the plugin API, re-exported by ``plugins``: layer 1, it may import ``plugin_job``
and the pure rules (``durations``, ``job_options``, ``unique``), never psycopg or sentry_sdk.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .durations import parse_duration
from .job_options import KIND_RULE, QUEUE_NAME_RULE, is_valid_kind, is_valid_queue_name
from .plugin_job import Handler
from .unique import UniqueOpts

# A plugin name is an entry-point name; keep it simple enough to appear in config and logs.
PLUGIN_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.\-]*\Z")
PRIORITY_MIN, PRIORITY_MAX = 1, 4  # River's priorities


class DeclarationError(ValueError):
    """A ``job`` or ``periodic`` declaration is invalid; the message names plugin and kind or id."""


@dataclass(frozen=True, slots=True)
class JobOptions:
    """Defaults for jobs of one kind: inserted jobs use them unless the insert says otherwise."""

    queue: str = "default"
    max_attempts: int = 25
    timeout: float | None = None  # None: the configuration's job_timeout
    priority: int = 1
    unique: UniqueOpts | None = None  # River's unique options for every insert of the kind


@dataclass(frozen=True, slots=True)
class JobDecl:
    plugin: str
    kind: str
    handler: Handler
    options: JobOptions


@dataclass(frozen=True, slots=True)
class PeriodicDecl:
    """A schedule shipped by a plugin. The cron expression itself is checked by ``periodic``."""

    plugin: str
    id: str
    kind: str
    cron: str | None = None
    every: float | None = None  # seconds
    args: Mapping[str, Any] = field(default_factory=dict)
    timezone: str = "UTC"
    missed: str | None = None
    overlap: str | None = None
    queue: str | None = None
    priority: int | None = None
    max_attempts: int | None = None
    monitor: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (``plugins --json``, fingerprints)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "cron": self.cron,
            "every": self.every,
            "timezone": self.timezone,
            "args": dict(self.args),
            "missed": self.missed,
            "overlap": self.overlap,
            "queue": self.queue,
            "priority": self.priority,
            "max_attempts": self.max_attempts,
            "monitor": self.monitor,
        }


def duration_seconds(value: object) -> float:
    """A positive duration (seconds as a number, or ``"90s"``, ``"5m"``, ``"1h30m"``) in seconds.

    ``ValueError`` otherwise. For plugins reading durations from job args, too.
    """
    try:
        seconds = parse_duration(value)  # the configuration file's reading: a plugin reads alike
    except ValueError:
        seconds = 0.0
    if seconds <= 0:
        raise ValueError(f"expected a positive number of seconds or a duration such as '5m', got {value!r}")
    return seconds


# -- validation helpers: each raises DeclarationError naming ``where``.


def check_kind(where: str, kind: object) -> str:
    if not is_valid_kind(kind):
        raise DeclarationError(f"{where}: kind {kind!r} must match River's kind pattern ({KIND_RULE})")
    return kind  # type: ignore[return-value]  # is_valid_kind checked it is a str


def check_queue(where: str, queue: object) -> str:
    if not is_valid_queue_name(queue):
        raise DeclarationError(f"{where}: queue {queue!r} must be {QUEUE_NAME_RULE}")
    return queue  # type: ignore[return-value]  # is_valid_queue_name checked it is a str


def check_unique(where: str, unique: object) -> UniqueOpts | None:
    if unique is None:
        return None
    if not isinstance(unique, UniqueOpts):
        raise DeclarationError(
            f"{where}: unique must be river_supervisor.UniqueOpts(...), got {type(unique).__name__}"
        )
    try:
        unique.validate()
    except ValueError as exc:  # InvalidJob: its message names the option
        raise DeclarationError(f"{where}: {exc}") from None
    return unique


def check_int(where: str, key: str, value: object, *, low: int, high: int | None = None) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        expected = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
        raise DeclarationError(f"{where}: {key} must be {expected}, got {value!r}")
    return value


def check_duration(where: str, key: str, value: object) -> float:
    try:
        return duration_seconds(value)
    except ValueError:
        raise DeclarationError(
            f"{where}: {key} must be a positive number of seconds or a duration such as '90s', '5m',"
            f" '1h30m', got {value!r}"
        ) from None


def check_args(where: str, args: Mapping[str, Any] | None) -> dict[str, Any]:
    if args is None:
        return {}
    if not isinstance(args, Mapping):
        raise DeclarationError(f"{where}: args must be a mapping, got {type(args).__name__}")
    try:
        # A copy through JSON: what is enqueued is exactly what a peer with this version would enqueue.
        copied: dict[str, Any] = json.loads(json.dumps(dict(args), sort_keys=True))
    except (TypeError, ValueError) as exc:
        raise DeclarationError(f"{where}: args must be JSON-serialisable: {exc}") from None
    return copied


def check_timezone(where: str, timezone: object) -> str:
    import zoneinfo

    if not isinstance(timezone, str) or not timezone:
        raise DeclarationError(
            f"{where}: timezone must be an IANA name such as 'Europe/Berlin', got {timezone!r}"
        )
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise DeclarationError(f"{where}: unknown timezone {timezone!r}") from None
    return timezone
