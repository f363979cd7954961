"""``river-supervisor check --offline``: the real CLI on good and bad configurations, no database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

GOOD = """
[plugins]
enabled = ["testjobs"]

[[periodic]]
id = "tick"
kind = "test.noop"
every = "1m"
"""


def check(tmp_path: Path, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "check.toml"
    path.write_text(text)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SENTRY_DSN")}
    return subprocess.run(
        [sys.executable, "-m", "river_supervisor", "check", "--config", str(path), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )


def report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def test_check_strict_passes_a_clean_install(tmp_path: Path) -> None:
    # The package's own bench plugin is always installed; its queue needs no [queues] entry.
    result = check(tmp_path, '[plugins]\nenabled = ["bench"]\n', "--json", "--offline", "--strict")
    assert result.returncode == 0, result.stdout + result.stderr
    assert report(result)["warnings"] == []


def test_check_shows_each_setting_and_where_it_came_from(tmp_path: Path) -> None:
    text = "processes = 3\n" + GOOD
    path = tmp_path / "check.toml"
    path.write_text(text)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SENTRY_DSN")}
    env["DATABASE_URL"] = "postgresql://app:hunter2@db/app"
    argv = [sys.executable, "-m", "river_supervisor", "check", "--config", str(path), "--offline"]
    run = lambda *extra: subprocess.run(  # noqa: E731
        [*argv, *extra], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60
    )
    settings = {row["key"]: row for row in report(run("--json"))["settings"]}
    assert (settings["processes"]["value"], settings["processes"]["source"]) == (3, f"file {path}")
    assert settings["database_url"] == {
        "key": "database_url",
        "value": "postgresql://app:***@db/app",
        "source": "env DATABASE_URL",
    }
    assert settings["leadership.ttl"]["source"] == "default"
    shown = run("--show-config").stdout
    assert "hunter2" not in shown
    line = next(line for line in shown.splitlines() if line.startswith("processes "))
    assert line.split() == ["processes", "3", "file", str(path)]


def test_check_passes_a_good_configuration_offline(tmp_path: Path) -> None:
    result = check(tmp_path, GOOD, "--json", "--offline")
    assert result.returncode == 0, result.stdout + result.stderr
    doc = report(result)
    assert doc["ok"] is True and doc["problems"] == [] and doc["warnings"] == []
    assert doc["checked"]["plugins"] == ["testjobs"] and doc["checked"]["schedules"] == ["tick"]
    assert doc["checked"]["cluster"] is None and doc["checked"]["cluster_skipped"] == "--offline"
    assert len(doc["checked"]["fingerprint"]) == 64


def test_check_without_a_database_configured_checks_offline(tmp_path: Path) -> None:
    result = check(tmp_path, GOOD)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not compared (no database configured)" in result.stdout


def test_check_exits_2_on_a_bad_configuration(tmp_path: Path) -> None:
    result = check(tmp_path, GOOD + '[leadership]\ntll = "15s"\n', "--json")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "[leadership] tll: unknown key (did you mean `ttl`?)" in lines[0]


def test_check_names_an_unknown_kind_and_a_bad_cron(tmp_path: Path) -> None:
    text = GOOD + (
        '\n[[periodic]]\nid = "nowhere"\nkind = "no.such.kind"\nevery = "5m"\n'
        '\n[[periodic]]\nid = "broken-cron"\nkind = "test.noop"\ncron = "61 * * * *"\n'
    )
    result = check(tmp_path, text, "--json", "--offline")
    assert result.returncode == 1, result.stdout + result.stderr
    doc = report(result)
    assert doc["ok"] is False
    by_kind = {problem["kind"]: problem for problem in doc["problems"]}
    assert set(by_kind) == {"periodic_kind_unknown", "periodic_invalid"}
    assert by_kind["periodic_kind_unknown"]["id"] == "nowhere"
    assert "no.such.kind" in by_kind["periodic_kind_unknown"]["message"]
    assert by_kind["periodic_invalid"]["id"] == "broken-cron"
    assert "broken-cron" in by_kind["periodic_invalid"]["message"]
    assert "61" in by_kind["periodic_invalid"]["message"]
    assert doc["checked"]["schedules"] == ["nowhere", "tick"]  # the good ones are still checked


def test_check_reports_a_plugin_that_is_not_installed(tmp_path: Path) -> None:
    result = check(tmp_path, '[plugins]\nenabled = ["testjobs", "ghost"]\n', "--json", "--offline")
    assert result.returncode == 1
    (problem,) = report(result)["problems"]
    assert problem["kind"] == "plugin_load_error" and problem["plugin"] == "ghost"


def test_an_unserved_queue_is_a_warning_and_fails_only_with_strict(tmp_path: Path) -> None:
    text = GOOD + "\n[queues.other]\nconcurrency = 1\n"
    result = check(tmp_path, text, "--json", "--offline")
    assert result.returncode == 0, result.stdout
    (warning,) = report(result)["warnings"]
    assert warning["kind"] == "queue_not_served" and warning["queue"] == "default"
    assert "test.noop" in warning["job_kinds"] and warning["schedules"] == ["tick"]

    strict = check(tmp_path, text, "--json", "--offline", "--strict")
    assert strict.returncode == 1 and report(strict)["ok"] is False


def test_check_prints_problems_for_people(tmp_path: Path) -> None:
    text = GOOD + '\n[[periodic]]\nid = "nowhere"\nkind = "no.such.kind"\nevery = "5m"\n'
    result = check(tmp_path, text, "--offline")
    assert result.returncode == 1
    assert "problems:" in result.stdout and "[periodic_kind_unknown] periodic nowhere" in result.stdout
    assert result.stdout.rstrip().endswith("1 problem(s) found")
