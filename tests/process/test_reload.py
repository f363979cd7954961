"""SIGHUP reloads the configuration file and the installed plugins without dropping work.

The plugin is installed the way pip leaves one (a package beside its ``*.dist-info`` with METADATA
and entry_points.txt) in a folder on the supervisor's PYTHONPATH, and upgraded in place on disk
between two signals: a new version that adds a job kind. The configuration file changes one
schedule's cadence at the same time.
"""

from __future__ import annotations

import itertools
import json
import shlex
import shutil
import signal
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from tests.harness.supervisors import SupervisorFactory, SupervisorProcess, to_toml
from tests.harness.wait import wait_until

PLUGIN = """
from river_supervisor import Plugin

plugin = Plugin("reloadjobs")

@plugin.job("reload.v1")
def v1(job):
    return None
"""
PLUGIN_V2_KIND = """
@plugin.job("reload.v2")
def v2(job):
    return {"version": 2}
"""


def _install(site: Path, version: str, code: str) -> None:
    for old in site.glob("rs_reloadjobs-*.dist-info"):
        shutil.rmtree(old)
    package = site / "rs_reloadjobs"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(code)
    dist = site / f"rs_reloadjobs-{version}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: rs-reloadjobs\nVersion: {version}\n")
    (dist / "entry_points.txt").write_text("[river_supervisor.plugins]\nreloadjobs = rs_reloadjobs:plugin\n")


def _beats(db: psycopg.Connection) -> list[tuple[int, datetime]]:
    """(generation, slot) of every job the periodic schedule enqueued, by slot."""
    rows = db.execute(
        "select (args->>'gen')::int as gen, scheduled_at from river_job"
        " where metadata->>'river:periodic_job_id' = 'beat' order by scheduled_at"
    ).fetchall()
    return [(row["gen"], row["scheduled_at"]) for row in rows]


def _node(db: psycopg.Connection) -> dict[str, Any]:
    return db.execute(
        "select fingerprint, manifest from river_supervisor_node where stopped_at is null"
    ).fetchone()


def _job(db: psycopg.Connection, kind: str, args: dict[str, Any]) -> int:
    row = db.execute(
        "insert into river_job (kind, args) values (%s, %s) returning id", (kind, json.dumps(args))
    ).fetchone()
    db.execute("select pg_notify(current_schema() || '.river_insert', '{\"queue\":\"default\"}')")
    return int(row["id"])


def _state(db: psycopg.Connection, job_id: int) -> dict[str, Any]:
    return db.execute(
        "select state::text as state, attempt from river_job where id = %s", (job_id,)
    ).fetchone()


def _systemctl_reload(sup: SupervisorProcess) -> None:
    """What ``systemctl reload`` runs: the shipped unit's ExecReload, with $MAINPID the supervisor."""
    unit = (
        Path(__file__).resolve().parents[2] / "examples" / "systemd" / "river-supervisor.service"
    ).read_text()
    command = next(line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("ExecReload="))
    subprocess.run(shlex.split(command.replace("$MAINPID", str(sup.pid))), check=True, timeout=30)


def _reload(sup: SupervisorProcess, event: str, count: int, *, systemctl: bool = False) -> dict[str, Any]:
    if systemctl:
        _systemctl_reload(sup)
    else:
        sup.signal(signal.SIGHUP)
    wait_until(lambda: len(sup.log_events(event)) == count, 30, f"{event} #{count}", context=sup.log_tail)
    return sup.log_events(event)[-1]


def test_sighup_loads_a_new_plugin_version_and_schedule_without_losing_work(
    supervisors: SupervisorFactory, db: psycopg.Connection, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    _install(site, "1.0", PLUGIN)
    settings: dict[str, Any] = {
        "plugins": {"enabled": ["testjobs", "reloadjobs"]},
        "queues": {"default": {"concurrency": 2}},
        "periodic": [{"id": "beat", "kind": "test.noop", "every": "2s", "args": {"gen": 1}}],
    }
    sup = supervisors.start(env={"PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1"}, **settings)
    wait_until(lambda: len(_beats(db)) >= 2, 30, "two slots of the 2 s schedule", context=sup.log_tail)
    sleeper = _job(db, "test.sleep", {"seconds": 3})
    wait_until(lambda: _state(db, sleeper)["state"] == "running", 30, "a job running in an old worker")
    before = _node(db)

    # Upgrade the plugin on disk (2.0 adds a kind) and change the schedule's cadence, then SIGHUP.
    _install(site, "2.0", PLUGIN + PLUGIN_V2_KIND)
    settings["periodic"] = [{"id": "beat", "kind": "test.noop", "every": "3s", "args": {"gen": 2}}]
    sup.config_path.write_text(to_toml(supervisors.config(sup.name, **settings)))
    reloaded = _reload(sup, "supervisor.reloaded", 1, systemctl=True)
    switch = datetime.fromisoformat(reloaded["switch"])

    after = _node(db)  # republished with the reload: drift sees the new fingerprint at once
    assert after["fingerprint"] == reloaded["fingerprint"] != before["fingerprint"]
    assert after["manifest"]["plugins"]["rs-reloadjobs"] == "2.0"

    new_kind = _job(db, "reload.v2", {})
    wait_until(
        lambda: _state(db, new_kind)["state"] == "completed", 30, "the new kind ran", context=sup.log_tail
    )
    # The old worker finished the job it was running (first attempt) and left without a fault.
    wait_until(
        lambda: _state(db, sleeper) == {"state": "completed", "attempt": 1}, 30, "the old job finished"
    )
    exits = wait_until(lambda: sup.log_events("worker.exited"), 30, "the old worker exited")
    assert [e["exitcode"] for e in exits] == [0] and exits[0]["level"] == "INFO", exits

    wait_until(lambda: sum(gen == 2 for gen, _ in _beats(db)) >= 2, 30, "two slots of the 3 s schedule")

    # A broken file: nothing changes, one line says why.
    sup.config_path.write_text("[[periodic]\nid = \n")
    failed = _reload(sup, "supervisor.reload_failed", 1)
    assert str(sup.config_path) in failed["message"] and "invalid TOML" in failed["message"]
    slots_then = len(_beats(db))
    wait_until(lambda: len(_beats(db)) >= slots_then + 1, 30, "the 3 s schedule still running")
    assert len(sup.log_events("supervisor.reloaded")) == 1
    assert len(sup.log_events("worker.started")) == 2  # the first worker and the one the reload started
    assert _node(db)["fingerprint"] == after["fingerprint"]
    errors = [line for line in sup.log_lines() if '"level": "ERROR"' in line]
    assert len(errors) == 1, errors

    # Every slot of the old schedule up to the reload, then every slot of the new one: none lost,
    # none twice (spacing exact), and the switch between the last old slot and the first new one.
    beats = _beats(db)
    old = [slot for gen, slot in beats if gen == 1]
    new = [slot for gen, slot in beats if gen == 2]
    print(f"reload at {switch.isoformat()}: old slots {[s.isoformat() for s in old]}")
    print(f"new slots {[s.isoformat() for s in new]}")
    generations = [gen for gen, _ in beats]  # by slot: every old one before every new one
    assert generations == sorted(generations)
    assert all(b - a == timedelta(seconds=2) for a, b in itertools.pairwise(old))
    assert all(b - a == timedelta(seconds=3) for a, b in itertools.pairwise(new))
    assert old[-1] <= switch < old[-1] + timedelta(seconds=2)
    assert new[0] - timedelta(seconds=3) <= switch < new[0]
