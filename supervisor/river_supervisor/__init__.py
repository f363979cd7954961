"""river-supervisor: a per-host supervisor for River-compatible PostgreSQL job queues.

Two sides of one API. Plugins declare job handlers (``Plugin``, ``Job``, ``JobCancel``,
``JobSnooze``); application code enqueues jobs on its own psycopg connection, in its own
transaction (``enqueue``, ``enqueue_many``, ``enqueue_async``, ``enqueue_many_async``,
``job_spec``, ``UniqueOpts``; results are ``InsertResult``; bad input raises ``InvalidJob``).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = [
    "InsertResult",
    "InvalidJob",
    "Job",
    "JobCancel",
    "JobSnooze",
    "JobSpec",
    "Plugin",
    "UniqueOpts",
    "__version__",
    "enqueue",
    "enqueue_async",
    "enqueue_many",
    "enqueue_many_async",
    "job_spec",
]

_PLUGIN_API = {"Plugin", "Job", "JobCancel", "JobSnooze"}
_CLIENT_API = {
    "InsertResult",
    "JobSpec",
    "enqueue",
    "enqueue_async",
    "enqueue_many",
    "enqueue_many_async",
    "job_spec",
}


def __getattr__(name: str) -> object:
    # Lazy so that ``import river_supervisor`` stays cheap and side-effect free (the forkserver
    # preloads our worker module; plugins import this package): only the enqueue API, on first
    # use, brings in psycopg. ``UniqueOpts`` and ``InvalidJob`` are pure, for plugins to declare with.
    if name in _PLUGIN_API:
        from . import plugins

        return getattr(plugins, name)
    if name == "UniqueOpts":
        from .unique import UniqueOpts

        return UniqueOpts
    if name == "InvalidJob":
        from .errors import InvalidJob

        return InvalidJob
    if name in _CLIENT_API:
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module 'river_supervisor' has no attribute {name!r}")
