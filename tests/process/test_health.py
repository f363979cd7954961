"""``river-supervisor health``: what a load balancer or an orchestrator's probe sees."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.harness.supervisors import SupervisorFactory
from tests.harness.wait import wait_until


def health(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SENTRY_DSN")}
    return subprocess.run(
        [sys.executable, "-m", "river_supervisor", "health", "--config", str(config), *args],
        capture_output=True,
        text=True,
        cwd=config.parent,
        env=env,
        timeout=60,
    )


def test_health_is_ok_while_the_supervisor_and_all_its_workers_run_and_fails_after_it_stops(
    supervisors: SupervisorFactory, tmp_path: Path
) -> None:
    sup = supervisors.start("web-1", processes=2)
    config = tmp_path / "web-1.toml"
    healthy = lambda: health(config).returncode == 0  # noqa: E731
    wait_until(healthy, 60, "health exit 0", interval=0.5, context=sup.log_tail)
    doc = json.loads(health(config, "--json").stdout)
    assert doc["ok"] and doc["node"] == "web-1" and doc["database"] == "ok"
    assert [(s["workers"], s["workers_expected"]) for s in doc["supervisors"]] == [(2, 2)]

    sup.signal(signal.SIGTERM)
    assert sup.wait_exit(60) == 0
    stopped = health(config)
    assert stopped.returncode == 1
    assert stopped.stdout.startswith("unhealthy: no live supervisor for node web-1 in cluster default")


def test_health_gives_an_unreachable_database_its_own_exit_code(tmp_path: Path) -> None:
    config = tmp_path / "river-supervisor.toml"
    config.write_text('database_url = "postgresql://app:hunter2@127.0.0.1:1/x"\n', encoding="utf-8")
    plain = health(config)
    assert plain.returncode == 69 and plain.stderr.count("\n") == 1 and "hunter2" not in plain.stderr
    as_json = health(config, "--json")
    assert as_json.returncode == 69
    assert json.loads(as_json.stdout)["database"] == "unavailable"
    config.write_text("processes = 0\n", encoding="utf-8")
    assert health(config).returncode == 2  # a typo is not an outage
