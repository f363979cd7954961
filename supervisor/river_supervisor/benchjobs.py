"""The built-in ``bench`` plugin: a job kind that does nothing, for ``river-supervisor bench``.

Published under the entry point ``bench`` (group ``river_supervisor.plugins``) by the
river-supervisor distribution itself, so every host has it and fingerprints stay equal. Its one
kind does no work, so a benchmark measures the queue and the supervisor, not a handler. It
declares no schedules; jobs of it run only where someone inserts them (the bench uses its own
scratch schema, see ``river_supervisor.bench``).

Layer 1: imports only ``plugins``.
"""

from __future__ import annotations

from .plugins import Job, Plugin

NOOP_KIND = "river_supervisor.bench.noop"
QUEUE = "river_supervisor_bench"

plugin = Plugin("bench")


@plugin.job(NOOP_KIND, queue=QUEUE, max_attempts=1)
def noop(job: Job) -> None:
    """Do nothing: the job completes as soon as the worker has run it."""
    return None
