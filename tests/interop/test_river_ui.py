"""River UI v0.22.0 in headless Chromium on a database river-supervisor works: it shows our jobs and
queues, and its Retry, Cancel and Pause act on our hosts. Screenshots: tests/interop/artifacts/."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.harness.wait import wait_until
from tests.interop import river_go, river_ui
from tests.interop.river_go import RiverGo
from tests.interop.sides import Sides, enqueue, rows

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(
        river_ui.browser_missing_reason() is not None, reason=str(river_ui.browser_missing_reason())
    ),
]


@pytest.fixture(scope="session")
def riverui_bin() -> Path:
    river_ui.install_playwright()
    return river_go.build("riverui")


@pytest.fixture
def ui(riverui_bin: Path, river: RiverGo, sides: Sides, tmp_path: Path) -> Iterator[river_ui.RiverUI]:
    server = river_ui.RiverUI(riverui_bin, river.database_url, tmp_path / "riverui.log")
    yield server
    server.stop()


shot = river_ui.artifact


def _row(url: str, job_id: int) -> dict:
    return rows(url, [job_id])[job_id]


def test_river_ui_shows_our_failed_job_and_its_retry_and_cancel_act_on_our_hosts(
    sides: Sides, ui: river_ui.RiverUI
) -> None:
    url = sides.river.database_url
    sides.supervisor()
    failed_id = enqueue(url, "interop.fail", {"message": "card declined"}, "--max-attempts", "1")
    sleep_id = enqueue(url, "interop.sleep", {"seconds": 300})
    wait_until(
        lambda: _row(url, failed_id)["state"] == "discarded", 60, "our worker to discard the failing job"
    )
    wait_until(lambda: _row(url, sleep_id)["state"] == "running", 60, "the sleeping job to run on our worker")

    pages = river_ui.drive([
        {"goto": f"{ui.base}/jobs/{failed_id}", "wait_text": "card declined", "shot": shot("job-failed.png")},
        {"click": "Retry", "wait_text": "2 / 2", "shot": shot("job-retried.png")},
        {"goto": f"{ui.base}/jobs/{sleep_id}", "wait_text": "Running"},
        {"click": "Cancel", "wait_text": "Cancelled", "shot": shot("job-cancelled.png")},
        {"goto": f"{ui.base}/jobs?state=discarded", "wait_text": "interop.fail", "shot": shot("jobs.png")},
    ])  # fmt: skip

    failed_page = pages[0]["text"]
    assert "Discarded" in failed_page and "1 / 1" in failed_page
    assert "RuntimeError: card declined" in failed_page  # the error our worker recorded, per attempt
    retried = wait_until(
        lambda: (r := _row(url, failed_id))["attempt"] == 2 and r["state"] == "discarded" and r,
        60,
        "the retry",
    )
    assert len(retried["errors"]) == 2 and retried["max_attempts"] == 2  # River's retry added an attempt
    assert len(retried["attempted_by"]) == 2  # both attempts on our workers
    cancelled = wait_until(lambda: (r := _row(url, sleep_id))["state"] == "cancelled" and r, 30, "the cancel")
    assert cancelled["finalized_at"] is not None and "cancel_attempted_at" in cancelled["metadata"]
    api = ui.get(f"/api/jobs/{failed_id}")
    assert [e["error"] for e in api["errors"]] == ["RuntimeError: card declined"] * 2


def _queue_rows(url: str) -> list[tuple[str, bool]]:
    with psycopg.connect(url) as conn:
        return conn.execute("select name, paused_at is not null from river_queue order by name").fetchall()


def test_river_ui_lists_our_queues_and_its_pause_stops_our_workers(
    sides: Sides, ui: river_ui.RiverUI
) -> None:
    url = sides.river.database_url
    sides.supervisor()
    try:
        wait_until(lambda: _queue_rows(url), 15, "our supervisor to register its queues in river_queue")
    except AssertionError:
        pytest.skip("river-supervisor does not register its queues in river_queue yet (the operations issue)")
    for n in range(3):
        enqueue(
            url, "interop.go_only", {"n": n}, "--queue", "interop_b"
        )  # no plugin of ours runs it: it waits

    pages = river_ui.drive([
        {"goto": f"{ui.base}/queues", "wait_text": "interop_b", "shot": shot("queues.png")},
        {"goto": f"{ui.base}/queues/default", "wait_text": "default"},
        {"click": "Pause", "wait_text": "Paused", "shot": shot("queue-paused.png")},
    ])  # fmt: skip

    listed = {
        line.split("\t")[0]: line.split("\t")[1:] for line in pages[0]["text"].splitlines() if "\t" in line
    }
    assert listed["default"][1:4] == ["0", "0", "Active"]  # available, running, status
    assert listed["interop_b"][1:4] == ["3", "0", "Active"]
    assert ("default", True) in _queue_rows(url)
    held = enqueue(url, "interop.echo", {"n": "paused"})
    time.sleep(3)  # absence of work over a window longer than poll_interval (1 s) and a notification
    assert _row(url, held)["state"] == "available", "a paused queue's job was fetched"
    river_ui.drive(
        [
            {"goto": f"{ui.base}/queues/default", "wait_text": "Paused"},
            {"click": "Resume", "wait_text": "Active"},
        ]
    )
    wait_until(lambda: _row(url, held)["state"] == "completed", 60, "the job to run after Resume")
