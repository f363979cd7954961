"""Shared fixtures: one migrated database per test run, a clean slate per test."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests import conformance_guard
from tests.harness import database
from tests.harness.fixtures import sentry_ingest  # noqa: F401  (registers the fixture)
from tests.harness.private_postgres import (  # noqa: F401  (registers the fixtures)
    _private_postgres_template,
    private_postgres,
    private_supervisors,
)
from tests.harness.supervisors import supervisors  # noqa: F401  (registers the fixture)

# Commands run without a database configured use the embedded PostgreSQL if its data directory exists
# (river_supervisor.embedded): keep every test, and the CLIs they start, away from this machine's one.
os.environ["RIVER_SUPERVISOR_EMBEDDED_DIR"] = str(
    Path(tempfile.gettempdir()) / f"river-supervisor-tests-{os.getpid()}" / "no-embedded"
)

conformance_guard.install()


@pytest.fixture(autouse=True)
def _no_reads_outside_the_repository() -> Iterator[None]:
    """A test that opens a file beside the repository fails: a user's clone has nothing there."""
    conformance_guard.reads_outside.clear()
    yield
    outside = list(conformance_guard.reads_outside)
    conformance_guard.reads_outside.clear()
    assert not outside, f"the test read outside the repository: {outside[:3]}"


@pytest.fixture(scope="session")
def empty_database_url() -> Iterator[str]:
    """A fresh, unmigrated database; dropped at the end of the run."""
    name = database.create_database()
    yield database.with_database(database.admin_url(), name)
    database.drop_database(name)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A migrated database for the whole run; tests start from empty tables (see ``db``)."""
    from river_supervisor import schema

    name = database.create_database()
    url = database.with_database(database.admin_url(), name)
    with psycopg.connect(url, autocommit=True) as conn:
        schema.migrate(conn)
    yield url
    database.drop_database(name)


def _truncate_all(conn: psycopg.Connection) -> None:
    tables = [
        row["tablename"] if isinstance(row, dict) else row[0]
        for row in conn.execute(
            "select tablename from pg_tables where schemaname = current_schema()"
            " and tablename like 'river%%' and tablename <> 'river_migration'"
        )
    ]
    if tables:
        conn.execute("truncate " + ", ".join(f'"{t}"' for t in tables))


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection (dict rows) to the run's database, with every table emptied."""
    from river_supervisor import db as rdb

    conn = rdb.connect(database_url, application_name="river-supervisor-tests")
    _truncate_all(conn)
    yield conn
    conn.close()
