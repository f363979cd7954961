"""Jobs, both directions, between River's Go client (v0.51.2) and river-supervisor on one database."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import river_supervisor

from tests.harness.wait import wait_until
from tests.interop import sides as sides_mod
from tests.interop.river_go import RiverGo
from tests.interop.sides import Sides, enqueue, error_texts, rows, shape, wait_final

pytestmark = pytest.mark.interop

# One InsertTx transaction of River's client: plain, scheduled, unique (twice: the second is skipped),
# prioritised with tags and metadata into a second queue, and failures (discarded at once; retried
# once and then discarded).
BATCH = [
    {"kind": "interop.echo", "args": {"n": 1}},
    {"kind": "interop.echo", "args": {"n": 2}, "scheduled_in": 2},
    {"kind": "interop.echo", "args": {"n": 3}, "unique_by_args": True},
    {"kind": "interop.echo", "args": {"n": 3}, "unique_by_args": True},
    {
        "kind": "interop.echo",
        "args": {"n": 4},
        "queue": "interop_b",
        "priority": 3,
        "tags": ["alpha", "beta"],
        "metadata": {"source": "go", "team": "interop"},
    },
    {"kind": "interop.fail", "args": {"n": 5, "message": "boom"}, "max_attempts": 1, "queue": "interop_b"},
    {"kind": "interop.fail", "args": {"n": 6, "message": "boom twice"}, "max_attempts": 2},
]


def _insert_batch(river: RiverGo) -> list[int]:
    inserted = river.insert(BATCH)
    assert [r["skipped"] for r in inserted] == [False, False, False, True, False, False, False]
    return sorted({r["id"] for r in inserted})


def _by_n(found: dict[int, dict]) -> dict[int, dict]:
    return {row["args"]["n"]: row for row in found.values()}


def test_river_inserted_jobs_end_on_our_workers_as_on_rivers(sides: Sides) -> None:
    url = sides.river.database_url
    # River's workers first: the reference rows.
    ids = _insert_batch(sides.river)
    go = sides.go()
    river_rows = _by_n(wait_final(url, ids))
    go.stop()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("delete from river_job")

    ids = _insert_batch(sides.river)
    sides.supervisor()
    our_rows = _by_n(wait_final(url, ids))

    for n, ours in our_rows.items():
        assert shape(ours) == shape(river_rows[n]), f"job n={n}:\n{sides_mod.dumps([ours, river_rows[n]])}"
    assert {n: row["state"] for n, row in our_rows.items()} == {
        1: "completed", 2: "completed", 3: "completed", 4: "completed", 5: "discarded", 6: "discarded",
    }  # fmt: skip
    assert our_rows[4]["metadata"] == {
        "source": "go", "team": "interop", "output": {"echo": {"n": 4}, "attempt": 1},
    }  # fmt: skip
    assert our_rows[2]["attempted_at"] >= our_rows[2]["scheduled_at"]
    # the error text: River records a Go error's message; we record the exception's type and message
    assert error_texts(river_rows[6]) == ["boom twice", "boom twice"]
    assert error_texts(our_rows[6]) == ["RuntimeError: boom twice", "RuntimeError: boom twice"]


def test_our_enqueued_jobs_run_on_rivers_go_workers(sides: Sides) -> None:
    url = sides.river.database_url
    cli_id = enqueue(
        url, "interop.go_only", {"n": 10}, "--queue", "go_side", "--priority", "2",
        "--tag", "cli", "--metadata", '{"from": "cli"}',
    )  # fmt: skip
    scheduled_id = enqueue(url, "interop.go_only", {"n": 11}, "--queue", "go_side", "--in", "2s")
    with psycopg.connect(url) as conn, conn.transaction():  # the application's own transaction
        api = river_supervisor.enqueue(
            conn, "interop.go_only", {"n": 12}, queue="go_side", tags=["api"], metadata={"from": "api"},
            scheduled_at=datetime.now(UTC) - timedelta(seconds=1),
        )  # fmt: skip
    ids = [cli_id, scheduled_id, api.job.id]

    go = sides.go(queues="go_side")
    done = wait_final(url, ids)

    for job_id in ids:
        row = done[job_id]
        assert row["state"] == "completed", sides_mod.dumps(row)
        assert row["attempt"] == 1
        assert row["attempted_by"] == [go.client_id]
        assert row["errors"] is None
        assert row["metadata"]["output"] == {"echo": row["args"], "attempt": 1}
    assert done[cli_id]["metadata"]["from"] == "cli" and done[cli_id]["tags"] == ["cli"]
    assert done[cli_id]["priority"] == 2
    assert done[api.job.id]["metadata"]["from"] == "api"
    assert done[scheduled_id]["attempted_at"] >= done[scheduled_id]["scheduled_at"]


def _attempts_by(row: dict, who: str) -> int:
    return sum(1 for name in row["attempted_by"] if name == who)


def test_a_job_failed_by_our_worker_is_finished_by_river(sides: Sides) -> None:
    url = sides.river.database_url
    (job,) = sides.river.insert(
        [{"kind": "interop.handoff", "args": {"fail_on": "python"}, "queue": "handoff"}]
    )
    # poll rarely: after its failure the job is due again at once (River's 1 s backoff), and this
    # side must stop before it would try again
    ours = sides.supervisor(queues=("handoff",), poll_interval="60s")
    failed = wait_until(
        lambda: (r := rows(url, [job["id"]])[job["id"]])["errors"] and r["state"] != "running" and r,
        60, "our worker's failed attempt",
    )  # fmt: skip
    ours.signal(15)
    assert ours.wait_exit(60) == 0

    go = sides.go(queues="handoff")
    row = wait_final(url, [job["id"]])[job["id"]]

    print(
        f"failed by us: attempt {failed['attempt']}, state {failed['state']};"
        f" finished by River: attempt {row['attempt']}"
    )
    assert row["state"] == "completed"
    assert row["attempt"] == len(row["errors"]) + 1
    assert set(error_texts(row)) == {"RuntimeError: failed on python"}
    assert row["attempted_by"][-1] == go.client_id and _attempts_by(row, go.client_id) == 1
    assert row["metadata"]["output"] == {"finished_on": "go", "attempt": row["attempt"]}
    assert row["finalized_at"] is not None


def test_a_job_failed_by_river_is_finished_by_our_worker(sides: Sides) -> None:
    url = sides.river.database_url
    (job,) = sides.river.insert([{"kind": "interop.handoff", "args": {"fail_on": "go"}, "queue": "handoff"}])
    # River's worker retries it 6 s later (its NextRetry), so it goes to 'retryable', not back at once
    go = sides.go("--handoff-retry-in", "6s", queues="handoff")
    go.wait_for(lambda line: line.get("event") == "job_failed", "River's failed attempt")
    go.stop()
    failed = rows(url, [job["id"]])[job["id"]]

    sides.supervisor(queues=("handoff",))  # our leader's scheduler makes it available when due
    row = wait_final(url, [job["id"]])[job["id"]]

    assert failed["state"] == "retryable" and failed["errors"][0]["error"] == "failed on go"
    assert row["state"] == "completed"
    assert row["attempt"] == 2 and error_texts(row) == ["failed on go"]
    assert row["attempted_by"][0] == go.client_id and len(row["attempted_by"]) == 2
    assert row["metadata"]["output"] == {"finished_on": "python", "attempt": 2}


def test_a_cancel_from_rivers_client_reaches_a_job_running_on_our_worker(sides: Sides) -> None:
    url = sides.river.database_url
    (job,) = sides.river.insert([{"kind": "interop.sleep", "args": {"seconds": 300}}])
    sides.supervisor()
    wait_until(
        lambda: rows(url, [job["id"]])[job["id"]]["state"] == "running", 60, "the job running on our worker"
    )

    started = time.monotonic()
    answer = sides.river.run("cancel", "--job-id", str(job["id"]))
    row = wait_final(url, [job["id"]], timeout=30)[job["id"]]
    print(f"River's JobCancel to a cancelled row on our worker: {time.monotonic() - started:.2f}s")

    assert answer["state"] == "running"  # River marks it and notifies; the worker ends it
    assert row["state"] == "cancelled"
    assert row["finalized_at"] is not None
    assert "cancel_attempted_at" in row["metadata"]
    assert row["attempt"] == 1 and len(row["errors"]) == 1
