"""``river-supervisor migrate`` builds River's schema (main line 1-8) exactly, idempotently, concurrently."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from river_supervisor import schema
from river_supervisor.sql import migrations

from tests.harness import database

CONFORMANCE = Path(__file__).resolve().parents[1] / "conformance"


def _conformance(name: str) -> Path:
    return CONFORMANCE / name


@pytest.fixture
def fresh_url() -> Iterator[str]:
    name = database.create_database()
    yield database.with_database(database.admin_url(), name)
    database.drop_database(name)


def _catalog(url: str) -> list[str]:
    query = _conformance("catalog.sql").read_text()
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute(query)]


def _cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "river_supervisor", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_migrate_twice_matches_river_catalog_and_records_main_1_to_8(fresh_url: str) -> None:
    first = _cli("migrate", url=fresh_url)
    second = _cli("migrate", url=fresh_url)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert "up to date" in second.stdout
    # each step once: on stdout, not again as a log line on stderr
    steps = len(migrations("main")) + len(migrations("supervisor"))
    assert len([line for line in first.stdout.splitlines() if line.startswith("applied ")]) == steps
    assert "applied" not in first.stderr

    expected = _conformance("schema-v7.txt").read_text().splitlines()
    assert _catalog(fresh_url) == expected

    with psycopg.connect(fresh_url) as conn:
        main = [
            r[0] for r in conn.execute("select version from river_migration where line = 'main' order by 1")
        ]
        ours = [r[0] for r in conn.execute("select version from river_migration where line = 'supervisor'")]
    assert main == [1, 2, 3, 4, 5, 6, 7, 8]
    assert ours == [m.version for m in migrations("supervisor")]


def test_concurrent_migrators_apply_each_version_once(fresh_url: str) -> None:
    errors: list[BaseException] = []
    applied: list[list[schema.Applied]] = []
    barrier = threading.Barrier(4)

    def migrate() -> None:
        try:
            with psycopg.connect(fresh_url, autocommit=True) as conn:
                barrier.wait()
                applied.append(schema.migrate(conn))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    all_applied = [a for batch in applied for a in batch]
    assert len(all_applied) == len(set(all_applied)) == 8 + len(migrations("supervisor"))
    assert _catalog(fresh_url) == _conformance("schema-v7.txt").read_text().splitlines()


def test_database_migrated_by_river_keeps_river_tables_untouched(fresh_url: str) -> None:
    """River's CLI migrated to v8 (simulated with the same DDL, line main only): we add only our line."""
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        schema.migrate(conn, lines=("main",))
        conn.execute("insert into river_job (kind, args) values ('river.go', '{}')")
        before = conn.execute(
            "select count(*), max(created_at) from river_migration where line='main'"
        ).fetchone()
        applied = schema.migrate(conn)
        after = conn.execute(
            "select count(*), max(created_at) from river_migration where line='main'"
        ).fetchone()
        jobs = conn.execute("select count(*) from river_job").fetchone()
    assert {a.line for a in applied} == {"supervisor"}
    assert before == after
    assert jobs == (1,)


def test_partially_migrated_river_database_is_upgraded_from_its_version(fresh_url: str) -> None:
    """A database River left at version 4 (before migration lines existed) upgrades to 8."""
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        for m in migrations("main")[:4]:
            with conn.transaction():
                conn.execute(m.up.encode())
                conn.execute("insert into river_migration (version) values (%s)", (m.version,))
        applied = schema.migrate(conn)
    assert [a.version for a in applied if a.line == "main"] == [5, 6, 7, 8]
    assert _catalog(fresh_url) == _conformance("schema-v7.txt").read_text().splitlines()


def test_database_newer_than_known_is_refused_and_left_alone(fresh_url: str) -> None:
    """River's Go services migrated past what we know (version 9): migrate, run and status refuse it."""
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        schema.migrate(conn, lines=("main",))
        conn.execute("insert into river_migration (line, version) values ('main', 9)")
    before = _catalog(fresh_url)

    results = [_cli(*command, url=fresh_url) for command in (["migrate"], ["status"], ["run"])]

    for result in results:
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().splitlines() == [
            "river-supervisor: error: river_migration: the database is at main 9 (this river-supervisor"
            f" knows up to {schema.latest('main')}): upgrade river-supervisor (nothing was changed)"
        ]
    with psycopg.connect(fresh_url) as conn:
        ours = conn.execute("select count(*) from river_migration where line = 'supervisor'").fetchone()
    assert ours == (0,)  # our line was pending and is still not applied
    assert _catalog(fresh_url) == before
