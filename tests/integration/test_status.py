"""``river-supervisor status``: the real CLI against a database holding a lease, nodes, schedules and jobs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from river_supervisor import config, nodes
from river_supervisor.config import LeadershipConfig, PeriodicEntry
from river_supervisor.discovery import discover
from river_supervisor.insert import JobSpec, insert_many
from river_supervisor.leadership import Elector, NodeIdentity
from river_supervisor.manifest import LocalManifest, local_manifest
from river_supervisor.periodic import PeriodicEnqueuer
from river_supervisor.schedules import effective_schedules

from tests.harness.wait import wait_until

CONFIG = """
node = "admin"
[plugins]
enabled = ["testjobs"]

[queues.default]
concurrency = 2

[[periodic]]
id = "tick"
kind = "test.noop"
every = "1m"
"""


def run_cli(tmp_path: Path, *args: str, database_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SENTRY_DSN")}
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "river_supervisor", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "status.toml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
def local(config_path: Path) -> LocalManifest:
    cfg = config.load(str(config_path), environ={})
    return local_manifest(cfg, discover(cfg.plugins))


@pytest.fixture
def elector(database_url: str, db: psycopg.Connection) -> Iterator[Elector]:
    made = Elector(
        LeadershipConfig(ttl=30.0),
        cluster="default",
        identity=NodeIdentity.current("node-a"),
        conninfo=database_url,
        rand=lambda: 0.0,
    )
    made.start()
    yield made
    made.stop()


def _aware(text: str | None) -> datetime:
    assert text is not None
    value = datetime.fromisoformat(text)
    assert value.utcoffset() is not None, text
    return value


def _lead(elector: Elector) -> Any:
    elector.step()
    assert elector.term is not None, "the only elector did not gain the lease"
    return elector.term


def test_status_json_shows_leader_nodes_drift_schedules_and_queues(
    tmp_path: Path,
    config_path: Path,
    database_url: str,
    db: psycopg.Connection,
    local: LocalManifest,
    elector: Elector,
) -> None:
    term = _lead(elector)
    nodes.register(db, elector.identity, "default", local.digest, local.manifest)
    other = dict(local.manifest, schedules={**local.manifest["schedules"], "extra": {"kind": "test.noop"}})
    node_b = NodeIdentity.current("node-b")
    nodes.register(db, node_b, "default", "another-fingerprint", other)
    now = datetime.now(UTC)
    PeriodicEnqueuer(local.schedules.schedules, cluster="default", node="node-a").on_gained(db, term, now)
    gone = effective_schedules([], [PeriodicEntry(id="gone", kind="test.noop", every=60.0)]).schedules
    PeriodicEnqueuer(gone, cluster="default", node="node-old").on_gained(db, term, now)
    insert_many(db, [JobSpec("test.noop"), JobSpec("test.noop"), JobSpec("test.noop", queue="other")])

    result = run_cli(tmp_path, "status", "--json", "--config", str(config_path), database_url=database_url)

    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["cluster"] == "default"
    assert doc["leader"]["node"] == "node-a" and doc["leader"]["term"] == term.term
    assert _aware(doc["leader"]["since"]) == term.elected_at
    shown = {node["node"]: node for node in doc["nodes"]}
    assert set(shown) == {"node-a", "node-b"}
    assert shown["node-a"]["pid"] == elector.identity.pid and shown["node-a"]["fingerprint"] == local.digest
    assert (shown["node-a"]["drift"], shown["node-b"]["drift"]) == (False, True)
    assert shown["node-a"]["leader"] is True
    _aware(shown["node-b"]["last_seen"])
    assert doc["drift"]["drift"] is True
    assert {(d["node"], d["what"], d.get("id")) for d in doc["drift"]["differences"]} == {
        ("node-b", "schedule_added", "extra")
    }
    periodic = {entry["id"]: entry for entry in doc["periodic"]}
    assert set(periodic) == {"tick", "gone"}
    assert periodic["tick"]["kind"] == "test.noop" and periodic["tick"]["defined_here"]
    assert _aware(periodic["tick"]["next_run_at"]) > now
    assert not periodic["tick"]["orphaned"]
    assert periodic["gone"]["orphaned"] and periodic["gone"]["defined_by"] == "node-old"
    assert periodic["gone"]["next_run_at"] is None
    assert [entry["id"] for entry in doc["orphans"]["schedules"]] == ["gone"]
    assert doc["queues"]["default"]["available"] == 2
    assert doc["queues"]["other"] == {"available": 1}


def test_status_prints_aligned_sections(
    tmp_path: Path, config_path: Path, database_url: str, db: psycopg.Connection, local: LocalManifest
) -> None:
    nodes.register(db, NodeIdentity.current("node-a"), "default", local.digest, local.manifest)
    insert_many(db, [JobSpec("test.noop")])

    result = run_cli(tmp_path, "status", "--config", str(config_path), database_url=database_url)

    assert result.returncode == 0, result.stderr
    out = result.stdout
    for section in ("Leader", "Nodes", "Drift", "Periodic", "Queues"):
        assert f"\n{section}" in out, out
    assert "none (no supervisor has led this cluster)" in out
    assert "node-a" in out and "tick" in out and "no drift" in out
    assert "every 1m" in out and "every:60" not in out  # as people write it
    header = next(line for line in out.splitlines() if line.strip().startswith("QUEUE"))
    row = next(line for line in out.splitlines() if line.strip().startswith("default"))
    assert row.index("1") == header.index("AVAILABLE"), out  # columns line up


def test_status_without_our_schema_says_run_migrate(tmp_path: Path, empty_database_url: str) -> None:
    result = run_cli(tmp_path, "status", database_url=empty_database_url)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "run river-supervisor migrate" in result.stderr


def test_status_with_unreachable_database_is_one_line_exit_69(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "status", database_url="postgresql://app:hunter2@127.0.0.1:1/x")
    assert result.returncode == 69  # "unavailable": its own code, not 2 (a usage or configuration error)
    assert result.stderr.startswith("river-supervisor: error: database postgresql://app:***@127.0.0.1:1/x")
    assert result.stderr.count("\n") == 1 and "hunter2" not in result.stderr


def test_status_without_database_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "status")
    assert result.returncode == 2
    assert "no database configured" in result.stderr


def test_status_watch_redraws_until_ctrl_c_then_exits_0(tmp_path: Path, database_url: str) -> None:
    out = tmp_path / "watch.out"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SENTRY_DSN")}
    env["DATABASE_URL"] = database_url
    with out.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "river_supervisor", "status", "--watch", "0.2"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env=env,
        )
        try:
            wait_until(lambda: out.read_text().count("Cluster default") >= 2, 60, "two views", interval=0.1)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(30) == 0
        finally:
            proc.kill()
            proc.wait()
    assert "Traceback" not in out.read_text()
