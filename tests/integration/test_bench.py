"""``river-supervisor bench`` runs end to end and cleans up after itself (never timed here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import psycopg

from tests.harness.supervisors import SupervisorFactory

LOST_LEADERSHIP = {"leadership.lost", "leadership.expired", "leadership.superseded", "leadership.resigned"}
BENCH_ARGS = [
    "--json",
    "--jobs",
    "2000",
    "--latency-samples",
    "20",
    "--processes",
    "2",
    "--enqueue-samples",
    "50",
]


def run_bench(database_url: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SENTRY_DSN"}}
    done = subprocess.run(
        [sys.executable, "-m", "river_supervisor", "bench", "--database-url", database_url, *BENCH_ARGS],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # exactly one document: anything else on stdout fails here


def bench_schemas(db: psycopg.Connection) -> list[str]:
    rows = db.execute("select nspname from pg_namespace where nspname like 'rs\\_bench\\_%%'").fetchall()
    return [row["nspname"] for row in rows]


def test_bench_json_reports_positive_figures_and_leaves_no_jobs_behind(
    database_url: str, db: psycopg.Connection
) -> None:
    doc = run_bench(database_url)

    assert doc["jobs"] == 2000
    assert doc["processes"] == 2
    for key in ("insert_jobs_per_second", "work_jobs_per_second"):
        assert doc[key] > 0, key
    assert doc["latency_ms"]["p50"] > 0
    assert doc["latency_ms"]["p99"] >= doc["latency_ms"]["p50"]
    assert doc["rss_mb"]["parent"] > 0
    assert len(doc["rss_mb"]["workers"]) == 2
    assert all(mb > 0 for mb in doc["rss_mb"]["workers"])
    assert doc["machine"]["cpus"] > 0
    assert doc["machine"]["python"] and doc["machine"]["postgres"]
    assert doc["workers_used"] == 2  # both worker processes ran jobs
    assert doc["enqueue"]["samples"] == 50
    for mode in ("sync", "async", "sync_in_transaction"):  # the application API's single-job enqueue
        figures = doc["enqueue"][mode]
        assert figures["jobs_per_second"] > 0 and figures["p99_ms"] >= figures["p50_ms"] > 0, mode
    assert bench_schemas(db) == []
    assert db.execute("select count(*) as n from river_job").fetchone()["n"] == 0


def test_bench_leaves_a_running_supervisor_and_its_jobs_alone(
    database_url: str, db: psycopg.Connection, supervisors: SupervisorFactory
) -> None:
    sup = supervisors.start(processes=1, queues={"default": {"concurrency": 5}})
    sup.wait_for_event("worker.started")
    later = db.execute(
        "insert into river_job (kind, args, state, scheduled_at) "
        "values ('test.noop', '{}', 'scheduled', now() + interval '1 day') returning *"
    ).fetchone()

    run_bench(database_url)

    assert db.execute("select * from river_job where id = %s", (later["id"],)).fetchone() == later
    bench_rows = db.execute("select count(*) as n from river_job where kind like 'river_supervisor.bench.%%'")
    assert bench_rows.fetchone()["n"] == 0
    assert sup.exit_code() is None  # still running
    assert not [e for e in sup.log_events() if e.get("level") in {"ERROR", "CRITICAL"}]
    assert not [e for e in sup.log_events() if e.get("event") in LOST_LEADERSHIP]
    assert bench_schemas(db) == []
