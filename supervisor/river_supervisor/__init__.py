"""river-supervisor: a per-host supervisor for River-compatible PostgreSQL job queues."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Job", "JobCancel", "JobSnooze", "Plugin", "__version__"]


def __getattr__(name: str) -> object:
    # Lazy so that ``import river_supervisor`` stays cheap and side-effect free
    # (the forkserver preloads our worker module; plugins import this package).
    if name in {"Plugin", "Job", "JobCancel", "JobSnooze"}:
        from . import plugins

        return getattr(plugins, name)
    raise AttributeError(name)
