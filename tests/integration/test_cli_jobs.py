"""``river-supervisor enqueue`` and ``jobs``: the real CLI in a subprocess against the test database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
from river_supervisor import queue
from river_supervisor.queue import JobSpec


def cli(database_url: str, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("SENTRY_DSN",)}
    environ["DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "river_supervisor", *argv],
        capture_output=True,
        text=True,
        env=environ,
        cwd=cwd,  # no river-supervisor.toml of the repository's
        timeout=60,
    )


def test_enqueue_leaves_one_available_row_with_those_args(
    db: psycopg.Connection, database_url: str, tmp_path: Path
) -> None:
    done = cli(database_url, "enqueue", "bar.noop", "--args", '{"n": 7}', cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = db.execute("select id, kind, args, state, queue from river_job").fetchall()
    assert rows == [
        {
            "id": int(done.stdout),
            "kind": "bar.noop",
            "args": {"n": 7},
            "state": "available",
            "queue": "default",
        }
    ]


def test_enqueue_options_and_json_output(db: psycopg.Connection, database_url: str, tmp_path: Path) -> None:
    done = cli(
        database_url, "enqueue", "bar.later", "--queue", "mail", "--priority", "3", "--max-attempts", "5",
        "--in", "1h", "--tag", "nightly", "--metadata", '{"source": "cli"}', "--json", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert (job["state"], job["queue"], job["priority"], job["max_attempts"]) == ("scheduled", "mail", 3, 5)
    assert job["tags"] == ["nightly"] and job["metadata"] == {"source": "cli"}
    assert "+00:00" in job["scheduled_at"]


def test_enqueue_takes_the_job_kinds_declared_options(
    db: psycopg.Connection, database_url: str, tmp_path: Path
) -> None:
    # test.raise is declared with max_attempts=1 by the testjobs plugin (tests/process/testjobs)
    done = cli(database_url, "enqueue", "test.raise", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["max_attempts"] == 1
    # a kind no plugin declares gets River's defaults, and a warning
    unknown = cli(database_url, "enqueue", "nobody.declares", "--json", cwd=tmp_path)
    assert json.loads(unknown.stdout)["max_attempts"] == 25
    assert "not registered by any plugin" in unknown.stderr


def test_enqueue_with_bad_args_json_is_one_line_naming_args(
    db: psycopg.Connection, database_url: str, tmp_path: Path
) -> None:
    done = cli(database_url, "enqueue", "bar.noop", "--args", "{n: 7}", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("river-supervisor: error: --args:") and done.stderr.count("\n") == 1
    bad_priority = cli(database_url, "enqueue", "bar.noop", "--priority", "9", cwd=tmp_path)
    assert bad_priority.returncode == 2 and "priority" in bad_priority.stderr
    assert db.execute("select count(*) as n from river_job").fetchone()["n"] == 0


def test_jobs_list_show_retry_cancel(db: psycopg.Connection, database_url: str, tmp_path: Path) -> None:
    first = queue.insert(db, JobSpec("bar.first", {"a": 1})).job
    second = queue.insert(db, JobSpec("bar.second", queue="mail")).job
    listed = cli(database_url, "jobs", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    header, *lines = listed.stdout.splitlines()
    assert header.split() == ["ID", "STATE", "QUEUE", "KIND", "ATTEMPT", "PRIORITY", "SCHEDULED", "AT"]
    assert [line.split()[0] for line in lines] == [str(second.id), str(first.id)]  # newest first
    assert len({line.index("bar.") for line in lines}) == 1  # aligned columns

    as_json = json.loads(cli(database_url, "jobs", "list", "--queue", "mail", "--json", cwd=tmp_path).stdout)
    assert [j["id"] for j in as_json["jobs"]] == [second.id]

    shown = cli(database_url, "jobs", "show", str(first.id), cwd=tmp_path)
    assert "bar.first" in shown.stdout and '{"a": 1}' in shown.stdout

    cancelled = cli(database_url, "jobs", "cancel", str(first.id), cwd=tmp_path)
    assert cancelled.stdout.strip() == f"job {first.id}: cancelled"
    retried = cli(database_url, "jobs", "retry", str(first.id), "--json", cwd=tmp_path)
    assert json.loads(retried.stdout)["state"] == "available"

    missing = cli(database_url, "jobs", "show", "987654", cwd=tmp_path)
    assert (
        missing.returncode == 1 and missing.stderr.strip() == "river-supervisor: error: job 987654: not found"
    )


def test_jobs_list_says_how_many_more_match_and_how_to_page(
    db: psycopg.Connection, database_url: str, tmp_path: Path
) -> None:
    ids = [job.job.id for job in queue.insert_many(db, [JobSpec("page.k", {"i": i}) for i in range(7)])]
    page = cli(database_url, "jobs", "list", "--limit", "3", cwd=tmp_path)
    assert page.returncode == 0, page.stderr
    *rows, more = page.stdout.splitlines()[1:]
    assert [int(row.split()[0]) for row in rows] == ids[:-4:-1]  # the newest three
    assert more == f"... 4 more match (next page: --before {ids[-3]}, or raise --limit)"
    before = ("--limit", "3", "--before", str(ids[1]))
    last = json.loads(cli(database_url, "jobs", "list", *before, "--json", cwd=tmp_path).stdout)
    assert ([j["id"] for j in last["jobs"]], last["more"]) == ([ids[0]], 0)
    oldest = json.loads(
        cli(database_url, "jobs", "list", "--oldest-first", "--limit", "2", "--json", cwd=tmp_path).stdout
    )
    assert ([j["id"] for j in oldest["jobs"]], oldest["more"]) == (ids[:2], 5)


def test_jobs_on_an_unmigrated_database_says_run_migrate(empty_database_url: str, tmp_path: Path) -> None:
    done = cli(empty_database_url, "jobs", "list", cwd=tmp_path)
    assert done.returncode == 2
    assert "run river-supervisor migrate" in done.stderr and "Traceback" not in done.stderr
