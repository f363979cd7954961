"""The plugin API: what a plugin module imports and declares.

A plugin is a ``Plugin`` object published under the entry-point group ``river_supervisor.plugins``
(entry-point name = plugin name). It declares job handlers with ``@plugin.job(kind, ...)`` and
schedules with ``plugin.periodic(kind, id=..., cron=... | every=...)``. Declarations are validated
when they are made, so a bad one fails the plugin's import and is reported by discovery with the
plugin's name (the other plugins still load).

Handlers receive a ``Job`` and run in a worker thread. Returning ends the job as completed (a
JSON-serialisable return value may be kept as the job's output); raising an exception retries it
with River's backoff; ``raise JobCancel(reason)`` ends it as cancelled; ``raise JobSnooze(seconds)``
puts it back for later without using up an attempt.

Async handlers: an ``async def`` handler (or one returning an awaitable) is supported. The worker
runs it with ``asyncio.run`` in the job's own thread, so each job gets a fresh event loop that
ends with it: no loop is shared between jobs, and nothing must be thread-safe across them. Use it
to call async libraries; it buys no concurrency beyond the worker's threads. ``call_handler`` is
the one place that makes this choice, for the worker and for ``river_supervisor.testing``.

Cancellation is cooperative: when a remote cancel arrives the worker calls
``job.request_cancel()``; a long handler polls ``job.cancel_requested()`` (or waits on
``job.wait_for_cancel(seconds)``) and stops, typically by raising ``JobCancel``.

This module is layer 1: it imports neither psycopg nor sentry_sdk, and importing it has no side
effects (every plugin imports it; the forkserver preloads the worker, which imports it).
Discovery lives in ``river_supervisor.discovery`` (``discover``, ``PluginSet``, ``LoadedPlugin``);
it imports this module, never the other way round (layer 2 over layer 1).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import math
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .durations import parse_duration
from .job_options import KIND_RULE, QUEUE_NAME_RULE, is_valid_kind, is_valid_periodic_id, is_valid_queue_name
from .schedules import MISSED_POLICIES, OVERLAP_POLICIES
from .unique import UniqueOpts

__all__ = [
    "DeclarationError",
    "DeclaredJob",
    "Job",
    "JobCancel",
    "JobContext",
    "JobDecl",
    "JobOptions",
    "JobSnooze",
    "PeriodicDecl",
    "Plugin",
    "call_handler",
    "duration_seconds",
]

# A plugin name is an entry-point name; keep it simple enough to appear in config and logs.
PLUGIN_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.\-]*\Z")
PRIORITY_MIN, PRIORITY_MAX = 1, 4  # River's priorities

Handler = Callable[["Job"], Any]
_CANCEL_LOCK = threading.Lock()


class DeclarationError(ValueError):
    """A ``job`` or ``periodic`` declaration is invalid; the message names plugin and kind or id."""


class JobCancel(Exception):  # River's name: a signal to the worker, not a failure
    """Raised by a handler: end the job as cancelled, without retrying."""

    def __init__(self, reason: str = "cancelled by handler") -> None:
        self.reason = str(reason)
        super().__init__(self.reason)


class JobSnooze(Exception):
    """Raised by a handler: run the job again in ``seconds``, without using up an attempt."""

    def __init__(self, seconds: float) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds):
            raise TypeError(f"JobSnooze: seconds must be a finite number, got {seconds!r}")
        if seconds < 0:
            raise ValueError(f"JobSnooze: seconds must be >= 0, got {seconds!r}")
        self.seconds = float(seconds)
        super().__init__(f"snoozed for {self.seconds:g}s")


@dataclass(frozen=True, slots=True)
class JobContext:
    """Where a job runs: lets a handler reach the supervisor's database and name its host."""

    database_url: str | None = None
    node: str = ""
    cluster: str = "default"
    worker_id: int | str = 0


@dataclass(frozen=True, slots=True)
class Job:
    """One River job as a handler sees it. ``args`` and ``metadata`` are the decoded JSON."""

    id: int
    kind: str
    args: dict[str, Any] = field(default_factory=dict)
    attempt: int = 1
    max_attempts: int = 25
    queue: str = "default"
    metadata: dict[str, Any] = field(default_factory=dict)
    scheduled_at: datetime | None = None
    tags: tuple[str, ...] = ()
    priority: int = 1
    context: JobContext = field(default_factory=JobContext)
    # Created on first use (a cancel request, or a handler that asks): most jobs never need one.
    _cancel: threading.Event | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_row(cls, row: Any, *, context: JobContext | None = None) -> Job:
        """Build a ``Job`` from a River job row (an object with the columns as attributes, or a
        mapping); JSON columns may still be text or bytes."""
        get: Callable[..., Any] = (
            row.get if isinstance(row, Mapping) else lambda key, default=None: getattr(row, key, default)
        )
        return cls(
            id=int(get("id")),
            kind=str(get("kind")),
            args=_json_dict(get("args")),
            attempt=int(get("attempt", 1) or 0),
            max_attempts=int(get("max_attempts", 25)),
            queue=get("queue", "default"),
            metadata=_json_dict(get("metadata")),
            scheduled_at=get("scheduled_at"),
            tags=tuple(get("tags", None) or ()),
            priority=int(get("priority", 1)),
            context=context if context is not None else JobContext(),
        )

    def cancel_requested(self) -> bool:
        """True once the worker has received a cancel request for this job."""
        event = self._cancel
        return event is not None and event.is_set()

    def wait_for_cancel(self, timeout: float | None = None) -> bool:
        """Sleep up to ``timeout`` seconds, waking early on a cancel request; True if cancelled."""
        return self._cancel_event().wait(timeout)

    def request_cancel(self) -> None:
        """Called by the worker (from another thread) when a remote cancel arrives."""
        self._cancel_event().set()

    def _cancel_event(self) -> threading.Event:
        event = self._cancel
        if event is None:
            with _CANCEL_LOCK:  # the worker's request and the handler's wait may race to create it
                event = self._cancel
                if event is None:
                    event = threading.Event()
                    object.__setattr__(self, "_cancel", event)  # frozen: set once, like a cache
        return event


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


class DeclaredJob:
    """What ``@plugin.job(kind, ...)`` returns: the handler, still called as ``charge(job)``, that
    can also enqueue its kind from application code with the options the plugin declared.

    ``charge.enqueue(conn, customer=42)`` inserts ``{"customer": 42}`` with the declared queue,
    priority, max_attempts and unique options, on ``conn`` in its transaction (see
    ``river_supervisor.client``); ``await charge.enqueue_async(aconn, ...)`` on an AsyncConnection;
    ``charge.spec(...)`` builds one job for ``river_supervisor.enqueue_many``. Args are a mapping,
    keywords, or both. ``charge.configure(scheduled_in=60, priority=1)`` returns a copy whose inserts
    use those options instead (any of ``enqueue``'s options). Returns ``InsertResult`` as ``enqueue``.
    """

    def __init__(self, decl: JobDecl, overrides: Mapping[str, Any] | None = None) -> None:
        self.decl = decl
        self._overrides = dict(overrides or {})
        functools.update_wrapper(self, decl.handler)  # __name__, __doc__, __wrapped__ of the handler

    def __call__(self, job: Job) -> Any:
        return self.decl.handler(job)

    def __repr__(self) -> str:
        return f"DeclaredJob({self.decl.kind!r}, plugin={self.decl.plugin!r})"

    @property
    def kind(self) -> str:
        return self.decl.kind

    @property
    def options(self) -> JobOptions:
        return self.decl.options

    def configure(self, **options: Any) -> DeclaredJob:
        """A copy whose inserts use ``options`` (``queue=``, ``scheduled_in=``, ...) over the declared."""
        return DeclaredJob(self.decl, {**self._overrides, **options})

    def insert_options(self) -> dict[str, Any]:
        """The options an insert of this kind gets: the declaration's, then ``configure``'s."""
        declared = self.decl.options
        return {
            "queue": declared.queue,
            "priority": declared.priority,
            "max_attempts": declared.max_attempts,
            "unique": declared.unique,
            **self._overrides,
        }

    def spec(self, args: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Any:
        """One job of this kind (a validated ``JobSpec``) for ``enqueue_many``."""
        # Function-local: this module is layer 1 (no psycopg); the client is imported on first use.
        from .client import job_spec

        return job_spec(self.decl.kind, {**(args or {}), **kwargs}, **self.insert_options())

    def enqueue(self, conn: Any, args: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Any:
        """Insert one job of this kind on a psycopg ``Connection``; an ``InsertResult``."""
        from .client import enqueue_many

        return enqueue_many(conn, [self.spec(args, **kwargs)])[0]

    async def enqueue_async(self, conn: Any, args: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Any:
        """Insert one job of this kind on a psycopg ``AsyncConnection``; an ``InsertResult``."""
        from .client import enqueue_many_async

        return (await enqueue_many_async(conn, [self.spec(args, **kwargs)]))[0]


class Plugin:
    """A named set of job handlers and schedules, published as an entry point."""

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not PLUGIN_NAME_RE.match(name):
            raise DeclarationError(
                f"plugin name {name!r}: expected letters, digits, '_', '-' or '.',"
                " starting with a letter or digit"
            )
        self.name = name
        self.jobs: dict[str, JobDecl] = {}
        self.schedules: dict[str, PeriodicDecl] = {}

    def __repr__(self) -> str:
        return f"Plugin({self.name!r}, kinds={sorted(self.jobs)}, periodic={sorted(self.schedules)})"

    @property
    def kinds(self) -> list[str]:
        return sorted(self.jobs)

    @property
    def periodic_decls(self) -> list[PeriodicDecl]:
        return [self.schedules[key] for key in sorted(self.schedules)]

    def job(
        self,
        kind: str,
        *,
        queue: str = "default",
        max_attempts: int = 25,
        timeout: float | str | None = None,
        priority: int = 1,
        unique: UniqueOpts | None = None,
    ) -> Callable[[Handler], DeclaredJob]:
        """Register the decorated function as the handler of ``kind``.

        Returns a ``DeclaredJob``: the handler, called as before, that can also enqueue its kind
        with these options (``charge.enqueue(conn, customer=42)``).
        """
        where = f"plugin {self.name}: job {kind!r}"
        _check_kind(where, kind)
        if kind in self.jobs:
            raise DeclarationError(f"{where}: declared twice")
        options = JobOptions(
            queue=_check_queue(where, queue),
            max_attempts=_check_int(where, "max_attempts", max_attempts, low=1),
            timeout=None if timeout is None else _check_duration(where, "timeout", timeout),
            priority=_check_int(where, "priority", priority, low=PRIORITY_MIN, high=PRIORITY_MAX),
            unique=_check_unique(where, unique),
        )

        def register(handler: Handler) -> DeclaredJob:
            if not callable(handler):
                raise DeclarationError(f"{where}: handler must be callable, got {handler!r}")
            if kind in self.jobs:
                raise DeclarationError(f"{where}: declared twice")
            decl = JobDecl(self.name, kind, handler, options)
            self.jobs[kind] = decl
            return DeclaredJob(decl)

        return register

    def periodic(
        self,
        kind: str,
        *,
        id: str,  # the documented keyword, shadowing the builtin on purpose
        cron: str | None = None,
        every: float | str | None = None,
        args: Mapping[str, Any] | None = None,
        timezone: str = "UTC",
        missed: str | None = None,
        overlap: str | None = None,
        queue: str | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        monitor: bool = False,
    ) -> PeriodicDecl:
        """Declare a schedule enqueuing ``kind`` (which any installed plugin may handle)."""
        where = f"plugin {self.name}: periodic {id!r}"
        if not is_valid_periodic_id(id):
            raise DeclarationError(f"{where}: id must match River's id pattern ({KIND_RULE})")
        if id in self.schedules:
            raise DeclarationError(f"{where}: declared twice")
        _check_kind(where, kind)
        if (cron is None) == (every is None):
            raise DeclarationError(f"{where}: give exactly one of cron= or every=")
        if cron is not None and (not isinstance(cron, str) or not cron.strip()):
            raise DeclarationError(f"{where}: cron must be a non-empty string, got {cron!r}")
        seconds = None if every is None else _check_duration(where, "every", every)
        if missed is not None and missed not in MISSED_POLICIES:
            raise DeclarationError(
                f"{where}: missed must be one of {', '.join(MISSED_POLICIES)}, got {missed!r}"
            )
        if overlap is not None and overlap not in OVERLAP_POLICIES:
            raise DeclarationError(
                f"{where}: overlap must be one of {', '.join(OVERLAP_POLICIES)}, got {overlap!r}"
            )
        decl = PeriodicDecl(
            plugin=self.name,
            id=id,
            kind=kind,
            cron=cron.strip() if cron is not None else None,
            every=seconds,
            args=_check_args(where, args),
            timezone=_check_timezone(where, timezone),
            missed=missed,
            overlap=overlap,
            queue=None if queue is None else _check_queue(where, queue),
            priority=None
            if priority is None
            else _check_int(where, "priority", priority, low=PRIORITY_MIN, high=PRIORITY_MAX),
            max_attempts=None
            if max_attempts is None
            else _check_int(where, "max_attempts", max_attempts, low=1),
            monitor=bool(monitor),
        )
        self.schedules[id] = decl
        return decl


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


def call_handler(handler: Handler, job: Job) -> Any:
    """Run ``handler(job)``; an awaitable result is driven to completion on a fresh event loop."""
    result = handler(job)
    if inspect.isawaitable(result):
        return asyncio.run(_await(result))
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _json_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value).decode()
    if isinstance(value, str):
        value = json.loads(value)
    return dict(value)


# -- validation helpers: each raises DeclarationError naming ``where``.


def _check_kind(where: str, kind: object) -> str:
    if not is_valid_kind(kind):
        raise DeclarationError(f"{where}: kind {kind!r} must match River's kind pattern ({KIND_RULE})")
    return kind  # type: ignore[return-value]  # is_valid_kind checked it is a str


def _check_queue(where: str, queue: object) -> str:
    if not is_valid_queue_name(queue):
        raise DeclarationError(f"{where}: queue {queue!r} must be {QUEUE_NAME_RULE}")
    return queue  # type: ignore[return-value]  # is_valid_queue_name checked it is a str


def _check_unique(where: str, unique: object) -> UniqueOpts | None:
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


def _check_int(where: str, key: str, value: object, *, low: int, high: int | None = None) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        expected = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
        raise DeclarationError(f"{where}: {key} must be {expected}, got {value!r}")
    return value


def _check_duration(where: str, key: str, value: object) -> float:
    try:
        return duration_seconds(value)
    except ValueError:
        raise DeclarationError(
            f"{where}: {key} must be a positive number of seconds or a duration such as '90s', '5m',"
            f" '1h30m', got {value!r}"
        ) from None


def _check_args(where: str, args: Mapping[str, Any] | None) -> dict[str, Any]:
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


def _check_timezone(where: str, timezone: object) -> str:
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
