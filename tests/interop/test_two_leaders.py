"""Two leaders, no conflict: River's Go client (its elector, its periodic job) beside our cluster."""

from __future__ import annotations

import time

import psycopg
import pytest

from tests.harness.wait import wait_until
from tests.interop.sides import Sides, rows

pytestmark = pytest.mark.interop

RUNS = 3  # periodic runs each side completes while both leaders run side by side


def _leaders(url: str) -> tuple[list[tuple], list[tuple]]:
    with psycopg.connect(url) as conn:
        river = conn.execute("select name, leader_id, elected_at from river_leader").fetchall()
        ours = conn.execute("select cluster, leader_id, term from river_supervisor_leader").fetchall()
    return river, ours


def _periodic(url: str, periodic_id: str) -> list[dict]:
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "select state::text, attempted_by, scheduled_at, metadata from river_job"
            " where metadata->>'river:periodic_job_id' = %s order by id",
            (periodic_id,),
        ).fetchall()
    return [
        dict(zip(("state", "attempted_by", "scheduled_at", "metadata"), row, strict=True)) for row in found
    ]


def test_river_and_our_cluster_each_lead_their_own_world(sides: Sides) -> None:
    url = sides.river.database_url
    periodic = [{"id": "ours-every-second", "kind": "interop.echo", "every": "1s", "missed": "latest"}]
    ours = [sides.supervisor(f"py-{n}", queues=("default",), periodic=periodic) for n in (1, 2)]
    go = sides.go("--periodic-every", "1s", queues="river_go")
    # a job each side cannot run, in a queue the other side does not work: left alone by both
    (go_only,) = sides.river.insert([{"kind": "interop.go_only", "args": {"n": 1}, "queue": "default"}])
    (py_only,) = sides.river.insert([{"kind": "interop.py_only", "args": {"n": 2}, "queue": "river_go"}])

    first = wait_until(lambda: all(_leaders(url)) and _leaders(url), 60, "a River leader and one of ours")
    started = time.monotonic()
    wait_until(
        lambda: all(
            sum(r["state"] == "completed" for r in _periodic(url, periodic_id)) >= RUNS
            for periodic_id in ("interop-go-periodic", "ours-every-second")
        ),
        90,
        f"{RUNS} completed periodic runs on each side",
    )
    window = time.monotonic() - started
    last = _leaders(url)

    print(f"River's leader: {first[0]}; ours: {first[1]}; after {window:.1f}s: {last}")
    assert last == first  # neither side took over, resigned or re-elected the other's leadership
    assert first[0][0][1] == go.client_id
    assert first[1][0][1].startswith("py-")
    river_runs, our_runs = _periodic(url, "interop-go-periodic"), _periodic(url, "ours-every-second")
    print(f"periodic jobs in {window:.1f}s: River's {len(river_runs)}, ours {len(our_runs)}")
    in_flight = {"completed", "available", "running"}  # never failed, retried or discarded
    assert {r["state"] for r in river_runs} <= in_flight
    assert all(r["attempted_by"] == [go.client_id] for r in river_runs if r["state"] == "completed")
    assert {r["state"] for r in our_runs} <= in_flight
    assert all(r["attempted_by"][0].startswith("py-") for r in our_runs if r["attempted_by"])
    # each of our slots was enqueued once, whatever River's periodic enqueuer did
    slots = [r["scheduled_at"] for r in our_runs]
    assert len(slots) == len(set(slots))
    left = rows(url, [go_only["id"], py_only["id"]])
    for job in (go_only, py_only):
        assert (left[job["id"]]["state"], left[job["id"]]["attempt"]) == ("available", 0)
    for proc in ours:
        assert proc.exit_code() is None
