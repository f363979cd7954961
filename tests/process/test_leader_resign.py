"""``river-supervisor leader resign`` against real supervisors: leadership moves to another host
(the figure is printed with ``pytest -s``, target 200 ms), and it is refused with no other live host."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import psycopg

from tests.harness.supervisors import SupervisorFactory
from tests.harness.wait import wait_until
from tests.integration.test_cli_jobs import cli
from tests.process.test_leadership import leader_of, lease, start_cluster


def test_leader_resign_moves_leadership_and_is_refused_without_another_live_host(
    supervisors: SupervisorFactory, db: psycopg.Connection, database_url: str, tmp_path: Path
) -> None:
    sups = start_cluster(supervisors, 2)
    first = wait_until(lambda: leader_of(db, sups), 20, "a first leader")
    before = lease(db)
    assert before is not None

    done = cli(database_url, "leader", "resign", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    moved = json.loads(done.stdout)
    after = lease(db)
    assert after is not None and after["term"] > before["term"]
    second = leader_of(db, sups)
    assert second is not None and second is not first
    assert (moved["previous"]["node"], moved["leader"]["node"]) == (first.name, second.name)
    assert moved["leader"]["term"] == after["term"]
    print(f"\nleader resign: {first.name} -> {second.name} in {moved['handoff_ms']:.1f} ms (target 200 ms)")
    first.wait_for_event("leadership.resigned", where=lambda e: e["detail"] == {"reason": "requested"})

    # The old leader stops; the new one is alone: a resign would leave the cluster leaderless.
    first.signal(signal.SIGTERM)
    assert first.wait_exit(30) == 0
    refused = cli(database_url, "leader", "resign", cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        f"river-supervisor: error: cluster default: refusing to ask {second.name} (term {after['term']}) to"
        " resign: no other live host could take over, the cluster would be left without a leader"
    ]
    assert lease(db)["term"] == after["term"]  # type: ignore[index]

    unknown = cli(database_url, "leader", "resign", "--cluster", "nobody", cwd=tmp_path)
    assert unknown.returncode == 1 and "cluster nobody: no live leader" in unknown.stderr
