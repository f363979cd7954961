"""What an operator sees in Sentry from real supervisors: Crons check-ins and drift."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import psycopg

from tests.harness.sentry_ingest import SentryIngest
from tests.harness.supervisors import SupervisorFactory
from tests.harness.wait import wait_until
from tests.process.test_leadership import leader_of, start_cluster


def test_monitored_schedule_sends_crons_checkins_with_its_monitor_config(
    supervisors: SupervisorFactory, db: psycopg.Connection, sentry_ingest: SentryIngest
) -> None:
    sup = supervisors.start(
        "node-1",
        sentry={"dsn": sentry_ingest.dsn},
        periodic=[{"id": "Nightly Report", "kind": "test.noop", "every": "1s", "monitor": True}],
    )
    sentry_ingest.wait_for_items(type="check_in", count=2, timeout=30)
    check_ins = [item.payload for item in sentry_ingest.check_ins()]
    assert {c["monitor_slug"] for c in check_ins} == {"nightly-report"}
    statuses = [c["status"] for c in check_ins]
    assert "in_progress" in statuses
    sentry_ingest.wait_for(
        lambda items: any(i.type == "check_in" and i.payload["status"] == "ok" for i in items),
        20,
        "an ok check-in",
    )
    ok = next(i.payload for i in sentry_ingest.check_ins() if i.payload["status"] == "ok")
    config = ok["monitor_config"]
    assert config["schedule"] == {"type": "interval", "value": 1, "unit": "minute"}
    assert config["timezone"] == "UTC"
    in_progress = next(i.payload for i in sentry_ingest.check_ins() if i.payload["status"] == "in_progress")
    assert ok["check_in_id"] == in_progress["check_in_id"] or any(
        c["check_in_id"] == ok["check_in_id"] for c in check_ins
    )
    sup.signal(signal.SIGTERM)
    assert sup.wait_exit(20) == 0


def _cli(*args: str, config: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SENTRY_DSN"}}
    return subprocess.run(
        [sys.executable, "-m", "river_supervisor", *args, "--config", config],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_host_with_an_extra_schedule_is_drift_everywhere_it_shows(
    supervisors: SupervisorFactory, db: psycopg.Connection, sentry_ingest: SentryIngest
) -> None:
    common = {"sentry": {"dsn": sentry_ingest.dsn}}
    sups = start_cluster(supervisors, 3, **common)
    wait_until(lambda: leader_of(db, sups), 20, "a leader")
    extra = {"id": "only-on-node-4", "kind": "test.noop", "cron": "*/5 * * * *"}
    fourth = supervisors.start("node-4", periodic=[extra], **common)
    fourth.wait_for_event("worker.started")

    # check on another host names the schedule, exit 1
    result = _cli("check", "--json", config=str(sups[1].config_path))
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert not report["ok"]
    assert any("only-on-node-4" in json.dumps(p) for p in report["problems"]), report

    # the leader sent exactly one drift event, however many heartbeats pass
    sentry_ingest.wait_for_items(
        type="event", where=lambda i: (i.fingerprint or [])[1:2] == ["drift"], timeout=30
    )
    wait_until(
        lambda: (
            db.execute("select count(*) as n from river_supervisor_node where drift").fetchone()["n"] >= 1
        ),
        20,
        "a node flagged as drifting",
    )
    status = json.loads(_cli("status", "--json", config=str(sups[0].config_path)).stdout)
    flagged = {n["node"]: n["drift"] for n in status["nodes"]}
    assert flagged["node-4"] is True
    assert flagged["node-2"] is False
    drift_events = [i for i in sentry_ingest.events() if (i.fingerprint or [])[1:2] == ["drift"]]
    assert len(drift_events) == 1
