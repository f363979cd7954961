"""``manifest`` and ``status`` without a database: this host's fingerprint, check's offline problems,
the messages that name drift, and the human rendering of ``status``."""

from __future__ import annotations

from typing import Any

import pytest
from river_supervisor import Job, Plugin
from river_supervisor.commands.status import render
from river_supervisor.config import Config, PeriodicEntry, QueueConfig
from river_supervisor.discovery import LoadedPlugin, PluginSet, RegisteredHandler
from river_supervisor.errors import ConfigError
from river_supervisor.manifest import local_manifest
from river_supervisor.status import _drift_problem, check_offline


def plugin_set(version: str = "1.0", queue: str = "default") -> PluginSet:
    plugin = Plugin("billing")

    @plugin.job("billing.charge", queue=queue, max_attempts=5)
    def charge(job: Job) -> None:
        return None

    plugin.periodic("billing.charge", id="charge", cron="*/5 * * * *", args={"batch": 10})
    return PluginSet(
        plugins=(LoadedPlugin("billing", "my-billing", version, plugin=plugin),),
        handlers={k: RegisteredHandler("billing", d.handler, d.options) for k, d in plugin.jobs.items()},
        periodic=tuple(plugin.periodic_decls),
    )


def config(*entries: PeriodicEntry, **kwargs: Any) -> Config:
    return Config(path="site.toml", node="web-1", periodic=entries, **kwargs)


def test_local_manifest_holds_schedules_with_defaults_and_plugin_versions() -> None:
    local = local_manifest(config(), plugin_set())
    assert local.manifest["plugins"] == {"my-billing": "1.0"}
    charge = local.manifest["schedules"]["charge"]
    assert (charge["cron"], charge["max_attempts"], charge["args"]) == ("*/5 * * * *", 5, {"batch": 10})
    assert [s.id for s in local.schedules.schedules] == ["charge"]
    assert local_manifest(config(), plugin_set()).digest == local.digest
    assert local_manifest(config(), plugin_set("1.1")).digest != local.digest


def test_a_disabled_schedule_leaves_the_manifest() -> None:
    local = local_manifest(
        config(PeriodicEntry(id="charge", enabled=False, given=frozenset({"enabled"}))), plugin_set()
    )
    assert local.manifest["schedules"] == {} and local.schedules.disabled == {"charge"}


def test_strict_manifest_raises_on_a_bad_schedule_and_tolerant_reports_each() -> None:
    cfg = config(
        PeriodicEntry(id="bad-cron", kind="billing.charge", cron="0 25 * * *"),
        PeriodicEntry(id="no-kind", cron="0 1 * * *"),
        PeriodicEntry(id="unknown", kind="nope", every=60.0),
    )
    with pytest.raises(ConfigError):
        local_manifest(cfg, plugin_set())
    local = local_manifest(cfg, plugin_set(), tolerant=True)
    assert sorted(local.manifest["schedules"]) == ["charge", "unknown"]
    problems = {(p["kind"], p["id"]) for p in local.schedules.problems}
    assert problems == {
        ("periodic_invalid", "bad-cron"),
        ("periodic_invalid", "no-kind"),
        ("periodic_kind_unknown", "unknown"),
    }


def test_check_offline_warns_about_a_queue_this_host_does_not_serve() -> None:
    cfg = config(queues={"default": QueueConfig("default")})
    plugins = plugin_set(queue="billing")
    problems, warnings = check_offline(cfg, plugins, local_manifest(cfg, plugins))
    assert problems == []
    (warning,) = warnings
    assert (warning["queue"], warning["job_kinds"], warning["schedules"]) == (
        "billing",
        ["billing.charge"],
        ["charge"],
    )
    assert "[queues.billing]" in warning["message"]


@pytest.mark.parametrize(
    ("difference", "expected"),
    [
        (
            {"node": "web-2", "what": "schedule_added", "id": "x"},
            "periodic x (billing.charge) is defined on node web-2",
        ),
        (
            {"node": "web-2", "what": "schedule_missing", "id": "y"},
            "periodic y is defined on this host but not on node web-2",
        ),
        (
            {
                "node": "web-2",
                "what": "schedule_changed",
                "id": "z",
                "fields": {"cron": {"reference": "a", "node": "b"}},
            },
            "periodic z differs on node web-2: cron 'a' on this host, 'b' there",
        ),
        (
            {
                "node": "web-2",
                "what": "plugin_version",
                "plugin": "my-billing",
                "reference": "1.0",
                "version": "1.1",
            },
            "plugin distribution my-billing: version 1.0 on this host, 1.1 on node web-2",
        ),
        (
            {"node": "web-2", "what": "plugin_missing", "plugin": "my-billing", "version": "1.0"},
            "plugin distribution my-billing 1.0 is installed on this host but not on node web-2",
        ),
    ],
)
def test_drift_problems_name_node_schedule_and_versions(difference: dict[str, Any], expected: str) -> None:
    manifests = {"web-2": {"schedules": {"x": {"kind": "billing.charge"}}}}
    problem = _drift_problem(difference, manifests)
    assert problem["kind"] == "drift" and problem["what"] == difference["what"]
    assert problem["message"].startswith(expected), problem["message"]


def test_status_rendering_has_aligned_sections() -> None:
    doc = {
        "cluster": "eu",
        "generated_at": "2025-01-01T12:00:00.123456+00:00",
        "leader": {
            "node": "web-1",
            "term": 7,
            "since": "2025-01-01T11:00:00+00:00",
            "expires_at": "2025-01-01T12:00:15+00:00",
        },
        "nodes": [
            {
                "node": "web-1",
                "pid": 10,
                "started_at": None,
                "last_seen": "2025-01-01T11:59:59+00:00",
                "fingerprint": "a" * 64,
                "drift": False,
                "leader": True,
                "workers": {"ready": 4, "expected": 4, "down": []},
            },
            {
                "node": "web-2",
                "pid": 2000,
                "started_at": None,
                "last_seen": "2025-01-01T11:59:58+00:00",
                "fingerprint": "b" * 64,
                "drift": True,
                "leader": False,
                "workers": {"ready": 1, "expected": 2, "down": [{"slot": 1, "reason": "killed by SIGSEGV"}]},
            },
        ],
        "drift": {
            "summary": "1 node(s) differ from web-1: 1 schedule added",
            "reference": "web-1",
            "differences": [{"node": "web-2", "what": "schedule_added", "id": "x"}],
        },
        "periodic": [
            {
                "id": "charge",
                "kind": "billing.charge",
                "schedule": "cron:*/5 * * * * tz=UTC",
                "last_slot": "2025-01-01T11:55:00+00:00",
                "next_run_at": "2025-01-01T12:00:00+00:00",
                "defined_here": True,
                "orphaned": False,
            },
            {
                "id": "old",
                "kind": "x.y",
                "schedule": "every:60",
                "last_slot": None,
                "next_run_at": None,
                "defined_here": False,
                "orphaned": True,
            },
        ],
        "queues": {"default": {"available": 3, "running": 12}, "other": {}},
    }
    text = render(doc)
    lines = text.splitlines()
    assert lines[0] == "Cluster eu (as of 2025-01-01T12:00:00+00:00)"
    assert "  web-1  term 7  since 2025-01-01T11:00:00+00:00  lease until 2025-01-01T12:00:15+00:00" in lines
    header = next(line for line in lines if line.startswith("  NODE"))
    web2 = next(line for line in lines if line.startswith("  web-2 "))
    assert web2.index("2000") == header.index("PID") and web2.index("DRIFT") == header.index("DRIFT")
    assert web2.index("1/2") == header.index("WORKERS")
    assert (
        "  web-2 (pid 2000): worker 1 cannot start, its breaker is open"
        " (the supervisor retries it every 60s): killed by SIGSEGV"
    ) in lines
    assert "    periodic x is defined on node web-2 but not on node web-1" in lines
    old = next(line for line in lines if line.startswith("  old "))
    assert old.rstrip().endswith("ORPHANED")
    queue_header = next(line for line in lines if line.startswith("  QUEUE"))
    assert queue_header.split() == ["QUEUE", "AVAILABLE", "RUNNING", "TOTAL"]
    assert next(line for line in lines if line.startswith("  default")).split() == [
        "default",
        "3",
        "12",
        "15",
    ]
    assert next(line for line in lines if line.startswith("  other")).split() == ["other", "0", "0", "0"]


def test_status_names_paused_queues_under_the_queue_counts() -> None:
    doc = {
        "cluster": "eu",
        "generated_at": "2025-01-01T12:00:00+00:00",
        "leader": None,
        "nodes": [],
        "drift": {"summary": "no drift", "differences": []},
        "periodic": [],
        "queues": {"default": {"available": 3}, "mail": {}},
        "paused_queues": [{"name": "mail", "paused_at": "2025-01-01T11:00:00.5+00:00"}],
    }
    lines = render(doc).splitlines()
    assert (
        lines[lines.index("Queues (jobs by state)") + 4] == "  paused: mail (since 2025-01-01T11:00:00+00:00)"
    )


def test_queues_list_rendering_has_state_counts_age_and_hosts() -> None:
    from river_supervisor.commands.queues import render as render_queues

    entry = {"paused_at": None, "state": "active", "jobs": {}, "oldest_available_age": None, "hosts": []}
    text = render_queues(
        [
            {
                **entry,
                "name": "default",
                "jobs": {"available": 12, "running": 3},
                "oldest_available_age": 95.0,
                "hosts": [{"node": "web-1", "concurrency": 20}, {"node": "web-2", "concurrency": 20}],
            },
            {
                **entry,
                "name": "mail",
                "state": "paused",
                "paused_at": "2025-01-01T11:00:00.5+00:00",
                "jobs": {"available": 4},
                "oldest_available_age": 7300.0,
            },
            {**entry, "name": "orphan"},
        ]
    )
    lines = text.splitlines()
    assert lines[0].split() == ["QUEUE", "STATE", "AVAILABLE", "RUNNING", "OLDEST", "AVAILABLE", "HOSTS"]
    assert lines[1].split() == ["default", "active", "12", "3", "95.0s", "web-1", "(20),", "web-2", "(20)"]
    assert lines[2].split()[:6] == ["mail", "paused", "since", "2025-01-01T11:00:00", "4", "0"]
    assert lines[2].split()[6:] == ["2.0h", "-"]
    assert lines[3].split() == ["orphan", "active", "0", "0", "-", "-"]
    assert lines[1].index("12") == lines[0].index("AVAILABLE")
    assert render_queues([]).startswith("no queues")
