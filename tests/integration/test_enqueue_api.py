"""The application's enqueue API (``river_supervisor.enqueue`` and friends) on a real PostgreSQL.

What users rely on: the job is inserted in *their* transaction (visible, and its ``river_insert``
notification sent, only when they commit; nothing on rollback), the same on asyncio, unique
results, a plugin declaration's options, and bad input refused before any SQL with the CLI's words.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import river_supervisor
from river_supervisor import InvalidJob, Plugin, UniqueOpts, enqueue, enqueue_many, job_spec
from river_supervisor.errors import SchemaMissing

from tests.harness.notifications import InsertWatch


@pytest.fixture
def watch(database_url: str, db: psycopg.Connection) -> Iterator[InsertWatch]:
    made = InsertWatch(database_url)
    yield made
    made.close()


@pytest.fixture
def app_conn(database_url: str, db: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """An application's connection: psycopg's default (not autocommit, tuple rows)."""
    conn = psycopg.connect(database_url)
    yield conn
    conn.close()


def count_jobs(db: psycopg.Connection, **where: Any) -> int:
    clauses = " and ".join(f"{column} = %({column})s" for column in where) or "true"
    return db.execute(f"select count(*) as n from river_job where {clauses}", where).fetchone()["n"]


def test_enqueue_commits_on_its_own_on_an_autocommit_connection(
    db: psycopg.Connection, database_url: str, watch: InsertWatch
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        result = enqueue(conn, "app.welcome", {"user": 7}, tags=["signup"], metadata={"source": "web"})
    assert not result.unique_skipped_as_duplicate
    job = result.job
    assert (job.kind, job.args, job.queue, job.state) == ("app.welcome", {"user": 7}, "default", "available")
    assert (job.priority, job.max_attempts, job.tags, job.metadata) == (1, 25, ["signup"], {"source": "web"})
    assert count_jobs(db, id=job.id) == 1  # seen from another session: committed
    assert watch.queues_until_marker(db) == ["default"]


def test_in_the_callers_transaction_the_job_exists_and_wakes_only_on_commit(
    db: psycopg.Connection, app_conn: psycopg.Connection, watch: InsertWatch
) -> None:
    with app_conn.transaction():
        app_conn.execute("select 1")  # the application's own writes would be here
        job = enqueue(app_conn, "app.invoice", {"order": 1}, queue="billing").job
        assert count_jobs(db, id=job.id) == 0  # not visible to anyone else yet
        assert watch.queues_until_marker(db) == []  # and no worker woken
    assert count_jobs(db, id=job.id) == 1
    assert watch.queues_until_marker(db) == ["billing"]


def test_a_rollback_leaves_no_row_and_no_wake_up(
    db: psycopg.Connection, app_conn: psycopg.Connection, watch: InsertWatch
) -> None:
    with pytest.raises(RuntimeError), app_conn.transaction():
        enqueue(app_conn, "app.invoice", {"order": 2}, queue="billing")
        raise RuntimeError("the application fails after enqueuing")
    # Without a transaction block, psycopg's implicit transaction: rolled back explicitly.
    enqueue(app_conn, "app.invoice", {"order": 3}, queue="billing")
    app_conn.rollback()
    assert count_jobs(db) == 0
    assert watch.queues_until_marker(db) == []


def test_enqueue_many_in_one_statement_with_unique_results_in_order(
    db: psycopg.Connection, database_url: str, watch: InsertWatch
) -> None:
    once = UniqueOpts(by_args=True)
    with psycopg.connect(database_url) as conn:
        first = enqueue(conn, "app.report", {"day": "2026-01-02"}, unique=once)
        results = enqueue_many(
            conn,
            [
                job_spec("app.report", {"day": "2026-01-02"}, unique=once),  # held by ``first``
                job_spec("app.report", {"day": "2026-01-03"}, unique=once, queue="reports"),
                job_spec("app.report", {"day": "2026-01-03"}, unique=once, queue="reports"),  # same batch
                job_spec("app.later", scheduled_in=timedelta(hours=1)),
                job_spec("app.held", pending=True),
            ],
        )
    skipped = [r.unique_skipped_as_duplicate for r in results]
    assert skipped == [True, False, True, False, False]
    assert results[0].job.id == first.job.id and results[2].job.id == results[1].job.id
    assert [r.job.state for r in results[3:]] == ["scheduled", "pending"]
    assert results[3].job.scheduled_at > datetime.now(UTC) + timedelta(minutes=59)
    assert count_jobs(db) == 4
    # psycopg's ``with connect()`` committed: one wake-up per queue that received an available job
    assert sorted(watch.queues_until_marker(db)) == ["default", "reports"]


def test_async_enqueue_in_the_callers_transaction(
    db: psycopg.Connection, database_url: str, watch: InsertWatch
) -> None:
    async def main() -> tuple[int, int]:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            async with conn.transaction():
                kept = await river_supervisor.enqueue_async(conn, "app.mail", {"to": "a@example.com"})
                assert count_jobs(db, id=kept.job.id) == 0
            with pytest.raises(RuntimeError):
                async with conn.transaction():
                    await river_supervisor.enqueue_async(conn, "app.mail", {"to": "b@example.com"})
                    raise RuntimeError("the application fails")
            many = await river_supervisor.enqueue_many_async(
                conn, [job_spec("app.mail", {"to": "c@example.com"}, queue="mail")]
            )
            await conn.rollback()  # the implicit transaction of the last call: rolled back
            return kept.job.id, many[0].job.id

    kept, rolled_back = asyncio.run(main())
    assert db.execute("select id from river_job").fetchall() == [{"id": kept}]
    assert kept != rolled_back
    assert watch.queues_until_marker(db) == ["default"]  # the committed job's, nothing else


def test_a_plugin_declaration_enqueues_with_its_declared_options(
    db: psycopg.Connection, database_url: str
) -> None:
    plugin = Plugin("billing")

    @plugin.job(
        "billing.charge", queue="payments", priority=2, max_attempts=5, unique=UniqueOpts(by_args=True)
    )
    def charge(job: river_supervisor.Job) -> None:
        return None

    with psycopg.connect(database_url, autocommit=True) as conn:
        first = charge.enqueue(conn, customer=42)
        again = charge.enqueue(conn, {"customer": 42})  # a mapping works too
        later = charge.configure(scheduled_in=3600, priority=4).enqueue(conn, customer=43)
        [other] = enqueue_many(conn, [charge.spec(customer=44)])

        async def via_async() -> river_supervisor.InsertResult:
            async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as aconn:
                return await charge.enqueue_async(aconn, customer=45)

        from_async = asyncio.run(via_async())

    job = first.job
    assert (job.kind, job.args, job.queue, job.priority, job.max_attempts) == (
        "billing.charge", {"customer": 42}, "payments", 2, 5,
    )  # fmt: skip
    assert job.unique_key is not None  # River's unique key for by_args
    assert again.unique_skipped_as_duplicate and again.job.id == job.id
    assert (later.job.state, later.job.priority, later.job.queue) == ("scheduled", 4, "payments")
    assert (other.job.args, other.job.queue) == ({"customer": 44}, "payments")
    assert (from_async.job.args, from_async.job.max_attempts) == ({"customer": 45}, 5)
    assert count_jobs(db, kind="billing.charge") == 4


# The same one-line messages as ``river-supervisor enqueue``: both come from JobSpec.validate.
BAD_INPUT = [
    (("bad kind", {}), {}, "kind: 'bad kind' is not a valid job kind"),
    (("app.x", [1, 2]), {}, "args: must be a JSON object, got list"),
    (("app.x", {}), {"queue": "has space"}, "queue: 'has space' is not a valid queue name"),
    (("app.x", {}), {"priority": 9}, "priority: must be 1 to 4, got 9"),
    (("app.x", {}), {"max_attempts": 0}, "max_attempts: must be 1 to 32767, got 0"),
    (("app.x", {"when": datetime.now(UTC)}), {}, "args: not JSON-serialisable"),
    (("app.x", {}), {"scheduled_at": datetime(2030, 1, 1)}, "scheduled_at: must be timezone-aware"),
    (("app.x", {}), {"scheduled_in": -1}, "scheduled_in: must be 0 or more seconds"),
    (("app.x", {}), {"tags": "nightly"}, "tags: must be a list of strings"),
    (("app.x", {}), {"unique": UniqueOpts(by_state=("completed",))}, "unique.by_state: must include"),
]


@pytest.mark.parametrize(("positional", "options", "message"), BAD_INPUT)
def test_bad_input_raises_invalid_job_before_any_sql(
    database_url: str, positional: tuple[Any, ...], options: dict[str, Any], message: str
) -> None:
    conn = psycopg.connect(database_url)
    conn.close()  # any SQL would raise psycopg.OperationalError: the error must come first

    with pytest.raises(InvalidJob) as raised:
        enqueue(conn, *positional, **options)
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)
    assert isinstance(raised.value, ValueError)  # application code may catch it as bad input

    async def via_async() -> None:
        aconn = await psycopg.AsyncConnection.connect(database_url)
        await aconn.close()
        await river_supervisor.enqueue_async(aconn, *positional, **options)

    with pytest.raises(InvalidJob, match=message.replace("(", r"\(")):
        asyncio.run(via_async())


def test_one_bad_job_in_a_batch_inserts_none(db: psycopg.Connection, database_url: str) -> None:
    good = job_spec("app.x", {"n": 1})
    bad = river_supervisor.JobSpec("app.x", {"n": 2}, priority=7)  # built without job_spec's check
    with psycopg.connect(database_url, autocommit=True) as conn, pytest.raises(InvalidJob, match="priority"):
        enqueue_many(conn, [good, bad])
    assert count_jobs(db) == 0


def test_the_wrong_connection_type_is_named(database_url: str) -> None:
    with pytest.raises(TypeError, match="use enqueue_async"):

        async def main() -> None:
            async with await psycopg.AsyncConnection.connect(database_url) as aconn:
                enqueue(aconn, "app.x")  # type: ignore[arg-type]

        asyncio.run(main())
    with pytest.raises(TypeError, match="driver_connection"):
        enqueue(object(), "app.x")  # type: ignore[arg-type]


def test_the_cli_prints_the_same_messages(database_url: str, tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if k != "SENTRY_DSN"}
    environ["DATABASE_URL"] = database_url
    for argv, message in (
        (["bad kind"], BAD_INPUT[0][2]),
        (["app.x", "--queue", "has space"], BAD_INPUT[2][2]),
        (["app.x", "--priority", "9"], BAD_INPUT[3][2]),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "river_supervisor", "enqueue", *argv],
            capture_output=True, text=True, env=environ, cwd=tmp_path, timeout=60,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert f"river-supervisor: error: {message}" in done.stderr


def test_a_database_without_the_schema_says_to_migrate(empty_database_url: str) -> None:
    with (
        psycopg.connect(empty_database_url, autocommit=True) as conn,
        pytest.raises(SchemaMissing, match="migrate"),
    ):
        enqueue(conn, "app.x")

    async def via_async() -> None:
        async with await psycopg.AsyncConnection.connect(empty_database_url, autocommit=True) as aconn:
            await river_supervisor.enqueue_async(aconn, "app.x")

    with pytest.raises(SchemaMissing, match="run river-supervisor migrate"):
        asyncio.run(via_async())


def test_the_cli_applies_a_declared_unique_option_and_says_when_it_skipped(
    db: psycopg.Connection, database_url: str, tmp_path: Path
) -> None:
    environ = {k: v for k, v in os.environ.items() if k != "SENTRY_DSN"}
    environ["DATABASE_URL"] = database_url
    command = [sys.executable, "-m", "river_supervisor", "enqueue", "test.unique", "--args", '{"n": 1}']
    runs = [
        subprocess.run(command, capture_output=True, text=True, env=environ, cwd=tmp_path, timeout=60)
        for _ in range(2)
    ]
    assert [run.returncode for run in runs] == [0, 0], runs[1].stderr
    assert runs[0].stdout == runs[1].stdout  # the same job's id
    assert "holds this job's unique key; nothing inserted" in runs[1].stderr
    assert db.execute("select priority, unique_key is not null as keyed from river_job").fetchall() == [
        {"priority": 3, "keyed": True}  # test.unique's declared priority and unique option
    ]
