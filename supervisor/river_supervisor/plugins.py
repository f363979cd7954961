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

This module owns ``Plugin`` (the declaring) and is where plugins import the whole API from; its parts,
re-exported here: what a handler sees (``plugin_job``), the declarations and their checks
(``plugin_decls``), enqueueing through a declaration (``declared_job``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .declared_job import DeclaredJob
from .job_options import KIND_RULE, is_valid_periodic_id
from .plugin_decls import (
    PLUGIN_NAME_RE,
    PRIORITY_MAX,
    PRIORITY_MIN,
    DeclarationError,
    JobDecl,
    JobOptions,
    PeriodicDecl,
    check_args,
    check_duration,
    check_int,
    check_kind,
    check_queue,
    check_timezone,
    check_unique,
    duration_seconds,
)
from .plugin_job import Handler as Handler
from .plugin_job import Job, JobCancel, JobContext, JobSnooze, call_handler
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
        check_kind(where, kind)
        if kind in self.jobs:
            raise DeclarationError(f"{where}: declared twice")
        options = JobOptions(
            queue=check_queue(where, queue),
            max_attempts=check_int(where, "max_attempts", max_attempts, low=1),
            timeout=None if timeout is None else check_duration(where, "timeout", timeout),
            priority=check_int(where, "priority", priority, low=PRIORITY_MIN, high=PRIORITY_MAX),
            unique=check_unique(where, unique),
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
        check_kind(where, kind)
        if (cron is None) == (every is None):
            raise DeclarationError(f"{where}: give exactly one of cron= or every=")
        if cron is not None and (not isinstance(cron, str) or not cron.strip()):
            raise DeclarationError(f"{where}: cron must be a non-empty string, got {cron!r}")
        seconds = None if every is None else check_duration(where, "every", every)
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
            args=check_args(where, args),
            timezone=check_timezone(where, timezone),
            missed=missed,
            overlap=overlap,
            queue=None if queue is None else check_queue(where, queue),
            priority=None
            if priority is None
            else check_int(where, "priority", priority, low=PRIORITY_MIN, high=PRIORITY_MAX),
            max_attempts=None
            if max_attempts is None
            else check_int(where, "max_attempts", max_attempts, low=1),
            monitor=bool(monitor),
        )
        self.schedules[id] = decl
        return decl
