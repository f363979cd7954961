"""What a handler sees and may raise: ``Job``, ``JobContext``, ``JobCancel``, ``JobSnooze``.

Owns the job as a handler gets it (decoded from a River row, with its cooperative cancel), the
exceptions that end a job other than by failing, and ``call_handler``, the one place that runs a
handler, sync or async (for the worker and ``river_supervisor.testing``). Part of the plugin API,
re-exported by ``plugins``: layer 1, it imports only the standard library.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Handler = Callable[["Job"], Any]
_CANCEL_LOCK = threading.Lock()


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
