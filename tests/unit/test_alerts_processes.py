"""Each process runs its own Sentry client: a parent and forkserver workers all get through."""

from __future__ import annotations

import os
import subprocess
import sys

import multiprocess
from river_supervisor import alerts
from river_supervisor.config import SentryConfig

from tests.harness import fixtures
from tests.harness.sentry_ingest import SentryIngest

sentry_ingest = fixtures.sentry_ingest

EVENTS_PER_WORKER = 5


def _worker_main(dsn: str, index: int) -> None:
    # What a worker does: its own client after start, report, flush before the os._exit that
    # multiprocess ends every child with (the SDK's atexit flush never runs there).
    alerts.init(SentryConfig(dsn=dsn), role="worker", cluster="default", node=f"web-1/w{index}")
    for n in range(EVENTS_PER_WORKER):
        alerts.crash_loop_event("default", f"web-1/w{index}", crashes=n, window=1.0)
    alerts.flush(10)


def test_parent_and_forkserver_workers_each_report_and_all_events_arrive(sentry_ingest: SentryIngest) -> None:
    # The parent reports (so it runs the SDK's transport thread) before starting workers; the
    # forkserver's children never inherit that thread or its socket.
    assert alerts.init(
        SentryConfig(dsn=sentry_ingest.dsn), role="supervisor", cluster="default", node="web-1"
    )
    try:
        alerts.drift_event("default", "digest-1", [], ["web-1"])
        ctx = multiprocess.get_context("forkserver")
        procs = [ctx.Process(target=_worker_main, args=(sentry_ingest.dsn, i)) for i in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0, 0]
        alerts.flush(5)
        events = sentry_ingest.wait_for_items(type="event", count=1 + 2 * EVENTS_PER_WORKER, timeout=30)
    finally:
        alerts.close(2)
    by_role: dict[str, list[str]] = {}
    for e in events:
        by_role.setdefault(e.tags["role"], []).append(e.tags["node"])
    assert by_role["supervisor"] == ["web-1"]
    assert sorted(by_role["worker"]) == sorted(
        ["web-1/w0"] * EVENTS_PER_WORKER + ["web-1/w1"] * EVENTS_PER_WORKER
    )


def test_a_separate_python_process_reports_over_http(sentry_ingest: SentryIngest) -> None:
    code = (
        "import os, sys\n"
        "from river_supervisor import alerts\n"
        "from river_supervisor.config import SentryConfig\n"
        "alerts.init(SentryConfig(dsn=sys.argv[1]), role='cli', cluster='default', node='ci')\n"
        "alerts.plugin_load_error_event('broken', 'rs-broken', 'ImportError: nope')\n"
        "alerts.flush(10)\n"
        "os._exit(0)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")}
    done = subprocess.run([sys.executable, "-c", code, sentry_ingest.dsn], env=env, timeout=60, check=False)
    assert done.returncode == 0
    [event] = sentry_ingest.wait_for_items(type="event", tag=("role", "cli"))
    assert event.fingerprint == ["river-supervisor", "plugin-load", "broken"]
    assert event.tags["node"] == "ci"
