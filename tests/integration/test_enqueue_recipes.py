"""The README's recipes, run as written: enqueue inside Django's, SQLAlchemy's and a pool's transaction.

Each framework holds the application's psycopg connection; the job must commit and roll back with
the application's own writes. Django, SQLAlchemy and psycopg_pool are test extras (pyproject.toml):
a venv without them skips these tests, CI installs them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import river_supervisor

from tests.harness.notifications import InsertWatch


class Boom(Exception):
    """The application fails after enqueuing: its transaction rolls back."""


def jobs(db: psycopg.Connection) -> list[dict[str, Any]]:
    return db.execute("select kind, args, queue from river_job order by id").fetchall()


@pytest.fixture
def watch(database_url: str, db: psycopg.Connection) -> Iterator[InsertWatch]:
    made = InsertWatch(database_url)
    yield made
    made.close()


@pytest.fixture
def orders(db: psycopg.Connection) -> Iterator[str]:
    """An application table of the test's own, so each recipe shows the job and the app's row together."""
    db.execute("create table if not exists app_order (id bigint primary key)")
    db.execute("truncate app_order")
    yield "app_order"
    db.execute("drop table app_order")


def test_django_enqueue_inside_transaction_atomic(
    database_url: str, db: psycopg.Connection, watch: InsertWatch, orders: str
) -> None:
    django = pytest.importorskip("django")
    from django.conf import settings

    parts = urlsplit(database_url)
    if not settings.configured:
        settings.configure(
            USE_TZ=True,
            DATABASES={
                "default": {
                    "ENGINE": "django.db.backends.postgresql",  # psycopg 3 when installed
                    "NAME": parts.path.lstrip("/"),
                    "USER": parts.username or "postgres",
                    "HOST": parts.hostname or "127.0.0.1",
                    "PORT": str(parts.port or 5432),
                }
            },
        )
        django.setup()
    from django.db import connection, transaction

    try:
        # The recipe: the raw psycopg connection under Django's, inside transaction.atomic().
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("insert into app_order (id) values (1)")
            result = river_supervisor.enqueue(
                connection.connection, "app.ship", {"order": 1}, queue="shipping"
            )
            assert db.execute("select count(*) as n from river_job").fetchone()["n"] == 0  # not yet
        with pytest.raises(Boom), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("insert into app_order (id) values (2)")
            river_supervisor.enqueue(connection.connection, "app.ship", {"order": 2}, queue="shipping")
            raise Boom
    finally:
        connection.close()

    # Django loads jsonb as text on its connections; the result still carries decoded args.
    assert (result.job.args, result.job.metadata) == ({"order": 1}, {})
    assert jobs(db) == [{"kind": "app.ship", "args": {"order": 1}, "queue": "shipping"}]
    assert [row["id"] for row in db.execute("select id from app_order").fetchall()] == [1]
    assert watch.queues_until_marker(db) == ["shipping"]


def test_sqlalchemy_enqueue_inside_a_session_transaction(
    database_url: str, db: psycopg.Connection, watch: InsertWatch, orders: str
) -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    from sqlalchemy.orm import Session

    engine = sqlalchemy.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        # The recipe: the psycopg connection under the Session's, in the Session's transaction.
        with Session(engine) as session, session.begin():
            session.execute(sqlalchemy.text("insert into app_order (id) values (1)"))
            conn = session.connection().connection.driver_connection
            river_supervisor.enqueue(conn, "app.ship", {"order": 1}, queue="shipping")
        with pytest.raises(Boom), Session(engine) as session, session.begin():
            session.execute(sqlalchemy.text("insert into app_order (id) values (2)"))
            conn = session.connection().connection.driver_connection
            river_supervisor.enqueue(conn, "app.ship", {"order": 2}, queue="shipping")
            raise Boom
        # Core: engine.begin() is a Connection in a transaction.
        with engine.begin() as core:
            river_supervisor.enqueue(
                core.connection.driver_connection, "app.ship", {"order": 3}, queue="shipping"
            )
    finally:
        engine.dispose()

    assert [job["args"] for job in jobs(db)] == [{"order": 1}, {"order": 3}]
    assert [row["id"] for row in db.execute("select id from app_order").fetchall()] == [1]
    assert watch.queues_until_marker(db) == ["shipping", "shipping"]


def test_psycopg_pool_connection_block_commits_and_rolls_back(
    database_url: str, db: psycopg.Connection, watch: InsertWatch
) -> None:
    psycopg_pool = pytest.importorskip("psycopg_pool")

    with psycopg_pool.ConnectionPool(database_url, min_size=1, max_size=2, open=True) as pool:
        with pool.connection() as conn:  # commits when the block ends
            river_supervisor.enqueue(conn, "app.mail", {"to": 1})
        with pytest.raises(Boom), pool.connection() as conn:  # rolls back on an exception
            river_supervisor.enqueue(conn, "app.mail", {"to": 2})
            raise Boom

    async def with_async_pool() -> None:
        pool = psycopg_pool.AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False)
        async with pool, pool.connection() as conn:
            await river_supervisor.enqueue_async(conn, "app.mail", {"to": 3})

    asyncio.run(with_async_pool())
    assert [job["args"] for job in jobs(db)] == [{"to": 1}, {"to": 3}]
    assert watch.queues_until_marker(db) == ["default", "default"]


def test_rivers_python_client_writes_rows_a_worker_fetches_without_a_wake_up(
    database_url: str, db: psycopg.Connection, watch: InsertWatch
) -> None:
    """The README's comparison with ``riverqueue``, River's insert-only Python client, as measured."""
    riverqueue = pytest.importorskip("riverqueue")
    sqlalchemy = pytest.importorskip("sqlalchemy")
    from river_supervisor import queue
    from riverqueue.driver import riversqlalchemy

    class Charge:
        kind = "billing.charge"

        def __init__(self, customer: int) -> None:
            self.customer = customer

        def to_json(self) -> str:
            return f'{{"customer": {self.customer}}}'

    engine = sqlalchemy.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        client = riverqueue.Client(riversqlalchemy.Driver(engine))
        with engine.begin() as tx:
            client.insert_tx(tx, Charge(42), insert_opts=riverqueue.InsertOpts(queue="billing"))
        unique = riverqueue.InsertOpts(queue="billing", unique_opts=riverqueue.UniqueOpts(by_args=True))
        with pytest.raises(sqlalchemy.exc.ProgrammingError, match="no unique or exclusion constraint"):
            client.insert(Charge(43), insert_opts=unique)  # 0.7.0 targets River's v5 unique index
    finally:
        engine.dispose()

    assert watch.queues_until_marker(db) == []  # it sends no river_insert: workers find it on their poll
    fetched = queue.fetch(db, "billing", 10, "test-worker")  # what a worker's fetch takes
    assert [(job.kind, job.args, job.state) for job in fetched] == [
        ("billing.charge", {"customer": 42}, "running")
    ]


def test_the_readme_quick_start_python_block_runs_as_written(
    database_url: str, db: psycopg.Connection
) -> None:
    pytest.importorskip("my_billing")  # the example plugin (scripts/install-dev.sh installs it)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    after = readme.index("From Python, the application's side")
    block = readme[
        readme.index("```python\n", after) + len("```python\n") : readme.index("```\n", after + 10)
    ]
    exec(compile(block, "README.md (quick start)", "exec"), {"url": database_url, "print": lambda *a: None})

    rows = db.execute("select kind, args, max_attempts from river_job order by id").fetchall()
    assert rows == [
        {"kind": "billing.charge", "args": {"customer": 42, "amount_cents": 1999}, "max_attempts": 25},
        {
            "kind": "billing.charge",
            "args": {"customer": 43, "amount_cents": 500},
            "max_attempts": 10,
        },  # declared
    ]
