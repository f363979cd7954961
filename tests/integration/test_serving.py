"""Jobs no live host can run: listed by ``status`` and ``check``, warned about by ``enqueue``.

Two hosts publish what they serve on their node rows; jobs wait in a queue both serve but of a kind
neither has, and in a queue neither serves. The real CLI reads the real rows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
from river_supervisor import nodes
from river_supervisor.insert import JobSpec, insert_many
from river_supervisor.leadership import NodeIdentity

WEB, BATCH = NodeIdentity.current("web-1"), NodeIdentity.current("batch-1")  # one process each
CONFIG = '[plugins]\nenabled = ["testjobs"]\n[queues.default]\nconcurrency = 1\n'


def cli(database_url: str, tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        _two_hosts(conn)  # a heartbeat: a few slow CLI runs must not outlast the 15 s liveness window
    env = {k: v for k, v in os.environ.items() if k not in ("SENTRY_DSN",)}
    env["DATABASE_URL"] = database_url
    (tmp_path / "river-supervisor.toml").write_text(CONFIG, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "river_supervisor", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )


def _two_hosts(db: psycopg.Connection) -> None:
    web = {"queues": ["default"], "kinds": ["test.noop"]}
    batch = {"queues": ["default", "reports"], "kinds": ["test.noop", "reports.daily"]}
    nodes.register(db, WEB, "default", "fp", {}, serves=web)
    nodes.register(db, BATCH, "default", "fp", {}, serves=batch)


def test_status_and_check_list_kinds_and_queues_no_live_host_can_run(
    db: psycopg.Connection, database_url: str, tmp_path: Path
) -> None:
    _two_hosts(db)
    insert_many(
        db,
        [JobSpec("test.noop")] * 2  # served
        + [JobSpec("billing.charge")] * 3  # queue served, kind on no host
        + [JobSpec("test.noop", queue="nightly")] * 4,  # queue on no host
    )
    done = cli(database_url, tmp_path, "status", "--json")
    assert done.returncode == 0, done.stderr
    unserved = json.loads(done.stdout)["unserved"]
    assert [(k["queue"], k["job_kind"], k["jobs"], k["hosts_lacking"]) for k in unserved["kinds"]] == [
        ("default", "billing.charge", 3, ["batch-1", "web-1"])
    ]
    assert [(q["queue"], q["jobs"], q["kinds"]) for q in unserved["queues"]] == [
        ("nightly", 4, {"test.noop": 4})
    ]

    human = cli(database_url, tmp_path, "status")
    assert "Jobs no live host can run" in human.stdout
    assert "queue nightly: no live host serves it; 4 jobs waiting" in human.stdout

    check = cli(database_url, tmp_path, "check", "--json")
    warnings = [w for w in json.loads(check.stdout)["warnings"] if w["kind"] == "jobs_unserved"]
    assert {w.get("job_kind") or w["queue"] for w in warnings} == {"billing.charge", "nightly"}


def test_enqueue_warns_when_no_live_host_serves_the_queue_or_has_the_kind(
    db: psycopg.Connection, database_url: str, tmp_path: Path
) -> None:
    _two_hosts(db)
    served = cli(database_url, tmp_path, "enqueue", "reports.daily", "--queue", "reports")
    assert served.returncode == 0 and "no live host" not in served.stderr, served.stderr
    no_queue = cli(database_url, tmp_path, "enqueue", "test.noop", "--queue", "nightly")
    assert no_queue.returncode == 0, no_queue.stderr
    assert "queue nightly: no live host in cluster default serves it" in no_queue.stderr
    no_kind = cli(database_url, tmp_path, "enqueue", "reports.daily")  # queue default: web-1 and batch-1
    assert "job kind reports.daily: no live host serving queue default has it" not in no_kind.stderr
    missing = cli(database_url, tmp_path, "enqueue", "billing.charge")
    assert "job kind billing.charge: no live host serving queue default has it" in missing.stderr
