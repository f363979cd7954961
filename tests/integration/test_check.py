"""``river-supervisor check`` against the live cluster: drift, version skew and orphans, by name."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from river_supervisor import nodes
from river_supervisor.config import LeadershipConfig, PeriodicEntry
from river_supervisor.leadership import Elector, NodeIdentity
from river_supervisor.manifest import LocalManifest
from river_supervisor.periodic import PeriodicEnqueuer
from river_supervisor.schedules import effective_schedules

from tests.integration.test_status import config_path, local, run_cli

__all__ = ["config_path", "local"]  # fixtures, imported for pytest

TESTJOBS = "river-supervisor-testjobs"


def check(tmp_path: Path, config_path: Path, database_url: str, *args: str) -> tuple[int, dict[str, Any]]:
    result = run_cli(
        tmp_path, "check", "--json", "--config", str(config_path), *args, database_url=database_url
    )
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def register(db: psycopg.Connection, name: str, manifest: dict[str, Any]) -> None:
    nodes.register(db, NodeIdentity.current(name), "default", f"fingerprint-of-{name}", manifest)


def test_check_passes_when_every_live_node_agrees(
    tmp_path: Path, config_path: Path, database_url: str, db: psycopg.Connection, local: LocalManifest
) -> None:
    register(db, "web-1", local.manifest)
    register(db, "web-2", local.manifest)
    code, doc = check(tmp_path, config_path, database_url)
    assert code == 0, doc["problems"]
    assert doc["checked"]["cluster"]["nodes"] == ["web-1", "web-2"]


def test_check_names_a_schedule_another_node_defines(
    tmp_path: Path, config_path: Path, database_url: str, db: psycopg.Connection, local: LocalManifest
) -> None:
    extra = {"kind": "test.noop", "cron": "0 3 * * *", "every": None, "timezone": "UTC"}
    register(db, "web-2", dict(local.manifest, schedules={**local.manifest["schedules"], "nightly": extra}))

    code, doc = check(tmp_path, config_path, database_url)

    assert code == 1 and doc["ok"] is False
    (problem,) = doc["problems"]
    assert (problem["kind"], problem["what"], problem["node"], problem["id"]) == (
        "drift",
        "schedule_added",
        "web-2",
        "nightly",
    )
    assert "nightly" in problem["message"] and "web-2" in problem["message"]


def test_check_names_the_fields_of_a_changed_schedule(
    tmp_path: Path, config_path: Path, database_url: str, db: psycopg.Connection, local: LocalManifest
) -> None:
    changed = dict(local.manifest["schedules"]["tick"], every=120.0)
    register(db, "web-2", dict(local.manifest, schedules={"tick": changed}))

    code, doc = check(tmp_path, config_path, database_url)

    assert code == 1
    (problem,) = doc["problems"]
    assert (problem["what"], problem["id"]) == ("schedule_changed", "tick")
    assert problem["fields"] == {"every": {"reference": 60.0, "node": 120.0}}
    assert "every 60.0 on this host, 120.0 there" in problem["message"]


def test_check_names_plugin_version_skew(
    tmp_path: Path, config_path: Path, database_url: str, db: psycopg.Connection, local: LocalManifest
) -> None:
    mine = local.manifest["plugins"][TESTJOBS]
    register(db, "web-2", dict(local.manifest, plugins={TESTJOBS: "9.9.9"}))

    code, doc = check(tmp_path, config_path, database_url)

    assert code == 1
    (problem,) = doc["problems"]
    assert (problem["what"], problem["plugin"], problem["reference"], problem["version"]) == (
        "plugin_version",
        TESTJOBS,
        mine,
        "9.9.9",
    )
    assert f"{TESTJOBS}: version {mine} on this host, 9.9.9 on node web-2" in problem["message"]


def test_check_names_an_orphaned_schedule_with_the_node_that_defined_it(
    tmp_path: Path,
    config_path: Path,
    database_url: str,
    db: psycopg.Connection,
    local: LocalManifest,
) -> None:
    elector = Elector(
        LeadershipConfig(ttl=30.0),
        cluster="default",
        identity=NodeIdentity.current("old-leader"),
        conninfo=database_url,
        rand=lambda: 0.0,
    )
    elector.start()
    try:
        elector.step()
        assert elector.term is not None
        gone = effective_schedules([], [PeriodicEntry(id="gone", kind="test.noop", every=60.0)]).schedules
        PeriodicEnqueuer(gone, cluster="default", node="old-leader").on_gained(
            db, elector.term, datetime.now(UTC)
        )
    finally:
        elector.stop()

    code, doc = check(tmp_path, config_path, database_url)

    assert code == 1
    (problem,) = doc["problems"]
    assert (problem["kind"], problem["id"], problem["defined_by"]) == (
        "orphaned_schedule",
        "gone",
        "old-leader",
    )
    assert "old-leader" in problem["message"]


def test_check_offline_skips_the_cluster(
    tmp_path: Path, config_path: Path, database_url: str, db: psycopg.Connection, local: LocalManifest
) -> None:
    register(db, "web-2", dict(local.manifest, plugins={TESTJOBS: "9.9.9"}))
    code, doc = check(tmp_path, config_path, database_url, "--offline")
    assert code == 0 and doc["checked"]["cluster"] is None


@pytest.mark.parametrize("offline", [False, True])
def test_an_unreachable_database_is_a_problem_unless_offline(
    tmp_path: Path, config_path: Path, offline: bool
) -> None:
    url = "postgresql://app:hunter2@127.0.0.1:1/x"
    code, doc = check(tmp_path, config_path, url, *(["--offline"] if offline else []))
    if offline:
        assert code == 0 and doc["problems"] == []
    else:
        assert code == 1
        (problem,) = doc["problems"]
        assert problem["kind"] == "database_unreachable" and "hunter2" not in problem["message"]
        assert "127.0.0.1:1" in problem["message"]


def test_an_unmigrated_database_is_a_problem(
    tmp_path: Path, config_path: Path, empty_database_url: str
) -> None:
    code, doc = check(tmp_path, config_path, empty_database_url)
    assert code == 1
    (problem,) = doc["problems"]
    assert problem["kind"] == "schema_missing" and "run river-supervisor migrate" in problem["message"]
