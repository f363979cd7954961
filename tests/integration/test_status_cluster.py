"""``status`` and ``check`` against two real ``river-supervisor run`` processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.harness.supervisors import SupervisorFactory, to_toml
from tests.harness.wait import wait_until
from tests.integration.test_status import run_cli

SETTINGS: dict[str, Any] = {
    "plugins": {"enabled": ["testjobs"]},
    "periodic": [{"id": "tick", "kind": "test.noop", "every": "1m"}],
}


def test_status_and_check_see_two_running_supervisors(supervisors: SupervisorFactory, tmp_path: Path) -> None:
    one = supervisors.start("node-1", **SETTINGS)
    two = supervisors.start("node-2", **SETTINGS)
    admin = tmp_path / "admin.toml"
    admin.write_text(to_toml({**supervisors.config("admin", **SETTINGS)}))

    def shown() -> dict[str, Any] | None:
        result = run_cli(tmp_path, "status", "--json", "--config", str(admin))
        assert result.returncode == 0, result.stderr
        doc: dict[str, Any] = json.loads(result.stdout)
        ready = (
            doc["leader"]
            and len(doc["nodes"]) == 2
            and any(p["defined_by"] for p in doc["periodic"])  # the leader registered its schedule
        )
        return doc if ready else None

    doc = wait_until(
        shown,
        30,
        "a leader, two nodes and durable schedule state in status --json",
        context=lambda: one.log_tail() + two.log_tail(),
    )

    assert doc["leader"]["node"] in ("node-1", "node-2") and doc["leader"]["term"] >= 1
    gained = doc["leadership_history"][0]
    assert (gained["event"], gained["node"], gained["term"]) == (
        "gained",
        doc["leader"]["node"],
        doc["leader"]["term"],
    )
    assert sorted(node["node"] for node in doc["nodes"]) == ["node-1", "node-2"]
    assert {node["pid"] for node in doc["nodes"]} == {one.pid, two.pid}
    assert not any(node["drift"] for node in doc["nodes"]) and doc["drift"]["drift"] is False
    assert all(node["same_as_this_host"] for node in doc["nodes"])
    (tick,) = doc["periodic"]
    assert tick["id"] == "tick" and tick["defined_by"] == doc["leader"]["node"] and not tick["orphaned"]

    result = run_cli(tmp_path, "check", "--json", "--config", str(admin))
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["checked"]["cluster"]["nodes"] == ["node-1", "node-2"]
