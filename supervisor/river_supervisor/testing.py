"""Helpers for plugin authors: run a handler inline, the way a worker would, without a database.

```python
from river_supervisor.testing import run_job
from my_billing import plugin

def test_charge():
    assert run_job(plugin, "billing.charge", {"customer": 7}) == {"charged": 7}
```

``run_job`` builds a ``Job`` (attempt 1, the kind's queue and options) and runs it through the
worker's own executor (``executor.run``), so ``async def`` handlers run exactly as in a worker, and
a result the worker could not record (not JSON, or over its size limit) is logged as it would be.
What the handler raises (``JobCancel``, ``JobSnooze``, any error) propagates to the test.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from . import executor
from .plugins import Handler, Job, JobContext, JobOptions, Plugin

_ids = itertools.count(1)


def make_job(
    kind: str,
    args: Mapping[str, Any] | None = None,
    *,
    options: JobOptions | None = None,
    context: JobContext | None = None,
    **fields: Any,
) -> Job:
    """A ``Job`` with sensible defaults; ``fields`` override any of ``Job``'s fields."""
    options = options or JobOptions()
    values: dict[str, Any] = {
        "id": next(_ids),
        "kind": kind,
        "args": dict(args or {}),
        "attempt": 1,
        "max_attempts": options.max_attempts,
        "queue": options.queue,
        "priority": options.priority,
        "scheduled_at": datetime.now(UTC),
        "context": context or JobContext(node="test", worker_id="test"),
    }
    values.update(fields)
    return Job(**values)


def run_job(
    target: Plugin | Handler | str,
    kind_or_args: str | Mapping[str, Any] | None = None,
    args: Mapping[str, Any] | None = None,
    **fields: Any,
) -> Any:
    """Run one job inline and return what its handler returned.

    - ``run_job(plugin, "billing.charge", {...})``: the handler ``plugin`` registered for the kind;
    - ``run_job("shell.run", {...})``: the handler any installed plugin registers for the kind;
    - ``run_job(handler, {...}, kind="x.y")``: a bare function.

    ``fields`` go to ``make_job`` (``attempt=3``, ``context=JobContext(database_url=...)``, ...).
    """
    options: JobOptions | None = None
    if isinstance(target, Plugin):
        kind = kind_or_args
        if not isinstance(kind, str) or kind not in target.jobs:
            raise KeyError(f"plugin {target.name} has no job kind {kind!r} (it has {target.kinds})")
        decl = target.jobs[kind]
        handler, options = decl.handler, decl.options
    elif isinstance(target, str):
        from .discovery import discover

        kind, args = target, kind_or_args  # type: ignore[assignment]
        found = discover().handler(kind)
        if found is None:
            raise KeyError(f"no installed plugin registers job kind {kind!r}")
        handler, options = found.handler, found.options
    else:
        handler, args = target, kind_or_args  # type: ignore[assignment]
        kind = fields.pop("kind", getattr(handler, "__name__", "test.job"))
    if args is not None and not isinstance(args, Mapping):
        raise TypeError(f"args must be a mapping, got {type(args).__name__}")
    job = make_job(kind, args, options=options, **fields)
    ran = executor.run(job, handler)
    if ran.raised is not None:
        raise ran.raised
    return ran.result
