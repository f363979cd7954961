"""River's queue rows (``river_queue``) against PostgreSQL: reported, paused, resumed, listed and reaped
exactly as River does it (riverqueue/river ``river_queue.sql``, ``client.go``, ``queue_cleaner.go``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from river_supervisor import nodes, queue, queues, status
from river_supervisor.errors import QueueNotFound
from river_supervisor.leadership import NodeIdentity
from river_supervisor.maintenance import QueueCleaner

from tests.integration.test_cli_jobs import cli
from tests.integration.test_periodic import take_lease

PROTOCOL = json.loads((Path(__file__).parents[1] / "conformance" / "protocol.json").read_text())
PAYLOADS = {n["name"]: n for n in PROTOCOL["notifications"]}


@pytest.fixture
def control(database_url: str) -> Iterator[psycopg.Connection]:
    """A connection LISTENing on ``<schema>.river_control``, as River's producers do."""
    conn = psycopg.connect(database_url, autocommit=True)
    schema = conn.execute("select current_schema()").fetchone()[0]
    conn.execute(f'LISTEN "{queue.channel(queue.TOPIC_CONTROL, schema)}"')
    yield conn
    conn.close()


def received(conn: psycopg.Connection, expect: int = 1) -> list[str]:
    """The payloads delivered: waits for ``expect`` of them (up to 2 s), then for any more (0.1 s)."""
    first = [n.payload for n in conn.notifies(timeout=2.0, stop_after=expect)] if expect else []
    return first + [n.payload for n in conn.notifies(timeout=0.1)]


def row(db: psycopg.Connection, name: str) -> dict[str, Any] | None:
    return db.execute("select * from river_queue where name = %s", (name,)).fetchone()


def test_report_creates_rows_as_river_does_and_then_only_refreshes_updated_at(db: psycopg.Connection) -> None:
    assert queues.report(db, ["default", "mail"]) == {"default": None, "mail": None}
    created = row(db, "default")
    assert created is not None
    assert (created["metadata"], created["paused_at"]) == ({}, None)
    # An operator (River UI) paused it and set metadata; a day passes without a report.
    db.execute(
        "update river_queue set metadata = '{\"owner\": \"ops\"}', paused_at = now() - interval '1 hour',"
        " updated_at = now() - interval '1 day' where name = 'default'"
    )
    paused_at = row(db, "default")["paused_at"]  # type: ignore[index]
    assert queues.report(db, ["default"]) == {"default": paused_at}
    after = row(db, "default")
    assert after is not None
    assert (after["metadata"], after["paused_at"], after["created_at"]) == (
        {"owner": "ops"},
        paused_at,
        created["created_at"],
    )
    assert after["updated_at"] > datetime.now(UTC) - timedelta(minutes=1)


def test_pause_and_resume_write_the_row_and_send_rivers_payload(
    db: psycopg.Connection, control: psycopg.Connection
) -> None:
    queues.report(db, ["priority", "other"])
    assert queues.pause(db, "priority") == 1
    (payload,) = received(control)
    assert payload == '{"action":"pause","queue":"priority"}'  # Go's json.Marshal, byte for byte
    assert json.loads(payload) == PAYLOADS["pause"]["payload"]
    first = row(db, "priority")["paused_at"]  # type: ignore[index]
    assert first is not None and row(db, "other")["paused_at"] is None  # type: ignore[index]
    assert queues.paused(db) == {"priority": first}
    assert queues.paused_among(db, ["priority", "other"]) == {"priority"}

    queues.pause(db, "priority")  # pausing again keeps the original time (River's CASE)
    assert row(db, "priority")["paused_at"] == first  # type: ignore[index]
    received(control)

    assert queues.resume(db, "priority") == 1
    (payload,) = received(control)
    assert json.loads(payload) == PAYLOADS["resume"]["payload"]
    assert row(db, "priority")["paused_at"] is None  # type: ignore[index]
    assert queues.paused(db) == {}


def test_pause_all_is_rivers_star(db: psycopg.Connection, control: psycopg.Connection) -> None:
    queues.report(db, ["a", "b", "c"])
    assert queues.pause(db, queues.ALL) == 3
    assert json.loads(received(control)[0]) == {"action": "pause", "queue": "*"}
    assert set(queues.paused(db)) == {"a", "b", "c"}
    assert queues.resume(db, queues.ALL) == 3
    assert queues.paused(db) == {}


def test_pausing_a_queue_without_a_row_is_not_found_and_sends_nothing(
    db: psycopg.Connection, control: psycopg.Connection
) -> None:
    with pytest.raises(QueueNotFound, match="queue nosuch: not found"):
        queues.pause(db, "nosuch")
    with pytest.raises(QueueNotFound):
        queues.resume(db, "nosuch")
    assert received(control, expect=0) == []  # rolled back with the transaction
    assert row(db, "nosuch") is None


def test_a_paused_queue_yields_nothing_to_a_fetch_until_resumed(db: psycopg.Connection) -> None:
    queues.report(db, ["default", "other"])
    queue.insert_many(db, [queue.JobSpec("k.a"), queue.JobSpec("k.a", queue="other")])
    db.execute("update river_queue set paused_at = now() where name = 'default'")  # by hand, no notify
    assert queue.fetch_for_work(db, "default", 10, "w", ["k.a"]) == []
    assert queue.fetch(db, "default", 10, "w") == []
    assert len(queue.fetch_for_work(db, "other", 10, "w", ["k.a"])) == 1  # other queues unaffected
    queues.resume(db, "default")
    assert [job.kind for job in queue.fetch(db, "default", 10, "w")] == ["k.a"]


def test_control_messages_are_read_as_river_sends_them() -> None:
    for name in ("pause", "resume"):
        assert queues.control_message(PAYLOADS[name]["payload"]) == (name, "priority")
    assert queues.control_message(PAYLOADS["cancel"]["payload"]) is None
    assert queues.control_message(PAYLOADS["metadata_changed"]["payload"]) is None
    assert queues.control_message({"action": "pause"}) is None
    assert queues.control_message(["pause"]) is None


def test_queue_cleaner_deletes_rows_idle_past_rivers_retention(db: psycopg.Connection) -> None:
    queues.report(db, ["idle", "fresh", "paused-idle"])
    db.execute(
        "update river_queue set updated_at = now() - interval '25 hours', paused_at = now()"
        " where name in ('idle', 'paused-idle')"
    )
    db.execute("update river_queue set updated_at = now() - interval '23 hours' where name = 'fresh'")
    QueueCleaner().tick(db, take_lease(db, "node-a"), datetime.now(UTC))
    assert [r["name"] for r in db.execute("select name from river_queue").fetchall()] == ["fresh"]


def test_queue_list_shows_state_jobs_oldest_available_and_hosts(db: psycopg.Connection) -> None:
    web = NodeIdentity.current("web-1")
    nodes.register(db, web, "default", "fp", {}, {"default": 20, "mail": 2})
    nodes.register(db, NodeIdentity.current("web-2"), "other", "fp", {}, {"default": 4})
    queues.report(db, ["default", "mail"])
    queues.pause(db, "mail")
    queue.insert_many(db, [queue.JobSpec("k.a"), queue.JobSpec("k.a"), queue.JobSpec("k.b", queue="mail")])
    queue.insert(db, queue.JobSpec("k.c", queue="orphan"))
    db.execute("update river_job set scheduled_at = now() - interval '90 seconds' where queue = 'default'")

    listed = {q["name"]: q for q in status.queue_list(db, datetime.now(UTC))}
    assert sorted(listed) == ["default", "mail", "orphan"]
    default, mail, orphan = listed["default"], listed["mail"], listed["orphan"]
    assert (default["state"], default["jobs"], default["metadata"]) == ("active", {"available": 2}, {})
    assert 89 < default["oldest_available_age"] < 150
    assert [(h["node"], h["cluster"], h["concurrency"]) for h in default["hosts"]] == [
        ("web-1", "default", 20),
        ("web-2", "other", 4),
    ]
    assert mail["state"] == "paused" and mail["paused_at"] is not None
    assert [h["node"] for h in mail["hosts"]] == ["web-1"]
    # Jobs in a queue nobody serves: listed without a row or hosts, so the operator sees them.
    assert (orphan["state"], orphan["created_at"], orphan["hosts"], orphan["jobs"]) == (
        "active",
        None,
        [],
        {"available": 1},
    )


def test_cli_pauses_resumes_and_lists(db: psycopg.Connection, database_url: str, tmp_path: Path) -> None:
    queues.report(db, ["default"])
    done = cli(database_url, "queues", "pause", "default", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "queue default paused\n"), done.stderr
    listed = cli(database_url, "queues", "list", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)["queues"]
    assert (entry["name"], entry["state"]) == ("default", "paused")
    shown = cli(database_url, "status", "--json", cwd=tmp_path)
    assert [q["name"] for q in json.loads(shown.stdout)["paused_queues"]] == ["default"]
    done = cli(database_url, "queues", "resume", "--all", "--json", cwd=tmp_path)
    assert json.loads(done.stdout) == {"action": "resume", "queue": "*", "queues": 1}
    assert queues.paused(db) == {}


def test_cli_refuses_bad_queue_arguments_in_one_line(
    db: psycopg.Connection, database_url: str, tmp_path: Path
) -> None:
    missing = cli(database_url, "queues", "pause", "nosuch", cwd=tmp_path)
    assert missing.returncode == 1
    assert missing.stderr.startswith("river-supervisor: error: queue nosuch: not found")
    assert len(missing.stderr.splitlines()) == 1
    for argv in (("queues", "pause"), ("queues", "resume", "default", "--all")):
        bad = cli(database_url, *argv, cwd=tmp_path)
        assert bad.returncode == 2
        assert len(bad.stderr.splitlines()) == 1 and "--all" in bad.stderr
