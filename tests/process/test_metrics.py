"""The metrics endpoint as an operator uses it: a real Prometheus scrapes two real supervisors.

Two hosts of one cluster each serve ``[metrics] listen``; Debian's ``prometheus`` scrapes both
every second. After a run of jobs, what Prometheus stored (queried over its HTTP API) must match
the database: jobs finished by kind and outcome summed over the hosts, the queue gauges each host
reads, and exactly one host reporting itself leader, the one the lease row names, at its term.
"""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
from river_supervisor import nodes

from tests.harness.prometheus import PrometheusServer, free_port
from tests.harness.supervisors import SupervisorFactory
from tests.harness.wait import wait_until

NOOP, FAILING = 30, 5
PARKED = 3  # available jobs in a queue no host serves: a gauge that must hold still
RETRYABLE = 2  # retryable jobs due in an hour


def _insert(db: psycopg.Connection, kind: str, count: int, **columns: Any) -> None:
    db.execute(
        "insert into river_job (kind, args, queue, state, scheduled_at, max_attempts)"
        " select %(kind)s, '{}', %(queue)s, %(state)s::river_job_state,"
        " now() + %(delay)s * interval '1 second', %(max_attempts)s from generate_series(1, %(count)s)",
        {
            "kind": kind,
            "count": count,
            "queue": columns.get("queue", "default"),
            "state": columns.get("state", "available"),
            "delay": columns.get("delay", 0),
            "max_attempts": columns.get("max_attempts", 25),
        },
    )
    db.execute("select pg_notify(current_schema() || '.river_insert', '{\"queue\":\"default\"}')")


def _db_finished(db: psycopg.Connection) -> dict[tuple[str, str], float]:
    rows = db.execute(
        "select kind, state::text as state, count(*) as n from river_job"
        " where state in ('completed', 'discarded') group by 1, 2"
    ).fetchall()
    return {(row["kind"], row["state"]): float(row["n"]) for row in rows}


def _db_queue_gauges(db: psycopg.Connection) -> dict[tuple[str, str], float]:
    rows = db.execute(
        "select queue, state::text as state, count(*) as n from river_job"
        " where state in ('available', 'running', 'retryable') group by 1, 2"
    ).fetchall()
    found = {(row["queue"], row["state"]): float(row["n"]) for row in rows}
    return {
        (q, s): found.get((q, s), 0.0)
        for q in ("default", "parked")
        for s in ("available", "running", "retryable")
    }


def test_prometheus_scrapes_two_hosts_and_its_numbers_match_the_database(
    supervisors: SupervisorFactory, db: psycopg.Connection, tmp_path: Any
) -> None:
    ports = {"node-a": free_port(), "node-b": free_port()}
    hosts = {
        name: supervisors.start(
            name, queues={"default": {"concurrency": 4}}, metrics={"listen": f"127.0.0.1:{port}"}
        )
        for name, port in ports.items()
    }
    node_of = {f"127.0.0.1:{port}": name for name, port in ports.items()}
    prometheus = PrometheusServer(tmp_path, list(node_of))
    try:
        prometheus.start()
        for host in hosts.values():
            host.wait_for_event("metrics.listening")
        wait_until(
            lambda: prometheus.targets_up() == dict.fromkeys(node_of, 1.0),
            60,
            "both supervisors scraped",
            context=prometheus.log_tail,
        )

        _insert(db, "test.noop", PARKED, queue="parked", delay=-60)
        _insert(db, "test.noop", RETRYABLE, state="retryable", delay=3600)
        _insert(db, "test.noop", NOOP)
        _insert(db, "test.raise", FAILING, max_attempts=1)
        expected_finished = {("test.noop", "completed"): NOOP, ("test.raise", "discarded"): FAILING}
        wait_until(lambda: _db_finished(db) == expected_finished, 60, "jobs finished in the database")
        started = time.monotonic()

        # Jobs finished, summed over the hosts: exactly what the rows say.
        def finished() -> dict[tuple[str, str], float]:
            samples = prometheus.query("sum by (kind, outcome) (river_supervisor_jobs_finished_total)")
            return {(s["metric"]["kind"], s["metric"]["outcome"]): s["value"] for s in samples}

        wait_until(lambda: finished() == _db_finished(db), 60, "job counters equal to the rows")
        durations = prometheus.query("sum by (kind) (river_supervisor_job_duration_seconds_count)")
        assert {s["metric"]["kind"]: s["value"] for s in durations} == {
            "test.noop": NOOP,
            "test.raise": FAILING,
        }

        # Each host's queue gauges equal the rows (they read the database, cached for 2 s).
        def gauges(node: str) -> dict[tuple[str, str], float]:
            samples = prometheus.query(
                f'river_supervisor_queue_jobs{{instance="{_instance(node_of, node)}"}}'
            )
            return {(s["metric"]["queue"], s["metric"]["state"]): s["value"] for s in samples}

        expected_gauges = _db_queue_gauges(db)
        assert expected_gauges[("parked", "available")] == PARKED
        assert expected_gauges[("default", "retryable")] == RETRYABLE
        for node in hosts:
            wait_until(lambda node=node: gauges(node) == expected_gauges, 30, f"queue gauges of {node}")
        oldest_db = db.execute(
            "select extract(epoch from now() - min(scheduled_at))::float8 as age from river_job"
            " where queue = 'parked' and state = 'available'"
        ).fetchone()["age"]
        ages = prometheus.query('river_supervisor_queue_oldest_available_age_seconds{queue="parked"}')
        assert len(ages) == 2
        for sample in ages:  # read within the last few seconds: cache (2 s) + scrape interval (1 s)
            assert oldest_db - 15 <= sample["value"] <= oldest_db, (sample, oldest_db)

        # The leader gauge: one host says 1, the one the lease row names, at the lease's term.
        lease = nodes.leader(db, "default")
        assert lease is not None and lease["live"]

        def leaders() -> dict[str, float]:
            return {
                node_of[s["metric"]["instance"]]: s["value"]
                for s in prometheus.query("river_supervisor_leader")
            }

        wait_until(
            lambda: leaders() == {name: float(name == lease["node"]) for name in hosts}, 30, "leader gauges"
        )
        terms = prometheus.query("max(river_supervisor_leader_term)")
        assert terms[0]["value"] == lease["term"]
        workers = prometheus.query("sum(river_supervisor_workers)")
        assert workers[0]["value"] == 2
        # The README's table lists exactly the metrics a host serves.
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['node-a']}/metrics", timeout=10) as reply:
            served = set(re.findall(r"^# TYPE (river_supervisor_\w+) ", reply.read().decode(), re.MULTILINE))
        assert served == _readme_metrics()

        # The shipped Grafana dashboard: every query is valid PromQL over served metrics, and its
        # leader panel names the leader.
        for title, expr in _dashboard_queries():
            used = {re.sub(r"_bucket$", "", name) for name in re.findall(r"river_supervisor_\w+", expr)}
            assert used <= served | {"river_supervisor_node_info"}, (title, used - served)
            samples = prometheus.query(expr.replace("$__rate_interval", "1m").replace("$cluster", ".*"))
            if title == "Leader":
                assert [s["metric"]["node"] for s in samples] == [lease["node"]]
        print(f"prometheus matched the database {time.monotonic() - started:.1f}s after the jobs finished")
    finally:
        prometheus.stop()


def test_a_metrics_address_in_use_stops_the_boot_with_one_line(
    supervisors: SupervisorFactory, db: psycopg.Connection
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        sup = supervisors.start(metrics={"listen": address})
        assert sup.wait_exit(60) == 2
    errors = [line for line in sup.log_lines() if "error" in line.lower()]
    assert errors == [
        f"river-supervisor: error: {sup.config_path}: [metrics] listen: cannot listen on {address}: "
        "Address already in use"
    ], sup.log_tail()
    assert (
        db.execute("select count(*) as n from river_supervisor_node").fetchone()["n"] == 0
    )  # nothing claimed


def _dashboard_queries() -> list[tuple[str, str]]:
    path = Path(__file__).resolve().parents[2] / "examples" / "grafana" / "river-supervisor.json"
    dashboard = json.loads(path.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def _readme_metrics() -> set[str]:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Metrics", 1)[1].split("\n### ", 1)[0]
    return set(re.findall(r"^\| `(river_supervisor_\w+)`", section, re.MULTILINE))


def _instance(node_of: dict[str, str], node: str) -> str:
    return next(instance for instance, name in node_of.items() if name == node)
